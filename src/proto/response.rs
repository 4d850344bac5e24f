//! Response side: incremental head parsing and the RFC 9112 section 6.3 framing decision.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use super::{Config, Framing, Headers, ProtocolError, ResponseHead, Version};

/// Header slots kept on the stack; larger `max_headers` fall back to a heap array.
const STACK_HEADERS: usize = 128;

/// Looks for the blank line that ends a header block.
///
/// `prev` holds the bytes of the block buffered so far; all of them were searched before, so only
/// `input` is scanned (a line end in `input` may look back into `prev`). `at_line_start` says that
/// the byte before `prev` ended a line (true for a trailer section, which follows `0\r\n`).
/// A blank line is `\r\n` or a bare `\n` after a line end. Returns the index in `input` just past
/// the blank line.
pub(crate) fn find_blank_line(prev: &[u8], input: &[u8], at_line_start: bool) -> Option<usize> {
    let back = |k: usize, d: usize| -> Option<u8> {
        // Byte `d` positions before input[k].
        if k >= d {
            Some(input[k - d])
        } else {
            let j = prev.len() as isize + k as isize - d as isize;
            if j >= 0 {
                Some(prev[j as usize])
            } else if j == -1 && at_line_start {
                Some(b'\n')
            } else {
                None
            }
        }
    };
    let mut from = 0;
    while let Some(p) = input[from..].iter().position(|&b| b == b'\n') {
        let k = from + p;
        match back(k, 1) {
            Some(b'\n') => return Some(k + 1),
            Some(b'\r') if back(k, 2) == Some(b'\n') => return Some(k + 1),
            _ => {}
        }
        from = k + 1;
    }
    None
}

fn map_httparse(e: httparse::Error, bytes: &[u8]) -> ProtocolError {
    use httparse::Error as E;
    match e {
        E::HeaderName => ProtocolError::InvalidHeaderName,
        E::HeaderValue | E::NewLine => ProtocolError::InvalidHeaderValue,
        E::TooManyHeaders => ProtocolError::TooManyHeaders,
        E::Version => {
            // Skip the leading blank lines httparse skips too.
            let start = bytes
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(bytes.len());
            if bytes[start..].starts_with(b"HTTP/") {
                ProtocolError::UnsupportedVersion
            } else {
                ProtocolError::InvalidStatusLine
            }
        }
        E::Status | E::Token => ProtocolError::InvalidStatusLine,
    }
}

/// Parses a response head with httparse, as `head_scan::parse_head_prefix` does for any head
/// the plain reading does not take.
pub(crate) fn parse_head_httparse(
    bytes: &[u8],
    config: &Config,
    spare: &mut Headers,
) -> Result<Option<(usize, ResponseHead, FramingFields)>, ProtocolError> {
    // Uninitialized slots: no 4 KiB memset per head on the hot path.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if config.max_headers <= STACK_HEADERS {
        &mut stack[..config.max_headers]
    } else {
        heap = Vec::with_capacity(config.max_headers);
        heap.resize_with(config.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, bytes, slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse(e, bytes)),
    };
    let version = match resp.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(ProtocolError::UnsupportedVersion),
    };
    let status = resp.code.ok_or(ProtocolError::InvalidStatusLine)?;
    if !(100..=599).contains(&status) {
        return Err(ProtocolError::InvalidStatusLine);
    }
    let mut framing = FramingFields::default();
    for h in resp.headers.iter() {
        framing.note(h.name.as_bytes(), h.value);
    }
    let mut headers = std::mem::take(spare);
    copy_fields(&mut headers, bytes, resp.headers);
    let head = ResponseHead {
        version,
        status,
        reason: reason_phrase(status, resp.reason.unwrap_or("")),
        headers,
    };
    Ok(Some((len, head, framing)))
}

