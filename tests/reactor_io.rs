//! Reactor connection tests, all on 127.0.0.1.

mod support;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::reactor::*;
use weft::reactor::{
    ConnId, ConnTiming, ConnectOptions, Ctx, Disconnect, Reactor, ReactorGone, TransportError,
};

const LIMIT: Duration = Duration::from_secs(10);

fn echo_server(reactor: &mut Reactor) -> SocketAddr {
    reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), || Box::new(Echo))
        .unwrap()
}

#[test]
fn echo_round_trip_and_clean_close() {
    let mut reactor = Reactor::new().unwrap();
    let server_log = log();
    let sl = server_log.clone();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            LoggingProtocol::new(&sl)
                .data(|ctx, conn, data| ctx.write(conn, data))
                .boxed()
        })
        .unwrap();
    let client_log = log();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"hello, reactor"))
            .data(move |ctx, conn, data| {
                g.borrow_mut().extend_from_slice(data);
                if g.borrow().len() == 14 {
                    ctx.lose_connection(conn);
                }
            })
            .boxed(),
    );
    // Nothing is delivered inside connect_tcp.
    assert!(client_log.borrow().is_empty());
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log)
        == 1
        && endings(&server_log) == 1));
    assert_eq!(&got.borrow()[..], b"hello, reactor");
    let events = non_data(&client_log);
    assert_eq!(
        events,
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::ClosedLocally)]
    );
    let server_events = non_data(&server_log);
    assert!(matches!(server_events[0], Ev::Made(_)));
    assert!(matches!(
        server_events[1],
        Ev::Lost(_, Disconnect::PeerClosed)
    ));
    assert_eq!(data_of(&server_log), b"hello, reactor");
    // Exactly once, even after more turns; the slots are freed.
    turn_for(&mut reactor, Duration::from_millis(50));
    assert_eq!(endings(&client_log), 1);
    assert_eq!(endings(&server_log), 1);
    assert_eq!(reactor.ctx().connection_count(), 0);
    assert!(!reactor.ctx().is_open(conn));
}

#[test]
fn peer_addr_and_is_open() {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(!reactor.ctx().is_open(conn));
    assert!(turn_until(&mut reactor, LIMIT, |_| !client_log
        .borrow()
        .is_empty()));
    assert!(reactor.ctx().is_open(conn));
    assert_eq!(reactor.ctx().peer_addr(conn), Some(addr));
    reactor.ctx().abort_connection(conn);
    assert!(!reactor.ctx().is_open(conn));
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert_eq!(
        non_data(&client_log)[1],
        Ev::Lost(conn, Disconnect::ClosedLocally)
    );
}

