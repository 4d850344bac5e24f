//! The one timer of each pooled connection, which watches the read timeout of its request
//! while in use and its idle timeout while pooled: it is moved rather than re-armed, so these
//! tests check that it fires neither early nor late when the deadline moves either way.

mod support;

use std::time::{Duration, Instant};

use support::scripted::*;
use weft::client::{Agent, AgentConfig, HttpAgent, Request, TimeoutKind, Timeouts};
use weft::reactor::Reactor;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// Turns the reactor until `d` has passed since `since`.
fn turn_until_elapsed(reactor: &mut Reactor, since: Instant, d: Duration) {
    while since.elapsed() < d {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
}

/// A server that answers one request on its connection and stalls on the next, and an agent
/// with `config` whose first request has been served: the connection is pooled, its timer
/// armed, for a second request to reuse.
fn one_served_then_a_stall(config: AgentConfig) -> (ScriptedServer, Reactor, Agent) {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::ExpectRequest,
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&first));
    assert!(first.borrow().is_done(), "{:?}", first.borrow().result);
    (srv, reactor, agent)
}

/// The first request arms the connection's timer 400 ms ahead; the second, on the same
/// connection 250 ms later, stalls. The timer fires 150 ms into it, finds the request quiet
/// for less than its limit, and re-arms for the rest: the timeout comes a whole limit after
/// the second request went out, not when the first one's deadline passed.
#[test]
fn read_timeout_on_a_reused_connection_counts_from_its_own_request() {
    let limit = Duration::from_millis(400);
    let (srv, mut reactor, agent) = one_served_then_a_stall(AgentConfig {
        read_timeout: Some(limit),
        ..test_config()
    });
    turn_until_elapsed(&mut reactor, Instant::now(), Duration::from_millis(250));

    let sent = Instant::now();
    let stalled = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&stalled));
    let waited = stalled.borrow().at.unwrap() - sent;
    let err = stalled.borrow().error().cloned().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Read));
    assert_eq!(err.timeout().map(|t| t.limit), Some(limit));
    // The loop's clock may lag the wall clock by a turn: a few milliseconds of slack.
    assert!(waited >= limit - Duration::from_millis(20), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(
        srv.connections(),
        1,
        "the second request reused the connection"
    );
}

