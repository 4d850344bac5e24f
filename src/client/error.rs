//! Request errors: which phase failed, and why.

use std::fmt;

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
    /// A timeout expired.
    Timeout(TimeoutKind),
    /// The request was cancelled, or its body delivery stopped, by the caller.
    Cancelled,
    /// The request body producer failed (its message).
    Producer(String),
    /// A buffered body exceeded the caller's cap (bytes).
    BodyTooLarge(u64),
    /// `deliver_body` was called a second time for the same response.
    BodyAlreadyDelivered,
    /// The agent was closed before the request completed.
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
            Cause::Timeout(TimeoutKind::Connect) => f.write_str("connect timed out"),
            Cause::Timeout(TimeoutKind::Total) => f.write_str("request timed out"),
            Cause::Timeout(TimeoutKind::Queue) => {
                f.write_str("timed out waiting for a free connection")
            }
            Cause::Timeout(TimeoutKind::Read) => f.write_str("timed out waiting for data"),
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
            Cause::HttpStatus(code) => write!(f, "the server answered with status {code}"),
        }
    }
}

/// A failed request: the phase it failed in and the cause.
///
/// ```
/// use weft::client::{Error, Phase, Cause};
/// let e = Error::new(Phase::RequestNotSent, Cause::UnsupportedScheme("ftp".into()));
/// assert_eq!(e.to_string(), "request not sent: unsupported URL scheme \"ftp\"");
/// assert!(!e.server_may_have_processed());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    phase: Phase,
    cause: Cause,
}

impl Error {
    /// An error from its parts.
    pub fn new(phase: Phase, cause: Cause) -> Self {
        Error { phase, cause }
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
            Cause::Transport(TransportError::Dns(_)) => "dns",
            Cause::Transport(TransportError::ConnectionRefused) => "connection_refused",
            Cause::Transport(TransportError::ConnectTimeout) => "connect_timeout",
            Cause::Transport(TransportError::ConnectionReset) => "connection_reset",
            Cause::Transport(TransportError::Io(..)) => "io",
            Cause::Transport(TransportError::Tls(_)) => "tls",
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
            Cause::HttpStatus(_) => "http_status",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase.describe(), self.cause)
    }
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
            Cause::Timeout(TimeoutKind::Read),
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
}
