//! Command-line options (clap derive), with the `--help` text and the exit-code table.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use weft::client::{ConnectTo, ResolveOverride};

pub use super::curl_args::CurlFlags;

/// The exit-code table shown after `--help`; kept in step with [`super::exit::exit_code`].
pub const EXIT_CODES_HELP: &str = "\
Data options (-d, --data-raw, --data-binary) are sent in the order given, joined with '&'.
A header given as 'Name:' (empty value) is not sent and suppresses weft's own default for
Accept, User-Agent and Content-Type; it cannot remove Host, Content-Length,
Transfer-Encoding or Connection, which the library manages. 'Name;' sends an empty value.

With several URLs, each is one transfer (one after another, or in parallel with -Z) and
the exit status is that of the first URL that failed; each failure prints its own line.

Exit status (modelled on curl):
   0  success (including a body that ended with the connection: possible data loss)
   1  other failure (unsupported URL scheme, cancelled, internal error)
   2  usage error (bad option, header without a colon, invalid request header or method)
   3  invalid URL
   6  could not resolve host
   7  failed to connect to host
   8  weird server reply (HTTP protocol violation)
  18  partial body: the connection closed before the whole body arrived
  22  HTTP status >= 400 with -f/--fail or --fail-with-body
  23  write error (output file, -D file or stdout; a closed pipe is reported silently;
      -O on a URL without a file name)
  26  read error (a -d/--data-binary/--json/--data-urlencode @FILE, the -T file or the
      request body could not be read)
  28  timeout (--connect-timeout, -m/--max-time)
  33  -C: the server's range does not continue the output file
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
    /// `--json`: like `--data-binary`, joined to the data before it without `&`.
    Json,
    /// `--data-urlencode`: `[name]=content` or `[name]@FILE`, the content URL-encoded.
    UrlEncode,
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
    /// URLs to fetch, one transfer each; without a scheme, http:// is assumed.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// A URL to fetch (repeatable; the form used in -K files: `url = "..."`).
    #[arg(long = "url", value_name = "URL")]
    pub url_opts: Vec<String>,

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

    /// Write the output to FILE instead of stdout (repeatable: the Nth -o is for the Nth URL).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Vec<PathBuf>,

    /// Write each output to a local file named like the remote file (the URL path's last
    /// segment), for every URL that has no -o.
    #[arg(short = 'O', long = "remote-name")]
    pub remote_name: bool,

    /// Directory for the files of -o and -O (relative names only).
    #[arg(long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long = "location")]
    pub location: bool,

    /// With -L, follow at most NUM redirects (default 50, as curl; -1 for no limit).
    #[arg(long = "max-redirs", value_name = "NUM", allow_negative_numbers = true)]
    pub max_redirs: Option<i64>,

    /// Credentials 'user:password' for server authentication (Basic unless --digest or
    /// --anyauth). Sent to the URL's own origin only, never to a redirect's other host.
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD")]
    pub user: Option<String>,

    /// With -u, use Basic authentication, sent with the first request (the default).
    #[arg(long = "basic")]
    pub basic: bool,

    /// With -u, use Digest authentication (RFC 7616, MD5 or SHA-256), answering the
    /// server's 401 challenge.
    #[arg(long = "digest")]
    pub digest: bool,

    /// With -u, answer a 401 challenge with the strongest scheme it offers.
    #[arg(long = "anyauth")]
    pub anyauth: bool,

    /// Ask for a compressed response (gzip, deflate, br, zstd) and decompress it.
    #[arg(long = "compressed")]
    pub compressed: bool,

    /// Multipart form field (repeatable): 'name=value', 'name=@FILE' (a file upload,
    /// streamed; ';type=MIME' and ';filename=NAME' may follow) or 'name=<FILE' (the file's
    /// content as a text field). Sends a multipart/form-data POST.
    #[arg(short = 'F', long = "form", value_name = "NAME=CONTENT")]
    pub form: Vec<String>,

    /// Send cookies (repeatable): 'name=value; other=value' as they are, or read a cookie
    /// file (Netscape format as curl writes it, or weft's JSON) and turn on the cookie engine.
    #[arg(short = 'b', long = "cookie", value_name = "DATA|FILE")]
    pub cookie: Vec<String>,

    /// Write all cookies to FILE (Netscape format) when the transfers end, and turn on the
    /// cookie engine.
    #[arg(short = 'c', long = "cookie-jar", value_name = "FILE")]
    pub cookie_jar: Option<PathBuf>,

    /// Resume a transfer: '-' continues from the size of the output file, a number from
    /// that offset. Needs -o or -O. A server that ignores the range gets the file rewritten.
    #[arg(
        short = 'C',
        long = "continue-at",
        value_name = "OFFSET|-",
        allow_hyphen_values = true
    )]
    pub continue_at: Option<String>,

    /// Save the response's ETag to FILE (an empty file when there is none).
    #[arg(long = "etag-save", value_name = "FILE")]
    pub etag_save: Option<PathBuf>,

    /// Send the ETag saved in FILE as If-None-Match (nothing when FILE is missing or empty).
    #[arg(long = "etag-compare", value_name = "FILE")]
    pub etag_compare: Option<PathBuf>,

    /// After each transfer, write FORMAT to stdout with %{variable}s replaced: http_code,
    /// response_code, http_version, method, url, url_effective, num_redirects, num_connects,
    /// content_type, filename_effective, size_download, size_header, size_request,
    /// speed_download, time_queue, time_namelookup, time_connect, time_appconnect,
    /// time_pretransfer, time_starttransfer, time_redirect, time_total, exitcode, errormsg;
    /// %{json} (all of them as one JSON object), %{stderr} and %{stdout} (switch the
    /// destination), %% and \n, \r, \t. '@FILE' reads FORMAT from FILE.
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub write_out: Option<String>,

    /// Use this HTTP proxy ('http://[user:password@]host:port'): http URLs go in absolute
    /// form, https URLs through a CONNECT tunnel. Without it, http_proxy, HTTPS_PROXY,
    /// ALL_PROXY and NO_PROXY are read from the environment. 'socks5://' (names resolved
    /// here) and 'socks5h://' (names resolved by the proxy) URLs give a SOCKS5 proxy, with
    /// the user name and password sent as RFC 1929 credentials; the SOCKS port defaults to
    /// 1080.
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub proxy: Option<String>,

    /// Use this SOCKS5 proxy ('[user:password@]host[:port]'), resolving host names here;
    /// same as -x socks5://HOST:PORT, which it overrides.
    #[arg(long = "socks5", value_name = "HOST:PORT")]
    pub socks5: Option<String>,

    /// Use this SOCKS5 proxy, letting it resolve host names; same as -x
    /// socks5h://HOST:PORT; it overrides -x and --socks5.
    #[arg(long = "socks5-hostname", value_name = "HOST:PORT")]
    pub socks5_hostname: Option<String>,

    /// Hosts to reach without the proxy (comma-separated; '*' for all).
    #[arg(long = "noproxy", value_name = "LIST")]
    pub noproxy: Option<String>,

    /// Connect to this Unix domain socket instead of the URL's host and port; the URL still
    /// gives the Host field and the path (curl's --unix-socket, e.g. for the Docker API). No
    /// proxy applies.
    #[arg(long = "unix-socket", value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,

    /// Run the transfers in parallel (at most --parallel-max at a time) instead of one
    /// after another.
    #[arg(short = 'Z', long = "parallel")]
    pub parallel: bool,

    /// With -Z, the most transfers in flight at once (default 50).
    #[arg(long = "parallel-max", value_name = "NUM", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub parallel_max: Option<u16>,

    /// Read options and URLs from FILE ('-' for stdin), curl's config format: one option a
    /// line ('--silent', 'max-time = 5', 'url = "http://..."'); a line holding only a URL
    /// adds that URL; '#' starts a comment.
    #[arg(short = 'K', long = "config", value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Never show the progress bar (it shows on a terminal, for bodies written to a file or a
    /// pipe, unless -s or -v).
    #[arg(long = "no-progress-meter")]
    pub no_progress_meter: bool,

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

    /// Retry a transient failure (a timeout, a failed name lookup, a 408, 429, 500, 502, 503
    /// or 504 response) up to NUM times, waiting 1 s, then twice as long each time (at most
    /// 10 minutes), or what Retry-After asks; -m then limits each attempt.
    #[arg(long = "retry", value_name = "NUM")]
    pub retry: Option<u32>,

    /// With --retry: wait this many seconds before each retry instead of backing off (0:
    /// back off).
    #[arg(long = "retry-delay", value_name = "SECONDS", value_parser = parse_seconds)]
    pub retry_delay: Option<Duration>,

    /// With --retry: start no retry, nor wait for one, past this many seconds from the first
    /// attempt (0: no limit).
    #[arg(long = "retry-max-time", value_name = "SECONDS", value_parser = parse_seconds)]
    pub retry_max_time: Option<Duration>,

    /// With --retry: also retry on a refused connection.
    #[arg(long = "retry-connrefused")]
    pub retry_connrefused: bool,

    /// With --retry: retry on any error, not only the transient ones.
    #[arg(long = "retry-all-errors")]
    pub retry_all_errors: bool,

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

    /// Connect to IPv4 addresses only (the last of -4 and -6 wins).
    #[arg(short = '4', long = "ipv4", overrides_with = "ipv6")]
    pub ipv4: bool,

    /// Connect to IPv6 addresses only (the last of -4 and -6 wins).
    #[arg(short = '6', long = "ipv6", overrides_with = "ipv4")]
    pub ipv6: bool,

    /// Happy Eyeballs: how long one address's connect may go on before the next address
    /// (the other family first) is tried beside it, in milliseconds (default 250).
    #[arg(long = "happy-eyeballs-timeout-ms", value_name = "MILLISECONDS")]
    pub happy_eyeballs_timeout_ms: Option<u64>,

    /// Connect to ADDR (several are raced) for HOST:PORT instead of resolving HOST; the URL,
    /// Host and the TLS name are unchanged (repeatable; the first match applies).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR[,ADDR]...")]
    pub resolve: Vec<ResolveOverride>,

    /// Connect to HOST2:PORT2 for requests to HOST1:PORT1 (an empty part matches any, or
    /// keeps the URL's); Host and the TLS name stay HOST1 (repeatable; the first match applies).
    #[arg(long = "connect-to", value_name = "HOST1:PORT1:HOST2:PORT2")]
    pub connect_to: Vec<ConnectTo>,

    /// All data options in command-line order (filled in by [`parse`]).
    #[arg(skip)]
    pub data_args: Vec<DataArg>,

    /// curl's everyday transfer options (`--json`, `-G`, `-D`, `-r`, `-T`, `-e`...).
    #[command(flatten)]
    pub curl: CurlFlags,

    /// The option groups after each `--next`, in order (filled in by [`parse`]).
    #[arg(skip)]
    pub next: Vec<Args>,
}

