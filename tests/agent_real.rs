//! The Agent against real servers we did not write: nginx (HTTP and HTTPS with a CA made at
//! test time) and httpbin, all started by the tests on 127.0.0.1.

mod support;

use std::time::Duration;

use support::scripted::*;
use support::servers::{Httpbin, Nginx, big_body};
use weft::client::{Agent, AgentConfig, BodyEnd, BytesProducer, Cause, Phase};
use weft::reactor::{Reactor, TransportError};
use weft::tls::{TlsConnector, TlsError};

fn tls_config(nginx: &Nginx) -> AgentConfig {
    AgentConfig {
        tls: TlsConnector::with_root_pem_file(nginx.ca_pem_path()).unwrap(),
        ..test_config()
    }
}

#[test]
fn nginx_http_get() {
    let nginx = Nginx::start();
    let out = run_one(test_config(), Req::get(nginx.http_url("/hello.txt")));
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body, b"hello world\n");
    assert!(out.is_done());
    assert_eq!(out.headers.get("content-length"), Some(&b"12"[..]));
}

#[test]
fn nginx_pool_reuses_one_connection_for_sequential_requests() {
    let nginx = Nginx::start();
    let reqs = (0..5)
        .map(|_| Req::get(nginx.http_url("/hello.txt")))
        .collect();
    let outs = run_sequential(test_config(), reqs);
    for o in &outs {
        assert!(o.is_done() && o.body == b"hello world\n", "{o:?}");
    }
    let log = nginx.wait_access_log(5);
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert_eq!(conns.len(), 1, "{log:?}");
    let mut seq: Vec<u64> = log.iter().map(|e| e.connection_requests).collect();
    seq.sort();
    assert_eq!(seq, [1, 2, 3, 4, 5]);
}

#[test]
fn nginx_active_cap_bounds_concurrent_connections() {
    let nginx = Nginx::start();
    let config = AgentConfig {
        max_active_per_host: 2,
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let slots: Vec<Slot> = (0..8)
        .map(|_| issue(reactor.ctx(), agent, Req::get(nginx.http_url("/hello.txt"))))
        .collect();
    turn_until(&mut reactor, Duration::from_secs(20), || {
        slots.iter().all(finished)
    });
    assert!(slots.iter().all(|s| s.borrow().is_done()));
    let log = nginx.wait_access_log(8);
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert!(
        conns.len() <= 2,
        "{} connections for a cap of 2",
        conns.len()
    );
}

#[test]
fn nginx_large_and_chunked_bodies_arrive_intact() {
    let nginx = Nginx::start();
    let outs = run_sequential(
        test_config(),
        vec![
            Req::get(nginx.http_url("/big.bin")),
            Req::get(nginx.http_url("/chunked/big.bin")),
            Req::get(nginx.http_url("/empty.txt")),
        ],
    );
    assert_eq!(outs[0].body.len(), big_body().len());
    assert!(outs[0].body == big_body(), "Content-Length body differs");
    assert!(outs[0].is_done());
    assert!(outs[1].headers.get("content-length").is_none());
    assert!(outs[1].body == big_body(), "chunked body differs");
    assert!(outs[1].is_done());
    assert!(outs[2].body.is_empty() && outs[2].is_done());
    assert_eq!(nginx.distinct_connections(), 1);
}

#[test]
fn nginx_no_content_and_connection_close() {
    let nginx = Nginx::start();
    let outs = run_sequential(
        test_config(),
        vec![
            Req::get(nginx.http_url("/no-content")),
            Req::get(nginx.http_url("/close")),
            Req::get(nginx.http_url("/hello.txt")),
        ],
    );
    assert_eq!(outs[0].status, Some(204));
    assert!(outs[0].is_done() && outs[0].body.is_empty());
    assert_eq!(outs[1].body, b"closing\n");
    assert!(outs[2].is_done());
    let log = nginx.wait_access_log(3);
    // 204 and /close share a connection; after `Connection: close` a new one is opened.
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert_eq!(conns.len(), 2, "{log:?}");
}

#[test]
fn nginx_post_body_is_echoed() {
    let nginx = Nginx::start();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = Req::new("POST", nginx.http_url("/echo-post"));
    req.body = Some(Box::new(BytesProducer::new(payload.clone())));
    let out = run_one(test_config(), req);
    assert_eq!(out.status, Some(200));
    assert!(out.is_done());
    assert!(out.body == payload, "echoed {} bytes", out.body.len());
}

#[test]
fn nginx_https_with_test_ca() {
    let nginx = Nginx::start();
    let outs = run_sequential(
        tls_config(&nginx),
        vec![
            Req::get(nginx.https_url("/hello.txt")),
            Req::get(nginx.https_url("/big.bin")),
            Req::get(nginx.https_ip_url("/hello.txt")),
        ],
    );
    assert_eq!(outs[0].body, b"hello world\n");
    assert!(outs[1].body == big_body());
    assert_eq!(outs[2].body, b"hello world\n");
    assert!(outs.iter().all(|o| o.is_done()));
    let log = nginx.wait_access_log(3);
    assert!(log.iter().all(|e| e.scheme == "https"));
    // localhost and 127.0.0.1 are different pool keys; the first two share a connection.
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert_eq!(conns.len(), 2, "{log:?}");
}

#[test]
fn nginx_https_untrusted_ca_is_a_typed_error() {
    let nginx = Nginx::start();
    let out = run_one(test_config(), Req::get(nginx.https_url("/hello.txt")));
    let err = out.error().expect("default roots do not trust the test CA");
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::Tls(TlsError::UnknownIssuer))
    );
    assert!(
        nginx.access_log_entries().is_empty(),
        "no request reached the server"
    );
}

