//! Response framing cases (docs/http-support.md, reliability checklist §1.1 to §1.6), each run
//! whole, byte by byte and at random split points.

mod support;

use support::proto::{Ev, Outcome, connection, drive, run, run_with};
use weft::proto::{
    ClientConnection, Config, Event, Framing, Headers, ProtocolError, RequestBody, RequestHead,
    Version,
};

/// Asserts a successful response: status, body, and the Complete flags.
fn assert_ok(out: &Outcome, status: u16, body: &[u8], keep_alive: bool, close_delimited: bool) {
    assert_eq!(out.error, None, "{out:?}");
    assert_eq!(out.status(), Some(status), "{out:?}");
    assert_eq!(out.body(), body, "{out:?}");
    assert_eq!(
        out.complete(),
        Some((keep_alive, close_delimited)),
        "{out:?}"
    );
    assert_eq!(out.reusable, keep_alive, "{out:?}");
}

/// Asserts a failure with `err` and no body bytes.
fn assert_err(out: &Outcome, err: ProtocolError) {
    assert_eq!(out.error, Some(err), "{out:?}");
    assert!(out.complete().is_none(), "{out:?}");
    assert!(!out.reusable);
}

fn get(resp: &[u8]) -> Outcome {
    run("GET", resp, false)
}

fn get_eof(resp: &[u8]) -> Outcome {
    run("GET", resp, true)
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(body);
    r
}

// ---- Content-Length -------------------------------------------------------------------------

#[test]
fn content_length_body() {
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_ok(&out, 200, b"hello", true, false);
    assert_eq!(out.framing, Some(Framing::Length(5)));
}

#[test]
fn content_length_zero_completes_without_input() {
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_ok(&out, 200, b"", true, false);
}

#[test]
fn content_length_identical_list_and_lines() {
    for resp in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello",
    ] {
        assert_ok(&get(resp), 200, b"hello", true, false);
    }
}

#[test]
fn content_length_invalid_values() {
    for value in [
        &b"+5"[..],
        b"-6",
        b"crap",
        b"0x5",
        b"5 5",
        b"",
        b"36893488147419103232",
        b"1_0",
        b"5, 6",
        b"5,",
    ] {
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: ".to_vec();
        resp.extend_from_slice(value);
        resp.extend_from_slice(b"\r\n\r\nhello");
        let out = get(&resp);
        assert_err(&out, ProtocolError::InvalidContentLength);
        assert!(out.events.is_empty(), "{value:?}: {out:?}");
    }
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    assert_err(&out, ProtocolError::InvalidContentLength);
    assert!(out.body().is_empty());
}

#[test]
fn content_length_truncated_then_eof() {
    let out = get_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_eq!(
        out.error,
        Some(ProtocolError::Incomplete {
            expected: Some(100),
            received: 10
        })
    );
    assert_eq!(out.body(), b"0123456789");
    assert!(out.complete().is_none());
    assert!(!out.reusable);
}

#[test]
fn content_length_extra_response_is_unsolicited() {
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil");
    assert_eq!(out.body(), b"ok");
    assert_eq!(out.complete(), Some((true, false)));
    assert_eq!(out.error, Some(ProtocolError::UnsolicitedData));
    assert!(!out.reusable);
}

// ---- Close-delimited ------------------------------------------------------------------------

#[test]
fn close_delimited_until_eof() {
    let out = get_eof(b"HTTP/1.1 200 OK\r\n\r\nhello");
    assert_ok(&out, 200, b"hello", false, true);
    assert_eq!(out.framing, Some(Framing::CloseDelimited));
    // Without EOF the response is not complete.
    let out = get(b"HTTP/1.1 200 OK\r\n\r\nhello");
    assert_eq!(out.complete(), None);
    assert_eq!(out.body(), b"hello");
}

// ---- Chunked --------------------------------------------------------------------------------