impl Args {
    /// The proxy to use: `--socks5-hostname`, else `--socks5`, else `-x` (a SOCKS option
    /// without a scheme gets `socks5h://` or `socks5://`).
    pub fn proxy_url(&self) -> Option<String> {
        let socks = |value: &String, scheme: &str| {
            if value.contains("://") {
                value.clone()
            } else {
                format!("{scheme}://{value}")
            }
        };
        (self.socks5_hostname.as_ref().map(|v| socks(v, "socks5h")))
            .or_else(|| self.socks5.as_ref().map(|v| socks(v, "socks5")))
            .or_else(|| self.proxy.clone())
    }
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
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let argv = expand_config(argv, &mut |path| {
        if path == Path::new("-") {
            io::read_to_string(io::stdin().lock())
        } else {
            std::fs::read_to_string(path)
        }
    })
    .map_err(|m| Args::command().error(clap::error::ErrorKind::InvalidValue, m))?;
    let mut groups = Vec::new();
    for group in super::curl_args::split_groups(argv) {
        let matches = Args::command().try_get_matches_from(group)?;
        let mut args = Args::from_arg_matches(&matches)?;
        args.data_args = ordered_data(&matches);
        args.urls.append(&mut args.url_opts);
        groups.push(args);
    }
    // curl's global options, given in any group, apply to every group.
    let verbose = groups.iter().any(|g| g.verbose);
    let silent = groups.iter().any(|g| g.silent);
    let show_error = groups.iter().any(|g| g.show_error);
    let parallel = groups.iter().any(|g| g.parallel);
    let no_progress_meter = groups.iter().any(|g| g.no_progress_meter);
    let parallel_max = groups.iter().find_map(|g| g.parallel_max);
    for g in &mut groups {
        (g.verbose, g.silent, g.show_error) = (verbose, silent, show_error);
        (g.parallel, g.parallel_max) = (parallel, parallel_max);
        g.no_progress_meter = no_progress_meter;
    }
    let mut groups = groups.into_iter();
    let mut args = groups.next().unwrap_or_default();
    args.next = groups.collect();
    Ok(args)
}

