//! The usual response head read in one pass: the status line, the fields written straight
//! into the response's [`Headers`] and the framing fields noted on the way.
//!
//! Only a plain form is read here (`HTTP/1.0` or `HTTP/1.1`, one space, three digits, one
//! space, an ASCII reason, CRLF line ends, no more fields than the cap, the whole head in the
//! input); for it the result is exactly httparse's. Anything else (a partial head, bare LF,
//! obs-text in the reason, any byte httparse might refuse) goes to httparse
//! (`response::parse_head_httparse`), which decides and reports errors as before. This saves
//! httparse's slots and the second pass that copied them out. The entry points of head
//! parsing, [`parse_head_prefix`] and [`parse_head`], are here.

use std::borrow::Cow;

pub(super) use super::request::TCHAR as TOKEN;
use super::response::{FramingFields, parse_head_httparse, reason_phrase};
use super::{Config, Headers, ProtocolError, ResponseHead, Version};

/// Bytes tested at a time: one SSE2 register, the compiler turning the byte tests of a chunk
/// into vector instructions (no `unsafe`, no intrinsics).
pub(super) const CHUNK: usize = 16;

/// Whether a byte is an ASCII letter, digit or `-`: the bytes of nearly every field name
/// (the other tchars are looked up one by one).
#[inline(always)]
pub(super) fn is_name_common(b: u8) -> bool {
    (b | 0x20).wrapping_sub(b'a') < 26 || b.wrapping_sub(b'0') < 10 || b == b'-'
}

/// Whether a byte ends a run of field value bytes: a control byte (HTAB included) or DEL.
#[inline(always)]
pub(super) fn is_value_stop(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The index of the first byte of `chunk` for which `stop` holds.
#[inline(always)]
pub(super) fn first_stop(chunk: &[u8; CHUNK], stop: impl Fn(u8) -> bool) -> Option<usize> {
    // A plain loop rather than `array::from_fn`, which is not always inlined (a call in the
    // scan loop would cost the vector constants kept in registers).
    let mut marks = [0u8; CHUNK];
    for (mark, &b) in marks.iter_mut().zip(chunk) {
        *mark = if stop(b) { 0xff } else { 0 };
    }
    let marks = u128::from_le_bytes(marks);
    (marks != 0).then(|| (marks.trailing_zeros() / 8) as usize)
}

/// The index of the first byte from `at` on for which `stop` holds, or `bytes.len()`.
#[inline(always)]
fn run_end(bytes: &[u8], mut at: usize, stop: impl Fn(u8) -> bool + Copy) -> usize {
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<CHUNK>) {
        match first_stop(chunk, stop) {
            Some(i) => return at + i,
            None => at += CHUNK,
        }
    }
    while let Some(&b) = bytes.get(at) {
        if stop(b) {
            break;
        }
        at += 1;
    }
    at
}

/// The length of the field value at the start of `bytes` up to its line end: the index of
/// the first control byte other than HTAB, or DEL, or `bytes.len()`.
#[inline(always)]
fn value_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        at = run_end(bytes, at, is_value_stop);
        match bytes.get(at) {
            Some(b'\t') => at += 1,
            _ => return at,
        }
    }
}

/// The length of the run of tchars at the start of `bytes`.
#[inline(always)]
fn name_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        at = run_end(bytes, at, |b| !is_name_common(b));
        match bytes.get(at) {
            Some(&b) if TOKEN[b as usize] => at += 1,
            _ => return at,
        }
    }
}

/// Parses a complete response head (it ends with its blank line); its fields go in `spare`'s
/// storage when it has some.
pub(crate) fn parse_head(
    bytes: &[u8],
    config: &Config,
    spare: &mut Headers,
) -> Result<(ResponseHead, FramingFields), ProtocolError> {
    match parse_head_prefix(bytes, config, spare)? {
        Some((n, head, fields)) => {
            debug_assert_eq!(n, bytes.len());
            Ok((head, fields))
        }
        // The caller found a blank line after the status line, so this cannot be short.
        None => Err(ProtocolError::InvalidStatusLine),
    }
}

/// Parses a response head at the start of `bytes`: its length, the head and what its fields
/// say about framing, or `None` when `bytes` holds only part of a head. The head's fields take
/// `spare` (left empty) when a head is returned.
pub(crate) fn parse_head_prefix(
    bytes: &[u8],
    config: &Config,
    spare: &mut Headers,
) -> Result<Option<(usize, ResponseHead, FramingFields)>, ProtocolError> {
    match parse_plain(bytes, config, spare) {
        Some(parsed) => Ok(Some(parsed)),
        None => parse_head_httparse(bytes, config, spare),
    }
}