#[test]
fn large_transfer_with_backpressure() {
    const TOTAL: usize = 8 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let mut reactor = Reactor::new().unwrap();

    // Server: echo, pausing reads while its own write buffer is full.
    let server_pauses = Rc::new(Cell::new(0usize));
    let sp = server_pauses.clone();
    let server_log = log();
    let sl = server_log.clone();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            let sp = sp.clone();
            LoggingProtocol::new(&sl)
                .quiet()
                .data(move |ctx, conn, data| {
                    ctx.write(conn, data);
                    if ctx.write_full(conn) {
                        sp.set(sp.get() + 1);
                        ctx.pause_reading(conn);
                    }
                })
                .drained(|ctx, conn| ctx.resume_reading(conn))
                .boxed()
        })
        .unwrap();

    fn pattern(i: usize) -> u8 {
        (i % 251) as u8
    }
    let sent = Rc::new(Cell::new(0usize));
    let max_buffered = Rc::new(Cell::new(0usize));
    let pump = {
        let sent = sent.clone();
        let max_buffered = max_buffered.clone();
        move |ctx: &mut Ctx, conn: ConnId| {
            while sent.get() < TOTAL && !ctx.write_full(conn) {
                let start = sent.get();
                let end = (start + CHUNK).min(TOTAL);
                let chunk: Vec<u8> = (start..end).map(pattern).collect();
                ctx.write(conn, &chunk);
                sent.set(end);
                max_buffered.set(max_buffered.get().max(ctx.write_buffered(conn)));
            }
        }
    };
    let received = Rc::new(Cell::new(0usize));
    let bad = Rc::new(Cell::new(false));
    let r = received.clone();
    let b = bad.clone();
    // The client stops reading for a while (until the server hits its high-water mark, or 3 s)
    // so that the server's side sees backpressure too.
    fn resume_when(ctx: &mut Ctx, conn: ConnId, server_pauses: Rc<Cell<usize>>, until: Instant) {
        if server_pauses.get() > 0 || Instant::now() >= until {
            ctx.resume_reading(conn);
        } else {
            ctx.call_later(Duration::from_millis(5), move |ctx| {
                resume_when(ctx, conn, server_pauses, until)
            });
        }
    }
    let paused_once = Rc::new(Cell::new(false));
    let po = paused_once.clone();
    let sp2 = server_pauses.clone();
    let client_log = log();
    let pump2 = pump.clone();
    reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .quiet()
            .made(pump)
            .drained(pump2)
            .data(move |ctx, conn, data| {
                let start = r.get();
                if data
                    .iter()
                    .enumerate()
                    .any(|(i, &x)| x != pattern(start + i))
                {
                    b.set(true);
                }
                r.set(start + data.len());
                if !po.get() && r.get() >= 256 * 1024 {
                    po.set(true);
                    ctx.pause_reading(conn);
                    let until = Instant::now() + Duration::from_secs(3);
                    resume_when(ctx, conn, sp2.clone(), until);
                }
                if r.get() == TOTAL {
                    ctx.lose_connection(conn);
                }
            })
            .boxed(),
    );
    assert!(
        turn_until(&mut reactor, Duration::from_secs(60), |_| endings(
            &client_log
        ) == 1),
        "received {} of {TOTAL}",
        received.get()
    );
    assert_eq!(received.get(), TOTAL);
    assert!(!bad.get(), "data corrupted");
    let drained = client_log
        .borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Drained(_)))
        .count();
    assert!(drained > 0, "write_drained never fired");
    assert!(server_pauses.get() > 0, "the server never hit write_full");
    assert!(max_buffered.get() <= 64 * 1024 + CHUNK);
    assert!(turn_until(&mut reactor, LIMIT, |r| r
        .ctx()
        .connection_count()
        == 0));
}

#[test]
fn paused_connection_gets_no_data_until_resumed() {
    let mut reactor = Reactor::new().unwrap();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), || {
            Box::new(LoggingProtocol::new(&log()).made(|ctx, conn| ctx.write(conn, b"payload")))
        })
        .unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.pause_reading(conn))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| !client_log
        .borrow()
        .is_empty()));
    // The payload arrives while paused: nothing is delivered.
    turn_for(&mut reactor, Duration::from_millis(200));
    assert_eq!(non_data(&client_log), vec![Ev::Made(conn)]);
    assert!(data_of(&client_log).is_empty());
    // Resuming reads what the kernel holds, with no new readiness event to come.
    reactor.ctx().resume_reading(conn);
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(data_of(&client_log), b"payload");
    reactor.ctx().abort_connection(conn);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
}

#[test]
fn lose_connection_flushes_before_close() {
    const SIZE: usize = 1024 * 1024;
    let mut reactor = Reactor::new().unwrap();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), || {
            Box::new(LoggingProtocol::new(&log()).made(|ctx, conn| {
                ctx.write(conn, &vec![7u8; SIZE]);
                assert!(ctx.write_full(conn));
                ctx.lose_connection(conn);
                // Writing to a closing connection is a no-op.
                ctx.write(conn, b"ignored");
                assert!(!ctx.is_open(conn));
            }))
        })
        .unwrap();
    let client_log = log();
    let count = Rc::new(Cell::new(0usize));
    let c = count.clone();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .quiet()
            .data(move |_, _, d| {
                assert!(d.iter().all(|&b| b == 7));
                c.set(c.get() + d.len());
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert_eq!(count.get(), SIZE);
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::PeerClosed)]
    );
}

/// A one-connection server on 127.0.0.1 (its port, its thread): it waits for the client's
/// first bytes without reading them, writes `answer`, and closes. Closing with unread bytes
/// makes the kernel send a reset rather than a FIN.
fn answer_then_reset(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.peek(&mut byte).unwrap(), 1);
        stream.write_all(answer).unwrap();
    });
    (port, server)
}

