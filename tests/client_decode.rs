//! ContentDecoderAgent against httpbin, nginx with `gzip on`, and scripted servers for
//! malformed, chained, split and oversized encoded bodies.
#![cfg(all(feature = "gzip", feature = "brotli", feature = "zstd"))]

mod support;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use support::servers::{Httpbin, Nginx, big_body};
use weft::client::{
    Agent, BodyCtx, BodyEnd, BodyHandle, BodyProtocol, Cause, ContentDecoderAgent, DecodeConfig,
    HttpAgent, Request,
};
use weft::reactor::{Ctx, Reactor};

// ---- encoders (test side) -----------------------------------------------------------------

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Text that compresses, but not to nothing.
fn sample(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut i = 0u32;
    while v.len() < n {
        v.extend_from_slice(
            format!("line {i} of the sample, {}\n", i.wrapping_mul(2654435761)).as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v
}

fn reply(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn serve_reply(bytes: Vec<u8>) -> ScriptedServer {
    ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(bytes),
        Step::WaitClose,
    ]])
}

// ---- driver -------------------------------------------------------------------------------

/// Runs one request through a fresh decoding agent; records the head and body.
fn run_with(config: DecodeConfig, request: Request) -> (Outcome, Option<u64>) {
    run_observed(config, request, || {})
}

/// [`run_with`], calling `each_turn` after every reactor turn.
fn run_observed(
    config: DecodeConfig,
    request: Request,
    mut each_turn: impl FnMut(),
) -> (Outcome, Option<u64>) {
    let mut reactor = Reactor::new().unwrap();
    let agent = ContentDecoderAgent::new(Agent::new(reactor.ctx(), test_config()), config);
    let slot: Slot = Rc::new(RefCell::new(Outcome::default()));
    let length = Rc::new(RefCell::new(None));
    let (s, l) = (slot.clone(), length.clone());
    agent.request(
        reactor.ctx(),
        request,
        Box::new(move |ctx, r| match r {
            Ok(resp) => {
                {
                    let mut o = s.borrow_mut();
                    o.status = Some(resp.code);
                    o.headers = resp.headers.clone();
                }
                *l.borrow_mut() = resp.length;
                resp.deliver_body(ctx, Recorder { out: s.clone() });
            }
            Err(e) => s.borrow_mut().result = Some(Err(e)),
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(20), || {
        each_turn();
        finished(&slot)
    });
    let out = slot.borrow().clone();
    (out, *length.borrow())
}

fn run(url: String) -> Outcome {
    run_with(DecodeConfig::default(), Request::get(&url)).0
}

fn cause(out: &Outcome) -> Cause {
    out.error()
        .unwrap_or_else(|| panic!("expected a failure, got {:?}", out.result))
        .cause()
        .clone()
}

// ---- real servers -------------------------------------------------------------------------

#[test]
fn httpbin_gzip_deflate_brotli() {
    let hb = Httpbin::start();
    for (path, flag) in [
        ("/gzip", "gzipped"),
        ("/deflate", "deflated"),
        ("/brotli", "brotli"),
    ] {
        let out = run(hb.url(path));
        assert!(out.is_done(), "{path}: {:?}", out.result);
        assert_eq!(out.status, Some(200));
        assert!(!out.headers.contains("content-encoding"), "{path}");
        assert!(!out.headers.contains("content-length"), "{path}");
        let json: serde_json::Value = serde_json::from_slice(&out.body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {:?}", String::from_utf8_lossy(&out.body)));
        assert_eq!(json[flag], serde_json::Value::Bool(true), "{path}: {json}");
        let offered = json["headers"]["Accept-Encoding"].as_str().unwrap();
        assert_eq!(offered, "gzip, deflate, br, zstd");
    }
}

#[test]
fn nginx_gzip_big_body_decodes_to_the_original() {
    let ng = Nginx::start_with(
        "gzip on; gzip_types application/octet-stream text/plain; gzip_min_length 0;",
    );
    // The server really compresses it.
    let plain = run_with(
        DecodeConfig {
            encodings: vec![],
            ..DecodeConfig::default()
        },
        Request::get(ng.http_url("/big.bin")).header("Accept-Encoding", "gzip"),
    )
    .0;
    assert_eq!(plain.headers.get("content-encoding"), Some(&b"gzip"[..]));
    assert_ne!(plain.body, big_body());

    let (out, length) = run_with(
        DecodeConfig::default(),
        Request::get(ng.http_url("/big.bin")),
    );
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(length, None);
    assert!(out.body == big_body(), "decoded {} bytes", out.body.len());
}

// ---- scripted: formats ----------------------------------------------------------------------

#[test]
fn multi_member_gzip_yields_all_members() {
    let mut body = gzip(b"first member, ");
    body.extend(gzip(b"second member, "));
    body.extend(gzip(&sample(100_000)));
    let srv = serve_reply(reply("gzip", &body));
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    let mut want = b"first member, second member, ".to_vec();
    want.extend(sample(100_000));
    assert!(out.body == want, "{} bytes", out.body.len());
}

#[test]
fn truncated_gzip_fails_with_decode() {
    let full = gzip(&sample(50_000));
    for cut in [full.len() - 4, full.len() / 2, 5] {
        let srv = serve_reply(reply("gzip", &full[..cut]));
        let out = run(srv.url("/"));
        assert!(
            matches!(cause(&out), Cause::Decode(_)),
            "cut {cut}: {:?}",
            out.result
        );
    }
}

#[test]
fn truncated_close_delimited_gzip_is_not_potential_data_loss() {
    let full = gzip(&sample(50_000));
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n".to_vec();
    bytes.extend_from_slice(&full[..full.len() - 3]);
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(bytes),
        Step::Close,
    ]]);
    let out = run(srv.url("/"));
    assert!(matches!(cause(&out), Cause::Decode(_)), "{:?}", out.result);
}

