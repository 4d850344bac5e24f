//! Tests of `ClientConnection`: the connection-level state machine over requests and
//! responses.

use super::*;

fn get_request(conn: &mut ClientConnection) {
    let head = RequestHead {
        method: "GET",
        target: "/",
        host: "example.test",
        headers: &Headers::new(),
    };
    let mut out = Vec::new();
    conn.send_request(&head, RequestBody::None, &mut out)
        .unwrap();
}

/// Every pooled connection holds one: a regression in its size costs each idle
/// connection (it was 232 bytes with the limits and the chunked decoder inline, 160 with
/// a latched error inline and word-sized counters).
#[test]
fn connection_state_stays_small() {
    let size = std::mem::size_of::<ClientConnection>();
    println!("size_of::<ClientConnection>() = {size}");
    assert!(size <= 144, "ClientConnection grew to {size} bytes");
}

#[test]
fn custom_limits_are_kept_and_defaults_are_not_stored() {
    assert!(ClientConnection::new(Config::default()).config.is_none());
    let config = Config {
        max_headers: 1,
        ..Config::default()
    };
    let mut conn = ClientConnection::new(config.clone());
    assert_eq!(limits(&conn.config), &config);
    get_request(&mut conn);
    let reply = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        conn.receive(reply).unwrap_err(),
        ProtocolError::TooManyHeaders
    );
    // The same head passes under the defaults.
    let mut conn = ClientConnection::new(Config::default());
    get_request(&mut conn);
    assert!(matches!(conn.receive(reply), Ok((_, Event::Head(_)))));
}