/// A peer that answers before it has read what the client sent, then closes (a server's early
/// 413 during an upload): the close resets the connection, and the client's next write fails.
/// The answer, already in the socket, is still delivered before the connection ends.
#[test]
fn an_answer_sent_before_the_peer_reset_is_delivered_despite_the_failed_write() {
    let (port, server) = answer_then_reset(b"early answer");
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| {
                ctx.write(conn, b"a");
                ctx.call_later(Duration::ZERO, move |ctx| {
                    // The loop is held while the peer answers and resets; then a write.
                    std::thread::sleep(Duration::from_millis(300));
                    ctx.write(conn, b"b");
                });
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    server.join().unwrap();
    assert_eq!(data_of(&client_log), b"early answer");
    let events = non_data(&client_log);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], Ev::Made(conn));
    assert!(
        matches!(events[1], Ev::Lost(c, _) if c == conn),
        "{events:?}"
    );
}

#[test]
fn abort_connection_reports_once_and_peer_sees_close() {
    let mut reactor = Reactor::new().unwrap();
    let server_log = log();
    let sl = server_log.clone();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            LoggingProtocol::new(&sl).boxed()
        })
        .unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| {
                ctx.write(conn, b"never sent, maybe");
                ctx.abort_connection(conn);
                ctx.abort_connection(conn);
                ctx.lose_connection(conn);
                ctx.write(conn, b"no-op");
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log)
        == 1
        && endings(&server_log) == 1));
    turn_for(&mut reactor, Duration::from_millis(50));
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::ClosedLocally)]
    );
    assert_eq!(endings(&server_log), 1);
    let lost = non_data(&server_log).pop().unwrap();
    assert!(
        matches!(
            lost,
            Ev::Lost(_, Disconnect::PeerClosed)
                | Ev::Lost(_, Disconnect::Failed(TransportError::ConnectionReset))
        ),
        "{lost:?}"
    );
    assert_eq!(reactor.ctx().connection_count(), 0);
}

#[test]
fn connect_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    turn_for(&mut reactor, Duration::from_millis(30));
    assert_eq!(
        *client_log.borrow(),
        vec![Ev::Failed(conn, TransportError::ConnectionRefused)]
    );
    assert_eq!(reactor.ctx().connection_count(), 0);
}

#[test]
fn connect_by_name_through_resolver_thread() {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "localhost",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"ping"))
            .data(|ctx, conn, _| ctx.lose_connection(conn))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert_eq!(data_of(&client_log), b"ping");
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::ClosedLocally)]
    );
}

#[test]
fn bracketed_ipv6_literal_is_accepted() {
    // ::1 may be unavailable; either way exactly one ending event, never a DNS error.
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    reactor.ctx().connect_tcp(
        "[::1]",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let ev = client_log.borrow()[0].clone();
    assert!(
        matches!(
            ev,
            Ev::Failed(
                _,
                TransportError::ConnectionRefused | TransportError::Io(..)
            )
        ),
        "{ev:?}"
    );
}

#[test]
fn unresolvable_name_fails_with_dns_error() {
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    // `.invalid` never resolves (RFC 6761); the lookup runs on the resolver thread.
    reactor.ctx().connect_tcp(
        "weft-test.invalid",
        80,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let ev = client_log.borrow()[0].clone();
    assert!(
        matches!(ev, Ev::Failed(_, TransportError::Dns(_))),
        "{ev:?}"
    );
}

#[test]
fn connect_timeout_covers_the_tls_handshake() {
    let silent = support::servers::tls::silent_listener();
    let port = silent.local_addr().unwrap().port();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let started = Instant::now();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions {
            connect_timeout: Some(Duration::from_millis(200)),
            tls: Some(weft::tls::TlsConnector::danger_accept_invalid_certs()),
            owner: None,
            ..Default::default()
        },
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert_eq!(reactor.ctx().timer_count(), 1);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(
        *client_log.borrow(),
        vec![Ev::Failed(conn, TransportError::ConnectTimeout)]
    );
    assert_eq!(reactor.ctx().timer_count(), 0);
    assert_eq!(reactor.ctx().connection_count(), 0);
    drop(silent);
}

#[test]
fn connect_timeout_timer_is_cancelled_on_success() {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let client_log = log();
    reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| !client_log
        .borrow()
        .is_empty()));
    assert!(matches!(client_log.borrow()[0], Ev::Made(_)));
    assert_eq!(reactor.ctx().timer_count(), 0);
}

