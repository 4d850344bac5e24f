//! Protocol upgrade: a `101 Switching Protocols` hands its connection (plain or TLS, with the
//! bytes that followed the head) to a user `Protocol`, outside the pool; everything else about
//! an upgrade request is an ordinary exchange. Scripted servers on 127.0.0.1.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::baseline::{Baseline, assert_nothing_pooled, pool_stats};
use support::reactor::{Ev, Log, LoggingProtocol, log};
use support::scripted::*;
use support::servers::{TestCa, TestDir};
use weft::client::{
    Agent, AgentConfig, BodyEnd, Cause, HttpAgent, Request, Response, UpgradeError,
};
use weft::proto::ProtocolError;
use weft::reactor::{ConnId, ConnectOptions, Ctx, Disconnect, Reactor, TransportError};
use weft::tls::TlsConnector;

const SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
const LIMIT: Duration = Duration::from_secs(10);

/// What the response callback saw: the status, or the error.
type Head = Rc<RefCell<Option<Result<u16, weft::client::Error>>>>;

/// Sends an upgrade request to `url`; on a 101, hands the connection to `protocol`.
fn upgrade(
    ctx: &mut Ctx,
    agent: Agent,
    url: &str,
    protocol: LoggingProtocol,
) -> (Head, Rc<RefCell<Option<Response>>>) {
    let head: Head = Rc::default();
    let kept: Rc<RefCell<Option<Response>>> = Rc::default();
    let (h, k) = (head.clone(), kept.clone());
    agent.request(
        ctx,
        Request::get(url).upgrade("echo"),
        Box::new(move |ctx, result| match result {
            Ok(response) => {
                *h.borrow_mut() = Some(Ok(response.code));
                if response.code == 101 {
                    response.upgrade(ctx, protocol).unwrap();
                } else {
                    // Kept for the test to read the body of.
                    *k.borrow_mut() = Some(response);
                }
            }
            Err(e) => *h.borrow_mut() = Some(Err(e)),
        }),
    );
    (head, kept)
}

