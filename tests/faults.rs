//! Network and environment faults F1–F14 (docs/http-support.md §2.2), injected hermetically on
//! 127.0.0.1: raw servers on std threads (SO_LINGER 0, half-closes, stalls, tiny receive
//! windows, full accept queues through `socket2`), a resolver injected into the reactor, and
//! file-system faults under a temporary directory.
//!
//! Every test checks the leak baseline (reactor counts and open descriptors, see
//! `tests/support/baseline.rs`) after its work. F9 (TLS handshake failures) is in
//! `tls_failures.rs`; F12 has unit tests inside the reactor too (`src/reactor/mod.rs`), where
//! readiness events can be injected directly.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::faults::*;
use support::servers::TestDir;
use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProducer, BodyProtocol, BodySink, BytesProducer,
    Cause, DownloadOptions, Downloaded, Error, HttpAgent, Phase, Produce, Request, TimeoutKind,
    download,
};
use weft::proto::ProtocolError;
use weft::reactor::{Ctx, Reactor, TransportError};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn reactor_and_agent(config: AgentConfig) -> (Reactor, Agent, Baseline) {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let baseline = Baseline::take(&mut reactor);
    (reactor, agent, baseline)
}

/// Ends the test: closes idle connections, joins the server, checks the baseline.
fn wind_down(reactor: &mut Reactor, agent: Agent, server: RawServer, baseline: Baseline) -> RawLog {
    agent.close_idle(reactor.ctx());
    turn_for(reactor, Duration::from_millis(20));
    let log = server.join();
    baseline.assert_back(reactor);
    log
}

/// Sets SO_LINGER 0 and drops the socket: the peer gets a RST instead of a FIN.
fn reset(tcp: TcpStream) {
    socket2::SockRef::from(&tcp)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(tcp);
}

/// A deterministic jitter source (no randomness crate needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

// ---- F1 ---------------------------------------------------------------------------------

const HALF_BODY: usize = 500;

fn resetting_server() -> RawServer {
    RawServer::start(Box::new(|i, mut tcp, log| {
        if let Ok(Some(req)) = read_request(&mut tcp) {
            record(log, i, req);
            send(&mut tcp, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            send(&mut tcp, &[b'x'; HALF_BODY]);
            // Let the client read what was sent before the reset arrives.
            std::thread::sleep(Duration::from_millis(50));
            reset(tcp);
        }
    }))
}

#[test]
fn f1_reset_mid_body_is_a_typed_error_and_not_pooled() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = resetting_server();
    let (out, _) = run(&mut reactor, agent, "GET", &server.url("/"), None);
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body.len(), HALF_BODY, "the bytes received are kept");
    let err = out.error().expect("a reset body is an error").clone();
    assert_eq!(err.phase(), Phase::ResponseFailed, "{err}");
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::ConnectionReset),
        "{err}"
    );
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
}

#[test]
fn f1_reset_mid_download_leaves_no_final_file() {
    let dir = TestDir::new("faults-f1");
    let target = dir.path().join("file.bin");
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = resetting_server();
    let result = run_download(&mut reactor, agent, &server.url("/file.bin"), &target);
    let err = result.expect_err("a reset download fails");
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::ConnectionReset),
        "{err}"
    );
    assert!(!target.exists(), "the target is never finalized");
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
}

// ---- F2 and F3: half-closes ---------------------------------------------------------------