#[test]
fn chunked_basic() {
    let out = get(&chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    assert_ok(&out, 200, b"hello world", true, false);
    assert_eq!(out.framing, Some(Framing::Chunked));
}

#[test]
fn chunked_extensions_uppercase_and_leading_zeros() {
    // Extensions (with BWS and quoted values) are ignored; C14 upper-case hex; C15 20 digits.
    let out = get(&chunked(
        b"5;name=value;q=\"x y\"\r\nhello\r\n5 ;a\r\n worl\r\nA\r\nhelloworld\r\n00000000000000000005\r\nabcde\r\n000;end\r\n\r\n",
    ));
    assert_ok(&out, 200, b"hello worlhelloworldabcde", true, false);
}

#[test]
fn chunked_trailers_kept_separate() {
    // T1: trailer fields never touch the head or the framing.
    let out = get(&chunked(
        b"3\r\nabc\r\n0\r\nContent-Length: 999\r\nSet-Cookie: s=1\r\nX-Checksum: abc\r\n\r\n",
    ));
    assert_ok(&out, 200, b"abc", true, false);
    let trailers = out
        .events
        .iter()
        .find_map(|e| match e {
            Ev::Trailers(t) => Some(t.clone()),
            _ => None,
        })
        .expect("trailers event");
    assert_eq!(trailers.len(), 3);
    assert_eq!(trailers[0], ("Content-Length".to_owned(), b"999".to_vec()));
    assert_eq!(trailers[2], ("X-Checksum".to_owned(), b"abc".to_vec()));
    // The Trailers event comes right before Complete.
    let n = out.events.len();
    assert!(matches!(out.events[n - 2], Ev::Trailers(_)));
    match &out.events[0] {
        Ev::Head(_, _, h) => assert_eq!(h.len(), 1),
        e => panic!("{e:?}"),
    }
}

#[test]
fn chunked_no_trailers_event_when_empty() {
    let out = get(&chunked(b"1\r\na\r\n0\r\n\r\n"));
    assert!(!out.events.iter().any(|e| matches!(e, Ev::Trailers(_))));
}

#[test]
fn chunked_c1_empty_size_line() {
    assert_err(&get(&chunked(b"\r\n\r\n")), ProtocolError::InvalidChunkSize);
    assert_err(
        &get(&chunked(b";x\r\n\r\n")),
        ProtocolError::InvalidChunkSize,
    );
}

#[test]
fn chunked_c2_bad_size_syntax() {
    for body in [
        &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-2\r\nhi\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"5_0\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"g\r\n",
    ] {
        assert_err(&get(&chunked(body)), ProtocolError::InvalidChunkSize);
    }
}

#[test]
fn chunked_c3_overflow() {
    assert_err(
        &get(&chunked(b"10000000000000000\r\nx")),
        ProtocolError::InvalidChunkSize,
    );
    assert_err(
        &get(&chunked(b"12345678123456789\r\nx")),
        ProtocolError::InvalidChunkSize,
    );
}

#[test]
fn chunked_c4_huge_size_streams_then_incomplete() {
    let out = get_eof(&chunked(b"ffffffffffffffff\r\nabc"));
    assert_eq!(out.body(), b"abc");
    assert_eq!(
        out.error,
        Some(ProtocolError::Incomplete {
            expected: None,
            received: 3
        })
    );
}

#[test]
fn chunked_c5_missing_data_crlf() {
    let out = get(&chunked(b"5\r\nhelloXX0\r\n\r\n"));
    assert_eq!(out.error, Some(ProtocolError::MissingChunkDataCrlf));
    assert_eq!(out.body(), b"hello");
    let out = get(&chunked(b"5\r\nhello\rX0\r\n\r\n"));
    assert_eq!(out.error, Some(ProtocolError::MissingChunkDataCrlf));
    let out = get(&chunked(b"5\r\nhello\n0\r\n\r\n"));
    assert_eq!(out.error, Some(ProtocolError::MissingChunkDataCrlf));
}

#[test]
fn chunked_c6_c7_bare_lf_and_cr() {
    assert_err(
        &get(&chunked(b"5\nhello\r\n0\r\n\r\n")),
        ProtocolError::InvalidChunkSize,
    );
    assert_err(
        &get(&chunked(b"5\rXhello\r\n0\r\n\r\n")),
        ProtocolError::InvalidChunkSize,
    );
    assert_err(
        &get(&chunked(b"5\r\nhello\r\n0\n\r\n")),
        ProtocolError::InvalidChunkSize,
    );
}

#[test]
fn chunked_c8_ctl_in_extension() {
    for body in [
        &b"5;a\nb\r\nhello\r\n0\r\n\r\n"[..],
        b"5;\x00ext\r\nhello\r\n0\r\n\r\n",
        b"5;a\x7f\r\nhello\r\n0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    ] {
        let out = get(&chunked(body));
        assert!(
            matches!(
                out.error,
                Some(ProtocolError::InvalidChunkExtension | ProtocolError::InvalidChunkSize)
            ),
            "{body:?}: {out:?}"
        );
        assert!(out.body().is_empty());
    }
    // HTAB is allowed.
    assert_ok(
        &get(&chunked(b"5;a=\tb\r\nhello\r\n0\r\n\r\n")),
        200,
        b"hello",
        true,
        false,
    );
}

#[test]
fn chunked_c9_extension_cap() {
    let config = Config {
        max_chunk_ext_bytes: 1024,
        ..Config::default()
    };
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"1;");
        body.extend_from_slice(&[b'a'; 400]);
        body.extend_from_slice(b"\r\nx\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let out = run_with("GET", config, &chunked(&body), false);
    assert_eq!(out.error, Some(ProtocolError::ChunkExtensionTooLong));
    assert_eq!(out.body(), b"xx");
    // A single 1 MiB extension with the default cap.
    let mut body = b"1;".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1 << 20));
    body.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    let out = drive(
        &mut connection("GET", Config::default()),
        &[&chunked(&body)],
        false,
    );
    assert_eq!(out.error, Some(ProtocolError::ChunkExtensionTooLong));
}

