//! Helpers for the fault-injection and TLS failure-class tests (`tests/faults.rs`,
//! `tests/tls_classes.rs`): a leak baseline checked after each test, a request recorder, and
//! small raw servers on 127.0.0.1; and [`RssProbe`], the memory growth across a capped
//! transfer (`tests/hostile.rs`, `tests/client_decode.rs`).
//!
//! # The baseline
//!
//! [`Baseline::take`] snapshots the reactor's counts ([`Reactor::stats`]: connections, poller
//! registrations, handlers, listeners, timers, queued notifications) and the process's open
//! file descriptors (`/proc/self/fd`). [`Baseline::assert_back`] turns the reactor (bounded in
//! time) until both are back, then asserts. Take it after the agent and the test's servers
//! exist, and join the server threads before checking, so only what the client owns counts.
//!
//! Descriptors are counted per process: nextest runs every test in its own process, so there
//! the count is exact. Under `cargo test` other tests run on other threads of the same process
//! and open descriptors of their own, so the descriptor check is only made when this test is
//! alone (nextest, or `--test-threads=1`); the reactor counts are always checked.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProducer, BodyProtocol, Error, PoolStats,
};
use weft::proto::Headers;
use weft::reactor::{Ctx, Reactor, ReactorStats};

/// The most any single wait in these tests may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

/// How long [`Baseline::assert_back`] lets closes and cancellations settle. Short on purpose:
/// a timer or socket that lingers until some far deadline is a leak too.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Open descriptors of this process, or `None` where `/proc` is missing.
pub fn open_fds() -> Option<usize> {
    // The directory handle itself is counted each time, so differences are exact.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Whether this test runs alone in its process, so that descriptor counts are its own.
fn alone_in_process() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test")
        || std::env::var("RUST_TEST_THREADS").is_ok_and(|n| n == "1")
}

/// `field` of `/proc/self/status` (`VmRSS`, `VmHWM`) in bytes, or `None` where it is missing.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Growth of this process's resident memory across a piece of work, to show that a capped
/// transfer stays bounded. The current RSS is compared at every [`RssProbe::sample`] (call it
/// on each reactor turn: a buffer freed before the end would not show after it) and at the
/// check. The kernel's peak is compared too when this test is alone in its process (nextest)
/// and the peak can be reset (`/proc/self/clear_refs`): under `cargo test` other tests on
/// other threads would raise it. Their allocations also reach the sampled figure, so bounds
/// must leave room for a few MiB of them.
pub struct RssProbe {
    before: Option<u64>,
    peak_reset: bool,
    most: std::cell::Cell<u64>,
}

impl RssProbe {
    /// Reads the current RSS and, when alone in the process, resets the peak to it.
    pub fn start() -> RssProbe {
        let peak_reset = alone_in_process()
            && std::fs::write("/proc/self/clear_refs", "5").is_ok()
            && status_bytes("VmHWM").is_some();
        let before = status_bytes("VmRSS");
        RssProbe {
            before,
            peak_reset,
            most: std::cell::Cell::new(before.unwrap_or(0)),
        }
    }

    /// Notes the current RSS if it is the highest seen.
    pub fn sample(&self) {
        if let Some(now) = status_bytes("VmRSS") {
            self.most.set(self.most.get().max(now));
        }
    }

    /// Asserts that the highest sampled RSS (this moment included), and the kernel's peak
    /// where it was reset, grew by less than `bound` bytes since [`RssProbe::start`]; returns
    /// both growths (peak `None` where not measured), or `None` without `/proc`.
    pub fn assert_growth_below(&self, bound: u64, what: &str) -> Option<(u64, Option<u64>)> {
        let before = self.before?;
        self.sample();
        let sampled = self.most.get().saturating_sub(before);
        let peak = self
            .peak_reset
            .then(|| status_bytes("VmHWM"))
            .flatten()
            .map(|p| p.saturating_sub(before));
        eprintln!(
            "{what}: RSS grew {} KiB at most when sampled, peak {:?} KiB",
            sampled >> 10,
            peak.map(|p| p >> 10)
        );
        assert!(
            sampled < bound,
            "{what}: RSS grew by {sampled} bytes (bound {bound})"
        );
        if let Some(peak) = peak {
            assert!(
                peak < bound,
                "{what}: peak RSS grew by {peak} bytes (bound {bound})"
            );
        }
        Some((sampled, peak))
    }
}

/// What the process and the reactor held before a test's work.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub fds: Option<usize>,
    pub reactor: ReactorStats,
}