#[test]
fn f2_half_close_after_a_complete_response() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = RawServer::start(Box::new(|i, mut tcp, log| {
        if let Ok(Some(req)) = read_request(&mut tcp) {
            record(log, i, req);
            send(&mut tcp, OK);
            let _ = tcp.shutdown(Shutdown::Write);
            // Keep reading: the connection is half open until the client closes it.
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink);
        }
    }));
    let (first, _) = run(&mut reactor, agent, "GET", &server.url("/1"), None);
    assert!(first.is_done() && first.body == b"ok", "{first:?}");

    // No busy loop on the read-closed socket: count turns over a quiet period. Each turn
    // waits up to 50 ms for readiness, so a quiet reactor makes about 6 turns in 300 ms.
    let start = Instant::now();
    let mut turns = 0;
    while start.elapsed() < Duration::from_millis(300) {
        reactor.turn(Some(Duration::from_millis(50))).unwrap();
        turns += 1;
    }
    assert!(turns < 30, "{turns} turns in 300 ms: busy loop");
    let s = pool_stats(&mut reactor, agent);
    assert_eq!(
        s.idle, 0,
        "a connection the peer finished is not kept: {s:?}"
    );

    let (second, _) = run(&mut reactor, agent, "GET", &server.url("/2"), None);
    assert!(second.is_done() && second.body == b"ok", "{second:?}");
    let log = wind_down(&mut reactor, agent, server, baseline);
    assert_eq!(
        log.connections, 2,
        "the half-closed connection was not reused"
    );
}

#[test]
fn f3_half_close_before_the_response() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = RawServer::start(Box::new(|i, mut tcp, log| {
        if let Ok(Some(req)) = read_request(&mut tcp) {
            record(log, i, req);
            let _ = tcp.shutdown(Shutdown::Write);
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink);
        }
    }));
    let (out, took) = run(&mut reactor, agent, "GET", &server.url("/"), None);
    let err = out.error().expect("no response is an error").clone();
    assert_eq!(err.phase(), Phase::ResponseNeverReceived, "{err}");
    assert_eq!(
        err.cause(),
        &Cause::Protocol(ProtocolError::IncompleteHead),
        "{err}"
    );
    assert!(err.server_may_have_processed());
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_nothing_pooled(&mut reactor, agent);
    let log = wind_down(&mut reactor, agent, server, baseline);
    // A fresh connection is never retried.
    assert_eq!((log.connections, log.requests.len()), (1, 1));
}

// ---- F4: stale pooled connection --------------------------------------------------------

/// Answers the first request of each connection; what the second request meets depends on
/// `stale`: a FIN 100 ms after the first answer, or a close as soon as it arrives.
fn stale_server(close_on_second: bool) -> RawServer {
    RawServer::start(Box::new(move |i, mut tcp, log| {
        let Ok(Some(req)) = read_request(&mut tcp) else {
            return;
        };
        record(log, i, req);
        send(&mut tcp, OK);
        if i > 0 {
            // Later connections behave: keep answering.
            while let Ok(Some(req)) = read_request(&mut tcp) {
                record(log, i, req);
                send(&mut tcp, OK);
            }
            return;
        }
        if close_on_second {
            // The close races the client's write: read the request, answer nothing.
            if let Ok(Some(req)) = read_request(&mut tcp) {
                record(log, i, req);
            }
            drop(tcp);
        } else {
            std::thread::sleep(Duration::from_millis(100));
            drop(tcp);
        }
    }))
}

#[test]
fn f4_stale_connection_seen_closed_is_not_used() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = stale_server(false);
    let (first, _) = run(&mut reactor, agent, "GET", &server.url("/1"), None);
    assert!(first.is_done());
    turn_for(&mut reactor, Duration::from_millis(200));
    let (get, _) = run(&mut reactor, agent, "GET", &server.url("/2"), None);
    assert!(get.is_done(), "{:?}", get.result);
    let post = BytesProducer::new(&b"data"[..]);
    let (post, _) = run(
        &mut reactor,
        agent,
        "POST",
        &server.url("/3"),
        Some(Box::new(post)),
    );
    assert!(post.is_done(), "{:?}", post.result);
    let log = wind_down(&mut reactor, agent, server, baseline);
    assert_eq!(log.connections, 2, "{log:?}");
    assert!(log.requests.iter().all(|(conn, _)| *conn <= 1));
}

