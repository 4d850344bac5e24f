//! HttpClient (the convenience layer) against httpbin, nginx and scripted servers.
#![cfg(feature = "json")]

mod support;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::{ScriptedServer, Step, turn_until, write};
use support::servers::{Httpbin, Nginx, TestDir, big_body};
use weft::client::{Cause, ClientBuilder, Error, FullResponse, HttpClient, Phase, RequestBuilder};
use weft::reactor::Reactor;

type Got = Rc<RefCell<Option<Result<FullResponse, Error>>>>;

/// Fetches one built request on a fresh reactor and returns the result.
fn fetch(build: impl FnOnce(&HttpClient) -> RequestBuilder) -> Result<FullResponse, Error> {
    fetch_with(HttpClient::builder(), build)
}

fn fetch_with(
    builder: ClientBuilder,
    build: impl FnOnce(&HttpClient) -> RequestBuilder,
) -> Result<FullResponse, Error> {
    let mut reactor = Reactor::new().unwrap();
    let client = builder.build(reactor.ctx());
    let got: Got = Default::default();
    let g = got.clone();
    build(&client).fetch(reactor.ctx(), move |_, r| *g.borrow_mut() = Some(r));
    turn_until(&mut reactor, Duration::from_secs(15), || {
        got.borrow().is_some()
    });
    got.borrow_mut().take().unwrap()
}

#[test]
fn query_parameters_are_encoded() {
    let httpbin = Httpbin::start();
    let r = fetch(|c| {
        c.get(httpbin.url("/get?fixed=1"))
            .query("q", "a b&c")
            .query("n", "2")
    })
    .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["args"]["fixed"], "1");
    assert_eq!(v["args"]["q"], "a b&c");
    assert_eq!(v["args"]["n"], "2");
}

#[test]
fn form_and_json_bodies() {
    let httpbin = Httpbin::start();
    let r = fetch(|c| {
        c.post(httpbin.url("/post"))
            .form(&[("name", "weft"), ("x", "1 2")])
    })
    .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["form"]["name"], "weft");
    assert_eq!(v["form"]["x"], "1 2");
    let payload = serde_json::json!({"list": [1, 2, 3], "ok": true});
    let r = fetch(|c| c.put(httpbin.url("/put")).json(&payload)).unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["json"], payload);
    assert_eq!(v["headers"]["Content-Type"], "application/json");
}

#[test]
fn file_body_is_streamed() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-client-file");
    let path = dir.write("body.bin", big_body());
    let r = fetch(|c| c.post(nginx.http_url("/echo-post")).file(&path)).unwrap();
    assert!(r.body == big_body());
    let missing = fetch(|c| c.post(nginx.http_url("/echo-post")).file(dir.join("nope")));
    let err = missing.unwrap_err();
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(matches!(err.cause(), Cause::File(_)));
}

#[test]
fn text_uses_the_declared_charset() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Length: 4\r\n\r\ncaf\xe9"),
        Step::WaitClose,
    ]]);
    let r = fetch(|c| c.get(srv.url("/"))).unwrap();
    assert_eq!(r.text(), "café");
}

#[test]
fn error_for_status_turns_4xx_into_errors() {
    let httpbin = Httpbin::start();
    let ok = fetch(|c| c.get(httpbin.url("/status/404"))).unwrap();
    assert_eq!(ok.code, 404);
    let err = fetch(|c| c.get(httpbin.url("/status/404")).error_for_status(true)).unwrap_err();
    assert_eq!(err.cause(), &Cause::HttpStatus(404));
}

#[test]
fn body_cap_and_sizes_and_timing() {
    let nginx = Nginx::start();
    let r = fetch(|c| c.get(nginx.http_url("/big.bin"))).unwrap();
    assert_eq!(r.sizes.body_wire, big_body().len() as u64);
    assert_eq!(r.sizes.body_decoded, big_body().len() as u64);
    assert!(r.complete);
    assert!(r.timing.head <= r.total);
    assert!(r.timing.connect.is_none() || r.timing.connect.unwrap() <= r.timing.head);
    let err = fetch(|c| c.get(nginx.http_url("/big.bin")).max_body(1000)).unwrap_err();
    assert_eq!(err.cause(), &Cause::BodyTooLarge(1000));
}

#[test]
fn fetch_all_bounds_concurrency_and_reports_every_request() {
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::new(reactor.ctx());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let done = Rc::new(RefCell::new(false));
    let (s, d) = (seen.clone(), done.clone());
    let c = client.clone();
    let url = nginx.http_url("/hello.txt");
    client.fetch_all(
        reactor.ctx(),
        (0..60).map(move |_| c.get(&url)),
        4,
        move |_, i, r| s.borrow_mut().push((i, r.map(|r| r.body))),
        move |_| *d.borrow_mut() = true,
    );
    turn_until(&mut reactor, Duration::from_secs(20), || *done.borrow());
    let seen = seen.borrow();
    assert_eq!(seen.len(), 60);
    let indices: HashSet<usize> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices.len(), 60);
    assert!(
        seen.iter()
            .all(|(_, r)| r.as_deref() == Ok(&b"hello world\n"[..]))
    );
    let log = nginx.wait_access_log(60);
    let conns: HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert!(
        conns.len() <= 4,
        "{} connections for 4 in flight",
        conns.len()
    );
}

#[test]
fn fetch_all_with_nothing_to_do_finishes() {
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::new(reactor.ctx());
    let done = Rc::new(RefCell::new(false));
    let d = done.clone();
    client.fetch_all(
        reactor.ctx(),
        std::iter::empty(),
        8,
        |_, _, _| panic!("no request"),
        move |_| *d.borrow_mut() = true,
    );
    assert!(!*done.borrow(), "on_done runs from the loop");
    turn_until(&mut reactor, Duration::from_secs(5), || *done.borrow());
}