#[test]
fn remove_handler_aborts_its_connections_silently() {
    let mut reactor = Reactor::new().unwrap();
    let server_log = log();
    let sl = server_log.clone();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            LoggingProtocol::new(&sl).boxed()
        })
        .unwrap();
    let owner_log = log();
    let owner = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&owner_log).boxed());
    let opts = ConnectOptions {
        owner: Some(owner),
        ..Default::default()
    };
    let a = reactor
        .ctx()
        .connect_owned("127.0.0.1", addr.port(), opts.clone());
    let b = reactor.ctx().connect_owned("127.0.0.1", addr.port(), opts);
    assert_ne!(a, b);
    let timer = reactor.ctx().set_timer(Duration::from_secs(30), owner, 1);
    assert!(turn_until(&mut reactor, LIMIT, |_| owner_log
        .borrow()
        .len()
        == 2));
    assert_eq!(reactor.ctx().timer_count(), 1);
    reactor.ctx().remove_handler(owner);
    assert_eq!(reactor.ctx().timer_count(), 0);
    assert!(!reactor.ctx().cancel_timer(timer));
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&server_log) == 2));
    // The removed handler heard nothing more.
    assert_eq!(owner_log.borrow().len(), 2);
    assert_eq!(reactor.ctx().connection_count(), 0);
    // Posting to it is a no-op.
    reactor.ctx().post(owner, Box::new("late".to_string()));
    turn_for(&mut reactor, Duration::from_millis(20));
    assert_eq!(owner_log.borrow().len(), 2);
}

#[test]
fn connect_owned_without_owner_is_a_stale_id() {
    let mut reactor = Reactor::new().unwrap();
    let conn = reactor
        .ctx()
        .connect_owned("127.0.0.1", 9, ConnectOptions::default());
    assert!(!reactor.ctx().is_open(conn));
    assert_eq!(reactor.ctx().connection_count(), 0);
    reactor.ctx().write(conn, b"x");
    reactor.ctx().abort_connection(conn);
}

#[test]
fn stale_ids_are_no_ops_after_slot_reuse() {
    let mut reactor = Reactor::new().unwrap();
    let server_log = log();
    let sl = server_log.clone();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            LoggingProtocol::new(&sl).boxed()
        })
        .unwrap();
    let first_log = log();
    let first = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&first_log)
            .made(|ctx, conn| ctx.abort_connection(conn))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&first_log)
        == 1
        && endings(&server_log) == 1));
    assert_eq!(reactor.ctx().connection_count(), 0);

    let second_log = log();
    let second = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&second_log).boxed(),
    );
    assert_ne!(first, second);
    assert!(turn_until(&mut reactor, LIMIT, |_| !second_log
        .borrow()
        .is_empty()));
    // Stale handle: every call is a no-op and never touches the new connection.
    let ctx = reactor.ctx();
    ctx.write(first, b"stale");
    ctx.pause_reading(first);
    ctx.lose_connection(first);
    ctx.abort_connection(first);
    assert!(!ctx.is_open(first));
    assert_eq!(ctx.write_buffered(first), 0);
    assert_eq!(ctx.peer_addr(first), None);
    assert!(ctx.is_open(second));
    turn_for(&mut reactor, Duration::from_millis(50));
    assert!(reactor.ctx().is_open(second));
    assert_eq!(endings(&second_log), 0);
    assert_eq!(endings(&first_log), 1);
    // No byte of "stale" reached the server side.
    assert!(data_of(&server_log).is_empty());

    // Stale handler ids too.
    let h1_log = log();
    let h1 = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&h1_log).boxed());
    reactor.ctx().remove_handler(h1);
    let h2_log = log();
    let h2 = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&h2_log).boxed());
    assert_ne!(h1, h2);
    reactor.ctx().post(h1, Box::new("to h1".to_string()));
    reactor.ctx().set_timer(Duration::ZERO, h1, 9);
    reactor.ctx().remove_handler(h1);
    reactor.ctx().post(h2, Box::new("to h2".to_string()));
    turn_for(&mut reactor, Duration::from_millis(30));
    assert!(h1_log.borrow().is_empty());
    assert_eq!(*h2_log.borrow(), vec![Ev::Msg("to h2".to_string())]);
    reactor.ctx().abort_connection(second);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&second_log) == 1));
}

