//! SOCKS5 proxies: the Agent through microsocks (Debian's SOCKS5 server) to nginx, over http
//! and https, with and without credentials, and through a scripted hostile proxy on loopback
//! (every malformed or failing answer a typed error, nothing left behind).

mod support;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::baseline::{Baseline, assert_nothing_pooled, pool_stats};
use support::scripted::*;
use support::servers::{Microsocks, Nginx, free_port};
use weft::client::{Agent, AgentConfig, Cause, Phase, Proxies, TimeoutKind};
use weft::proto::socks::{SocksError, SocksReply, SocksStage};
use weft::reactor::{Reactor, TransportError};
use weft::tls::TlsConnector;

fn via(proxy: &str) -> AgentConfig {
    AgentConfig {
        proxies: Proxies::all(proxy).unwrap(),
        ..test_config()
    }
}

fn tls_via(proxy: &str, nginx: &Nginx) -> AgentConfig {
    AgentConfig {
        tls: TlsConnector::with_root_pem_file(nginx.ca_pem_path()).unwrap(),
        ..via(proxy)
    }
}

/// Runs `urls` one after another on one agent of `reactor`; checks the pool and the reactor
/// are back where they were; returns the outcomes and the connections the agent opened.
fn run_on(reactor: &mut Reactor, config: AgentConfig, urls: &[String]) -> (Vec<Outcome>, u64) {
    let agent = Agent::new(reactor.ctx(), config);
    let base = Baseline::take(reactor);
    let mut outs = Vec::new();
    for url in urls {
        let slot = issue(reactor.ctx(), agent, Req::get(url.clone()));
        turn_until(reactor, Duration::from_secs(15), || finished(&slot));
        for _ in 0..3 {
            reactor.turn(Some(Duration::from_millis(5))).unwrap();
        }
        outs.push(slot.borrow().clone());
    }
    let opened = pool_stats(reactor, agent).connections_opened;
    agent.close_idle(reactor.ctx());
    assert_nothing_pooled(reactor, agent);
    base.assert_back(reactor);
    (outs, opened)
}

fn assert_hello(out: &Outcome) {
    assert!(out.is_done(), "{:?}", out.error());
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body, b"hello world\n");
}

#[test]
fn http_and_https_through_microsocks_both_schemes() {
    let nginx = Nginx::start();
    let proxy = Microsocks::start(None);
    for scheme in ["socks5", "socks5h"] {
        let url = proxy.url(scheme);
        let mut reactor = Reactor::new().unwrap();
        let urls = [
            nginx.http_url("/hello.txt"),
            format!("http://localhost:{}/hello.txt", nginx.http_port()),
            nginx.https_url("/hello.txt"),
            nginx.https_url("/hello.txt"),
            nginx.https_ip_url("/hello.txt"),
        ];
        let (outs, opened) = run_on(&mut reactor, tls_via(&url, &nginx), &urls);
        for out in &outs {
            assert_hello(out);
        }
        // One tunnel per origin, reused: the https pair shares one.
        assert_eq!(opened, 4, "{scheme}");
    }
    // nginx saw all ten requests.
    assert_eq!(nginx.wait_access_log(10).len(), 10);
}

