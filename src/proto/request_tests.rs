//! The request side's checks and encoder: the byte-class checks against their byte-by-byte
//! definitions, hostile fields, and the encoder against simple reference versions of what it
//! replaced (heads byte-identical to those built by copying the caller's and the added fields
//! into one list and writing piece by piece; [`validate_with`] answering as [`validate`] does).

use super::*;
use crate::proto::{Config, Headers};

/// The head as it was written before: every field in one list, each piece appended as it
/// comes, `Host` and framing fields of the caller's dropped.
fn reference_head(head: &RequestHead<'_>, added: &[(&str, &[u8])], body: RequestBody) -> Vec<u8> {
    let mut fields = head.headers.clone();
    for &(name, value) in added {
        fields.append(name, value);
    }
    let mut host = head.host.as_bytes();
    if let Some(given) = head.headers.get("host") {
        host = given;
    }
    let mut out = Vec::new();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields.iter() {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        out.extend_from_slice(format!("{name}: ").as_bytes());
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match body {
        RequestBody::None => {}
        RequestBody::Length(n) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes())
        }
        RequestBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Caller field lists: none, plain, framing and Host overrides, flags the core acts on,
/// empty and long values.
fn field_lists() -> Vec<Headers> {
    let long = vec![b'v'; 3000];
    let lists: [&[(&str, &[u8])]; 7] = [
        &[],
        &[("Accept", b"*/*"), ("X-Trace", b"abc")],
        &[("host", b"given.test:8080"), ("Host", b"second.test")],
        &[
            ("Content-Length", b"99"),
            ("transfer-encoding", b"gzip"),
            ("X-E", b""),
        ],
        &[
            ("Expect", b"100-continue"),
            ("Connection", b"keep-alive, close"),
        ],
        &[("Upgrade", b"websocket"), ("Connection", b"Upgrade")],
        &[("X-Long", &long), ("User-Agent", b"mine")],
    ];
    lists
        .iter()
        .map(|l| l.iter().map(|&(n, v)| (n, v)).collect())
        .collect()
}

#[test]
fn heads_match_the_reference_writer() {
    let added_lists: [&[(&str, &[u8])]; 4] = [
        &[],
        &[("User-Agent", b"weft/0.1")],
        &[("Connection", b"close")],
        &[
            ("User-Agent", b"weft/0.1"),
            ("Connection", b"close"),
            ("Proxy-Authorization", b"Basic dTpw"),
        ],
    ];
    let targets = [
        ("GET", "/", "h"),
        ("POST", "/upload?x=1", "127.0.0.1:50243"),
        ("HEAD", "http://origin.test:8080/a?b", "origin.test:8080"),
        ("CONNECT", "origin.test:443", "origin.test:443"),
    ];
    let bodies = [
        RequestBody::None,
        RequestBody::Length(0),
        RequestBody::Length(9),
        RequestBody::Length(10),
        RequestBody::Length(u64::MAX),
        RequestBody::Chunked,
    ];
    let mut cases = 0;
    for headers in &field_lists() {
        for &(method, target, host) in &targets {
            for added in added_lists {
                let line = encode_line(target, host);
                let lines = encode_fields(added);
                let fields = EncodedFields {
                    lines: &lines,
                    close: added.iter().any(|f| f.0 == "Connection"),
                };
                let whole = [&line[..], &lines[..], b"\r\n"].concat();
                let encodings = [
                    Encoded::default(),
                    Encoded {
                        line: Some(&line),
                        ..Encoded::default()
                    },
                    Encoded {
                        added: Some(fields),
                        ..Encoded::default()
                    },
                    Encoded {
                        line: Some(&line),
                        added: Some(fields),
                        whole: None,
                    },
                    // Used only for a head without fields and body; ignored otherwise.
                    Encoded {
                        line: Some(&line),
                        added: Some(fields),
                        whole: Some(&whole),
                    },
                ];
                for body in bodies {
                    let head = RequestHead {
                        method,
                        target,
                        host,
                        headers,
                    };
                    let want = reference_head(&head, added, body);
                    for encoded in encodings {
                        let mut c = ClientConnection::new(Config::default());
                        // Written after bytes already in the buffer, as into a connection's.
                        let mut out = b"earlier".to_vec();
                        // Fields encoded ahead stand for the list, which need not be given.
                        let list = if encoded.added.is_some() {
                            &[][..]
                        } else {
                            added
                        };
                        c.send_validated_request(&head, list, encoded, body, &mut out)
                            .unwrap();
                        assert_eq!(
                            c.req.close,
                            added.iter().any(|f| f.0 == "Connection")
                                || head.headers.has_token("connection", "close"),
                            "{added:?} {encoded:?}"
                        );
                        assert_eq!(
                            String::from_utf8_lossy(&out[7..]),
                            String::from_utf8_lossy(&want),
                            "{method} {target} {added:?} {encoded:?} {body:?}"
                        );
                        assert_eq!(&out[..7], b"earlier");
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 7 * 4 * 4 * 6 * 5);
}

#[test]
fn added_connection_close_is_seen_by_the_core() {
    let h = Headers::new();
    let head = RequestHead {
        method: "GET",
        target: "/",
        host: "h",
        headers: &h,
    };
    let mut c = ClientConnection::new(Config::default());
    let mut out = Vec::new();
    c.send_validated_request(
        &head,
        &[("Connection", b"keep-alive, Close")],
        Encoded::default(),
        RequestBody::None,
        &mut out,
    )
    .unwrap();
    assert!(c.req.close);
    let mut c = ClientConnection::new(Config::default());
    c.send_validated_request(
        &head,
        &[("User-Agent", b"close")],
        Encoded::default(),
        RequestBody::None,
        &mut out,
    )
    .unwrap();
    assert!(!c.req.close);
}

#[test]
fn checked_targets_give_the_answer_of_the_full_check() {
    let methods = ["GET", "", "G T", "M\u{e9}"];
    let targets = ["/", "", "/a b", "/a#f", "/\u{7f}", "http://h/x?y"];
    let hosts = ["h", "", "a b", "h:80\t", "[::1]:8080"];
    let mut lists = field_lists();
    for (name, value) in [
        ("X-Bad", &b"a\r\nInjected: 1"[..]),
        ("Bad Name", b"v"),
        ("Host", b"bad host"),
        ("Host", b""),
        ("X-Nul", b"1234567\0"),
    ] {
        let mut h = Headers::new();
        h.append("X-Ok", b"1");
        h.append(name, value);
        h.append("Host", b"later.test");
        lists.push(h);
    }
    for method in methods {
        for target in targets {
            for host in hosts {
                for headers in &lists {
                    let head = RequestHead {
                        method,
                        target,
                        host,
                        headers,
                    };
                    assert_eq!(
                        validate_with(&head, TargetCheck::new(target, host)),
                        validate(&head).map(|_| ()),
                        "{method:?} {target:?} {host:?} {headers:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn decimal_lengths_are_exact() {
    for n in [0, 1, 9, 10, 99, 100, 12345, u64::MAX / 10, u64::MAX] {
        let mut out = Vec::new();
        push_dec(&mut out, n);
        assert_eq!(dec_len(n), out.len(), "{n}");
        assert_eq!(out, n.to_string().as_bytes());
    }
}

/// Checks a word-at-a-time class test against its byte-by-byte definition: every byte
/// value at every position of every length up to 24 (all word splits and overlaps), in a
/// run of otherwise valid bytes.
fn agrees(fast: impl Fn(&[u8]) -> bool, slow: impl Fn(u8) -> bool, filler: u8) {
    for len in 1..=24usize {
        for pos in 0..len {
            for b in 0..=255u8 {
                let mut s = vec![filler; len];
                s[pos] = b;
                assert_eq!(fast(&s), slow(b), "byte {b:#04x} at {pos} of {len}");
            }
        }
    }
}

#[test]
fn value_check_finds_cr_lf_nul_anywhere() {
    agrees(is_valid_value, |b| !matches!(b, b'\r' | b'\n' | 0), b'x');
    assert!(is_valid_value(b""));
    assert!(is_valid_value(b"\t tab and spaces \x7f\x80\xff"));
}

#[test]
fn target_check_takes_visible_ascii_but_hash() {
    agrees(is_valid_target, |b| b > 0x20 && b < 0x7f && b != b'#', b'/');
    assert!(!is_valid_target(b""));
}

#[test]
fn host_check_takes_visible_ascii() {
    agrees(is_valid_host, |b| b > 0x20 && b < 0x7f, b'h');
    assert!(!is_valid_host(b""));
}

fn head<'h>(headers: &'h Headers) -> RequestHead<'h> {
    RequestHead {
        method: "POST",
        target: "/upload?x=1",
        host: "default.test",
        headers,
    }
}

#[test]
fn validated_write_matches_the_checked_one() {
    let mut h = Headers::new();
    h.append("X-One", b"1");
    h.append("host", b"given.test:8080");
    h.append("Host", b"second.test");
    h.append("Content-Length", b"99");
    h.append("Expect", b" 100-Continue ");
    h.append("Connection", b"keep-alive, Close");
    h.append("Upgrade", b"websocket");
    h.append("Transfer-Encoding", b"gzip");
    for body in [
        RequestBody::None,
        RequestBody::Length(0),
        RequestBody::Length(5),
        RequestBody::Chunked,
    ] {
        let (mut a, mut b) = (
            ClientConnection::new(Config::default()),
            ClientConnection::new(Config::default()),
        );
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        a.send_request(&head(&h), body, &mut out_a).unwrap();
        b.send_validated_request(&head(&h), &[], Encoded::default(), body, &mut out_b)
            .unwrap();
        assert_eq!(out_a, out_b);
        assert!(
            out_a
                .starts_with(b"POST /upload?x=1 HTTP/1.1\r\nHost: given.test:8080\r\nX-One: 1\r\n")
        );
        assert_eq!(a.may_send_body(), b.may_send_body());
        assert_eq!(format!("{:?}", a.req), format!("{:?}", b.req));
        assert_eq!(a.send, b.send);
    }
}

/// The whole-head path (no field of the caller's, no body: the method and one piece, or one
/// piece with the method) writes what the general path writes and records the same state,
/// for every method the core treats apart and with or without `Connection: close`.
#[test]
fn whole_heads_match_the_general_path() {
    let none = Headers::new();
    let added_lists: [&[(&str, &[u8])]; 3] = [
        &[],
        &[("User-Agent", b"weft/0.1")],
        &[("User-Agent", b"weft/0.1"), ("Connection", b"close")],
    ];
    let targets = [
        ("/", "h"),
        ("http://origin.test:8080/a?b", "origin.test:8080"),
    ];
    let mut cases = 0;
    for method in ["GET", "HEAD", "CONNECT", "DELETE", "PURGE"] {
        for (target, host) in targets {
            for added in added_lists {
                let close = added.iter().any(|f| f.0 == "Connection");
                let head = RequestHead {
                    method,
                    target,
                    host,
                    headers: &none,
                };
                let want = reference_head(&head, added, RequestBody::None);
                let mut general = ClientConnection::new(Config::default());
                let mut out = Vec::new();
                general
                    .send_validated_request(
                        &head,
                        added,
                        Encoded::default(),
                        RequestBody::None,
                        &mut out,
                    )
                    .unwrap();
                assert_eq!(out, want);
                let whole = [
                    encode_line(target, host),
                    encode_fields(added),
                    b"\r\n".to_vec(),
                ]
                .concat();
                let with_method = [method.as_bytes(), &whole].concat();
                for (first, rest) in [(method.as_bytes(), &whole[..]), (&with_method[..], &[][..])]
                {
                    let mut c = ClientConnection::new(Config::default());
                    let mut out = b"earlier".to_vec();
                    c.send_whole_request(method, first, rest, close, &mut out)
                        .unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&out[7..]),
                        String::from_utf8_lossy(&want),
                        "{method} {target} {added:?}"
                    );
                    assert_eq!(&out[..7], b"earlier");
                    assert_eq!(format!("{:?}", c.req), format!("{:?}", general.req));
                    assert_eq!(c.send, general.send);
                    assert_eq!(c.may_send_body(), general.may_send_body());
                    // Once written, the connection takes no second head until it is reset.
                    let len = out.len();
                    assert_eq!(
                        c.send_whole_request(method, first, rest, close, &mut out),
                        Err(RequestError::WrongState)
                    );
                    assert_eq!(out.len(), len, "nothing written");
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 5 * 2 * 3 * 2);
}

#[test]
fn validated_write_still_checks_the_state() {
    let h = Headers::new();
    let mut c = ClientConnection::new(Config::default());
    let mut out = Vec::new();
    c.send_validated_request(
        &head(&h),
        &[],
        Encoded::default(),
        RequestBody::None,
        &mut out,
    )
    .unwrap();
    let len = out.len();
    assert_eq!(
        c.send_validated_request(
            &head(&h),
            &[],
            Encoded::default(),
            RequestBody::None,
            &mut out
        ),
        Err(RequestError::WrongState)
    );
    assert_eq!(out.len(), len, "nothing written");
}

#[test]
fn hostile_fields_are_refused_with_their_name() {
    for (name, value, want) in [
        (
            "X-Bad",
            &b"a\r\nInjected: 1"[..],
            RequestError::InvalidHeaderValue("X-Bad".into()),
        ),
        (
            "X-Long",
            &[b'v'; 4096][..],
            RequestError::InvalidHeaderValue("Host".into()),
        ),
        (
            "X-Nul",
            &b"12345678\0"[..],
            RequestError::InvalidHeaderValue("X-Nul".into()),
        ),
        (
            "X-Lf",
            &b"1234567\n"[..],
            RequestError::InvalidHeaderValue("X-Lf".into()),
        ),
        (
            "Bad Name",
            &b"v"[..],
            RequestError::InvalidHeaderName("Bad Name".into()),
        ),
        (
            "",
            &b"v"[..],
            RequestError::InvalidHeaderName(String::new()),
        ),
        (
            "Host",
            &b"a b"[..],
            RequestError::InvalidHeaderValue("Host".into()),
        ),
    ] {
        let mut h = Headers::new();
        h.append(name, value);
        let mut head = head(&h);
        if name == "X-Long" {
            // A long valid value, then a Host that is not.
            head.host = "bad host";
        }
        let mut c = ClientConnection::new(Config::default());
        let mut out = Vec::new();
        assert_eq!(
            c.send_request(&head, RequestBody::None, &mut out),
            Err(want.clone())
        );
        assert_eq!(crate::proto::validate_request(&head), Err(want));
        assert!(out.is_empty());
    }
}