#[test]
fn gzip_with_bad_crc_fails() {
    let mut body = gzip(&sample(10_000));
    let n = body.len();
    body[n - 8] ^= 0xff;
    let srv = serve_reply(reply("gzip", &body));
    let out = run(srv.url("/"));
    match cause(&out) {
        Cause::Decode(msg) => assert!(msg.contains("CRC"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deflate_accepts_zlib_and_raw() {
    let data = sample(70_000);
    for body in [zlib(&data), raw_deflate(&data)] {
        let srv = serve_reply(reply("deflate", &body));
        let out = run(srv.url("/"));
        assert!(out.is_done(), "{:?}", out.result);
        assert!(out.body == data);
    }
}

#[test]
fn zstd_decodes() {
    let data = sample(200_000);
    let srv = serve_reply(reply("zstd", &zstd(&data)));
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert!(out.body == data);
}

#[test]
fn chained_gzip_then_br_is_undone_in_reverse() {
    let data = sample(80_000);
    let body = brotli(&gzip(&data));
    let srv = serve_reply(reply("gzip, br", &body));
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert!(out.body == data);
    assert!(!out.headers.contains("content-encoding"));

    // The same codings across two fields.
    let body = gzip(&zstd(&data));
    let mut bytes = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Encoding: identity, gzip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend(body);
    let srv = serve_reply(bytes);
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert!(out.body == data);
}

#[test]
fn six_codings_fail_in_one_line_and_across_lines() {
    let data = b"x".to_vec();
    let srv = serve_reply(reply("gzip, gzip, gzip, gzip, gzip, gzip", &data));
    let out = run(srv.url("/"));
    assert_eq!(cause(&out), Cause::TooManyContentEncodings);
    assert!(out.body.is_empty());

    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br, gzip\r\nContent-Encoding: br, gzip, br\r\nContent-Length: 1\r\n\r\nx".to_vec();
    let srv = serve_reply(std::mem::take(&mut bytes));
    let out = run(srv.url("/"));
    assert_eq!(cause(&out), Cause::TooManyContentEncodings);

    // Five are allowed.
    let mut body = b"five".to_vec();
    for _ in 0..5 {
        body = gzip(&body);
    }
    let srv = serve_reply(reply("gzip,gzip,gzip,gzip,gzip", &body));
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(out.body, b"five");
}

#[test]
fn unknown_coding_passes_through_with_its_header() {
    let srv = serve_reply(reply("compress", b"opaque bytes"));
    let (out, length) = run_with(DecodeConfig::default(), Request::get(srv.url("/")));
    assert!(out.is_done());
    assert_eq!(out.body, b"opaque bytes");
    assert_eq!(out.headers.get("content-encoding"), Some(&b"compress"[..]));
    assert_eq!(length, Some(12));

    // Supported codings applied after an unknown one are undone; the unknown one stays.
    let srv = serve_reply(reply("compress, gzip", &gzip(b"still compressed")));
    let out = run(srv.url("/"));
    assert!(out.is_done());
    assert_eq!(out.body, b"still compressed");
    assert_eq!(out.headers.get("content-encoding"), Some(&b"compress"[..]));
}

#[test]
fn accept_encoding_is_offered_unless_the_caller_set_one() {
    let script = vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Step::WaitClose,
    ];
    let srv = ScriptedServer::start(vec![script.clone(), script]);
    run(srv.url("/a"));
    run_with(
        DecodeConfig::default(),
        Request::get(srv.url("/b")).header("Accept-Encoding", "br"),
    );
    let reqs = srv.requests();
    let heads: Vec<String> = reqs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.1).into_owned())
        .collect();
    assert!(
        heads[0].contains("\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"),
        "{}",
        heads[0]
    );
    assert_eq!(
        heads[1].matches("Accept-Encoding").count(),
        1,
        "{}",
        heads[1]
    );
    assert!(heads[1].contains("\r\nAccept-Encoding: br\r\n"));
}

#[test]
fn head_and_304_pass_unchanged() {
    let srv = serve_reply(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1234\r\n\r\n".to_vec(),
    );
    let (out, _) = run_with(DecodeConfig::default(), Request::new("HEAD", srv.url("/")));
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(out.headers.get("content-encoding"), Some(&b"gzip"[..]));
    assert_eq!(out.headers.get("content-length"), Some(&b"1234"[..]));

    let srv = serve_reply(b"HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\n\r\n".to_vec());
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(out.headers.get("content-encoding"), Some(&b"gzip"[..]));
}

#[test]
fn trailers_pass_through_a_chunked_gzip_body() {
    let data = sample(30_000);
    let z = gzip(&data);
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in z.chunks(1000) {
        bytes.extend(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend(piece);
        bytes.extend(b"\r\n");
    }
    bytes.extend(b"0\r\nX-Check: yes\r\n\r\n");
    let srv = serve_reply(bytes);
    let out = run(srv.url("/"));
    assert!(out.is_done(), "{:?}", out.result);
    assert!(out.body == data);
    assert_eq!(out.trailers.get("x-check"), Some(&b"yes"[..]));
}

// ---- scripted: splits -----------------------------------------------------------------------

/// Writes `bytes` in pieces of 1..=max bytes (deterministic), with a short sleep now and then.
fn split_steps(bytes: &[u8], max: usize, seed: u64) -> Vec<Step> {
    let mut steps = vec![Step::ExpectRequest];
    let mut x = seed;
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (1 + (x % max as u64) as usize).min(bytes.len() - at);
        steps.push(Step::Write(bytes[at..at + len].to_vec()));
        n += 1;
        if n % 8 == 0 {
            steps.push(Step::Sleep(Duration::from_millis(1)));
        }
        at += len;
    }
    steps.push(Step::WaitClose);
    steps
}

#[test]
fn split_delivery_gives_identical_output() {
    let data = sample(20_000);
    let mut multi = gzip(&data[..7_000]);
    multi.extend(gzip(&data[7_000..]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", gzip(&data)),
        ("gzip", multi),
        ("deflate", zlib(&data)),
        ("deflate", raw_deflate(&data)),
        ("br", brotli(&data)),
        ("zstd", zstd(&data)),
        ("gzip, br", brotli(&gzip(&data))),
    ];
    for (i, (coding, body)) in cases.into_iter().enumerate() {
        // One byte per write for the head of the stream (headers, format detection), then
        // random pieces.
        let bytes = reply(coding, &body);
        let head_end = find(&bytes, b"\r\n\r\n").unwrap() + 4;
        let mut steps = vec![Step::ExpectRequest, Step::Write(bytes[..head_end].to_vec())];
        for b in &bytes[head_end..head_end + 40] {
            steps.push(Step::Write(vec![*b]));
            steps.push(Step::Sleep(Duration::from_millis(1)));
        }
        let rest = split_steps(&bytes[head_end + 40..], 64, 0x1234_5678 + i as u64);
        steps.extend(rest.into_iter().skip(1));
        let srv = ScriptedServer::start(vec![steps]);
        let out = run(srv.url("/"));
        assert!(out.is_done(), "{coding} #{i}: {:?}", out.result);
        assert!(out.body == data, "{coding} #{i}: {} bytes", out.body.len());
    }
}

// ---- scripted: bombs and flow control ------------------------------------------------------

/// 1 GiB of zeros as 64 gzip members of 16 MiB each (about 1 MiB compressed).
fn gzip_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 16 << 20]);
    member.repeat(64)
}

