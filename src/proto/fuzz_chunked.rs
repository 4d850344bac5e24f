//! The shared body of the `chunked` fuzz target and of its corpus replay test: the chunked
//! decoder against a reference decoder written straight from the grammar.
//!
//! The reference follows RFC 9112 section 7.1 with the policy documented in
//! `docs/http-support.md` (the same policy as `chunked.rs`, written independently of it):
//!
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size      = 1*HEXDIG                 ; value fits in 64 bits, else InvalidChunkSize
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext       = BWS ";" *ext-byte        ; ext-byte: any byte but CTLs (HTAB allowed) and
//!                                            ; DEL; ";" and ext-bytes count against the
//!                                            ; per-body cap (ChunkExtensionTooLong)
//! trailer-section = *( field-line CRLF )     ; at most max_trailer_size + 2 bytes with the
//!                                            ; final CRLF, at most max_headers fields
//! field-line      = field-name ":" OWS field-value OWS
//! field-name      = token
//! field-value     = *( VCHAR / obs-text / SP / HTAB )
//! ```
//!
//! Line ends are CRLF exactly.

use super::chunked::{ChunkedDecoder, Step};
use super::{Config, ProtocolError};

/// How a decoding run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The body ended after `consumed` bytes, with these trailer fields.
    Complete {
        consumed: usize,
        trailers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Valid so far; the input ran out.
    Incomplete,
    /// Rejected. `in_trailers`: the error is inside the trailer section.
    Error {
        error: ProtocolError,
        in_trailers: bool,
    },
}

/// Data decoded, and how decoding ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    verdict: Verdict,
}

