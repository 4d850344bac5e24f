//! The agent's dispatch: the count of waiting requests follows cancellation, queue timeouts
//! and shutdown (the pool's counts are checked against its queues in debug builds), waiting
//! requests go out in the order they were submitted, and a request submitted from inside a
//! callback keeps its place among the agent's other messages.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::baseline::pool_stats;
use support::scripted::*;
use weft::client::{Agent, AgentConfig, Cause, HttpAgent, Phase, PoolStats, Request, TimeoutKind};
use weft::reactor::Reactor;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// The request targets the server read, in order.
fn paths(srv: &ScriptedServer) -> Vec<String> {
    heads(&srv.requests())
        .iter()
        .map(|h| h.split(' ').nth(1).unwrap_or_default().to_string())
        .collect()
}

fn one_at_a_time() -> AgentConfig {
    AgentConfig {
        max_active_per_host: 1,
        ..test_config()
    }
}

/// The pool holds one idle connection, and nothing active, queued or in its tables.
fn assert_one_idle_and_nothing_else(reactor: &mut Reactor, agent: Agent) {
    let s = pool_stats(reactor, agent);
    assert_eq!(
        (s.active, s.queued, s.requests, s.idle),
        (0, 0, 0, 1),
        "{s:?}"
    );
}

#[test]
fn a_cancelled_waiter_leaves_the_queue_and_the_rest_go_in_order() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(300)),
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), one_at_a_time());
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    let second = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    let (third, handle) = issue_with_handle(reactor.ctx(), agent, Req::get(srv.url("/3")));
    let fourth = issue(reactor.ctx(), agent, Req::get(srv.url("/4")));
    let s = pool_stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued, s.requests), (1, 3, 4), "{s:?}");

    handle.cancel(reactor.ctx());
    let s = pool_stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued, s.requests), (1, 2, 3), "{s:?}");
    {
        let o = third.borrow();
        let e = o.error().expect("cancelled");
        assert!(matches!(e.cause(), Cause::Cancelled), "{e}");
        assert_eq!(e.phase(), Phase::RequestNotSent);
    }
    // Cancelling again, by a handle now stale, finds nothing.
    handle.cancel(reactor.ctx());

    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&first) && finished(&second) && finished(&fourth)
    });
    for slot in [&first, &second, &fourth] {
        assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
    }
    assert_eq!(paths(&srv), ["/1", "/2", "/4"]);
    assert_one_idle_and_nothing_else(&mut reactor, agent);
}

#[test]
fn a_queue_timeout_leaves_the_queue_and_a_later_request_goes_out_at_once() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(600)),
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        queue_timeout: Some(Duration::from_millis(100)),
        ..one_at_a_time()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    let waiters: Vec<Slot> = (0..3)
        .map(|i| issue(reactor.ctx(), agent, Req::get(srv.url(&format!("/w{i}")))))
        .collect();
    turn_until(&mut reactor, Duration::from_secs(5), || {
        waiters.iter().all(finished)
    });
    for w in &waiters {
        let o = w.borrow();
        let e = o.error().expect("timed out");
        assert_eq!(e.timeout().map(|t| t.kind), Some(TimeoutKind::Queue), "{e}");
        assert_eq!(e.phase(), Phase::RequestNotSent);
    }
    assert!(!finished(&first), "the first is still in flight");
    let s = pool_stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued, s.requests), (1, 0, 1), "{s:?}");

    turn_until(&mut reactor, Duration::from_secs(5), || finished(&first));
    // Nobody waits: the next request takes the pooled connection at once.
    let last = issue(reactor.ctx(), agent, Req::get(srv.url("/last")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&last));
    assert!(first.borrow().is_done() && last.borrow().is_done());
    assert_eq!(paths(&srv), ["/1", "/last"]);
    assert_eq!(srv.connections(), 1);
    assert_one_idle_and_nothing_else(&mut reactor, agent);
}