/// Replaces `headers`' fields by httparse's `fields`, which are slices of `bytes`: the block
/// from the first name to the last value is copied in one piece (one copy, not two per field)
/// and each field is found in it by its offset in `bytes`.
fn copy_fields(headers: &mut Headers, bytes: &[u8], fields: &[httparse::Header<'_>]) {
    let base = bytes.as_ptr() as usize;
    // Wrapping: a slice outside `bytes` gives a range `fill_from_block` refuses, not a panic.
    let offset = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base);
    let (Some(first), Some(last)) = (fields.first(), fields.last()) else {
        headers.clear();
        return;
    };
    let start = offset(first.name.as_bytes());
    let end = offset(last.value).wrapping_add(last.value.len());
    let ranges = fields.iter().map(|h| {
        let n = offset(h.name.as_bytes()).wrapping_sub(start);
        let v = offset(h.value).wrapping_sub(start);
        (
            n..n.wrapping_add(h.name.len()),
            v..v.wrapping_add(h.value.len()),
        )
    });
    if start <= end && end <= bytes.len() && headers.fill_from_block(&bytes[start..end], ranges) {
        return;
    }
    // Only if httparse handed out a field that is not a slice of the input: copy field by field.
    headers.clear();
    let size = fields.iter().map(|h| h.name.len() + h.value.len()).sum();
    headers.reserve(fields.len(), size);
    for h in fields {
        headers.append(h.name, h.value);
    }
}

/// Whether `bytes` equals `lower` (lowercase letters and `-`, at least 8 bytes) in any letter
/// case, compared 8 bytes at a time. Exact for bytes httparse accepted in a field name or value:
/// setting bit 0x20 maps only `A`..`Z` onto letters and only CR onto `-`, and those hold no CR.
fn lower_eq(bytes: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let len = lower.len();
    debug_assert!(len >= 8);
    if bytes.len() != len || len < 8 {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s[at..]
            .first_chunk::<8>()
            .map_or(0, |w| u64::from_le_bytes(*w))
    };
    let mut at = 0;
    loop {
        // The last word may overlap the one before.
        let at_word = at.min(len - 8);
        if word(bytes, at_word) | CASE != word(lower, at_word) {
            return false;
        }
        if at_word + 8 >= len {
            return true;
        }
        at += 8;
    }
}

/// The usual Content-Length value, digits alone and short enough not to overflow, read without
/// the list and overflow checks of [`content_length`] (which decides everything else).
fn plain_number(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0, |n, &b| n * 10 + u64::from(b - b'0')))
}

/// Content-Length as noted over a head's fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum NotedLength {
    /// No Content-Length field.
    #[default]
    Absent,
    /// Every Content-Length value (lines and list members) is this number.
    Valid(u64),
    /// A value is not a number, or two values differ: [`ProtocolError::InvalidContentLength`]
    /// if the framing depends on it.
    Invalid,
}

/// What framing and persistence depend on, noted in the pass that copies a head's fields, so
/// that [`decide_framing`] does not search them again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// A `close` token in Connection.
    close: bool,
    /// A `keep-alive` token in Connection.
    keep_alive: bool,
    /// A Transfer-Encoding field (its list is checked only when the framing depends on it).
    transfer_encoding: bool,
    content_length: NotedLength,
    /// A Keep-Alive field was seen (only the first one is read).
    keep_alive_field: bool,
    /// The first Keep-Alive field's `timeout=N`, in seconds.
    keep_alive_timeout: Option<u64>,
}

impl FramingFields {
    /// Notes one field of a head httparse accepted. Names are compared by length first, so
    /// unrelated fields cost almost nothing.
    #[inline(always)]
    pub(super) fn note(&mut self, name: &[u8], value: &[u8]) {
        match name.len() {
            // Only the first Keep-Alive field is read.
            10 if !self.keep_alive_field && lower_eq(name, b"keep-alive") => {
                self.keep_alive_field = true;
                self.keep_alive_timeout = keep_alive_timeout(value);
            }
            10 if lower_eq(name, b"connection") => {
                if lower_eq(value, b"keep-alive") {
                    self.keep_alive = true;
                    return;
                }
                for token in value.split(|&b| b == b',') {
                    let token = trim_ows(token);
                    self.close |= token.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            14 if lower_eq(name, b"content-length") => {
                let n = match plain_number(value) {
                    Some(n) => Ok(Some(n)),
                    None => content_length(std::iter::once(value)),
                };
                self.content_length = match (self.content_length, n) {
                    (NotedLength::Absent, Ok(Some(n))) => NotedLength::Valid(n),
                    (NotedLength::Valid(prev), Ok(Some(n))) if prev == n => NotedLength::Valid(n),
                    _ => NotedLength::Invalid,
                };
            }
            17 if lower_eq(name, b"transfer-encoding") => self.transfer_encoding = true,
            _ => {}
        }
    }
}

impl FramingFields {
    /// The server's `Keep-Alive: timeout=N` in seconds, if its first Keep-Alive field says so.
    pub(crate) fn keep_alive_timeout(&self) -> Option<u64> {
        self.keep_alive_timeout
    }
}

/// The `timeout=N` of a Keep-Alive field value (a comma list of `name=value`; names in any
/// letter case, whitespace around names and numbers ignored), in seconds. A value that is not
/// UTF-8 says nothing.
fn keep_alive_timeout(value: &[u8]) -> Option<u64> {
    let value = std::str::from_utf8(value).ok()?;
    value.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("timeout") {
            v.trim().parse::<u64>().ok()
        } else {
            None
        }
    })
}

