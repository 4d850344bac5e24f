//! Request side: head encoding, body framing and the `Expect: 100-continue` gate.

use super::{ClientConnection, RecvState, RequestBody, RequestError, RequestHead};

/// How the request body is framed once the head went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendState {
    /// No request head sent yet.
    Idle,
    /// The head is out; body bytes are expected.
    Body {
        /// Declared length, or `None` when chunked.
        declared: Option<u64>,
        /// Body bytes encoded so far.
        written: u64,
    },
    /// The request is completely encoded (head and, if any, body).
    Done,
}

/// RFC 9110 `tchar` as a lookup table (the bytes httparse accepts in a field name too).
pub(super) const TCHAR: [bool; 256] = {
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

/// Whether `b` is an RFC 9110 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Whether `s` is a non-empty RFC 9110 token.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Eight copies of a byte, as a word (`LANES * b`).
const LANES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

// The byte-class checks below test eight bytes at a time (a word read little-endian): one
// pass, a few arithmetic operations per word and no branch per byte. Each says whether *any*
// byte of the word is in the class; a lane above a true one may be flagged spuriously by a
// borrow or carry, which cannot change the answer.

/// Whether any byte of `w` is below `n` (`n <= 128`).
#[inline]
fn any_below(w: u64, n: u8) -> bool {
    w.wrapping_sub(LANES * u64::from(n)) & !w & HIGH != 0
}

/// Whether any byte of `w` is above `n` (`n < 128`).
#[inline]
fn any_above(w: u64, n: u8) -> bool {
    (w.wrapping_add(LANES * u64::from(127 - n)) | w) & HIGH != 0
}

/// Whether any byte of `w` is `b`.
#[inline]
fn any_eq(w: u64, b: u8) -> bool {
    any_below(w ^ (LANES * u64::from(b)), 1)
}

/// A byte outside visible ASCII (`0x21..=0x7e`).
#[inline]
fn any_invisible(w: u64) -> bool {
    any_below(w, 0x21) || any_above(w, 0x7e)
}

/// CR, LF or NUL.
#[inline]
fn any_line_break_or_nul(w: u64) -> bool {
    any_eq(w, 0) || any_eq(w, b'\r') || any_eq(w, b'\n')
}

#[inline]
fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("eight bytes"))
}

#[inline]
fn half(b: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes(b.try_into().expect("four bytes")))
}

/// Whether `bad` holds for no word of `s`. Words overlap where the length is not a multiple
/// of eight (a byte tested twice is harmless); under four bytes, the unused lanes hold `pad`,
/// a byte `bad` accepts.
#[inline]
fn no_word(s: &[u8], pad: u8, bad: impl Fn(u64) -> bool) -> bool {
    let n = s.len();
    if n >= 8 {
        let mut words = s.chunks_exact(8);
        if words.by_ref().any(|w| bad(word(w))) {
            return false;
        }
        return words.remainder().is_empty() || !bad(word(&s[n - 8..]));
    }
    let w = if n >= 4 {
        half(&s[..4]) | half(&s[n - 4..]) << 32
    } else if n > 0 {
        // Indices 0, n/2 and n-1 cover every byte of one to three.
        (LANES * u64::from(pad)) & !0xff_ffff
            | u64::from(s[0])
            | u64::from(s[n / 2]) << 8
            | u64::from(s[n - 1]) << 16
    } else {
        return true;
    };
    !bad(w)
}

/// A request-target: visible ASCII only, no `#` (fragments are never sent).
fn is_valid_target(t: &[u8]) -> bool {
    !t.is_empty() && no_word(t, b'/', |w| any_invisible(w) || any_eq(w, b'#'))
}

/// A header value we are willing to send: no CR, LF or NUL.
#[inline]
pub(crate) fn is_valid_value(v: &[u8]) -> bool {
    no_word(v, b' ', any_line_break_or_nul)
}

/// A Host value: visible ASCII only (no whitespace, no CTLs).
fn is_valid_host(v: &[u8]) -> bool {
    !v.is_empty() && no_word(v, b'a', any_invisible)
}