#[test]
fn chunked_decoder_is_created_once_and_reused() {
    let mut conn = ClientConnection::new(Config::default());
    assert!(conn.chunked.is_none());
    for round in 0..3 {
        get_request(&mut conn);
        let mut input: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n";
        let mut body = Vec::new();
        let mut complete = false;
        // Bounded: each step consumes input or ends the response.
        for _ in 0..16 {
            let (n, event) = conn.receive(input).unwrap();
            input = &input[n..];
            match event {
                Event::Data(d) => body.extend_from_slice(d),
                Event::Complete { .. } => {
                    complete = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(complete, "round {round}: the response did not complete");
        assert_eq!(body, b"abc");
        assert!(conn.chunked.is_some());
        conn.reset().unwrap();
    }
    // A hostile extension budget is still counted per body with the boxed decoder.
    let mut conn = ClientConnection::new(Config {
        max_chunk_ext_bytes: 4,
        ..Config::default()
    });
    get_request(&mut conn);
    let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;abcdefgh\r\nx\r\n";
    let (n, event) = conn.receive(reply).unwrap();
    assert!(matches!(event, Event::Head(_)));
    assert_eq!(
        conn.receive(&reply[n..]).unwrap_err(),
        ProtocolError::ChunkExtensionTooLong
    );
}

/// `receive_data` after each `Event::Data` gives the same pieces, the same count of body
/// bytes and the same end as `receive` alone, however the reads are cut.
#[test]
fn receive_data_matches_receive() {
    let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".to_vec();
    for i in 0..40u8 {
        let piece = vec![b'a' + i % 26; usize::from(i) * 7 + 1];
        let ext = if i % 5 == 0 { ";e=1" } else { "" };
        reply.extend_from_slice(format!("{:x}{ext}\r\n", piece.len()).as_bytes());
        reply.extend_from_slice(&piece);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
    let run = |fast: bool, read: usize| {
        let mut conn = ClientConnection::new(Config::default());
        get_request(&mut conn);
        let (mut pieces, mut ends, mut fast_pieces) = (Vec::new(), Vec::new(), 0);
        for input in reply.chunks(read) {
            let mut pos = 0;
            // Bounded: each round consumes input or ends the response.
            for _ in 0..=2 * input.len() + 2 {
                let (n, event) = conn.receive(&input[pos..]).unwrap();
                pos += n;
                match event {
                    Event::NeedMore => break,
                    Event::Data(d) => {
                        pieces.push(d.to_vec());
                        while fast && let Some((n, d)) = conn.receive_data(&input[pos..]) {
                            assert!(!d.is_empty());
                            pos += n;
                            pieces.push(d.to_vec());
                            fast_pieces += 1;
                        }
                    }
                    Event::Trailers(t) => ends.push(format!("{:?}", t.get("t"))),
                    Event::Complete { keep_alive, .. } => ends.push(format!("{keep_alive}")),
                    _ => {}
                }
            }
            assert_eq!(pos, input.len());
        }
        (pieces, ends, conn.body_received(), fast_pieces)
    };
    for read in [1, 2, 5, 64, 333, reply.len()] {
        let (slow, slow_ends, slow_count, _) = run(false, read);
        let (quick, quick_ends, quick_count, fast_pieces) = run(true, read);
        assert_eq!(quick, slow, "reads of {read}");
        assert_eq!((quick_ends, quick_count), (slow_ends, slow_count));
        assert_eq!(slow_count, slow.iter().map(|p| p.len() as u64).sum::<u64>());
        if read == reply.len() {
            // Whole in one read: every plain chunk after the first piece goes fast.
            assert_eq!(fast_pieces, 40 - 8);
        }
    }
}

#[test]
fn keep_alive_timeout_is_the_final_heads_and_ends_with_the_exchange() {
    let mut conn = ClientConnection::new(Config::default());
    get_request(&mut conn);
    assert_eq!(conn.keep_alive_timeout(), None);
    let reply = b"HTTP/1.1 100 Continue\r\nKeep-Alive: timeout=1\r\n\r\n\
        HTTP/1.1 200 OK\r\nKeep-Alive: timeout=30, max=5\r\nContent-Length: 0\r\n\r\n";
    let (n, event) = conn.receive(reply).unwrap();
    assert!(matches!(event, Event::Informational(_)));
    assert_eq!(
        conn.keep_alive_timeout(),
        None,
        "an interim head's is not kept"
    );
    let (m, event) = conn.receive(&reply[n..]).unwrap();
    assert!(matches!(event, Event::Head(_)));
    assert_eq!(conn.keep_alive_timeout(), Some(Duration::from_secs(30)));
    assert!(matches!(
        conn.receive(&reply[n + m..]),
        Ok((0, Event::Complete { .. }))
    ));
    conn.reset().unwrap();
    assert_eq!(conn.keep_alive_timeout(), None);
    // A hostile hint does not wrap: it saturates at the largest one kept.
    get_request(&mut conn);
    let reply = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=99999999999999\r\n\r\n";
    assert!(matches!(conn.receive(reply), Ok((_, Event::Head(_)))));
    let most = Duration::from_secs(u64::from(NO_KEEP_ALIVE_HINT - 1));
    assert_eq!(conn.keep_alive_timeout(), Some(most));
}

#[test]
fn eof_after_the_last_chunk_completes_without_reuse() {
    let mut conn = ClientConnection::new(Config::default());
    get_request(&mut conn);
    let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    let (n, _) = conn.receive(reply).unwrap();
    let (m, event) = conn.receive(&reply[n..]).unwrap();
    assert_eq!(n + m, reply.len());
    assert!(matches!(event, Event::NeedMore));
    assert!(matches!(conn.receive_eof(), Ok(Event::Complete { .. })));
    assert!(!conn.is_reusable());
}

/// Drives one exchange through `receive` alone (the reference) and through `receive` with
/// `receive_end` tried after every event, as the agent does: both must see the same events,
/// end the same way and leave the connection in the same state.
#[test]
fn receive_end_agrees_with_the_next_receive() {
    let cases: &[(&str, &[u8])] = &[
        ("GET", b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        ),
        ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        (
            "GET",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        ),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        ),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n\r\n",
        ),
        ("GET", b"HTTP/1.1 200 OK\r\n\r\nclose-delimited"),
        (
            "GET",
            b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxyz"),
    ];
    // (what happened, in order; whether each call or `receive_end` ended the response)
    fn run(method: &str, reply: &[u8], fast: bool) -> (Vec<String>, ClientConnection) {
        let mut conn = ClientConnection::new(Config::default());
        let head = RequestHead {
            method,
            target: "/",
            host: "example.test",
            headers: &Headers::new(),
        };
        conn.send_request(&head, RequestBody::None, &mut Vec::new())
            .unwrap();
        let mut log = Vec::new();
        let mut pos = 0;
        // Bounded: every round consumes input, ends the response or stops.
        for _ in 0..32 {
            let (n, event) = match conn.receive(&reply[pos..]) {
                Ok(x) => x,
                Err(e) => {
                    log.push(format!("error {e:?}"));
                    break;
                }
            };
            pos += n;
            let done = matches!(event, Event::Complete { .. } | Event::NeedMore);
            log.push(match event {
                Event::Complete {
                    keep_alive,
                    close_delimited,
                } => format!("complete {keep_alive} {close_delimited} at {pos}"),
                other => format!("{other:?}"),
            });
            if done {
                break;
            }
            if fast && let Some((keep_alive, close_delimited)) = conn.receive_end() {
                log.push(format!("complete {keep_alive} {close_delimited} at {pos}"));
                break;
            }
        }
        (log, conn)
    }
    for &(method, reply) in cases {
        let (reference, slow) = run(method, reply, false);
        let (log, fast) = run(method, reply, true);
        let text = String::from_utf8_lossy(reply);
        assert_eq!(log, reference, "{method} {text:?}");
        assert_eq!(fast.is_reusable(), slow.is_reusable(), "{text:?}");
        assert_eq!(fast.framing(), slow.framing(), "{text:?}");
        assert_eq!(fast.body_received(), slow.body_received(), "{text:?}");
        // Both ended (or not) alike: what comes next is taken alike too.
        let mut fast = fast;
        let mut slow = slow;
        assert_eq!(
            fast.receive(b"").map(|(n, e)| format!("{n} {e:?}")),
            slow.receive(b"").map(|(n, e)| format!("{n} {e:?}")),
            "{text:?}"
        );
        assert_eq!(
            format!("{:?}", fast.receive_eof()),
            format!("{:?}", slow.receive_eof()),
            "{text:?}"
        );
    }
    // Not at an end: nothing changes.
    let mut conn = ClientConnection::new(Config::default());
    assert_eq!(conn.receive_end(), None);
    get_request(&mut conn);
    assert_eq!(conn.receive_end(), None);
    let (n, _) = conn
        .receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        .unwrap();
    assert_eq!(n, 38);
    assert_eq!(conn.receive_end(), None);
    assert!(matches!(conn.receive(b"ok"), Ok((2, Event::Data(b"ok")))));
    assert_eq!(conn.receive_end(), Some((true, false)));
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_end(), None);
}
