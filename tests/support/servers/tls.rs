//! Test PKI (generated with rcgen at test time) and a tiny blocking rustls server on a std
//! thread, on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A date: year, month, day.
pub type Ymd = (i32, u8, u8);

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "weft test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP literals), valid from `not_before` to `not_after`
    /// (years; `None`: rcgen's wide defaults).
    pub fn leaf(&self, names: &[&str], validity: Option<(Ymd, Ymd)>) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        if let Some(((y1, m1, d1), (y2, m2, d2))) = validity {
            params.not_before = rcgen::date_time_ymd(y1, m1, d1);
            params.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// A server certificate chain and its key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    /// A self-signed certificate (no CA).
    pub fn self_signed(names: &[&str]) -> Leaf {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        Leaf {
            chain: vec![ck.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
        }
    }
}

/// How the server ends the connection after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEnd {
    /// Sends `close_notify`, then closes TCP.
    CloseNotify,
    /// Closes TCP without `close_notify`.
    DropTcp,
    /// Echoes everything as it is until the client closes, and records whether the client
    /// sent `close_notify`.
    EchoUntilClientCloses,
}

/// What happened on the server side.
#[derive(Debug)]
pub struct ServerReport {
    /// The bytes of the first request read.
    pub request: Vec<u8>,
    /// Bytes echoed in [`ServerEnd::EchoUntilClientCloses`] mode.
    pub echoed: usize,
    /// In [`ServerEnd::EchoUntilClientCloses`] mode: the client ended with `close_notify`.
    pub clean_close: bool,
}

/// A rustls server configuration for `leaf`.
pub fn server_config(leaf: Leaf) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    Arc::new(config)
}

/// Reads one plaintext line (up to and including `\n`) byte by byte, so nothing after it
/// (such as a ClientHello) is consumed.
pub fn read_line(tcp: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        match tcp.read(&mut byte) {
            Ok(0) => return Err(format!("EOF after {line:?}")),
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(line)
}

/// Runs a rustls server on an already connected socket and echoes decrypted bytes until the
/// client closes; returns what it echoed.
pub fn tls_echo(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Result<Vec<u8>, String> {
    let conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut echoed = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(echoed),
            Ok(n) => {
                tls.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                echoed.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(echoed),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Accepts one plain connection on 127.0.0.1 (5 s timeouts) and runs `script` on it.
pub fn spawn_plain_server<T: Send + 'static>(
    script: impl FnOnce(TcpStream) -> Result<T, String> + Send + 'static,
) -> (SocketAddr, JoinHandle<Result<T, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_nodelay(true).unwrap();
        script(tcp)
    });
    (addr, handle)
}

/// Serves one TLS connection on 127.0.0.1: reads one chunk of plaintext, answers `echo:` +
/// the chunk, then ends as told (or, with [`ServerEnd::EchoUntilClientCloses`], echoes
/// everything as it is). Every blocking call has a 5 s timeout.
pub fn spawn_tls_server(
    leaf: Leaf,
    end: ServerEnd,
) -> (SocketAddr, JoinHandle<Result<ServerReport, String>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || -> Result<ServerReport, String> {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 4096];
        if end == ServerEnd::EchoUntilClientCloses {
            let mut echoed = 0;
            loop {
                match tls.read(&mut buf) {
                    Ok(0) => {
                        return Ok(ServerReport {
                            request: Vec::new(),
                            echoed,
                            clean_close: true,
                        });
                    }
                    Ok(n) => {
                        tls.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                        echoed += n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(ServerReport {
                            request: Vec::new(),
                            echoed,
                            clean_close: false,
                        });
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
        let request = buf[..n].to_vec();
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(&request);
        tls.write_all(&answer).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        if end == ServerEnd::CloseNotify {
            tls.conn.send_close_notify();
            while tls.conn.wants_write() {
                tls.conn
                    .write_tls(&mut tls.sock)
                    .map_err(|e| e.to_string())?;
            }
        }
        // Give the client time to read before the socket closes.
        std::thread::sleep(Duration::from_millis(50));
        drop(tls);
        Ok(ServerReport {
            request,
            echoed: 0,
            clean_close: false,
        })
    });
    (addr, handle)
}

/// A plain TCP listener on 127.0.0.1 that accepts connections (the kernel does) but never
/// sends anything. Keep it alive for the duration of the test.
pub fn silent_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}
