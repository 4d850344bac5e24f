//! Agent behaviour over time: TLS endings, cancellation at every phase, idle and keep-alive
//! timeouts, caps, producers that wait, and calls from other threads.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::scripted::*;
use support::servers::{TestCa, TestDir};
use weft::client::{
    Agent, AgentConfig, BodyEnd, BodyProducer, BodySink, Cause, HttpAgent, Phase, PoolStats,
    Produce, ReadProducer, Request, TimeoutKind,
};
use weft::reactor::Reactor;
use weft::tls::TlsConnector;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

struct Tls {
    _dir: TestDir,
    ca: TestCa,
}

impl Tls {
    fn new() -> Tls {
        let dir = TestDir::new("weft-agent-tls");
        let ca = TestCa::generate(dir.path());
        Tls { _dir: dir, ca }
    }

    fn serve(&self, scripts: Vec<Vec<Step>>) -> ScriptedServer {
        let chain: Vec<CertificateDer<'static>> = vec![self.ca.server_cert_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.ca.server_key_der.clone()));
        ScriptedServer::start_tls(scripts, chain, key)
    }

    fn config(&self) -> AgentConfig {
        AgentConfig {
            tls: TlsConnector::with_root_pem(self.ca.ca_cert_pem.as_bytes()).unwrap(),
            ..test_config()
        }
    }
}

fn https(srv: &ScriptedServer, path: &str) -> String {
    format!("https://localhost:{}{}", srv.addr.port(), path)
}

fn stats(reactor: &mut Reactor, agent: Agent) -> PoolStats {
    let out = Rc::new(Cell::new(None));
    let o = out.clone();
    agent.stats(reactor.ctx(), move |_, s| o.set(Some(s)));
    turn_until(reactor, Duration::from_secs(5), || out.get().is_some());
    out.get().unwrap()
}

#[test]
fn tls_close_delimited_with_close_notify_is_done() {
    let tls = Tls::new();
    let srv = tls.serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\n\r\nsecure body"),
        Step::Close,
    ]]);
    let out = run_one(tls.config(), Req::get(https(&srv, "/")));
    assert_eq!(out.body, b"secure body");
    assert_eq!(out.end(), Some(&BodyEnd::Done));
}

#[test]
fn tls_close_delimited_without_close_notify_is_truncated() {
    // RFC 9112 section 9.8: without a closure alert the body may have been cut by an attacker.
    let tls = Tls::new();
    let srv = tls.serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\n\r\ncut short"),
        Step::DropTcp,
    ]]);
    let out = run_one(tls.config(), Req::get(https(&srv, "/")));
    assert_eq!(out.body, b"cut short");
    let err = out.error().expect("a TLS body without close_notify fails");
    assert_eq!(err.phase(), Phase::ResponseFailed);
    assert_eq!(
        err.cause(),
        &Cause::Protocol(weft::proto::ProtocolError::Incomplete {
            expected: None,
            received: 9
        })
    );
}

#[test]
fn tls_keep_alive_reuses_the_connection() {
    let tls = Tls::new();
    let srv = tls.serve(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let outs = run_sequential(
        tls.config(),
        vec![Req::get(https(&srv, "/1")), Req::get(https(&srv, "/2"))],
    );
    assert!(outs.iter().all(|o| o.is_done() && o.body == b"hello"));
    assert_eq!(srv.connections(), 1);
    let fresh = outs[0].timing.unwrap();
    let (dns, connect, tls) = (
        fresh.dns.unwrap(),
        fresh.connect.unwrap(),
        fresh.tls.unwrap(),
    );
    assert!(
        fresh.queued <= dns && dns <= connect && connect <= tls,
        "{fresh:?}"
    );
    assert!(
        tls <= fresh.request_sent && fresh.request_sent <= fresh.head,
        "{fresh:?}"
    );
    let reused = outs[1].timing.unwrap();
    assert!(
        reused.reused && reused.dns.is_none() && reused.tls.is_none(),
        "{reused:?}"
    );
}

#[test]
fn tls_handshake_stall_is_a_connect_timeout() {
    // A plain TCP server that never speaks TLS: the handshake stalls.
    let srv = ScriptedServer::start(vec![vec![Step::Sleep(Duration::from_secs(3))]]);
    let config = AgentConfig {
        connect_timeout: Some(Duration::from_millis(300)),
        ..Tls::new().config()
    };
    let started = Instant::now();
    let out = run_one(config, Req::get(https(&srv, "/")));
    let err = out.error().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Connect));
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn cancel_while_awaiting_the_response() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_secs(2)),
        write(OK_HELLO),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let slot: Slot = Default::default();
    let s = slot.clone();
    let handle = agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |_, r| s.borrow_mut().result = Some(r.map(|_| BodyEnd::Done))),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || {
        !srv.requests().is_empty()
    });
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    let err = slot.borrow().error().cloned().unwrap();
    assert!(err.is_cancelled());
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
    assert_eq!(stats(&mut reactor, agent).active, 0);
}

