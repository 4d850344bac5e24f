//! The blocking client against nginx and httpbin: plain calls, pool reuse across calls, use
//! from other threads and from inside another reactor's callback, caps and errors.
#![cfg(feature = "cookies")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::{ScriptedServer, Step, test_config, write};
use support::servers::{Httpbin, Nginx, TestDir, big_body, free_port};
use weft::blocking::Client;
use weft::client::{AuthMode, Cause, CookieJar, Credentials, DownloadOptions, Phase, Request};
use weft::proto::Version;
use weft::reactor::{Reactor, TransportError};

fn client() -> Client {
    Client::builder()
        .agent_config(test_config())
        .build_blocking()
        .unwrap()
}

#[test]
fn get_from_nginx_and_httpbin() {
    let nginx = Nginx::start();
    let httpbin = Httpbin::start();
    let mut c = client();

    let r = c.get(&nginx.http_url("/hello.txt")).unwrap();
    assert_eq!((r.code, &*r.phrase), (200, "OK"));
    assert_eq!(r.version, Version::Http11);
    assert_eq!(r.body, b"hello world\n");
    assert!(r.complete);
    assert_eq!(r.headers.get_str("content-type"), Some("text/plain"));
    assert_eq!(r.url.as_str(), nginx.http_url("/hello.txt"));

    let r = c.get(&httpbin.url("/get?x=1")).unwrap();
    assert_eq!(r.code, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["args"]["x"], "1");

    // A 404 is a response, not an error.
    let r = c.get(&nginx.http_url("/missing")).unwrap();
    assert_eq!(r.code, 404);
}

#[test]
fn chunked_body_and_big_body() {
    let nginx = Nginx::start();
    let mut c = client();
    let r = c.get(&nginx.http_url("/chunked/big.bin")).unwrap();
    assert!(r.headers.get_str("content-length").is_none());
    assert!(r.body == big_body(), "chunked body differs");
    let r = c.get(&nginx.http_url("/big.bin")).unwrap();
    assert!(r.body == big_body(), "body differs");
}

#[test]
fn post_json_to_httpbin() {
    let httpbin = Httpbin::start();
    let mut c = client();
    let req = Request::new("POST", httpbin.url("/post"))
        .header("Content-Type", "application/json")
        .body_bytes(r#"{"name":"weft","n":3}"#);
    let r = c.send(req).unwrap();
    assert_eq!(r.code, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["json"], serde_json::json!({"name": "weft", "n": 3}));
    assert_eq!(json["headers"]["Content-Type"], "application/json");
}

#[test]
fn connection_refused_is_request_not_sent() {
    let port = free_port();
    let mut c = client();
    let err = c.get(&format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::ConnectionRefused)
    );
    // The client is still usable afterwards.
    let err = c.get("ftp://127.0.0.1/").unwrap_err();
    assert!(matches!(err.cause(), Cause::UnsupportedScheme(_)), "{err}");
}

#[test]
fn pool_persists_across_calls() {
    let nginx = Nginx::start();
    let mut c = client();
    for _ in 0..3 {
        let r = c.get(&nginx.http_url("/hello.txt")).unwrap();
        assert_eq!(r.body, b"hello world\n");
    }
    let log = nginx.wait_access_log(3);
    assert_eq!(log.len(), 3);
    assert_eq!(nginx.distinct_connections(), 1, "{log:?}");
    let stats = c.stats().unwrap();
    assert_eq!((stats.connections_opened, stats.reused), (1, 2));
    assert_eq!((stats.active, stats.idle, stats.requests), (0, 1, 0));
}

#[test]
fn body_cap_fails_and_the_client_goes_on() {
    let nginx = Nginx::start();
    assert_eq!(client().http_client().max_body(), Client::DEFAULT_MAX_BODY);
    let mut c = Client::builder()
        .agent_config(test_config())
        .max_body(1000)
        .build_blocking()
        .unwrap();
    let err = c.get(&nginx.http_url("/big.bin")).unwrap_err();
    assert_eq!(err.cause(), &Cause::BodyTooLarge(1000), "{err}");
    assert_eq!(err.phase(), Phase::ResponseFailed);
    let r = c.get(&nginx.http_url("/hello.txt")).unwrap();
    assert_eq!(r.body, b"hello world\n");
    // The over-long body's connection was closed, not pooled.
    assert_eq!(nginx.wait_access_log(2).len(), 2);
    assert_eq!(nginx.distinct_connections(), 2);
}

#[test]
fn works_from_a_spawned_thread() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = client();
                c.get(&url).map(|r| r.body)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), b"hello world\n");
    }
}

