//! Conditional GETs (the session builder's `conditional`, a `ConditionalAgent` in the chain)
//! against nginx's static files (ETag, Last-Modified, 304) and scripted servers.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use support::servers::Nginx;
use weft::client::{Error, FullResponse, HttpClient, ValidatorCache};
use weft::proto::Headers;
use weft::reactor::Reactor;

/// A client with the builder's defaults and conditional GETs through `cache`.
fn client(reactor: &mut Reactor, cache: ValidatorCache) -> HttpClient {
    HttpClient::builder()
        .agent_config(test_config())
        .conditional(cache)
        .build(reactor.ctx())
}

fn fetch_method(
    reactor: &mut Reactor,
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: Headers,
) -> Result<FullResponse, Error> {
    let slot: Rc<RefCell<Option<Result<FullResponse, Error>>>> = Rc::default();
    let s = slot.clone();
    let mut request = client.request(method, url);
    for (name, value) in headers.iter() {
        request = request.header(name, value);
    }
    request.fetch(reactor.ctx(), move |_ctx, r| *s.borrow_mut() = Some(r));
    turn_until(reactor, Duration::from_secs(10), || slot.borrow().is_some());
    slot.borrow_mut().take().unwrap()
}

fn fetch(
    reactor: &mut Reactor,
    client: &HttpClient,
    url: &str,
    headers: Headers,
) -> Result<FullResponse, Error> {
    fetch_method(reactor, client, "GET", url, headers)
}

#[test]
fn nginx_second_fetch_is_a_304_with_the_cached_body() {
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let cache = ValidatorCache::new();
    let agent = client(&mut reactor, cache.clone());
    let url = nginx.http_url("/hello.txt");

    let first = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(first.code, 200);
    assert_eq!(first.body, b"hello world\n");
    let v = cache.validators(&url).expect("cached");
    assert!(v.etag.is_some() && v.last_modified.is_some());

    let second = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(second.code, 304);
    assert_eq!(second.body, b"hello world\n");

    let log = nginx.wait_access_log(2);
    let statuses: Vec<u16> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 304]);
    assert_eq!(log[1].body_bytes_sent, 0);

    // Rewrite the file (new size and mtime, so a new ETag): Changed again.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(nginx.docroot().join("hello.txt"), b"hello again, world\n").unwrap();
    let third = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(third.code, 200);
    assert_eq!(third.body, b"hello again, world\n");
    let fourth = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(fourth.code, 304);
    assert_eq!(fourth.body, b"hello again, world\n");
    let statuses: Vec<u16> = nginx.wait_access_log(4).iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 304, 200, 304]);
}

#[test]
fn nginx_last_modified_alone_is_enough() {
    // A cache that only remembers Last-Modified still gets a 304 (If-Modified-Since).
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let agent = client(&mut reactor, ValidatorCache::new());
    let url = nginx.http_url("/hello.txt");
    let first = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    let mut h = Headers::new();
    h.set(
        "If-Modified-Since",
        first.headers.get("last-modified").unwrap(),
    );
    // The caller's own validator wins; no cached body is attached then.
    let second = fetch(&mut reactor, &agent, &url, h).unwrap();
    assert!(second.body.is_empty());
}

#[test]
fn oversized_bodies_are_returned_but_not_cached() {
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let cache = ValidatorCache::with_limits(1024, 4, 4096);
    let agent = client(&mut reactor, cache.clone());
    let url = nginx.http_url("/big.bin");
    for _ in 0..2 {
        let f = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
        assert_eq!(f.code, 200);
        assert_eq!(f.body.len(), support::servers::big_body().len());
    }
    assert!(cache.is_empty());
    // And the fetch cap holds.
    let slot: Rc<RefCell<Option<Result<FullResponse, Error>>>> = Rc::default();
    let s = slot.clone();
    agent
        .get(&url)
        .max_body(1000)
        .fetch(reactor.ctx(), move |_ctx, r| *s.borrow_mut() = Some(r));
    turn_until(&mut reactor, Duration::from_secs(10), || {
        slot.borrow().is_some()
    });
    let e = slot.borrow_mut().take().unwrap().unwrap_err();
    assert_eq!(e.cause(), &weft::client::Cause::BodyTooLarge(1000));
}