/// A request with a shorter read timeout than the one the connection's timer was armed for
/// (the agent's 30 s) moves the timer earlier: it times out after its own limit.
#[test]
fn a_shorter_read_timeout_moves_the_connection_timer_earlier() {
    let (srv, mut reactor, agent) = one_served_then_a_stall(AgentConfig {
        read_timeout: Some(Duration::from_secs(30)),
        ..test_config()
    });

    let slot: Slot = Default::default();
    let s = slot.clone();
    let request = Request::get(srv.url("/2")).timeouts(Timeouts {
        read: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let sent = Instant::now();
    agent.request(
        reactor.ctx(),
        request,
        Box::new(move |_, r| s.borrow_mut().result = Some(r.map(|_| weft::client::BodyEnd::Done))),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    let err = slot.borrow().error().cloned().unwrap();
    assert_eq!(err.timeout().map(|t| t.kind), Some(TimeoutKind::Read));
    assert_eq!(
        srv.connections(),
        1,
        "the second request reused the connection"
    );
}

/// Sends `requests` GETs one after another on one keep-alive connection, from an agent whose
/// total timeout is `timeout`, and returns the reactor's count of pending timers after each
/// response.
fn timers_after_each_request(requests: usize, timeout: Option<Duration>) -> Vec<usize> {
    let mut script = Vec::new();
    for _ in 0..requests {
        script.push(Step::ExpectRequest);
        script.push(write(OK_HELLO));
    }
    script.push(Step::WaitClose);
    let srv = ScriptedServer::start(vec![script]);
    let config = AgentConfig {
        timeout,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let mut counts = Vec::with_capacity(requests);
    for i in 0..requests {
        let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
        turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
        assert!(
            slot.borrow().is_done(),
            "request {i}: {:?}",
            slot.borrow().result
        );
        counts.push(reactor.ctx().timer_count());
    }
    assert_eq!(srv.connections(), 1);
    counts
}

/// Request after request on one keep-alive connection leaves one timer pending in the
/// reactor (the connection's), not one per request served: nothing accumulates.
#[test]
fn many_requests_on_one_connection_keep_one_timer() {
    // No total timeout: the only timer left is the connection's.
    let counts = timers_after_each_request(200, None);
    assert!(counts.iter().all(|&n| n <= 1), "{counts:?}");
    assert_eq!(counts.last(), Some(&1), "the idle connection's timer");
}

/// A connection whose timer was armed for the read timeout (far ahead) and that then goes
/// idle with a short idle timeout is closed at the end of its idle time, not at the read
/// deadline; and a server that stays silent on an idle connection is no read timeout.
#[test]
fn idle_timeout_shorter_than_the_read_timeout_closes_on_time() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(OK_HELLO),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_secs(30)),
        idle_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || finished(&slot));
    assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
    let idled = Instant::now();
    // Bounded: 3 s at most, against the 30 s read deadline the timer was first armed for.
    while reactor.ctx().connection_count() > 0 && idled.elapsed() < Duration::from_secs(3) {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let closed_after = idled.elapsed();
    assert_eq!(
        reactor.ctx().connection_count(),
        0,
        "still open after {closed_after:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(180),
        "{closed_after:?}"
    );
    assert!(
        slot.borrow().is_done(),
        "the idle close is no error of the request"
    );
}

/// With the agent's total timeout (set by default), each request's total timer is cancelled
/// when the request ends: request after request leaves only the connection's timer pending.
#[test]
fn each_finished_request_cancels_its_total_timer() {
    let counts = timers_after_each_request(50, Some(Duration::from_secs(300)));
    assert!(
        counts.iter().all(|&n| n == 1),
        "only the connection's timer is left after each request: {counts:?}"
    );
}

/// Idle connections with different deadlines share the agent's one reactor timer, and each
/// still closes at its own: one server's `Keep-Alive: timeout=1` (its idle time is the hint
/// less 500 ms) against the agent's 1.2 s for the other two. Nothing is left pending after
/// the last close.
/// Issues `/0`, `/1` and `/2` to `srv` at once (three connections) and waits until each has
/// succeeded.
fn three_requests_at_once(reactor: &mut Reactor, agent: Agent, srv: &ScriptedServer) {
    let slots: Vec<Slot> = (0..3)
        .map(|i| issue(reactor.ctx(), agent, Req::get(srv.url(&format!("/{i}")))))
        .collect();
    turn_until(reactor, Duration::from_secs(5), || {
        slots.iter().all(finished)
    });
    for slot in &slots {
        assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
    }
}

#[test]
fn idle_connections_share_one_timer_and_close_each_at_its_own_deadline() {
    let hinted: &[u8] =
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 5\r\n\r\nhello";
    let script = |head: &[u8]| vec![Step::ExpectRequest, write(head), Step::WaitClose];
    let srv = ScriptedServer::start(vec![script(hinted), script(OK_HELLO), script(OK_HELLO)]);
    let config = AgentConfig {
        idle_timeout: Duration::from_millis(1200),
        max_idle_per_host: 3,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    three_requests_at_once(&mut reactor, agent, &srv);
    let idled = Instant::now();
    assert_eq!(srv.connections(), 3);
    assert_eq!(reactor.ctx().connection_count(), 3);
    assert_eq!(
        reactor.ctx().timer_count(),
        1,
        "three idle connections, one reactor timer"
    );
    // Bounded: 4 s at most.
    let mut closes = Vec::new();
    while reactor.ctx().connection_count() > 0 && idled.elapsed() < Duration::from_secs(4) {
        let open = reactor.ctx().connection_count();
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
        let now_open = reactor.ctx().connection_count();
        closes.extend(std::iter::repeat_n(
            idled.elapsed(),
            open.saturating_sub(now_open),
        ));
    }
    assert_eq!(closes.len(), 3, "closed after {closes:?}");
    // The loop's clock may lag the wall clock by a turn: a few milliseconds of slack.
    assert!(closes[0] >= Duration::from_millis(480), "{closes:?}");
    assert!(closes[0] < Duration::from_millis(1100), "{closes:?}");
    assert!(closes[1] >= Duration::from_millis(1180), "{closes:?}");
    assert!(closes[2] >= Duration::from_millis(1180), "{closes:?}");
    assert_eq!(reactor.ctx().timer_count(), 0, "nothing left pending");
}

/// Servers that close their connections right after answering: each connection leaves the
/// pool as the close is seen, and with the last one gone no timer is left pending (the
/// connections' deadlines and the timer that watched them go with them).
#[test]
fn connections_closed_by_their_servers_leave_no_timer_behind() {
    let script = || vec![Step::ExpectRequest, write(OK_HELLO), Step::Close];
    let srv = ScriptedServer::start(vec![script(), script(), script()]);
    let config = AgentConfig {
        max_idle_per_host: 3,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    three_requests_at_once(&mut reactor, agent, &srv);
    // Bounded: 3 s at most for the closes to be seen.
    let since = Instant::now();
    while reactor.ctx().connection_count() > 0 && since.elapsed() < Duration::from_secs(3) {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(srv.connections(), 3);
    assert_eq!(reactor.ctx().connection_count(), 0);
    assert_eq!(reactor.ctx().timer_count(), 0, "nothing left pending");
}
