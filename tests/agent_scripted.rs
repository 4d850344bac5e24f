//! The Agent against small scripted servers on 127.0.0.1: framing outcomes, pooling,
//! retries, timeouts, flow control and cancellation.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, BytesProducer, Cause, HttpAgent, Phase,
    ReadProducer, Request,
};
use weft::proto::{ProtocolError, RequestError};
use weft::reactor::{Ctx, Reactor, TransportError};

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

fn serve(scripts: Vec<Vec<Step>>) -> ScriptedServer {
    ScriptedServer::start(scripts)
}

#[test]
fn content_length_body_is_delivered_and_done() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/a?b=1")));
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body, b"hello");
    assert!(out.is_done(), "{:?}", out.result);
    let reqs = srv.requests();
    let head = String::from_utf8_lossy(&reqs[0].1);
    assert!(head.starts_with("GET /a?b=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: {}\r\n", srv.addr)),
        "{head}"
    );
}

#[test]
fn chunked_body_with_trailers() {
    let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(reply),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    assert_eq!(out.body, b"hello world");
    assert_eq!(out.trailers.get("x-sum"), Some(&b"42"[..]));
    assert!(
        !out.headers.contains("x-sum"),
        "trailers stay out of the head"
    );
    assert!(out.is_done());
}

#[test]
fn close_delimited_body_reports_potential_data_loss() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
        Step::Close,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    assert_eq!(out.body, b"until close");
    assert_eq!(out.end(), Some(&BodyEnd::PotentialDataLoss));
}

#[test]
fn truncated_body_is_a_typed_failure() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        Step::Close,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    assert_eq!(out.body, b"0123456789");
    let err = out.error().expect("a truncated body fails");
    assert_eq!(err.phase(), Phase::ResponseFailed);
    assert_eq!(
        err.cause(),
        &Cause::Protocol(ProtocolError::Incomplete {
            expected: Some(100),
            received: 10
        })
    );
}

#[test]
fn bad_chunk_size_fails_the_body() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    let err = out.error().expect("bad chunk fails");
    assert_eq!(
        err.cause(),
        &Cause::Protocol(ProtocolError::InvalidChunkSize)
    );
    assert!(out.body.is_empty());
}

#[test]
fn invalid_content_length_is_rejected_before_the_body() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello"),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    let err = out.error().expect("invalid CL fails");
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
    assert_eq!(
        err.cause(),
        &Cause::Protocol(ProtocolError::InvalidContentLength)
    );
}

#[test]
fn keep_alive_connection_is_reused() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye"),
        Step::WaitClose,
    ]]);
    let outs = run_sequential(
        test_config(),
        vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
    );
    assert_eq!(outs[0].body, b"hello");
    assert_eq!(outs[1].body, b"bye");
    assert_eq!(srv.connections(), 1, "second request reused the connection");
    let reqs = srv.requests();
    assert_eq!((reqs[0].0, reqs[1].0), (0, 0));
    let (t0, t1) = (outs[0].timing.unwrap(), outs[1].timing.unwrap());
    assert!(!t0.reused && t1.reused);
    for t in [t0, t1] {
        assert!(t.queued <= t.request_sent, "{t:?}");
        assert!(t.request_sent <= t.first_byte, "{t:?}");
        assert!(t.first_byte <= t.head, "{t:?}");
    }
}

#[test]
fn connection_close_is_not_reused() {
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    let srv = serve(vec![
        vec![Step::ExpectRequest, write(close), Step::Close],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let outs = run_sequential(
        test_config(),
        vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
    );
    assert!(outs[0].is_done() && outs[1].is_done());
    assert_eq!(srv.connections(), 2);
}

#[test]
fn http10_without_keep_alive_is_not_reused() {
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let outs = run_sequential(
        test_config(),
        vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
    );
    assert!(outs[0].is_done() && outs[1].is_done());
    assert_eq!(srv.connections(), 2);
}

#[test]
fn idle_connection_closed_by_server_is_dropped() {
    let srv = serve(vec![
        vec![Step::ExpectRequest, write(OK_HELLO), Step::Close],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&first));
    // Give the close time to arrive while the connection idles in the pool.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..10 {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let stats = Rc::new(Cell::new(None));
    let s = stats.clone();
    agent.stats(reactor.ctx(), move |_, st| s.set(Some(st)));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        stats.get().is_some()
    });
    assert_eq!(
        stats.get().unwrap().idle,
        0,
        "closed idle connection left the pool"
    );
    let second = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&second));
    assert!(second.borrow().is_done());
    assert_eq!(srv.connections(), 2);
}