#[test]
fn scripted_404_evicts_and_errors_pass_through() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 3\r\n\r\none"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let cache = ValidatorCache::new();
    let agent = client(&mut reactor, cache.clone());
    let url = server.url("/r");
    assert_eq!(
        fetch(&mut reactor, &agent, &url, Headers::new())
            .unwrap()
            .body,
        b"one"
    );
    let gone = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(gone.code, 404);
    assert!(!cache.contains(&url));
    let third = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(third.body, b"two");
    let reqs = server.requests();
    let texts: Vec<String> = reqs
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert!(
        texts[1].contains("If-None-Match: \"v1\"\r\n"),
        "{}",
        texts[1]
    );
    assert!(!texts[2].contains("If-None-Match"), "{}", texts[2]);
}

#[test]
fn scripted_unsafe_method_invalidates_and_304_streams_the_cached_body() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let cache = ValidatorCache::new();
    let agent = client(&mut reactor, cache.clone());
    let url = server.url("/r");
    // A chunked 200 is cached as it streams through.
    let first = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!((first.code, &first.body[..]), (200, &b"one"[..]));
    assert!(cache.contains(&url));
    // The 304 comes with the cached body and its length.
    let second = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!((second.code, &second.body[..]), (304, &b"one"[..]));
    assert!(second.complete);
    // A successful POST to the URL forgets it: the next GET is unconditional.
    let posted = fetch_method(&mut reactor, &agent, "POST", &url, Headers::new()).unwrap();
    assert_eq!(posted.code, 201);
    assert!(!cache.contains(&url));
    let third = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(third.body, b"two");
    let texts: Vec<String> = server
        .requests()
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert!(
        texts[1].contains("If-None-Match: \"v1\"\r\n"),
        "{}",
        texts[1]
    );
    assert!(!texts[3].contains("If-None-Match"), "{}", texts[3]);
}

/// Stops the body at its first piece and keeps how it ended.
struct StopAtFirst(Rc<RefCell<Option<weft::BodyEnd>>>);

impl weft::BodyProtocol for StopAtFirst {
    fn data_received(&mut self, body: &mut weft::BodyCtx<'_>, _data: &[u8]) {
        body.stop();
    }
    fn connection_lost(&mut self, _ctx: &mut weft::Ctx, reason: weft::BodyEnd) {
        *self.0.borrow_mut() = Some(reason);
    }
}

/// A 200 whose body ends short is not cached, and a protocol that stops the cached body of
/// a 304 ends with a cancellation, not a success.
#[test]
fn scripted_truncated_body_is_not_cached_and_a_stopped_replay_is_cancelled() {
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\nshort"),
            Step::Close,
        ],
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nETag: \"v2\"\r\nContent-Length: 4\r\n\r\nfull"),
            Step::ExpectRequest,
            write(b"HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\n\r\n"),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let cache = ValidatorCache::new();
    let agent = client(&mut reactor, cache.clone());
    let url = server.url("/t");
    let cut = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap_err();
    assert_eq!(cut.phase(), weft::client::Phase::ResponseFailed, "{cut}");
    assert!(!cache.contains(&url));
    let whole = fetch(&mut reactor, &agent, &url, Headers::new()).unwrap();
    assert_eq!(whole.body, b"full");
    assert!(cache.contains(&url));

    let end: Rc<RefCell<Option<weft::BodyEnd>>> = Rc::default();
    let e = end.clone();
    agent.get(&url).send(reactor.ctx(), move |ctx, r| {
        let response = r.unwrap();
        assert_eq!(response.code, 304);
        response.deliver_body(ctx, StopAtFirst(e));
    });
    turn_until(&mut reactor, Duration::from_secs(10), || {
        end.borrow().is_some()
    });
    let end = end.borrow_mut().take().unwrap();
    match end {
        weft::BodyEnd::Failed(e) => assert!(e.is_cancelled(), "{e}"),
        other => panic!("a stopped replay ended with {other:?}"),
    }
}
