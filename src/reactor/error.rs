//! Why connections end and what failed: the values handed to `connection_lost` and
//! `connection_failed`, plus [`ReactorGone`] for [`Remote`](super::Remote) calls.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::tls::TlsError;

/// Why a connection ended, as told to
/// [`Protocol::connection_lost`](super::Protocol::connection_lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The peer closed cleanly: TCP FIN on a plain connection, TLS `close_notify` on a secure one.
    PeerClosed,
    /// The peer closed a TLS connection without `close_notify`: data may have been cut off.
    PeerClosedWithoutCloseNotify,
    /// We closed it ([`Ctx::lose_connection`](super::Ctx::lose_connection) or
    /// [`Ctx::abort_connection`](super::Ctx::abort_connection)).
    ClosedLocally,
    /// A transport failure (reset, TLS error...).
    Failed(TransportError),
}

/// A failure below HTTP: name resolution, connecting, the socket, or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Name resolution failed (the message says why).
    Dns(String),
    /// Every address refused the connection.
    ConnectionRefused,
    /// The connect (TCP and TLS handshake) did not finish in time.
    ConnectTimeout,
    /// The peer reset the connection.
    ConnectionReset,
    /// Another socket error.
    Io(io::ErrorKind, String),
    /// TLS failed (certificate, alert, handshake).
    Tls(TlsError),
    /// Every address of the host was tried and failed: how many, the last one, and its
    /// error (never itself this variant). One address that fails gives its own error instead.
    AllAttemptsFailed {
        /// Addresses tried.
        tried: usize,
        /// The address tried last.
        last_addr: SocketAddr,
        /// Its error.
        last: Box<TransportError>,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Dns(m) => write!(f, "name resolution failed: {m}"),
            TransportError::ConnectionRefused => f.write_str("connection refused"),
            TransportError::ConnectTimeout => f.write_str("connect timed out"),
            TransportError::ConnectionReset => f.write_str("connection reset by peer"),
            TransportError::Io(_, m) => write!(f, "I/O error: {m}"),
            TransportError::Tls(e) => e.fmt(f),
            TransportError::AllAttemptsFailed {
                tried,
                last_addr,
                last,
            } => write!(
                f,
                "all {tried} addresses failed; the last, {last_addr}: {last}"
            ),
        }
    }
}

impl std::error::Error for TransportError {}

impl TransportError {
    /// The error of the attempt that failed last: for [`TransportError::AllAttemptsFailed`]
    /// its `last`, else the error itself. Match on this to classify a connect failure
    /// whatever the number of addresses.
    pub fn last(&self) -> &TransportError {
        match self {
            TransportError::AllAttemptsFailed { last, .. } => last,
            other => other,
        }
    }

    pub(super) fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => TransportError::ConnectionRefused,
            io::ErrorKind::ConnectionReset => TransportError::ConnectionReset,
            kind => TransportError::Io(kind, err.to_string()),
        }
    }
}

/// The reactor a [`Remote`](super::Remote) points to was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactorGone;

impl fmt::Display for ReactorGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor is gone")
    }
}

impl std::error::Error for ReactorGone {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_transport_errors() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            TransportError::from_io(&refused),
            TransportError::ConnectionRefused
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            TransportError::from_io(&reset),
            TransportError::ConnectionReset
        );
        let other = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(matches!(
            TransportError::from_io(&other),
            TransportError::Io(io::ErrorKind::BrokenPipe, _)
        ));
    }
}