#[test]
fn f4_get_on_a_connection_closed_under_it_is_retried_once_on_a_fresh_one() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = stale_server(true);
    let (first, _) = run(&mut reactor, agent, "GET", &server.url("/1"), None);
    assert!(first.is_done());
    let (get, _) = run(&mut reactor, agent, "GET", &server.url("/2"), None);
    assert!(get.is_done(), "{:?}", get.result);
    let log = wind_down(&mut reactor, agent, server, baseline);
    let paths: Vec<(usize, String)> = log
        .requests
        .iter()
        .map(|(c, r)| (*c, String::from_utf8_lossy(&r[..8]).into_owned()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (0, "GET /1 H".to_string()),
            (0, "GET /2 H".to_string()),
            (1, "GET /2 H".to_string())
        ]
    );
}

#[test]
fn f4_post_on_a_connection_closed_under_it_surfaces_the_error() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = stale_server(true);
    let (first, _) = run(&mut reactor, agent, "GET", &server.url("/1"), None);
    assert!(first.is_done());
    let body = BytesProducer::new(&b"payload"[..]);
    let (post, _) = run(
        &mut reactor,
        agent,
        "POST",
        &server.url("/2"),
        Some(Box::new(body)),
    );
    let err = post.error().expect("a POST is never retried").clone();
    assert!(err.server_may_have_processed(), "{err}");
    assert_eq!(err.phase(), Phase::ResponseNeverReceived, "{err}");
    assert_nothing_pooled(&mut reactor, agent);
    let log = wind_down(&mut reactor, agent, server, baseline);
    assert_eq!(log.connections, 1, "no second connection for the POST");
    assert_eq!(log.requests.len(), 2);
}

// ---- F5: idle-timeout race --------------------------------------------------------------

/// Iterations of the race; each takes a few milliseconds.
const RACE_ROUNDS: u64 = 200;

#[test]
fn f5_idle_timeout_race_never_hangs_or_duplicates_a_post() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    // The server's idle timeout: a connection waiting for its next request longer than this
    // is closed. The first request of a connection may take as long as it needs.
    const SERVER_IDLE: Duration = Duration::from_millis(4);
    let executed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let ex = executed.clone();
    let server = RawServer::start(Box::new(move |i, mut tcp, log| {
        let mut first = true;
        loop {
            let timeout = if first { LIMIT } else { SERVER_IDLE };
            tcp.set_read_timeout(Some(timeout)).unwrap();
            let Ok(Some(req)) = read_request(&mut tcp) else {
                return;
            };
            first = false;
            let line = String::from_utf8_lossy(&req[..req.len().min(40)]).into_owned();
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            if line.starts_with("POST") {
                *ex.lock().unwrap().entry(target).or_default() += 1;
            }
            record(log, i, req);
            send(&mut tcp, OK);
        }
    }));
    let mut jitter = Lcg(7);
    let mut post_outcomes = Vec::new();
    for round in 0..RACE_ROUNDS {
        // Wait around the server's idle timeout (before, at, after it) without turning the
        // reactor: a FIN that arrives meanwhile is only seen after the next request is
        // written, which is the race itself.
        let pause = Duration::from_micros(jitter.below(8_000));
        std::thread::sleep(pause);
        let is_post = round % 2 == 1;
        let path = format!("/r{round}");
        let start = Instant::now();
        let (out, _) = if is_post {
            let body = Box::new(BytesProducer::new(&b"once"[..]));
            run(&mut reactor, agent, "POST", &server.url(&path), Some(body))
        } else {
            run(&mut reactor, agent, "GET", &server.url(&path), None)
        };
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "round {round} hung"
        );
        if is_post {
            post_outcomes.push((path, out.is_done(), out.error().cloned()));
        } else {
            assert!(out.is_done(), "GET {path}: {:?}", out.result);
        }
    }
    let executed = executed.lock().unwrap().clone();
    for (path, ok, err) in &post_outcomes {
        let n = executed.get(path).copied().unwrap_or(0);
        assert!(n <= 1, "POST {path} executed {n} times");
        if *ok {
            assert_eq!(n, 1, "POST {path} succeeded without being executed");
        } else if n == 1 {
            let err = err.as_ref().unwrap();
            assert!(err.server_may_have_processed(), "POST {path}: {err}");
        }
    }
    let failed = post_outcomes.iter().filter(|p| !p.1).count();
    // Every attempt goes on a reused connection or is the first on a new one, so attempts
    // beyond one per round are retries (of GETs: a POST is never retried).
    let stats = pool_stats(&mut reactor, agent);
    let attempts = stats.reused + stats.connections_opened;
    let retried_gets = attempts
        .checked_sub(RACE_ROUNDS)
        .expect("at least one attempt per round");
    println!(
        "{} POSTs, {failed} failed in the race; {retried_gets} GETs retried; {stats:?}",
        post_outcomes.len(),
    );
    wind_down(&mut reactor, agent, server, baseline);
    // The race was really run: some requests met a connection closed under them.
    assert!(failed as u64 + retried_gets > 0, "the race never happened");
}