#[test]
fn credentials_are_sent_and_a_wrong_password_is_a_typed_error() {
    let nginx = Nginx::start();
    let proxy = Microsocks::start(Some(("weft", "p@ss:word")));
    let port = proxy.addr().port();
    let good = format!("socks5h://weft:p%40ss%3Aword@127.0.0.1:{port}");
    let out = run_one(
        tls_via(&good, &nginx),
        Req::get(nginx.https_url("/hello.txt")),
    );
    assert_hello(&out);
    let out = run_one(via(&good), Req::get(nginx.http_url("/hello.txt")));
    assert_hello(&out);

    let wrong = format!("socks5://weft:nope@127.0.0.1:{port}");
    let out = run_one(via(&wrong), Req::get(nginx.http_url("/hello.txt")));
    let err = out.error().expect("wrong password");
    assert_eq!(err.phase(), Phase::RequestNotSent);
    match err.cause() {
        Cause::Socks { proxy, error } => {
            assert_eq!(
                proxy,
                &format!("socks5://127.0.0.1:{port}"),
                "no credentials"
            );
            assert!(matches!(error, SocksError::AuthFailed(_)), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("nope"), "{err}");
    assert_eq!(err.kind(), "socks");

    // No credentials to a proxy that wants them: it accepts no method offered.
    let out = run_one(
        via(&format!("socks5h://127.0.0.1:{port}")),
        Req::get(nginx.http_url("/hello.txt")),
    );
    let err = out.error().expect("no credentials");
    assert!(
        matches!(
            err.cause(),
            Cause::Socks {
                error: SocksError::NoAcceptableMethod,
                ..
            }
        ),
        "{err}"
    );
}

/// `socks5h://` sends the name (the client's resolver is never asked); `socks5://` resolves
/// it with the reactor's resolver and sends the address.
#[test]
fn who_resolves_the_name() {
    let nginx = Nginx::start();
    let proxy = Microsocks::start(None);
    let by_name = format!("http://localhost:{}/hello.txt", nginx.http_port());

    let mut reactor = Reactor::new().unwrap();
    reactor
        .ctx()
        .set_resolver(|_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::other("no resolving here"))
        });
    let (outs, _) = run_on(
        &mut reactor,
        via(&proxy.url("socks5h")),
        std::slice::from_ref(&by_name),
    );
    assert_hello(&outs[0]);
    let (outs, _) = run_on(&mut reactor, via(&proxy.url("socks5")), &[by_name]);
    let err = outs[0].error().expect("the client resolves for socks5://");
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Dns(m)) if m.contains("localhost")),
        "{err}"
    );

    // A name only the client knows: fine for socks5://, which sends the address.
    let mut reactor = Reactor::new().unwrap();
    reactor.ctx().set_resolver(|host: &str, port: u16| {
        assert_eq!(host, "origin.test");
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    });
    let url = format!("http://origin.test:{}/hello.txt", nginx.http_port());
    let (outs, _) = run_on(&mut reactor, via(&proxy.url("socks5")), &[url]);
    assert_hello(&outs[0]);
}