#[test]
fn get_is_retried_once_when_a_reused_connection_dies_silently() {
    // The server answers once, then reads the second request and closes without a byte.
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(OK_HELLO),
            Step::ExpectRequest,
            Step::Close,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let outs = run_sequential(
        test_config(),
        vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
    );
    assert!(outs[1].is_done(), "{:?}", outs[1].result);
    assert_eq!(srv.connections(), 2);
    assert_eq!(srv.requests().len(), 3, "the GET was sent twice");
}

#[test]
fn post_is_not_retried() {
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(OK_HELLO),
            Step::ExpectRequest,
            Step::Close,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let mut post = Req::new("POST", srv.url("/2"));
    post.body = Some(Box::new(BytesProducer::new(b"x=1".to_vec())));
    let outs = run_sequential(test_config(), vec![Req::get(srv.url("/1")), post]);
    let err = outs[1].error().expect("POST on a dead connection fails");
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
    assert!(err.server_may_have_processed());
    assert_eq!(srv.connections(), 1);
}

#[test]
fn connect_refused_is_request_not_sent() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let out = run_one(test_config(), Req::get(format!("http://{addr}/")));
    let err = out.error().unwrap();
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::ConnectionRefused)
    );
}

#[test]
fn total_timeout_fires_on_a_silent_server() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let config = AgentConfig {
        timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let out = run_one(config, Req::get(srv.url("/")));
    let err = out.error().unwrap();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
}

#[test]
fn bytes_after_the_response_prevent_reuse() {
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let outs = run_sequential(
        test_config(),
        vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
    );
    assert_eq!(outs[0].body, b"ok");
    assert_eq!(
        outs[1].body, b"hello",
        "the injected response never reaches request 2"
    );
    assert_eq!(srv.connections(), 2);
}

#[test]
fn head_response_has_no_body_and_is_reused() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let outs = run_sequential(
        test_config(),
        vec![Req::new("HEAD", srv.url("/")), Req::get(srv.url("/"))],
    );
    assert!(outs[0].body.is_empty() && outs[0].is_done());
    assert_eq!(outs[1].body, b"hello");
    assert_eq!(srv.connections(), 1);
}

#[test]
fn interim_responses_are_skipped() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body, b"hello");
}

#[test]
fn header_injection_is_refused_before_connecting() {
    let srv = serve(vec![]);
    let mut req = Req::get(srv.url("/"));
    req.headers.append("X-Evil", b"a\r\nInjected: yes");
    let out = run_one(test_config(), req);
    let err = out.error().unwrap();
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(matches!(err.cause(), Cause::InvalidRequest(_)));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(srv.connections(), 0);
}

