//! AuthAgent against httpbin (Basic, Digest MD5 and SHA-256) and scripted servers.
#![cfg(all(feature = "digest", feature = "cookies"))]

mod support;

use std::io::Cursor;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use support::scripted::*;
use support::servers::Httpbin;
use weft::client::{
    Agent, AgentConfig, AuthAgent, AuthMode, BytesProducer, CookieAgent, CookieJar, Credentials,
    HttpAgent, Phase, ReadProducer, Request, TimeoutKind, Timeouts,
};
use weft::reactor::Reactor;

fn agent(reactor: &mut Reactor, creds: Option<(&str, &str)>, mode: AuthMode) -> AuthAgent<Agent> {
    let inner = Agent::new(reactor.ctx(), test_config());
    AuthAgent::new(inner, creds.map(|(u, p)| Credentials::new(u, p)), mode)
}

fn get(reactor: &mut Reactor, a: &impl HttpAgent, url: &str) -> Wrapped {
    run_via(reactor, a, Request::get(url))
}

#[test]
fn httpbin_basic_preemptive() {
    let httpbin = Httpbin::start();
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Basic);
    let r = get(&mut reactor, &a, &httpbin.url("/basic-auth/u/p"));
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    assert!(r.history.is_empty());
    // Hidden: 404 without credentials, so only preemptive auth works.
    let r = get(&mut reactor, &a, &httpbin.url("/hidden-basic-auth/u/p"));
    assert_eq!(r.out.status, Some(200));
    let auto = agent(&mut reactor, Some(("u", "p")), AuthMode::Auto);
    let r = get(&mut reactor, &auto, &httpbin.url("/hidden-basic-auth/u/p"));
    assert_eq!(r.out.status, Some(404));
    assert!(r.history.is_empty());
}

#[test]
fn httpbin_basic_auto_retries_once() {
    let httpbin = Httpbin::start();
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Auto);
    let r = get(&mut reactor, &a, &httpbin.url("/basic-auth/u/p"));
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    assert!(r.out.is_done());
    let body: serde_json::Value = serde_json::from_slice(&r.out.body).unwrap();
    assert_eq!(body["authenticated"], true);
    assert_eq!(r.history.len(), 1);
    assert_eq!(r.history[0].code, 401);
    // Digest mode does not answer a Basic challenge.
    let d = agent(&mut reactor, Some(("u", "p")), AuthMode::Digest);
    let r = get(&mut reactor, &d, &httpbin.url("/basic-auth/u/p"));
    assert_eq!(r.out.status, Some(401));
    assert!(r.history.is_empty());
}

#[test]
fn httpbin_digest_md5_and_sha256() {
    let httpbin = Httpbin::start();
    let mut reactor = Reactor::new().unwrap();
    for mode in [AuthMode::Auto, AuthMode::Digest] {
        let a = agent(&mut reactor, Some(("u", "p")), mode);
        for alg in ["MD5", "SHA-256"] {
            let r = get(
                &mut reactor,
                &a,
                &httpbin.url(&format!("/digest-auth/auth/u/p/{alg}")),
            );
            assert_eq!(r.out.status, Some(200), "{mode:?} {alg}: {:?}", r.out);
            assert_eq!(r.history.len(), 1);
            assert_eq!(r.history[0].code, 401);
        }
    }
}

#[test]
fn httpbin_wrong_password_gives_the_final_401_with_history() {
    let httpbin = Httpbin::start();
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "wrong")), AuthMode::Auto);
    for path in ["/digest-auth/auth/u/p/MD5", "/basic-auth/u/p"] {
        let r = get(&mut reactor, &a, &httpbin.url(path));
        assert_eq!(r.out.status, Some(401), "{path}");
        assert!(r.out.is_done());
        assert_eq!(r.history.len(), 1, "{path}");
    }
}

#[test]
fn challenge_cookies_go_with_the_retry_through_a_cookie_agent() {
    // As httpbin's `require-cookie=1` (which fails there on any query string): the 401 sets a
    // cookie that the answer must carry.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(
            b"HTTP/1.1 401 Unauthorized\r\nSet-Cookie: fake=fake_value\r\n\
              WWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n",
        ),
        Step::ExpectRequest,
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let inner = CookieAgent::new(Agent::new(reactor.ctx(), test_config()), CookieJar::new());
    let a = AuthAgent::new(inner, Some(Credentials::new("u", "p")), AuthMode::Auto);
    let r = get(&mut reactor, &a, &server.url("/"));
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    let seen = heads(&server.requests());
    assert_eq!(
        header_of(&seen[1], "cookie").as_deref(),
        Some("fake=fake_value")
    );
    assert_eq!(
        header_of(&seen[1], "authorization").as_deref(),
        Some("Basic dTpw")
    );
}

