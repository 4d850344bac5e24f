//! The usual response head read in one pass: the status line, the fields written straight
//! into the response's [`Headers`] and the framing fields noted on the way.
//!
//! Only a plain form is read here (`HTTP/1.0` or `HTTP/1.1`, one space, three digits, one
//! space, an ASCII reason, CRLF line ends, no more fields than the cap, the whole head in the
//! input); for it the result is exactly httparse's, so the caller falls back to httparse for
//! anything else (a partial head, bare LF, obs-text in the reason, any byte httparse might
//! refuse), which then decides and reports errors as before. This saves httparse's slots and
//! the second pass that copied them out.

use std::borrow::Cow;
use std::ops::Range;

use super::response::{FramingFields, reason_phrase};
use super::{Config, Headers, ResponseHead, Version};

/// Whether httparse accepts a byte in a field name (RFC 9110 `tchar`).
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The little-endian word at `at`, if 8 bytes are there.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*word))
}

/// Marks (top bit) the bytes of `word` that end a run of field value bytes: a control byte
/// (below 0x20, HTAB included) or DEL. Only the lowest mark is exact (a borrow may mark bytes
/// above it), which is the one used.
#[inline(always)]
fn value_stops(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let del = word ^ (ONES * 0x7f);
    let is_del = del.wrapping_sub(ONES) & !del;
    (below_space | is_del) & HIGH
}

/// Marks (top bit) the bytes of `word` that are not an ASCII letter, digit or `-` (the bytes
/// of nearly every field name; the other tchars are looked up one by one). Exact for every
/// byte: each sum stays within its byte.
#[inline(always)]
fn name_stops(word: u64) -> u64 {
    let low = word & !HIGH;
    let folded = low | (ONES * 0x20);
    let letter = folded.wrapping_add(ONES * (0x80 - b'a' as u64))
        & !folded.wrapping_add(ONES * (0x7f - b'z' as u64));
    let digit = low.wrapping_add(ONES * (0x80 - b'0' as u64))
        & !low.wrapping_add(ONES * (0x7f - b'9' as u64));
    let dash = !(low ^ (ONES * b'-' as u64)).wrapping_add(ONES * 0x7f);
    !((letter | digit | dash) & !word) & HIGH
}

/// The index of the first byte from `at` on that is not a field value byte other than HTAB
/// (so a control byte or DEL), or `bytes.len()`.
#[inline(always)]
fn value_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(word) = word_at(bytes, at) {
        let stops = value_stops(word);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b < 0x20 || b == 0x7f {
            break;
        }
        at += 1;
    }
    at
}

/// The index of the first byte from `at` on that is not a tchar, or `bytes.len()`.
#[inline(always)]
fn name_end(bytes: &[u8], mut at: usize) -> usize {
    loop {
        match word_at(bytes, at) {
            Some(word) => {
                let stops = name_stops(word);
                if stops == 0 {
                    at += 8;
                    continue;
                }
                at += (stops.trailing_zeros() / 8) as usize;
            }
            None => match bytes.get(at) {
                Some(&b) if TOKEN[b as usize] => {
                    at += 1;
                    continue;
                }
                _ => return at,
            },
        }
        match bytes.get(at) {
            Some(&b) if TOKEN[b as usize] => at += 1,
            _ => return at,
        }
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

    let start = reason_end + 2;
    let max_headers = config.max_headers;
    let mut at = start;
    let mut block_end = start;
    let mut framing = FramingFields::default();
    spare.clear();
    let end = loop {
        // A line starts here: the blank line, or `name:` with a name of 1 or more tchars.
        match bytes.get(at..at + 2)? {
            b"\r\n" => break at + 2,
            _ if spare.len() == max_headers => return None,
            _ => {}
        }
        let colon = name_end(bytes, at);
        if colon == at || bytes.get(colon) != Some(&b':') {
            return None;
        }
        let mut value_start = colon + 1;
        while let Some(b' ' | b'\t') = bytes.get(value_start) {
            value_start += 1;
        }
        let mut stop = value_end(bytes, value_start);
        while bytes.get(stop) == Some(&b'\t') {
            stop = value_end(bytes, stop + 1);
        }
        if bytes.get(stop..stop + 2)? != b"\r\n" {
            return None;
        }
        let mut value = bytes.get(value_start..stop)?;
        while let [rest @ .., b' ' | b'\t'] = value {
            value = rest;
        }
        let value_stop = value_start + value.len();
        let name = bytes.get(at..colon)?;
        if matches!(name.len(), 10 | 14 | 17) {
            framing.note(name, value);
        }
        spare.push_parsed(
            offsets(at..colon, start),
            offsets(value_start..value_stop, start),
        );
        block_end = value_stop;
        at = stop + 2;
    };
    spare.set_parsed_block(bytes.get(start..block_end)?);
    let head = ResponseHead {
        version,
        status,
        reason,
        headers: std::mem::take(spare),
    };
    Some((end, head, framing))
}

/// The reason phrase as [`reason_phrase`] keeps it, from bytes known to be ASCII.
#[inline(always)]
fn reason_phrase_of(status: u16, reason: &[u8]) -> Option<Cow<'static, str>> {
    if status == 200 && reason == b"OK" {
        return Some(Cow::Borrowed("OK"));
    }
    Some(reason_phrase(status, std::str::from_utf8(reason).ok()?))
}

