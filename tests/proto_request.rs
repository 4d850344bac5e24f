//! Request encoding: exact bytes, injection rejection, body framing and `Expect: 100-continue`.

use weft::proto::{
    ClientConnection, Config, Event, Headers, ProtocolError, RequestBody, RequestError, RequestHead,
};

fn headers(fields: &[(&str, &[u8])]) -> Headers {
    fields.iter().copied().collect()
}

fn encode(
    method: &str,
    target: &str,
    fields: &[(&str, &[u8])],
    body: RequestBody,
) -> Result<(ClientConnection, Vec<u8>), RequestError> {
    let h = headers(fields);
    let mut conn = ClientConnection::new(Config::default());
    let mut out = b"previous".to_vec();
    let head = RequestHead {
        method,
        target,
        host: "example.test:8080",
        headers: &h,
    };
    match conn.send_request(&head, body, &mut out) {
        Ok(()) => {
            assert!(out.starts_with(b"previous"), "appends to out");
            out.drain(..8);
            Ok((conn, out))
        }
        Err(e) => {
            assert_eq!(out, b"previous", "nothing written on error");
            Err(e)
        }
    }
}

fn receive_all(conn: &mut ClientConnection, mut input: &[u8]) -> Vec<String> {
    let mut evs = Vec::new();
    loop {
        let (n, ev) = conn.receive(input).expect("valid response");
        input = &input[n..];
        match ev {
            Event::NeedMore => break,
            Event::Informational(h) => evs.push(format!("info {}", h.status)),
            Event::Head(h) => evs.push(format!("head {}", h.status)),
            Event::Data(d) => evs.push(format!("data {}", String::from_utf8_lossy(d))),
            Event::Trailers(_) => evs.push("trailers".into()),
            Event::Complete { keep_alive, .. } => evs.push(format!("complete {keep_alive}")),
        }
    }
    evs
}

#[test]
fn get_exact_bytes() {
    let (_, out) = encode(
        "GET",
        "/a?b",
        &[("Accept", b"*/*"), ("X-Trace", b"1")],
        RequestBody::None,
    )
    .unwrap();
    assert_eq!(
        out,
        b"GET /a?b HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\nX-Trace: 1\r\n\r\n"
    );
}

#[test]
fn absolute_form_target() {
    let (_, out) = encode("GET", "http://h.test/x", &[], RequestBody::None).unwrap();
    assert!(out.starts_with(b"GET http://h.test/x HTTP/1.1\r\nHost: example.test:8080\r\n"));
}

