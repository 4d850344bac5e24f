//! HTTP over Unix domain sockets: the client against nginx listening on a socket (plain and
//! TLS), pooled by path, with `Host` from the URL; the typed errors of paths that cannot be
//! connected to; scripted servers on a socket that send garbage or close mid-body; the
//! reactor's own `connect_unix`; and `weft --unix-socket`. Every case ends with the pool and
//! the reactor back to their baseline.

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::baseline::{Baseline, LIMIT, assert_nothing_pooled, pool_stats};
use support::reactor::{Ev, LoggingProtocol, data_of, endings, log, non_data, turn_until};
use support::scripted::test_config;
use support::servers::{Nginx, TestDir};
use weft::client::{AgentConfig, Cause, Phase, Proxies};
use weft::reactor::{ConnectOptions, Disconnect, Reactor, TransportError, UnixSocketError};
use weft::tls::{TlsConnector, TlsError};
use weft::{Error, FullResponse, HttpClient, RequestBuilder};

/// A location that answers with the `Host` field nginx received.
const ECHO_HOST: &str = r#"
        location = /echo-host {
            default_type text/plain;
            return 200 "$http_host\n";
        }
"#;

/// A host name that resolves nowhere: a request that reaches nginx with it went through the
/// socket, not through DNS.
const NOWHERE: &str = "weft-unix.invalid";

/// A client over `config` (redirects and the other defaults on) and its reactor.
fn client(config: AgentConfig) -> (Reactor, HttpClient) {
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::builder()
        .agent_config(config)
        .build(reactor.ctx());
    (reactor, client)
}

/// Fetches one request, turning the reactor until it ends (bounded).
fn fetch(reactor: &mut Reactor, request: RequestBuilder) -> Result<FullResponse, Error> {
    let got: Rc<RefCell<Option<Result<FullResponse, Error>>>> = Rc::default();
    let g = got.clone();
    request.fetch(reactor.ctx(), move |_, r| *g.borrow_mut() = Some(r));
    assert!(turn_until(reactor, LIMIT, |_| got.borrow().is_some()));
    got.borrow_mut().take().unwrap()
}

/// Closes the client's idle connections and checks that nothing is left: the pool empty,
/// the reactor's counts and the descriptors back to `baseline`.
fn assert_clean(reactor: &mut Reactor, client: &HttpClient, baseline: Baseline) {
    let pool = client.pool().unwrap();
    pool.close_idle(reactor.ctx());
    assert_nothing_pooled(reactor, pool);
    baseline.assert_back(reactor);
}

/// The Unix socket error of a failed request.
fn unix_error(e: &Error) -> (&Path, &UnixSocketError) {
    match e.cause() {
        Cause::Transport(TransportError::UnixSocket { path, error }) => (path, error),
        other => panic!("not a Unix socket error: {other:?} ({e})"),
    }
}

