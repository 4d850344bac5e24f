//! What an error says: every kind names the URL it failed for (without user name or password),
//! and a timeout gives its limit, the time elapsed and the body bytes received, as curl does.

mod support;

use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use weft::client::{
    Agent, AgentConfig, Cause, Error, HttpAgent, Phase, Proxies, RedirectAgent, RedirectConfig,
    Request, TimeoutKind,
};
use weft::reactor::Reactor;

/// `http://user:secret@127.0.0.1:PORT{path}` for a scripted server, and the same URL as an
/// error must show it.
fn with_credentials(srv: &ScriptedServer, path: &str) -> (String, String) {
    let port = srv.addr.port();
    (
        format!("http://user:secret@127.0.0.1:{port}{path}"),
        format!("http://127.0.0.1:{port}{path}"),
    )
}

/// The error of a request that failed, before its head or in its body.
fn error_of(out: &Outcome) -> Error {
    out.error().cloned().expect("the request failed")
}

/// Checks the parts every message has: `<phase>: <cause> - <url>`, no credentials.
fn assert_message(e: &Error, phase_and_cause: &str, url: &str) {
    let text = e.to_string();
    assert_eq!(e.url(), Some(url), "{text}");
    assert!(
        !text.contains("secret") && !text.contains("user:"),
        "{text}"
    );
    assert!(text.starts_with(phase_and_cause), "{text}");
    assert!(text.ends_with(&format!(" - {url}")), "{text}");
}

/// The milliseconds after "after " in a timeout's message.
fn elapsed_ms(text: &str) -> u128 {
    let rest = &text[text.find(" after ").expect(text) + 7..];
    rest[..rest.find(' ').unwrap()].parse().unwrap()
}

/// Checks a timeout's figures and how its message gives them.
fn assert_timeout(e: &Error, kind: TimeoutKind, limit_ms: u64, received: u64) {
    let t = e.timeout().unwrap_or_else(|| panic!("not a timeout: {e}"));
    assert_eq!(t.kind, kind, "{e}");
    assert_eq!(t.limit, Duration::from_millis(limit_ms), "{e}");
    assert_eq!(t.received, received, "{e}");
    assert!(t.elapsed >= t.limit, "{e}");
    assert!(e.is_timeout());
    assert_eq!(e.kind(), "timeout");
    let text = e.to_string();
    let name = match kind {
        TimeoutKind::Connect => "connect",
        TimeoutKind::Total => "total",
        TimeoutKind::Queue => "queue",
        TimeoutKind::Read => "read",
    };
    let figures = format!("({name} limit {limit_ms} ms, {received} bytes received) - ");
    assert!(text.contains(&figures), "{text}");
    assert_eq!(elapsed_ms(&text), t.elapsed.as_millis(), "{text}");
}

#[test]
fn invalid_url_is_named_without_credentials() {
    let out = run_one(
        test_config(),
        Req::get("http://user:secret@exa mple.test/x".into()),
    );
    let e = error_of(&out);
    assert!(matches!(e.cause(), Cause::InvalidUrl(_)), "{e}");
    // The URL does not parse: it is shown as given, credentials out, the space escaped.
    assert_eq!(
        e.to_string(),
        "request not sent: invalid URL: invalid international domain name - \
         http://exa%20mple.test/x"
    );
}

#[test]
fn unsupported_scheme_is_named_without_credentials() {
    let out = run_one(
        test_config(),
        Req::get("ftp://user:secret@127.0.0.1/f".into()),
    );
    let e = error_of(&out);
    assert_eq!(
        e.to_string(),
        "request not sent: unsupported URL scheme \"ftp\" - ftp://127.0.0.1/f"
    );
}

#[test]
fn connection_refused_names_the_url() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://user:secret@127.0.0.1:{port}/x");
    let e = error_of(&run_one(test_config(), Req::get(url)));
    assert_eq!(
        e.to_string(),
        format!("request not sent: connection refused - http://127.0.0.1:{port}/x")
    );
}

/// A refused connection to a proxy is not taken for the origin's: the message names the
/// proxy as well as the URL (which keeps no credentials of either).
#[test]
fn a_refused_proxy_is_named_beside_the_url() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for scheme in ["http", "https"] {
        let config = AgentConfig {
            proxies: Proxies::all(&format!("http://puser:psecret@127.0.0.1:{port}")).unwrap(),
            ..test_config()
        };
        let url = format!("{scheme}://user:secret@origin.test/x");
        let e = error_of(&run_one(config, Req::get(url)));
        assert_eq!(e.proxy(), Some(format!("127.0.0.1:{port}").as_str()), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "request not sent: connection refused (via proxy 127.0.0.1:{port}) - \
                 {scheme}://origin.test/x"
            )
        );
    }
    // Without a proxy there is none to name.
    let e = error_of(&run_one(
        test_config(),
        Req::get(format!("http://127.0.0.1:{port}/x")),
    ));
    assert_eq!(e.proxy(), None);
}