// ---- F6, F7, F8: resolution and connecting ----------------------------------------------

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port with nothing listening on it.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answering_server() -> RawServer {
    RawServer::start(Box::new(|i, mut tcp, log| {
        while let Ok(Some(req)) = read_request(&mut tcp) {
            record(log, i, req);
            send(&mut tcp, OK);
        }
    }))
}

#[test]
fn f6_resolver_failures_are_dns_errors_with_the_cause() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    reactor.ctx().set_resolver(|host: &str, _port: u16| {
        use std::io::{Error, ErrorKind};
        match host {
            "nx.test" => Err(Error::new(ErrorKind::NotFound, "NXDOMAIN")),
            "servfail.test" => Err(Error::other("SERVFAIL")),
            _ => Ok(Vec::new()),
        }
    });
    for (host, says) in [
        ("nx.test", "NXDOMAIN"),
        ("servfail.test", "SERVFAIL"),
        ("empty.test", "no addresses"),
    ] {
        let (out, _) = run(&mut reactor, agent, "GET", &format!("http://{host}/"), None);
        let err = out.error().expect("resolution fails").clone();
        assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
        match err.cause() {
            Cause::Transport(TransportError::Dns(m)) => {
                assert!(m.contains(host) && m.contains(says), "{m}")
            }
            other => panic!("{host}: expected a DNS error, got {other:?}"),
        }
        assert!(!err.server_may_have_processed());
    }
    assert_nothing_pooled(&mut reactor, agent);
    baseline.assert_back(&mut reactor);
}

#[test]
fn f6_a_slow_resolver_never_blocks_the_reactor() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = answering_server();
    let port = server.addr.port();
    reactor.ctx().set_resolver(move |_: &str, _: u16| {
        std::thread::sleep(Duration::from_millis(600));
        Ok(vec![local(port)])
    });
    let slow = issue(reactor.ctx(), agent, "GET", "http://slow.test/", None);
    let fast = issue(reactor.ctx(), agent, "GET", &server.url("/fast"), None);
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    let start = Instant::now();
    reactor
        .ctx()
        .call_later(Duration::from_millis(50), move |_| {
            f.set(Some(Instant::now()))
        });
    turn_until(&mut reactor, LIMIT, || finished(&slow));
    let fast_at = fast.borrow().at.expect("the IP request finished");
    let slow_at = slow.borrow().at.unwrap();
    let fired = fired.get().expect("the timer fired");
    assert!(fired < slow_at && fast_at < slow_at);
    assert!(
        fired - start < Duration::from_millis(300),
        "timer late by {:?}",
        fired - start
    );
    assert!(fast.borrow().is_done() && slow.borrow().is_done());
    wind_down(&mut reactor, agent, server, baseline);
}