/// The bytes of every `Data` event, concatenated.
fn data(log: &Log) -> Vec<u8> {
    log.borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Data(_, d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn lost(log: &Log) -> Option<Disconnect> {
    log.borrow().iter().find_map(|e| match e {
        Ev::Lost(_, r) => Some(r.clone()),
        _ => None,
    })
}

/// The protocol writes `ping` when it takes over and closes once it has `want` bytes.
fn pinger(log: &Log, want: usize) -> LoggingProtocol {
    let seen = Rc::new(RefCell::new(0));
    LoggingProtocol::new(log)
        .made(|ctx, conn| ctx.write(conn, b"ping"))
        .data(move |ctx, conn, d| {
            *seen.borrow_mut() += d.len();
            if *seen.borrow() >= want {
                ctx.lose_connection(conn);
            }
        })
}

/// Runs one upgrade of `url`, the protocol closing after `want` bytes; returns its log.
fn run_upgrade(config: AgentConfig, url: &str, want: usize) -> Log {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let base = Baseline::take(&mut reactor);
    let events = log();
    let (head, _) = upgrade(reactor.ctx(), agent, url, pinger(&events, want));
    turn_until(&mut reactor, LIMIT, || lost(&events).is_some());
    assert!(matches!(*head.borrow(), Some(Ok(101))));
    assert_nothing_pooled(&mut reactor, agent);
    base.assert_back(&mut reactor);
    events
}

/// The scripted side of an echo-like switched protocol: the 101 (and `extra`) cut at
/// `cuts`, then the client's `ping` is read and `pong` written.
fn switch_script(extra: &[u8], cuts: Vec<usize>) -> Vec<Step> {
    switch_script_with(SWITCH, extra, cuts)
}

/// [`switch_script`] with another 101 head.
fn switch_script_with(head: &[u8], extra: &[u8], cuts: Vec<usize>) -> Vec<Step> {
    let mut first = head.to_vec();
    first.extend_from_slice(extra);
    vec![
        Step::ExpectRequest,
        Step::WriteSplit(first, cuts),
        Step::ReadBytes(4),
        write(b"pong"),
        Step::WaitClose,
    ]
}

#[test]
fn bytes_after_the_101_head_reach_the_protocol_first_and_once() {
    let head = SWITCH.len();
    // Whole, cut inside the head, right after it, and inside the extra bytes.
    for cuts in [vec![], vec![10], vec![head], vec![head + 2]] {
        let srv = ScriptedServer::start(vec![switch_script(b"HELLO", cuts.clone())]);
        let events = run_upgrade(test_config(), &srv.url("/chat"), 9);
        assert_eq!(data(&events), b"HELLOpong", "cuts {cuts:?}");
        assert!(matches!(events.borrow()[0], Ev::Made(_)), "{events:?}");
        assert_eq!(lost(&events), Some(Disconnect::ClosedLocally));
        let requests = srv.requests();
        let heads = heads(&requests);
        assert_eq!(header_of(&heads[0], "upgrade").as_deref(), Some("echo"));
        assert_eq!(
            header_of(&heads[0], "connection").as_deref(),
            Some("upgrade")
        );
        assert_eq!(
            requests[1].1, b"ping",
            "the protocol's write reached the server"
        );
    }
}

/// A 101 has no body whatever its fields say: what follows the head is the new protocol's.
#[test]
fn a_101_with_framing_fields_still_ends_at_its_head() {
    let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\
                 Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
    let srv = ScriptedServer::start(vec![switch_script_with(head, b"HELLO", vec![])]);
    let events = run_upgrade(test_config(), &srv.url("/"), 9);
    assert_eq!(data(&events), b"HELLOpong");
}

#[test]
fn a_101_over_tls_hands_over_the_tls_connection() {
    let dir = TestDir::new("weft-upgrade-tls");
    let ca = TestCa::generate(dir.path());
    let chain: Vec<CertificateDer<'static>> = vec![ca.server_cert_der.clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.server_key_der.clone()));
    let srv = ScriptedServer::start_tls(vec![switch_script(b"HELLO", vec![])], chain, key);
    let config = AgentConfig {
        tls: TlsConnector::with_root_pem(ca.ca_cert_pem.as_bytes()).unwrap(),
        ..test_config()
    };
    let url = format!("https://localhost:{}/chat", srv.addr.port());
    let events = run_upgrade(config, &url, 9);
    assert_eq!(data(&events), b"HELLOpong");
    assert_eq!(srv.requests()[1].1, b"ping");
}

#[test]
fn a_101_to_a_request_that_did_not_ask_is_a_protocol_error() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(SWITCH),
        write(b"stray protocol bytes"),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    let error = out.error().expect("a 101 nobody asked for fails");
    assert_eq!(
        error.cause(),
        &Cause::Protocol(ProtocolError::UnexpectedSwitchingProtocols)
    );
    // `run_one` checked that no connection is left; the server saw the close.
    assert_eq!(srv.connections(), 1);
}

#[test]
fn a_close_right_after_the_101_reaches_the_protocol() {
    for extra in [&b""[..], b"last words"] {
        let srv = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            Step::Write([SWITCH, extra].concat()),
            Step::Close,
        ]]);
        let mut reactor = Reactor::new().unwrap();
        let agent = Agent::new(reactor.ctx(), test_config());
        let base = Baseline::take(&mut reactor);
        let events = log();
        let (head, _) = upgrade(
            reactor.ctx(),
            agent,
            &srv.url("/"),
            LoggingProtocol::new(&events),
        );
        turn_until(&mut reactor, LIMIT, || lost(&events).is_some());
        assert!(matches!(*head.borrow(), Some(Ok(101))));
        assert_eq!(data(&events), extra);
        assert_eq!(lost(&events), Some(Disconnect::PeerClosed));
        assert_nothing_pooled(&mut reactor, agent);
        base.assert_back(&mut reactor);
    }
}

#[test]
fn a_non_101_answer_is_an_ordinary_pooled_response() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let events = log();
    let (head, kept) = upgrade(
        reactor.ctx(),
        agent,
        &srv.url("/"),
        LoggingProtocol::new(&events),
    );
    turn_until(&mut reactor, LIMIT, || kept.borrow().is_some());
    assert!(matches!(*head.borrow(), Some(Ok(200))));
    let response = kept.borrow_mut().take().unwrap();
    let refused = response.upgrade(reactor.ctx(), LoggingProtocol::new(&events));
    assert_eq!(refused, Err(UpgradeError::NotSwitching(200)));
    let slot: Slot = Rc::default();
    response.deliver_body(reactor.ctx(), Recorder { out: slot.clone() });
    drop(response);
    turn_until(&mut reactor, LIMIT, || finished(&slot));
    assert_eq!(slot.borrow().body, b"no");
    assert!(slot.borrow().is_done());
    let stats = pool_stats(&mut reactor, agent);
    assert_eq!((stats.active, stats.idle), (0, 1), "{stats:?}");
    // The pooled connection serves the next request.
    let next = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, LIMIT, || finished(&next));
    assert_eq!(next.borrow().body, b"yes");
    assert_eq!(srv.connections(), 1);
    assert!(events.borrow().is_empty(), "{events:?}");
}

