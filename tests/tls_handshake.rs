//! TLS through the reactor against a tiny rustls server on 127.0.0.1 (test PKI from rcgen).

mod support;

use std::time::Duration;

use support::reactor::*;
use support::servers::tls::{ServerEnd, spawn_tls_server};
use support::servers::{Leaf, TestCa};
use weft::reactor::{ConnTiming, ConnectOptions, Disconnect, Reactor, TransportError};
use weft::tls::{TlsConnector, TlsError};

const LIMIT: Duration = Duration::from_secs(10);

/// Connects to `host:port` with `tls`, sends "hello" once made, and runs until the connection
/// ends. Returns the client's log.
fn exchange(host: &str, port: u16, tls: TlsConnector) -> Log {
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    reactor.ctx().connect_tcp(
        host,
        port,
        ConnectOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            tls: Some(tls),
            owner: None,
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| ctx.write(conn, b"hello"))
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    turn_for(&mut reactor, Duration::from_millis(20));
    assert_eq!(endings(&client_log), 1);
    assert_eq!(reactor.ctx().connection_count(), 0);
    assert_eq!(reactor.ctx().timer_count(), 0);
    client_log
}

fn failure(client_log: &Log) -> TransportError {
    let events = client_log.borrow();
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Ev::Failed(_, e) => e.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn handshake_and_echo_with_trusted_ca_then_close_notify() {
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(
        ca.leaf(&["localhost", "127.0.0.1"], None),
        ServerEnd::CloseNotify,
    );
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    assert!(tls.verifies());
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(data_of(&client_log), b"echo:hello");
    let events = non_data(&client_log);
    assert!(matches!(events[0], Ev::Made(_)));
    assert!(
        matches!(events[1], Ev::Lost(_, Disconnect::PeerClosed)),
        "{events:?}"
    );
    assert_eq!(server.join().unwrap().unwrap().request, b"hello");
}

#[test]
fn ip_literal_host_is_checked_against_ip_san() {
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(ca.leaf(&["127.0.0.1"], None), ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("127.0.0.1", addr.port(), tls);
    assert_eq!(data_of(&client_log), b"echo:hello");
    server.join().unwrap().unwrap();
}

#[test]
fn drop_without_close_notify_is_reported() {
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::DropTcp);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(data_of(&client_log), b"echo:hello");
    let events = non_data(&client_log);
    assert!(
        matches!(
            events[1],
            Ev::Lost(_, Disconnect::PeerClosedWithoutCloseNotify)
        ),
        "{events:?}"
    );
    server.join().unwrap().unwrap();
}

#[test]
fn root_pem_file_is_trusted() {
    let ca = TestCa::new();
    let path = std::env::temp_dir().join(format!("weft-test-ca-{}.pem", std::process::id()));
    std::fs::write(&path, ca.pem()).unwrap();
    let tls = TlsConnector::with_root_pem_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (addr, server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::CloseNotify);
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(data_of(&client_log), b"echo:hello");
    server.join().unwrap().unwrap();
}

#[test]
fn default_roots_reject_a_private_ca() {
    let ca = TestCa::new();
    let (addr, _server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::CloseNotify);
    let client_log = exchange("localhost", addr.port(), TlsConnector::webpki_roots());
    let err = failure(&client_log);
    assert_eq!(err, TransportError::Tls(TlsError::UnknownIssuer));
    assert_eq!(err.to_string(), "certificate verify failed: unknown issuer");
}

#[test]
fn self_signed_is_refused_unless_verification_is_off() {
    let (addr, _server) =
        spawn_tls_server(Leaf::self_signed(&["localhost"]), ServerEnd::CloseNotify);
    let ca = TestCa::new();
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(
        failure(&client_log),
        TransportError::Tls(TlsError::SelfSigned)
    );

    let (addr, server) =
        spawn_tls_server(Leaf::self_signed(&["localhost"]), ServerEnd::CloseNotify);
    let insecure = TlsConnector::danger_accept_invalid_certs();
    assert!(!insecure.verifies());
    let client_log = exchange("localhost", addr.port(), insecure);
    assert_eq!(data_of(&client_log), b"echo:hello");
    server.join().unwrap().unwrap();
}

#[test]
fn wrong_host_name_is_name_mismatch() {
    let ca = TestCa::new();
    let (addr, _server) = spawn_tls_server(ca.leaf(&["other.test"], None), ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(
        failure(&client_log),
        TransportError::Tls(TlsError::NameMismatch)
    );
}

#[test]
fn expired_certificate_is_expired() {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"], Some(((2020, 1, 1), (2021, 1, 1))));
    let (addr, _server) = spawn_tls_server(leaf, ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(failure(&client_log), TransportError::Tls(TlsError::Expired));
}

#[test]
fn not_yet_valid_certificate_is_not_valid_yet() {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"], Some(((2090, 1, 1), (2095, 1, 1))));
    let (addr, _server) = spawn_tls_server(leaf, ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = exchange("localhost", addr.port(), tls);
    assert_eq!(
        failure(&client_log),
        TransportError::Tls(TlsError::NotValidYet)
    );
}

#[test]
fn invalid_server_name_fails_without_connecting() {
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    reactor.ctx().connect_tcp(
        "bad name!",
        443,
        ConnectOptions {
            tls: Some(TlsConnector::webpki_roots()),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(matches!(
        failure(&client_log),
        TransportError::Tls(TlsError::InvalidServerName(_))
    ));
}

#[test]
fn bulk_echo_over_tls_then_lose_connection_sends_close_notify() {
    use std::cell::Cell;
    use std::rc::Rc;
    use weft::reactor::{ConnId, Ctx};
    const TOTAL: usize = 2 * 1024 * 1024;
    const CHUNK: usize = 32 * 1024;
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(
        ca.leaf(&["localhost"], None),
        ServerEnd::EchoUntilClientCloses,
    );
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let sent = Rc::new(Cell::new(0usize));
    let pump = {
        let sent = sent.clone();
        move |ctx: &mut Ctx, conn: ConnId| {
            while sent.get() < TOTAL && !ctx.write_full(conn) {
                let n = CHUNK.min(TOTAL - sent.get());
                ctx.write(conn, &vec![(sent.get() / CHUNK) as u8; n]);
                sent.set(sent.get() + n);
            }
        }
    };
    let received = Rc::new(Cell::new(0usize));
    let r = received.clone();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "localhost",
        addr.port(),
        ConnectOptions {
            tls: Some(tls),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .quiet()
            .made(pump.clone())
            .drained(pump)
            .data(move |ctx, conn, data| {
                r.set(r.get() + data.len());
                if r.get() == TOTAL {
                    ctx.lose_connection(conn);
                }
            })
            .boxed(),
    );
    assert!(turn_until(
        &mut reactor,
        Duration::from_secs(30),
        |_| endings(&client_log) == 1
    ));
    assert_eq!(received.get(), TOTAL);
    let events = non_data(&client_log);
    assert_eq!(events.first(), Some(&Ev::Made(conn)));
    assert_eq!(
        events.last(),
        Some(&Ev::Lost(conn, Disconnect::ClosedLocally))
    );
    assert!(events.iter().any(|e| matches!(e, Ev::Drained(_))));
    let report = server.join().unwrap().unwrap();
    assert_eq!(report.echoed, TOTAL);
    assert!(report.clean_close, "the client did not send close_notify");
}

#[test]
fn paused_tls_connection_delivers_after_resume_then_reports_close() {
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        addr.port(),
        ConnectOptions {
            tls: Some(tls),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| {
                ctx.write(conn, b"hello");
                ctx.pause_reading(conn);
            })
            .boxed(),
    );
    // The cert names "localhost" only, but we connected by IP: that must fail...
    assert!(turn_until(&mut reactor, LIMIT, |_| !client_log
        .borrow()
        .is_empty()));
    let first = client_log.borrow()[0].clone();
    assert_eq!(
        first,
        Ev::Failed(conn, TransportError::Tls(TlsError::NameMismatch))
    );
    drop(server);

    // ...so do it again by name.
    let (addr, server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "localhost",
        addr.port(),
        ConnectOptions {
            tls: Some(tls),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .made(|ctx, conn| {
                ctx.write(conn, b"hello");
                ctx.pause_reading(conn);
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| !client_log
        .borrow()
        .is_empty()));
    // The answer and close_notify arrive while paused: nothing is delivered.
    turn_for(&mut reactor, Duration::from_millis(300));
    assert_eq!(*client_log.borrow(), vec![Ev::Made(conn)]);
    reactor.ctx().resume_reading(conn);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert_eq!(data_of(&client_log), b"echo:hello");
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Made(conn), Ev::Lost(conn, Disconnect::PeerClosed)]
    );
    server.join().unwrap().unwrap();
}

/// A plain TCP server on 127.0.0.1 that reads once (the ClientHello), then writes `reply`
/// and closes.
fn plain_server(reply: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16 * 1024];
        let _ = sock.read(&mut buf);
        let _ = sock.write_all(reply);
        std::thread::sleep(Duration::from_millis(50));
    });
    (port, handle)
}

#[test]
fn plain_http_on_the_tls_port_is_a_protocol_error() {
    let (port, server) = plain_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let client_log = exchange("localhost", port, TlsConnector::webpki_roots());
    let err = failure(&client_log);
    assert!(
        matches!(err, TransportError::Tls(TlsError::Protocol(_))),
        "{err:?}"
    );
    server.join().unwrap();
}

#[test]
fn server_closing_mid_handshake_fails_the_connect() {
    let (port, server) = plain_server(b"");
    let client_log = exchange("127.0.0.1", port, TlsConnector::webpki_roots());
    let err = failure(&client_log);
    assert!(
        matches!(
            err,
            TransportError::Io(std::io::ErrorKind::UnexpectedEof, _)
                | TransportError::ConnectionReset
        ),
        "{err:?}"
    );
    server.join().unwrap();
}

#[test]
fn conn_timing_of_a_tls_connect_is_in_order() {
    let ca = TestCa::new();
    let (addr, server) = spawn_tls_server(ca.leaf(&["localhost"], None), ServerEnd::CloseNotify);
    let tls = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen_in_made = seen.clone();
    let conn = reactor.ctx().connect_tcp(
        "localhost",
        addr.port(),
        ConnectOptions {
            tls: Some(tls),
            ..Default::default()
        },
        LoggingProtocol::new(&client_log)
            .made(move |ctx, conn| {
                seen_in_made.set(ctx.conn_timing(conn));
                ctx.write(conn, b"hello");
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let timing: ConnTiming = seen.get().expect("connection_made saw a timing");
    let resolved = timing.resolved.expect("resolved");
    let connected = timing.connected.expect("connected");
    let tls_done = timing.tls_done.expect("TLS done");
    assert!(timing.started <= resolved && resolved <= connected && connected <= tls_done);
    assert_eq!(reactor.ctx().conn_timing(conn), None, "stale once ended");
    server.join().unwrap().unwrap();
}
