//! Smoke tests of the test harness itself (tests/support/servers/): the real servers start, serve
//! what the harness documents, log connections, and speak TLS with the generated CA.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::servers::util::parse_response;
use support::servers::{Httpbin, Nginx, big_body, raw_get, raw_request};

fn start_nginx() -> Nginx {
    let t = Instant::now();
    let n = Nginx::start();
    eprintln!("nginx started in {:?}", t.elapsed());
    n
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn nginx_http_hello_and_access_log() {
    let n = start_nginx();
    let (status, headers, body) = raw_get(n.http_addr(), "/hello.txt");
    assert_eq!(status, 200);
    assert_eq!(body, b"hello world\n");
    assert_eq!(header(&headers, "content-length"), Some("12"));
    assert_eq!(header(&headers, "content-type"), Some("text/plain"));

    let log = n.wait_access_log(1);
    assert_eq!(log.len(), 1, "{log:?}");
    let e = &log[0];
    assert!(e.connection > 0, "{e:?}");
    assert_eq!(e.connection_requests, 1);
    assert_eq!(e.status, 200);
    assert_eq!(e.scheme, "http");
    assert_eq!(e.body_bytes_sent, 12);
    assert_eq!(e.request, "GET /hello.txt HTTP/1.1");
}

#[test]
fn nginx_locations() {
    let n = start_nginx();
    let a = n.http_addr();

    let (s, h, b) = raw_get(a, "/empty.txt");
    assert_eq!((s, b.len()), (200, 0));
    assert_eq!(header(&h, "content-length"), Some("0"));

    let (s, h, b) = raw_get(a, "/big.bin");
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-length"), Some("4194304"));
    assert!(b == big_body(), "big.bin differs");

    for (path, want) in [
        ("/chunked/hello.txt", &b"hello world\n"[..]),
        ("/chunked/big.bin", big_body()),
    ] {
        let (s, h, b) = raw_get(a, path);
        assert_eq!(s, 200, "{path}");
        assert_eq!(header(&h, "transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(header(&h, "content-length"), None, "{path}");
        assert!(b == want, "{path} body differs");
    }

    let body = "x".repeat(100_000);
    let req = format!(
        "POST /echo-post HTTP/1.1\r\nHost: {a}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_request(a, req.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), body);

    let req = format!(
        "POST /post-ok HTTP/1.1\r\nHost: {a}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde"
    );
    let r = raw_request(a, req.as_bytes()).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    let (s, h, b) = raw_get(a, "/no-content");
    assert_eq!((s, b.len()), (204, 0));
    assert_eq!(header(&h, "content-length"), None);

    let (s, h, _) = raw_get(a, "/redirect");
    assert_eq!(s, 301);
    assert_eq!(
        header(&h, "location"),
        Some(n.http_url("/hello.txt").as_str())
    );
    let (s, h, _) = raw_get(a, "/redirect-relative");
    assert_eq!((s, header(&h, "location")), (301, Some("/hello.txt")));
    let (s, _, _) = raw_get(a, "/found");
    assert_eq!(s, 302);

    let t = Instant::now();
    let (s, _, b) = raw_get(a, "/slow?s=0.3");
    assert_eq!((s, b.as_slice()), (200, &b"slow\n"[..]));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    let (s, _, _) = raw_get(a, "/nope");
    assert_eq!(s, 404);
}

/// Two requests on one connection show up with one `$connection` and requests 1, 2;
/// `/close` ends the connection even though the client asked for keep-alive.
#[test]
fn nginx_log_counts_connections() {
    let n = start_nginx();
    let a = n.http_addr();
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: {a}\r\n\r\nGET /empty.txt HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert_eq!(parse_response(&buf).unwrap().text(), "hello world\n");
    // nginx does a lingering close here (pipelined bytes were read) and logs the 2nd
    // request only once we close our end.
    drop(s);

    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET /close HTTP/1.1\r\nHost: {a}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap(); // EOF: the server closed
    let r = parse_response(&buf).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "closing\n");

    let log = n.wait_access_log(3);
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].connection, log[1].connection);
    assert_eq!(
        (log[0].connection_requests, log[1].connection_requests),
        (1, 2)
    );
    assert_ne!(log[2].connection, log[0].connection);
    assert_eq!(n.distinct_connections(), 2);
}

fn tls_get(n: &Nginx, server_name: &str, path: &str) -> Vec<u8> {
    let cfg = Arc::new(n.ca().client_config());
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = TcpStream::connect(n.https_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).unwrap();
    assert!(tls.conn.protocol_version().is_some());
    buf
}

#[test]
fn nginx_https_with_test_ca() {
    let n = start_nginx();
    for name in ["localhost", "127.0.0.1"] {
        let r = parse_response(&tls_get(&n, name, "/hello.txt")).unwrap();
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.text(), "hello world\n", "{name}");
    }
    let r = parse_response(&tls_get(&n, "localhost", "/big.bin")).unwrap();
    assert!(r.body == big_body());
    let log = n.wait_access_log(3);
    assert!(log.iter().all(|e| e.scheme == "https"), "{log:?}");
}

