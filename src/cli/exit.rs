//! How a run ended, its exit status (curl-like) and its one-line error message.

use std::io;

use weft::client::{Cause, Error, Phase, TimeoutKind};
use weft::proto::{ProtocolError, RequestError};
use weft::reactor::TransportError;

/// How a run of the command ended.
#[derive(Debug)]
pub enum Outcome {
    /// The exchange succeeded (a close-delimited body counts as success).
    Ok,
    /// A usage error found after clap's parsing (bad header, conflicting options).
    Usage(String),
    /// `-f/--fail` and the status was 400 or more.
    HttpError {
        /// The status code.
        code: u16,
        /// The reason phrase.
        phrase: String,
    },
    /// The request failed in the library (or was stopped by the command, such as for
    /// `--max-filesize`, expressed as [`Cause::BodyTooLarge`]).
    Request(Error),
    /// Writing the output failed (`what` names the destination).
    Write {
        /// "stdout" or the output file's name.
        what: String,
        /// The failure.
        error: io::Error,
    },
    /// Reading request data (`@FILE`) failed.
    ReadInput(String),
    /// No output could be set up (`-O` on a URL without a file name), curl's exit 23.
    Output(String),
    /// The `--cacert` file could not be used.
    CaCert(String),
    /// `-C`: the server's answer does not continue the file (curl's range error).
    Resume(String),
    /// Anything else (the reactor could not start, an internal inconsistency).
    Other(String),
}

impl Outcome {
    /// The process exit status for this outcome (see the table in `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Usage(_) => 2,
            Outcome::HttpError { .. } => 22,
            Outcome::Request(e) => request_exit_code(e),
            Outcome::Write { .. } | Outcome::Output(_) => 23,
            Outcome::ReadInput(_) => 26,
            Outcome::CaCert(_) => 77,
            Outcome::Resume(_) => 33,
            Outcome::Other(_) => 1,
        }
    }

    /// The message to print after `weft: `, or `None` when nothing is to be printed (success,
    /// or a closed stdout pipe, which curl also reports silently).
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::Ok => None,
            Outcome::Usage(m)
            | Outcome::ReadInput(m)
            | Outcome::CaCert(m)
            | Outcome::Resume(m)
            | Outcome::Output(m)
            | Outcome::Other(m) => Some(m.clone()),
            Outcome::HttpError { code, phrase } => Some(
                format!("the requested URL returned error: {code} {phrase}")
                    .trim_end()
                    .to_string(),
            ),
            Outcome::Request(e) => Some(request_message(e)),
            Outcome::Write { error, .. } if error.kind() == io::ErrorKind::BrokenPipe => None,
            Outcome::Write { what, error } => Some(format!("failed writing to {what}: {error}")),
        }
    }

    /// Whether the message is printed even with `-s` (usage errors always are).
    pub fn always_shown(&self) -> bool {
        matches!(self, Outcome::Usage(_))
    }
}

/// The message for a failed request: the library's, except for a timeout, which says what
/// curl says ("Operation timed out after N milliseconds with M bytes received"), then the
/// limit and the URL.
pub fn request_message(e: &Error) -> String {
    let Cause::Timeout(t) = e.cause() else {
        return e.to_string();
    };
    let ms = t.elapsed.as_millis();
    let mut out = match t.kind {
        TimeoutKind::Connect => format!("Connection timed out after {ms} milliseconds"),
        _ => format!(
            "Operation timed out after {ms} milliseconds with {} bytes received",
            t.received
        ),
    };
    let limit = match t.kind {
        TimeoutKind::Connect => "connect",
        TimeoutKind::Total => "total",
        TimeoutKind::Queue => "queue",
        TimeoutKind::Read => "read",
    };
    out.push_str(&format!(" ({limit} limit {} ms)", t.limit.as_millis()));
    if let Some(url) = e.url() {
        out.push_str(&format!(" - {url}"));
    }
    out
}

