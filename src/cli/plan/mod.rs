//! From parsed options to a [`Plan`]: what to send and what to do with the answer.
//!
//! [`build`] applies curl's defaults (method from the options, `http://` for a URL without a
//! scheme, `Accept: */*`, a form Content-Type with data) and the usage checks that clap cannot
//! express. It reads `@FILE` data through a caller-given function so that it stays testable.
//! The parsers of single arguments (`-H`, `-F`, data options, URLs) are in `parts`.

#[cfg(test)]
mod curl_tests;
mod parts;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use weft::client::{Backoff, ConnectTo, Jitter, ResolveOverride, RetryPolicy};
use weft::reactor::IpFamily;

use super::args::{Args, DataKind, DumpFormat};
use super::exit::Outcome;
pub use parts::{
    HeaderArg, normalize_url, parse_form, parse_header, range_header, read_data_file, remote_name,
    upload_url, with_query,
};
use parts::{body_source, data_bytes};

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
    /// `--unix-socket`: every connection goes to this socket.
    pub unix_socket: Option<PathBuf>,
    /// Transfers in flight at once (1 without `-Z`).
    pub parallel: usize,
    /// `-4` / `-6`.
    pub ip_family: IpFamily,
    /// `--happy-eyeballs-timeout-ms`.
    pub happy_eyeballs_delay: Option<Duration>,
    /// `--resolve`.
    pub resolve: Vec<ResolveOverride>,
    /// `--connect-to`.
    pub connect_to: Vec<ConnectTo>,
    /// `-e ';auto'`: each redirect's Referer is the URL it came from.
    pub auto_referer: bool,
    /// `--retry N` (N > 0) and the options that go with it.
    pub retry: Option<RetryPolicy>,
    /// `-s`: no "Will retry" warnings.
    pub silent: bool,
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
    /// `--fail-with-body`: with `fail_on_http_error`, the body is still written.
    pub keep_body_on_error: bool,
    /// `-D FILE`: where every hop's response head goes (`-` for stdout).
    pub dump_header: Option<PathBuf>,
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
    /// `-G`: the data, added to each URL's query.
    pub get_query: Option<String>,
    /// `-T FILE`: the file whose name a URL ending in `/` gets (`None` for stdin).
    pub upload_name: Option<PathBuf>,
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
    /// No output file can be named (`-O` on a URL without a file name; exit 23).
    Output(String),
}

impl PlanError {
    /// The run's outcome for this error.
    pub fn into_outcome(self) -> Outcome {
        match self {
            PlanError::Usage(m) => Outcome::Usage(m),
            PlanError::Read(m) => Outcome::ReadInput(m),
            PlanError::Output(m) => Outcome::Output(m),
        }
    }
}