/// Appends `n` in decimal.
pub(crate) fn push_dec(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` in lower-case hexadecimal.
pub(crate) fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// What the caller's fields say, gathered in the validation pass.
pub(crate) struct Scan<'h> {
    host: &'h [u8],
    /// The host is the caller's `Host` field's, not the default.
    host_given: bool,
    upgrade: bool,
    close: bool,
    expect_continue: bool,
}

impl<'h> Scan<'h> {
    /// Nothing seen yet; `host` is the one to use unless a field gives another.
    fn new(host: &'h [u8]) -> Self {
        Scan {
            host,
            host_given: false,
            upgrade: false,
            close: false,
            expect_continue: false,
        }
    }

    /// Notes what one caller field tells the core; `host_seen` says whether a `Host` field
    /// came before (the first one wins).
    #[inline]
    fn note(&mut self, name: &[u8], value: &'h [u8], host_seen: &mut bool) {
        match name.len() {
            4 if !*host_seen && name.eq_ignore_ascii_case(b"host") => {
                self.host = value;
                *host_seen = true;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                self.close |= value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            }
            _ => {}
        }
    }
}

/// Checks everything about a request head that can be wrong, before a byte is written, and
/// gathers the fields the core acts on, in one pass over the caller's fields.
pub(crate) fn validate<'h>(head: &RequestHead<'h>) -> Result<Scan<'h>, RequestError> {
    if !is_token(head.method.as_bytes()) {
        return Err(RequestError::InvalidMethod);
    }
    if !is_valid_target(head.target.as_bytes()) {
        return Err(RequestError::InvalidTarget);
    }
    let mut scan = Scan::new(head.host.as_bytes());
    let mut host_seen = false;
    for (name, value) in head.headers.fields() {
        if !is_token(name) {
            return Err(RequestError::InvalidHeaderName(field_name(name)));
        }
        if !is_valid_value(value) {
            return Err(RequestError::InvalidHeaderValue(field_name(name)));
        }
        scan.note(name, value, &mut host_seen);
    }
    if !is_valid_host(scan.host) {
        return Err(RequestError::InvalidHeaderValue("Host".to_owned()));
    }
    Ok(scan)
}

/// A field name for an error (names are appended from `&str`, so nothing is lost).
fn field_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The fields the core acts on, for a head validated already ([`validate`]'s pass without
/// its checks), and fields added after the caller's (`added`: never `Host` or framing).
#[inline]
fn scan<'h>(head: &RequestHead<'h>, added: &[(&str, &[u8])]) -> Scan<'h> {
    let mut scan = Scan::new(head.host.as_bytes());
    let mut host_seen = false;
    for (name, value) in head.headers.fields() {
        scan.note(name, value, &mut host_seen);
    }
    scan.host_given = host_seen;
    for &(name, value) in added {
        // Only `Connection` among the fields a client adds tells the core anything.
        if name.len() == 10
            && name.as_bytes()[0] | 0x20 == b'c'
            && name.eq_ignore_ascii_case("connection")
        {
            scan.close |= value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    scan
}

/// What [`validate`] finds about a request target and the `Host` value used when the
/// caller's fields give none: both depend on the URL alone, so a client sending many
/// requests to one URL checks them once ([`validate_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetCheck {
    target_ok: bool,
    host_ok: bool,
}

impl TargetCheck {
    /// Checks `target` and the default `host` as [`validate`] does.
    pub(crate) fn new(target: &str, host: &str) -> Self {
        TargetCheck {
            target_ok: is_valid_target(target.as_bytes()),
            host_ok: is_valid_host(host.as_bytes()),
        }
    }
}

/// [`validate`] for a head whose target and default `Host` (`head.target`, `head.host`)
/// were checked already (`checked`, made from them): the same answer, the same error first,
/// without going over the URL's bytes again.
///
/// Inline for a head without fields of the caller's whose target and `Host` are good (most
/// heads): then only the method is left to check.
#[inline]
pub(crate) fn validate_with(
    head: &RequestHead<'_>,
    checked: TargetCheck,
) -> Result<(), RequestError> {
    debug_assert_eq!(checked, TargetCheck::new(head.target, head.host));
    if head.headers.is_empty()
        && checked.target_ok
        && checked.host_ok
        && is_token(head.method.as_bytes())
    {
        return Ok(());
    }
    validate_fields_with(head, checked)
}

/// [`validate_with`] the long way: the method, the target, each field, the `Host` in use.
#[inline(never)]
fn validate_fields_with(head: &RequestHead<'_>, checked: TargetCheck) -> Result<(), RequestError> {
    if !is_token(head.method.as_bytes()) {
        return Err(RequestError::InvalidMethod);
    }
    if !checked.target_ok {
        return Err(RequestError::InvalidTarget);
    }
    let mut given_host = None;
    for (name, value) in head.headers.fields() {
        if !is_token(name) {
            return Err(RequestError::InvalidHeaderName(field_name(name)));
        }
        if !is_valid_value(value) {
            return Err(RequestError::InvalidHeaderValue(field_name(name)));
        }
        if given_host.is_none() && name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            given_host = Some(value);
        }
    }
    let host_ok = match given_host {
        Some(host) => is_valid_host(host),
        None => checked.host_ok,
    };
    if !host_ok {
        return Err(RequestError::InvalidHeaderValue("Host".to_owned()));
    }
    Ok(())
}

