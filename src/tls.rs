//! TLS via rustls: the only module that names rustls.
//!
//! [`TlsConnector`] is the public configuration (trust roots, verification, a custom
//! `ClientConfig`); [`TlsStage`] is the byte pipe the reactor puts between a socket and the
//! protocol: ciphertext in from the socket, plaintext out to the protocol, and back.
//!
//! The crypto provider is rustls' `ring` provider, chosen explicitly (never the process-wide
//! default), so building a connector never depends on global state.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError,
    RootCertStore,
};

/// Source of [`TlsConnector::pool_id`] values.
static NEXT_CONNECTOR_ID: AtomicUsize = AtomicUsize::new(1);

/// How to make TLS client connections. Cheap to clone (an `Arc` inside).
///
/// ```
/// let tls = weft::tls::TlsConnector::webpki_roots();
/// assert!(tls.verifies());
/// let clone = tls.clone();
/// assert_eq!(clone.pool_id(), tls.pool_id());
/// assert_ne!(weft::tls::TlsConnector::webpki_roots().pool_id(), tls.pool_id());
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    verifies: bool,
    id: usize,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_with_roots(roots: RootCertStore) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(ClassifyingVerifier { inner });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn roots_from_certs(
    certs: impl Iterator<Item = Result<CertificateDer<'static>, rustls::pki_types::pem::Error>>,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(|e| TlsError::Config(format!("bad PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("unusable root certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Config(
            "no certificates found in the PEM data".to_string(),
        ));
    }
    Ok(roots)
}

impl TlsConnector {
    fn new(config: ClientConfig, verifies: bool) -> Self {
        Self::from_arc(Arc::new(config), verifies)
    }

    fn from_arc(config: Arc<ClientConfig>, verifies: bool) -> Self {
        TlsConnector {
            config,
            verifies,
            id: NEXT_CONNECTOR_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Verifies servers against the Mozilla roots bundled by webpki-roots; ALPN `http/1.1`.
    pub fn webpki_roots() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config =
            config_with_roots(roots).expect("the ring provider supports the default versions");
        Self::new(config, true)
    }

    /// Verifies servers against the certificates in a PEM file (instead of the default roots).
    ///
    /// An unreadable file, bad PEM, or a file without certificates is [`TlsError::Config`].
    pub fn with_root_pem_file(path: &Path) -> Result<Self, TlsError> {
        let iter = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
        let roots = roots_from_certs(iter)?;
        Ok(Self::new(config_with_roots(roots)?, true))
    }

    /// Verifies servers against PEM-encoded certificates given as bytes.
    ///
    /// ```
    /// let err = weft::tls::TlsConnector::with_root_pem(b"no certificates here").unwrap_err();
    /// assert!(matches!(err, weft::tls::TlsError::Config(_)));
    /// ```
    pub fn with_root_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let roots = roots_from_certs(CertificateDer::pem_slice_iter(pem))?;
        Ok(Self::new(config_with_roots(roots)?, true))
    }