/// The User-Agent sent unless told otherwise (the library's default).
pub const DEFAULT_USER_AGENT: &str = concat!("weft/", env!("CARGO_PKG_VERSION"));

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
            "--data-binary @- (or -T -) can feed one URL only".into(),
        ));
    }
    let mut plans = Vec::with_capacity(args.urls.len());
    for (i, url) in args.urls.iter().enumerate() {
        let mut plan = template.clone();
        plan.url = target_url(&plan, url);
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
            // curl's words (and its exit code 23).
            PlanError::Output(format!(
                "Remote file name has no length: -O cannot name a file after {}",
                without_credentials(url)
            ))
        })?),
        None => return Ok(None),
    };
    Ok(Some(match &args.output_dir {
        Some(dir) if name.is_relative() => dir.join(name),
        _ => name,
    }))
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
    let curl = &args.curl;
    check_transfer_options(args)?;
    if args.head && !curl.get && (!data.is_empty() || !args.form.is_empty()) {
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
    let mut get_query = None;
    let body = if let Some(file) = &curl.upload_file {
        if file.as_os_str() == "-" {
            BodySource::Stdin
        } else {
            BodySource::File(file.clone())
        }
    } else if curl.get {
        // -G: the data goes into the URL; the request has no body.
        if !data.is_empty() {
            let bytes = data_bytes(data, read)?;
            get_query = Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        BodySource::None
    } else if args.form.is_empty() {
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
        None if curl.upload_file.is_some() => "PUT".to_string(),
        None if curl.get => "GET".to_string(),
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
    // --json asks for JSON back, as curl does, unless -G sends no body.
    let json = !curl.get && data.iter().any(|d| d.kind == DataKind::Json);
    if !has("accept", &user) && !is_removed("accept") {
        let accept = if json { "application/json" } else { "*/*" };
        headers.push(("Accept".to_string(), accept.to_string()));
    }
    let (referer, auto_referer) = match curl.referer.as_deref() {
        Some(r) => match r.strip_suffix(";auto") {
            Some(r) => (r, true),
            None => (r, false),
        },
        None => ("", false),
    };
    if !referer.is_empty() && !has("referer", &user) {
        headers.push(("Referer".to_string(), referer.to_string()));
    }
    if let Some(range) = &curl.range {
        headers.push(("Range".to_string(), range_header(range)?));
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
        !data.is_empty() && !curl.get && !has("content-type", &user) && !is_removed("content-type");
    headers.extend(user);
    if content_type_needed {
        let content_type = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        headers.push(("Content-Type".to_string(), content_type.to_string()));
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

    let mut plan = Plan {
        method,
        url: String::new(),
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
            proxy: args.proxy_url(),
            noproxy: args.noproxy.clone(),
            unix_socket: args.unix_socket.clone(),
            parallel,
            ip_family: if args.ipv4 {
                IpFamily::V4
            } else if args.ipv6 {
                IpFamily::V6
            } else {
                IpFamily::Any
            },
            happy_eyeballs_delay: args.happy_eyeballs_timeout_ms.map(Duration::from_millis),
            resolve: args.resolve.clone(),
            connect_to: args.connect_to.clone(),
            auto_referer,
            retry: retry_policy(args),
            silent: args.silent,
        },
        output: OutputOptions {
            file: args.output.first().cloned(),
            include_head: args.include || args.head,
            head_only: args.head,
            dump_json: args.dump == Some(DumpFormat::Json),
            fail_on_http_error: args.fail || curl.fail_with_body,
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
            keep_body_on_error: curl.fail_with_body,
            dump_header: curl.dump_header.clone(),
        },
        get_query,
        upload_name: curl.upload_file.clone().filter(|f| f.as_os_str() != "-"),
    };
    plan.url = target_url(&plan, args.urls.first().map_or("", String::as_str));
    Ok(plan)
}

/// The URL a plan fetches for the command-line `url`: with a scheme, the `-G` query, and the
/// `-T` file's name when it ends in `/`.
fn target_url(plan: &Plan, url: &str) -> String {
    let mut url = normalize_url(url);
    if let Some(file) = &plan.upload_name {
        url = upload_url(&url, file);
    }
    if let Some(query) = &plan.get_query {
        url = with_query(&url, query);
    }
    url
}

/// `url` without its user name and password, for messages.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// The usage checks of curl's transfer options (`-T`, `-G`, `--fail-with-body`).
fn check_transfer_options(args: &Args) -> Result<(), PlanError> {
    let curl = &args.curl;
    let has_data = !args.data_args.is_empty() || !args.form.is_empty();
    if curl.upload_file.is_some() && (has_data || args.head) {
        return Err(PlanError::Usage(
            "-T/--upload-file cannot be combined with -I or data options (-d, --data-*, --json, -F)"
                .into(),
        ));
    }
    if curl.get && !args.form.is_empty() {
        return Err(PlanError::Usage(
            "-G/--get cannot be combined with -F/--form".into(),
        ));
    }
    if args.continue_at.is_some() && (curl.range.is_some() || curl.upload_file.is_some()) {
        // Both would set the range; weft does not resume uploads.
        return Err(PlanError::Usage(
            "-C/--continue-at cannot be combined with -r/--range or -T/--upload-file".into(),
        ));
    }
    if curl.fail_with_body && args.fail {
        return Err(PlanError::Usage(
            "--fail-with-body and -f/--fail are mutually exclusive".into(),
        ));
    }
    Ok(())
}

/// Redirects followed with `-L` when `--max-redirs` is not given (curl's default).
pub const DEFAULT_MAX_REDIRS: u32 = 50;

/// Transfers in flight with `-Z` when `--parallel-max` is not given (curl's default).
pub const DEFAULT_PARALLEL_MAX: usize = 50;

/// The retry policy of `--retry N` and its companions, with curl's semantics: any method,
/// 1 s doubling to 10 minutes unless `--retry-delay`, `Retry-After` honoured, a refused
/// connection only with `--retry-connrefused`, `-m` limiting each attempt.
fn retry_policy(args: &Args) -> Option<RetryPolicy> {
    let max_retries = args.retry.filter(|&n| n > 0)?;
    let backoff = match args.retry_delay.filter(|d| !d.is_zero()) {
        Some(delay) => Backoff::Fixed(delay),
        None => Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            jitter: Jitter::None,
        },
    };
    Some(RetryPolicy {
        max_retries,
        all_methods: true,
        connection_refused: args.retry_connrefused,
        all_errors: args.retry_all_errors,
        backoff,
        max_retry_after: Duration::from_secs(600),
        max_total: args.retry_max_time.filter(|d| !d.is_zero()),
        attempt_timeout: args.max_time.filter(|d| !d.is_zero()),
        ..RetryPolicy::default()
    })
}