impl Baseline {
    /// Snapshots the reactor and the open descriptors.
    pub fn take(reactor: &mut Reactor) -> Baseline {
        // Let queued notifications (an agent's init message...) be delivered first.
        for _ in 0..3 {
            reactor.turn(Some(Duration::ZERO)).unwrap();
        }
        Baseline {
            fds: if alone_in_process() { open_fds() } else { None },
            reactor: reactor.stats(),
        }
    }

    /// Turns the reactor (at most [`SETTLE`]) until its counts and the descriptor count are
    /// back to the baseline, then asserts they are.
    pub fn assert_back(&self, reactor: &mut Reactor) {
        let deadline = Instant::now() + SETTLE;
        loop {
            reactor.turn(Some(Duration::from_millis(5))).unwrap();
            let now = self.current(reactor);
            if now.0 == self.reactor && now.1 == self.fds {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "not back to the baseline: reactor {:?} (was {:?}), fds {:?} (was {:?})",
                    now.0, self.reactor, now.1, self.fds
                );
            }
        }
    }

    fn current(&self, reactor: &Reactor) -> (ReactorStats, Option<usize>) {
        let fds = self.fds.and_then(|_| open_fds());
        (reactor.stats(), fds)
    }
}

/// The agent's pool counts, read through the reactor.
pub fn pool_stats(reactor: &mut Reactor, agent: Agent) -> PoolStats {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    agent.stats(reactor.ctx(), move |_, s| *o.borrow_mut() = Some(s));
    turn_until(reactor, LIMIT, || out.borrow().is_some());
    out.borrow().unwrap()
}

/// Asserts that the agent holds no request and no connection: nothing active, idle or queued.
pub fn assert_nothing_pooled(reactor: &mut Reactor, agent: Agent) {
    let s = pool_stats(reactor, agent);
    assert_eq!(
        (s.active, s.idle, s.queued, s.requests),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

/// Turns the reactor until `done` holds; panics after `limit`.
pub fn turn_until(reactor: &mut Reactor, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the reactor"
        );
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
}

/// Turns the reactor for `d`.
pub fn turn_for(reactor: &mut Reactor, d: Duration) {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
}

/// Agent settings for these tests: short limits so that a bug fails fast.
pub fn config() -> AgentConfig {
    AgentConfig {
        connect_timeout: Some(Duration::from_secs(5)),
        timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(5)),
        ..AgentConfig::default()
    }
}

/// How one request ended, as the test saw it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    pub body: Vec<u8>,
    /// `Some(Err)`: failed before the head; `Some(Ok(end))`: the body ended.
    pub result: Option<Result<BodyEnd, Error>>,
    /// When the result arrived.
    pub at: Option<Instant>,
}

impl Outcome {
    /// The error, from before the head or from the body.
    pub fn error(&self) -> Option<&Error> {
        match &self.result {
            Some(Err(e)) | Some(Ok(BodyEnd::Failed(e))) => Some(e),
            _ => None,
        }
    }

    /// The body ended as `Done`.
    pub fn is_done(&self) -> bool {
        matches!(self.result, Some(Ok(BodyEnd::Done)))
    }
}

pub type Slot = Rc<RefCell<Outcome>>;

struct Recorder(Slot);

impl BodyProtocol for Recorder {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
        let mut o = self.0.borrow_mut();
        assert!(o.result.is_none(), "data after the end of the body");
        o.body.extend_from_slice(data);
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
        let mut o = self.0.borrow_mut();
        assert!(o.result.is_none(), "connection_lost called twice");
        o.result = Some(Ok(reason));
        o.at = Some(Instant::now());
    }
}

/// Issues a request whose head, body and end are recorded in the returned slot.
pub fn issue(
    ctx: &mut Ctx,
    agent: Agent,
    method: &str,
    url: &str,
    body: Option<Box<dyn BodyProducer>>,
) -> Slot {
    let slot: Slot = Rc::new(RefCell::new(Outcome::default()));
    let s = slot.clone();
    agent.request(
        ctx,
        method,
        url,
        Headers::new(),
        body,
        move |ctx, r| match r {
            Ok(resp) => {
                s.borrow_mut().status = Some(resp.code);
                resp.deliver_body(ctx, Recorder(s.clone()));
            }
            Err(e) => {
                let mut o = s.borrow_mut();
                assert!(o.result.is_none(), "on_response called twice");
                o.result = Some(Err(e));
                o.at = Some(Instant::now());
            }
        },
    );
    slot
}

/// Whether the slot holds a final outcome.
pub fn finished(slot: &Slot) -> bool {
    slot.borrow().result.is_some()
}

/// Runs one request to its end on `reactor`; returns the outcome and how long it took.
pub fn run(
    reactor: &mut Reactor,
    agent: Agent,
    method: &str,
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