#[test]
fn cancel_during_the_body() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),
        Step::Sleep(Duration::from_secs(2)),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let (slot, handle) = issue_with_handle(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        slot.borrow().body.len() == 5
    });
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    let err = slot.borrow().error().cloned().unwrap();
    assert!(err.is_cancelled());
    assert_eq!(err.phase(), Phase::ResponseFailed);
    assert_eq!(slot.borrow().body, b"12345");
    let s = stats(&mut reactor, agent);
    assert_eq!((s.active, s.idle, s.requests), (0, 0, 0));
}

#[test]
fn total_timeout_during_the_body_fails_the_body() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let config = AgentConfig {
        timeout: Some(Duration::from_millis(400)),
        ..test_config()
    };
    let out = run_one(config, Req::get(srv.url("/")));
    assert_eq!(out.body, b"12345");
    let err = out.error().unwrap();
    assert_eq!(err.phase(), Phase::ResponseFailed);
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Total));
}

#[test]
fn idle_timeout_closes_pooled_connections() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        idle_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    assert_eq!(stats(&mut reactor, agent).idle, 1);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let s = stats(&mut reactor, agent);
    assert_eq!((s.idle, s.active), (0, 0));
    assert_eq!(reactor.ctx().connection_count(), 0);
}

/// The idle time counts from the last time a connection went idle: a connection reused
/// shortly before its first idle period would have ended is kept for a whole new period
/// (the timer armed for the first period re-arms itself rather than closing it).
#[test]
fn idle_time_restarts_when_a_pooled_connection_is_reused() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&first));
    let idled = Instant::now();
    // Reused at about 250 ms into the first idle period.
    while idled.elapsed() < Duration::from_millis(250) {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let second = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&second));
    assert!(second.borrow().is_done());
    let idled_again = Instant::now();
    // Past the end of the first period (400 ms after `idled`), well inside the second.
    while idled.elapsed() < Duration::from_millis(520) {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    if idled_again.elapsed() < Duration::from_millis(380) {
        let s = stats(&mut reactor, agent);
        assert_eq!(
            s.idle, 1,
            "closed before its second idle period ended: {s:?}"
        );
    }
    // And closed once the second period is over.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats(&mut reactor, agent).idle != 0 && Instant::now() < deadline {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(stats(&mut reactor, agent).idle, 0);
    assert!(idled_again.elapsed() >= Duration::from_millis(400));
    assert_eq!(srv.connections(), 1);
}

#[test]
fn server_keep_alive_timeout_shortens_the_idle_time() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok"),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    assert_eq!(stats(&mut reactor, agent).idle, 1);
    // The default idle time is 240 s; the server's 1 s (less a margin) wins.
    let idled = Instant::now();
    while stats(&mut reactor, agent).idle != 0 {
        assert!(idled.elapsed() < Duration::from_secs(3), "still pooled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(idled.elapsed() >= Duration::from_millis(300));
}

#[test]
fn total_cap_spans_hosts() {
    let a = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(200)),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let b = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        max_active_total: 1,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(a.url("/")));
    let second = issue(reactor.ctx(), agent, Req::get(b.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        !a.requests().is_empty()
    });
    let s = stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued), (1, 1));
    assert_eq!(b.connections(), 0, "second host waits for the total cap");
    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&first) && finished(&second)
    });
    assert!(first.borrow().is_done() && second.borrow().is_done());
}

#[test]
fn queue_timeout_fails_waiting_requests() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(800)),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        max_active_per_host: 1,
        queue_timeout: Some(Duration::from_millis(200)),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    let second = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&first) && finished(&second)
    });
    assert!(first.borrow().is_done(), "the first was admitted in time");
    let err = second.borrow().error().cloned().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Queue));
    assert_eq!(err.phase(), Phase::RequestNotSent);
}

/// A producer that hands out its pieces one per timer tick, as data from elsewhere would.
struct Trickle {
    pieces: Vec<&'static [u8]>,
}

impl BodyProducer for Trickle {
    fn length(&self) -> Option<u64> {
        None
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        if self.pieces.is_empty() {
            return Produce::Done;
        }
        sink.write(self.pieces.remove(0));
        let handle = sink.handle();
        sink.ctx()
            .call_later(Duration::from_millis(20), move |ctx| handle.resume(ctx));
        Produce::Wait
    }
}

