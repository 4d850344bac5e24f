//! Micro-benchmarks of the protocol core: head parsing, chunked decoding, request encoding and
//! one whole keep-alive exchange. Throughput is in bytes of wire data handled.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft::proto::{ClientConnection, Config, Event, Headers, RequestBody, RequestHead};

const SHORT_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// A head of roughly the size browsers see from a CDN (~700 bytes).
const BROWSER_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Sat, 21 Nov 2026 14:17:52 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 0\r\n\
Connection: keep-alive\r\n\
Cache-Control: public, max-age=0, must-revalidate\r\n\
ETag: \"5f3c-1a2b3c4d5e6f7a8b9c0d\"\r\n\
Last-Modified: Fri, 20 Nov 2026 09:00:00 GMT\r\n\
Server: cloudfront-like/1.0\r\n\
Strict-Transport-Security: max-age=63072000; includeSubDomains; preload\r\n\
Vary: Accept-Encoding, Origin\r\n\
X-Content-Type-Options: nosniff\r\n\
X-Frame-Options: SAMEORIGIN\r\n\
Referrer-Policy: strict-origin-when-cross-origin\r\n\
Content-Security-Policy: default-src 'self'; img-src 'self' data: https:; script-src 'self'\r\n\
Set-Cookie: session=abcdef0123456789; Path=/; Secure; HttpOnly; SameSite=Lax\r\n\
Age: 1234\r\n\
Via: 1.1 abcdef0123456789.cloudfront.test (CloudFront)\r\n\
X-Cache: Hit from cloudfront\r\n\
X-Amz-Cf-Pop: FRA56-P1\r\n\
X-Amz-Cf-Id: q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2v3b4n5m6==\r\n\
\r\n";

fn request(conn: &mut ClientConnection, headers: &Headers, out: &mut Vec<u8>) {
    let head = RequestHead {
        method: "GET",
        target: "/index.html?q=1",
        host: "example.test",
        headers,
    };
    conn.send_request(&head, RequestBody::None, out).unwrap();
}

/// Feeds `pieces` until `Complete`; returns body bytes seen.
fn drain(conn: &mut ClientConnection, pieces: &[&[u8]]) -> usize {
    let mut body = 0;
    for piece in pieces {
        let mut rest: &[u8] = piece;
        loop {
            let (n, ev) = conn.receive(rest).unwrap();
            rest = &rest[n..];
            match ev {
                Event::NeedMore => break,
                Event::Data(d) => body += d.len(),
                Event::Complete { .. } => return body,
                _ => {}
            }
        }
    }
    body
}

fn head_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("head");
    let headers = Headers::new();
    for (name, head) in [("short", SHORT_HEAD), ("browser_700b", BROWSER_HEAD)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        let mut conn = ClientConnection::new(Config::default());
        let mut out = Vec::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                request(&mut conn, &headers, &mut out);
                let (n, ev) = conn.receive(black_box(head)).unwrap();
                assert!(matches!(ev, Event::Head(_)));
                black_box(n);
                let (_, ev) = conn.receive(&[]).unwrap();
                assert!(matches!(ev, Event::Complete { .. }));
                conn.reset().unwrap();
            })
        });
    }
    // Baseline: httparse alone on the same heads, headers borrowed, nothing copied.
    for (name, head) in [
        ("httparse_short", SHORT_HEAD),
        ("httparse_browser_700b", BROWSER_HEAD),
    ] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut slots = [httparse::EMPTY_HEADER; 32];
                let mut resp = httparse::Response::new(&mut slots);
                let n = resp.parse(black_box(head)).unwrap();
                black_box((n, resp.code));
            })
        });
    }
    g.finish();
}

fn chunked_body(piece: usize) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let total = 1 << 20;
    let data = vec![b'x'; piece];
    let mut sent = 0;
    while sent < total {
        r.extend_from_slice(format!("{piece:x}\r\n").as_bytes());
        r.extend_from_slice(&data);
        r.extend_from_slice(b"\r\n");
        sent += piece;
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn chunked_decoding(c: &mut Criterion) {
    let headers = Headers::new();
    // 1 MiB in 16 KiB chunks, delivered in reads of 1 B, 1 KiB and 16 KiB.
    let mut g = c.benchmark_group("chunked_1mib_fed_in");
    g.sample_size(10);
    let resp = chunked_body(16 * 1024);
    g.throughput(Throughput::Bytes(resp.len() as u64));
    for (name, read) in [("1b", 1usize), ("1kib", 1024), ("16kib", 16 * 1024)] {
        let mut conn = ClientConnection::new(Config::default());
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = resp.chunks(read).collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                request(&mut conn, &headers, &mut out);
                let n = drain(&mut conn, black_box(&pieces));
                assert_eq!(n, 1 << 20);
                conn.reset().unwrap();
            })
        });
    }
    g.finish();
    // 1 MiB in chunks of 1 B, 1 KiB and 16 KiB, delivered in reads of 16 KiB.
    let mut g = c.benchmark_group("chunked_1mib_chunk_size");
    g.sample_size(10);
    for (name, chunk) in [("1b", 1usize), ("1kib", 1024), ("16kib", 16 * 1024)] {
        let resp = chunked_body(chunk);
        g.throughput(Throughput::Bytes(resp.len() as u64));
        let mut conn = ClientConnection::new(Config::default());
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = resp.chunks(16 * 1024).collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                request(&mut conn, &headers, &mut out);
                let n = drain(&mut conn, black_box(&pieces));
                assert_eq!(n, 1 << 20);
                conn.reset().unwrap();
            })
        });
    }
    g.finish();
}

fn request_encoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    let mut headers = Headers::new();
    headers.append("User-Agent", b"weft/0.1");
    headers.append("Accept", b"text/html,application/xhtml+xml,*/*;q=0.8");
    headers.append("Accept-Encoding", b"gzip, br");
    headers.append("Accept-Language", b"en-US,en;q=0.5");
    let mut out = Vec::with_capacity(512);
    let mut probe = ClientConnection::new(Config::default());
    request(&mut probe, &headers, &mut out);
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("get_4_headers", |b| {
        b.iter(|| {
            let mut conn = ClientConnection::new(Config::default());
            out.clear();
            request(&mut conn, black_box(&headers), &mut out);
            black_box(out.len());
        })
    });
    g.finish();
}

fn keep_alive_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("exchange");
    let headers = Headers::new();
    let mut resp =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n".to_vec();
    resp.extend_from_slice(b"Hello, world!");
    g.throughput(Throughput::Bytes(resp.len() as u64));
    let mut conn = ClientConnection::new(Config::default());
    let mut out = Vec::with_capacity(256);
    g.bench_function("keep_alive_get", |b| {
        b.iter(|| {
            out.clear();
            request(&mut conn, &headers, &mut out);
            let n = drain(&mut conn, &[black_box(&resp[..])]);
            assert_eq!(n, 13);
            conn.reset().unwrap();
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    head_parsing,
    chunked_decoding,
    request_encoding,
    keep_alive_exchange
);
criterion_main!(benches);