/// Pieces of request heads encoded ahead, once, for every request they fit: a client
/// sending many requests to one URL with the same added fields copies each in one piece.
/// `None` pieces are encoded from the head as usual.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Encoded<'a> {
    /// [`encode_line`] of the head's target and default `Host`; not used for a head whose
    /// caller's fields give a `Host`.
    pub(crate) line: Option<&'a [u8]>,
    /// The added fields, encoded: written (and looked at) instead of the list given with it.
    pub(crate) added: Option<EncodedFields<'a>>,
    /// `line`, then `added`'s lines, then the blank line, in one piece: written instead of
    /// them for a head without fields of the caller's and without a body (with `added`
    /// given, which tells what the fields mean).
    pub(crate) whole: Option<&'a [u8]>,
}

/// Fields a client adds to a request, encoded ahead ([`encode_fields`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedFields<'a> {
    /// The field lines.
    pub(crate) lines: &'a [u8],
    /// Whether they hold `Connection: close`.
    pub(crate) close: bool,
}

/// The request line after its method, and the `Host` field: `" {target} HTTP/1.1\r\nHost:
/// {host}\r\n"`.
pub(crate) fn encode_line(target: &str, host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() + host.len() + 20);
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Field lines, `"{name}: {value}\r\n"` each.
pub(crate) fn encode_fields(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(name, value) in fields {
        push_field(&mut out, name.as_bytes(), value);
    }
    out
}