#[test]
fn post_with_length_exact_bytes() {
    let (mut conn, mut out) = encode("POST", "/p", &[], RequestBody::Length(5)).unwrap();
    assert!(conn.may_send_body());
    conn.send_body(b"he", &mut out).unwrap();
    conn.send_body(b"llo", &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    assert_eq!(
        out,
        b"POST /p HTTP/1.1\r\nHost: example.test:8080\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[test]
fn empty_post_sends_content_length_zero() {
    let (mut conn, mut out) = encode("POST", "/p", &[], RequestBody::Length(0)).unwrap();
    conn.finish_body(&mut out).unwrap();
    assert_eq!(
        out,
        b"POST /p HTTP/1.1\r\nHost: example.test:8080\r\nContent-Length: 0\r\n\r\n"
    );
    // The response can be reused: the (empty) body is complete.
    let evs = receive_all(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(evs, ["head 200", "complete true"]);
    assert!(conn.is_reusable());
}

#[test]
fn chunked_exact_bytes() {
    let (mut conn, mut out) = encode("PUT", "/c", &[], RequestBody::Chunked).unwrap();
    conn.send_body(b"hello", &mut out).unwrap();
    conn.send_body(b"", &mut out).unwrap();
    conn.send_body(&[b'x'; 26], &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    let mut expected =
        b"PUT /c HTTP/1.1\r\nHost: example.test:8080\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a\r\n"
            .to_vec();
    expected.extend_from_slice(&[b'x'; 26]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, expected);
}

#[test]
fn caller_framing_headers_are_dropped_and_host_overridden() {
    let (_, out) = encode(
        "POST",
        "/",
        &[
            ("content-length", b"99"),
            ("Host", b"other.test"),
            ("Transfer-Encoding", b"gzip"),
            ("HOST", b"third.test"),
            ("X", b"y"),
        ],
        RequestBody::Length(2),
    )
    .unwrap();
    assert_eq!(
        out,
        b"POST / HTTP/1.1\r\nHost: other.test\r\nX: y\r\nContent-Length: 2\r\n\r\n"
    );
}

#[test]
fn invalid_method() {
    for m in ["", "GET\r\nX: y", "G ET", "GET\0", "GÉT", "(GET)"] {
        assert_eq!(
            encode(m, "/", &[], RequestBody::None).unwrap_err(),
            RequestError::InvalidMethod,
            "{m:?}"
        );
    }
    assert!(encode("M-SEARCH", "*", &[], RequestBody::None).is_ok());
}

#[test]
fn invalid_target() {
    for t in [
        "",
        "/a b",
        "/a\tb",
        "/a\r\nX: y",
        "/a\nb",
        "/a\0",
        "/a#frag",
        "/\x7f",
        "/é",
    ] {
        assert_eq!(
            encode("GET", t, &[], RequestBody::None).unwrap_err(),
            RequestError::InvalidTarget,
            "{t:?}"
        );
    }
}

#[test]
fn invalid_header_names_and_values() {
    for name in ["Foo Bar", "X\r\nY", "X\0", "", "X:", "Ä"] {
        assert_eq!(
            encode("GET", "/", &[(name, b"v")], RequestBody::None).unwrap_err(),
            RequestError::InvalidHeaderName(name.to_owned()),
            "{name:?}"
        );
    }
    for value in [&b"a\r\nX-Evil: 1"[..], b"a\rb", b"a\nb", b"a\0b"] {
        assert_eq!(
            encode("GET", "/", &[("X-Val", value)], RequestBody::None).unwrap_err(),
            RequestError::InvalidHeaderValue("X-Val".to_owned()),
            "{value:?}"
        );
    }
    // A Host override with injection, and a bad default host.
    assert_eq!(
        encode("GET", "/", &[("Host", b"h\r\nX: y")], RequestBody::None).unwrap_err(),
        RequestError::InvalidHeaderValue("Host".to_owned())
    );
    let mut conn = ClientConnection::new(Config::default());
    let h = Headers::new();
    let head = RequestHead {
        method: "GET",
        target: "/",
        host: "h x",
        headers: &h,
    };
    assert_eq!(
        conn.send_request(&head, RequestBody::None, &mut Vec::new()),
        Err(RequestError::InvalidHeaderValue("Host".to_owned()))
    );
    // The rejected request left the connection usable.
    let head = RequestHead { host: "h", ..head };
    assert!(
        conn.send_request(&head, RequestBody::None, &mut Vec::new())
            .is_ok()
    );
}

#[test]
fn body_too_long_and_too_short() {
    let (mut conn, mut out) = encode("POST", "/", &[], RequestBody::Length(3)).unwrap();
    let before = out.len();
    assert_eq!(
        conn.send_body(b"abcd", &mut out),
        Err(RequestError::BodyTooLong { declared: 3 })
    );
    assert_eq!(out.len(), before, "nothing written");
    conn.send_body(b"ab", &mut out).unwrap();
    assert_eq!(
        conn.finish_body(&mut out),
        Err(RequestError::BodyTooShort {
            declared: 3,
            written: 2
        })
    );
    assert_eq!(
        conn.send_body(b"cd", &mut out),
        Err(RequestError::BodyTooLong { declared: 3 })
    );
    conn.send_body(b"c", &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    assert_eq!(
        conn.send_body(b"d", &mut out),
        Err(RequestError::BodyTooLong { declared: 3 })
    );
}

#[test]
fn wrong_state_calls() {
    let mut conn = ClientConnection::new(Config::default());
    let mut out = Vec::new();
    assert_eq!(
        conn.send_body(b"x", &mut out),
        Err(RequestError::WrongState)
    );
    assert_eq!(conn.finish_body(&mut out), Err(RequestError::WrongState));
    let h = Headers::new();
    let head = RequestHead {
        method: "GET",
        target: "/",
        host: "h",
        headers: &h,
    };
    conn.send_request(&head, RequestBody::None, &mut out)
        .unwrap();
    assert_eq!(
        conn.send_request(&head, RequestBody::None, &mut out),
        Err(RequestError::WrongState)
    );
    assert_eq!(
        conn.send_body(b"x", &mut out),
        Err(RequestError::WrongState)
    );
    assert!(!conn.may_send_body());
}

#[test]
fn expect_continue_then_100() {
    let (mut conn, mut out) = encode(
        "POST",
        "/",
        &[("Expect", b"100-Continue")],
        RequestBody::Length(5),
    )
    .unwrap();
    assert!(!conn.may_send_body());
    assert_eq!(
        conn.send_body(b"hello", &mut out),
        Err(RequestError::WrongState)
    );
    let evs = receive_all(&mut conn, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(evs, ["info 100"]);
    assert!(conn.may_send_body());
    conn.send_body(b"hello", &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    assert!(out.ends_with(b"Expect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello"));
    let evs = receive_all(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(evs, ["head 200", "data ok", "complete true"]);
    assert!(conn.is_reusable());
}

#[test]
fn expect_continue_timeout() {
    let (mut conn, mut out) = encode(
        "POST",
        "/",
        &[("expect", b"100-continue")],
        RequestBody::Chunked,
    )
    .unwrap();
    assert!(!conn.may_send_body());
    conn.continue_timed_out();
    assert!(conn.may_send_body());
    conn.send_body(b"abc", &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    let evs = receive_all(&mut conn, b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(evs, ["head 204", "complete true"]);
}

#[test]
fn early_final_response_blocks_body_and_reuse() {
    let (mut conn, mut out) = encode(
        "POST",
        "/",
        &[("Expect", b"100-continue")],
        RequestBody::Length(5),
    )
    .unwrap();
    let evs = receive_all(
        &mut conn,
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(evs, ["head 401", "complete false"]);
    assert!(!conn.may_send_body());
    // A late 100 cannot unblock it either (and it would be unsolicited anyway).
    assert_eq!(
        conn.send_body(b"hello", &mut out),
        Err(RequestError::WrongState)
    );
    assert!(!conn.is_reusable());
    assert_eq!(conn.reset(), Err(RequestError::WrongState));
    assert_eq!(
        conn.receive(b"HTTP/1.1 100 Continue\r\n\r\n").map(|_| ()),
        Err(ProtocolError::UnsolicitedData)
    );
}

#[test]
fn early_final_response_while_uploading_without_expect() {
    let (mut conn, mut out) = encode("POST", "/", &[], RequestBody::Length(10)).unwrap();
    conn.send_body(b"12345", &mut out).unwrap();
    let evs = receive_all(
        &mut conn,
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(evs, ["head 413", "complete false"]);
    assert!(!conn.may_send_body());
    assert!(!conn.is_reusable());
}

#[test]
fn response_before_body_finished_but_body_done_later_is_still_closed() {
    // Policy: reuse is decided when the final head arrives.
    let (mut conn, mut out) = encode("POST", "/", &[], RequestBody::Length(2)).unwrap();
    conn.send_body(b"ok", &mut out).unwrap();
    conn.finish_body(&mut out).unwrap();
    let evs = receive_all(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(evs, ["head 200", "complete true"]);
    assert!(conn.is_reusable());
}

#[test]
fn head_request_and_display() {
    let (mut conn, _) = encode("HEAD", "/", &[], RequestBody::None).unwrap();
    let evs = receive_all(&mut conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(evs, ["head 200", "complete true"]);
    assert_eq!(
        RequestError::BodyTooShort {
            declared: 10,
            written: 3
        }
        .to_string(),
        "request body ended after 3 of 10 declared bytes"
    );
    assert!(
        RequestError::InvalidHeaderName("Foo Bar".into())
            .to_string()
            .contains("Foo Bar")
    );
}