#[test]
fn chunked_c10_parameters_on_chunked() {
    let out = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;foo=bar\r\n\r\n0\r\n\r\n");
    assert_err(&out, ProtocolError::UnsupportedTransferCoding);
    let out = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n");
    assert_err(&out, ProtocolError::UnsupportedTransferCoding);
    let out =
        get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_err(&out, ProtocolError::UnsupportedTransferCoding);
}

#[test]
fn chunked_c11_truncated() {
    let mut body = b"41\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 64]);
    let out = get_eof(&chunked(&body));
    assert_eq!(
        out.error,
        Some(ProtocolError::Incomplete {
            expected: None,
            received: 64
        })
    );
    // Truncated before the last chunk and inside a size line.
    let out = get_eof(&chunked(b"5\r\nhello\r\n"));
    assert!(matches!(out.error, Some(ProtocolError::Incomplete { .. })));
    let out = get_eof(&chunked(b"5\r\nhello\r\n1"));
    assert!(matches!(out.error, Some(ProtocolError::Incomplete { .. })));
}

#[test]
fn chunked_c12_eof_after_last_chunk() {
    let out = get_eof(&chunked(b"5\r\nhello\r\n0\r\n"));
    assert_ok(&out, 200, b"hello", false, false);
    // Even inside the trailer section.
    let out = get_eof(&chunked(b"5\r\nhello\r\n0\r\nX: y\r\n"));
    assert_ok(&out, 200, b"hello", false, false);
}