#[test]
fn bomb_is_capped_with_a_typed_error() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let srv = serve_reply(reply("gzip", &bomb));
    let cap = 10 << 20;
    // Uncapped, the decoder would produce 1 GiB; capped, the 10 MiB body is most of the growth.
    let rss = support::baseline::RssProbe::start();
    let (out, _) = run_observed(
        DecodeConfig {
            max_decoded_size: cap,
            ..DecodeConfig::default()
        },
        Request::get(srv.url("/")),
        || rss.sample(),
    );
    rss.assert_growth_below(64 << 20, "gzip bomb");
    assert_eq!(cause(&out), Cause::DecodedTooLarge(cap));
    assert!(out.body.len() as u64 <= cap);
    assert!(
        out.body.len() as u64 > cap - (64 << 10),
        "{}",
        out.body.len()
    );
    assert!(out.body.iter().all(|&b| b == 0));
}

/// Pauses after every piece and resumes from a timer; checks nothing arrives while paused.
/// Bytes received, calls, end.
type Seen = Rc<RefCell<(Vec<u8>, usize, Option<BodyEnd>)>>;

struct Pauser {
    out: Seen,
    paused: Rc<RefCell<bool>>,
    stop_after: Option<usize>,
}

impl BodyProtocol for Pauser {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        assert!(!*self.paused.borrow(), "data while paused");
        let mut o = self.out.borrow_mut();
        o.0.extend_from_slice(data);
        o.1 += 1;
        if self.stop_after.is_some_and(|n| o.1 >= n) {
            body.stop();
            return;
        }
        body.pause();
        *self.paused.borrow_mut() = true;
        let handle: BodyHandle = body.handle();
        let paused = self.paused.clone();
        body.ctx().call_later(Duration::from_millis(1), move |ctx| {
            *paused.borrow_mut() = false;
            handle.resume(ctx);
        });
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
        assert!(!*self.paused.borrow(), "end while paused");
        self.out.borrow_mut().2 = Some(reason);
    }
}

