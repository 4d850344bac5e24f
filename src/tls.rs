//! TLS via rustls: the only module that names rustls.
//!
//! [`TlsConnector`] is the public configuration (trust roots, verification, a custom
//! `ClientConfig`); [`TlsStage`] is the byte pipe the reactor puts between a socket and the
//! protocol: ciphertext in from the socket, plaintext out to the protocol, and back.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How to make TLS client connections. Cheap to clone (an `Arc` inside).
///
/// ```
/// let tls = weft::tls::TlsConnector::webpki_roots();
/// assert!(tls.verifies());
/// ```
#[derive(Clone)]
pub struct TlsConnector {}

impl TlsConnector {
    /// Verifies servers against the Mozilla roots bundled by webpki-roots; ALPN `http/1.1`.
    pub fn webpki_roots() -> Self {
        todo!()
    }

    /// Verifies servers against the certificates in a PEM file (instead of the default roots).
    pub fn with_root_pem_file(path: &Path) -> Result<Self, TlsError> {
        todo!()
    }

    /// Verifies servers against PEM-encoded certificates given as bytes.
    pub fn with_root_pem(pem: &[u8]) -> Result<Self, TlsError> {
        todo!()
    }

    /// Accepts any server certificate. Named so it cannot be chosen by accident: only for tests
    /// and for `weft -k`.
    pub fn danger_accept_invalid_certs() -> Self {
        todo!()
    }

    /// Uses a caller-built rustls configuration as it is.
    pub fn from_client_config(config: Arc<rustls::ClientConfig>) -> Self {
        todo!()
    }

    /// Whether server certificates are verified.
    pub fn verifies(&self) -> bool {
        todo!()
    }

    /// An identity for connection-pool keys: connectors built separately never share pooled
    /// connections, clones do.
    pub fn pool_id(&self) -> usize {
        todo!()
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

/// A TLS failure, naming the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// The certificate is not valid for the host name.
    NameMismatch,
    /// Another certificate problem (the message says which).
    BadCertificate(String),
    /// The peer sent a fatal alert.
    AlertReceived(String),
    /// The host is not a valid TLS server name.
    InvalidServerName(String),
    /// Bad root-certificate file or configuration.
    Config(String),
    /// Any other handshake or record-layer failure.
    Protocol(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl std::error::Error for TlsError {}

/// The TLS byte pipe of one connection. Used by the reactor's transport; sans-IO in the same
/// sense as the protocol core (the socket is passed in as `Read`/`Write`).
pub struct TlsStage {}

impl TlsStage {
    /// Starts a client handshake for `server_name`.
    pub fn new(connector: &TlsConnector, server_name: &str) -> Result<Self, TlsError> {
        todo!()
    }

    /// Reads ciphertext from `sock` and processes it. `Ok(0)` means the socket reached EOF.
    pub fn read_tls_from(&mut self, sock: &mut dyn io::Read) -> io::Result<usize> {
        todo!()
    }

    /// Processes received records; errors are typed (and the alert to send is queued).
    pub fn process(&mut self) -> Result<(), TlsError> {
        todo!()
    }

    /// Moves decrypted bytes into `buf`. `Ok(0)`: none available now.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        todo!()
    }

    /// Encrypts `data` for sending (buffered inside rustls until [`TlsStage::write_tls_to`]).
    pub fn write_plaintext(&mut self, data: &[u8]) -> io::Result<()> {
        todo!()
    }

    /// Writes pending ciphertext to `sock`.
    pub fn write_tls_to(&mut self, sock: &mut dyn io::Write) -> io::Result<usize> {
        todo!()
    }

    /// Whether ciphertext is waiting to be written.
    pub fn wants_write(&self) -> bool {
        todo!()
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        todo!()
    }

    /// Whether the peer sent `close_notify`.
    pub fn received_close_notify(&self) -> bool {
        todo!()
    }

    /// Queues our `close_notify`.
    pub fn send_close_notify(&mut self) {
        todo!()
    }
}
