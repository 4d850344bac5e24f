//! Command-line options (clap derive), with the `--help` text and the exit-code table.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

/// The exit-code table shown after `--help`; kept in step with [`super::exit::exit_code`].
pub const EXIT_CODES_HELP: &str = "\
Data options (-d, --data-raw, --data-binary) are sent in the order given, joined with '&'.
A header given as 'Name:' (empty value) is not sent and suppresses weft's own default for
Accept, User-Agent and Content-Type; it cannot remove Host, Content-Length,
Transfer-Encoding or Connection, which the library manages. 'Name;' sends an empty value.

Exit status (modelled on curl):
   0  success (including a body that ended with the connection: possible data loss)
   1  other failure (unsupported URL scheme, cancelled, internal error)
   2  usage error (bad option, header without a colon, invalid request header or method)
   3  invalid URL
   6  could not resolve host
   7  failed to connect to host
   8  weird server reply (HTTP protocol violation)
  18  partial body: the connection closed before the whole body arrived
  22  HTTP status >= 400 with -f/--fail
  23  write error (output file or stdout; a closed pipe is reported silently)
  26  read error (a -d/--data-binary @FILE or the request body could not be read)
  28  timeout (--connect-timeout, -m/--max-time)
  35  TLS handshake or certificate failure
  47  too many redirects
  55  failed sending the request
  56  failure receiving network data
  61  the response body could not be decoded (bad content coding)
  63  --max-filesize exceeded, or a decoded body over its cap
  67  authentication failed
  77  problem reading the --cacert file
  97  proxy failure";

/// Output format of `--dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One JSON object describing the whole exchange (status, headers, trailers, base64 body,
    /// completeness, keep-alive, error).
    Json,
}

/// Which data option a piece of request body came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `-d/--data`: `@FILE` reads the file and strips CR and LF.
    Ascii,
    /// `--data-binary`: `@FILE` reads the file as it is.
    Binary,
    /// `--data-raw`: no `@` interpretation.
    Raw,
}

/// One data option, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataArg {
    /// The option used.
    pub kind: DataKind,
    /// Its argument as given.
    pub value: String,
}

/// `weft`: fetch a URL and write the body to stdout, like curl.
#[derive(Debug, Parser, Default)]
#[command(
    name = "weft",
    version,
    about = "Fetch a URL over HTTP/1.1 and write the response body to stdout, like curl.",
    after_help = EXIT_CODES_HELP
)]
pub struct Args {
    /// URL to fetch; without a scheme, http:// is assumed.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Request method (default GET; POST with data; HEAD with -I).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub request: Option<String>,

    /// Extra header 'Name: value' (repeatable). 'Name:' drops it, 'Name;' sends it empty.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub header: Vec<String>,

    /// POST data (repeatable, joined with '&'); '@FILE' reads FILE ('-' for stdin) with CR and
    /// LF stripped. Sets Content-Type: application/x-www-form-urlencoded unless given.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Vec<String>,

    /// Like -d, but '@FILE' is sent as it is (streamed from the file when it is the only data).
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Vec<String>,

    /// Like -d, but a leading '@' has no special meaning.
    #[arg(long = "data-raw", value_name = "DATA")]
    pub data_raw: Vec<String>,

    /// Write the status line and response headers before the body.
    #[arg(short = 'i', long = "include")]
    pub include: bool,

    /// Send a HEAD request and write only the status line and headers.
    #[arg(short = 'I', long = "head")]
    pub head: bool,