#[test]
fn f6_resolution_is_bounded_by_the_connect_timeout() {
    let config = AgentConfig {
        connect_timeout: Some(Duration::from_millis(300)),
        ..config()
    };
    let (mut reactor, agent, baseline) = reactor_and_agent(config);
    reactor.ctx().set_resolver(|_: &str, _: u16| {
        std::thread::sleep(Duration::from_millis(1500));
        Err(std::io::Error::other("too late"))
    });
    let (out, took) = run(&mut reactor, agent, "GET", "http://hang.test/", None);
    let err = out.error().unwrap();
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Connect),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(700),
        "{took:?}"
    );
    // The resolver thread's late answer finds nothing to act on.
    turn_for(&mut reactor, Duration::from_millis(1400));
    assert_nothing_pooled(&mut reactor, agent);
    baseline.assert_back(&mut reactor);
}

/// The one test that asks the system resolver. `.invalid` never resolves (RFC 6761), but the
/// question may leave the machine, so it is not run by default.
#[test]
#[ignore = "asks the system resolver, which may use the network"]
fn f6_system_resolver_on_name_invalid() {
    let (mut reactor, agent, _) = reactor_and_agent(config());
    let (out, _) = run(&mut reactor, agent, "GET", "http://name.invalid/", None);
    let err = out.error().unwrap();
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Dns(_))),
        "{err}"
    );
}

#[test]
fn f7_connect_refused_quickly() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let (out, took) = run(&mut reactor, agent, "GET", &url, None);
    let err = out.error().unwrap();
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::ConnectionRefused),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_nothing_pooled(&mut reactor, agent);
    baseline.assert_back(&mut reactor);
}

#[test]
fn f7_next_address_is_tried_after_a_refusal() {
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = answering_server();
    let (dead, dead2, live) = (dead_port(), dead_port(), server.addr.port());
    reactor
        .ctx()
        .set_resolver(move |host: &str, _: u16| match host {
            "multi.test" => Ok(vec![local(dead), local(live)]),
            _ => Ok(vec![local(dead), local(dead2)]),
        });
    let (out, _) = run(&mut reactor, agent, "GET", "http://multi.test/", None);
    assert!(out.is_done(), "{:?}", out.result);
    let (out, _) = run(&mut reactor, agent, "GET", "http://alldead.test/", None);
    // Every address refused: the error says how many were tried and the last one's error.
    assert_eq!(
        out.error().unwrap().cause(),
        &Cause::Transport(TransportError::AllAttemptsFailed {
            tried: 2,
            last_addr: local(dead2),
            last: Box::new(TransportError::ConnectionRefused),
        })
    );
    let log = wind_down(&mut reactor, agent, server, baseline);
    assert_eq!(log.requests.len(), 1);
}

/// A listener with a backlog of 0 whose accept queue is filled and never drained: Linux
/// drops further SYNs, so a connect to it never completes. Returns the listener and the
/// connections that fill the queue, or `None` if this kernel does not behave so (checked with
/// a probe).
fn full_backlog_listener() -> Option<(socket2::Socket, Vec<TcpStream>)> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&local(0).into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => return Some((sock, fillers)),
        }
    }
    None
}

#[test]
fn f8_connect_timeout_at_the_configured_value() {
    let timeout = Duration::from_millis(400);
    let config = AgentConfig {
        connect_timeout: Some(timeout),
        ..config()
    };
    let (mut reactor, agent, baseline) = reactor_and_agent(config);
    let Some((listener, fillers)) = full_backlog_listener() else {
        println!("this kernel completes connects to a full accept queue: F8 not injectable");
        return;
    };
    let port = listener.local_addr().unwrap().as_socket().unwrap().port();
    let (out, took) = run(
        &mut reactor,
        agent,
        "GET",
        &format!("http://127.0.0.1:{port}/"),
        None,
    );
    let err = out.error().expect("the connect never completes");
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Connect),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestNotSent);
    // ±10 %, plus slack above for one reactor turn and scheduling on a busy machine.
    assert!(
        took >= timeout * 9 / 10 && took <= timeout * 11 / 10 + Duration::from_millis(60),
        "{took:?}"
    );
    assert_nothing_pooled(&mut reactor, agent);
    drop((listener, fillers));
    baseline.assert_back(&mut reactor);
}

// ---- F10, F11: slow and tiny-window readers of our upload -------------------------------