#[test]
fn nginx_https_rejects_unknown_ca() {
    let n = start_nginx();
    let cfg = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(n.https_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let err = tls.write_all(b"GET / HTTP/1.1\r\n\r\n").and_then(|_| {
        let mut b = Vec::new();
        tls.read_to_end(&mut b).map(|_| ())
    });
    let err = err.expect_err("handshake must fail without the test CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn httpbin_get_and_stream() {
    let t = Instant::now();
    let h = Httpbin::start();
    eprintln!("httpbin started in {:?}", t.elapsed());

    let (s, hd, b) = raw_get(h.addr(), "/get?a=1");
    assert_eq!(s, 200);
    assert_eq!(header(&hd, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["args"]["a"], "1");
    assert_eq!(v["url"], h.url("/get?a=1"));

    let (s, hd, b) = raw_get(h.addr(), "/stream/3");
    assert_eq!(s, 200);
    assert_eq!(header(&hd, "transfer-encoding"), Some("chunked"));
    let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    for l in lines {
        serde_json::from_slice::<serde_json::Value>(l).unwrap();
    }
}

/// Reads exactly one response with a Content-Length body from a kept-alive connection.
fn read_cl_response(s: &mut TcpStream) -> support::servers::RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "EOF before a complete response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(r) = parse_response(&buf)
            && r.header("content-length").is_some()
        {
            return r;
        }
    }
}

#[test]
fn nginx_keepalive_requests_limit() {
    let n = start_nginx();
    let a = n.http_addr();
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 1..=3 {
        let req = format!("GET /ka3/hello.txt HTTP/1.1\r\nHost: {a}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let r = read_cl_response(&mut s);
        assert_eq!(r.text(), "hello world\n");
        let conn = r.header("connection");
        assert_eq!(
            conn,
            Some(if i < 3 { "keep-alive" } else { "close" }),
            "{i}"
        );
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let log = n.wait_access_log(3);
    assert!(log.iter().all(|e| e.connection == log[0].connection));
}

#[test]
fn httpbin_keeps_alive() {
    let h = Httpbin::start();
    let a = h.addr();
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for path in ["/get", "/status/204", "/bytes/100"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {a}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let r = if path == "/status/204" {
            // No body and (with gunicorn) no Content-Length: the head is the response.
            let mut buf = [0u8; 4096];
            let k = s.read(&mut buf).unwrap();
            parse_response(&buf[..k]).unwrap()
        } else {
            read_cl_response(&mut s)
        };
        assert_ne!(r.header("connection"), Some("close"), "{path}");
        assert!(r.status == 200 || r.status == 204, "{path}: {}", r.status);
    }
}
