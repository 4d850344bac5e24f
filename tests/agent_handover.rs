//! The Agent taking the body protocols handed over inside a response callback: one, several
//! for the same response, and one for an earlier response, with a body and without.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::baseline::pool_stats;
use support::scripted::*;
use weft::client::{Agent, Cause, HttpAgent, Request, Response};
use weft::reactor::Reactor;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const OK_WORLD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";
const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// Three protocols handed over in one callback: the first gets the body (or its end, for a
/// response without one), the others fail as already delivered, and the connection, read to
/// the end, serves the next request.
#[test]
fn the_first_of_several_bodies_handed_over_gets_the_body() {
    for (reply, body) in [
        (OK_HELLO, &b"hello"[..]),
        (OK_EMPTY, b""),
        (NO_CONTENT, b""),
    ] {
        let srv = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            write(reply),
            Step::ExpectRequest,
            write(reply),
            Step::WaitClose,
        ]]);
        let mut reactor = Reactor::new().unwrap();
        let agent = Agent::new(reactor.ctx(), test_config());
        let slots: Vec<Slot> = (0..3).map(|_| Slot::default()).collect();
        let handed = slots.clone();
        agent.request(
            reactor.ctx(),
            Request::new("GET", srv.url("/")),
            Box::new(move |ctx, r| {
                let response = r.unwrap();
                for out in handed {
                    response.deliver_body(ctx, Recorder { out });
                }
            }),
        );
        turn_until(&mut reactor, Duration::from_secs(10), || {
            slots.iter().all(finished)
        });
        let first = slots[0].borrow();
        assert!(first.is_done(), "{:?}", first.result);
        assert_eq!(first.body, body);
        for extra in &slots[1..] {
            assert_eq!(
                extra.borrow().error().map(|e| e.cause().clone()),
                Some(Cause::BodyAlreadyDelivered)
            );
        }
        let next = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
        turn_until(&mut reactor, Duration::from_secs(10), || finished(&next));
        assert!(next.borrow().is_done(), "{:?}", next.borrow().result);
        assert_eq!(srv.connections(), 1, "the connection is reused");
        let stats = pool_stats(&mut reactor, agent);
        assert_eq!((stats.requests, stats.active), (0, 0), "{stats:?}");
    }
}

/// A callback that hands over the body of an earlier response, kept unread until then, as
/// well as its own: both arrive whole, each to its own protocol.
#[test]
fn a_body_handed_over_for_an_earlier_response_arrives_too() {
    let srv = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, write(OK_HELLO), Step::WaitClose],
        vec![Step::ExpectRequest, write(OK_WORLD), Step::WaitClose],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let kept: Rc<RefCell<Option<Response>>> = Rc::default();
    let k = kept.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/1")),
        Box::new(move |_, r| *k.borrow_mut() = Some(r.unwrap())),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        kept.borrow().is_some()
    });
    let (earlier, own) = (Slot::default(), Slot::default());
    let (k, a, b) = (kept.clone(), earlier.clone(), own.clone());
    agent.request(
        reactor.ctx(),
        Request::new("GET", srv.url("/2")),
        Box::new(move |ctx, r| {
            let first = k.borrow_mut().take().unwrap();
            first.deliver_body(ctx, Recorder { out: a });
            r.unwrap().deliver_body(ctx, Recorder { out: b });
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(10), || {
        finished(&earlier) && finished(&own)
    });
    assert!(earlier.borrow().is_done(), "{:?}", earlier.borrow().result);
    assert_eq!(earlier.borrow().body, b"hello");
    assert!(own.borrow().is_done(), "{:?}", own.borrow().result);
    assert_eq!(own.borrow().body, b"world");
    let stats = pool_stats(&mut reactor, agent);
    assert_eq!((stats.requests, stats.active), (0, 0), "{stats:?}");
}