/// A reason phrase as kept in a [`ResponseHead`]: the usual phrase of a status as a static
/// string, so the common case allocates nothing; any other phrase is copied.
pub(super) fn reason_phrase(status: u16, reason: &str) -> Cow<'static, str> {
    let usual = match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    };
    if reason == usual {
        Cow::Borrowed(usual)
    } else {
        Cow::Owned(reason.to_owned())
    }
}

/// Parses a complete trailer section (ending with its blank line). Every line must end in CRLF.
pub(crate) fn parse_trailers(bytes: &[u8], config: &Config) -> Result<Headers, ProtocolError> {
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            return Err(ProtocolError::InvalidTrailers);
        }
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if config.max_headers <= STACK_HEADERS {
        &mut stack[..config.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; config.max_headers];
        &mut heap[..]
    };
    match httparse::parse_headers(bytes, slots) {
        Ok(httparse::Status::Complete((n, fields))) if n == bytes.len() => {
            let mut headers = Headers::new();
            for h in fields {
                headers.append(h.name, h.value);
            }
            Ok(headers)
        }
        Err(httparse::Error::TooManyHeaders) => Err(ProtocolError::TrailersTooLarge),
        _ => Err(ProtocolError::InvalidTrailers),
    }
}

/// Parses Content-Length field values: each a comma list of `1*DIGIT`, all identical.
pub(crate) fn content_length<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, ProtocolError> {
    let mut found: Option<u64> = None;
    let mut any = false;
    for value in values.by_ref() {
        any = true;
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.is_empty() {
                return Err(ProtocolError::InvalidContentLength);
            }
            let mut n: u64 = 0;
            for &b in item {
                if !b.is_ascii_digit() {
                    return Err(ProtocolError::InvalidContentLength);
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(ProtocolError::InvalidContentLength)?;
            }
            match found {
                Some(prev) if prev != n => return Err(ProtocolError::InvalidContentLength),
                _ => found = Some(n),
            }
        }
    }
    if any && found.is_none() {
        return Err(ProtocolError::InvalidContentLength);
    }
    Ok(found)
}

/// Strips optional whitespace (SP, HTAB) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Checks the transfer-coding list across every Transfer-Encoding line.
///
/// Policy (RFC 9112 section 6.3 rules 4 and 5 leave the choice between decoding a coding and
/// failing): the core decodes `chunked` only, so the list must be exactly one `chunked`,
/// without parameters, in any letter case. Any other coding (`gzip, chunked`, a lone `gzip`,
/// `chunked, identity`), `chunked` twice or with parameters is
/// [`ProtocolError::UnsupportedTransferCoding`]: bytes still in a transfer coding are never
/// handed out as if they were the body, and no body is read until close on their account.
pub(crate) fn transfer_coding<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<(), ProtocolError> {
    let mut chunked_seen = false;
    for value in values {
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.is_empty() {
                continue;
            }
            if chunked_seen || !item.eq_ignore_ascii_case(b"chunked") {
                return Err(ProtocolError::UnsupportedTransferCoding);
            }
            chunked_seen = true;
        }
    }
    if chunked_seen {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedTransferCoding)
    }
}

/// Facts about the request that shape how its response is framed.
pub(crate) struct RequestFacts {
    pub head: bool,
    pub connect: bool,
    pub close: bool,
}