#[test]
fn shutdown_fails_waiters_in_submission_order_and_empties_the_queue() {
    let srv = ScriptedServer::start(vec![vec![Step::ExpectRequest, Step::WaitClose]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), one_at_a_time());
    let order = Rc::new(RefCell::new(Vec::new()));
    let issue_numbered = |reactor: &mut Reactor, n: usize| {
        let order = order.clone();
        agent.request(
            reactor.ctx(),
            Request::get(srv.url(&format!("/{n}"))),
            Box::new(move |_, r| {
                let Err(e) = r else {
                    panic!("request {n} answered")
                };
                assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
                order.borrow_mut().push((n, e.phase()));
            }),
        );
    };
    for n in 0..5 {
        issue_numbered(&mut reactor, n);
    }
    turn_until(&mut reactor, Duration::from_secs(5), || {
        srv.requests().len() == 1
    });
    let s = pool_stats(&mut reactor, agent);
    assert_eq!((s.active, s.queued), (1, 4), "{s:?}");
    agent.shutdown(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(5), || {
        order.borrow().len() == 5
    });
    let mut want = vec![(0, Phase::ResponseNeverReceived)];
    want.extend((1..5).map(|n| (n, Phase::RequestNotSent)));
    assert_eq!(*order.borrow(), want);
    let s = pool_stats(&mut reactor, agent);
    assert_eq!(
        (s.active, s.queued, s.requests, s.idle),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(paths(&srv), ["/0"]);
}

/// What a callback run inside the agent's read asks of the agent, in this order.
#[derive(Clone, Copy)]
enum Then {
    /// Only a next request.
    Request,
    /// The agent's counts, then a next request.
    StatsThenRequest,
    /// A shutdown, then a next request.
    ShutdownThenRequest,
    /// A next request, then a shutdown.
    RequestThenShutdown,
}

/// Runs `/1`, and from its response callback (which runs inside the agent's read of the
/// connection) does `then`; returns the second request's outcome, the counts seen (if
/// asked) and the paths the server read.
fn from_a_callback(then: Then) -> (Slot, Option<PoolStats>, Vec<String>) {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let (first, second): (Slot, Slot) = Default::default();
    let seen: Rc<RefCell<Option<PoolStats>>> = Rc::default();
    let (f, s, url, seen2) = (first.clone(), second.clone(), srv.url("/2"), seen.clone());
    agent.request(
        reactor.ctx(),
        Request::get(srv.url("/1")),
        Box::new(move |ctx, r| {
            let resp = r.expect("a response");
            f.borrow_mut().status = Some(resp.code);
            resp.deliver_body(ctx, Recorder { out: f });
            let next = |ctx: &mut weft::reactor::Ctx| {
                agent.request(
                    ctx,
                    Request::get(url.as_str()),
                    Box::new(move |ctx, r| match r {
                        Ok(resp) => resp.deliver_body(ctx, Recorder { out: s }),
                        Err(e) => s.borrow_mut().result = Some(Err(e)),
                    }),
                );
            };
            match then {
                Then::Request => next(ctx),
                Then::StatsThenRequest => {
                    agent.stats(ctx, move |_, st| *seen2.borrow_mut() = Some(st));
                    next(ctx);
                }
                Then::ShutdownThenRequest => {
                    agent.shutdown(ctx);
                    next(ctx);
                }
                Then::RequestThenShutdown => {
                    next(ctx);
                    agent.shutdown(ctx);
                }
            }
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&first) && finished(&second)
    });
    assert!(first.borrow().is_done(), "{:?}", first.borrow().result);
    // Whatever reached the server has been read by now.
    turn_for(&mut reactor, Duration::from_millis(50));
    let seen = *seen.borrow();
    (second, seen, paths(&srv))
}

#[test]
fn a_request_made_in_a_response_callback_reuses_the_connection() {
    let (second, seen, paths) = from_a_callback(Then::Request);
    assert!(second.borrow().is_done(), "{:?}", second.borrow().result);
    assert_eq!(second.borrow().body, b"hello");
    assert!(seen.is_none());
    assert_eq!(paths, ["/1", "/2"]);
}

#[test]
fn counts_asked_for_before_a_request_made_in_a_callback_do_not_include_it() {
    let (second, seen, paths) = from_a_callback(Then::StatsThenRequest);
    assert!(second.borrow().is_done(), "{:?}", second.borrow().result);
    let s = seen.expect("counts reported");
    // The first request is over and the second not yet taken.
    assert_eq!(
        (s.active, s.queued, s.requests, s.idle),
        (0, 0, 0, 1),
        "{s:?}"
    );
    assert_eq!(paths, ["/1", "/2"]);
}

#[test]
fn a_request_made_in_a_callback_after_a_shutdown_is_refused_unsent() {
    let (second, _, paths) = from_a_callback(Then::ShutdownThenRequest);
    let o = second.borrow();
    let e = o.error().expect("refused");
    assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
    assert_eq!(e.phase(), Phase::RequestNotSent);
    assert_eq!(paths, ["/1"]);
}

#[test]
fn a_request_made_in_a_callback_before_a_shutdown_is_taken_then_failed() {
    let (second, _, _) = from_a_callback(Then::RequestThenShutdown);
    let o = second.borrow();
    let e = o.error().expect("failed by the shutdown");
    assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
    // Taken (and its head written on the pooled connection) before the shutdown came.
    assert_eq!(e.phase(), Phase::ResponseNeverReceived);
}