#[test]
fn works_inside_another_reactors_callback() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    let mut outer = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    outer.ctx().call_later(Duration::ZERO, move |ctx| {
        let mut c = client();
        *g.borrow_mut() = Some(c.get(&url).map(|r| r.body));
        ctx.stop();
    });
    let safety = outer
        .ctx()
        .call_later(Duration::from_secs(10), |ctx| ctx.stop());
    outer.run().unwrap();
    assert!(outer.ctx().cancel_timer(safety), "stopped by the callback");
    assert_eq!(got.borrow_mut().take().unwrap().unwrap(), b"hello world\n");
}

#[test]
fn download_to_a_file() {
    let nginx = Nginx::start();
    let dir = TestDir::new("blocking");
    let target = dir.join("big.bin");
    let mut c = client();
    let d = c
        .download(
            Request::get(nginx.http_url("/big.bin")),
            &target,
            DownloadOptions::default(),
        )
        .unwrap();
    assert_eq!(d.bytes, big_body().len() as u64);
    assert!(std::fs::read(&target).unwrap() == big_body());
    let err = c
        .download(
            Request::get(nginx.http_url("/missing")),
            dir.join("m"),
            DownloadOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.cause(), &Cause::HttpStatus(404));
    assert!(!dir.join("m").exists());
}

#[test]
fn timeout_is_reported_not_hung() {
    let nginx = Nginx::start();
    let mut c = Client::builder()
        .agent_config(test_config())
        .timeout(Duration::from_millis(200))
        .build_blocking()
        .unwrap();
    let started = std::time::Instant::now();
    let err = c.get(&nginx.http_url("/slow?s=3")).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// CPU time used by the calling thread (utime + stime from `/proc/thread-self/stat`).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state field (3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[test]
fn waiting_does_not_spin() {
    let nginx = Nginx::start();
    let mut c = client();
    c.get(&nginx.http_url("/hello.txt")).unwrap();
    let cpu = thread_cpu();
    let started = std::time::Instant::now();
    let r = c.get(&nginx.http_url("/slow?s=0.6")).unwrap();
    assert_eq!(r.body, b"slow\n");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let used = thread_cpu() - cpu;
    assert!(
        used < Duration::from_millis(150),
        "{used:?} of CPU while waiting"
    );
}

#[test]
fn builder_follows_redirects_keeps_cookies_and_answers_challenges() {
    let httpbin = Httpbin::start();
    let jar = CookieJar::new();
    let mut c = Client::builder()
        .agent_config(test_config())
        .cookie_jar(jar.clone())
        .auth(Credentials::new("u", "p"), AuthMode::Auto)
        .build_blocking()
        .unwrap();
    // Set-Cookie on a redirect: the jar serves the hop to /cookies.
    let r = c.get(&httpbin.url("/cookies/set?k=v")).unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(r.history.len(), 1, "{:?}", r.history);
    assert_eq!(r.url.path(), "/cookies");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["cookies"]["k"], "v");
    assert_eq!(jar.cookies_for(&httpbin.url("/")).len(), 1);
    // A Digest challenge answered once; the 401 is in the history.
    let r = c.get(&httpbin.url("/digest-auth/auth/u/p")).unwrap();
    assert_eq!(
        (r.code, r.history.first().map(|p| p.code)),
        (200, Some(401))
    );
    // Same errors as on a reactor.
    let e = c
        .get(&format!("http://127.0.0.1:{}/", free_port()))
        .unwrap_err();
    assert_eq!(e.phase(), Phase::RequestNotSent);
}

/// The default client decodes content, yet a download asks for the bytes as sent (so a
/// resume's range counts what is on disk), and resumes from the partial file.
#[test]
fn download_through_a_decoding_client_resumes_raw_bytes() {
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nAccept-Ranges: bytes\r\nETag: \"e1\"\r\n\r\n01234"),
            Step::Reset,
        ],
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n56789"),
            Step::WaitClose,
        ],
    ]);
    let dir = TestDir::new("blocking-resume");
    let target = dir.join("f.bin");
    let mut c = client();
    let resume = || DownloadOptions {
        resume: true,
        ..DownloadOptions::default()
    };
    let first = c.download(Request::get(server.url("/f")), &target, resume());
    assert!(first.is_err(), "{first:?}");
    let done = c
        .download(Request::get(server.url("/f")), &target, resume())
        .unwrap();
    assert_eq!((done.bytes, done.resumed_from), (10, 5));
    assert_eq!(std::fs::read(&target).unwrap(), b"0123456789");
    for (_, request) in server.requests() {
        let text = String::from_utf8_lossy(&request).into_owned();
        assert!(text.contains("Accept-Encoding: identity\r\n"), "{text}");
    }
}