#[test]
fn a_configured_user_agent_with_a_line_break_is_refused_before_connecting() {
    let srv = serve(vec![]);
    let config = AgentConfig {
        user_agent: Some("weft\r\nInjected: yes".to_string()),
        ..test_config()
    };
    let out = run_one(config, Req::get(srv.url("/")));
    let err = out.error().unwrap();
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(
        matches!(err.cause(), Cause::InvalidRequest(RequestError::InvalidHeaderValue(n)) if n == "User-Agent"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(srv.connections(), 0);
}

#[test]
fn post_bodies_are_sent_with_length_or_chunked() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut a = Req::new("POST", srv.url("/a"));
    a.body = Some(Box::new(BytesProducer::new(b"name=weft".to_vec())));
    let mut b = Req::new("PUT", srv.url("/b"));
    b.body = Some(Box::new(ReadProducer::new(&b"streamed"[..], None)));
    let outs = run_sequential(test_config(), vec![a, b]);
    assert!(outs.iter().all(|o| o.is_done()));
    let reqs = srv.requests();
    let first = String::from_utf8_lossy(&reqs[0].1);
    assert!(first.contains("Content-Length: 9\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\nname=weft"), "{first}");
    let second = String::from_utf8_lossy(&reqs[1].1);
    assert!(
        second.contains("Transfer-Encoding: chunked\r\n"),
        "{second}"
    );
    assert!(
        second.ends_with("\r\n\r\n8\r\nstreamed\r\n0\r\n\r\n"),
        "{second}"
    );
}

#[test]
fn expect_continue_waits_for_100() {
    let srv = serve(vec![vec![
        Step::ExpectHead,
        Step::Sleep(Duration::from_millis(100)),
        write(b"HTTP/1.1 100 Continue\r\n\r\n"),
        Step::ReadBytes(7),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut req = Req::new("POST", srv.url("/"));
    req.headers.append("Expect", b"100-continue");
    req.body = Some(Box::new(BytesProducer::new(b"payload".to_vec())));
    let config = AgentConfig {
        continue_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let out = run_one(config, req);
    assert!(out.is_done(), "{:?}", out.result);
    let reqs = srv.requests();
    assert!(
        !reqs[0].1.ends_with(b"payload"),
        "head arrived without the body"
    );
    assert_eq!(reqs[1].1, b"payload");
}

#[test]
fn expect_continue_sends_the_body_after_a_timeout() {
    let srv = serve(vec![vec![
        Step::ExpectHead,
        Step::ReadBytes(7),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut req = Req::new("POST", srv.url("/"));
    req.headers.append("Expect", b"100-continue");
    req.body = Some(Box::new(BytesProducer::new(b"payload".to_vec())));
    let config = AgentConfig {
        continue_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let out = run_one(config, req);
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(srv.requests()[1].1, b"payload");
}

#[test]
fn early_final_response_skips_the_body_and_closes() {
    let srv = serve(vec![
        vec![
            Step::ExpectHead,
            write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let mut req = Req::new("POST", srv.url("/"));
    req.headers.append("Expect", b"100-continue");
    req.body = Some(Box::new(BytesProducer::new(b"payload".to_vec())));
    let config = AgentConfig {
        continue_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let outs = run_sequential(config, vec![req, Req::get(srv.url("/next"))]);
    assert_eq!(outs[0].status, Some(413));
    assert!(outs[0].is_done());
    assert!(outs[1].is_done());
    assert_eq!(
        srv.connections(),
        2,
        "a connection with an unsent body is not reused"
    );
}

#[test]
fn pause_holds_data_until_resume() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n"),
        Step::Sleep(Duration::from_millis(50)),
        write(b"3\r\ntwo\r\n0\r\n\r\n"),
        Step::WaitClose,
    ]]);

    struct Pauser {
        paused: Rc<Cell<bool>>,
        got: Rc<RefCell<Vec<u8>>>,
        end: Rc<RefCell<Option<BodyEnd>>>,
    }
    impl BodyProtocol for Pauser {
        fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
            assert!(!self.paused.get(), "data reached a paused protocol");
            self.got.borrow_mut().extend_from_slice(data);
            if self.got.borrow().len() == 3 {
                self.paused.set(true);
                body.pause();
                let (handle, paused) = (body.handle(), self.paused.clone());
                body.ctx()
                    .call_later(Duration::from_millis(300), move |ctx| {
                        paused.set(false);
                        handle.resume(ctx);
                    });
            }
        }
        fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
            *self.end.borrow_mut() = Some(reason);
        }
    }

    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let got = Rc::new(RefCell::new(Vec::new()));
    let end = Rc::new(RefCell::new(None));
    let (g, e) = (got.clone(), end.clone());
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |ctx, r| {
            let resp = r.unwrap();
            resp.deliver_body(
                ctx,
                Pauser {
                    paused: Rc::new(Cell::new(false)),
                    got: g,
                    end: e,
                },
            );
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        end.borrow().is_some()
    });
    assert_eq!(&*got.borrow(), b"onetwo");
    assert_eq!(end.borrow().clone(), Some(BodyEnd::Done));
}

#[test]
fn stopping_delivery_closes_the_connection() {
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);

    struct Stopper(Rc<RefCell<Option<BodyEnd>>>);
    impl BodyProtocol for Stopper {
        fn data_received(&mut self, body: &mut BodyCtx<'_>, _data: &[u8]) {
            body.stop();
        }
        fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
            *self.0.borrow_mut() = Some(reason);
        }
    }

    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let end = Rc::new(RefCell::new(None));
    let e = end.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |ctx, r| {
            r.unwrap().deliver_body(ctx, Stopper(e));
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        end.borrow().is_some()
    });
    match end.borrow().clone() {
        Some(BodyEnd::Failed(err)) => assert!(err.is_cancelled()),
        other => panic!("unexpected end {other:?}"),
    }
    let next = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&next));
    assert!(next.borrow().is_done());
    assert_eq!(
        srv.connections(),
        2,
        "a stopped body's connection is never reused"
    );
}

#[test]
fn dropped_response_is_not_pooled() {
    let srv = serve(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |_, r| {
            assert!(r.is_ok());
            s.set(true);
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || seen.get());
    let next = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&next));
    assert!(next.borrow().is_done());
    assert_eq!(srv.connections(), 2);
}

