//! From parsed options to a [`Plan`]: what to send and what to do with the answer.
//!
//! [`build`] applies curl's defaults (method from the options, `http://` for a URL without a
//! scheme, `Accept: */*`, a form Content-Type with data) and the usage checks that clap cannot
//! express. It reads `@FILE` data through a caller-given function so that it stays testable.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use super::args::{Args, DataKind, DumpFormat};
use super::exit::Outcome;

/// Where the request body comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// No body.
    None,
    /// These bytes (from -d, --data-raw, or several data options joined with `&`).
    Bytes(Vec<u8>),
    /// A file streamed as it is (`--data-binary @FILE` as the only data option).
    File(PathBuf),
    /// Standard input streamed as it is (`--data-binary @-` as the only data option).
    Stdin,
    /// A multipart/form-data body (`-F`), fields in order.
    Form(Vec<FormField>),
}

/// One `-F` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// Field name.
    pub name: String,
    /// Its content.
    pub value: FormValue,
}

/// The content of a `-F` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    /// `name=value`, or `name=<FILE` (the file read as the value).
    Text(String),
    /// `name=@FILE[;type=MIME][;filename=NAME]`: a file upload streamed from disk.
    File {
        /// The file to send.
        path: PathBuf,
        /// Its content type; guessed from the extension when `None`.
        content_type: Option<String>,
        /// The file name sent; the path's last component when `None`.
        filename: Option<String>,
    },
}

/// How `-u` credentials are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthChoice {
    /// Basic, on the first request (`--basic`, the default).
    Basic,
    /// Digest, after the server's challenge (`--digest`).
    Digest,
    /// Whatever the challenge offers, strongest first (`--anyauth`).
    Any,
}

/// `-u user:password` and the scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthPlan {
    /// User name.
    pub user: String,
    /// Password (never printed by `Debug`).
    pub password: String,
    /// Scheme.
    pub choice: AuthChoice,
}

impl std::fmt::Debug for AuthPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPlan")
            .field("user", &self.user)
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

/// Where `-C` resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// `-C -`: the size of the output file.
    FromFile,
    /// `-C N`: this offset.
    At(u64),
}

/// The options that shape the agent chain: they are the same for every transfer of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainPlan {
    /// `-L`: follow redirects, at most this many.
    pub follow: Option<u32>,
    /// `-u`.
    pub auth: Option<AuthPlan>,
    /// `--compressed`.
    pub compressed: bool,
    /// `-b FILE`: cookie files to load (turns the cookie engine on).
    pub cookie_files: Vec<PathBuf>,
    /// `-c FILE`: where to save the cookies at the end (turns the cookie engine on).
    pub cookie_jar: Option<PathBuf>,
    /// `-x`: the proxy for every URL; `None`: the environment's.
    pub proxy: Option<String>,
    /// `--noproxy`.
    pub noproxy: Option<String>,
    /// Transfers in flight at once (1 without `-Z`).
    pub parallel: usize,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsChoice {
    /// Against the built-in webpki roots.
    WebpkiRoots,
    /// Against the certificates of a PEM file (`--cacert`).
    CaFile(PathBuf),
    /// Not at all (`-k`; wins over `--cacert`, as in curl).
    Insecure,
}

/// What to do with the response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputOptions {
    /// Output file (`-o`); stdout when `None`.
    pub file: Option<PathBuf>,
    /// Write the status line and headers before the body (`-i`, and `-I`).
    pub include_head: bool,
    /// Write no body (`-I`).
    pub head_only: bool,
    /// Write the `--dump json` object instead of the head and body.
    pub dump_json: bool,
    /// `-f`: a status of 400 or more is a failure (exit 22) and no body is written.
    pub fail_on_http_error: bool,
    /// `-v`: request and response heads on stderr.
    pub verbose: bool,
    /// `--max-filesize`.
    pub max_filesize: Option<u64>,
    /// `-C`: resume into the output file.
    pub resume: Option<Resume>,
    /// `--etag-save`.
    pub etag_save: Option<PathBuf>,
    /// `-w` format (already read from its file for `@FILE`).
    pub write_out: Option<String>,
    /// A progress bar may be shown (not `-s`, `-v`, `--dump` or `--no-progress-meter`); it
    /// is shown only when stderr is a terminal.
    pub progress: bool,
}