/// An upload of `total` bytes, produced 16 KiB at a time while the sink has room; counts
/// what it handed over.
struct Upload {
    total: u64,
    produced: Rc<Cell<u64>>,
    pattern: bool,
}

impl BodyProducer for Upload {
    fn length(&self) -> Option<u64> {
        Some(self.total)
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        let mut chunk = [0u8; 16 * 1024];
        while self.produced.get() < self.total && !sink.is_full() {
            let at = self.produced.get();
            let n = (self.total - at).min(chunk.len() as u64) as usize;
            if self.pattern {
                for (k, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern_byte(at + k as u64);
                }
            }
            sink.write(&chunk[..n]);
            self.produced.set(at + n as u64);
        }
        if self.produced.get() == self.total {
            Produce::Done
        } else {
            Produce::More
        }
    }
}

fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn sysctl_max(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().last()?.parse().ok())
        .unwrap_or(8 << 20)
}

#[test]
fn f10_server_stops_reading_our_upload() {
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(400)),
        ..config()
    };
    let (mut reactor, agent, baseline) = reactor_and_agent(config);
    let read_by_server = Arc::new(Mutex::new(0u64));
    let r = read_by_server.clone();
    let client_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = client_done.clone();
    let server = RawServer::start(Box::new(move |_, mut tcp, _| {
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < buf.len() {
            match tcp.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        *r.lock().unwrap() = n as u64;
        // Stop reading; hold the socket until the client has given up (at most 3 s).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3)
            && !done.load(std::sync::atomic::Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(tcp);
    }));
    let produced = Rc::new(Cell::new(0));
    let upload = Upload {
        total: 100 << 20,
        produced: produced.clone(),
        pattern: false,
    };
    let (out, took) = run(
        &mut reactor,
        agent,
        "POST",
        &server.url("/upload"),
        Some(Box::new(upload)),
    );
    client_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = out.error().expect("the stalled upload fails").clone();
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Read),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestTransmissionFailed, "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // What was produced is in the server, in the kernel's buffers (both ends), or in our
    // write buffer, which stays near its 64 KiB high-water mark.
    let kernel =
        sysctl_max("/proc/sys/net/ipv4/tcp_wmem") + sysctl_max("/proc/sys/net/ipv4/tcp_rmem");
    let ours = produced.get() - *read_by_server.lock().unwrap();
    assert!(
        ours <= kernel + 256 * 1024,
        "{} bytes produced beyond what the kernel can hold",
        ours.saturating_sub(kernel)
    );
    assert!(produced.get() < 100 << 20);
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
}

#[test]
fn f11_tiny_window_and_one_byte_reads_keep_the_bytes_intact() {
    use socket2::{Domain, Socket, Type};
    const TOTAL: u64 = 192 * 1024;
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Accepted sockets inherit the tiny receive buffer: the client's writes meet a window of
    // a few KiB, so they are partial and hit WouldBlock over and over.
    sock.set_recv_buffer_size(2048).unwrap();
    sock.bind(&local(0).into()).unwrap();
    sock.listen(16).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let rec = received.clone();
    let server = RawServer::start_on(
        sock.into(),
        Box::new(move |_, mut tcp, _| {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let mut body = Vec::with_capacity(TOTAL as usize);
            while (body.len() as u64) < TOTAL {
                match tcp.read(&mut byte) {
                    Ok(1) => body.push(byte[0]),
                    _ => break,
                }
            }
            *rec.lock().unwrap() = body;
            send(&mut tcp, OK);
        }),
    );
    let upload = Upload {
        total: TOTAL,
        produced: Rc::new(Cell::new(0)),
        pattern: true,
    };
    let (out, _) = run(
        &mut reactor,
        agent,
        "PUT",
        &server.url("/put"),
        Some(Box::new(upload)),
    );
    assert!(out.is_done(), "{:?}", out.result);
    let body = received.lock().unwrap().clone();
    assert_eq!(body.len() as u64, TOTAL);
    let first_bad = (0..TOTAL).find(|&i| body[i as usize] != pattern_byte(i));
    assert_eq!(first_bad, None, "bytes out of order or corrupted");
    wind_down(&mut reactor, agent, server, baseline);
}