fn is_hexdig(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// CTLs other than HTAB, and DEL.
fn is_ctl_but_htab(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The reference decoder, over the whole input at once.
fn reference(input: &[u8], config: &Config) -> Outcome {
    let mut data = Vec::new();
    let verdict = reference_verdict(input, config, &mut data);
    Outcome { data, verdict }
}

fn reference_verdict(input: &[u8], config: &Config, data: &mut Vec<u8>) -> Verdict {
    let fail = |error| Verdict::Error {
        error,
        in_trailers: false,
    };
    let len = input.len();
    let mut pos = 0;
    let mut ext_total = 0usize;
    loop {
        // chunk-size
        let start = pos;
        let mut size: u64 = 0;
        while pos < len && is_hexdig(input[pos]) {
            let digit = u64::from((input[pos] as char).to_digit(16).unwrap_or(0));
            size = match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                Some(s) => s,
                None => return fail(ProtocolError::InvalidChunkSize),
            };
            pos += 1;
        }
        if pos == len {
            return Verdict::Incomplete;
        }
        if pos == start {
            return fail(ProtocolError::InvalidChunkSize);
        }
        // [ BWS ";" ext-bytes ]
        let mut ws_end = pos;
        while ws_end < len && matches!(input[ws_end], b' ' | b'\t') {
            ws_end += 1;
        }
        if ws_end == len {
            return Verdict::Incomplete;
        }
        if input[ws_end] == b';' {
            pos = ws_end;
            loop {
                if pos == len {
                    return Verdict::Incomplete;
                }
                let b = input[pos];
                if b == b'\r' {
                    break;
                }
                if is_ctl_but_htab(b) {
                    return fail(ProtocolError::InvalidChunkExtension);
                }
                ext_total += 1;
                if ext_total > config.max_chunk_ext_bytes {
                    return fail(ProtocolError::ChunkExtensionTooLong);
                }
                pos += 1;
            }
        } else if ws_end > pos {
            // Whitespace is only allowed before ";".
            return fail(ProtocolError::InvalidChunkSize);
        }
        // CRLF
        if input[pos] != b'\r' {
            return fail(ProtocolError::InvalidChunkSize);
        }
        if pos + 1 == len {
            return Verdict::Incomplete;
        }
        if input[pos + 1] != b'\n' {
            return fail(ProtocolError::InvalidChunkSize);
        }
        pos += 2;
        if size == 0 {
            return reference_trailers(input, pos, config);
        }
        // chunk-data CRLF
        let avail = (len - pos) as u64;
        if avail < size {
            data.extend_from_slice(&input[pos..]);
            return Verdict::Incomplete;
        }
        let end = pos + size as usize;
        data.extend_from_slice(&input[pos..end]);
        pos = end;
        for expected in [b'\r', b'\n'] {
            if pos == len {
                return Verdict::Incomplete;
            }
            if input[pos] != expected {
                return fail(ProtocolError::MissingChunkDataCrlf);
            }
            pos += 1;
        }
    }
}

/// The trailer section starting at `start`, through its final CRLF.
fn reference_trailers(input: &[u8], start: usize, config: &Config) -> Verdict {
    let cap = config.max_trailer_size.saturating_add(2);
    let len = input.len();
    let bad = Verdict::Error {
        error: ProtocolError::InvalidTrailers,
        in_trailers: true,
    };
    // Input ran out: fine unless the section is already longer than allowed.
    let ran_out = || {
        if len - start > cap {
            bad.clone()
        } else {
            Verdict::Incomplete
        }
    };
    let mut fields = Vec::new();
    let mut pos = start;
    loop {
        if pos == len {
            return ran_out();
        }
        if input[pos] == b'\r' {
            if pos + 1 == len {
                return ran_out();
            }
            if input[pos + 1] != b'\n' {
                return bad;
            }
            let consumed = pos + 2;
            if consumed - start > cap {
                return bad;
            }
            return Verdict::Complete {
                consumed,
                trailers: fields,
            };
        }
        // field-name ":"
        let name_start = pos;
        while pos < len && is_tchar(input[pos]) {
            pos += 1;
        }
        if pos == len {
            return ran_out();
        }
        if pos == name_start || input[pos] != b':' {
            return bad;
        }
        let name = input[name_start..pos].to_vec();
        pos += 1;
        // OWS field-value OWS CRLF
        let value_start = pos;
        while pos < len && input[pos] != b'\r' {
            if is_ctl_but_htab(input[pos]) {
                return bad;
            }
            pos += 1;
        }
        if pos == len || pos + 1 == len {
            return ran_out();
        }
        if input[pos + 1] != b'\n' {
            return bad;
        }
        let value = input[value_start..pos].trim_ascii();
        fields.push((name, value.to_vec()));
        if fields.len() > config.max_headers {
            return bad;
        }
        pos += 2;
    }
}

/// Runs the production decoder over `input` cut into pieces of the given lengths (cycled).
/// With `drain`, each data piece is followed by `next_data` calls while they give more, as
/// the agent does.
fn production(
    dec: &mut ChunkedDecoder,
    input: &[u8],
    config: &Config,
    pieces: &mut dyn FnMut() -> usize,
    drain: bool,
) -> Outcome {
    let mut data = Vec::new();
    let mut pos = 0;
    // Each call consumes a byte or ends the body; this bound catches a stuck loop.
    let mut budget = input.len() * 2 + 16;
    while pos < input.len() {
        let end = (pos + pieces().max(1)).min(input.len());
        let mut rest = &input[pos..end];
        let mut at = pos;
        pos = end;
        loop {
            budget = budget.checked_sub(1).expect("decode made no progress");
            let (n, step) = match dec.decode(rest, config) {
                Ok(r) => r,
                Err(error) => {
                    let verdict = Verdict::Error {
                        error,
                        in_trailers: dec.in_trailers(),
                    };
                    return Outcome { data, verdict };
                }
            };
            assert!(n <= rest.len(), "consumed more than given");
            match step {
                Step::NeedMore => {
                    assert_eq!(n, rest.len(), "NeedMore with input left");
                    break;
                }
                Step::Data(d) => {
                    assert!(!d.is_empty(), "empty data piece");
                    assert_eq!(d, &rest[n - d.len()..n], "data is not the input");
                    data.extend_from_slice(d);
                    while drain && let Some((m, d)) = dec.next_data(&rest[n..]) {
                        budget = budget.checked_sub(1).expect("next_data made no progress");
                        assert!(!d.is_empty(), "empty fast data piece");
                        assert!(m <= rest.len() - n, "fast path consumed more than given");
                        assert_eq!(d, &rest[n + m - d.len()..n + m], "data is not the input");
                        data.extend_from_slice(d);
                        rest = &rest[m..];
                        at += m;
                    }
                }
                Step::End(trailers) => {
                    let trailers = trailers
                        .map(|t| {
                            t.iter()
                                .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let verdict = Verdict::Complete {
                        consumed: at + n,
                        trailers,
                    };
                    return Outcome { data, verdict };
                }
            }
            rest = &rest[n..];
            at += n;
        }
    }
    Outcome {
        data,
        verdict: Verdict::Incomplete,
    }
}

/// Checks one production run against the reference; panics on a difference.
fn compare(got: &Outcome, want: &Outcome, input: &[u8], config: &Config, how: &str) {
    assert_eq!(got.data, want.data, "{how}: data differs");
    match (&got.verdict, &want.verdict) {
        (g, w) if g == w => {}
        // A trailer section is refused either as malformed or as too large; which one may
        // depend on the order the checks run in, so only the refusal is compared.
        (
            Verdict::Error {
                in_trailers: true, ..
            },
            Verdict::Error {
                in_trailers: true, ..
            },
        ) => {}
        // The production decoder checks a trailer section once it has all of it (or more
        // than the cap): an error the reference sees early may still be "incomplete" there,
        // but the section must then fail as soon as it ends.
        (
            Verdict::Incomplete,
            Verdict::Error {
                in_trailers: true, ..
            },
        ) => {
            let mut ended = input.to_vec();
            ended.extend_from_slice(b"\r\n\r\n");
            let mut dec = ChunkedDecoder::new();
            let again = production(&mut dec, &ended, config, &mut || usize::MAX, false);
            assert!(
                matches!(
                    again.verdict,
                    Verdict::Error {
                        in_trailers: true,
                        ..
                    }
                ),
                "{how}: a bad trailer section is not refused once ended: {:?}",
                again.verdict
            );
        }
        (g, w) => panic!("{how}: verdict differs: decoder {g:?}, reference {w:?}"),
    }
}

/// Decodes fuzzer input with the chunked decoder, whole and at split points, and compares
/// with a reference decoder written from the RFC 9112 grammar; panics on any difference.
///
/// Byte 0 picks the limits (bits 0-1: extension bytes 0/3/16/16384; bits 2-3: trailer
/// section 0/8/64/16384 bytes; bits 4-5: trailer fields 0/1/4/128); byte 1 seeds the split
/// points; the rest is the chunked body. Checked: the same data, the same verdict (complete
/// at the same byte with the same trailers, incomplete, or the same error; for a trailer
/// section, refused, and only once it is whole or over the cap), whatever the split, also
/// with a decoder reused after `reset`, and with `next_data` drained after each piece as the
/// agent does; every data piece is a non-empty slice of the input; `NeedMore` only once the
/// input is used up; bounded progress; no panic.
#[doc(hidden)]
pub fn fuzz_chunked(data: &[u8]) {
    let [cfg, seed, body @ ..] = data else {
        return;
    };
    let config = Config {
        max_chunk_ext_bytes: [0, 3, 16, 16 * 1024][usize::from(cfg & 3)],
        max_trailer_size: [0, 8, 64, 16 * 1024][usize::from((cfg >> 2) & 3)],
        max_headers: [0, 1, 4, 128][usize::from((cfg >> 4) & 3)],
        ..Config::default()
    };
    let want = reference(body, &config);

    let mut dec = ChunkedDecoder::new();
    let whole = production(&mut dec, body, &config, &mut || usize::MAX, false);
    compare(&whole, &want, body, &config, "whole input");

    // The same decoder after reset, fed in pieces.
    dec.reset();
    let mut pieces = super::fuzz::piece_lengths(*seed, [4, 16, 256]);
    let split = production(&mut dec, body, &config, &mut pieces, false);
    compare(&split, &want, body, &config, "split input");

    // Again, draining the fast path after each piece as the agent does.
    dec.reset();
    let whole = production(&mut dec, body, &config, &mut || usize::MAX, true);
    compare(&whole, &want, body, &config, "whole input, drained");
    let mut pieces = super::fuzz::piece_lengths(seed.wrapping_add(1), [4, 16, 256]);
    let split = production(&mut ChunkedDecoder::new(), body, &config, &mut pieces, true);
    compare(&split, &want, body, &config, "split input, drained");
}