/// Everything the command will do, decided before any I/O on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Request method.
    pub method: String,
    /// Absolute URL (with a scheme).
    pub url: String,
    /// Header fields to send, in order (the library adds Host, framing and User-Agent).
    pub headers: Vec<(String, String)>,
    /// The User-Agent for the agent's config: `Some(default or -A)`, or `None` when the user
    /// gave a `User-Agent` header, or removed it with `User-Agent:`.
    pub user_agent: Option<String>,
    /// Request body.
    pub body: BodySource,
    /// Certificate checking.
    pub tls: TlsChoice,
    /// Connect limit (`None`: the library's default of 30 s).
    pub connect_timeout: ConnectTimeout,
    /// Total limit (`-m`), if any.
    pub max_time: Option<Duration>,
    /// Output handling.
    pub output: OutputOptions,
    /// Agent chain options (the same in every plan of a run).
    pub chain: ChainPlan,
}

/// The connect limit asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectTimeout {
    /// Not given: keep the library's default.
    Default,
    /// `--connect-timeout 0`: no limit.
    Unlimited,
    /// This limit.
    Limit(Duration),
}

/// Why no plan could be made.
#[derive(Debug)]
pub enum PlanError {
    /// Bad usage (exit 2).
    Usage(String),
    /// An `@FILE` could not be read (exit 26).
    Read(String),
}

impl PlanError {
    /// The run's outcome for this error.
    pub fn into_outcome(self) -> Outcome {
        match self {
            PlanError::Usage(m) => Outcome::Usage(m),
            PlanError::Read(m) => Outcome::ReadInput(m),
        }
    }
}

/// The User-Agent sent unless told otherwise (the library's default).
pub const DEFAULT_USER_AGENT: &str = concat!("weft/", env!("CARGO_PKG_VERSION"));

/// Reads an `@FILE` data argument: the file, or standard input for `-`.
pub fn read_data_file(name: &str) -> io::Result<Vec<u8>> {
    if name == "-" {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(name)
    }
}

/// Prefixes `http://` to a URL without a scheme, as curl does.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// One `-H` argument, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderArg {
    /// `Name: value`: send it (the value is trimmed).
    Set(String, String),
    /// `Name:`: do not send it, and drop weft's own default of that name.
    Remove(String),
}

/// Parses `-H` syntax: `Name: value`, `Name:` (remove) or `Name;` (empty value).
pub fn parse_header(arg: &str) -> Result<HeaderArg, String> {
    let (name, value, empty) = match arg.split_once(':') {
        Some((name, value)) => (name, value.trim(), false),
        None => match arg.strip_suffix(';') {
            Some(name) if !name.contains(';') => (name, "", true),
            _ => return Err(format!("invalid header {arg:?}: expected 'Name: value'")),
        },
    };
    if name.is_empty()
        || name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("invalid header name in {arg:?}"));
    }
    if value.is_empty() && !empty {
        return Ok(HeaderArg::Remove(name.to_string()));
    }
    Ok(HeaderArg::Set(name.to_string(), value.to_string()))
}