fn run_pauser(body: Vec<u8>, stop_after: Option<usize>) -> (Vec<u8>, usize, BodyEnd) {
    let srv = serve_reply(reply("gzip", &body));
    let mut reactor = Reactor::new().unwrap();
    let agent = ContentDecoderAgent::new(
        Agent::new(reactor.ctx(), test_config()),
        DecodeConfig::default(),
    );
    let out: Seen = Rc::new(RefCell::new((Vec::new(), 0, None)));
    let o = out.clone();
    agent.request(
        reactor.ctx(),
        Request::get(srv.url("/")),
        Box::new(move |ctx, r| {
            r.unwrap().deliver_body(
                ctx,
                Pauser {
                    out: o,
                    paused: Rc::new(RefCell::new(false)),
                    stop_after,
                },
            )
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(20), || {
        out.borrow().2.is_some()
    });
    let (data, calls, end) = out.borrow_mut().clone();
    (data, calls, end.unwrap())
}

#[test]
fn pause_and_resume_work_through_the_decoder() {
    // 4 MiB of zeros is about 4 KiB compressed: one network piece, 128 decoded pieces.
    let zeros = vec![0u8; 4 << 20];
    let (data, calls, end) = run_pauser(gzip(&zeros), None);
    assert!(end.is_done(), "{end:?}");
    assert!(data == zeros, "{} bytes", data.len());
    assert!(calls >= 128, "{calls}");
}

#[test]
fn stop_works_through_the_decoder() {
    let zeros = vec![0u8; 4 << 20];
    let (data, calls, end) = run_pauser(gzip(&zeros), Some(3));
    assert_eq!(calls, 3);
    assert!(data.len() <= 3 * 32 * 1024);
    match end {
        BodyEnd::Failed(e) => assert_eq!(e.cause(), &Cause::Cancelled),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_fails_with_decode_for_every_coding() {
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let srv = serve_reply(reply(
            coding,
            b"\xffthis is not compressed at all, not even close",
        ));
        let out = run(srv.url("/"));
        assert!(
            matches!(cause(&out), Cause::Decode(_)),
            "{coding}: {:?}",
            out.result
        );
    }
}
