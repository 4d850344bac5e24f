//! Request errors: which phase failed, and why.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::socks::SocksError;
use crate::proto::{ProtocolError, RequestError};
use crate::reactor::TransportError;

/// When a request failed, in Twisted's terms. The phase tells whether the server may have
/// seen (and acted on) the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing was sent: the request was refused locally, or the connection never came up.
    RequestNotSent,
    /// Sending the request failed part-way: the server may have seen part of it.
    RequestTransmissionFailed,
    /// The request was sent but no complete response head arrived.
    ResponseNeverReceived,
    /// The response head arrived, but its body failed.
    ResponseFailed,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::RequestNotSent => "request not sent",
            Phase::RequestTransmissionFailed => "request transmission failed",
            Phase::ResponseNeverReceived => "response never received",
            Phase::ResponseFailed => "response failed",
        }
    }
}

/// Which timeout expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Connecting (DNS, TCP, TLS handshake) took too long.
    Connect,
    /// The whole request (from submission to the end of the body) took too long.
    Total,
    /// The request waited too long for a free connection.
    Queue,
    /// No byte arrived (and none could be sent) for too long while the request was active.
    Read,
}

impl TimeoutKind {
    /// The limit's name, as in "total limit".
    fn name(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Total => "total",
            TimeoutKind::Queue => "queue",
            TimeoutKind::Read => "read",
        }
    }
}

/// What an expired timeout was: which limit, its value, how long the request had run, and how
/// much of the response had arrived (curl's "Operation timed out after 1001 milliseconds with 0
/// bytes received").
///
/// ```
/// use std::time::Duration;
/// use weft::client::{Timeout, TimeoutKind};
/// let t = Timeout {
///     kind: TimeoutKind::Total,
///     limit: Duration::from_millis(2000),
///     elapsed: Duration::from_millis(2001),
///     received: 512,
/// };
/// assert_eq!(
///     t.to_string(),
///     "request timed out after 2001 ms (total limit 2000 ms, 512 bytes received)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// Which limit expired.
    pub kind: TimeoutKind,
    /// The limit's value. For [`TimeoutKind::Read`], the silence allowed.
    pub limit: Duration,
    /// How long the request had run when the limit expired: since it was submitted, or, for
    /// [`TimeoutKind::Connect`], since its connection attempt began.
    pub elapsed: Duration,
    /// Response body bytes received by then (0 before the response head).
    pub received: u64,
}