// ---- F13: timers ------------------------------------------------------------------------

#[test]
fn f13_many_equal_deadlines_fire_once_and_cancel_after_fire_is_a_no_op() {
    let mut reactor = Reactor::new().unwrap();
    let baseline = Baseline::take(&mut reactor);
    const N: usize = 2000;
    let fired = Rc::new(RefCell::new(vec![0u32; N]));
    let ctx = reactor.ctx();
    // One `ctx`: one `now`, so every deadline is exactly the same instant.
    let ids: Vec<_> = (0..N)
        .map(|i| {
            let f = fired.clone();
            ctx.call_later(Duration::from_millis(30), move |_| f.borrow_mut()[i] += 1)
        })
        .collect();
    // Cancel every third before it fires.
    for id in ids.iter().step_by(3) {
        assert!(ctx.cancel_timer(*id));
    }
    assert_eq!(reactor.stats().timers, N - N.div_ceil(3));
    turn_until(&mut reactor, LIMIT, || reactor_timers_done(&fired, N));
    turn_for(&mut reactor, Duration::from_millis(50));
    let fired = fired.borrow();
    for (i, n) in fired.iter().enumerate() {
        let expected = u32::from(i % 3 != 0);
        assert_eq!(*n, expected, "timer {i}");
    }
    // Cancelling after firing (or twice) is a no-op and leaks nothing.
    for id in &ids {
        assert!(!reactor.ctx().cancel_timer(*id));
    }
    baseline.assert_back(&mut reactor);
}

fn reactor_timers_done(fired: &Rc<RefCell<Vec<u32>>>, n: usize) -> bool {
    fired.borrow().iter().filter(|&&c| c > 0).count() == n - n.div_ceil(3)
}

// ---- F14: file-system faults during a download ------------------------------------------

fn run_download(
    reactor: &mut Reactor,
    agent: Agent,
    url: &str,
    target: &Path,
) -> Result<Downloaded, Error> {
    let out: Rc<RefCell<Option<Result<Downloaded, Error>>>> = Rc::default();
    let o = out.clone();
    download(
        reactor.ctx(),
        &agent,
        Request::get(url),
        target,
        DownloadOptions::default(),
        move |_, r| *o.borrow_mut() = Some(r),
    );
    turn_until(reactor, LIMIT, || out.borrow().is_some());
    out.borrow_mut().take().unwrap()
}

/// Serves a `len`-byte body: the first half, then (after `pause`) the rest. Every
/// connection is answered; `Connection: keep-alive`.
fn file_server(len: usize, pause: Duration) -> RawServer {
    RawServer::start(Box::new(move |i, mut tcp, log| {
        while let Ok(Some(req)) = read_request(&mut tcp) {
            record(log, i, req);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            send(&mut tcp, head.as_bytes());
            let body = vec![b'd'; len];
            send(&mut tcp, &body[..len / 2]);
            std::thread::sleep(pause);
            send(&mut tcp, &body[len / 2..]);
        }
    }))
}

fn assert_file_error(err: &Error, says: &str) {
    match err.cause() {
        Cause::File(m) => assert!(m.contains(says), "{m}"),
        other => panic!("expected a file error, got {other:?}"),
    }
}

/// A directory we cannot create files in: mode 0555, or (for root, who ignores modes) sysfs.
fn unwritable_dir(tmp: &TestDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::File::create(dir.join("probe")).is_err() {
        return dir;
    }
    let _ = std::fs::remove_file(dir.join("probe"));
    PathBuf::from("/sys")
}

#[test]
fn f14_permission_denied() {
    let tmp = TestDir::new("faults-f14-perm");
    let dir = unwritable_dir(&tmp);
    let target = dir.join("weft-download.bin");
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = file_server(1000, Duration::ZERO);
    let err = run_download(&mut reactor, agent, &server.url("/f"), &target).unwrap_err();
    assert_file_error(&err, "ermission denied");
    assert!(!target.exists());
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
}

