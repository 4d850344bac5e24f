//! The shared body of the `response` fuzz target and of its corpus replay test
//! (`tests/proto_fuzz_corpus.rs`): the protocol core fed a response at arbitrary split points.

use weft::proto::{Config, Event, ProtocolError};

use crate::common::{piece_lengths, sent_request};

/// Drives a fresh connection with fuzzer input and checks the core's invariants; panics when
/// one is broken.
///
/// Byte 0 picks the method (bit 0: GET or HEAD) and bits 1..=7 seed the split points; the rest
/// is fed as response bytes in pieces, then end-of-file. Checked: no panic; no event after an
/// error and the error latches; total data never exceeds the input; `NeedMore` only once the
/// input is used up; bounded progress; a head the plain reader takes reads the same through
/// httparse.
pub fn fuzz_response(data: &[u8]) {
    let Some((&ctl, response)) = data.split_first() else {
        return;
    };
    // The one-pass reader of plain heads must read as httparse does.
    weft::proto::fuzz_plain_head(response);
    let method = if ctl & 1 == 0 { "GET" } else { "HEAD" };
    let mut pieces = piece_lengths(ctl >> 1, [8, 512, 512]);
    let config = Config {
        max_head_size: 4096,
        max_headers: 16,
        max_chunk_ext_bytes: 256,
        max_trailer_size: 512,
        max_interim_responses: 4,
    };
    let mut conn = sent_request(config, method).expect("a fixed valid request encodes");

    let mut data_total = 0usize;
    let mut error: Option<ProtocolError> = None;
    let mut pos = 0;
    // Every `receive` call consumes a byte or changes state; this bound catches a stuck loop.
    let mut budget = response.len() * 4 + 64;
    'pieces: while pos < response.len() {
        let piece_len = pieces();
        let end = (pos + piece_len).min(response.len());
        let mut rest = &response[pos..end];
        pos = end;
        loop {
            budget = budget.checked_sub(1).expect("receive made no progress");
            match conn.receive(rest) {
                Ok((n, ev)) => {
                    assert!(n <= rest.len());
                    rest = &rest[n..];
                    match ev {
                        Event::NeedMore => {
                            assert!(rest.is_empty(), "NeedMore with input left");
                            break;
                        }
                        Event::Data(d) => {
                            assert!(!d.is_empty(), "empty Data event");
                            data_total += d.len();
                            assert!(data_total <= response.len());
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break 'pieces;
                }
            }
        }
    }
    match error {
        Some(e) => {
            assert_eq!(conn.receive(b"x").map(|_| ()), Err(e.clone()));
            assert_eq!(conn.receive_eof().map(|_| ()), Err(e));
            assert!(!conn.is_reusable());
        }
        None => {
            if let Err(e) = conn.receive_eof() {
                assert_eq!(conn.receive(b"").map(|_| ()), Err(e));
                assert!(!conn.is_reusable());
            }
        }
    }
    assert_eq!(conn.body_received() as usize, data_total);
}
