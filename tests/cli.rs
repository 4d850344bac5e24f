//! The `weft` command, run as a user would, against nginx and scripted servers on 127.0.0.1.
#![cfg(feature = "cli")]

mod support;

use std::process::Output;

use support::scripted::{ScriptedServer, Step, write};
use support::servers::{Httpbin, Nginx, TestDir, big_body};

fn weft(args: &[&str]) -> Output {
    support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fetches_a_url_to_stdout() {
    let nginx = Nginx::start();
    let out = weft(&[&nginx.http_url("/hello.txt")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello world\n");
}

#[test]
fn include_prints_the_head_in_curl_layout() {
    let nginx = Nginx::start();
    let out = weft(&["-i", &nginx.http_url("/hello.txt")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Length: 12\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello world\n"), "{text}");
}

#[test]
fn head_request_prints_only_the_head() {
    let nginx = Nginx::start();
    let out = weft(&["-I", &nginx.http_url("/big.bin")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.ends_with("\r\n\r\n"), "no body after the head");
}

#[test]
fn output_file_https_with_cacert() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli");
    let file = dir.join("big.bin");
    let ca = nginx.ca_pem_path().to_str().unwrap().to_string();
    let out = weft(&[
        "--cacert",
        &ca,
        "-o",
        file.to_str().unwrap(),
        &nginx.https_url("/big.bin"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&file).unwrap() == big_body());
}

#[test]
fn untrusted_certificate_fails_with_a_clear_line() {
    let nginx = Nginx::start();
    let out = weft(&[&nginx.https_url("/hello.txt")]);
    assert_eq!(out.status.code(), Some(35), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("weft: "), "{err}");
    assert!(err.contains("issuer"), "{err}");
    assert_eq!(err.lines().count(), 1);
    let out = weft(&["-k", &nginx.https_url("/hello.txt")]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello world\n");
}

#[test]
fn post_data_to_httpbin() {
    let httpbin = Httpbin::start();
    let out = weft(&["-d", "a=1&b=two", &httpbin.url("/post")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["form"]["a"], "1");
    assert_eq!(json["form"]["b"], "two");
    let out = weft(&[
        "-X",
        "PUT",
        "-H",
        "X-Custom: v1",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "raw",
        &httpbin.url("/put"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["data"], "raw");
    assert_eq!(json["headers"]["X-Custom"], "v1");
}

#[test]
fn dump_json_describes_the_exchange() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: done\r\n\r\n"),
        Step::WaitClose,
    ]]);
    let out = weft(&["--dump", "json", &srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"][0][0], "X-A");
    assert_eq!(v["headers"][0][1], "1");
    assert_eq!(v["trailers"][0][0], "X-T");
    assert_eq!(v["body_b64"], "YWJj");
    assert_eq!(v["complete"], true);
    assert_eq!(v["keep_alive"], true);
    assert!(v["error"].is_null());
}

#[test]
fn dump_json_reports_errors_and_exits_non_zero() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        Step::Close,
    ]]);
    let out = weft(&["--dump", "json", &srv.url("/")]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["complete"], false);
    assert_eq!(v["error"]["kind"], "protocol");
    assert!(v["error"]["message"].as_str().unwrap().contains("10"));
}

#[test]
fn close_delimited_body_is_not_an_error() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\n\r\nall of it"),
        Step::Close,
    ]]);
    let out = weft(&[&srv.url("/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"all of it");
}

#[test]
fn truncated_body_exits_18() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        Step::Close,
    ]]);
    let out = weft(&["-s", &srv.url("/")]);
    assert_eq!(out.status.code(), Some(18));
    assert_eq!(out.stdout, b"0123456789");
}

#[test]
fn connection_refused_exits_7() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = weft(&[&format!("http://{addr}/")]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
}

#[test]
fn max_time_exits_28() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Sleep(std::time::Duration::from_secs(3)),
    ]]);
    let out = weft(&["-m", "0.3", &srv.url("/")]);
    assert_eq!(out.status.code(), Some(28), "{}", stderr(&out));
}

#[test]
fn max_time_during_the_body_exits_28_with_what_arrived() {
    // The library's total limit covers the body too: the command has no timer of its own.
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        Step::Sleep(std::time::Duration::from_secs(3)),
    ]]);
    let started = std::time::Instant::now();
    let out = weft(&["-m", "0.3", &srv.url("/")]);
    assert_eq!(out.status.code(), Some(28), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert_eq!(out.stdout, b"0123456789");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn verbose_shows_both_heads_on_stderr() {
    let nginx = Nginx::start();
    let out = weft(&["-v", "-H", "X-Trace: 7", &nginx.http_url("/hello.txt")]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("> GET /hello.txt HTTP/1.1"), "{err}");
    assert!(err.contains("> X-Trace: 7"), "{err}");
    assert!(err.contains("< HTTP/1.1 200 OK"), "{err}");
    assert_eq!(out.stdout, b"hello world\n");
}

#[test]
fn bad_header_is_a_usage_error() {
    let out = weft(&["-H", "no colon here", "http://127.0.0.1:9/"]);
    assert!(!out.status.success());
    let out = weft(&["-H", "X-Evil: a\rb", "http://127.0.0.1:9/"]);
    assert!(!out.status.success());
}
