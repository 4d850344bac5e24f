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

/// RFC 9110 `tchar` as a lookup table.
const TCHAR: [bool; 256] = {
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

/// A request-target: visible ASCII only, no `#` (fragments are never sent).
fn is_valid_target(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|&b| b > 0x20 && b < 0x7f && b != b'#')
}

/// A header value we are willing to send: no CR, LF or NUL.
#[inline]
pub(crate) fn is_valid_value(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// A Host value: visible ASCII only (no whitespace, no CTLs).
fn is_valid_host(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&b| b > 0x20 && b < 0x7f)
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
    upgrade: bool,
    close: bool,
    expect_continue: bool,
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
    let mut host: Option<&'h [u8]> = None;
    let (mut upgrade, mut close, mut expect_continue) = (false, false, false);
    for (name, value) in head.headers.iter() {
        if !is_token(name.as_bytes()) {
            return Err(RequestError::InvalidHeaderName(name.to_owned()));
        }
        if !is_valid_value(value) {
            return Err(RequestError::InvalidHeaderValue(name.to_owned()));
        }
        match name.len() {
            4 if host.is_none() && name.eq_ignore_ascii_case("host") => host = Some(value),
            6 if name.eq_ignore_ascii_case("expect") => {
                expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case("upgrade") => upgrade = true,
            10 if name.eq_ignore_ascii_case("connection") => {
                close |= value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            }
            _ => {}
        }
    }
    let host = host.unwrap_or(head.host.as_bytes());
    if !is_valid_host(host) {
        return Err(RequestError::InvalidHeaderValue("Host".to_owned()));
    }
    Ok(Scan {
        host,
        upgrade,
        close,
        expect_continue,
    })
}

/// Fields the encoder writes itself (Host) or owns (framing), so the caller's are skipped.
#[inline]
fn is_owned_field(name: &str) -> bool {
    match name.len() {
        4 => name.eq_ignore_ascii_case("host"),
        14 => name.eq_ignore_ascii_case("content-length"),
        17 => name.eq_ignore_ascii_case("transfer-encoding"),
        _ => false,
    }
}

impl ClientConnection {
    pub(crate) fn encode_request(
        &mut self,
        head: &RequestHead<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        if self.send != SendState::Idle || !matches!(self.recv, RecvState::Idle) {
            return Err(RequestError::WrongState);
        }
        let scan = validate(head)?;
        let host = scan.host;

        // Encode. Nothing below can fail.
        let headers = head.headers;
        let estimate = head.method.len()
            + head.target.len()
            + host.len()
            + headers.byte_len()
            + 64
            + headers.len() * 4;
        out.reserve(estimate);
        out.extend_from_slice(head.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(head.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
        for (name, value) in headers.iter() {
            if is_owned_field(name) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match body {
            RequestBody::None => {}
            RequestBody::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                push_dec(out, n);
                out.extend_from_slice(b"\r\n");
            }
            RequestBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        out.extend_from_slice(b"\r\n");

        // Record what the response side needs to know about this request.
        let method = head.method.as_bytes();
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
        Ok(())
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