/// Builds one plan per URL, in order. `read` loads `@FILE` data (`-` for stdin).
pub fn build_all(
    args: &Args,
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<Vec<Plan>, PlanError> {
    if args.urls.is_empty() {
        return Err(PlanError::Usage("no URL given (see --help)".into()));
    }
    if args.output.len() > args.urls.len() {
        return Err(PlanError::Usage(format!(
            "{} -o options for {} URL(s)",
            args.output.len(),
            args.urls.len()
        )));
    }
    let template = build(args, read)?;
    if args.urls.len() > 1 && template.body == BodySource::Stdin {
        return Err(PlanError::Usage(
            "--data-binary @- can feed one URL only".into(),
        ));
    }
    let mut plans = Vec::with_capacity(args.urls.len());
    for (i, url) in args.urls.iter().enumerate() {
        let mut plan = template.clone();
        plan.url = normalize_url(url);
        plan.output.file = output_file(args, i, &plan.url)?;
        if plan.output.resume.is_some() && plan.output.file.is_none() {
            return Err(PlanError::Usage(
                "-C/--continue-at needs an output file (-o or -O)".into(),
            ));
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Where the output of URL number `i` goes: its `-o`, else the remote name with `-O`, else
/// stdout (`None`); relative names go under `--output-dir`.
fn output_file(args: &Args, i: usize, url: &str) -> Result<Option<PathBuf>, PlanError> {
    let name = match args.output.get(i) {
        Some(p) => p.clone(),
        None if args.remote_name => PathBuf::from(remote_name(url).ok_or_else(|| {
            PlanError::Usage(format!("-O: the URL {url} has no file name to save to"))
        })?),
        None => return Ok(None),
    };
    Ok(Some(match &args.output_dir {
        Some(dir) if name.is_relative() => dir.join(name),
        _ => name,
    }))
}

/// The last path segment of `url`, as `-O` names its file; `None` when there is none or it
/// could escape the directory (`.`, `..`).
pub fn remote_name(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?;
    // The URL parser has already turned `\` into `/` and resolved dot segments.
    (!last.is_empty() && last != "." && last != "..").then(|| last.to_string())
}

/// Builds the plan from the options, for the first URL. `read` loads `@FILE` data (`-` for
/// stdin).
pub fn build(
    args: &Args,
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<Plan, PlanError> {
    let mut user: Vec<(String, String)> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for h in &args.header {
        match parse_header(h).map_err(PlanError::Usage)? {
            HeaderArg::Set(n, v) => user.push((n, v)),
            HeaderArg::Remove(n) => removed.push(n),
        }
    }
    let has = |name: &str, list: &[(String, String)]| {
        list.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let is_removed = |name: &str| removed.iter().any(|n| n.eq_ignore_ascii_case(name));

    let data = &args.data_args;
    if args.head && (!data.is_empty() || !args.form.is_empty()) {
        return Err(PlanError::Usage(
            "-I/--head cannot be combined with data options (-d, --data-binary, --data-raw, -F)"
                .into(),
        ));
    }
    if !data.is_empty() && !args.form.is_empty() {
        return Err(PlanError::Usage(
            "-F/--form cannot be combined with -d, --data-binary or --data-raw".into(),
        ));
    }
    let body = if args.form.is_empty() {
        body_source(data, read)?
    } else {
        BodySource::Form(
            args.form
                .iter()
                .map(|f| parse_form(f, read))
                .collect::<Result<_, _>>()?,
        )
    };

    let method = match &args.request {
        Some(m) if m.is_empty() => return Err(PlanError::Usage("empty method for -X".into())),
        Some(m) => m.clone(),
        None if args.head => "HEAD".to_string(),
        None if !data.is_empty() || !args.form.is_empty() => "POST".to_string(),
        None => "GET".to_string(),
    };

    let mut headers = Vec::new();
    if let Some(path) = &args.etag_compare {
        // A missing or empty file sends nothing, as curl does.
        if let Ok(etag) = read(&path.to_string_lossy()) {
            let etag = String::from_utf8_lossy(&etag).trim().to_string();
            if !etag.is_empty() {
                headers.push(("If-None-Match".to_string(), etag));
            }
        }
    }
    let mut cookie_files = Vec::new();
    for c in &args.cookie {
        if c.contains('=') {
            headers.push(("Cookie".to_string(), c.clone()));
        } else {
            cookie_files.push(PathBuf::from(c));
        }
    }
    if !has("accept", &user) && !is_removed("accept") {
        headers.push(("Accept".to_string(), "*/*".to_string()));
    }
    let user_agent = if has("user-agent", &user) || is_removed("user-agent") {
        None
    } else {
        Some(
            args.user_agent
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string()),
        )
    };
    // A form's Content-Type (with its boundary) is set when the body is made.
    let content_type_needed =
        !data.is_empty() && !has("content-type", &user) && !is_removed("content-type");
    headers.extend(user);
    if content_type_needed {
        headers.push((
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ));
    }

    let tls = if args.insecure {
        TlsChoice::Insecure
    } else if let Some(ca) = &args.cacert {
        TlsChoice::CaFile(ca.clone())
    } else {
        TlsChoice::WebpkiRoots
    };
    let connect_timeout = match args.connect_timeout {
        None => ConnectTimeout::Default,
        Some(d) if d.is_zero() => ConnectTimeout::Unlimited,
        Some(d) => ConnectTimeout::Limit(d),
    };

    let resume = match args.continue_at.as_deref() {
        None => None,
        Some("-") => Some(Resume::FromFile),
        Some(n) => Some(Resume::At(n.parse().map_err(|_| {
            PlanError::Usage(format!(
                "-C/--continue-at takes '-' or a byte offset, not {n:?}"
            ))
        })?)),
    };
    if resume.is_some() && args.dump.is_some() {
        return Err(PlanError::Usage(
            "-C/--continue-at cannot be combined with --dump".into(),
        ));
    }
    let write_out = match args.write_out.as_deref() {
        Some(f) => Some(match f.strip_prefix('@') {
            Some(file) => String::from_utf8_lossy(&read(file).map_err(|e| {
                PlanError::Read(format!("cannot read -w format from {file:?}: {e}"))
            })?)
            .into_owned(),
            None => f.to_string(),
        }),
        None => None,
    };
    let auth = match &args.user {
        None => None,
        Some(u) => {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let choice = if args.anyauth {
                AuthChoice::Any
            } else if args.digest {
                AuthChoice::Digest
            } else {
                AuthChoice::Basic
            };
            Some(AuthPlan {
                user: user.to_string(),
                password: password.to_string(),
                choice,
            })
        }
    };
    let follow = args.location.then(|| match args.max_redirs {
        Some(n) if n < 0 => u32::MAX,
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        None => DEFAULT_MAX_REDIRS,
    });
    let parallel = if args.parallel {
        args.parallel_max.map_or(DEFAULT_PARALLEL_MAX, usize::from)
    } else {
        1
    };

    Ok(Plan {
        method,
        url: normalize_url(args.urls.first().map_or("", String::as_str)),
        headers,
        user_agent,
        body,
        tls,
        connect_timeout,
        max_time: args.max_time.filter(|d| !d.is_zero()),
        chain: ChainPlan {
            follow,
            auth,
            compressed: args.compressed,
            cookie_files,
            cookie_jar: args.cookie_jar.clone(),
            proxy: args.proxy.clone(),
            noproxy: args.noproxy.clone(),
            parallel,
        },
        output: OutputOptions {
            file: args.output.first().cloned(),
            include_head: args.include || args.head,
            head_only: args.head,
            dump_json: args.dump == Some(DumpFormat::Json),
            fail_on_http_error: args.fail,
            verbose: args.verbose,
            max_filesize: args.max_filesize,
            resume,
            etag_save: args.etag_save.clone(),
            write_out,
            progress: !(args.silent
                || args.verbose
                || args.no_progress_meter
                || args.dump.is_some()
                || args.head),
        },
    })
}

/// Redirects followed with `-L` when `--max-redirs` is not given (curl's default).
pub const DEFAULT_MAX_REDIRS: u32 = 50;

/// Transfers in flight with `-Z` when `--parallel-max` is not given (curl's default).
pub const DEFAULT_PARALLEL_MAX: usize = 50;

/// Parses one `-F` argument: `name=value`, `name=@FILE[;type=T][;filename=N]` or
/// `name=<FILE`.
pub fn parse_form(
    arg: &str,
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<FormField, PlanError> {
    let (name, content) = arg
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| PlanError::Usage(format!("invalid -F {arg:?}: expected 'name=value'")))?;
    let value = if let Some(spec) = content.strip_prefix('@') {
        let mut parts = spec.split(';');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(PlanError::Usage(format!(
                "invalid -F {arg:?}: no file name"
            )));
        }
        let (mut content_type, mut filename) = (None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("type", t)) => content_type = Some(t.to_string()),
                Some(("filename", f)) => filename = Some(f.trim_matches('"').to_string()),
                _ => {
                    return Err(PlanError::Usage(format!(
                        "invalid -F {arg:?}: unknown parameter {p:?}"
                    )));
                }
            }
        }
        FormValue::File {
            path: PathBuf::from(path),
            content_type,
            filename,
        }
    } else if let Some(file) = content.strip_prefix('<') {
        let bytes = read(file)
            .map_err(|e| PlanError::Read(format!("cannot read form data from {file:?}: {e}")))?;
        FormValue::Text(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        FormValue::Text(content.to_string())
    };
    Ok(FormField {
        name: name.to_string(),
        value,
    })
}

/// The request body from the data options: one streamed `--data-binary @FILE`, or all of them
/// read and joined with `&`.
fn body_source(
    data: &[super::args::DataArg],
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<BodySource, PlanError> {
    if let [only] = data
        && only.kind == DataKind::Binary
        && let Some(file) = only.value.strip_prefix('@')
    {
        return Ok(if file == "-" {
            BodySource::Stdin
        } else {
            BodySource::File(PathBuf::from(file))
        });
    }
    if data.is_empty() {
        return Ok(BodySource::None);
    }
    let mut out = Vec::new();
    for (i, d) in data.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        let file = match d.kind {
            DataKind::Raw => None,
            DataKind::Ascii | DataKind::Binary => d.value.strip_prefix('@'),
        };
        match file {
            None => out.extend_from_slice(d.value.as_bytes()),
            Some(name) => {
                let bytes = read(name)
                    .map_err(|e| PlanError::Read(format!("cannot read data from {name:?}: {e}")))?;
                if d.kind == DataKind::Ascii {
                    out.extend(bytes.into_iter().filter(|&b| b != b'\r' && b != b'\n'));
                } else {
                    out.extend_from_slice(&bytes);
                }
            }
        }
    }
    Ok(BodySource::Bytes(out))
}

#[cfg(test)]
mod tests {
    use super::super::args;
    use super::*;

    fn files(name: &str) -> io::Result<Vec<u8>> {
        match name {
            "form.txt" => Ok(b"a=1\r\nb=2\n".to_vec()),
            "-" => Ok(b"from\nstdin".to_vec()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }

    fn plan(argv: &[&str]) -> Result<Plan, PlanError> {
        let args = args::parse(std::iter::once("weft").chain(argv.iter().copied())).unwrap();
        build(&args, &mut files)
    }

    fn header<'a>(p: &'a Plan, name: &str) -> Vec<&'a str> {
        p.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn plain_get() {
        let p = plan(&["http://127.0.0.1:8080/x"]).unwrap();
        assert_eq!(p.method, "GET");
        assert_eq!(p.url, "http://127.0.0.1:8080/x");
        assert_eq!(p.headers, vec![("Accept".into(), "*/*".into())]);
        assert_eq!(p.body, BodySource::None);
        assert_eq!(p.user_agent.as_deref(), Some(DEFAULT_USER_AGENT));
        assert_eq!(p.tls, TlsChoice::WebpkiRoots);
        assert_eq!(p.connect_timeout, ConnectTimeout::Default);
        assert_eq!(p.max_time, None);
        assert_eq!(
            p.output,
            OutputOptions {
                progress: true,
                ..OutputOptions::default()
            }
        );
        assert_eq!(
            p.chain,
            ChainPlan {
                parallel: 1,
                ..ChainPlan::default()
            }
        );
    }

    #[test]
    fn missing_scheme_gets_http() {
        assert_eq!(
            plan(&["127.0.0.1:8080/a"]).unwrap().url,
            "http://127.0.0.1:8080/a"
        );
        assert_eq!(plan(&["localhost"]).unwrap().url, "http://localhost");
        assert_eq!(plan(&["https://h/"]).unwrap().url, "https://h/");
        assert_eq!(normalize_url("ftp://h/"), "ftp://h/");
    }

    #[test]
    fn data_sets_post_and_content_type() {
        let p = plan(&["-d", "a=1", "u"]).unwrap();
        assert_eq!(p.method, "POST");
        assert_eq!(p.body, BodySource::Bytes(b"a=1".to_vec()));
        assert_eq!(
            header(&p, "content-type"),
            vec!["application/x-www-form-urlencoded"]
        );
        assert_eq!(header(&p, "accept"), vec!["*/*"]);
    }

    #[test]
    fn data_joined_with_ampersand_and_files_stripped() {
        let p = plan(&["-d", "x=0", "-d", "@form.txt", "--data-raw", "@raw", "u"]).unwrap();
        assert_eq!(p.body, BodySource::Bytes(b"x=0&a=1b=2&@raw".to_vec()));
        let p = plan(&["-d", "@-", "u"]).unwrap();
        assert_eq!(p.body, BodySource::Bytes(b"fromstdin".to_vec()));
    }

    #[test]
    fn data_binary_streams_a_single_file_and_keeps_bytes_otherwise() {
        let p = plan(&["--data-binary", "@big.bin", "u"]).unwrap();
        assert_eq!(p.body, BodySource::File(PathBuf::from("big.bin")));
        assert_eq!(p.method, "POST");
        assert_eq!(
            header(&p, "content-type"),
            vec!["application/x-www-form-urlencoded"]
        );
        let p = plan(&["--data-binary", "@-", "u"]).unwrap();
        assert_eq!(p.body, BodySource::Stdin);
        let p = plan(&["--data-binary", "@form.txt", "-d", "z", "u"]).unwrap();
        assert_eq!(p.body, BodySource::Bytes(b"a=1\r\nb=2\n&z".to_vec()));
        let p = plan(&["--data-binary", "plain", "u"]).unwrap();
        assert_eq!(p.body, BodySource::Bytes(b"plain".to_vec()));
    }

    #[test]
    fn unreadable_data_file_is_a_read_error() {
        let e = plan(&["-d", "@missing", "u"]).unwrap_err();
        let PlanError::Read(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("missing"), "{m}");
        assert_eq!(e.into_outcome().exit_code(), 26);
    }

    #[test]
    fn explicit_method_overrides() {
        let p = plan(&["-X", "PUT", "-d", "a", "u"]).unwrap();
        assert_eq!(p.method, "PUT");
        let p = plan(&["-X", "DELETE", "u"]).unwrap();
        assert_eq!(p.method, "DELETE");
        assert_eq!(p.body, BodySource::None);
        let p = plan(&["-I", "-X", "GET", "u"]).unwrap();
        assert_eq!(p.method, "GET");
        assert!(p.output.head_only);
        assert!(matches!(plan(&["-X", "", "u"]), Err(PlanError::Usage(_))));
    }

    #[test]
    fn head_option() {
        let p = plan(&["-I", "u"]).unwrap();
        assert_eq!(p.method, "HEAD");
        assert!(p.output.head_only && p.output.include_head);
        let e = plan(&["-I", "-d", "a", "u"]).unwrap_err();
        assert!(matches!(e, PlanError::Usage(_)));
        assert_eq!(e.into_outcome().exit_code(), 2);
    }

    #[test]
    fn user_content_type_and_accept_win() {
        let p = plan(&[
            "-H",
            "content-type: application/json",
            "-H",
            "Accept: text/plain",
            "-d",
            "{}",
            "u",
        ])
        .unwrap();
        assert_eq!(
            p.headers,
            vec![
                ("content-type".into(), "application/json".into()),
                ("Accept".into(), "text/plain".into()),
            ]
        );
    }

    #[test]
    fn header_parsing() {
        assert_eq!(
            parse_header("X-A:  b c ").unwrap(),
            HeaderArg::Set("X-A".into(), "b c".into())
        );
        assert_eq!(
            parse_header("X-A:b:c").unwrap(),
            HeaderArg::Set("X-A".into(), "b:c".into())
        );
        assert_eq!(
            parse_header("X-A:").unwrap(),
            HeaderArg::Remove("X-A".into())
        );
        assert_eq!(
            parse_header("X-A:   ").unwrap(),
            HeaderArg::Remove("X-A".into())
        );
        assert_eq!(
            parse_header("X-A;").unwrap(),
            HeaderArg::Set("X-A".into(), "".into())
        );
        for bad in ["NoColon", "", ": v", "Bad Name: v", "a;b;", "\tX: v"] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_without_colon_is_a_usage_error() {
        let e = plan(&["-H", "NoColon", "u"]).unwrap_err();
        let PlanError::Usage(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("NoColon"));
        assert_eq!(e.into_outcome().exit_code(), 2);
    }

    #[test]
    fn removing_defaults() {
        let p = plan(&[
            "-H",
            "Accept:",
            "-H",
            "User-Agent:",
            "-H",
            "X-Gone:",
            "-d",
            "a",
            "u",
        ])
        .unwrap();
        assert_eq!(
            p.headers,
            vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into()
            )]
        );
        assert_eq!(p.user_agent, None);
        let p = plan(&["-H", "Content-Type:", "-d", "a", "u"]).unwrap();
        assert_eq!(header(&p, "content-type"), Vec::<&str>::new());
    }

    #[test]
    fn user_agent_choice() {
        assert_eq!(
            plan(&["-A", "me/1", "u"]).unwrap().user_agent.as_deref(),
            Some("me/1")
        );
        let p = plan(&["-H", "User-Agent: hdr", "u"]).unwrap();
        assert_eq!(p.user_agent, None);
        assert_eq!(header(&p, "user-agent"), vec!["hdr"]);
    }

    #[test]
    fn tls_and_timeouts() {
        let p = plan(&["--cacert", "ca.pem", "u"]).unwrap();
        assert_eq!(p.tls, TlsChoice::CaFile("ca.pem".into()));
        let p = plan(&["-k", "--cacert", "ca.pem", "u"]).unwrap();
        assert_eq!(p.tls, TlsChoice::Insecure);
        let p = plan(&["--connect-timeout", "0.25", "-m", "3", "u"]).unwrap();
        assert_eq!(
            p.connect_timeout,
            ConnectTimeout::Limit(Duration::from_millis(250))
        );
        assert_eq!(p.max_time, Some(Duration::from_secs(3)));
        let p = plan(&["--connect-timeout", "0", "-m", "0", "u"]).unwrap();
        assert_eq!(p.connect_timeout, ConnectTimeout::Unlimited);
        assert_eq!(p.max_time, None);
    }

    #[test]
    fn output_options() {
        let p = plan(&["-i", "-o", "f", "-f", "-v", "--max-filesize", "9", "u"]).unwrap();
        assert_eq!(
            p.output,
            OutputOptions {
                file: Some("f".into()),
                include_head: true,
                head_only: false,
                dump_json: false,
                fail_on_http_error: true,
                verbose: true,
                max_filesize: Some(9),
                resume: None,
                etag_save: None,
                write_out: None,
                progress: false,
            }
        );
        assert!(plan(&["--dump", "json", "u"]).unwrap().output.dump_json);
    }

    fn plans(argv: &[&str]) -> Result<Vec<Plan>, PlanError> {
        let args = args::parse(std::iter::once("weft").chain(argv.iter().copied())).unwrap();
        build_all(&args, &mut files)
    }

    fn usage(r: Result<Vec<Plan>, PlanError>) -> String {
        match r {
            Err(PlanError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn one_plan_per_url_with_paired_outputs() {
        let ps = plans(&["-o", "a.out", "h/a", "http://h/dir/b.txt", "--url", "h/c"]).unwrap();
        let got: Vec<_> = ps
            .iter()
            .map(|p| (p.url.as_str(), p.output.file.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("http://h/a", Some(PathBuf::from("a.out"))),
                ("http://h/dir/b.txt", None),
                ("http://h/c", None),
            ]
        );
        let ps = plans(&[
            "-O",
            "--output-dir",
            "d",
            "-o",
            "/abs",
            "h/x",
            "h/dir/b.txt",
        ])
        .unwrap();
        assert_eq!(ps[0].output.file, Some(PathBuf::from("/abs")));
        assert_eq!(ps[1].output.file, Some(PathBuf::from("d/b.txt")));
        assert!(usage(plans(&["-O", "http://h/"])).contains("no file name"));
        assert!(usage(plans(&["-O", "http://h/a/.."])).contains("no file name"));
        assert!(usage(plans(&["-o", "a", "-o", "b", "h/1"])).contains("2 -o options"));
        assert!(usage(plans(&[])).contains("no URL"));
        assert!(usage(plans(&["--data-binary", "@-", "h/1", "h/2"])).contains("one URL"));
    }

    #[test]
    fn remote_names_stay_in_the_directory() {
        assert_eq!(
            remote_name("http://h/a/b.tar.gz?x=1").as_deref(),
            Some("b.tar.gz")
        );
        assert_eq!(remote_name("http://h/a%2Fb").as_deref(), Some("a%2Fb"));
        for none in ["http://h", "http://h/", "http://h/x/", "http://h/.."] {
            assert_eq!(remote_name(none), None, "{none}");
        }
    }

    #[test]
    fn form_fields() {
        let p = plan(&[
            "-F",
            "a=1",
            "-F",
            "f=@up.bin;type=x/y;filename=n",
            "-F",
            "t=<form.txt",
            "u",
        ])
        .unwrap();
        assert_eq!(p.method, "POST");
        assert!(
            header(&p, "content-type").is_empty(),
            "set with the boundary later"
        );
        let BodySource::Form(fields) = &p.body else {
            panic!("{:?}", p.body)
        };
        assert_eq!(fields[0].value, FormValue::Text("1".into()));
        assert_eq!(
            fields[1].value,
            FormValue::File {
                path: "up.bin".into(),
                content_type: Some("x/y".into()),
                filename: Some("n".into()),
            }
        );
        assert_eq!(fields[2].value, FormValue::Text("a=1\r\nb=2\n".into()));
        for bad in ["noequals", "=v", "f=@", "f=@x;color=red"] {
            assert!(
                matches!(plan(&["-F", bad, "u"]), Err(PlanError::Usage(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            plan(&["-F", "t=<missing", "u"]),
            Err(PlanError::Read(_))
        ));
        assert!(matches!(
            plan(&["-F", "a=1", "-d", "x", "u"]),
            Err(PlanError::Usage(_))
        ));
        assert!(matches!(
            plan(&["-F", "a=1", "-I", "u"]),
            Err(PlanError::Usage(_))
        ));
    }

    #[test]
    fn chain_options() {
        let p = plan(&[
            "-L",
            "-u",
            "al:pw:x",
            "--digest",
            "--compressed",
            "-x",
            "http://p:3128",
            "u",
        ])
        .unwrap();
        assert_eq!(p.chain.follow, Some(DEFAULT_MAX_REDIRS));
        let auth = p.chain.auth.as_ref().unwrap();
        assert_eq!((auth.user.as_str(), auth.password.as_str()), ("al", "pw:x"));
        assert_eq!(auth.choice, AuthChoice::Digest);
        assert!(
            !format!("{auth:?}").contains("pw"),
            "Debug hides the password"
        );
        assert!(p.chain.compressed);
        assert_eq!(p.chain.proxy.as_deref(), Some("http://p:3128"));
        assert_eq!(
            plan(&["--max-redirs", "3", "u"]).unwrap().chain.follow,
            None
        );
        assert_eq!(
            plan(&["-L", "--max-redirs", "3", "u"])
                .unwrap()
                .chain
                .follow,
            Some(3)
        );
        assert_eq!(
            plan(&["-L", "--max-redirs", "-1", "u"])
                .unwrap()
                .chain
                .follow,
            Some(u32::MAX)
        );
        assert_eq!(
            plan(&["-u", "x", "--anyauth", "u"])
                .unwrap()
                .chain
                .auth
                .unwrap()
                .choice,
            AuthChoice::Any
        );
        assert_eq!(
            plan(&["-Z", "u"]).unwrap().chain.parallel,
            DEFAULT_PARALLEL_MAX
        );
        assert_eq!(
            plan(&["-Z", "--parallel-max", "3", "u"])
                .unwrap()
                .chain
                .parallel,
            3
        );
        assert_eq!(
            plan(&["--parallel-max", "3", "u"]).unwrap().chain.parallel,
            1
        );
    }

    #[test]
    fn cookies_etags_resume_and_write_out() {
        let p = plan(&["-b", "a=1; b=2", "-b", "jar.txt", "-c", "out.txt", "u"]).unwrap();
        assert_eq!(header(&p, "cookie"), vec!["a=1; b=2"]);
        assert_eq!(p.chain.cookie_files, vec![PathBuf::from("jar.txt")]);
        assert_eq!(p.chain.cookie_jar, Some(PathBuf::from("out.txt")));

        let mut etag_file = |name: &str| match name {
            "e" => Ok(b"\"abc\"\n".to_vec()),
            "empty" => Ok(Vec::new()),
            "fmt" => Ok(b"%{http_code}".to_vec()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "none")),
        };
        let args =
            |v: &[&str]| args::parse(std::iter::once("weft").chain(v.iter().copied())).unwrap();
        let p = build(
            &args(&["--etag-compare", "e", "-w", "@fmt", "u"]),
            &mut etag_file,
        )
        .unwrap();
        assert_eq!(header(&p, "if-none-match"), vec!["\"abc\""]);
        assert_eq!(p.output.write_out.as_deref(), Some("%{http_code}"));
        for quiet in ["empty", "missing"] {
            let p = build(&args(&["--etag-compare", quiet, "u"]), &mut etag_file).unwrap();
            assert!(header(&p, "if-none-match").is_empty(), "{quiet}");
        }
        assert!(matches!(
            build(&args(&["-w", "@missing", "u"]), &mut etag_file),
            Err(PlanError::Read(_))
        ));

        assert_eq!(
            plan(&["-C", "-", "-o", "f", "u"]).unwrap().output.resume,
            Some(Resume::FromFile)
        );
        assert_eq!(
            plan(&["-C", "12", "-o", "f", "u"]).unwrap().output.resume,
            Some(Resume::At(12))
        );
        assert!(matches!(
            plan(&["-C", "x", "-o", "f", "u"]),
            Err(PlanError::Usage(_))
        ));
        assert!(usage(plans(&["-C", "-", "u"])).contains("output file"));
        assert!(matches!(
            plan(&["-C", "-", "-o", "f", "--dump", "json", "u"]),
            Err(PlanError::Usage(_))
        ));
    }
}