#[test]
fn the_upgraded_connection_leaves_the_pool_and_ends_with_its_protocol() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(SWITCH),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let base = Baseline::take(&mut reactor);
    let events = log();
    let conn: Rc<RefCell<Option<ConnId>>> = Rc::default();
    let c = conn.clone();
    let protocol = LoggingProtocol::new(&events).made(move |_, id| *c.borrow_mut() = Some(id));
    upgrade(reactor.ctx(), agent, &srv.url("/"), protocol);
    turn_until(&mut reactor, LIMIT, || conn.borrow().is_some());
    let stats = pool_stats(&mut reactor, agent);
    assert_eq!(
        (stats.active, stats.idle, stats.requests, stats.hosts),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.connections_opened, 1);
    assert_eq!(reactor.stats().connections, base.reactor.connections + 1);
    assert_eq!(reactor.stats().handlers, base.reactor.handlers + 1);
    // Closing the pool leaves the upgraded connection alone.
    agent.close_idle(reactor.ctx());
    turn_for(&mut reactor, Duration::from_millis(50));
    assert!(reactor.ctx().is_open(conn.borrow().unwrap()));
    let id = conn.borrow().unwrap();
    reactor.ctx().lose_connection(id);
    turn_until(&mut reactor, LIMIT, || lost(&events).is_some());
    assert_eq!(lost(&events), Some(Disconnect::ClosedLocally));
    base.assert_back(&mut reactor);
}

#[test]
fn the_agents_timeouts_end_with_the_handover() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(SWITCH),
        Step::Sleep(Duration::from_millis(700)),
        write(b"late"),
        Step::Close,
    ]]);
    let config = AgentConfig {
        timeout: Some(Duration::from_millis(300)),
        read_timeout: Some(Duration::from_millis(200)),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let events = log();
    upgrade(
        reactor.ctx(),
        agent,
        &srv.url("/"),
        LoggingProtocol::new(&events),
    );
    turn_until(&mut reactor, LIMIT, || lost(&events).is_some());
    assert_eq!(data(&events), b"late");
    assert_eq!(lost(&events), Some(Disconnect::PeerClosed));
}

/// A 101 response dropped, or read as a body, instead of upgraded: the connection closes.
#[test]
fn a_101_not_taken_over_closes_its_connection() {
    for read_body in [false, true] {
        let srv = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            write(SWITCH),
            write(b"unread"),
            Step::WaitClose,
        ]]);
        let mut reactor = Reactor::new().unwrap();
        let agent = Agent::new(reactor.ctx(), test_config());
        let base = Baseline::take(&mut reactor);
        let slot: Slot = Rc::default();
        let s = slot.clone();
        agent.request(
            reactor.ctx(),
            Request::get(srv.url("/")).upgrade("echo"),
            Box::new(move |ctx, result| {
                let response = result.unwrap();
                s.borrow_mut().status = Some(response.code);
                if read_body {
                    response.deliver_body(ctx, Recorder { out: s.clone() });
                } else {
                    s.borrow_mut().result = Some(Ok(BodyEnd::Done));
                }
            }),
        );
        turn_until(&mut reactor, LIMIT, || finished(&slot));
        assert_eq!(slot.borrow().status, Some(101));
        assert!(slot.borrow().body.is_empty(), "the 101 has no body");
        assert!(slot.borrow().is_done());
        assert_nothing_pooled(&mut reactor, agent);
        base.assert_back(&mut reactor);
    }
}

/// The agent shut down between the 101 and the hand-over: the protocol is told.
#[test]
fn a_connection_gone_before_the_handover_fails_the_protocol() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(SWITCH),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let events = log();
    let protocol = LoggingProtocol::new(&events);
    agent.request(
        reactor.ctx(),
        Request::get(srv.url("/")).upgrade("echo"),
        Box::new(move |ctx, result| {
            let response = result.unwrap();
            agent.shutdown(ctx);
            response.upgrade(ctx, protocol).unwrap();
            assert_eq!(
                response.upgrade(ctx, LoggingProtocol::new(&log())),
                Err(UpgradeError::AlreadyDelivered)
            );
        }),
    );
    turn_until(&mut reactor, LIMIT, || !events.borrow().is_empty());
    turn_for(&mut reactor, Duration::from_millis(20));
    let events = events.borrow();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(
            &events[0],
            Ev::Failed(_, TransportError::Io(std::io::ErrorKind::NotConnected, _))
        ),
        "{events:?}"
    );
    assert_eq!(reactor.stats().connections, 0);
}