    /// Accepts any server certificate. Named so it cannot be chosen by accident: only for tests
    /// and for `weft -k`.
    ///
    /// The handshake signatures are still checked (the peer must hold the key of the
    /// certificate it presents); only the chain, validity dates and name are ignored.
    pub fn danger_accept_invalid_certs() -> Self {
        let provider = provider();
        let verifier = Arc::new(AcceptAnyCert {
            provider: provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::new(config, false)
    }

    /// Uses a caller-built rustls configuration as it is. It is assumed to verify
    /// certificates ([`TlsConnector::verifies`] is `true`).
    pub fn from_client_config(config: Arc<rustls::ClientConfig>) -> Self {
        Self::from_arc(config, true)
    }

    /// Whether server certificates are verified.
    pub fn verifies(&self) -> bool {
        self.verifies
    }

    /// An identity for connection-pool keys: connectors built separately never share pooled
    /// connections, clones do.
    pub fn pool_id(&self) -> usize {
        self.id
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("verifies", &self.verifies)
            .field("pool_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The verifier behind [`TlsConnector::danger_accept_invalid_certs`].
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// rustls' standard (webpki) verification, unchanged, except that an unknown issuer is told
/// apart by looking at the chain the server sent: a self-signed certificate, a chain that ends
/// in a root we do not trust, or an issuer that is neither trusted nor sent.
#[derive(Debug)]
struct ClassifyingVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClassifyingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match result {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                let class = if self_issued(end_entity) == Some(true) {
                    TlsError::SelfSigned
                } else if intermediates.last().and_then(|c| self_issued(c)) == Some(true) {
                    TlsError::UntrustedRoot
                } else {
                    TlsError::UnknownIssuer
                };
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(class)),
                )))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// Splits one DER element off `input`: its tag, its contents and the rest (definite lengths
/// of up to 4 bytes only).
fn der_split(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Whether a DER certificate names itself as its issuer (issuer = subject): a self-signed
/// certificate or a root. `None` if it cannot be parsed.
fn self_issued(cert: &[u8]) -> Option<bool> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xA0;
    let (SEQUENCE, cert, _) = der_split(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_split(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = der_split(tbs)?;
    if tag == VERSION {
        (_, _, rest) = der_split(rest)?; // the serial number
    }
    let (_, _, rest) = der_split(rest)?; // the signature algorithm
    let (SEQUENCE, issuer, rest) = der_split(rest)? else {
        return None;
    };
    let (_, _, rest) = der_split(rest)?; // the validity
    let (SEQUENCE, subject, _) = der_split(rest)? else {
        return None;
    };
    Some(issuer == subject)
}

/// A TLS failure, naming the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The certificate chain does not lead to a trusted root: its issuer is neither trusted
    /// nor sent by the server (a certificate from an unknown CA, or a chain missing an
    /// intermediate certificate).
    UnknownIssuer,
    /// The server's certificate is self-signed (and not trusted as such).
    SelfSigned,
    /// The chain the server sent ends in a root certificate that is not trusted.
    UntrustedRoot,
    /// The certificate names no host at all (no subjectAltName; the common name is not used,
    /// RFC 9110 §4.3.4).
    NoSubjectAltName,
    /// The certificate is not for TLS server authentication (its extended key usage).
    WrongPurpose,
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
        match self {
            TlsError::UnknownIssuer => f.write_str("certificate verify failed: unknown issuer"),
            TlsError::SelfSigned => {
                f.write_str("certificate verify failed: self-signed certificate")
            }
            TlsError::UntrustedRoot => {
                f.write_str("certificate verify failed: the chain ends in an untrusted root")
            }
            TlsError::NoSubjectAltName => f.write_str(
                "certificate verify failed: the certificate names no host (no subjectAltName)",
            ),
            TlsError::WrongPurpose => f.write_str(
                "certificate verify failed: the certificate is not for TLS server authentication",
            ),
            TlsError::Expired => f.write_str("certificate verify failed: certificate has expired"),
            TlsError::NotValidYet => {
                f.write_str("certificate verify failed: certificate is not valid yet")
            }
            TlsError::NameMismatch => {
                f.write_str("certificate verify failed: certificate is not valid for the host name")
            }
            TlsError::BadCertificate(m) => write!(f, "certificate verify failed: {m}"),
            TlsError::AlertReceived(a) => write!(f, "TLS alert received from the peer: {a}"),
            TlsError::InvalidServerName(n) => write!(f, "invalid TLS server name: {n:?}"),
            TlsError::Config(m) => write!(f, "TLS configuration error: {m}"),
            TlsError::Protocol(m) => write!(f, "TLS protocol error: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn map_error(err: &rustls::Error) -> TlsError {
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsError::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsError::NotValidYet
            }
            CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
                TlsError::NoSubjectAltName
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::NameMismatch
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                TlsError::WrongPurpose
            }
            CertificateError::Other(other) => match other.0.downcast_ref::<TlsError>() {
                Some(e) => e.clone(),
                None => TlsError::BadCertificate(format!("{other:?}")),
            },
            other => TlsError::BadCertificate(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(alert) => TlsError::AlertReceived(format!("{alert:?}")),
        other => TlsError::Protocol(other.to_string()),
    }
}

/// The TLS byte pipe of one connection. Used by the reactor's transport; sans-IO in the same
/// sense as the protocol core (the socket is passed in as `Read`/`Write`).
pub struct TlsStage {
    conn: ClientConnection,
    close_notify_received: bool,
    // The reactor's own per-session fields. Here rather than in a wrapper around the stage,
    // they share the padding after `close_notify_received`: a session's box is the rustls
    // connection and 8 bytes (a wrapper made it 24), one allocation size class smaller.
    /// Bytes at the front of the connection's write buffer written before
    /// `Ctx::start_tls`: they go out in plaintext, before the TLS handshake starts.
    pub(crate) plain_left: u32,
    /// Open, and in the TLS handshake begun by `Ctx::start_tls`.
    pub(crate) upgrading: bool,
    /// Our `close_notify` is queued.
    pub(crate) close_notify_sent: bool,
}

impl fmt::Debug for TlsStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStage")
            .field("handshaking", &self.conn.is_handshaking())
            .field("close_notify_received", &self.close_notify_received)
            .finish_non_exhaustive()
    }
}

impl TlsStage {
    /// Starts a client handshake for `server_name`.
    ///
    /// An IP literal (also in the bracketed `[::1]` form) is checked against the certificate's
    /// IP addresses and sends no SNI; any other name is a DNS name.
    pub fn new(connector: &TlsConnector, server_name: &str) -> Result<Self, TlsError> {
        let bare = server_name
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(server_name);
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(bare.to_string())
                .map_err(|_| TlsError::InvalidServerName(server_name.to_string()))?,
        };
        let mut conn = ClientConnection::new(connector.config.clone(), name)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        // The reactor bounds what it feeds in (it keeps its own write buffer).
        conn.set_buffer_limit(None);
        Ok(TlsStage {
            conn,
            close_notify_received: false,
            plain_left: 0,
            upgrading: false,
            close_notify_sent: false,
        })
    }

