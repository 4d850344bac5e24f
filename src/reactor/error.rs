//! Why connections end and what failed: the values handed to `connection_lost` and
//! `connection_failed`, plus [`ReactorGone`] for [`Remote`](super::Remote) calls.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::PeerClosed => f.write_str("closed by the peer"),
            Disconnect::PeerClosedWithoutCloseNotify => {
                f.write_str("closed by the peer without TLS close_notify")
            }
            Disconnect::ClosedLocally => f.write_str("closed locally"),
            Disconnect::Failed(e) => e.fmt(f),
        }
    }
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
    /// Connecting to a Unix domain socket failed
    /// ([`Ctx::connect_unix`](super::Ctx::connect_unix)).
    UnixSocket {
        /// The socket's path.
        path: PathBuf,
        /// What went wrong.
        error: UnixSocketError,
    },
}

/// Why a connect to a Unix domain socket failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixSocketError {
    /// Nothing exists at the path (or a directory on it is missing).
    NotFound,
    /// The socket, or a directory on its path, may not be written or searched by us.
    PermissionDenied,
    /// The path names something that is not a socket (a regular file, a directory...).
    NotASocket,
    /// A socket is there but nothing listens on it.
    Refused,
    /// The server's queue of connections not yet accepted is full: it is not accepting (or
    /// not fast enough). Linux fails such a connect at once rather than waiting.
    QueueFull,
    /// Another error (the message says which), e.g. a path too long for a socket address.
    Io(io::ErrorKind, String),
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
            TransportError::UnixSocket { path, error } => {
                write!(f, "Unix socket {}: {error}", path.display())
            }
        }
    }
}

impl fmt::Display for UnixSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixSocketError::NotFound => f.write_str("no such file or directory"),
            UnixSocketError::PermissionDenied => f.write_str("permission denied"),
            UnixSocketError::NotASocket => f.write_str("not a socket"),
            UnixSocketError::Refused => f.write_str("connection refused (nothing listens on it)"),
            UnixSocketError::QueueFull => {
                f.write_str("the server's listen queue is full (it is not accepting)")
            }
            UnixSocketError::Io(_, m) => f.write_str(m),
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

    /// A failed connect to the Unix socket at `path`.
    pub(super) fn unix(path: &Path, err: &io::Error) -> Self {
        let error = match err.kind() {
            io::ErrorKind::NotFound => UnixSocketError::NotFound,
            io::ErrorKind::PermissionDenied => UnixSocketError::PermissionDenied,
            // Linux refuses a connect to a file that is not a socket as it refuses one to a
            // socket nobody listens on: the file's type tells them apart (one `stat`, on
            // failure only).
            io::ErrorKind::ConnectionRefused => match std::fs::metadata(path) {
                Ok(meta) if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
                    UnixSocketError::NotASocket
                }
                _ => UnixSocketError::Refused,
            },
            io::ErrorKind::WouldBlock => UnixSocketError::QueueFull,
            kind => UnixSocketError::Io(kind, err.to_string()),
        };
        TransportError::UnixSocket {
            path: path.to_path_buf(),
            error,
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

    #[test]
    fn unix_connect_errors_name_the_path_and_the_reason() {
        let dir = std::env::temp_dir();
        let file = dir.join(format!("weft-unix-error-{}", std::process::id()));
        std::fs::write(&file, b"not a socket").unwrap();
        let cases = [
            (io::ErrorKind::NotFound, UnixSocketError::NotFound),
            (
                io::ErrorKind::PermissionDenied,
                UnixSocketError::PermissionDenied,
            ),
            // A regular file refuses a connect: told apart from a socket nobody listens on.
            (
                io::ErrorKind::ConnectionRefused,
                UnixSocketError::NotASocket,
            ),
        ];
        for (kind, want) in cases {
            let e = TransportError::unix(&file, &io::Error::from(kind));
            assert_eq!(
                e,
                TransportError::UnixSocket {
                    path: file.clone(),
                    error: want
                }
            );
            assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");
        }
        std::fs::remove_file(&file).unwrap();
        let gone = TransportError::unix(&file, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            gone,
            TransportError::UnixSocket {
                error: UnixSocketError::Refused,
                ..
            }
        ));
        let other = TransportError::unix(&file, &io::Error::from(io::ErrorKind::InvalidInput));
        assert!(matches!(
            other,
            TransportError::UnixSocket {
                error: UnixSocketError::Io(io::ErrorKind::InvalidInput, _),
                ..
            }
        ));
    }
}
