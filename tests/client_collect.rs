//! Collecting whole bodies (`HttpClient::fetch`, the blocking client): room reserved once from
//! `Content-Length`, the cap enforced whatever `Content-Length` claims, chunked bodies
//! gathered whole.

mod support;

use std::time::{Duration, Instant};

use support::scripted::{ScriptedServer, Step, test_config, write};
use support::servers::{Nginx, big_body, big_body_len};
use weft::blocking::Client;
use weft::client::{Cause, Phase};
use weft::proto::ProtocolError;

fn client(max_body: u64) -> Client {
    Client::builder()
        .agent_config(test_config())
        .max_body(max_body)
        .build_blocking()
        .unwrap()
}

/// A server answering the first request on one connection with `reply`, then holding the
/// connection open for `hold` (so that a client still waiting for body bytes would hang).
fn serve(reply: &[u8], hold: Duration) -> ScriptedServer {
    ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(reply),
        Step::Sleep(hold),
        Step::Close,
    ]])
}

/// A server sending ten body bytes under `Content-Length: declared`, then closing.
fn ten_bytes_then_close(declared: u64) -> ScriptedServer {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n0123456789");
    ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(head.as_bytes()),
        Step::Close,
    ]])
}

/// The error is the truncation of a body declared `declared` bytes long after its ten bytes.
fn assert_truncated(err: &weft::client::Error, declared: u64) {
    assert_eq!(
        err.cause(),
        &Cause::Protocol(ProtocolError::Incomplete {
            expected: Some(declared),
            received: 10
        }),
        "{err}"
    );
}

#[test]
fn declared_length_is_reserved_once_and_exactly() {
    let nginx = Nginx::start();
    let mut c = client(Client::DEFAULT_MAX_BODY);
    let r = c.get(&nginx.http_url("/big.bin")).unwrap();
    assert!(r.body == big_body(), "body differs");
    // One reservation of the declared length: no regrowth, no slack.
    assert_eq!(r.body.capacity(), big_body_len());
    assert_eq!(r.sizes.body_wire, big_body_len() as u64);
}

#[test]
fn declared_length_past_the_cap_fails_before_reading_the_body() {
    // 1 TiB declared, 10 bytes sent, and the connection held open: the cap (1000) is
    // refused from the head alone, without waiting for bytes that never come.
    let srv = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n0123456789",
        Duration::from_secs(8),
    );
    let mut c = client(1000);
    let start = Instant::now();
    let err = c.get(&srv.url("/huge")).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.cause(), &Cause::BodyTooLarge(1000), "{err}");
    assert_eq!(err.phase(), Phase::ResponseFailed);
    assert_eq!(err.url(), Some(srv.url("/huge").as_str()));
}

#[test]
fn declared_length_past_the_cap_fails_even_when_the_body_came_with_the_head() {
    // The whole (short) body arrives with the head: the declared length is still refused.
    let srv = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789",
        Duration::from_millis(500),
    );
    let err = client(10).get(&srv.url("/")).unwrap_err();
    assert_eq!(err.cause(), &Cause::BodyTooLarge(10), "{err}");
    assert_eq!(err.url(), Some(srv.url("/").as_str()));
}

#[test]
fn huge_declared_length_within_a_huge_cap_is_not_an_abort() {
    // A cap of "anything": 1 TiB declared is within it, but reserving it may be refused by
    // the allocator. The body grows as bytes arrive, and the truncation is a typed error.
    let srv = ten_bytes_then_close(1 << 40);
    let err = client(u64::MAX).get(&srv.url("/")).unwrap_err();
    assert_truncated(&err, 1 << 40);
    assert_eq!(err.phase(), Phase::ResponseFailed);
}

#[test]
fn declared_length_shorter_than_sent_keeps_only_the_declared_bytes() {
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES"),
            Step::Sleep(Duration::from_millis(300)),
            Step::Close,
        ],
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Step::WaitClose,
        ],
    ]);
    let mut c = client(1000);
    let r = c.get(&srv.url("/")).unwrap();
    assert_eq!(r.body, b"hello");
    assert_eq!(r.body.capacity(), 5);
    assert!(r.complete);
    // The bytes past the declared length never reach the next response.
    let r = c.get(&srv.url("/next")).unwrap();
    assert_eq!(r.body, b"ok");
}

#[test]
fn declared_length_longer_than_sent_is_a_truncation() {
    let srv = ten_bytes_then_close(100);
    let err = client(1000).get(&srv.url("/")).unwrap_err();
    assert_truncated(&err, 100);
}

/// A chunked body of `chunks` chunks of 1000 bytes each (chunk `i` filled with `b'a' + i % 26`),
/// with a trailer, and the body it decodes to.
fn chunked(chunks: usize) -> (Vec<u8>, Vec<u8>) {
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut body = Vec::new();
    for i in 0..chunks {
        let data = vec![b'a' + (i % 26) as u8; 1000];
        wire.extend_from_slice(format!("{:x};ext=1\r\n", data.len()).as_bytes());
        wire.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
    }
    wire.extend_from_slice(b"0\r\nX-Sum: 42\r\n\r\n");
    (wire, body)
}