/// The exit status for a failed request, from its cause and the phase it failed in.
pub fn request_exit_code(e: &Error) -> u8 {
    match e.cause() {
        Cause::InvalidUrl(_) => 3,
        Cause::UnsupportedScheme(_) => 1,
        Cause::InvalidRequest(r) => match r {
            RequestError::InvalidMethod
            | RequestError::InvalidTarget
            | RequestError::InvalidHeaderName(_)
            | RequestError::InvalidHeaderValue(_) => 2,
            RequestError::BodyTooLong { .. } | RequestError::BodyTooShort { .. } => 26,
            RequestError::WrongState => 1,
        },
        Cause::Transport(t) => match t.last() {
            TransportError::Dns(_) => 6,
            TransportError::ConnectionRefused
            | TransportError::UnixSocket { .. }
            | TransportError::AllAttemptsFailed { .. } => 7,
            TransportError::ConnectTimeout => 28,
            TransportError::Tls(_) => 35,
            TransportError::ConnectionReset | TransportError::Io(..) => match e.phase() {
                Phase::RequestNotSent => 7,
                Phase::RequestTransmissionFailed => 55,
                Phase::ResponseNeverReceived | Phase::ResponseFailed => 56,
            },
        },
        Cause::Protocol(ProtocolError::Incomplete { .. }) => 18,
        Cause::Protocol(_) => 8,
        Cause::Timeout(_) => 28,
        Cause::Producer(_) => 26,
        Cause::BodyTooLarge(_) => 63,
        Cause::Cancelled | Cause::BodyAlreadyDelivered | Cause::AgentClosed => 1,
        Cause::TooManyRedirects(_) => 47,
        Cause::RedirectNotAllowed(_) => 1,
        Cause::InvalidLocation(_) => 8,
        Cause::Decode(_) | Cause::TooManyContentEncodings => 61,
        Cause::DecodedTooLarge(_) => 63,
        Cause::Auth(_) => 67,
        Cause::File(_) => 23,
        Cause::Proxy(_) => 97,
        Cause::Socks { .. } => 97,
        Cause::HttpStatus(_) => 22,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use weft::client::Timeout;

    /// A timeout cause with round figures, for the command's tests.
    pub(crate) fn timeout(kind: TimeoutKind) -> Cause {
        Cause::Timeout(Timeout {
            kind,
            limit: std::time::Duration::from_millis(1000),
            elapsed: std::time::Duration::from_millis(1001),
            received: 0,
        })
    }
    use weft::tls::TlsError;

    fn code(phase: Phase, cause: Cause) -> u8 {
        Outcome::Request(Error::new(phase, cause)).exit_code()
    }

    #[test]
    fn every_cause_has_its_code() {
        use Phase::*;
        let cases: Vec<(Phase, Cause, u8)> = vec![
            (RequestNotSent, Cause::InvalidUrl("x".into()), 3),
            (RequestNotSent, Cause::UnsupportedScheme("ftp".into()), 1),
            (
                RequestNotSent,
                Cause::InvalidRequest(RequestError::InvalidMethod),
                2,
            ),
            (
                RequestNotSent,
                Cause::InvalidRequest(RequestError::InvalidTarget),
                2,
            ),
            (
                RequestNotSent,
                Cause::InvalidRequest(RequestError::InvalidHeaderName("a b".into())),
                2,
            ),
            (
                RequestNotSent,
                Cause::InvalidRequest(RequestError::InvalidHeaderValue("X".into())),
                2,
            ),
            (
                RequestTransmissionFailed,
                Cause::InvalidRequest(RequestError::BodyTooShort {
                    declared: 3,
                    written: 1,
                }),
                26,
            ),
            (
                RequestTransmissionFailed,
                Cause::InvalidRequest(RequestError::BodyTooLong { declared: 3 }),
                26,
            ),
            (
                RequestNotSent,
                Cause::InvalidRequest(RequestError::WrongState),
                1,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::Dns("nx".into())),
                6,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::ConnectionRefused),
                7,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::ConnectTimeout),
                28,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::Tls(TlsError::UnknownIssuer)),
                35,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::Tls(TlsError::Protocol("x".into()))),
                35,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::ConnectionReset),
                7,
            ),
            (
                RequestNotSent,
                Cause::Transport(TransportError::Io(io::ErrorKind::Other, "x".into())),
                7,
            ),
            (
                RequestTransmissionFailed,
                Cause::Transport(TransportError::ConnectionReset),
                55,
            ),
            (
                ResponseNeverReceived,
                Cause::Transport(TransportError::ConnectionReset),
                56,
            ),
            (
                ResponseFailed,
                Cause::Transport(TransportError::Io(io::ErrorKind::Other, "x".into())),
                56,
            ),
            (
                ResponseFailed,
                Cause::Protocol(ProtocolError::Incomplete {
                    expected: Some(10),
                    received: 3,
                }),
                18,
            ),
            (
                ResponseFailed,
                Cause::Protocol(ProtocolError::Incomplete {
                    expected: None,
                    received: 3,
                }),
                18,
            ),
            (
                ResponseNeverReceived,
                Cause::Protocol(ProtocolError::IncompleteHead),
                8,
            ),
            (
                ResponseNeverReceived,
                Cause::Protocol(ProtocolError::InvalidStatusLine),
                8,
            ),
            (
                ResponseFailed,
                Cause::Protocol(ProtocolError::InvalidChunkSize),
                8,
            ),
            (RequestNotSent, timeout(TimeoutKind::Connect), 28),
            (ResponseFailed, timeout(TimeoutKind::Total), 28),
            (RequestNotSent, timeout(TimeoutKind::Queue), 28),
            (ResponseFailed, Cause::Cancelled, 1),
            (RequestTransmissionFailed, Cause::Producer("eio".into()), 26),
            (ResponseFailed, Cause::BodyTooLarge(5), 63),
            (ResponseFailed, Cause::BodyAlreadyDelivered, 1),
            (RequestNotSent, Cause::AgentClosed, 1),
        ];
        for (phase, cause, want) in cases {
            let shown = format!("{cause:?} in {phase:?}");
            assert_eq!(code(phase, cause), want, "{shown}");
        }
    }

    #[test]
    fn other_outcomes() {
        assert_eq!(Outcome::Ok.exit_code(), 0);
        assert_eq!(Outcome::Ok.message(), None);
        assert_eq!(Outcome::Usage("x".into()).exit_code(), 2);
        assert!(Outcome::Usage("x".into()).always_shown());
        let http = Outcome::HttpError {
            code: 404,
            phrase: "Not Found".into(),
        };
        assert_eq!(http.exit_code(), 22);
        assert_eq!(
            http.message().unwrap(),
            "the requested URL returned error: 404 Not Found"
        );
        let pipe = Outcome::Write {
            what: "stdout".into(),
            error: io::Error::from(io::ErrorKind::BrokenPipe),
        };
        assert_eq!(pipe.exit_code(), 23);
        assert_eq!(pipe.message(), None);
        let full = Outcome::Write {
            what: "out.bin".into(),
            error: io::Error::other("disk full"),
        };
        assert_eq!(full.exit_code(), 23);
        assert_eq!(
            full.message().unwrap(),
            "failed writing to out.bin: disk full"
        );
        assert_eq!(Outcome::ReadInput("x".into()).exit_code(), 26);
        assert_eq!(Outcome::CaCert("x".into()).exit_code(), 77);
        assert_eq!(Outcome::Other("x".into()).exit_code(), 1);
    }

    #[test]
    fn request_error_message_is_the_display() {
        let e = Error::new(Phase::RequestNotSent, timeout(TimeoutKind::Connect));
        assert_eq!(
            Outcome::Request(e).message().unwrap(),
            "Connection timed out after 1001 milliseconds (connect limit 1000 ms)"
        );
        let e = Error::new(Phase::ResponseFailed, timeout(TimeoutKind::Total));
        assert_eq!(
            Outcome::Request(e).message().unwrap(),
            "Operation timed out after 1001 milliseconds with 0 bytes received (total limit \
             1000 ms)"
        );
        let other = Error::new(Phase::ResponseFailed, Cause::Cancelled);
        assert_eq!(
            Outcome::Request(other.clone()).message(),
            Some(other.to_string())
        );
        let o = Outcome::Output("Remote file name has no length".into());
        assert_eq!(o.exit_code(), 23);
    }
}