#[test]
fn waiting_producer_is_resumed_by_its_handle() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut req = Req::new("POST", srv.url("/"));
    req.body = Some(Box::new(Trickle {
        pieces: vec![b"one,", b"two,", b"three"],
    }));
    let out = run_one(test_config(), req);
    assert!(out.is_done(), "{:?}", out.result);
    let body = &srv.requests()[0].1;
    let text = String::from_utf8_lossy(body);
    assert!(
        text.ends_with("\r\n\r\n4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn large_upload_from_a_file_streams_with_backpressure() {
    let dir = TestDir::new("weft-upload");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let path = dir.write("upload.bin", &data);
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut req = Req::new("PUT", srv.url("/upload"));
    req.body = Some(Box::new(ReadProducer::file(&path).unwrap()));
    let out = run_one(test_config(), req);
    assert!(out.is_done(), "{:?}", out.result);
    let got = &srv.requests()[0].1;
    let head_end = find(got, b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&got[..head_end]).contains("Content-Length: 5000000\r\n"));
    assert!(got[head_end..] == data[..], "uploaded bytes differ");
}

#[test]
fn producer_that_writes_too_much_fails_transmission() {
    struct Liar;
    impl BodyProducer for Liar {
        fn length(&self) -> Option<u64> {
            Some(3)
        }
        fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
            sink.write(b"too long");
            Produce::Done
        }
    }
    let srv = ScriptedServer::start(vec![vec![Step::ExpectHead, Step::WaitClose]]);
    let mut req = Req::new("POST", srv.url("/"));
    req.body = Some(Box::new(Liar));
    let out = run_one(test_config(), req);
    let err = out.error().unwrap();
    assert_eq!(err.phase(), Phase::RequestTransmissionFailed);
    assert!(matches!(err.cause(), Cause::Producer(_)));
}

#[test]
fn requests_can_be_issued_from_another_thread() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let remote = reactor.remote();
    let url = srv.url("/from-thread");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        remote
            .call(move |ctx| {
                agent.request(
                    ctx,
                    Request::new("GET", &url),
                    Box::new(move |ctx, r| {
                        let code = r.as_ref().map(|r| r.code).ok();
                        if let Ok(resp) = r {
                            resp.collect(ctx, 1024, move |_, body| {
                                tx.send((code, body.map(|b| b.body).ok())).unwrap();
                            });
                        }
                    }),
                );
            })
            .unwrap();
    });
    let got = Rc::new(RefCell::new(None));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        if let Ok(v) = rx.try_recv() {
            *got.borrow_mut() = Some(v);
        }
        got.borrow().is_some()
    });
    assert_eq!(
        got.borrow().clone().unwrap(),
        (Some(200), Some(b"hello".to_vec()))
    );
}

#[test]
fn collect_enforces_its_cap_and_closes() {
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
            write(&[b'x'; 100]),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |ctx, resp| {
            resp.unwrap().collect(ctx, 10, move |_, body| {
                *r.borrow_mut() = Some(body);
            });
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || {
        result.borrow().is_some()
    });
    let err = result.borrow_mut().take().unwrap().unwrap_err();
    assert_eq!(err.cause(), &Cause::BodyTooLarge(10));
    let next = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&next));
    assert!(next.borrow().is_done());
    assert_eq!(srv.connections(), 2);
}

#[test]
fn read_timeout_fires_on_a_stalled_body_but_not_on_a_slow_drip() {
    let mut drip = vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"),
    ];
    for b in b"dripping" {
        drip.push(Step::Sleep(Duration::from_millis(80)));
        drip.push(write(&[*b]));
    }
    drip.push(Step::WaitClose);
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),
            Step::Sleep(Duration::from_secs(3)),
        ],
        drip,
    ]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let stalled = issue(reactor.ctx(), agent, Req::get(srv.url("/stall")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&stalled));
    let err = stalled.borrow().error().cloned().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Read));
    assert_eq!(err.phase(), Phase::ResponseFailed);
    let dripping = issue(reactor.ctx(), agent, Req::get(srv.url("/drip")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&dripping));
    assert!(
        dripping.borrow().is_done(),
        "{:?}",
        dripping.borrow().result
    );
    assert_eq!(dripping.borrow().body, b"dripping");
}