#[test]
fn remote_call_wakes_a_sleeping_reactor() {
    let mut reactor = Reactor::new().unwrap();
    let remote = reactor.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        remote.call(|ctx| ctx.stop()).unwrap();
    });
    let started = Instant::now();
    // Without the wake-up this would sleep 5 s.
    reactor.turn(Some(Duration::from_secs(5))).unwrap();
    let elapsed = started.elapsed();
    t.join().unwrap();
    if !reactor.is_stopped() {
        // The wake-up may land just before the call is queued: one more short turn.
        reactor.turn(Some(Duration::from_millis(100))).unwrap();
    }
    assert!(reactor.is_stopped());
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn run_returns_after_remote_stop() {
    let mut reactor = Reactor::new().unwrap();
    let remote = reactor.remote();
    // Safety net so the test cannot hang.
    reactor
        .ctx()
        .call_later(Duration::from_secs(10), |ctx| ctx.stop());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        remote.call(|ctx| ctx.stop()).unwrap();
    });
    let started = Instant::now();
    reactor.run().unwrap();
    t.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(reactor.is_stopped());
}

#[test]
fn remote_after_drop_is_reactor_gone() {
    let reactor = Reactor::new().unwrap();
    let remote = reactor.remote();
    drop(reactor);
    assert_eq!(remote.call(|_| {}), Err(ReactorGone));
    assert_eq!(ReactorGone.to_string(), "the reactor is gone");
}

#[test]
fn turn_zero_does_not_block() {
    let mut reactor = Reactor::new().unwrap();
    let _addr = echo_server(&mut reactor);
    reactor.ctx().call_later(Duration::from_secs(60), |_| {});
    let started = Instant::now();
    for _ in 0..10 {
        reactor.turn(Some(Duration::ZERO)).unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn transport_error_messages_name_the_cause() {
    assert_eq!(
        TransportError::ConnectionRefused.to_string(),
        "connection refused"
    );
    assert_eq!(
        TransportError::ConnectTimeout.to_string(),
        "connect timed out"
    );
    assert_eq!(
        TransportError::Tls(weft::tls::TlsError::UnknownIssuer).to_string(),
        "certificate verify failed: unknown issuer"
    );
}

#[test]
fn peer_reset_is_connection_reset() {
    let (port, server) = answer_then_reset(b"partial");
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"unread by the server"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    server.join().unwrap();
    turn_for(&mut reactor, Duration::from_millis(20));
    let events = non_data(&client_log);
    assert_eq!(
        events,
        vec![
            Ev::Made(conn),
            Ev::Lost(conn, Disconnect::Failed(TransportError::ConnectionReset))
        ]
    );
}

#[test]
fn set_owner_moves_events_to_another_handler() {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let first_log = log();
    let pool_log = log();
    let pool = reactor.ctx().add_handler(
        LoggingProtocol::new(&pool_log)
            .data(|ctx, conn, _| ctx.lose_connection(conn))
            .boxed(),
    );
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&first_log)
            .made(move |ctx, conn| {
                ctx.set_owner(conn, pool);
                ctx.write(conn, b"moved");
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&pool_log) == 1));
    assert_eq!(*first_log.borrow(), vec![Ev::Made(conn)]);
    assert_eq!(data_of(&pool_log), b"moved");
    assert_eq!(
        non_data(&pool_log),
        vec![Ev::Lost(conn, Disconnect::ClosedLocally)]
    );
}

/// Connects to `host` on an echo server and returns the timing seen in `connection_made`
/// and the one seen after the connection ended (stale id).
fn timing_of_plain_connect(host: &str) -> (ConnTiming, Option<ConnTiming>) {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let client_log = log();
    let seen = Rc::new(Cell::new(None));
    let seen_in_made = seen.clone();
    let before = Instant::now();
    let conn = reactor.ctx().connect_tcp(
        host,
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(move |ctx, conn| {
                seen_in_made.set(ctx.conn_timing(conn));
                ctx.lose_connection(conn);
            })
            .boxed(),
    );
    let at_start = reactor.ctx().conn_timing(conn).unwrap();
    assert!(at_start.started >= before);
    assert!(at_start.connected.is_none() && at_start.tls_done.is_none());
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let after = reactor.ctx().conn_timing(conn);
    (seen.get().expect("connection_made saw a timing"), after)
}