#[test]
fn credentials_from_url_userinfo_are_decoded_and_stripped() {
    let httpbin = Httpbin::start();
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, None, AuthMode::Auto);
    let url = format!(
        "http://u%40x:p%3A1@127.0.0.1:{}/basic-auth/u@x/p:1",
        httpbin.port()
    );
    let r = get(&mut reactor, &a, &url);
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    assert_eq!(r.history[0].url.username(), "");
    assert!(r.history[0].url.password().is_none());

    let server = ScriptedServer::start(vec![vec![Step::ExpectRequest, ok200()]]);
    let b = agent(&mut reactor, Some(("ignored", "x")), AuthMode::Basic);
    let url = format!("http://us%40er:p%3As@{}/x", server.addr);
    let r = get(&mut reactor, &b, &url);
    assert!(r.out.is_done());
    let seen = heads(&server.requests());
    // base64("us@er:p:s")
    assert_eq!(
        header_of(&seen[0], "authorization").as_deref(),
        Some("Basic dXNAZXI6cDpz")
    );
    assert!(seen[0].starts_with("GET /x HTTP/1.1\r\n"), "{}", seen[0]);
}

fn ok200() -> Step {
    write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

const CHALLENGE: &[u8] = b"HTTP/1.1 401 Unauthorized\r\n\
    WWW-Authenticate: Digest realm=\"r\", qop=\"auth\", nonce=\"abc\", opaque=\"op\"\r\n\
    Content-Length: 6\r\n\r\ndenied";

fn param(h: &str, name: &str) -> String {
    let at = h
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} in {h}"))
        + name.len()
        + 1;
    let rest = &h[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q[..q.find('"').unwrap()].to_string()
    } else {
        rest.split([',', ' ']).next().unwrap().to_string()
    }
}

fn md5hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn post_body_is_replayed_on_the_digest_retry() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(CHALLENGE),
        Step::ExpectRequest,
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Digest);
    let req = Request::new("POST", server.url("/submit?q=1")).body(BytesProducer::new("payload"));
    let r = run_via(&mut reactor, &a, req);
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    assert_eq!(r.history.len(), 1);
    let seen = heads(&server.requests());
    assert_eq!(seen.len(), 2, "{seen:?}");
    // One connection: the 401 body was read and the connection reused.
    assert_eq!(server.connections(), 1);
    for s in &seen {
        assert!(s.starts_with("POST /submit?q=1 "), "{s}");
        assert!(s.ends_with("\r\n\r\npayload"), "{s}");
    }
    assert_eq!(header_of(&seen[0], "authorization"), None);
    let h = header_of(&seen[1], "authorization").unwrap();
    assert!(h.starts_with("Digest "), "{h}");
    assert_eq!(param(&h, "opaque"), "op");
    assert_eq!(param(&h, "nc"), "00000001");
    assert_eq!(param(&h, "qop"), "auth");
    assert_eq!(param(&h, "uri"), "/submit?q=1");
    let cnonce = param(&h, "cnonce");
    let ha1 = md5hex("u:r:p");
    let ha2 = md5hex("POST:/submit?q=1");
    let want = md5hex(&format!("{ha1}:abc:00000001:{cnonce}:auth:{ha2}"));
    assert_eq!(param(&h, "response"), want);
}