/// `range` made relative to `start` (which is at or before it; the head is under 4 GiB).
#[inline(always)]
fn offsets(range: Range<usize>, start: usize) -> Range<u32> {
    (range.start - start) as u32..(range.end - start) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::response::parse_head_httparse;

    /// Checks the plain reading of `bytes` against httparse's: when it reads a head, httparse
    /// reads the same one. Returns whether the plain reading took it.
    fn check(bytes: &[u8], config: &Config) -> bool {
        let mut spare = Headers::new();
        spare.append("Stale", b"field");
        let Some(plain) = parse_plain(bytes, config, &mut spare) else {
            return false;
        };
        let full = parse_head_httparse(bytes, config, &mut Headers::new());
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(full, Ok(Some(plain.clone())), "{shown:?}");
        assert_eq!(
            plain.1.headers.byte_len(),
            full.unwrap().unwrap().1.headers.byte_len()
        );
        assert!(spare.is_empty());
        true
    }

    /// The word tests mark exactly the bytes they name, at every place in the word, whatever
    /// bytes precede them (only the lowest mark is used, so bytes after it may be anything).
    #[test]
    fn word_tests_find_the_first_byte_of_their_class() {
        let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        let is_stop = |b: u8| b < 0x20 || b == 0x7f;
        for fill in [b'a', b'Z', b'0', b'-', b' ', b'~', 0x80, 0xff] {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[at] = b;
                    let word = u64::from_le_bytes(bytes);
                    let first = |marks: u64| (marks != 0).then(|| marks.trailing_zeros() / 8);
                    let expect = |is: &dyn Fn(u8) -> bool| {
                        bytes.iter().position(|&b| !is(b)).map(|i| i as u32)
                    };
                    assert_eq!(first(name_stops(word)), expect(&is_name), "{fill} {at} {b}");
                    assert_eq!(
                        first(value_stops(word)),
                        expect(&|b| !is_stop(b)),
                        "{fill} {at} {b}"
                    );
                }
            }
        }
        for b in 0..=255u8 {
            assert!(!is_name(b) || TOKEN[b as usize], "{b}");
        }
    }

    const HEADS: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 22:53:04 GMT\r\n\
          Content-Type: application/octet-stream\r\nContent-Length: 0\r\n\
          Last-Modified: Mon, 07 Dec 2026 22:50:25 GMT\r\nConnection: keep-alive\r\n\
          ETag: \"6b173831-0\"\r\nAccept-Ranges: bytes\r\n\r\nbody",
        b"HTTP/1.0 404 Not\tFound \r\nKeep-Alive: timeout=5, max=9\r\nX:\r\nY: \t \r\n\
          Transfer-Encoding: chunked\r\nZ: a\tb  c \t\r\n\r\n",
        b"HTTP/1.1 101 \r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 01234567890123456789\r\nB:0123456\r\nc-L: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nX_Y.z~9!#$%&'*+^`|: v\xff\x80al\tue \r\nA-B-C-D-E-F-G-H-I: 01234\r\n\r\n",
    ];

    #[test]
    fn plain_heads_read_as_httparse_reads_them() {
        let config = Config::default();
        for head in HEADS {
            assert!(check(head, &config), "{:?}", String::from_utf8_lossy(head));
        }
        let many = [
            &b"HTTP/1.1 200 OK\r\n"[..],
            &b"X-Many: v\r\n".repeat(config.max_headers),
            b"\r\n",
        ]
        .concat();
        assert!(check(&many, &config));
        let too_many = [&many[..17], b"One: more\r\n", &many[17..]].concat();
        assert!(!check(&too_many, &config));
    }

    /// Every head above with each byte changed, removed or doubled, and cut at every length:
    /// whatever the plain reading takes, httparse reads the same way.
    #[test]
    fn mutated_heads_read_as_httparse_reads_them_or_fall_back() {
        let config = Config::default();
        let mut taken = 0;
        let mut tried = 0;
        let mut all_bytes_at = |bytes: &[u8], at: usize| {
            for b in 0..=255u8 {
                let mut m = bytes.to_vec();
                m[at] = b;
                taken += usize::from(check(&m, &config));
                tried += 1;
            }
        };
        for head in HEADS {
            for at in 0..head.len() {
                all_bytes_at(head, at);
                let mut removed = head.to_vec();
                removed.remove(at);
                check(&removed, &config);
                let mut doubled = head.to_vec();
                doubled.insert(at, head[at]);
                check(&doubled, &config);
                check(&head[..at], &config);
            }
        }
        // Most single-byte changes to a name, value or reason keep the head plain.
        assert!(taken * 4 > tried, "{taken} of {tried}");
    }
}
