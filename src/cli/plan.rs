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

/// Builds the plan from the options. `read` loads `@FILE` data (`-` for stdin).
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
    if args.head && !data.is_empty() {
        return Err(PlanError::Usage(
            "-I/--head cannot be combined with data options (-d, --data-binary, --data-raw)".into(),
        ));
    }
    let body = body_source(data, read)?;

    let method = match &args.request {
        Some(m) if m.is_empty() => return Err(PlanError::Usage("empty method for -X".into())),
        Some(m) => m.clone(),
        None if args.head => "HEAD".to_string(),
        None if !data.is_empty() => "POST".to_string(),
        None => "GET".to_string(),
    };

    let mut headers = Vec::new();
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

    Ok(Plan {
        method,
        url: normalize_url(&args.url),
        headers,
        user_agent,
        body,
        tls,
        connect_timeout,
        max_time: args.max_time.filter(|d| !d.is_zero()),
        output: OutputOptions {
            file: args.output.clone(),
            include_head: args.include || args.head,
            head_only: args.head,
            dump_json: args.dump == Some(DumpFormat::Json),
            fail_on_http_error: args.fail,
            verbose: args.verbose,
            max_filesize: args.max_filesize,
        },
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
        assert_eq!(p.output, OutputOptions::default());
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
            }
        );
        assert!(plan(&["--dump", "json", "u"]).unwrap().output.dump_json);
    }
}