#[test]
fn non_rewindable_body_gets_the_401() {
    let server = ScriptedServer::start(vec![vec![Step::ExpectRequest, write(CHALLENGE)]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Auto);
    let body = ReadProducer::new(Cursor::new(b"stream".to_vec()), Some(6));
    let req = Request::new("POST", server.url("/up")).body(body);
    let r = run_via(&mut reactor, &a, req);
    assert_eq!(r.out.status, Some(401));
    assert_eq!(r.out.body, b"denied");
    assert!(r.history.is_empty());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn second_401_is_returned_and_no_third_request_is_made() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(CHALLENGE),
        Step::ExpectRequest,
        write(CHALLENGE),
        Step::ExpectRequest,
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Auto);
    let r = get(&mut reactor, &a, &server.url("/"));
    assert_eq!(r.out.status, Some(401));
    assert_eq!(r.out.body, b"denied");
    assert_eq!(r.history.len(), 1);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn cancel_during_the_retry_cancels_the_retry() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(CHALLENGE),
        Step::ExpectRequest,
        Step::Sleep(std::time::Duration::from_secs(3)),
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent(&mut reactor, Some(("u", "p")), AuthMode::Auto);
    let (slot, _hist, handle) = issue_via(&mut reactor, &a, Request::get(server.url("/")));
    let start = std::time::Instant::now();
    turn_until(&mut reactor, std::time::Duration::from_secs(5), || {
        server.requests().len() == 2
    });
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, std::time::Duration::from_secs(5), || {
        finished(&slot)
    });
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    let e = slot.borrow().error().cloned().expect("an error");
    assert_eq!(e.cause(), &weft::client::Cause::Cancelled);
}

/// An agent with no total timeout of its own, so that only the request's counts.
fn agent_without_total(reactor: &mut Reactor) -> AuthAgent<Agent> {
    let config = AgentConfig {
        timeout: None,
        ..test_config()
    };
    let inner = Agent::new(reactor.ctx(), config);
    AuthAgent::new(inner, Some(Credentials::new("u", "p")), AuthMode::Auto)
}

#[test]
fn retry_without_any_total_timeout_is_sent_and_answered() {
    // Neither the request nor the agent sets a total limit: the retry has none either, and is
    // not mistaken for one whose limit ran out.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(CHALLENGE),
        Step::ExpectRequest,
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent_without_total(&mut reactor);
    let req = Request::get(server.url("/"));
    assert_eq!(req.timeouts.total, None);
    let r = run_via(&mut reactor, &a, req);
    assert_eq!(r.out.status, Some(200), "{:?}", r.out);
    assert_eq!(r.out.body, b"ok");
    assert_eq!(r.history.iter().map(|h| h.code).collect::<Vec<_>>(), [401]);
    let seen = heads(&server.requests());
    assert_eq!(seen.len(), 2);
    assert_eq!(header_of(&seen[0], "authorization"), None);
    let auth = header_of(&seen[1], "authorization").expect("the retry answers the challenge");
    assert!(auth.starts_with("Digest "), "{auth}");
}

#[test]
fn the_total_timeout_covers_the_first_hop_and_the_retry_together() {
    // Each answer takes 300 ms: either hop alone fits in 500 ms, both together do not. A retry
    // given the whole limit again would get its 200 at about 600 ms.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(300)),
        write(CHALLENGE),
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(300)),
        ok200(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent_without_total(&mut reactor);
    let req = Request::get(server.url("/")).timeouts(Timeouts {
        total: Some(Duration::from_millis(500)),
        ..Timeouts::default()
    });
    let started = Instant::now();
    let r = run_via(&mut reactor, &a, req);
    let took = started.elapsed();
    let err = r.out.error().expect("the total limit ends the retry");
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Total),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(server.requests().len(), 2, "the retry was sent");
}

#[test]
fn retry_after_the_total_timeout_ran_out_is_not_sent() {
    // The 401's body is late: the total limit (300 ms) ends the first hop while its body is
    // read, so nothing is left for the retry. It fails with the total timeout at once instead
    // of starting with a fresh limit (the second connection would answer 200 at once).
    let mut head = CHALLENGE.to_vec();
    head.truncate(CHALLENGE.len() - b"denied".len());
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            Step::Write(head),
            Step::Sleep(Duration::from_millis(800)),
            write(b"denied"),
        ],
        vec![Step::ExpectRequest, ok200()],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let a = agent_without_total(&mut reactor);
    let req = Request::get(server.url("/")).timeouts(Timeouts {
        total: Some(Duration::from_millis(300)),
        ..Timeouts::default()
    });
    let started = Instant::now();
    let r = run_via(&mut reactor, &a, req);
    let took = started.elapsed();
    let err = r.out.error().expect("no time is left for the retry");
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Total),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
    assert_eq!(server.requests().len(), 1, "no retry was sent");
}
