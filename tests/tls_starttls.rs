//! `Ctx::start_tls`: upgrading an open plain connection to TLS, as HTTPS through a proxy's
//! `CONNECT` tunnel does. A scripted server on 127.0.0.1 exchanges plaintext lines, then runs
//! a rustls server on the same socket.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use support::reactor::*;
use support::servers::TestCa;
use support::servers::tls::{
    ServerEnd, read_line, server_config, silent_listener, spawn_plain_server, spawn_tls_server,
    tls_echo,
};
use weft::reactor::{ConnId, ConnectOptions, Ctx, Disconnect, Reactor, TransportError};
use weft::tls::{TlsConnector, TlsError};

const LIMIT: Duration = Duration::from_secs(10);
const INJECTED: &[u8] = b"INJECTED\n";

/// What the client saw.
struct Outcome {
    log: Log,
    /// Data delivered after `start_tls` was called.
    after_start: Vec<u8>,
    /// `conn_timing` when the first byte through TLS arrived: (connected, tls_done).
    timing: Option<(std::time::Instant, std::time::Instant)>,
}

/// Client: sends "hello\n"; on "ok\n" writes "go\n" in plaintext, calls `start_tls`, and
/// writes "secret" (which must go through TLS); closes once "secret" is echoed back.
/// With `pause_first`, it pauses on "ok\n" and does all that 100 ms later from a timer, so
/// that whatever the server sent meanwhile waits in the kernel when `start_tls` runs.
fn run_client(port: u16, connector: TlsConnector, pause_first: bool) -> Outcome {
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let started = Rc::new(Cell::new(false));
    let after_start = Rc::new(RefCell::new(Vec::new()));
    let timing = Rc::new(Cell::new(None));
    let (started2, after2, timing2) = (started.clone(), after_start.clone(), timing.clone());
    let upgrade = move |ctx: &mut Ctx, conn: ConnId| {
        ctx.write(conn, b"go\n");
        ctx.start_tls(conn, &connector, "localhost");
        ctx.write(conn, b"secret");
    };
    reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"hello\n"))
            .data(move |ctx, conn, data| {
                if started2.get() {
                    let mut after = after2.borrow_mut();
                    after.extend_from_slice(data);
                    if let Some(t) = ctx.conn_timing(conn) {
                        timing2.set(Some((t.connected.unwrap(), t.tls_done.unwrap())));
                    }
                    if *after == b"secret" {
                        ctx.lose_connection(conn);
                    }
                    return;
                }
                // A careful protocol ignores whatever follows "ok\n" in the same slice.
                if data.starts_with(b"ok\n") {
                    started2.set(true);
                    if pause_first {
                        ctx.pause_reading(conn);
                        let upgrade = upgrade.clone();
                        ctx.call_later(Duration::from_millis(100), move |ctx| {
                            upgrade(ctx, conn);
                            ctx.resume_reading(conn);
                        });
                    } else {
                        upgrade(ctx, conn);
                    }
                }
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    turn_for(&mut reactor, Duration::from_millis(20));
    assert_eq!(endings(&client_log), 1);
    assert_eq!(reactor.ctx().connection_count(), 0);
    let after_start = after_start.borrow().clone();
    Outcome {
        log: client_log,
        after_start,
        timing: timing.get(),
    }
}

fn ca_and_connector() -> (TestCa, TlsConnector) {
    let ca = TestCa::new();
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    (ca, tls)
}

fn expect_line(tcp: &mut std::net::TcpStream, want: &[u8]) -> Result<(), String> {
    let line = read_line(tcp)?;
    if line == want {
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {line:?}"))
    }
}

#[test]
fn plaintext_exchange_then_tls_echo() {
    let (ca, tls) = ca_and_connector();
    let config = server_config(ca.leaf(&["localhost"], None));
    let (addr, server) = spawn_plain_server(move |mut tcp| {
        expect_line(&mut tcp, b"hello\n")?;
        tcp.write_all(b"ok\n").map_err(|e| e.to_string())?;
        // Written before start_tls, so it must arrive in plaintext, before the ClientHello.
        expect_line(&mut tcp, b"go\n")?;
        tls_echo(tcp, config)
    });
    let outcome = run_client(addr.port(), tls, false);
    let conn = match non_data(&outcome.log)[0] {
        Ev::Made(conn) => conn,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(
        non_data(&outcome.log),
        vec![
            Ev::Made(conn),
            Ev::TlsStarted(conn),
            Ev::Lost(conn, Disconnect::ClosedLocally)
        ]
    );
    // "ok\n" came before tls_started, the echo after it.
    let events = outcome.log.borrow().clone();
    let tls_at = events
        .iter()
        .position(|e| *e == Ev::TlsStarted(conn))
        .unwrap();
    assert_eq!(events[1], Ev::Data(conn, b"ok\n".to_vec()));
    assert!(events[tls_at + 1..].contains(&Ev::Data(conn, b"secret".to_vec())));
    assert_eq!(outcome.after_start, b"secret");
    assert_eq!(server.join().unwrap().unwrap(), b"secret");
    let (connected, tls_done) = outcome.timing.expect("timing seen");
    assert!(connected <= tls_done);
}

#[test]
fn garbage_instead_of_a_handshake_fails_with_a_tls_error() {
    let (_ca, tls) = ca_and_connector();
    let (addr, server) = spawn_plain_server(move |mut tcp| {
        expect_line(&mut tcp, b"hello\n")?;
        tcp.write_all(b"ok\n").map_err(|e| e.to_string())?;
        expect_line(&mut tcp, b"go\n")?;
        let mut hello = [0u8; 512];
        let n = tcp.read(&mut hello).map_err(|e| e.to_string())?;
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(200));
        Ok(n)
    });
    let outcome = run_client(addr.port(), tls, false);
    let events = non_data(&outcome.log);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], Ev::Made(_)));
    assert!(
        matches!(
            events[1],
            Ev::Lost(_, Disconnect::Failed(TransportError::Tls(_)))
        ),
        "{events:?}"
    );
    assert!(outcome.after_start.is_empty());
    assert!(
        server.join().unwrap().unwrap() > 0,
        "a ClientHello was sent"
    );
}

