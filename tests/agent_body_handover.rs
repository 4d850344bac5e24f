//! How a response's body protocol reaches the agent: inside the response callback (taken
//! at once), later (through the agent's message queue), and the two mixed; and how a request
//! finds its host's pool again.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use weft::client::{Agent, HttpAgent, Request, Response};
use weft::reactor::Reactor;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// A server answering one request on each of `conns` connections.
fn hellos(conns: usize) -> ScriptedServer {
    let script = || vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose];
    ScriptedServer::start((0..conns).map(|_| script()).collect())
}

/// Sends a GET and keeps its response, body unread, once the reactor has it.
fn keep_response(
    reactor: &mut Reactor,
    agent: &Agent,
    url: String,
) -> Rc<RefCell<Option<Response>>> {
    let kept: Rc<RefCell<Option<Response>>> = Rc::default();
    let k = kept.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", url),
        Box::new(move |_ctx, r| *k.borrow_mut() = Some(r.unwrap())),
    );
    turn_until(reactor, Duration::from_secs(10), || kept.borrow().is_some());
    kept
}

#[test]
fn body_handed_over_after_the_callback_is_delivered() {
    let srv = hellos(1);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let kept = keep_response(&mut reactor, &agent, srv.url("/"));
    let slot: Slot = Slot::default();
    let out = slot.clone();
    reactor
        .ctx()
        .call_later(Duration::from_millis(20), move |ctx| {
            let resp = kept.borrow_mut().take().unwrap();
            resp.deliver_body(ctx, Recorder { out });
        });
    turn_until(&mut reactor, Duration::from_secs(10), || finished(&slot));
    assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
    assert_eq!(slot.borrow().body, b"hello");
}

#[test]
fn earlier_response_handed_over_inside_a_later_callback_is_delivered() {
    // The second response's callback hands over the first's body (kept unread) and its
    // own: each reaches its protocol, in either order.
    let srv = hellos(2);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let kept = keep_response(&mut reactor, &agent, srv.url("/1"));
    let (first, second) = (Slot::default(), Slot::default());
    let (a, b) = (first.clone(), second.clone());
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/2")),
        Box::new(move |ctx, r| {
            let resp = r.unwrap();
            resp.deliver_body(ctx, Recorder { out: b });
            let earlier = kept.borrow_mut().take().unwrap();
            earlier.deliver_body(ctx, Recorder { out: a });
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        finished(&first) && finished(&second)
    });
    for slot in [&first, &second] {
        assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
        assert_eq!(slot.borrow().body, b"hello");
    }
    assert_eq!(srv.requests().len(), 2);
}

/// Runs one GET to completion, checking its body.
fn get_hello(reactor: &mut Reactor, agent: Agent, url: String) {
    let slot = issue(reactor.ctx(), agent, Req::get(url));
    turn_until(reactor, Duration::from_secs(10), || finished(&slot));
    assert!(slot.borrow().is_done(), "{:?}", slot.borrow().result);
    assert_eq!(slot.borrow().body, b"hello");
}

/// The agent's host-table size, once the reactor answered.
fn hosts(reactor: &mut Reactor, agent: &Agent) -> usize {
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    agent.stats(reactor.ctx(), move |_, st| s.set(Some(st.hosts)));
    turn_until(reactor, Duration::from_secs(10), || seen.get().is_some());
    seen.get().unwrap()
}

#[test]
fn a_url_asked_again_after_its_host_entry_went_finds_its_own_pool() {
    // A closes after answering, so its host entry goes; B then takes the freed place and
    // keeps an idle connection there. Asking A's URL again must not land in B's pool.
    let close = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let a = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, write(close), Step::Close],
        vec![Step::ExpectRequest, write(close), Step::Close],
    ]);
    let b = hellos(1);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    get_hello(&mut reactor, agent, a.url("/a"));
    // The entry goes once the closed connection is seen: a bounded wait.
    let mut left = 100;
    while hosts(&mut reactor, &agent) != 0 {
        left -= 1;
        assert!(left > 0, "A's host entry stayed");
        turn_for(&mut reactor, Duration::from_millis(10));
    }
    get_hello(&mut reactor, agent, b.url("/b"));
    assert_eq!(hosts(&mut reactor, &agent), 1, "B's idle connection");
    get_hello(&mut reactor, agent, a.url("/a"));
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 1);
}