    /// Reads ciphertext from `sock` and processes it. `Ok(0)` means the socket reached EOF.
    ///
    /// Call [`TlsStage::process`] after every successful read.
    pub fn read_tls_from(&mut self, sock: &mut dyn io::Read) -> io::Result<usize> {
        let mut sock = sock;
        self.conn.read_tls(&mut sock)
    }

    /// Processes received records; errors are typed (and the alert to send is queued).
    pub fn process(&mut self) -> Result<(), TlsError> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                if state.peer_has_closed() {
                    self.close_notify_received = true;
                }
                Ok(())
            }
            Err(e) => Err(map_error(&e)),
        }
    }

    /// Moves decrypted bytes into `buf`. `Ok(0)`: none available now (also after the peer
    /// closed; see [`TlsStage::received_close_notify`]).
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.reader().read(buf) {
            Ok(n) => Ok(n),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::UnexpectedEof =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Encrypts `data` for sending (buffered inside rustls until [`TlsStage::write_tls_to`]).
    ///
    /// Data written during the handshake is sent once it completes.
    pub fn write_plaintext(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(data)
    }

    /// Writes pending ciphertext to `sock`.
    pub fn write_tls_to(&mut self, sock: &mut dyn io::Write) -> io::Result<usize> {
        let mut sock = sock;
        self.conn.write_tls(&mut sock)
    }

    /// Whether ciphertext is waiting to be written.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the peer sent `close_notify`.
    pub fn received_close_notify(&self) -> bool {
        self.close_notify_received
    }

    /// Queues our `close_notify`.
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reactor boxes a stage per TLS connection, idle pooled ones included: its own
    /// fields fit in the 8 bytes after the rustls connection.
    #[test]
    fn a_stage_is_the_rustls_connection_and_8_bytes() {
        let size = std::mem::size_of::<TlsStage>();
        println!("size_of::<TlsStage>() = {size}");
        assert_eq!(size, std::mem::size_of::<ClientConnection>() + 8);
    }

    #[test]
    fn der_walk_rejects_garbage_and_truncation() {
        assert_eq!(self_issued(b""), None);
        assert_eq!(self_issued(b"\x30\x05abc"), None);
        assert_eq!(self_issued(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(self_issued(b"\x04\x00"), None);
        assert_eq!(
            der_split(b"\x02\x01\x07rest"),
            Some((2, &b"\x07"[..], &b"rest"[..]))
        );
        assert_eq!(
            der_split(b"\x02\x81\x01\x07"),
            Some((2, &b"\x07"[..], &b""[..]))
        );
    }

    #[test]
    fn classified_errors_survive_the_rustls_error() {
        for class in [
            TlsError::SelfSigned,
            TlsError::UntrustedRoot,
            TlsError::UnknownIssuer,
        ] {
            let err = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(class.clone()),
            )));
            assert_eq!(map_error(&err), class);
        }
        let purpose = rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose);
        assert_eq!(map_error(&purpose), TlsError::WrongPurpose);
    }
}