/// Replaces every `-K FILE` / `--config FILE` in `argv` with the options the file holds
/// (curl's config format, see [`config_tokens`]); `read` loads a file (`-`: stdin).
pub fn expand_config(
    argv: Vec<OsString>,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        let file = if text == "-K" || text == "--config" {
            match it.next() {
                Some(f) => PathBuf::from(f),
                None => return Err(format!("{text} needs a FILE")),
            }
        } else if let Some(f) = text.strip_prefix("--config=") {
            PathBuf::from(f)
        } else if let Some(f) = text.strip_prefix("-K").filter(|f| !f.is_empty()) {
            PathBuf::from(f)
        } else {
            out.push(arg);
            continue;
        };
        let content =
            read(&file).map_err(|e| format!("cannot read config file {}: {e}", file.display()))?;
        let tokens =
            config_tokens(&content).map_err(|e| format!("config file {}: {e}", file.display()))?;
        out.extend(tokens.into_iter().map(OsString::from));
    }
    Ok(out)
}

/// Turns a config file into command-line words. Each line is an option, with or without its
/// leading dashes, then an optional value after whitespace, `=` or `:`; a value in double
/// quotes may hold spaces and the escapes `\\`, `\"`, `\t`, `\n`, `\r`. A line that is
/// only a URL (`scheme://...`) adds that URL. Blank lines and lines starting with `#` are
/// skipped.
pub fn config_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with('-') && line.contains("://") && !line.contains(char::is_whitespace) {
            words.push("--url".to_string());
            words.push(line.to_string());
            continue;
        }
        let end = line
            .find(|c: char| c.is_whitespace() || (c == '=' || c == ':'))
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(end);
        let rest = rest.trim_start();
        let rest = rest.strip_prefix(['=', ':']).map_or(rest, str::trim_start);
        words.push(if name.starts_with('-') {
            name.to_string()
        } else {
            format!("--{name}")
        });
        if rest.is_empty() {
            continue;
        }
        let value = match rest.strip_prefix('"') {
            Some(quoted) => unquote(quoted)
                .ok_or_else(|| format!("line {}: unterminated quoted value", n + 1))?,
            None => rest.split_whitespace().next().unwrap_or("").to_string(),
        };
        words.push(value);
    }
    Ok(words)
}

/// The text of a double-quoted value (after its opening quote) up to the closing quote.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(match chars.next()? {
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                other => other,
            }),
            c => out.push(c),
        }
    }
    None
}

/// The data options in the order they were given, whichever option each came from.
fn ordered_data(matches: &ArgMatches) -> Vec<DataArg> {
    let mut all: Vec<(usize, DataArg)> = Vec::new();
    for (id, kind) in [
        ("data", DataKind::Ascii),
        ("data_binary", DataKind::Binary),
        ("data_raw", DataKind::Raw),
        ("json", DataKind::Json),
        ("data_urlencode", DataKind::UrlEncode),
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
#[path = "args_tests.rs"]
mod tests;