impl Timeout {
    /// The cause for a request whose total `limit` ran out, counted from `started`, before a
    /// further hop (a redirect or an authentication retry) could be sent.
    pub(crate) fn total_spent(limit: Option<Duration>, started: Instant) -> Cause {
        Cause::Timeout(Timeout {
            kind: TimeoutKind::Total,
            limit: limit.unwrap_or_default(),
            elapsed: started.elapsed(),
            received: 0,
        })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TimeoutKind::Connect => "connect timed out",
            TimeoutKind::Total => "request timed out",
            TimeoutKind::Queue => "timed out waiting for a free connection",
            TimeoutKind::Read => "timed out waiting for data",
        };
        write!(
            f,
            "{what} after {} ms ({} limit {} ms, {} bytes received)",
            self.elapsed.as_millis(),
            self.kind.name(),
            self.limit.as_millis(),
            self.received
        )
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The URL could not be parsed, or has no host.
    InvalidUrl(String),
    /// The URL's scheme is neither `http` nor `https`.
    UnsupportedScheme(String),
    /// The request itself is malformed (bad method, header with CR/LF/NUL...).
    InvalidRequest(RequestError),
    /// Name resolution, connect, socket or TLS failure.
    Transport(TransportError),
    /// The server broke HTTP/1.1.
    Protocol(ProtocolError),
    /// A timeout expired: which one, and the figures.
    Timeout(Timeout),
    /// The request was cancelled, or its body delivery stopped, by the caller.
    Cancelled,
    /// The request body producer failed (its message).
    Producer(String),
    /// A buffered body exceeded the caller's cap (bytes).
    BodyTooLarge(u64),
    /// `deliver_body` was called a second time for the same response.
    BodyAlreadyDelivered,
    /// The agent was closed before the request completed; for a
    /// [`SharedClient`](crate::SharedClient), also its reactor being gone (dropped with the
    /// request pending, or before it was made).
    AgentClosed,
    /// More redirects than the configured limit (the limit), or a redirect loop.
    TooManyRedirects(u32),
    /// A redirect to a target the policy refuses: another scheme than http/https, or
    /// https to http when downgrades are not allowed (the location).
    RedirectNotAllowed(String),
    /// A redirect whose `Location` is missing or cannot be resolved (the value).
    InvalidLocation(String),
    /// The response body could not be decoded (gzip, deflate, br, zstd...): the message.
    Decode(String),
    /// The decoded body exceeded the configured cap (bytes).
    DecodedTooLarge(u64),
    /// More content codings than the configured cap.
    TooManyContentEncodings,
    /// Authentication failed or the challenge could not be answered (the message).
    Auth(String),
    /// A local file could not be read or written (the message).
    File(String),
    /// The proxy refused or failed the request (the message).
    Proxy(String),
    /// A SOCKS5 proxy's handshake failed: the proxy (its URL without credentials) and what
    /// went wrong (a reply code, refused credentials, a malformed or cut-short answer).
    Socks {
        /// The proxy URL, without user name or password.
        proxy: String,
        /// What failed.
        error: SocksError,
    },
    /// The server answered with an error status and the client was asked to treat that as a
    /// failure (Tornado's `raise_error`, curl's `--fail`).
    HttpStatus(u16),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Cause::UnsupportedScheme(s) => write!(f, "unsupported URL scheme {s:?}"),
            Cause::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            Cause::Transport(e) => write!(f, "{e}"),
            Cause::Protocol(e) => write!(f, "{e}"),
            Cause::Timeout(t) => write!(f, "{t}"),
            Cause::Cancelled => f.write_str("cancelled"),
            Cause::Producer(msg) => write!(f, "request body producer failed: {msg}"),
            Cause::BodyTooLarge(cap) => write!(f, "response body larger than {cap} bytes"),
            Cause::BodyAlreadyDelivered => f.write_str("response body already delivered"),
            Cause::AgentClosed => f.write_str("agent closed"),
            Cause::TooManyRedirects(n) => write!(f, "too many redirects (limit {n})"),
            Cause::RedirectNotAllowed(to) => write!(f, "redirect to {to} not allowed"),
            Cause::InvalidLocation(v) => write!(f, "invalid redirect location {v:?}"),
            Cause::Decode(msg) => write!(f, "cannot decode the response body: {msg}"),
            Cause::DecodedTooLarge(cap) => {
                write!(f, "decoded response body larger than {cap} bytes")
            }
            Cause::TooManyContentEncodings => f.write_str("too many content codings"),
            Cause::Auth(msg) => write!(f, "authentication failed: {msg}"),
            Cause::File(msg) => write!(f, "file error: {msg}"),
            Cause::Proxy(msg) => write!(f, "proxy error: {msg}"),
            Cause::Socks { proxy, error } => write!(f, "SOCKS5 proxy {proxy}: {error}"),
            Cause::HttpStatus(code) => write!(f, "the server answered with status {code}"),
        }
    }
}

/// A failed request: the phase it failed in, the cause, and the URL of the request.
///
/// Its `Display` reads `<phase>: <cause> - <url>`, the URL without user name or password,
/// and without the ` - <url>` part when the error has no URL; a timeout's cause gives the
/// limit, the time elapsed and the body bytes received:
///
/// ```text
/// request not sent: connection refused - http://127.0.0.1:9/x
/// response failed: request timed out after 2001 ms (total limit 2000 ms, 512 bytes received) - http://example.test/big
/// ```
///
/// Every error an agent reports for a request carries the request's URL (for a redirect, the
/// hop that failed); so do the errors the wrapper agents make themselves.
///
/// ```
/// use weft::client::{Error, Phase, Cause};
/// let e = Error::new(Phase::RequestNotSent, Cause::UnsupportedScheme("ftp".into()));
/// assert_eq!(e.to_string(), "request not sent: unsupported URL scheme \"ftp\"");
/// assert!(!e.server_may_have_processed());
/// let e = e.with_url("ftp://user:secret@files.test/a");
/// assert_eq!(e.url(), Some("ftp://files.test/a"));
/// assert_eq!(
///     e.to_string(),
///     "request not sent: unsupported URL scheme \"ftp\" - ftp://files.test/a"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    phase: Phase,
    cause: Cause,
    /// Redacted when set; shared, so cloning an error does not copy it.
    url: Option<Arc<str>>,
    /// What a retry policy did before giving up, when one was in the chain.
    retry: Option<Arc<RetryNote>>,
    /// The proxy the request went through (`host:port`), when it went through one.
    proxy: Option<Arc<str>>,
}

/// The retries made before an error, and why no further one was.
#[derive(Debug, PartialEq, Eq)]
struct RetryNote {
    retries: u32,
    refused: Option<String>,
}

impl Error {
    /// An error from its parts, without a URL.
    pub fn new(phase: Phase, cause: Cause) -> Self {
        Error {
            phase,
            cause,
            url: None,
            retry: None,
            proxy: None,
        }
    }