#[test]
fn connect_timeout_gives_its_figures() {
    // A plain TCP server that never speaks TLS: the handshake stalls past the limit.
    let srv = ScriptedServer::start(vec![vec![Step::Sleep(Duration::from_secs(3))]]);
    let port = srv.addr.port();
    let config = AgentConfig {
        connect_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let url = format!("https://user:secret@127.0.0.1:{port}/x");
    let e = error_of(&run_one(config, Req::get(url)));
    let shown = format!("https://127.0.0.1:{port}/x");
    assert_message(&e, "request not sent: connect timed out after ", &shown);
    assert_timeout(&e, TimeoutKind::Connect, 300, 0);
}

#[test]
fn total_timeout_gives_its_figures() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let config = AgentConfig {
        timeout: Some(Duration::from_millis(400)),
        ..test_config()
    };
    let (url, shown) = with_credentials(&srv, "/big");
    let out = run_one(config, Req::get(url));
    assert_eq!(out.body, b"12345");
    let e = error_of(&out);
    assert_message(&e, "response failed: request timed out after ", &shown);
    assert_timeout(&e, TimeoutKind::Total, 400, 5);
}

#[test]
fn read_timeout_gives_its_figures() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n123"),
        Step::Sleep(Duration::from_secs(3)),
    ]]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let (url, shown) = with_credentials(&srv, "/slow");
    let e = error_of(&run_one(config, Req::get(url)));
    assert_message(
        &e,
        "response failed: timed out waiting for data after ",
        &shown,
    );
    assert_timeout(&e, TimeoutKind::Read, 300, 3);
}

#[test]
fn queue_timeout_gives_its_figures() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(Duration::from_millis(800)),
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        Step::WaitClose,
    ]]);
    let config = AgentConfig {
        max_active_per_host: 1,
        queue_timeout: Some(Duration::from_millis(200)),
        ..test_config()
    };
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let first = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    let (url, shown) = with_credentials(&srv, "/2");
    let second = issue(reactor.ctx(), agent, Req::get(url));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        finished(&first) && finished(&second)
    });
    let e = error_of(&second.borrow());
    assert_message(
        &e,
        "request not sent: timed out waiting for a free connection after ",
        &shown,
    );
    assert_timeout(&e, TimeoutKind::Queue, 200, 0);
}

#[test]
fn protocol_error_names_the_url() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 abc\r\n\r\n"),
        Step::WaitClose,
    ]]);
    let (url, shown) = with_credentials(&srv, "/p");
    let e = error_of(&run_one(test_config(), Req::get(url)));
    assert_eq!(
        e.to_string(),
        format!("response never received: invalid status line in response - {shown}")
    );
}

#[test]
fn redirect_error_names_the_hop_that_failed() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n"),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let inner = Agent::new(reactor.ctx(), test_config());
    let config = RedirectConfig {
        max_redirects: 0,
        ..RedirectConfig::default()
    };
    let agent = RedirectAgent::new(inner, config);
    let (url, shown) = with_credentials(&srv, "/r");
    let got: Rc<RefCell<Option<Error>>> = Rc::default();
    let g = got.clone();
    HttpAgent::request(
        &agent,
        reactor.ctx(),
        Request::new("GET", &url),
        Box::new(move |_, r| *g.borrow_mut() = r.err()),
    );
    turn_until(&mut reactor, Duration::from_secs(5), || {
        got.borrow().is_some()
    });
    let e = got.borrow().clone().unwrap();
    assert_eq!(e.phase(), Phase::ResponseNeverReceived);
    assert_eq!(
        e.to_string(),
        format!("response never received: too many redirects (limit 0) - {shown}")
    );
}

#[cfg(feature = "gzip")]
#[test]
fn decode_error_names_the_url() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let inner = Agent::new(reactor.ctx(), test_config());
    let agent = weft::client::ContentDecoderAgent::new(inner, Default::default());
    let (url, shown) = with_credentials(&srv, "/z");
    let out = run_via(&mut reactor, &agent, Request::new("GET", &url));
    let e = out.out.error().cloned().expect("the body failed");
    assert!(matches!(e.cause(), Cause::Decode(_)), "{e}");
    assert_message(
        &e,
        "response failed: cannot decode the response body",
        &shown,
    );
}