#[test]
fn get_and_post_go_through_the_socket_with_host_from_the_url() {
    let nginx = Nginx::start_with(ECHO_HOST);
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    let sock = nginx.unix_socket_path();

    let url = format!("http://{NOWHERE}:8080/echo-host");
    let r = fetch(&mut reactor, client.get(&url).unix_socket(&sock)).unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(r.text(), format!("{NOWHERE}:8080\n"), "Host from the URL");
    assert_eq!(r.url.as_str(), url);

    let url = format!("http://{NOWHERE}/echo-post");
    let post = client
        .post(&url)
        .body("ping over the socket")
        .unix_socket(&sock);
    let r = fetch(&mut reactor, post).unwrap();
    assert_eq!((r.code, r.text().as_str()), (200, "ping over the socket"));

    let log = nginx.wait_access_log(2);
    let requests: Vec<&str> = log.iter().map(|e| e.request.as_str()).collect();
    assert_eq!(
        requests,
        ["GET /echo-host HTTP/1.1", "POST /echo-post HTTP/1.1"]
    );
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn connections_over_one_socket_are_reused() {
    let nginx = Nginx::start();
    let config = AgentConfig {
        unix_socket: Some(nginx.unix_socket_path()),
        ..test_config()
    };
    let (mut reactor, client) = client(config);
    let baseline = Baseline::take(&mut reactor);
    for _ in 0..3 {
        let r = fetch(&mut reactor, client.get("http://localhost/hello.txt")).unwrap();
        assert_eq!(r.text(), "hello world\n");
    }
    let stats = pool_stats(&mut reactor, client.pool().unwrap());
    assert_eq!(
        (stats.connections_opened, stats.reused),
        (1, 2),
        "{stats:?}"
    );
    assert_eq!(stats.idle, 1);
    let log = nginx.wait_access_log(3);
    assert_eq!(
        log.iter()
            .map(|e| e.connection_requests)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(nginx.distinct_connections(), 1);
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn different_socket_paths_never_share_a_connection() {
    let nginx = Nginx::start();
    // A second path to the same server: only the path tells the two apart.
    let dir = TestDir::new("unix-alias");
    let alias = dir.join("alias.sock");
    std::os::unix::fs::symlink(nginx.unix_socket_path(), &alias).unwrap();
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    let direct = nginx.unix_socket_path();
    for path in [&direct, &alias, &direct, &alias] {
        let get = client.get("http://localhost/hello.txt").unix_socket(path);
        assert_eq!(fetch(&mut reactor, get).unwrap().code, 200);
    }
    let stats = pool_stats(&mut reactor, client.pool().unwrap());
    assert_eq!(
        (stats.connections_opened, stats.reused),
        (2, 2),
        "{stats:?}"
    );
    nginx.wait_access_log(4);
    assert_eq!(nginx.distinct_connections(), 2);
    // The same URL over TCP is a third pool entry again.
    let tcp = fetch(&mut reactor, client.get(nginx.http_url("/hello.txt"))).unwrap();
    assert_eq!(tcp.code, 200);
    let stats = pool_stats(&mut reactor, client.pool().unwrap());
    assert_eq!(stats.connections_opened, 3, "{stats:?}");
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn a_request_socket_wins_over_the_agent_one_and_hops_keep_it() {
    let nginx = Nginx::start();
    let dir = TestDir::new("unix-missing");
    let missing = dir.join("nothing-here.sock");
    let config = AgentConfig {
        unix_socket: Some(missing.clone()),
        // Proxies do not apply to a request over a socket: this one would refuse it.
        proxies: Proxies::all("http://127.0.0.1:9").unwrap(),
        ..test_config()
    };
    let (mut reactor, client) = client(config);
    let baseline = Baseline::take(&mut reactor);
    let e = fetch(&mut reactor, client.get("http://localhost/hello.txt")).unwrap_err();
    assert_eq!(unix_error(&e), (&*missing, &UnixSocketError::NotFound));
    // Redirected to another host name: the hop still goes through the request's socket.
    let url = format!("http://{NOWHERE}/redirect-relative");
    let r = client.get(&url).unix_socket(nginx.unix_socket_path());
    let r = fetch(&mut reactor, r).unwrap();
    assert_eq!((r.code, r.text().as_str()), (200, "hello world\n"));
    assert_eq!(r.history.len(), 1);
    assert_eq!(r.url.as_str(), format!("http://{NOWHERE}/hello.txt"));
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn https_runs_over_the_socket_and_checks_the_url_host() {
    let nginx = Nginx::start();
    let config = AgentConfig {
        tls: TlsConnector::with_root_pem_file(nginx.ca_pem_path()).unwrap(),
        ..test_config()
    };
    let (mut reactor, client) = client(config);
    let baseline = Baseline::take(&mut reactor);
    let tls_sock = nginx.unix_tls_socket_path();
    let get = client
        .get("https://localhost/hello.txt")
        .unix_socket(&tls_sock);
    let r = fetch(&mut reactor, get).unwrap();
    assert_eq!(r.text(), "hello world\n");
    assert!(r.timing.tls.is_some(), "{:?}", r.timing);
    // The certificate is for localhost: another name in the URL fails the check.
    let get = client
        .get(format!("https://{NOWHERE}/hello.txt"))
        .unix_socket(&tls_sock);
    let e = fetch(&mut reactor, get).unwrap_err();
    assert!(
        matches!(e.cause(), Cause::Transport(TransportError::Tls(_))),
        "{e}"
    );
    // TLS to the plain socket: nginx answers in plaintext, a TLS error.
    let get = client
        .get("https://localhost/hello.txt")
        .unix_socket(nginx.unix_socket_path());
    let e = fetch(&mut reactor, get).unwrap_err();
    assert!(
        matches!(e.cause(), Cause::Transport(TransportError::Tls(_))),
        "{e}"
    );
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn paths_that_cannot_be_connected_to_fail_typed_naming_the_path() {
    let dir = TestDir::new("unix-hostile");
    let file = dir.write("regular-file", "not a socket");
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap()); // the file stays; nobody listens
    let long = dir.join("x".repeat(200));
    type Expected = fn(&UnixSocketError) -> bool;
    let cases: [(&Path, Expected); 5] = [
        (&dir.join("missing.sock"), |e| {
            *e == UnixSocketError::NotFound
        }),
        (&file, |e| *e == UnixSocketError::NotASocket),
        (dir.path(), |e| *e == UnixSocketError::NotASocket),
        (&stale, |e| *e == UnixSocketError::Refused),
        (&long, |e| {
            matches!(e, UnixSocketError::Io(io::ErrorKind::InvalidInput, _))
        }),
    ];
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    for (path, expected) in cases {
        let started = Instant::now();
        let get = client.get("http://localhost/x").unix_socket(path);
        let e = fetch(&mut reactor, get).unwrap_err();
        let (at, error) = unix_error(&e);
        assert_eq!(at, path);
        assert!(expected(error), "{path:?}: {error:?}");
        assert_eq!(e.phase(), Phase::RequestNotSent);
        assert_eq!(e.kind(), "unix_socket");
        let msg = e.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        assert!(msg.contains("http://localhost/x"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(2), "failed at once");
    }
    let stats = pool_stats(&mut reactor, client.pool().unwrap());
    assert_eq!(stats.connections_opened, 5);
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn a_server_whose_listen_queue_is_full_fails_at_once() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = TestDir::new("unix-queue");
    let path = dir.join("busy.sock");
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    // A server that never accepts, with room for one waiting connection, which we take.
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    listener.listen(0).unwrap();
    let queued = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let started = Instant::now();
    let get = client.get("http://localhost/").unix_socket(&path);
    let e = fetch(&mut reactor, get).unwrap_err();
    assert_eq!(unix_error(&e), (&*path, &UnixSocketError::QueueFull));
    assert!(started.elapsed() < Duration::from_secs(2), "failed at once");
    drop((queued, listener));
    assert_clean(&mut reactor, &client, baseline);
}

/// A server on a Unix socket that reads each request head and answers `reply` (then closes),
/// for at most `conns` connections; it stops after [`LIMIT`] if fewer come. Start it after
/// the baseline is taken: its listener is gone once the thread is joined.
fn scripted(dir: &TestDir, conns: usize, reply: &'static [u8]) -> (PathBuf, JoinHandle<()>) {
    let path = dir.join("scripted.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let serve = thread::spawn(move || {
        let deadline = Instant::now() + LIMIT;
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            let mut sock = match listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            served += 1;
            sock.set_nonblocking(false).unwrap();
            sock.set_read_timeout(Some(LIMIT)).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = sock.write_all(reply);
        }
    });
    (path, serve)
}

#[test]
fn a_scripted_server_on_a_socket_sending_garbage_fails_typed() {
    let dir = TestDir::new("unix-garbage");
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    let (path, serve) = scripted(&dir, 1, b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n");
    let e = fetch(
        &mut reactor,
        client.get("http://localhost/").unix_socket(&path),
    )
    .unwrap_err();
    assert!(matches!(e.cause(), Cause::Protocol(_)), "{e}");
    assert_eq!(e.phase(), Phase::ResponseNeverReceived);
    serve.join().unwrap();
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn a_scripted_server_on_a_socket_closing_mid_body_fails_typed() {
    let dir = TestDir::new("unix-truncated");
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it";
    let (mut reactor, client) = client(test_config());
    let baseline = Baseline::take(&mut reactor);
    let (path, serve) = scripted(&dir, 1, reply);
    let e = fetch(
        &mut reactor,
        client.get("http://localhost/").unix_socket(&path),
    )
    .unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Cause::Protocol(weft::proto::ProtocolError::Incomplete { .. })
        ),
        "{e}"
    );
    assert_eq!(e.phase(), Phase::ResponseFailed);
    serve.join().unwrap();
    assert_clean(&mut reactor, &client, baseline);
}

#[test]
fn the_reactor_connects_to_a_socket_like_to_tcp() {
    let dir = TestDir::new("unix-reactor");
    let path = dir.join("echo.sock");
    let mut reactor = Reactor::new().unwrap();
    let baseline = Baseline::take(&mut reactor);
    let listener = UnixListener::bind(&path).unwrap();
    let echo = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 5];
        sock.read_exact(&mut buf).unwrap();
        sock.write_all(&buf).unwrap();
        // Dropped: the client sees the close.
    });
    let events = log();
    let options = ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let protocol = LoggingProtocol::new(&events).made(|ctx, conn| ctx.write(conn, b"hello"));
    let conn = reactor.ctx().connect_unix(&path, options, protocol.boxed());
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&events) == 1));
    echo.join().unwrap();
    assert_eq!(data_of(&events), b"hello");
    assert_eq!(
        non_data(&events),
        [Ev::Made(conn), Ev::Lost(conn, Disconnect::PeerClosed)]
    );
    // The handler, the registration and the connect timer went with the connection.
    baseline.assert_back(&mut reactor);

    // TLS needs a name to check: a socket has none unless the options give one.
    let events = log();
    let options = ConnectOptions {
        tls: Some(TlsConnector::webpki_roots()),
        ..Default::default()
    };
    let protocol = LoggingProtocol::new(&events);
    let conn = reactor.ctx().connect_unix(&path, options, protocol.boxed());
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&events) == 1));
    assert!(
        matches!(
            &non_data(&events)[..],
            [Ev::Failed(c, TransportError::Tls(TlsError::InvalidServerName(_)))] if *c == conn
        ),
        "{:?}",
        events.borrow()
    );
    // Without an owner nothing is opened.
    let stale = reactor
        .ctx()
        .connect_unix_owned(&path, ConnectOptions::default());
    assert!(reactor.ctx().conn_timing(stale).is_none());
    baseline.assert_back(&mut reactor);
}