/// Decides framing and persistence of a final response (RFC 9112 sections 6.3 and 9.3) from
/// what its fields said (`fields`, noted while parsing it).
pub(crate) fn decide_framing(
    head: &ResponseHead,
    fields: &FramingFields,
    req: &RequestFacts,
) -> Result<(Framing, bool), ProtocolError> {
    let mut keep_alive = match head.version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };
    if req.close {
        keep_alive = false;
    }
    let status = head.status;
    if req.head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok((Framing::NoBody, keep_alive));
    }
    if req.connect && (200..300).contains(&status) {
        // The connection becomes a tunnel; the caller takes the bytes that follow.
        return Ok((Framing::NoBody, false));
    }
    if fields.transfer_encoding {
        transfer_coding(head.headers.get_all("transfer-encoding"))?;
        if fields.content_length != NotedLength::Absent || head.version == Version::Http10 {
            // Smuggling indicator or faulty framing: decode by TE, then close.
            keep_alive = false;
        }
        return Ok((Framing::Chunked, keep_alive));
    }
    match fields.content_length {
        NotedLength::Valid(n) => Ok((Framing::Length(n), keep_alive)),
        NotedLength::Invalid => Err(ProtocolError::InvalidContentLength),
        NotedLength::Absent => Ok((Framing::CloseDelimited, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::head_scan::parse_head;

    #[test]
    fn blank_line_search_across_buffers() {
        assert_eq!(find_blank_line(b"", b"A\r\n\r\nrest", false), Some(5));
        assert_eq!(find_blank_line(b"A\r\n\r", b"\nrest", false), Some(1));
        assert_eq!(find_blank_line(b"A\r\n", b"\r\n", false), Some(2));
        assert_eq!(find_blank_line(b"A\n", b"\nx", false), Some(1));
        assert_eq!(find_blank_line(b"", b"\r\n", false), None);
        assert_eq!(find_blank_line(b"", b"\r\n", true), Some(2));
        assert_eq!(find_blank_line(b"", b"A: b\r\nC: d\r\n", true), None);
    }

    #[test]
    fn heads_reuse_spare_storage_and_usual_phrases() {
        let config = Config::default();
        let mut spare = Headers::new();
        spare.append("Old", b"field");
        let cap = spare.capacity();
        let (head, _) =
            parse_head(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", &config, &mut spare).unwrap();
        assert_eq!(head.headers.iter().collect::<Vec<_>>(), [("A", &b"1"[..])]);
        assert_eq!(head.headers.capacity(), cap);
        assert_eq!(spare.capacity(), 0);
        assert!(matches!(head.reason, Cow::Borrowed("OK")));
        let (head, _) = parse_head(b"HTTP/1.1 200 Fine\r\n\r\n", &config, &mut spare).unwrap();
        assert_eq!(head.reason, "Fine");
        let (head, _) = parse_head(b"HTTP/1.1 299 \r\n\r\n", &config, &mut spare).unwrap();
        assert_eq!(head.reason, "");
    }

    #[test]
    fn names_compare_a_word_at_a_time_in_any_case() {
        assert!(lower_eq(b"Connection", b"connection"));
        assert!(lower_eq(b"CONNECTION", b"connection"));
        assert!(lower_eq(b"TRANSFER-ENCODINg", b"transfer-encoding"));
        assert!(lower_eq(b"content-length", b"content-length"));
        for other in [
            &b"connectiom"[..],
            b"connection ",
            b"connectio",
            b"transfer_encoding",
            b"transfer-encodinh",
            b"Xontent-Length",
            b"content-lengtX",
            b"\xe3ontent-length",
        ] {
            assert!(!lower_eq(other, b"connection"), "{other:?}");
            assert!(!lower_eq(other, b"content-length"), "{other:?}");
            assert!(!lower_eq(other, b"transfer-encoding"), "{other:?}");
        }
    }

    /// The decision as it was made before the fields were noted while parsing: by searching
    /// the parsed fields. Kept here to check the noted version decides the same way.
    fn framing_by_search(
        head: &ResponseHead,
        req: &RequestFacts,
    ) -> Result<(Framing, bool), ProtocolError> {
        let h = &head.headers;
        let close = h.has_token("connection", "close");
        let ka = h.has_token("connection", "keep-alive");
        let mut keep_alive = match head.version {
            Version::Http11 => !close,
            Version::Http10 => ka && !close,
        };
        keep_alive &= !req.close;
        let status = head.status;
        if req.head || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok((Framing::NoBody, keep_alive));
        }
        if req.connect && (200..300).contains(&status) {
            return Ok((Framing::NoBody, false));
        }
        if h.contains("transfer-encoding") {
            transfer_coding(h.get_all("transfer-encoding"))?;
            if h.contains("content-length") || head.version == Version::Http10 {
                keep_alive = false;
            }
            return Ok((Framing::Chunked, keep_alive));
        }
        match content_length(h.get_all("content-length"))? {
            Some(n) => Ok((Framing::Length(n), keep_alive)),
            None => Ok((Framing::CloseDelimited, false)),
        }
    }

    #[test]
    fn noted_fields_decide_as_a_search_of_the_fields_would() {
        let many_lengths = "Content-Length: 7\r\n".repeat(128);
        let fields: &[&str] = &[
            "",
            "Content-Length: 5\r\n",
            "Content-Length: 0\r\n",
            "content-length: 5\r\nCONTENT-LENGTH: 5\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: 5,\r\n",
            "Content-Length: abc\r\n",
            "Content-Length: \r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 9999999999999999999\r\n",
            "Content-Length: 18446744073709551615\r\n",
            "Content-Length: 18446744073709551616\r\n",
            "Content-Length: 00000000000000000000005\r\n",
            "Transfer-Encoding: chunked\r\n",
            "TRANSFER-ENCODING: Chunked\r\nContent-Length: abc\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Connection: close\r\nContent-Length: 1\r\n",
            "Connection: Keep-Alive\r\nContent-Length: 1\r\n",
            "connection: keep-alive, close\r\nContent-Length: 1\r\n",
            "Connection: upgrade ,\tKEEP-ALIVE\r\nContent-Length: 1\r\n",
            "Connection: \u{ff}keep-alive\r\nContent-Length: 1\r\n",
            "Connection: keep-alive\r\nConnection: close\r\n",
            "Connectiom: close\r\nContent-Lengtx: 5\r\nTransfer-Encodinx: gzip\r\n",
            "Keep-Alive: timeout=5\r\nContent-Length: 2\r\n",
            &many_lengths,
        ];
        let requests = [
            (false, false, false),
            (true, false, false),
            (false, true, false),
        ];
        let config = Config::default();
        let mut checked = 0;
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            for status in [200, 101, 204, 304, 404] {
                for f in fields {
                    let mut bytes = format!("{version} {status} X\r\n{f}\r\n").into_bytes();
                    // The obs-text byte itself, not its UTF-8 encoding.
                    if let Some(i) = bytes.windows(2).position(|w| w == [0xc3, 0xbf]) {
                        bytes.splice(i..i + 2, [0xff]);
                    }
                    let (head, noted) = parse_head(&bytes, &config, &mut Headers::new()).unwrap();
                    for &(head_req, connect, close) in &requests {
                        for close in [close, true] {
                            let req = RequestFacts {
                                head: head_req,
                                connect,
                                close,
                            };
                            assert_eq!(
                                decide_framing(&head, &noted, &req),
                                framing_by_search(&head, &req),
                                "{:?} head={head_req} connect={connect} close={close}",
                                String::from_utf8_lossy(&bytes)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 5 * fields.len() * 6);
    }

    /// The Keep-Alive timeout as it was read before it was noted while parsing: a search of
    /// the parsed fields. Kept here to check the noted one reads the same.
    fn keep_alive_by_search(headers: &Headers) -> Option<u64> {
        keep_alive_timeout(headers.get("keep-alive")?)
    }

    #[test]
    fn noted_keep_alive_reads_as_a_search_of_the_fields_would() {
        let fields: &[&[u8]] = &[
            b"",
            b"Keep-Alive: timeout=5, max=100\r\n",
            b"keep-alive: max=100, TIMEOUT = 7 \r\n",
            b"KEEP-ALIVE: timeout=5\r\nKeep-Alive: timeout=9\r\n",
            b"Keep-Alive: max=1\r\nKeep-Alive: timeout=9\r\n",
            b"Keep-Alive: timeout=\r\n",
            b"Keep-Alive: timeout=+3\r\n",
            b"Keep-Alive: timeout=-3\r\n",
            b"Keep-Alive: timeout=18446744073709551615\r\n",
            b"Keep-Alive: timeout=18446744073709551616\r\n",
            b"Keep-Alive: timeout=1e3, timeout=4\r\n",
            b"Keep-Alive: timeout\r\n",
            b"Keep-Alive: \xfftimeout=5\r\n",
            b"Keep-Alive: timeout=\xc2\xa05\r\n",
            b"Keep-Alive: \xff\r\nKeep-Alive: timeout=5\r\n",
            b"Keep-Alivf: timeout=5\r\nConnection: timeout=5\r\n",
            b"Connection: keep-alive\r\nKeep-Alive: timeout=2\r\n",
        ];
        let config = Config::default();
        for f in fields {
            let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
            bytes.extend_from_slice(f);
            bytes.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            let (head, noted) = parse_head(&bytes, &config, &mut Headers::new()).unwrap();
            assert_eq!(
                noted.keep_alive_timeout(),
                keep_alive_by_search(&head.headers),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// The fields copied in one pass are httparse's, in order, as appending them one by one
    /// gives, for every layout of a head the parser accepts.
    #[test]
    fn copied_fields_equal_the_parsers_fields() {
        let many = "X-Many: v\r\n".repeat(127);
        let heads: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\nA:1\nBb:  two words \t\n\n",
            b"HTTP/1.1 200 OK\r\nEmpty:\r\nAlso-Empty: \t \r\nZ: z\r\n\r\n",
            b"HTTP/1.0 404 Nope\r\nX: \xff\x80 obs\r\nx: second\r\n\r\n",
            b"\r\n\nHTTP/1.1 204 No Content\r\nServer: t\r\nDate: now\r\n\r\n",
            many.as_bytes(),
        ];
        let config = Config::default();
        let mut spare = Headers::new();
        spare.append("Stale", b"field of an earlier head");
        for head in heads {
            let bytes = if head.starts_with(b"X-Many") {
                [&b"HTTP/1.1 200 OK\r\n"[..], head, b"\r\n"].concat()
            } else {
                head.to_vec()
            };
            let (parsed, _) = parse_head(&bytes, &config, &mut spare).unwrap();
            let mut slots = vec![httparse::EMPTY_HEADER; config.max_headers];
            let mut reference = httparse::Response::new(&mut slots);
            assert!(reference.parse(&bytes).unwrap().is_complete());
            let expected: Headers = reference
                .headers
                .iter()
                .map(|h| (h.name, h.value))
                .collect();
            let shown = String::from_utf8_lossy(&bytes);
            assert_eq!(parsed.headers, expected, "{shown:?}");
            assert_eq!(parsed.headers.len(), expected.len(), "{shown:?}");
            assert_eq!(parsed.headers.byte_len(), expected.byte_len(), "{shown:?}");
            for (name, value) in expected.iter() {
                assert_eq!(
                    parsed
                        .headers
                        .get_all(&name.to_ascii_uppercase())
                        .collect::<Vec<_>>(),
                    expected.get_all(name).collect::<Vec<_>>(),
                    "{shown:?}"
                );
                assert!(parsed.headers.get_all(name).any(|v| v == value));
            }
            spare = parsed.headers;
        }
    }

    #[test]
    fn content_length_rules() {
        let one = |v: &'static [u8]| content_length(std::iter::once(v));
        assert_eq!(one(b"5"), Ok(Some(5)));
        assert_eq!(one(b" 5 , 5 "), Ok(Some(5)));
        assert_eq!(one(b"0005"), Ok(Some(5)));
        assert_eq!(one(b"18446744073709551615"), Ok(Some(u64::MAX)));
        for bad in [
            &b"+5"[..],
            b"-6",
            b"crap",
            b"0x5",
            b"5 5",
            b"",
            b"36893488147419103232",
            b"18446744073709551616",
            b"1_0",
            b"5, 6",
            b"5,",
        ] {
            assert_eq!(
                one(bad),
                Err(ProtocolError::InvalidContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            content_length([&b"5"[..], b"6"].into_iter()),
            Err(ProtocolError::InvalidContentLength)
        );
        assert_eq!(content_length([&b"5"[..], b"5"].into_iter()), Ok(Some(5)));
        assert_eq!(content_length(std::iter::empty()), Ok(None));
    }

    #[test]
    fn transfer_coding_rules() {
        let te = |v: &[&'static [u8]]| transfer_coding(v.iter().copied());
        assert_eq!(te(&[b"chunked"]), Ok(()));
        assert_eq!(te(&[b"CHUNKED"]), Ok(()));
        assert_eq!(te(&[b" chunked , "]), Ok(()));
        for bad in [
            &[&b"gzip, chunked"[..]][..],
            &[b"gzip", b"chunked"],
            &[b"gzip"],
            &[b"chunked, identity"],
            &[b"identity"],
            &[b"chunked;foo=bar"],
            &[b"chunked, chunked"],
            &[b"chunked", b"chunked"],
            &[b""],
            &[b"ch unked"],
        ] {
            assert_eq!(
                te(bad),
                Err(ProtocolError::UnsupportedTransferCoding),
                "{bad:?}"
            );
        }
    }
}