/// Plaintext that the server sends right after "ok\n" never reaches `data_received` after
/// `start_tls`: either it was in the same slice as "ok\n" (delivered before `start_tls`), or
/// it is discarded, or (if it arrives after the ClientHello) it breaks the handshake.
#[test]
fn plaintext_after_the_answer_is_never_delivered_as_tls_data() {
    let (ca, tls) = ca_and_connector();
    let config = server_config(ca.leaf(&["localhost"], None));
    let (addr, server) = spawn_plain_server(move |mut tcp| {
        expect_line(&mut tcp, b"hello\n")?;
        tcp.write_all(b"ok\n").map_err(|e| e.to_string())?;
        tcp.write_all(INJECTED).map_err(|e| e.to_string())?;
        expect_line(&mut tcp, b"go\n")?;
        tls_echo(tcp, config)
    });
    let outcome = run_client(addr.port(), tls, false);
    assert!(
        !outcome
            .after_start
            .windows(INJECTED.len())
            .any(|w| w == INJECTED),
        "{:?}",
        outcome.after_start
    );
    match non_data(&outcome.log).last().unwrap() {
        Ev::Lost(_, Disconnect::ClosedLocally) => assert_eq!(outcome.after_start, b"secret"),
        Ev::Lost(_, Disconnect::Failed(TransportError::Tls(_))) => {}
        other => panic!("{other:?}"),
    }
    let _ = server.join().unwrap();
}

/// Deterministic form: the extra plaintext waits in the kernel when `start_tls` is called;
/// it is discarded, so the handshake succeeds and only the echo is delivered.
#[test]
fn plaintext_waiting_in_the_kernel_is_discarded_by_start_tls() {
    let (ca, tls) = ca_and_connector();
    let config = server_config(ca.leaf(&["localhost"], None));
    let (addr, server) = spawn_plain_server(move |mut tcp| {
        expect_line(&mut tcp, b"hello\n")?;
        tcp.write_all(b"ok\n").map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(20));
        tcp.write_all(INJECTED).map_err(|e| e.to_string())?;
        expect_line(&mut tcp, b"go\n")?;
        tls_echo(tcp, config)
    });
    let outcome = run_client(addr.port(), tls, true);
    assert_eq!(data_of(&outcome.log), b"ok\nsecret");
    assert_eq!(outcome.after_start, b"secret");
    assert!(matches!(
        non_data(&outcome.log).as_slice(),
        [
            Ev::Made(_),
            Ev::TlsStarted(_),
            Ev::Lost(_, Disconnect::ClosedLocally)
        ]
    ));
    assert_eq!(server.join().unwrap().unwrap(), b"secret");
}

#[test]
fn start_tls_on_a_tls_connection_aborts_it() {
    let ca = TestCa::new();
    let (addr, _server) = spawn_tls_server(
        ca.leaf(&["localhost"], None),
        ServerEnd::EchoUntilClientCloses,
    );
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let again = tls.clone();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    reactor.ctx().connect_tcp(
        "localhost",
        addr.port(),
        ConnectOptions {
            tls: Some(tls),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .made(move |ctx, conn| ctx.start_tls(conn, &again, "localhost"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let events = non_data(&client_log);
    assert!(
        matches!(
            &events[..],
            [
                Ev::Made(_),
                Ev::Lost(
                    _,
                    Disconnect::Failed(TransportError::Io(std::io::ErrorKind::InvalidInput, _))
                )
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn start_tls_before_the_connection_is_open_fails_it() {
    let (_ca, tls) = ca_and_connector();
    let listener = silent_listener();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log).boxed(),
    );
    reactor.ctx().start_tls(conn, &tls, "localhost");
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(matches!(
        &non_data(&client_log)[..],
        [Ev::Failed(
            _,
            TransportError::Io(std::io::ErrorKind::InvalidInput, _)
        )]
    ));
}

#[test]
fn invalid_server_name_ends_the_connection() {
    let (_ca, tls) = ca_and_connector();
    let listener = silent_listener();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    reactor.ctx().connect_tcp(
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .made(move |ctx, conn| ctx.start_tls(conn, &tls, "not a name!"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(matches!(
        &non_data(&client_log)[..],
        [
            Ev::Made(_),
            Ev::Lost(
                _,
                Disconnect::Failed(TransportError::Tls(TlsError::InvalidServerName(_)))
            )
        ]
    ));
}
