//! Fault injection on 127.0.0.1 for `tests/faults.rs`, `tests/tls_failures.rs` and
//! `tests/torture.rs`: raw servers on std threads that a test scripts with a closure (resets,
//! half-closes, stalls, TLS), a request reader for them, the short-limit agent settings, and
//! one-call request runners. It re-exports the recorder of [`super::scripted`] and the leak
//! checks of [`super::baseline`] that these tests use with it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft::client::{Agent, AgentConfig, BodyProducer};
use weft::reactor::{Ctx, Reactor};

pub use super::baseline::{
    Baseline, LIMIT, RssProbe, SETTLE, assert_nothing_pooled, open_fds, pool_stats,
};
use super::scripted::{self, Req};
pub use super::scripted::{Outcome, Slot, finished, turn_for, turn_until};

/// Agent settings for these tests: [`scripted::test_config`]'s short limits and a 5 s read
/// timeout, so that a bug fails fast.
pub fn config() -> AgentConfig {
    AgentConfig {
        read_timeout: Some(Duration::from_secs(5)),
        ..scripted::test_config()
    }
}

/// Issues a request (no extra header fields) whose head, body and end are recorded in the
/// returned slot.
pub fn issue(
    ctx: &mut Ctx,
    agent: Agent,
    method: &'static str,
    url: &str,
    body: Option<Box<dyn BodyProducer>>,
) -> Slot {
    let mut req = Req::new(method, url.to_string());
    req.body = body;
    scripted::issue(ctx, agent, req)
}

/// Runs one request to its end on `reactor`; returns the outcome and how long it took.
pub fn run(
    reactor: &mut Reactor,
    agent: Agent,
    method: &'static str,
    url: &str,
    body: Option<Box<dyn BodyProducer>>,
) -> (Outcome, Duration) {
    let start = Instant::now();
    let slot = issue(reactor.ctx(), agent, method, url, body);
    turn_until(reactor, LIMIT, || finished(&slot));
    let out = slot.borrow().clone();
    (out, start.elapsed())
}

/// Reads one request head (up to the blank line) and, if it declares a Content-Length, its
/// body. `Ok(None)` at EOF before any byte.
pub fn read_request(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body)?;
    buf.extend_from_slice(&body);
    Ok(Some(buf))
}

/// What a [`RawServer`] saw.
#[derive(Debug, Default)]
pub struct RawLog {
    /// Connections accepted.
    pub connections: usize,
    /// Requests read, with the index of their connection.
    pub requests: Vec<(usize, Vec<u8>)>,
}

/// A plain TCP server on 127.0.0.1 that hands each accepted connection, with its index (in
/// accept order), to `serve` on a thread of its own, until `stop` or until [`LIMIT`] passes
/// without a connection.
pub struct RawServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<RawLog>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A connection handler of a [`RawServer`].
pub type Serve = Box<dyn Fn(usize, TcpStream, &Arc<Mutex<RawLog>>) + Send + Sync>;

impl RawServer {
    /// Starts the server on a fresh listener.
    pub fn start(serve: Serve) -> RawServer {
        RawServer::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), serve)
    }

    /// Starts the server on `listener`.
    pub fn start_on(listener: TcpListener, serve: Serve) -> RawServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let log = Arc::new(Mutex::new(RawLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (log.clone(), stop.clone());
        let serve = Arc::new(serve);
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            let mut index = 0;
            let mut conns = Vec::new();
            while !st.load(Ordering::SeqCst) && last.elapsed() < LIMIT {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(LIMIT)).unwrap();
                        s.set_write_timeout(Some(LIMIT)).unwrap();
                        l.lock().unwrap().connections += 1;
                        let (serve, l) = (serve.clone(), l.clone());
                        conns.push(std::thread::spawn(move || serve(index, s, &l)));
                        index += 1;
                        last = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
            drop(listener);
            for c in conns {
                c.join().expect("server connection thread panicked");
            }
        });
        RawServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().connections
    }

    /// Requests read so far.
    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().requests.len()
    }

    /// Stops accepting and waits for the server thread (and every socket it holds) to end.
    pub fn join(mut self) -> RawLog {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Records a request read by a server.
pub fn record(log: &Arc<Mutex<RawLog>>, conn: usize, request: Vec<u8>) {
    log.lock().unwrap().requests.push((conn, request));
}

/// Writes all of `bytes`, ignoring a peer that went away.
pub fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
    let _ = s.flush();
}