#[test]
fn active_cap_queues_requests_in_order() {
    let one = [Step::ExpectRequest, write(OK_HELLO)];
    let script: Vec<Step> = one
        .iter()
        .cloned()
        .cycle()
        .take(6)
        .chain([Step::WaitClose])
        .collect();
    let srv = serve(vec![script]);
    let config = AgentConfig {
        max_active_per_host: 1,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let slots: Vec<Slot> = (0..3)
        .map(|i| issue(reactor.ctx(), agent, Req::get(srv.url(&format!("/{i}")))))
        .collect();
    turn_until(&mut reactor, Duration::from_secs(10), || {
        slots.iter().all(finished)
    });
    assert!(slots.iter().all(|s| s.borrow().is_done()));
    assert_eq!(srv.connections(), 1);
    let paths: Vec<String> = srv
        .requests()
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(&r[..6]).into_owned())
        .collect();
    assert_eq!(paths, ["GET /0", "GET /1", "GET /2"]);
}

#[test]
fn cancel_a_queued_request() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(200)),
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        max_active_per_host: 1,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    let slot: Slot = Default::default();
    let s = slot.clone();
    let handle = agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/2")),
        Box::new(move |_, r| {
            s.borrow_mut().result = Some(r.map(|_| BodyEnd::Done));
        }),
    );
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(10), || {
        finished(&first) && finished(&slot)
    });
    let err = slot.borrow().error().cloned().unwrap();
    assert!(err.is_cancelled());
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(first.borrow().is_done());
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn deliver_body_twice_fails_the_second() {
    let srv = serve(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let first: Slot = Default::default();
    let second: Slot = Default::default();
    let (a, b) = (first.clone(), second.clone());
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/")),
        Box::new(move |ctx, r| {
            let resp = r.unwrap();
            resp.deliver_body(ctx, Recorder { out: a });
            resp.deliver_body(ctx, Recorder { out: b });
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        finished(&first) && finished(&second)
    });
    assert!(first.borrow().is_done());
    assert_eq!(
        second.borrow().error().map(|e| e.cause().clone()),
        Some(Cause::BodyAlreadyDelivered)
    );
}

/// Responses that end with their head (or with a body read whole) complete in the round that
/// read them: the connection is reused when nothing follows, and never when bytes do.
#[test]
fn responses_ending_in_their_read_are_reused_unless_bytes_follow() {
    let cases: &[(&[u8], &[u8], usize)] = &[
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", 1),
        (b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n", b"", 1),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"", 1),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"", 1),
        (
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            2,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            2,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            2,
        ),
    ];
    for &(first, after, connections) in cases {
        let reply = [first, after].concat();
        let text = String::from_utf8_lossy(&reply).into_owned();
        // A reused connection answers the second request with the script's next write; a
        // closed one makes the client open the second connection, whose script answers.
        let srv = serve(vec![
            vec![
                Step::ExpectRequest,
                write(&reply),
                Step::ExpectRequest,
                write(OK_HELLO),
                Step::WaitClose,
            ],
            vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
        ]);
        let outs = run_sequential(
            test_config(),
            vec![Req::get(srv.url("/1")), Req::get(srv.url("/2"))],
        );
        assert!(outs[0].is_done(), "{text:?}: {:?}", outs[0].result);
        let expected: &[u8] = if first.ends_with(b"ok") { b"ok" } else { b"" };
        assert_eq!(outs[0].body, expected, "{text:?}");
        assert_eq!(outs[1].body, b"hello", "{text:?}");
        assert!(outs[1].is_done(), "{text:?}: {:?}", outs[1].result);
        assert_eq!(srv.connections(), connections, "{text:?}");
    }
}