#[test]
fn per_request_timeout_overrides_the_agent() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), AgentConfig::default());
    let slot: Slot = Default::default();
    let s = slot.clone();
    let request = weft::client::Request::get(srv.url("/")).timeouts(weft::client::Timeouts {
        total: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    weft::client::HttpAgent::request(
        &agent,
        reactor.ctx(),
        request,
        Box::new(move |_, r| s.borrow_mut().result = Some(r.map(|_| BodyEnd::Done))),
    );
    let started = Instant::now();
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = slot.borrow().error().cloned().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Total));
}

#[test]
fn shutdown_fails_every_request_once_and_refuses_new_ones() {
    // One connection stalls before answering; another sends half a body then stalls.
    let server = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, Step::WaitClose],
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let waiting = issue(reactor.ctx(), agent, Req::get(server.url("/stall")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        server.requests().len() == 1
    });
    let streaming = issue(reactor.ctx(), agent, Req::get(server.url("/half")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        streaming.borrow().body == b"hello"
    });

    agent.shutdown(reactor.ctx());
    let late = issue(reactor.ctx(), agent, Req::get(server.url("/late")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&waiting) && finished(&streaming) && finished(&late)
    });
    let cause_phase = |slot: &Slot| {
        let o = slot.borrow();
        let e = o.error().expect("failed");
        (matches!(e.cause(), Cause::AgentClosed), e.phase())
    };
    assert_eq!(cause_phase(&waiting), (true, Phase::ResponseNeverReceived));
    assert_eq!(cause_phase(&streaming), (true, Phase::ResponseFailed));
    assert_eq!(cause_phase(&late), (true, Phase::RequestNotSent));
    assert!(matches!(streaming.borrow().end(), Some(BodyEnd::Failed(_))));
    // Two connections, and the request made after the shutdown never reached the server.
    turn_until(&mut reactor, Duration::from_secs(5), || {
        server.connections() == 2
    });
    for _ in 0..5 {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(server.requests().len(), 2);
}

/// The pool keeps an entry per host only while the host has a connection or a waiting
/// request: a client that meets many hosts over its life does not keep them all.
#[test]
fn the_pool_forgets_hosts_it_no_longer_uses() {
    // Distinct ports are distinct pool keys; half the servers close after answering.
    let servers: Vec<ScriptedServer> = (0..12)
        .map(|i| {
            let script = if i % 2 == 0 {
                // Kept open until the client closes it.
                vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose]
            } else {
                let close =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
                vec![Step::ExpectRequest, write(close)]
            };
            ScriptedServer::start(vec![script])
        })
        .collect();
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let slots: Vec<Slot> = servers
        .iter()
        .map(|s| issue(reactor.ctx(), agent, Req::get(s.url("/"))))
        .collect();
    turn_until(&mut reactor, Duration::from_secs(10), || {
        slots.iter().all(finished)
    });
    assert!(slots.iter().all(|s| s.borrow().is_done()));
    let during = stats(&mut reactor, agent);
    assert_eq!((during.idle, during.hosts), (6, 6), "{during:?}");
    agent.close_idle(reactor.ctx());
    // The next request to any host lets the pool drop the emptied entries.
    let last = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let slot = issue(reactor.ctx(), agent, Req::get(last.url("/")));
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&slot));
    let after = stats(&mut reactor, agent);
    assert_eq!((after.idle, after.hosts), (1, 1), "{after:?}");
}

#[test]
fn a_stale_handle_does_not_cancel_the_request_that_reuses_its_slot() {
    // Two connections: the first response is dropped unread (its connection closes), the
    // second waits long enough for the stale cancel to arrive first.
    let srv = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
        vec![
            Step::ExpectRequest,
            Step::Sleep(Duration::from_millis(300)),
            write(OK_HELLO),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let first: Slot = Default::default();
    let f = first.clone();
    let stale = agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/1")),
        Box::new(move |_, r| f.borrow_mut().result = Some(r.map(|_| BodyEnd::Done))),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&first));
    assert_eq!(
        stats(&mut reactor, agent).requests,
        0,
        "the first is forgotten"
    );
    let old_id = stale.id();
    let second: Slot = Default::default();
    let s = second.clone();
    let fresh = agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/2")),
        Box::new(move |_, r| s.borrow_mut().result = Some(r.map(|_| BodyEnd::Done))),
    );
    assert_ne!(fresh.id(), old_id);
    turn_until(&mut reactor, Duration::from_secs(5), || {
        srv.requests().len() == 2
    });
    stale.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&second));
    assert!(
        second.borrow().error().is_none(),
        "{:?}",
        second.borrow().error()
    );
    assert_eq!(stats(&mut reactor, agent).requests, 0);
}