/// `ALL_PROXY` sends both schemes through the SOCKS proxy; `NO_PROXY` hosts go direct. The
/// proxy here is a closed port, so a request that tried it is refused.
#[test]
fn all_proxy_and_no_proxy() {
    let nginx = Nginx::start();
    let closed = free_port();
    let env = |name: &str| match name {
        "ALL_PROXY" => Some(format!("socks5h://127.0.0.1:{closed}")),
        "NO_PROXY" => Some("127.0.0.1".to_owned()),
        _ => None,
    };
    let config = AgentConfig {
        proxies: Proxies::from_lookup(env),
        tls: TlsConnector::with_root_pem_file(nginx.ca_pem_path()).unwrap(),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let urls = [
        nginx.http_url("/hello.txt"),
        nginx.https_ip_url("/hello.txt"),
        nginx.https_url("/hello.txt"),
        format!("http://localhost:{}/hello.txt", nginx.http_port()),
    ];
    let (outs, _) = run_on(&mut reactor, config, &urls);
    assert_hello(&outs[0]);
    assert_hello(&outs[1]);
    for out in &outs[2..] {
        let err = out.error().expect("through the closed proxy");
        assert!(
            matches!(
                err.cause(),
                Cause::Transport(TransportError::ConnectionRefused)
            ),
            "{err}"
        );
    }
    // The real proxy from the environment works too.
    let proxy = Microsocks::start(None);
    let env = |name: &str| (name == "all_proxy").then(|| proxy.url("socks5h"));
    let config = AgentConfig {
        proxies: Proxies::from_lookup(env),
        ..test_config()
    };
    let out = run_one(config, Req::get(nginx.http_url("/hello.txt")));
    assert_hello(&out);
}

/// The method selection and the CONNECT request of a `socks5h://` handshake to
/// `origin.test:80`, as the scripted proxy reads them.
const GREETING: usize = 3;
const CONNECT_ORIGIN: usize = 3 + 1 + 1 + 11 + 2;

fn scripted_socks(steps: Vec<Step>) -> (ScriptedServer, AgentConfig) {
    let srv = ScriptedServer::start(vec![steps]);
    let config = via(&format!("socks5h://u:secret@{}", srv.addr));
    (srv, config)
}

/// Runs one request to `url` through a scripted proxy and returns its SOCKS error.
fn socks_error(steps: Vec<Step>, url: &str) -> (SocksError, String) {
    let (srv, config) = scripted_socks(steps);
    let out = run_one(config, Req::get(url.to_owned()));
    let err = out.error().expect("the handshake fails").clone();
    assert_eq!(err.phase(), Phase::RequestNotSent);
    let text = err.to_string();
    assert!(!text.contains("secret"), "{text}");
    match err.cause() {
        Cause::Socks { proxy, error } => {
            assert_eq!(proxy, &format!("socks5h://{}", srv.addr));
            (*error, text)
        }
        other => panic!("{other:?}"),
    }
}

/// The proxy's side of a handshake with credentials `u`/`secret`, up to its reply.
fn auth_ok() -> Vec<Step> {
    vec![
        Step::ReadBytes(GREETING),
        write(&[5, 2]),
        Step::ReadBytes(3 + 1 + 6),
        write(&[1, 0]),
        Step::ReadBytes(CONNECT_ORIGIN),
    ]
}

#[test]
fn scripted_handshake_sends_exact_bytes_then_the_request() {
    let mut steps = auth_ok();
    steps.push(write(&[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]));
    steps.push(Step::ExpectRequest);
    steps.push(write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    steps.push(Step::WaitClose);
    let (srv, config) = scripted_socks(steps);
    let out = run_one(config, Req::get("http://origin.test/x".into()));
    assert!(out.is_done(), "{:?}", out.error());
    assert_eq!(out.body, b"ok");
    let seen = srv.requests();
    assert_eq!(seen[0].1, [5, 1, 2], "only username/password offered");
    assert_eq!(seen[1].1, b"\x01\x01u\x06secret");
    let mut connect = vec![5, 1, 0, 3, 11];
    connect.extend_from_slice(b"origin.test");
    connect.extend_from_slice(&[0, 80]);
    assert_eq!(seen[2].1, connect);
    let head = String::from_utf8_lossy(&seen[3].1);
    assert!(
        head.starts_with("GET /x HTTP/1.1\r\nHost: origin.test\r\n"),
        "{head}"
    );
}

#[test]
fn hostile_proxies_give_typed_errors() {
    let url = "http://origin.test/";
    let (e, _) = socks_error(
        vec![Step::ReadBytes(GREETING), write(&[4, 0]), Step::WaitClose],
        url,
    );
    assert_eq!(e, SocksError::BadVersion(4));

    let (e, text) = socks_error(
        vec![
            Step::ReadBytes(GREETING),
            write(&[5, 0xFF]),
            Step::WaitClose,
        ],
        url,
    );
    assert_eq!(e, SocksError::NoAcceptableMethod);
    assert!(
        text.contains("none of the authentication methods"),
        "{text}"
    );

    let mut refused = auth_ok();
    refused.extend([write(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]), Step::WaitClose]);
    let (e, text) = socks_error(refused, url);
    assert_eq!(e, SocksError::Reply(SocksReply::ConnectionRefused));
    assert!(text.contains("connection refused (reply 5)"), "{text}");

    let mut truncated = auth_ok();
    truncated.extend([write(&[5, 0, 0, 1, 127, 0]), Step::Close]);
    let (e, _) = socks_error(truncated, url);
    assert_eq!(
        e,
        SocksError::Closed {
            stage: SocksStage::Connect,
            received: 6
        }
    );

    let mut oversized = auth_ok();
    let mut reply = vec![5, 0, 0, 3, 255];
    reply.extend_from_slice(&[b'a'; 255]);
    reply.extend_from_slice(&[0, 80]);
    oversized.extend([Step::Write(reply), Step::WaitClose]);
    let (e, _) = socks_error(oversized, url);
    assert_eq!(e, SocksError::BadBoundName(255));

    let mut bad_type = auth_ok();
    bad_type.extend([write(&[5, 0, 0, 7, 0, 0]), Step::WaitClose]);
    assert_eq!(socks_error(bad_type, url).0, SocksError::BadAddressType(7));

    let (e, _) = socks_error(
        vec![Step::ReadBytes(GREETING), write(&[5]), Step::Close],
        "https://origin.test/",
    );
    assert_eq!(
        e,
        SocksError::Closed {
            stage: SocksStage::MethodSelection,
            received: 1
        }
    );

    let (e, _) = socks_error(
        vec![
            Step::ReadBytes(GREETING),
            write(&[5, 2]),
            Step::ReadBytes(10),
            Step::Reset,
        ],
        url,
    );
    assert_eq!(
        e,
        SocksError::Closed {
            stage: SocksStage::Authentication,
            received: 0
        }
    );
}

#[test]
fn too_long_a_name_is_refused_before_connecting() {
    let (srv, config) = scripted_socks(vec![]);
    let label = "a".repeat(60);
    let host = [label.as_str(); 5].join(".");
    let out = run_one(config, Req::get(format!("http://{host}/")));
    let err = out.error().expect("name too long");
    assert!(
        matches!(
            err.cause(),
            Cause::Socks {
                error: SocksError::NameTooLong(304),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(srv.connections(), 0);
}

#[test]
fn a_stalled_proxy_hits_the_connect_timeout() {
    for steps in [
        vec![
            Step::ReadBytes(GREETING),
            Step::Sleep(Duration::from_secs(3)),
        ],
        {
            let mut s = auth_ok();
            s.push(Step::Sleep(Duration::from_secs(3)));
            s
        },
    ] {
        let (_srv, config) = scripted_socks(steps);
        let config = AgentConfig {
            connect_timeout: Some(Duration::from_millis(300)),
            ..config
        };
        let start = Instant::now();
        let out = run_one(config, Req::get("https://origin.test/".into()));
        let took = start.elapsed();
        let err = out.error().expect("stalled");
        let t = err.timeout().expect("a timeout");
        assert_eq!(t.kind, TimeoutKind::Connect, "{err}");
        assert!(t.elapsed >= Duration::from_millis(300), "{err}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}

/// The connect timeout covers resolving the origin for `socks5://`; the late answer finds
/// nothing to act on.
#[test]
fn a_slow_local_resolution_hits_the_connect_timeout() {
    let proxy = Microsocks::start(None);
    let mut reactor = Reactor::new().unwrap();
    reactor.ctx().set_resolver(|_: &str, port: u16| {
        std::thread::sleep(Duration::from_millis(600));
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    });
    let config = AgentConfig {
        connect_timeout: Some(Duration::from_millis(200)),
        ..via(&proxy.url("socks5"))
    };
    let (outs, _) = run_on(&mut reactor, config, &["http://slow.test/".to_owned()]);
    let err = outs[0].error().expect("timed out");
    let t = err.timeout().expect("a timeout");
    assert_eq!(t.kind, TimeoutKind::Connect, "{err}");
    assert!(t.elapsed < Duration::from_millis(550), "{err}");
    turn_for(&mut reactor, Duration::from_millis(700));
    let st = reactor.stats();
    assert_eq!((st.connections, st.timers, st.queued), (0, 0, 0), "{st:?}");
}