/// The reactor's hand-over on its own: the old handler goes, the new one gets the unread
/// bytes before anything read later, and removing it closes the connection.
#[test]
fn hand_over_delivers_unread_bytes_first_and_removal_closes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut reactor = Reactor::new().unwrap();
    let base = Baseline::take(&mut reactor);
    let old = log();
    let new = log();
    let handler = Rc::new(RefCell::new(None));
    let (n, h) = (new.clone(), handler.clone());
    let first = LoggingProtocol::new(&old).data(move |ctx, conn, data| {
        // Keep the first byte, hand the rest over, unconsumed.
        let next = LoggingProtocol::new(&n).boxed();
        let id = ctx.hand_over(conn, next, data[1..].to_vec()).ok().unwrap();
        *h.borrow_mut() = Some(id);
    });
    reactor
        .ctx()
        .connect_tcp("127.0.0.1", port, ConnectOptions::default(), first.boxed());
    let (mut server, _) = listener.accept().unwrap();
    use std::io::{Read, Write};
    server.write_all(b"xREST").unwrap();
    turn_until(&mut reactor, LIMIT, || handler.borrow().is_some());
    server.write_all(b"+later").unwrap();
    turn_until(&mut reactor, LIMIT, || data(&new).len() == 10);
    assert_eq!(data(&new), b"REST+later");
    assert!(matches!(new.borrow()[0], Ev::Made(_)));
    assert_eq!(
        data(&old),
        b"xREST",
        "the old handler saw only the first read"
    );
    assert_eq!(
        reactor.stats().handlers,
        base.reactor.handlers + 1,
        "old one removed"
    );
    let id = handler.borrow().unwrap();
    reactor.ctx().remove_handler(id);
    turn_for(&mut reactor, Duration::from_millis(20));
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        server.read_to_end(&mut rest).unwrap(),
        0,
        "closed by removal"
    );
    drop(server);
    base.assert_back(&mut reactor);
    // A connection that is not open is refused, and the protocol comes back unused.
    let stale = reactor
        .ctx()
        .connect_owned("127.0.0.1", port, ConnectOptions::default());
    let back = reactor
        .ctx()
        .hand_over(stale, LoggingProtocol::new(&new).boxed(), Vec::new());
    assert!(back.is_err());
}

/// A server that floods right after the 101 while the response waits for its decision: the
/// agent holds at most what one read brought (the rest waits in the kernel), and the
/// protocol gets every byte, in order, once.
#[test]
fn a_flood_after_the_101_waits_for_the_handover_and_arrives_in_order() {
    const FLOOD: usize = 1 << 20;
    let flood: Vec<u8> = (0..FLOOD).map(|i| (i % 253) as u8).collect();
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write([SWITCH, &flood].concat()),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let kept: Rc<RefCell<Option<Response>>> = Rc::default();
    let k = kept.clone();
    agent.request(
        reactor.ctx(),
        Request::get(srv.url("/")).upgrade("echo"),
        Box::new(move |_, result| *k.borrow_mut() = Some(result.unwrap())),
    );
    turn_until(&mut reactor, LIMIT, || kept.borrow().is_some());
    // The decision comes later, from outside any callback.
    turn_for(&mut reactor, Duration::from_millis(200));
    let received = Rc::new(RefCell::new(Vec::new()));
    let events = log();
    let r = received.clone();
    let protocol = LoggingProtocol::new(&events)
        .quiet()
        .data(move |ctx, conn, d| {
            r.borrow_mut().extend_from_slice(d);
            if r.borrow().len() >= FLOOD {
                ctx.lose_connection(conn);
            }
        });
    let response = kept.borrow_mut().take().unwrap();
    response.upgrade(reactor.ctx(), protocol).unwrap();
    drop(response);
    turn_until(&mut reactor, LIMIT, || lost(&events).is_some());
    assert!(
        *received.borrow() == flood,
        "bytes lost, repeated or reordered"
    );
    assert_nothing_pooled(&mut reactor, agent);
}