    /// This error naming the proxy (`host:port`) its request went through, so that a
    /// refused or failed connection is not taken for the origin's.
    pub(crate) fn with_proxy(mut self, proxy: String) -> Self {
        self.proxy = Some(proxy.into());
        self
    }

    /// The proxy (`host:port`) the failed request went through, if it went through one.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// This error after `retries` retries, with the reason no further one was made (when
    /// the failure was one the policy retries).
    pub(crate) fn with_retries(mut self, retries: u32, refused: Option<String>) -> Self {
        if retries > 0 || refused.is_some() {
            self.retry = Some(Arc::new(RetryNote { retries, refused }));
        }
        self
    }

    /// How many times a retry policy ([`RetryPolicy`](super::RetryPolicy)) retried the
    /// request before this error ended it (0 without a policy).
    pub fn retries(&self) -> u32 {
        self.retry.as_ref().map_or(0, |n| n.retries)
    }

    /// Why a retry policy did not retry this failure although it is of a kind it retries:
    /// its retries or its time spent, a method that is not idempotent, a request body that
    /// cannot be sent again.
    pub fn retry_refused(&self) -> Option<&str> {
        self.retry.as_ref().and_then(|n| n.refused.as_deref())
    }

    /// This error naming `url`, with any user name and password taken out (and control
    /// characters escaped), so it can be logged.
    pub fn with_url(mut self, url: &str) -> Self {
        self.url = Some(redact(url).into());
        self
    }

    /// This error naming `url` unless it names one already (the URL closest to the failure
    /// wins: an inner agent's, a redirect hop's).
    pub(crate) fn or_url(self, url: &str) -> Self {
        if self.url.is_some() {
            self
        } else {
            self.with_url(url)
        }
    }

    /// This error naming the URL `other` names, unless it names one already (shared, not
    /// copied).
    pub(crate) fn with_url_of(mut self, other: &Error) -> Self {
        if self.url.is_none() {
            self.url = other.url.clone();
        }
        self
    }

    /// The URL of the request that failed, without user name or password.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The figures of the timeout that ended the request, if one did.
    pub fn timeout(&self) -> Option<&Timeout> {
        match &self.cause {
            Cause::Timeout(t) => Some(t),
            _ => None,
        }
    }

    /// When it failed.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why it failed.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// Whether a timeout ended the request.
    pub fn is_timeout(&self) -> bool {
        matches!(self.cause, Cause::Timeout(_))
    }

    /// Whether the caller cancelled the request.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.cause, Cause::Cancelled)
    }

    /// Whether the server may have received and acted on the request (false only when nothing
    /// was sent).
    pub fn server_may_have_processed(&self) -> bool {
        self.phase != Phase::RequestNotSent
    }

    /// A short machine-readable name of the cause, as used by `weft --dump json`.
    pub fn kind(&self) -> &'static str {
        match &self.cause {
            Cause::InvalidUrl(_) => "invalid_url",
            Cause::UnsupportedScheme(_) => "unsupported_scheme",
            Cause::InvalidRequest(_) => "invalid_request",
            // Several addresses failing is named by the last failure.
            Cause::Transport(t) => match t.last() {
                TransportError::Dns(_) => "dns",
                TransportError::ConnectionRefused => "connection_refused",
                TransportError::ConnectTimeout => "connect_timeout",
                TransportError::ConnectionReset => "connection_reset",
                TransportError::Io(..) | TransportError::AllAttemptsFailed { .. } => "io",
                TransportError::Tls(_) => "tls",
                TransportError::UnixSocket { .. } => "unix_socket",
            },
            Cause::Protocol(_) => "protocol",
            Cause::Timeout(_) => "timeout",
            Cause::Cancelled => "cancelled",
            Cause::Producer(_) => "producer",
            Cause::BodyTooLarge(_) => "body_too_large",
            Cause::BodyAlreadyDelivered => "body_already_delivered",
            Cause::AgentClosed => "agent_closed",
            Cause::TooManyRedirects(_) => "too_many_redirects",
            Cause::RedirectNotAllowed(_) => "redirect_not_allowed",
            Cause::InvalidLocation(_) => "invalid_location",
            Cause::Decode(_) => "decode",
            Cause::DecodedTooLarge(_) => "decoded_too_large",
            Cause::TooManyContentEncodings => "too_many_content_encodings",
            Cause::Auth(_) => "auth",
            Cause::File(_) => "file",
            Cause::Proxy(_) => "proxy",
            Cause::Socks { .. } => "socks",
            Cause::HttpStatus(_) => "http_status",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase.describe(), self.cause)?;
        if let Some(proxy) = &self.proxy {
            write!(f, " (via proxy {proxy})")?;
        }
        if let Some(url) = &self.url {
            write!(f, " - {url}")?;
        }
        match self.retry.as_deref() {
            Some(RetryNote {
                retries: 0,
                refused: Some(why),
            }) => write!(f, " (not retried: {why})"),
            Some(RetryNote { retries, refused }) => {
                write!(f, " (after {retries} retries")?;
                if let Some(why) = refused {
                    write!(f, "; no more: {why}")?;
                }
                f.write_str(")")
            }
            None => Ok(()),
        }
    }
}

