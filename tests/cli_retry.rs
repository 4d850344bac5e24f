//! `weft --retry` and its companions, with curl's semantics, against scripted flaky servers
//! and nginx on 127.0.0.1.
#![cfg(feature = "cli")]

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::scripted::{ScriptedServer, Step, response};
use support::servers::Nginx;

fn weft(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs");
    (out, t0.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn refused_url() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}/")
}

#[test]
fn transient_statuses_are_retried_and_the_retried_bodies_never_printed() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("503 Service Unavailable", "", "busy"),
        Step::ExpectRequest,
        response("429 Too Many Requests", "", "slow"),
        Step::ExpectRequest,
        response("200 OK", "", "fine"),
    ]]);
    let (out, _) = weft(&["--retry", "2", "--retry-delay", "0.05", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"fine");
    assert_eq!(srv.requests().len(), 3);
}

#[test]
fn giving_up_prints_the_last_response_and_fail_exits_22() {
    let failing = || {
        vec![
            Step::ExpectRequest,
            response("500 Internal Server Error", "Connection: close\r\n", "oops"),
        ]
    };
    let srv = ScriptedServer::start((0..6).map(|_| failing()).collect());
    let (out, _) = weft(&["--retry", "1", "--retry-delay", "0.05", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"oops");
    assert_eq!(srv.requests().len(), 2);
    let (out, _) = weft(&["-f", "--retry", "1", "--retry-delay", "0.05", &srv.url("/")]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert_eq!(srv.requests().len(), 4);
}

#[test]
fn posts_are_retried_with_their_data_as_curl_does() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("502 Bad Gateway", "", ""),
        Step::ExpectRequest,
        response("201 Created", "", "made"),
    ]]);
    let (out, _) = weft(&[
        "--retry",
        "1",
        "--retry-delay",
        "0.05",
        "-d",
        "name=weft",
        &srv.url("/items"),
    ]);
    assert_eq!(out.stdout, b"made", "{}", stderr(&out));
    let requests = srv.requests();
    assert_eq!(requests.len(), 2);
    for (_, raw) in requests {
        assert!(raw.starts_with(b"POST /items "));
        assert!(raw.ends_with(b"\r\n\r\nname=weft"));
    }
}

#[test]
fn a_refused_connection_is_retried_only_with_retry_connrefused() {
    let url = refused_url();
    let (out, took) = weft(&["--retry", "3", "--retry-delay", "0.3", &url]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(took < Duration::from_millis(900), "no retry: {took:?}");
    let (out, took) = weft(&[
        "--retry",
        "2",
        "--retry-delay",
        "0.3",
        "--retry-connrefused",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(took >= Duration::from_millis(600), "two waits: {took:?}");
    assert!(stderr(&out).contains("after 2 retries"), "{}", stderr(&out));
}

#[test]
fn max_time_limits_each_attempt_when_retrying() {
    let srv = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, Step::Sleep(Duration::from_secs(2))],
        vec![Step::ExpectRequest, response("200 OK", "", "second")],
    ]);
    let (out, _) = weft(&[
        "-m",
        "0.4",
        "--retry",
        "1",
        "--retry-delay",
        "0.05",
        &srv.url("/"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"second");
}

#[test]
fn retry_max_time_stops_a_retry_after_that_would_pass_it() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("503 Service Unavailable", "Retry-After: 100\r\n", "later"),
    ]]);
    let (out, took) = weft(&["--retry", "3", "--retry-max-time", "2", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"later");
    assert!(
        took < Duration::from_millis(1500),
        "gave up at once: {took:?}"
    );
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn retry_all_errors_retries_what_is_otherwise_final() {
    let script = || {
        vec![
            vec![Step::ExpectRequest, Step::Reset],
            vec![Step::ExpectRequest, response("200 OK", "", "after reset")],
        ]
    };
    let srv = ScriptedServer::start(script());
    let (out, _) = weft(&["--retry", "1", "--retry-delay", "0.05", &srv.url("/")]);
    assert!(!out.status.success(), "a reset is not transient");
    assert_eq!(srv.requests().len(), 1);
    let srv = ScriptedServer::start(script());
    let (out, _) = weft(&[
        "--retry",
        "1",
        "--retry-delay",
        "0.05",
        "--retry-all-errors",
        &srv.url("/"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"after reset");
}

#[test]
fn nginx_retry_after_is_honoured_and_a_404_is_not_retried() {
    let nginx =
        Nginx::start_with("location = /busy { add_header Retry-After 1 always; return 503; }");
    let (out, took) = weft(&[
        "-f",
        "--retry",
        "2",
        "--retry-delay",
        "0.05",
        &nginx.http_url("/busy"),
    ]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert!(took >= Duration::from_secs(2), "two 1 s waits: {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let (out, took) = weft(&["-f", "--retry", "2", &nginx.http_url("/missing")]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert!(took < Duration::from_millis(900), "not retried: {took:?}");
}

#[test]
fn retry_options_are_checked() {
    for bad in [
        &["--retry", "-1", "http://127.0.0.1:9/"][..],
        &["--retry", "x", "http://127.0.0.1:9/"],
        &["--retry", "1", "--retry-delay", "-2", "http://127.0.0.1:9/"],
        &[
            "--retry",
            "1",
            "--retry-max-time",
            "nan",
            "http://127.0.0.1:9/",
        ],
    ] {
        let (out, _) = weft(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}

/// Before each retry, curl's warning on stderr: what failed, the wait in whole seconds and the
/// retries left (this one included); `-s` keeps it quiet.
#[test]
fn each_retry_is_announced_as_curl_does_unless_silent() {
    let script = || {
        vec![vec![
            Step::ExpectRequest,
            response("503 Service Unavailable", "", "busy"),
            Step::ExpectRequest,
            response("503 Service Unavailable", "", "busy"),
            Step::ExpectRequest,
            response("200 OK", "", "fine"),
        ]]
    };
    let srv = ScriptedServer::start(script());
    let (out, _) = weft(&["--retry", "3", "--retry-delay", "0.05", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("Warning:")).collect();
    assert_eq!(
        warnings,
        [
            "Warning: Problem : HTTP error. Will retry in 1 seconds. 3 retries left.",
            "Warning: Problem : HTTP error. Will retry in 1 seconds. 2 retries left.",
        ],
        "{err}"
    );

    let srv = ScriptedServer::start(script());
    let (out, _) = weft(&["-s", "--retry", "3", "--retry-delay", "0.05", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));

    let (out, _) = weft(&[
        "--retry",
        "1",
        "--retry-connrefused",
        "--retry-delay",
        "0.05",
        &refused_url(),
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Warning: Problem : connection refused. Will retry in 1 seconds. 1 retries left."
        ),
        "{}",
        stderr(&out)
    );
}