#[cfg(feature = "cli")]
#[test]
fn weft_unix_socket_sends_through_the_socket_as_curl_does() {
    let nginx = Nginx::start_with(ECHO_HOST);
    let sock = nginx.unix_socket_path();
    let weft = |args: &[&str]| {
        support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .output()
            .expect("weft runs")
    };
    // The URL gives Host; a proxy given too is not used for the socket.
    let url = format!("http://{NOWHERE}:8080/echo-host");
    let sock_arg = sock.to_str().unwrap();
    let out = weft(&["--unix-socket", sock_arg, "-x", "http://127.0.0.1:9", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(out.stdout, format!("{NOWHERE}:8080\n").as_bytes());
    // A body, and a redirect followed through the same socket.
    let post = format!("http://{NOWHERE}/echo-post");
    let out = weft(&["--unix-socket", sock_arg, "-d", "hi there", &post]);
    assert_eq!(out.stdout, b"hi there");
    let moved = format!("http://{NOWHERE}/redirect-relative");
    let out = weft(&["--unix-socket", sock_arg, "-L", &moved]);
    assert_eq!(out.stdout, b"hello world\n");
    assert_eq!(nginx.wait_access_log(4).len(), 4);

    // Nothing at the path: curl's exit 7, and the message names the path.
    let dir = TestDir::new("unix-cli");
    let missing = dir.join("missing.sock");
    let out = weft(&[
        "--unix-socket",
        missing.to_str().unwrap(),
        "http://localhost/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("no such file"), "{stderr}");
}

#[test]
fn the_blocking_and_shared_clients_reach_the_socket_too() {
    let nginx = Nginx::start_with(ECHO_HOST);
    let sock = nginx.unix_socket_path();
    let url = format!("http://{NOWHERE}/echo-host");

    let mut blocking = HttpClient::builder()
        .agent_config(test_config())
        .unix_socket(&sock)
        .build_blocking()
        .unwrap();
    let r = blocking.get(&url).unwrap();
    assert_eq!(r.text(), format!("{NOWHERE}\n"));

    let (tx, rx) = std::sync::mpsc::channel();
    let reactor_thread = thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let client = HttpClient::builder()
            .agent_config(test_config())
            .build_shared(reactor.ctx());
        tx.send((client, reactor.remote())).unwrap();
        reactor.run().unwrap();
    });
    let (shared, remote) = rx.recv().unwrap();
    let r = shared.get(&url).unix_socket(&sock).fetch_blocking();
    remote.call(|ctx| ctx.stop()).unwrap();
    reactor_thread.join().unwrap();
    assert_eq!(r.unwrap().text(), format!("{NOWHERE}\n"));
}

#[cfg(feature = "cli")]
#[test]
fn a_socket_we_may_not_write_is_permission_denied() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TestDir::new("unix-perm");
    let path = dir.join("private.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root may connect anyway: then run the command as nobody (setpriv is in util-linux).
    let as_root = std::fs::metadata(&path).unwrap().uid() == 0;
    let exe = env!("CARGO_BIN_EXE_weft");
    let mut cmd = if as_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", exe]);
        c
    } else {
        support::servers::weft_command(exe)
    };
    let out = cmd
        .args(["--unix-socket", path.to_str().unwrap(), "http://localhost/"])
        .output()
        .expect("weft runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let expected = format!("Unix socket {}: permission denied", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    drop(listener);
}