#[test]
fn nginx_https_insecure_mode_accepts_the_certificate() {
    let nginx = Nginx::start();
    let config = AgentConfig {
        tls: TlsConnector::danger_accept_invalid_certs(),
        ..test_config()
    };
    let out = run_one(config, Req::get(nginx.https_url("/hello.txt")));
    assert_eq!(out.body, b"hello world\n");
}

/// Checklist row 34: agents with different TLS settings on one reactor never share a
/// connection to the same server, so verification is never inherited from a laxer agent's
/// pooled connection.
#[test]
fn row34_tls_settings_never_share_a_connection() {
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let lax = Agent::new(
        reactor.ctx(),
        AgentConfig {
            tls: TlsConnector::danger_accept_invalid_certs(),
            ..test_config()
        },
    );
    let strict = Agent::new(reactor.ctx(), test_config());
    let trusting = Agent::new(reactor.ctx(), tls_config(&nginx));
    let mut outcome = |agent| {
        let slot = issue(
            reactor.ctx(),
            agent,
            Req::get(nginx.https_url("/hello.txt")),
        );
        turn_until(&mut reactor, Duration::from_secs(20), || finished(&slot));
        slot
    };
    // The lax agent's connection goes back to its pool, idle and open...
    let first = outcome(lax);
    assert!(first.borrow().is_done(), "{:?}", first.borrow());
    // ...yet the verifying agent does its own handshake and refuses the certificate.
    let refused = outcome(strict);
    let refused = refused.borrow();
    let err = refused
        .error()
        .expect("default roots do not trust the test CA");
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::Tls(TlsError::UnknownIssuer))
    );
    // An agent trusting the test CA verifies on a connection of its own.
    let third = outcome(trusting);
    assert!(third.borrow().is_done(), "{:?}", third.borrow());
    let log = nginx.wait_access_log(2);
    assert_eq!(log.len(), 2, "{log:?}");
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert_eq!(
        conns.len(),
        2,
        "the two requests shared a connection: {log:?}"
    );
}

#[test]
fn nginx_head_request() {
    let nginx = Nginx::start();
    let outs = run_sequential(
        test_config(),
        vec![
            Req::new("HEAD", nginx.http_url("/big.bin")),
            Req::get(nginx.http_url("/hello.txt")),
        ],
    );
    assert!(outs[0].body.is_empty() && outs[0].is_done());
    assert_eq!(
        outs[0].headers.get_str("content-length"),
        Some(big_body().len().to_string().as_str())
    );
    assert_eq!(outs[1].body, b"hello world\n");
    assert_eq!(nginx.distinct_connections(), 1);
}

#[test]
fn httpbin_get_post_and_stream() {
    let httpbin = Httpbin::start();
    let mut get = Req::get(httpbin.url("/get?x=1"));
    get.headers.append("X-Weft-Test", b"yes");
    let mut post = Req::new("POST", httpbin.url("/post"));
    post.headers.append("Content-Type", b"application/json");
    post.body = Some(Box::new(BytesProducer::new(br#"{"a":1}"#.to_vec())));
    let outs = run_sequential(
        test_config(),
        vec![
            get,
            post,
            Req::get(httpbin.url("/stream/5")),
            Req::get(httpbin.url("/status/418")),
            Req::get(httpbin.url("/bytes/65536")),
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&outs[0].body).unwrap();
    assert_eq!(json["args"]["x"], "1");
    assert_eq!(json["headers"]["X-Weft-Test"], "yes");
    let json: serde_json::Value = serde_json::from_slice(&outs[1].body).unwrap();
    assert_eq!(json["json"]["a"], 1);
    let lines = outs[2]
        .body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 5);
    assert!(outs[2].is_done());
    assert_eq!(outs[3].status, Some(418));
    assert_eq!(outs[4].body.len(), 65536);
    assert!(outs.iter().all(|o| matches!(o.end(), Some(BodyEnd::Done))));
}