#[test]
fn chunked_c13_a_million_tiny_chunks() {
    let n = 1_000_000;
    let mut body = Vec::with_capacity(n * 6 + 5);
    for _ in 0..n {
        body.extend_from_slice(b"1\r\na\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let resp = chunked(&body);
    let out = run("GET", &resp, false);
    assert_eq!(out.error, None);
    assert_eq!(out.body().len(), n);
    assert_eq!(out.complete(), Some((true, false)));
}

#[test]
fn chunked_trailer_errors() {
    // T2: endless trailers hit the byte cap.
    let config = Config {
        max_trailer_size: 256,
        ..Config::default()
    };
    let mut body = b"0\r\n".to_vec();
    for _ in 0..100 {
        body.extend_from_slice(b"X: y\r\n");
    }
    let out = run_with("GET", config, &chunked(&body), false);
    assert_err(&out, ProtocolError::TrailersTooLarge);
    // More trailer fields than `max_headers`, within the byte cap.
    let config = Config {
        max_headers: 4,
        ..Config::default()
    };
    let out = run_with(
        "GET",
        config,
        &chunked(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"),
        false,
    );
    assert_err(&out, ProtocolError::TrailersTooLarge);
    // T3: NUL in a value, obs-fold, bare LF, no colon.
    for t in [
        &b"X: a\x00b\r\n\r\n"[..],
        b"X: a\r\n b\r\n\r\n",
        b"X: a\n\r\n",
        b"X: a\r\n\n",
        b"nocolon\r\n\r\n",
    ] {
        let mut body = b"0\r\n".to_vec();
        body.extend_from_slice(t);
        assert_err(&get(&chunked(&body)), ProtocolError::InvalidTrailers);
    }
}

// ---- Statuses and methods without a body ----------------------------------------------------

#[test]
fn head_with_content_length() {
    let out = run(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        false,
    );
    assert_ok(&out, 200, b"", true, false);
    assert_eq!(out.framing, Some(Framing::NoBody));
}

#[test]
fn head_with_stray_bytes_is_unsolicited() {
    let out = run(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n-foo-\n",
        false,
    );
    assert_eq!(out.complete(), Some((true, false)));
    assert!(out.body().is_empty());
    assert_eq!(out.error, Some(ProtocolError::UnsolicitedData));
}

#[test]
fn no_content_statuses() {
    let out = get(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_ok(&out, 204, b"", true, false);
    let out = get(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 677777\r\n\r\n");
    assert_ok(&out, 304, b"", true, false);
    let out = get(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(out.complete(), Some((true, false)));
    assert_eq!(out.error, Some(ProtocolError::UnsolicitedData));
}

#[test]
fn interim_responses_then_final() {
    let out = get(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_ok(&out, 200, b"ok", true, false);
    assert_eq!(
        out.events[..3],
        [Ev::Info(100), Ev::Info(102), Ev::Info(103)]
    );
}

#[test]
fn interim_response_with_body_bytes_is_rejected() {
    let out = get(b"HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(out.events, [Ev::Info(100)]);
    assert_eq!(out.error, Some(ProtocolError::InvalidStatusLine));
}

#[test]
fn too_many_interim_responses() {
    let config = Config {
        max_interim_responses: 3,
        ..Config::default()
    };
    let mut resp = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(3);
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_ok(
        &run_with("GET", config.clone(), &resp, false),
        200,
        b"",
        true,
        false,
    );
    let resp = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(4);
    let out = run_with("GET", config, &resp, false);
    assert_eq!(out.error, Some(ProtocolError::TooManyInformational));
    assert_eq!(out.events.len(), 3);
}

#[test]
fn unexpected_switching_protocols() {
    let out = get(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_err(&out, ProtocolError::UnexpectedSwitchingProtocols);
}

#[test]
fn expected_switching_protocols() {
    let mut conn = ClientConnection::new(Config::default());
    let mut h = Headers::new();
    h.append("Connection", b"upgrade");
    h.append("Upgrade", b"websocket");
    let head = RequestHead {
        method: "GET",
        target: "/ws",
        host: "example.test",
        headers: &h,
    };
    conn.send_request(&head, RequestBody::None, &mut Vec::new())
        .unwrap();
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
    let (n, ev) = conn.receive(resp).unwrap();
    assert!(matches!(ev, Event::Head(ref h) if h.status == 101));
    assert_eq!(&resp[n..], b"\x81\x00");
    assert_eq!(conn.framing(), Some(Framing::NoBody));
    let (_, ev) = conn.receive(b"").unwrap();
    assert_eq!(
        ev,
        Event::Complete {
            keep_alive: false,
            close_delimited: false
        }
    );
}

// ---- Transfer-Encoding policies -------------------------------------------------------------

#[test]
fn te_and_cl_decode_chunked_and_close() {
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_ok(&out, 200, b"hello", false, false);
    assert_eq!(out.framing, Some(Framing::Chunked));
    // The Content-Length beside Transfer-Encoding is not used, so not validated either.
    let out = get(b"HTTP/1.1 200 OK\r\nContent-Length: crap\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_ok(&out, 200, b"hello", false, false);
}

#[test]
fn te_case_insensitive_and_lists() {
    // Row 4: `chunked` matches in any case; empty list members are ignored.
    let out = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_ok(&out, 200, b"ok", true, false);
    let out = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_ok(&out, 200, b"ok", true, false);
    // Row 4, policy: `gzip, chunked` is refused rather than handing out gzip bytes as the body.
    for te in [&b"gzip, chunked"[..], b"gzip\r\nTransfer-Encoding: chunked"] {
        let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ".to_vec();
        resp.extend_from_slice(te);
        resp.extend_from_slice(b"\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        assert_err(&get(&resp), ProtocolError::UnsupportedTransferCoding);
    }
}

#[test]
fn te_gzip_is_refused() {
    // Row 5, policy: a coding list without a final `chunked` is refused at the head, instead
    // of reading until close and delivering still-coded bytes.
    let out = get_eof(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00");
    assert_err(&out, ProtocolError::UnsupportedTransferCoding);
    assert!(out.events.is_empty());
    let out = get_eof(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello");
    assert_err(&out, ProtocolError::UnsupportedTransferCoding);
    assert!(out.events.is_empty());
}

#[test]
fn http10_with_transfer_encoding_is_not_reused() {
    let out = get(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_ok(&out, 200, b"ok", false, false);
}

// ---- Persistence ----------------------------------------------------------------------------

#[test]
fn http10_keep_alive_rules() {
    let out = get(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_ok(&out, 200, b"ok", false, false);
    match &out.events[0] {
        Ev::Head(v, _, _) => assert_eq!(*v, Version::Http10),
        e => panic!("{e:?}"),
    }
    let out = get(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok");
    assert_ok(&out, 200, b"ok", true, false);
}

#[test]
fn connection_close_variants() {
    for conn in [
        &b"Connection: close\r\n"[..],
        b"Connection: CLOSE\r\n",
        b"Connection: keep-alive, close\r\n",
        b"Connection: keep-alive\r\nConnection: close\r\n",
    ] {
        let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
        resp.extend_from_slice(conn);
        resp.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        assert_ok(&get(&resp), 200, b"ok", false, false);
    }
    // `closed` is not `close`.
    let out = get(b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 2\r\n\r\nok");
    assert_ok(&out, 200, b"ok", true, false);
}

#[test]
fn request_connection_close_is_not_reused() {
    let mut conn = ClientConnection::new(Config::default());
    let mut h = Headers::new();
    h.append("Connection", b"close");
    let head = RequestHead {
        method: "GET",
        target: "/",
        host: "h",
        headers: &h,
    };
    conn.send_request(&head, RequestBody::None, &mut Vec::new())
        .unwrap();
    let out = drive(
        &mut conn,
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        false,
    );
    assert_ok(&out, 200, b"ok", false, false);
}

#[test]
fn keep_alive_pair_on_one_connection() {
    let mut conn = connection("GET", Config::default());
    let first = drive(
        &mut conn,
        &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"],
        false,
    );
    assert_ok(&first, 200, b"one", true, false);
    assert_eq!(conn.reset(), Ok(()));
    assert!(!conn.response_started());
    assert_eq!(conn.framing(), None);
    let mut out = Vec::new();
    let h = Headers::new();
    let head = RequestHead {
        method: "GET",
        target: "/2",
        host: "example.test",
        headers: &h,
    };
    conn.send_request(&head, RequestBody::None, &mut out)
        .unwrap();
    assert_eq!(out, b"GET /2 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let second = drive(
        &mut conn,
        &[b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo"],
        false,
    );
    assert_ok(&second, 404, b"two", true, false);
    assert_eq!(conn.body_received(), 3);
    assert_eq!(conn.reset(), Ok(()));
}

#[test]
fn reset_only_when_reusable() {
    let mut conn = connection("GET", Config::default());
    assert_eq!(conn.reset(), Err(weft::proto::RequestError::WrongState));
    let out = drive(
        &mut conn,
        &[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
        false,
    );
    assert_eq!(out.complete(), Some((false, false)));
    assert_eq!(conn.reset(), Err(weft::proto::RequestError::WrongState));
    // A keep-alive connection the peer then closed is not reusable either.
    let mut conn = connection("GET", Config::default());
    drive(
        &mut conn,
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
        false,
    );
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(Event::NeedMore));
    assert!(!conn.is_reusable());
    assert_eq!(conn.reset(), Err(weft::proto::RequestError::WrongState));
}

#[test]
fn bytes_with_no_request_outstanding_are_unsolicited() {
    let mut conn = ClientConnection::new(Config::default());
    assert_eq!(conn.receive(b""), Ok((0, Event::NeedMore)));
    assert_eq!(
        conn.receive(b"HTTP/1.1 408 Request Timeout\r\n\r\n"),
        Err(ProtocolError::UnsolicitedData)
    );
}

// ---- Heads ----------------------------------------------------------------------------------

#[test]
fn head_consumes_only_its_own_bytes() {
    let mut conn = connection("GET", Config::default());
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
    let (n, ev) = conn.receive(resp).unwrap();
    assert!(matches!(ev, Event::Head(_)));
    assert_eq!(&resp[n..], b"body");
    // Split inside the head: the first piece is buffered whole, the second only up to the end.
    let mut conn = connection("GET", Config::default());
    assert_eq!(conn.receive(&resp[..20]), Ok((20, Event::NeedMore)));
    assert!(conn.response_started());
    let (n, ev) = conn.receive(&resp[20..]).unwrap();
    assert!(matches!(ev, Event::Head(_)));
    assert_eq!(&resp[20 + n..], b"body");
}

#[test]
fn eof_before_and_inside_head() {
    let mut conn = connection("GET", Config::default());
    assert!(!conn.response_started());
    assert_eq!(conn.receive_eof(), Err(ProtocolError::IncompleteHead));
    assert!(!conn.response_started());
    let out = get_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n");
    assert_err(&out, ProtocolError::IncompleteHead);
}

#[test]
fn bare_lf_and_leading_blank_lines_in_head() {
    let out = get(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
    assert_ok(&out, 200, b"ok", true, false);
    let out = get(b"\r\n\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_ok(&out, 200, b"ok", true, false);
    let out = get(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
    assert_ok(&out, 200, b"", true, false);
}

#[test]
fn leading_blank_lines_count_toward_the_head_cap() {
    let config = Config {
        max_head_size: 64,
        ..Config::default()
    };
    let mut resp = b"\r\n".repeat(40);
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_err(
        &run_with("GET", config, &resp, false),
        ProtocolError::HeadTooLarge,
    );
}

#[test]
fn reason_phrase_is_reported_not_interpreted() {
    for (line, reason) in [
        (&b"HTTP/1.1 200 OK"[..], "OK"),
        (b"HTTP/1.1 404 Fine Anyway", "Fine Anyway"),
        (b"HTTP/1.1 200", ""),
        // Not UTF-8: reported as empty, never an error.
        (b"HTTP/1.1 200 \xffOK\x80", ""),
    ] {
        let mut resp = line.to_vec();
        resp.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let mut conn = connection("GET", Config::default());
        match conn.receive(&resp) {
            Ok((_, Event::Head(h))) => assert_eq!(h.reason, reason, "{line:?}"),
            other => panic!("{line:?}: {other:?}"),
        }
    }
}

#[test]
fn head_too_large() {
    let config = Config {
        max_head_size: 64,
        ..Config::default()
    };
    let mut resp = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    resp.extend_from_slice(&[b'a'; 100]);
    resp.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let out = run_with("GET", config.clone(), &resp, false);
    assert_err(&out, ProtocolError::HeadTooLarge);
    // Endless header lines with no blank line.
    let resp = b"HTTP/1.1 200 OK\r\n"
        .iter()
        .copied()
        .chain(b"X: y\r\n".repeat(50))
        .collect::<Vec<u8>>();
    assert_err(
        &run_with("GET", config.clone(), &resp, false),
        ProtocolError::HeadTooLarge,
    );
    // Exactly at the cap is fine.
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ".to_vec();
    resp.extend(std::iter::repeat_n(b'b', 64 - resp.len() - 4));
    resp.extend_from_slice(b"\r\n\r\n");
    assert_eq!(resp.len(), 64);
    assert_ok(
        &run_with("GET", config, &resp, false),
        200,
        b"",
        true,
        false,
    );
}

#[test]
fn too_many_headers() {
    let config = Config {
        max_headers: 4,
        ..Config::default()
    };
    let ok = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    assert_ok(
        &run_with("GET", config.clone(), ok, false),
        200,
        b"",
        true,
        false,
    );
    let bad = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nContent-Length: 0\r\n\r\n";
    assert_err(
        &run_with("GET", config, bad, false),
        ProtocolError::TooManyHeaders,
    );
}

#[test]
fn bad_header_bytes() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"X: a\rb\r\n", ProtocolError::InvalidHeaderValue),
        (b"X: a\x00b\r\n", ProtocolError::InvalidHeaderValue),
        (b"X: a\x01b\r\n", ProtocolError::InvalidHeaderValue),
        (b"X: a\nb\r\n", ProtocolError::InvalidHeaderName),
        (b"Content-Length : 5\r\n", ProtocolError::InvalidHeaderName),
        (
            b"Transfer-Encoding : chunked\r\n",
            ProtocolError::InvalidHeaderName,
        ),
        (b"X-A: one\r\n two\r\n", ProtocolError::InvalidHeaderName),
        (b": b\r\n", ProtocolError::InvalidHeaderName),
        (b"Server x\r\n", ProtocolError::InvalidHeaderName),
        (b"X\x80: b\r\n", ProtocolError::InvalidHeaderName),
    ];
    for (line, err) in cases {
        let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
        resp.extend_from_slice(line);
        resp.extend_from_slice(b"Content-Length: 4\r\n\r\nbody");
        let out = get(&resp);
        assert_eq!(out.error.as_ref(), Some(err), "{line:?}");
        assert!(out.events.is_empty());
    }
    // obs-text is kept byte-exact.
    let out = get(b"HTTP/1.1 200 OK\r\nX: \xa0value\x85\r\nContent-Length: 0\r\n\r\n");
    match &out.events[0] {
        Ev::Head(_, _, h) => assert_eq!(h[0].1, b"\xa0value\x85"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn status_line_rules() {
    for line in [
        &b"HTTP/1.1 099 X"[..],
        b"HTTP/1.1 600 X",
        b"HTTP/1.1 999 X",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1  200 OK",
        b"http/1.1 200 OK",
        b"garbage",
    ] {
        let mut resp = line.to_vec();
        resp.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        assert_err(&get(&resp), ProtocolError::InvalidStatusLine);
    }
    for line in [
        &b"HTTP/1.2 200 OK"[..],
        b"HTTP/2.0 200 OK",
        b"HTTP/1.10 200 OK",
    ] {
        let mut resp = line.to_vec();
        resp.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        assert_err(&get(&resp), ProtocolError::UnsupportedVersion);
    }
}

#[test]
fn display_messages() {
    assert_eq!(
        ProtocolError::InvalidContentLength.to_string(),
        "invalid Content-Length header in response"
    );
    assert_eq!(
        ProtocolError::Incomplete {
            expected: Some(100),
            received: 10
        }
        .to_string(),
        "response ended after 10 of 100 body bytes"
    );
    for e in [
        ProtocolError::InvalidChunkSize,
        ProtocolError::UnsolicitedData,
        ProtocolError::HeadTooLarge,
    ] {
        let s = e.to_string();
        assert!(
            !s.is_empty() && s.chars().next().unwrap().is_lowercase(),
            "{s}"
        );
    }
}

// ---- Split invariance on mutated inputs -----------------------------------------------------

#[test]
fn mutated_responses_split_invariant() {
    let bases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nclose delimited",
        b"\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    ];
    let alphabet = b"\r\n\r\n0123456789abcdefABCDEF;: \t\x00,xHTTP/1.";
    let mut rng = support::proto::Rng::new(7);
    for round in 0..400 {
        let mut r = bases[round % bases.len()].to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(r.len() + 1);
            match rng.below(4) {
                0 if at < r.len() => r[at] = alphabet[rng.below(alphabet.len())],
                1 => r.insert(at, alphabet[rng.below(alphabet.len())]),
                2 if at < r.len() => {
                    r.remove(at);
                }
                _ => r.truncate(at.max(1)),
            }
        }
        let method = if round % 7 == 0 { "HEAD" } else { "GET" };
        let config = Config {
            max_head_size: 48 + rng.below(64),
            max_headers: 1 + rng.below(4),
            max_chunk_ext_bytes: rng.below(8),
            max_trailer_size: rng.below(16),
            max_interim_responses: rng.below(2),
        };
        run_with(method, config.clone(), &r, false);
        let out = run_with(method, config, &r, true);
        assert!(out.body().len() <= r.len());
    }
}

#[test]
fn keep_alive_pairs_in_every_split_mode() {
    let second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
    let firsts: &[(&str, &[u8])] = &[
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\nX: y\r\n\r\n",
        ),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        (
            "GET",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        ),
        (
            "GET",
            b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "GET",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
        ),
    ];
    for (method, first) in firsts {
        let (o1, o2) = support::proto::run_pair(method, first, second);
        assert_eq!(o1.complete(), Some((true, false)), "{o1:?}");
        let o2 = o2.expect("reusable after the first response");
        assert_ok(&o2, 200, b"second", true, false);
    }
    // Not reusable: the second request never starts.
    let (o1, o2) = support::proto::run_pair(
        "GET",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        second,
    );
    assert_eq!(o1.complete(), Some((false, false)));
    assert!(o2.is_none());
}