/// Bytes of the decimal form of `n`.
fn dec_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Fields the encoder writes itself (Host) or owns (framing), so the caller's are skipped.
#[inline]
fn is_owned_field(name: &[u8]) -> bool {
    match name.len() {
        4 => name.eq_ignore_ascii_case(b"host"),
        14 => name.eq_ignore_ascii_case(b"content-length"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// The framing fields the encoder writes.
const CONTENT_LENGTH: &[u8] = b"Content-Length: ";
const CHUNKED: &[u8] = b"Transfer-Encoding: chunked\r\n";

/// Appends one field line.
#[inline]
fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

impl ClientConnection {
    pub(crate) fn encode_request(
        &mut self,
        head: &RequestHead<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        self.check_idle()?;
        let scan = validate(head)?;
        self.encode_scanned(head, &[], Encoded::default(), &scan, body, out);
        Ok(())
    }

    /// [`Self::send_request`] for a head whose method, target, `Host` and fields were
    /// checked already by [`validate_request`](super::validate_request): the agent checks
    /// each request once, when it is admitted, and writes it later without checking again.
    /// Only the connection's state is checked here (debug builds check the head again).
    ///
    /// `added` are fields written after the caller's (the agent's `User-Agent`,
    /// `Connection: close`, proxy credentials), valid and never `Host` or framing fields:
    /// written as they are, without first being copied into one list with the caller's.
    ///
    /// `encoded` gives pieces encoded ahead (for this head's target and default `Host`, and
    /// for `added`), copied instead of encoding them again.
    pub(crate) fn send_validated_request(
        &mut self,
        head: &RequestHead<'_>,
        added: &[(&str, &[u8])],
        encoded: Encoded<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        debug_assert!(
            encoded
                .line
                .is_none_or(|l| l == encode_line(head.target, head.host)),
            "the line encoded ahead is this head's"
        );
        debug_assert!(
            encoded
                .added
                .is_none_or(|a| added.is_empty() || a.lines == encode_fields(added)),
            "the fields encoded ahead are those added"
        );
        debug_assert!(
            encoded
                .whole
                .is_none_or(|w| encoded.line.is_some_and(|l| encoded
                    .added
                    .is_some_and(|a| *w == [l, a.lines, b"\r\n"].concat()))),
            "the whole piece is the line and the fields encoded ahead"
        );
        debug_assert!(validate(head).is_ok(), "the head was validated");
        debug_assert!(
            added.iter().all(|&(n, v)| is_token(n.as_bytes())
                && is_valid_value(v)
                && !is_owned_field(n.as_bytes())),
            "added fields are valid and not the encoder's own"
        );
        self.check_idle()?;
        let scan = match encoded.added {
            Some(fields) => {
                let mut scan = scan(head, &[]);
                scan.close |= fields.close;
                scan
            }
            None => scan(head, added),
        };
        self.encode_scanned(head, added, encoded, &scan, body, out);
        Ok(())
    }

    /// [`Self::send_validated_request`] for the commonest head: no field of the caller's and
    /// no body, so that it is its method and the piece encoded ahead ([`Encoded::whole`]) for
    /// its target and the added fields (`close`: whether those hold `Connection: close`).
    /// The head is `first` then `rest`: the method and the piece, or the two in one piece
    /// (a target keeps one for `GET`) and nothing. Nothing is scanned or measured: the bytes
    /// are copied and the exchange's state recorded.
    #[inline]
    pub(crate) fn send_whole_request(
        &mut self,
        method: &str,
        first: &[u8],
        rest: &[u8],
        close: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        debug_assert!(
            [first, rest].concat().starts_with(method.as_bytes()),
            "the head starts with its method"
        );
        debug_assert!(
            is_token(method.as_bytes()),
            "the head was validated: {method:?}"
        );
        self.check_idle()?;
        if rest.is_empty() {
            out.extend_from_slice(first);
        } else {
            out.reserve(first.len() + rest.len());
            out.extend_from_slice(first);
            out.extend_from_slice(rest);
        }
        let scan = Scan {
            host: &[],
            host_given: false,
            upgrade: false,
            close,
            expect_continue: false,
        };
        self.record_sent(method.as_bytes(), &scan, RequestBody::None);
        Ok(())
    }

    /// A request head may only be written on a fresh connection or after a reset.
    fn check_idle(&self) -> Result<(), RequestError> {
        if self.send != SendState::Idle || !matches!(self.recv, RecvState::Idle) {
            return Err(RequestError::WrongState);
        }
        Ok(())
    }

    /// Writes a checked head, the caller's fields then `added`, and records what the response
    /// side needs. Nothing here can fail. The head's exact length is reserved first, so
    /// each piece is a copy into room already there.
    fn encode_scanned(
        &mut self,
        head: &RequestHead<'_>,
        added: &[(&str, &[u8])],
        encoded: Encoded<'_>,
        scan: &Scan<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) {
        let headers = head.headers;
        // A head of the line and the added fields alone (no field of the caller's, no body
        // framing) is the method and one piece encoded ahead.
        let whole = encoded
            .whole
            .filter(|_| headers.is_empty() && body == RequestBody::None && encoded.added.is_some());
        if let Some(whole) = whole {
            out.reserve(head.method.len() + whole.len());
            out.extend_from_slice(head.method.as_bytes());
            out.extend_from_slice(whole);
        } else {
            let host = scan.host;
            let line = encoded.line.filter(|_| !scan.host_given);
            // The method and the blank line.
            let mut len = head.method.len() + 2;
            len += match line {
                Some(line) => line.len(),
                // " T HTTP/1.1\r\nHost: H\r\n"
                None => head.target.len() + host.len() + 20,
            };
            for (name, value) in headers.fields() {
                if !is_owned_field(name) {
                    len += name.len() + value.len() + 4;
                }
            }
            len += match encoded.added {
                Some(fields) => fields.lines.len(),
                None => added.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
            };
            len += match body {
                RequestBody::None => 0,
                RequestBody::Length(n) => CONTENT_LENGTH.len() + dec_len(n) + 2,
                RequestBody::Chunked => CHUNKED.len(),
            };
            out.reserve(len);
            let start = out.len();
            out.extend_from_slice(head.method.as_bytes());
            match line {
                Some(line) => out.extend_from_slice(line),
                None => {
                    out.push(b' ');
                    out.extend_from_slice(head.target.as_bytes());
                    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
                    out.extend_from_slice(host);
                    out.extend_from_slice(b"\r\n");
                }
            }
            for (name, value) in headers.fields() {
                if is_owned_field(name) {
                    continue;
                }
                push_field(out, name, value);
            }
            match encoded.added {
                Some(fields) => out.extend_from_slice(fields.lines),
                None => {
                    for &(name, value) in added {
                        push_field(out, name.as_bytes(), value);
                    }
                }
            }
            match body {
                RequestBody::None => {}
                RequestBody::Length(n) => {
                    out.extend_from_slice(CONTENT_LENGTH);
                    push_dec(out, n);
                    out.extend_from_slice(b"\r\n");
                }
                RequestBody::Chunked => out.extend_from_slice(CHUNKED),
            }
            out.extend_from_slice(b"\r\n");
            debug_assert_eq!(out.len() - start, len, "the reserved length is exact");
        }

        self.record_sent(head.method.as_bytes(), scan, body);
    }

    /// Records what the response side needs to know about a request whose head was written.
    #[inline]
    fn record_sent(&mut self, method: &[u8], scan: &Scan<'_>, body: RequestBody) {
        self.req.head = method == b"HEAD";
        self.req.connect = method == b"CONNECT";
        self.req.upgrade = scan.upgrade;
        self.req.close = scan.close;
        self.req.body = body;
        let has_content = match body {
            RequestBody::None | RequestBody::Length(0) => false,
            RequestBody::Length(_) | RequestBody::Chunked => true,
        };
        self.req.awaiting_continue = has_content && scan.expect_continue;
        self.req.early_final = false;
        self.send = match body {
            RequestBody::None | RequestBody::Length(0) => SendState::Done,
            RequestBody::Length(n) => SendState::Body {
                declared: Some(n),
                written: 0,
            },
            RequestBody::Chunked => SendState::Body {
                declared: None,
                written: 0,
            },
        };
        self.recv = RecvState::Head;
    }

    pub(crate) fn encode_body(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        match self.send {
            SendState::Body { declared, written } => {
                if !self.may_send_body() {
                    return Err(RequestError::WrongState);
                }
                let len = data.len() as u64;
                match declared {
                    Some(declared) => {
                        let total = written.checked_add(len);
                        if total.is_none_or(|t| t > declared) {
                            return Err(RequestError::BodyTooLong { declared });
                        }
                        out.extend_from_slice(data);
                    }
                    None => {
                        if data.is_empty() {
                            return Ok(());
                        }
                        out.reserve(data.len() + 20);
                        push_hex(out, len);
                        out.extend_from_slice(b"\r\n");
                        out.extend_from_slice(data);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                self.send = SendState::Body {
                    declared,
                    written: written + len,
                };
                Ok(())
            }
            SendState::Done if data.is_empty() => Ok(()),
            SendState::Done => match self.req.body {
                RequestBody::Length(declared) => Err(RequestError::BodyTooLong { declared }),
                _ => Err(RequestError::WrongState),
            },
            SendState::Idle => Err(RequestError::WrongState),
        }
    }

    pub(crate) fn encode_finish(&mut self, out: &mut Vec<u8>) -> Result<(), RequestError> {
        match self.send {
            SendState::Body { declared, written } => {
                if !self.may_send_body() {
                    return Err(RequestError::WrongState);
                }
                match declared {
                    Some(declared) if written < declared => {
                        return Err(RequestError::BodyTooShort { declared, written });
                    }
                    Some(_) => {}
                    None => out.extend_from_slice(b"0\r\n\r\n"),
                }
                self.send = SendState::Done;
                Ok(())
            }
            // Finishing a body that is already complete (or absent) is harmless.
            SendState::Done => Ok(()),
            SendState::Idle => Err(RequestError::WrongState),
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
