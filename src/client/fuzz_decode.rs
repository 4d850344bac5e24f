//! The shared body of the `decode` fuzz target and of its corpus replay test: the
//! `Content-Encoding` plan and the content decoders with their caps, at arbitrary split points.

use crate::proto::Headers;

use super::wrappers::decode::{Decoder, Plan, plan};
use super::{Cause, Coding, DecodeConfig};

/// Decoded bytes handed out per piece, at most (the decoder's internal chunk).
const PIECE: usize = 32 * 1024;
const CAPS: [u64; 4] = [0, 100, 40_000, 1 << 20];
const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

/// How decoding a body ended.
#[derive(Debug)]
struct Run {
    out: Vec<u8>,
    end: Result<(), Cause>,
}

/// Decodes `body` cut into pieces of the lengths `pieces` gives, then ends it as the agent
/// does at the end of the body (an unfinished stream is a `Decode` error).
fn run(undo: &[Coding], cap: u64, body: &[u8], pieces: &mut dyn FnMut() -> usize) -> Run {
    let (mut decoder, failure) = Decoder::new(undo, cap);
    if let Some(cause) = failure {
        return Run {
            out: Vec::new(),
            end: Err(cause),
        };
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let end = (pos + pieces().max(1)).min(body.len());
        assert!(decoder.push(&body[pos..end]), "no stage to push to");
        pos = end;
        loop {
            match decoder.next_piece() {
                Ok(Some(len)) => {
                    assert!(len > 0 && len <= PIECE, "piece of {len} bytes");
                    out.extend_from_slice(decoder.piece(len));
                    assert!(out.len() as u64 <= cap, "output over the cap");
                }
                Ok(None) => break,
                Err(cause) => {
                    return Run {
                        out,
                        end: Err(cause),
                    };
                }
            }
        }
        assert!(!decoder.pending(), "input left after draining");
    }
    let end = match decoder.unfinished() {
        Some(coding) => Err(Cause::Decode(format!(
            "{}: truncated stream",
            coding.token()
        ))),
        None => Ok(()),
    };
    Run { out, end }
}

/// Runs the content-decoding plan and decoders over fuzzer input and checks their
/// invariants; panics when one is broken.
///
/// Byte 0 picks the limits (bits 0-1: decoded-size cap 0, 100, 40,000 or 1 MiB; bits 2-4:
/// `max_codings` 0..=7); byte 1 the offered codings (bits 0-3: gzip, deflate, br, zstd; none
/// set means all); byte 2 seeds the split points. Then the `Content-Encoding` value up to the
/// first `\n` (each `\r` starts another field line), then the body.
///
/// Checked: no panic; the plan counts codings as documented (too many fails; otherwise the
/// longest offered suffix is undone, the rest kept); decoded output never exceeds the cap
/// and comes in pieces of at most 32 KiB; every error is a typed `Decode` or
/// `DecodedTooLarge`; the same output and the same end for the whole body and for any split
/// (after an error, one output is a prefix of the other, since a split can deliver a piece
/// the whole body fails in).
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let [limits, offered, seed, rest @ ..] = data else {
        return;
    };
    let encodings: Vec<Coding> = match offered & 15 {
        0 => ALL.to_vec(),
        mask => (0..4)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| ALL[i])
            .collect(),
    };
    let config = DecodeConfig {
        encodings,
        max_decoded_size: CAPS[usize::from(limits & 3)],
        max_codings: usize::from((limits >> 2) & 7),
    };
    let (value, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &[][..]),
    };
    let mut headers = Headers::new();
    for line in value.split(|&b| b == b'\r') {
        headers.append("Content-Encoding", line);
    }

    // The plan, against the documented rule.
    let tokens: Vec<String> = value
        .split(|&b| b == b'\r' || b == b',')
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "identity")
        .collect();
    let offered = |t: &str| Coding::from_token(t).filter(|c| config.encodings.contains(c));
    let (keep, undo) = match plan(&config, &headers) {
        Plan::TooMany => {
            assert!(tokens.len() > config.max_codings, "{tokens:?}");
            return;
        }
        Plan::Pass => {
            assert!(tokens.len() <= config.max_codings);
            assert!(tokens.last().is_none_or(|t| offered(t).is_none()));
            return;
        }
        Plan::Undo { keep, undo } => (keep, undo),
    };
    assert!(tokens.len() <= config.max_codings && !undo.is_empty());
    assert_eq!(keep.len() + undo.len(), tokens.len());
    assert_eq!(keep[..], tokens[..keep.len()]);
    assert!(keep.last().is_none_or(|t| offered(t).is_none()));
    for (coding, token) in undo.iter().zip(tokens.iter().rev()) {
        assert_eq!(Some(*coding), offered(token));
    }

    // Decoding, whole and in pieces.
    let cap = config.max_decoded_size;
    let whole = run(&undo, cap, body, &mut || usize::MAX);
    let mut pieces = crate::proto::piece_lengths(*seed, [8, 64, 1024]);
    let split = run(&undo, cap, body, &mut pieces);
    for r in [&whole, &split] {
        assert!(r.out.len() as u64 <= cap);
        match &r.end {
            Ok(()) | Err(Cause::Decode(_)) => {}
            Err(Cause::DecodedTooLarge(c)) => assert_eq!(*c, cap),
            Err(other) => panic!("unexpected cause {other:?}"),
        }
    }
    match (&whole.end, &split.end) {
        (Ok(()), Ok(())) => assert!(whole.out == split.out, "output depends on the split"),
        (Err(w), Err(s)) => {
            let (short, long) = if whole.out.len() <= split.out.len() {
                (&whole.out, &split.out)
            } else {
                (&split.out, &whole.out)
            };
            assert!(long.starts_with(short), "outputs diverge before the error");
            // The same error, unless one run reached the cap with output the other could not
            // deliver before failing in the same piece.
            if std::mem::discriminant(w) != std::mem::discriminant(s) {
                assert!(
                    long.len() + PIECE > cap as usize,
                    "{w:?} whole, {s:?} split, far from the cap"
                );
            }
        }
        (w, s) => panic!("whole body: {w:?}, split: {s:?}"),
    }
}