#[test]
fn conn_timing_of_a_plain_connect_by_name() {
    let (timing, after) = timing_of_plain_connect("localhost");
    let resolved = timing.resolved.expect("resolved");
    let connected = timing.connected.expect("connected");
    assert!(timing.started <= resolved && resolved <= connected);
    assert_eq!(timing.tls_done, None, "plain TCP has no TLS step");
    assert_eq!(after, None, "a stale id has no timing");
}

#[test]
fn conn_timing_of_an_ip_literal_is_resolved_at_start() {
    let (timing, _) = timing_of_plain_connect("127.0.0.1");
    assert_eq!(timing.resolved, Some(timing.started));
    assert!(timing.connected.expect("connected") >= timing.started);
    assert_eq!(timing.tls_done, None);
}

#[test]
fn conn_timing_of_an_accepted_connection() {
    let mut reactor = Reactor::new().unwrap();
    let seen = Rc::new(Cell::new(None));
    let server_seen = seen.clone();
    let server_log = log();
    let addr = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
            let seen = server_seen.clone();
            LoggingProtocol::new(&server_log)
                .made(move |ctx, conn| seen.set(ctx.conn_timing(conn)))
                .boxed()
        })
        .unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    assert!(turn_until(&mut reactor, LIMIT, |_| seen.get().is_some()));
    let timing: ConnTiming = seen.get().unwrap();
    assert_eq!(timing.resolved, Some(timing.started));
    assert_eq!(timing.connected, Some(timing.started));
    assert_eq!(timing.tls_done, None);
}

/// A connector hands over one end of a Unix socket pair: the connection behaves as a TCP one
/// (made, data both ways, peer close), reports the address it stands for, and never touches
/// the network.
#[test]
fn connector_streams_replace_tcp() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let mut reactor = Reactor::new().unwrap();
    let peers: Rc<RefCell<Vec<UnixStream>>> = Rc::default();
    let asked: Rc<RefCell<Vec<SocketAddr>>> = Rc::default();
    let (p, a) = (peers.clone(), asked.clone());
    reactor.ctx().set_connector(move |addr: SocketAddr| {
        a.borrow_mut().push(addr);
        if addr.port() == 1 {
            // This address refuses; the next one is tried.
            return Some(Err(std::io::ErrorKind::ConnectionRefused.into()));
        }
        let (ours, theirs) = UnixStream::pair().unwrap();
        p.borrow_mut().push(theirs);
        Some(Ok(ours))
    });
    reactor.ctx().set_resolver(|_: &str, port: u16| {
        Ok(vec![
            SocketAddr::from(([192, 0, 2, 1], 1)),
            SocketAddr::from(([192, 0, 2, 2], port)),
        ])
    });
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "service.test",
        8080,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"ping"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| {
        !non_data(&client_log).is_empty()
    }));
    assert_eq!(non_data(&client_log), vec![Ev::Made(conn)]);
    assert_eq!(
        *asked.borrow(),
        [
            SocketAddr::from(([192, 0, 2, 1], 1)),
            SocketAddr::from(([192, 0, 2, 2], 8080))
        ]
    );
    assert_eq!(
        reactor.ctx().peer_addr(conn),
        Some(SocketAddr::from(([192, 0, 2, 2], 8080)))
    );
    let mut server = peers.borrow_mut().pop().expect("one stream handed over");
    server.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = [0u8; 4];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    server.write_all(b"pong").unwrap();
    drop(server);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert_eq!(data_of(&client_log), b"pong");
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::PeerClosed)]
    );
    assert_eq!(reactor.ctx().connection_count(), 0);
}

/// A connector that declines (`None`) leaves the TCP connect as it was.
#[test]
fn connector_declining_falls_back_to_tcp() {
    let mut reactor = Reactor::new().unwrap();
    let addr = echo_server(&mut reactor);
    let declined = Rc::new(Cell::new(0));
    let d = declined.clone();
    reactor.ctx().set_connector(move |_: SocketAddr| {
        d.set(d.get() + 1);
        None
    });
    let client_log = log();
    reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"over tcp"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| data_of(&client_log)
        .len()
        == 8));
    assert_eq!(data_of(&client_log), b"over tcp");
    assert_eq!(declined.get(), 1);
}