#[test]
fn chunked_body_in_pieces_is_collected_whole_with_its_trailers() {
    let (wire, body) = chunked(50);
    // Cuts inside sizes, data and CRLFs, so chunks straddle reads.
    let cuts: Vec<usize> = (1..40).map(|i| i * 1237 % wire.len()).collect();
    let mut cuts = cuts;
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c > 0);
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::WriteSplit(wire, cuts),
        Step::WaitClose,
    ]]);
    let r = client(1 << 20).get(&srv.url("/")).unwrap();
    assert!(r.body == body, "chunked body differs");
    assert_eq!(r.trailers.get_str("x-sum"), Some("42"));
    assert!(r.complete);
    assert_eq!(r.sizes.body_wire, body.len() as u64);
}

#[test]
fn chunked_body_past_the_cap_fails_at_the_cap() {
    let (wire, _) = chunked(50);
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&wire),
        Step::WaitClose,
    ]]);
    let err = client(10_000).get(&srv.url("/")).unwrap_err();
    assert_eq!(err.cause(), &Cause::BodyTooLarge(10_000), "{err}");
    assert_eq!(err.url(), Some(srv.url("/").as_str()));
}

#[test]
fn fetch_into_reuses_a_large_enough_buffer_and_clears_it() {
    let nginx = Nginx::start();
    let mut c = client(Client::DEFAULT_MAX_BODY);
    let stale = vec![b'x'; big_body_len() + 1000];
    let (ptr, cap) = (stale.as_ptr(), stale.capacity());
    let builder = c.request("GET", &nginx.http_url("/big.bin"));
    let r = c.fetch_into(builder, stale).unwrap();
    assert!(r.body == big_body(), "body differs (stale bytes kept?)");
    assert_eq!(
        (r.body.as_ptr(), r.body.capacity()),
        (ptr, cap),
        "same allocation"
    );
    // Handed back again, for a short body: the same memory, the old body gone.
    let builder = c.request("GET", &nginx.http_url("/hello.txt"));
    let r = c.fetch_into(builder, r.body).unwrap();
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.body.as_ptr(), ptr);
}

#[test]
fn fetch_into_grows_a_small_buffer_once_to_the_declared_length() {
    let nginx = Nginx::start();
    let mut c = client(Client::DEFAULT_MAX_BODY);
    let builder = c.request("GET", &nginx.http_url("/big.bin"));
    let r = c.fetch_into(builder, b"stale".to_vec()).unwrap();
    assert!(r.body == big_body(), "body differs");
    assert_eq!(r.body.capacity(), big_body_len());
}

#[test]
fn fetch_into_still_refuses_a_declared_length_past_the_cap() {
    let srv = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n0123456789",
        Duration::from_secs(8),
    );
    let mut c = client(1000);
    let start = Instant::now();
    let builder = c.request("GET", &srv.url("/"));
    let err = c
        .fetch_into(builder, Vec::with_capacity(10_000))
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.cause(), &Cause::BodyTooLarge(1000), "{err}");
}

/// A reused buffer full of stale bytes, with room for ten times the bodies below.
fn stale_buffer() -> Vec<u8> {
    vec![b'x'; 10_000]
}

#[test]
fn fetch_into_a_truncated_body_fails_without_the_stale_bytes_counting() {
    let srv = ten_bytes_then_close(100);
    let mut c = client(1000);
    let builder = c.request("GET", &srv.url("/"));
    let err = c.fetch_into(builder, stale_buffer()).unwrap_err();
    assert_truncated(&err, 100);
}

#[test]
fn fetch_into_keeps_only_the_declared_bytes_of_a_longer_body() {
    let srv = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES",
        Duration::from_millis(300),
    );
    let mut c = client(1000);
    let buffer = stale_buffer();
    let ptr = buffer.as_ptr();
    let builder = c.request("GET", &srv.url("/"));
    let r = c.fetch_into(builder, buffer).unwrap();
    assert_eq!(r.body, b"hello");
    assert!(r.complete);
    assert_eq!(r.body.as_ptr(), ptr, "same allocation");
}

#[test]
fn fetch_into_a_close_delimited_body_holds_only_its_bytes() {
    let srv = serve(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc",
        Duration::ZERO,
    );
    let mut c = client(1000);
    let builder = c.request("GET", &srv.url("/"));
    let r = c.fetch_into(builder, stale_buffer()).unwrap();
    assert_eq!(r.body, b"abc");
    assert!(!r.complete, "a close-delimited body may be truncated");
    assert_eq!(r.sizes.body_wire, 3);
}

#[test]
fn fetch_into_a_roomy_buffer_does_not_lift_the_cap() {
    // No declared length: the cap (1000) is met only as the bytes arrive, while the buffer
    // handed in has room for 10,000; the connection is held open past the body.
    let mut reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    reply.extend_from_slice(&[b'y'; 2000]);
    let srv = serve(&reply, Duration::from_secs(8));
    let mut c = client(1000);
    let start = Instant::now();
    let builder = c.request("GET", &srv.url("/"));
    let err = c.fetch_into(builder, stale_buffer()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.cause(), &Cause::BodyTooLarge(1000), "{err}");
    assert_eq!(err.url(), Some(srv.url("/").as_str()));
}