#[test]
fn f14_target_directory_removed_during_the_download() {
    let tmp = TestDir::new("faults-f14-gone");
    let dir = tmp.path().join("sub");
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("file.bin");
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = file_server(200_000, Duration::from_millis(200));
    let out: Rc<RefCell<Option<Result<Downloaded, Error>>>> = Rc::default();
    let o = out.clone();
    download(
        reactor.ctx(),
        &agent,
        Request::get(server.url("/f")),
        &target,
        DownloadOptions::default(),
        move |_, r| *o.borrow_mut() = Some(r),
    );
    // Once the partial file exists, pull the directory out from under it.
    let part = weft::client::partial_path(&target).unwrap();
    turn_until(&mut reactor, LIMIT, || part.exists());
    std::fs::remove_dir_all(&dir).unwrap();
    turn_until(&mut reactor, LIMIT, || out.borrow().is_some());
    let err = out.borrow_mut().take().unwrap().unwrap_err();
    assert_file_error(&err, "No such file");
    assert!(!target.exists() && !dir.exists());
    // Writes to the unlinked partial file succeed; the rename at the end fails. The body was
    // read to its end by then, so its connection may rightly be pooled; nothing else is left.
    let s = pool_stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued, s.requests), (0, 0, 0), "{s:?}");
    assert!(s.idle <= 1, "{s:?}");
    wind_down(&mut reactor, agent, server, baseline);
}

/// A 64 KiB tmpfs mounted for one test (needs the right to mount), unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path) -> Option<SmallFs> {
        std::fs::create_dir_all(at).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "weft-test", at.to_str()?])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallFs(at.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn f14_disk_full() {
    let tmp = TestDir::new("faults-f14-full");
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = file_server(512 * 1024, Duration::ZERO);
    let Some(fs) = SmallFs::mount(&tmp.path().join("small")) else {
        // No right to mount here: the injected writer error below still runs.
        println!("cannot mount a tmpfs: disk full is covered by f14_disk_full_injected only");
        return;
    };
    let target = fs.0.join("file.bin");
    let err = run_download(&mut reactor, agent, &server.url("/f"), &target).unwrap_err();
    assert_file_error(&err, "No space left");
    assert!(!target.exists());
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
    drop(fs);
}

/// Disk full, injected: a body protocol writes to /dev/full (every write fails with ENOSPC)
/// and stops delivery; the connection is closed, not pooled.
#[test]
fn f14_disk_full_injected() {
    struct ToDevFull {
        file: std::fs::File,
        error: Rc<RefCell<Option<std::io::Error>>>,
        ended: Rc<Cell<bool>>,
    }
    impl BodyProtocol for ToDevFull {
        fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
            if let Err(e) = self.file.write_all(data) {
                *self.error.borrow_mut() = Some(e);
                body.stop();
            }
        }
        fn connection_lost(&mut self, _: &mut Ctx, _: BodyEnd) {
            self.ended.set(true);
        }
    }
    let (mut reactor, agent, baseline) = reactor_and_agent(config());
    let server = file_server(512 * 1024, Duration::ZERO);
    let error = Rc::new(RefCell::new(None));
    let ended = Rc::new(Cell::new(false));
    let (e, d) = (error.clone(), ended.clone());
    agent.request(
        reactor.ctx(),
        Request::new("GET", server.url("/f")),
        Box::new(move |ctx, r| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            r.unwrap().deliver_body(
                ctx,
                ToDevFull {
                    file,
                    error: e,
                    ended: d,
                },
            );
        }),
    );
    turn_until(&mut reactor, LIMIT, || ended.get());
    let err = error.borrow_mut().take().expect("the write failed");
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    assert_nothing_pooled(&mut reactor, agent);
    wind_down(&mut reactor, agent, server, baseline);
}
