//! Tiny blocking rustls servers on std threads, on 127.0.0.1, for the reactor's TLS tests (the
//! certificates come from [`super::ca`]), and the one rustls server configuration every TLS
//! test server uses ([`server_config`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::ca::Leaf;

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
    echo_until_close(&mut tls).map(|(echoed, _)| echoed)
}

/// Echoes decrypted bytes until the client closes; returns them, and whether the client ended
/// with `close_notify` (a TCP close without it is an `UnexpectedEof`).
fn echo_until_close(
    tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
) -> Result<(Vec<u8>, bool), String> {
    let mut echoed = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok((echoed, true)),
            Ok(n) => {
                tls.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                echoed.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((echoed, false)),
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
    let config = server_config(leaf);
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
            let (echoed, clean_close) = echo_until_close(&mut tls)?;
            return Ok(ServerReport {
                request: Vec::new(),
                echoed: echoed.len(),
                clean_close,
            });
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