/// Parses a plain response head at the start of `bytes` as httparse would (see the module
/// docs), its fields put in `spare`'s storage (which the head takes). `None` when the head is
/// not in the plain form or not whole: then `spare` holds no meaningful fields and the
/// caller must parse with httparse.
#[inline(never)]
pub(super) fn parse_plain(
    bytes: &[u8],
    config: &Config,
    spare: &mut Headers,
) -> Option<(usize, ResponseHead, FramingFields)> {
    // `HTTP/1.x NNN ` in one piece.
    let line = bytes.first_chunk::<13>()?;
    if line[..7] != *b"HTTP/1."
        || line[8] != b' '
        || line[12] != b' '
        || bytes.len() > u32::MAX as usize
    {
        return None;
    }
    let version = match line[7] {
        b'0' => Version::Http10,
        b'1' => Version::Http11,
        _ => return None,
    };
    let digit = |b: u8| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then_some(u16::from(d))
    };
    let status = digit(line[9])? * 100 + digit(line[10])? * 10 + digit(line[11])?;
    if !(100..=599).contains(&status) {
        return None;
    }
    let mut reason_end = 13;
    while let Some(&b) = bytes.get(reason_end) {
        if !(b == b'\t' || (b' '..=b'~').contains(&b)) {
            break;
        }
        reason_end += 1;
    }
    if bytes.get(reason_end..reason_end + 2)? != b"\r\n" {
        return None;
    }
    let reason = reason_phrase_of(status, &bytes[13..reason_end])?;

    // The field lines; offsets in the index are from the start of `block`.
    let block = &bytes[reason_end + 2..];
    let max_headers = config.max_headers;
    let mut rest = block;
    let mut block_len = 0;
    let mut framing = FramingFields::default();
    spare.clear();
    let end = loop {
        // A line starts here: the blank line, or `name:` with a name of 1 or more tchars.
        if let [b'\r', b'\n', ..] = rest {
            break bytes.len() - rest.len() + 2;
        }
        if spare.len() == max_headers {
            return None;
        }
        let name = &rest[..name_len(rest)];
        let [b':', after_colon @ ..] = &rest[name.len()..] else {
            return None;
        };
        if name.is_empty() {
            return None;
        }
        // Nearly every value follows one space and ends without blanks: the loops that skip
        // and trim blanks run only for the others, out of line.
        let line = match after_colon {
            [b' ', line @ ..] if !matches!(line.first(), Some(b' ' | b'\t')) => line,
            _ => skip_blanks(after_colon),
        };
        let (mut value, line_end) = line.split_at(value_len(line));
        let [b'\r', b'\n', next @ ..] = line_end else {
            return None;
        };
        if let [.., b' ' | b'\t'] = value {
            value = trim_blanks(value);
        }
        if matches!(name.len(), 10 | 14 | 17) {
            framing.note(name, value);
        }
        let name_at = block.len() - rest.len();
        let value_at = block.len() - line.len();
        block_len = value_at + value.len();
        spare.push_parsed(
            name_at as u32..(name_at + name.len()) as u32,
            value_at as u32..block_len as u32,
        );
        rest = next;
    };
    spare.set_parsed_block(&block[..block_len]);
    let head = ResponseHead {
        version,
        status,
        reason,
        headers: std::mem::take(spare),
    };
    Some((end, head, framing))
}

/// `bytes` without its leading spaces and HTABs.
#[cold]
#[inline(never)]
fn skip_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', more @ ..] = bytes {
        bytes = more;
    }
    bytes
}

/// `bytes` without its trailing spaces and HTABs.
#[cold]
#[inline(never)]
fn trim_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [trimmed @ .., b' ' | b'\t'] = bytes {
        bytes = trimmed;
    }
    bytes
}

/// The reason phrase as [`reason_phrase`] keeps it, from bytes known to be ASCII.
#[inline(always)]
fn reason_phrase_of(status: u16, reason: &[u8]) -> Option<Cow<'static, str>> {
    if status == 200 && reason == b"OK" {
        return Some(Cow::Borrowed("OK"));
    }
    Some(reason_phrase(status, std::str::from_utf8(reason).ok()?))
}