/// `url` without the userinfo of its authority (`user:pass@`), and with control characters,
/// spaces and non-ASCII percent-encoded so that it prints on one line. Works on text, so that
/// a URL that does not parse is redacted too.
pub(crate) fn redact(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    match rest[..authority_len].rfind('@') {
        Some(at) => out.push_str(&rest[at + 1..]),
        None => out.push_str(rest),
    }
    if !out
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return out;
    }
    let mut escaped = String::with_capacity(out.len() + 8);
    for b in out.bytes() {
        if b.is_ascii_control() || b == b' ' || !b.is_ascii() {
            escaped.push_str(&format!("%{b:02X}"));
        } else {
            escaped.push(char::from(b));
        }
    }
    escaped
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a request that never left is known not to have been processed; every later phase
    /// may have reached the server, whatever the cause.
    #[test]
    fn only_request_not_sent_is_known_unprocessed() {
        let causes = [
            Cause::Transport(TransportError::ConnectionRefused),
            Cause::Transport(TransportError::ConnectionReset),
            Cause::Timeout(Timeout {
                kind: TimeoutKind::Read,
                limit: Duration::from_secs(1),
                elapsed: Duration::from_secs(2),
                received: 0,
            }),
            Cause::AgentClosed,
        ];
        for cause in causes {
            let phases = [
                (Phase::RequestNotSent, false),
                (Phase::RequestTransmissionFailed, true),
                (Phase::ResponseNeverReceived, true),
                (Phase::ResponseFailed, true),
            ];
            for (phase, maybe) in phases {
                let e = Error::new(phase, cause.clone());
                assert_eq!(e.server_may_have_processed(), maybe, "{e}");
            }
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            ("http://user:pass@host/", "http://host/"),
            ("http://user@host:8080/a?b#c", "http://host:8080/a?b#c"),
            ("https://host/p@th?q=a@b", "https://host/p@th?q=a@b"),
            ("http://a@b@host/x", "http://host/x"),
            ("http://host/", "http://host/"),
            ("not a url", "not%20a%20url"),
            ("http://h/\r\nInjected: 1", "http://h/%0D%0AInjected:%201"),
            ("user:pw@host/x", "host/x"),
        ];
        for (url, shown) in cases {
            let e = Error::new(Phase::RequestNotSent, Cause::Cancelled).with_url(url);
            assert_eq!(e.url(), Some(shown), "{url}");
            assert_eq!(
                e.to_string(),
                format!("request not sent: cancelled - {shown}")
            );
        }
    }

    #[test]
    fn timeouts_give_their_figures() {
        let t = |kind| Timeout {
            kind,
            limit: Duration::from_millis(1000),
            elapsed: Duration::from_millis(1001),
            received: 7,
        };
        let e = Error::new(
            Phase::RequestNotSent,
            Cause::Timeout(t(TimeoutKind::Connect)),
        )
        .with_url("http://127.0.0.1:9/x");
        assert_eq!(
            e.to_string(),
            "request not sent: connect timed out after 1001 ms (connect limit 1000 ms, 7 bytes \
             received) - http://127.0.0.1:9/x"
        );
        assert!(e.is_timeout());
        assert_eq!(e.kind(), "timeout");
        assert_eq!(e.timeout(), Some(&t(TimeoutKind::Connect)));
        for (kind, text) in [
            (
                TimeoutKind::Total,
                "request timed out after 1001 ms (total limit",
            ),
            (
                TimeoutKind::Queue,
                "timed out waiting for a free connection after 1001 ms (queue limit",
            ),
            (
                TimeoutKind::Read,
                "timed out waiting for data after 1001 ms (read limit",
            ),
        ] {
            assert!(t(kind).to_string().starts_with(text), "{}", t(kind));
        }
        let other = Error::new(Phase::ResponseFailed, Cause::Cancelled);
        assert_eq!(other.timeout(), None);
        assert_eq!(other.or_url("http://a/").url(), Some("http://a/"));
        let inner = Error::new(Phase::ResponseFailed, Cause::Cancelled).with_url("http://b/");
        assert_eq!(inner.or_url("http://a/").url(), Some("http://b/"));
    }
}