    /// Write the output to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Do not verify the server's TLS certificate.
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Verify the server against the CA certificates in this PEM file instead of the
    /// built-in roots.
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Limit on name resolution, connect and TLS handshake, in seconds (fractions allowed;
    /// 0 means no limit; default 30).
    #[arg(long = "connect-timeout", value_name = "SECONDS", value_parser = parse_seconds)]
    pub connect_timeout: Option<Duration>,

    /// Limit on the whole transfer, in seconds (fractions allowed; 0 means no limit).
    #[arg(short = 'm', long = "max-time", value_name = "SECONDS", value_parser = parse_seconds)]
    pub max_time: Option<Duration>,

    /// Silent mode: no error messages (see -S).
    #[arg(short = 's', long = "silent")]
    pub silent: bool,

    /// With -s, still print the error message on failure.
    #[arg(short = 'S', long = "show-error")]
    pub show_error: bool,

    /// Print the request ('> '), the response head ('< ') and notes ('* ') to stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Fail with exit status 22, writing no body, when the HTTP status is 400 or more.
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,

    /// Send this User-Agent instead of weft/<version>.
    #[arg(short = 'A', long = "user-agent", value_name = "NAME")]
    pub user_agent: Option<String>,

    /// Instead of the body, write one object describing the exchange: status, version,
    /// headers, trailers, body_b64, complete, keep_alive, error.
    #[arg(long = "dump", value_name = "FORMAT", value_enum)]
    pub dump: Option<DumpFormat>,

    /// Fail (exit 63) when the body is larger than BYTES.
    #[arg(long = "max-filesize", value_name = "BYTES")]
    pub max_filesize: Option<u64>,

    /// All data options in command-line order (filled in by [`parse`]).
    #[arg(skip)]
    pub data_args: Vec<DataArg>,
}

/// Parses a number of seconds (`1`, `2.5`); zero ("no limit") is kept as `Duration::ZERO`.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses the command line (first item: the program name).
pub fn parse<I, T>(argv: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Args::command().try_get_matches_from(argv)?;
    let mut args = Args::from_arg_matches(&matches)?;
    args.data_args = ordered_data(&matches);
    Ok(args)
}

/// The data options in the order they were given, whichever option each came from.
fn ordered_data(matches: &ArgMatches) -> Vec<DataArg> {
    let mut all: Vec<(usize, DataArg)> = Vec::new();
    for (id, kind) in [
        ("data", DataKind::Ascii),
        ("data_binary", DataKind::Binary),
        ("data_raw", DataKind::Raw),
    ] {
        let (Some(values), Some(indices)) =
            (matches.get_many::<String>(id), matches.indices_of(id))
        else {
            continue;
        };
        for (value, index) in values.zip(indices) {
            all.push((
                index,
                DataArg {
                    kind,
                    value: value.clone(),
                },
            ));
        }
    }
    all.sort_by_key(|(index, _)| *index);
    all.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, clap::Error> {
        parse(std::iter::once("weft").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn data_options_keep_their_order() {
        let a = p(&[
            "-d",
            "a=1",
            "--data-binary",
            "@f",
            "--data-raw",
            "@x",
            "-d",
            "b",
            "u",
        ])
        .unwrap();
        let kinds: Vec<_> = a
            .data_args
            .iter()
            .map(|d| (d.kind, d.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (DataKind::Ascii, "a=1"),
                (DataKind::Binary, "@f"),
                (DataKind::Raw, "@x"),
                (DataKind::Ascii, "b"),
            ]
        );
    }

    #[test]
    fn seconds_are_parsed() {
        let a = p(&["--connect-timeout", "1.5", "-m", "2", "u"]).unwrap();
        assert_eq!(a.connect_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(a.max_time, Some(Duration::from_secs(2)));
        let a = p(&["-m", "0", "u"]).unwrap();
        assert_eq!(a.max_time, Some(Duration::ZERO));
        for bad in ["-1", "abc", "inf", "NaN"] {
            let e = p(&["-m", bad, "u"]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(p(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(p(&["--nope", "u"]).unwrap_err().exit_code(), 2);
        assert_eq!(p(&["--dump", "xml", "u"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            p(&["--max-filesize", "-3", "u"]).unwrap_err().exit_code(),
            2
        );
    }

    #[test]
    fn flags_are_parsed() {
        let a = p(&[
            "-sSvfikI",
            "-o",
            "out",
            "--cacert",
            "ca.pem",
            "--dump",
            "json",
            "-A",
            "ua",
            "--max-filesize",
            "10",
            "-H",
            "A: b",
            "-H",
            "C: d",
            "-X",
            "PUT",
            "example.test",
        ])
        .unwrap();
        assert!(a.silent && a.show_error && a.verbose && a.fail && a.include && a.insecure);
        assert!(a.head);
        assert_eq!(a.output, Some(PathBuf::from("out")));
        assert_eq!(a.cacert, Some(PathBuf::from("ca.pem")));
        assert_eq!(a.dump, Some(DumpFormat::Json));
        assert_eq!(a.user_agent.as_deref(), Some("ua"));
        assert_eq!(a.max_filesize, Some(10));
        assert_eq!(a.header, vec!["A: b", "C: d"]);
        assert_eq!(a.request.as_deref(), Some("PUT"));
        assert_eq!(a.url, "example.test");
    }

    #[test]
    fn help_documents_every_option() {
        let help = Args::command().render_long_help().to_string();
        for opt in [
            "--request",
            "--header",
            "--data",
            "--data-binary",
            "--data-raw",
            "--include",
            "--head",
            "--output",
            "--insecure",
            "--cacert",
            "--connect-timeout",
            "--max-time",
            "--silent",
            "--show-error",
            "--verbose",
            "--fail",
            "--user-agent",
            "--dump",
            "--max-filesize",
            "Exit status",
        ] {
            assert!(help.contains(opt), "{opt} missing from --help");
        }
    }
}
