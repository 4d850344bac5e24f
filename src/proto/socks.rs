//! The client side of a SOCKS5 handshake (RFC 1928, with RFC 1929 username/password
//! authentication), sans-IO: bytes from the proxy go in, bytes for the proxy and one event
//! come out. Only the `CONNECT` command; no GSSAPI, no `BIND`, no UDP.
//!
//! # Driving contract
//!
//! 1. [`SocksClient::new`] checks the target and credentials (a name over 255 bytes is
//!    refused before anything is sent); [`SocksClient::start`] writes the method selection.
//! 2. Every byte read from the proxy goes to [`SocksClient::receive`], which consumes a prefix
//!    of its input, may append bytes to send, and returns [`SocksEvent::NeedMore`] or
//!    [`SocksEvent::Connected`]. The input after `Connected` belongs to the tunnel.
//! 3. When the proxy closes first, [`SocksClient::receive_eof`] gives the error to report.
//!
//! The state it keeps is bounded: a reply is at most 262 bytes. Errors latch: once `receive`
//! fails, every later call returns the same error.
//!
//! ```
//! use weft::proto::socks::{SocksClient, SocksEvent, SocksTarget};
//!
//! let target = SocksTarget::Domain("example.test".into(), 443);
//! let mut client = SocksClient::new(target, None).unwrap();
//! let mut out = Vec::new();
//! client.start(&mut out);
//! assert_eq!(out, [5, 1, 0]); // version 5, one method: no authentication
//! out.clear();
//! let (n, ev) = client.receive(&[5, 0], &mut out).unwrap();
//! assert_eq!((n, ev), (2, SocksEvent::NeedMore));
//! assert_eq!(&out[..5], [5, 1, 0, 3, 12]); // CONNECT, a name of 12 bytes
//! let reply = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
//! let (n, ev) = client.receive(&reply, &mut Vec::new()).unwrap();
//! assert_eq!((n, ev), (10, SocksEvent::Connected));
//! ```

use std::fmt;
use std::net::IpAddr;

const VERSION: u8 = 5;
const AUTH_VERSION: u8 = 1;
const METHOD_NONE: u8 = 0;
const METHOD_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xFF;
const CMD_CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;
/// The longest bound name accepted in a reply: a DNS name has at most 253 characters, so
/// a longer one (the field allows 255) is not an address.
pub const MAX_BOUND_NAME: usize = 253;

/// Where the proxy is asked to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksTarget {
    /// An address the client resolved (`socks5://`).
    Ip(IpAddr, u16),
    /// A name the proxy resolves (`socks5h://`), at most 255 bytes.
    Domain(String, u16),
}

/// A step of the handshake, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksStage {
    /// Waiting for the proxy's choice of authentication method.
    MethodSelection,
    /// Waiting for the answer to the username and password.
    Authentication,
    /// Waiting for the reply to `CONNECT`.
    Connect,
}

impl fmt::Display for SocksStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocksStage::MethodSelection => "method selection",
            SocksStage::Authentication => "authentication",
            SocksStage::Connect => "the connect reply",
        })
    }
}

/// A failure reply code of the proxy (RFC 1928 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksReply {
    /// 1: general SOCKS server failure.
    GeneralFailure,
    /// 2: connection not allowed by ruleset.
    NotAllowed,
    /// 3: network unreachable.
    NetworkUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: connection refused.
    ConnectionRefused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: command not supported.
    CommandNotSupported,
    /// 8: address type not supported.
    AddressTypeNotSupported,
    /// Any other non-zero code.
    Other(u8),
}

impl SocksReply {
    /// The reply for a non-zero code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => SocksReply::GeneralFailure,
            2 => SocksReply::NotAllowed,
            3 => SocksReply::NetworkUnreachable,
            4 => SocksReply::HostUnreachable,
            5 => SocksReply::ConnectionRefused,
            6 => SocksReply::TtlExpired,
            7 => SocksReply::CommandNotSupported,
            8 => SocksReply::AddressTypeNotSupported,
            other => SocksReply::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            SocksReply::GeneralFailure => 1,
            SocksReply::NotAllowed => 2,
            SocksReply::NetworkUnreachable => 3,
            SocksReply::HostUnreachable => 4,
            SocksReply::ConnectionRefused => 5,
            SocksReply::TtlExpired => 6,
            SocksReply::CommandNotSupported => 7,
            SocksReply::AddressTypeNotSupported => 8,
            SocksReply::Other(c) => c,
        }
    }
}

impl fmt::Display for SocksReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self {
            SocksReply::GeneralFailure => "general SOCKS server failure",
            SocksReply::NotAllowed => "connection not allowed by ruleset",
            SocksReply::NetworkUnreachable => "network unreachable",
            SocksReply::HostUnreachable => "host unreachable",
            SocksReply::ConnectionRefused => "connection refused",
            SocksReply::TtlExpired => "TTL expired",
            SocksReply::CommandNotSupported => "command not supported",
            SocksReply::AddressTypeNotSupported => "address type not supported",
            SocksReply::Other(_) => "unknown reply code",
        };
        write!(f, "{words} (reply {})", self.code())
    }
}

/// Why a SOCKS5 handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksError {
    /// The target name is longer than 255 bytes (its length); nothing was sent.
    NameTooLong(usize),
    /// The username or password is longer than 255 bytes (its length); nothing was sent.
    CredentialsTooLong(usize),
    /// The proxy answered with another version than 5 (the version byte).
    BadVersion(u8),
    /// The answer to the username and password had another version than 1.
    BadAuthVersion(u8),
    /// The proxy accepts none of the methods offered (it answered 0xFF).
    NoAcceptableMethod,
    /// The proxy chose a method that was not offered (the method).
    UnsupportedMethod(u8),
    /// The proxy refused the username and password (its status byte).
    AuthFailed(u8),
    /// The proxy could not connect to the target.
    Reply(SocksReply),
    /// The reply's bound address has an unknown type (the type byte).
    BadAddressType(u8),
    /// The reply's bound name is empty or longer than [`MAX_BOUND_NAME`] (its length).
    BadBoundName(usize),
    /// The proxy closed the connection during `stage`, after `received` bytes of its message.
    Closed {
        /// The step that was waiting.
        stage: SocksStage,
        /// The bytes of the message that had arrived.
        received: usize,
    },
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksError::NameTooLong(n) => {
                write!(f, "host name of {n} bytes too long for SOCKS5 (max 255)")
            }
            SocksError::CredentialsTooLong(n) => {
                write!(f, "username or password of {n} bytes too long (max 255)")
            }
            SocksError::BadVersion(v) => write!(f, "not a SOCKS5 proxy (version byte {v})"),
            SocksError::BadAuthVersion(v) => {
                write!(f, "bad authentication answer version {v}")
            }
            SocksError::NoAcceptableMethod => {
                f.write_str("the proxy accepts none of the authentication methods offered")
            }
            SocksError::UnsupportedMethod(m) => {
                write!(
                    f,
                    "the proxy chose authentication method {m}, which was not offered"
                )
            }
            SocksError::AuthFailed(s) => {
                write!(
                    f,
                    "the proxy refused the username and password (status {s})"
                )
            }
            SocksError::Reply(r) => write!(f, "the proxy failed to connect: {r}"),
            SocksError::BadAddressType(t) => {
                write!(f, "reply with unknown address type {t}")
            }
            SocksError::BadBoundName(n) => write!(f, "reply with a bound name of {n} bytes"),
            SocksError::Closed { stage, received } => write!(
                f,
                "the proxy closed the connection during {stage} (after {received} bytes)"
            ),
        }
    }
}

impl std::error::Error for SocksError {}

/// What [`SocksClient::receive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocksEvent {
    /// The message is not complete yet: feed more bytes.
    NeedMore,
    /// The tunnel is up: the rest of the input is the target's.
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting(SocksStage),
    Done,
    Failed(SocksError),
}

/// The client side of one SOCKS5 handshake.
#[derive(Debug)]
pub struct SocksClient {
    state: State,
    target: SocksTarget,
    credentials: Option<(Vec<u8>, Vec<u8>)>,
    /// The current message so far (at most 262 bytes: a reply with a 255-byte name).
    buf: Vec<u8>,
}

impl SocksClient {
    /// A handshake to `target`, offering username/password authentication when
    /// `credentials` are given (`(username, password)`). Refuses names and credentials over
    /// 255 bytes, which the protocol cannot carry.
    pub fn new(
        target: SocksTarget,
        credentials: Option<(&[u8], &[u8])>,
    ) -> Result<Self, SocksError> {
        if let SocksTarget::Domain(name, _) = &target
            && (name.is_empty() || name.len() > 255)
        {
            return Err(SocksError::NameTooLong(name.len()));
        }
        if let Some((user, pass)) = credentials {
            let longest = user.len().max(pass.len());
            if longest > 255 {
                return Err(SocksError::CredentialsTooLong(longest));
            }
        }
        Ok(SocksClient {
            state: State::Waiting(SocksStage::MethodSelection),
            target,
            credentials: credentials.map(|(u, p)| (u.to_vec(), p.to_vec())),
            buf: Vec::new(),
        })
    }

    /// Writes the method selection: "no authentication" or "username/password", whichever
    /// applies (only one is offered, so a proxy cannot skip the credentials it was given).
    pub fn start(&self, out: &mut Vec<u8>) {
        let method = if self.credentials.is_some() {
            METHOD_PASSWORD
        } else {
            METHOD_NONE
        };
        out.extend_from_slice(&[VERSION, 1, method]);
    }

    /// Whether the tunnel is up.
    pub fn is_connected(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds bytes from the proxy: consumes a prefix of `input`, appends what to send next to
    /// `out`, and says whether the tunnel is up. Bytes after the reply are not consumed.
    pub fn receive(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, SocksEvent), SocksError> {
        let mut pos = 0;
        loop {
            let stage = match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok((pos, SocksEvent::Connected)),
                State::Waiting(stage) => stage,
            };
            // Take only the bytes the current message still needs.
            let need = match self.needed(stage) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(e)),
            };
            if self.buf.len() < need {
                let take = (need - self.buf.len()).min(input.len() - pos);
                self.buf.extend_from_slice(&input[pos..pos + take]);
                pos += take;
                if take == 0 {
                    return Ok((pos, SocksEvent::NeedMore));
                }
                // The length may grow once the header of a reply is in: ask again.
                continue;
            }
            if let Err(e) = self.complete(stage, out) {
                return Err(self.fail(e));
            }
        }
    }

    /// The error for the proxy closing the connection now (the tunnel is not up).
    pub fn receive_eof(&mut self) -> SocksError {
        match self.state {
            State::Failed(e) => e,
            State::Waiting(stage) => self.fail(SocksError::Closed {
                stage,
                received: self.buf.len(),
            }),
            State::Done => SocksError::Closed {
                stage: SocksStage::Connect,
                received: 0,
            },
        }
    }

    fn fail(&mut self, e: SocksError) -> SocksError {
        self.state = State::Failed(e);
        self.buf = Vec::new();
        e
    }

    /// The length of the current message, as far as its first bytes tell; checks them.
    fn needed(&self, stage: SocksStage) -> Result<usize, SocksError> {
        let b = &self.buf;
        match stage {
            SocksStage::MethodSelection | SocksStage::Authentication => Ok(2),
            SocksStage::Connect => {
                if b.len() < 2 {
                    return Ok(4);
                }
                if b[0] != VERSION {
                    return Err(SocksError::BadVersion(b[0]));
                }
                if b[1] != 0 {
                    return Err(SocksError::Reply(SocksReply::from_code(b[1])));
                }
                if b.len() < 4 {
                    return Ok(4);
                }
                match b[3] {
                    ATYP_V4 => Ok(4 + 4 + 2),
                    ATYP_V6 => Ok(4 + 16 + 2),
                    ATYP_DOMAIN if b.len() < 5 => Ok(5),
                    ATYP_DOMAIN => match usize::from(b[4]) {
                        n if n == 0 || n > MAX_BOUND_NAME => Err(SocksError::BadBoundName(n)),
                        n => Ok(5 + n + 2),
                    },
                    other => Err(SocksError::BadAddressType(other)),
                }
            }
        }
    }

    /// Acts on a complete message.
    fn complete(&mut self, stage: SocksStage, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let (first, second) = (self.buf[0], self.buf[1]);
        self.buf.clear();
        match stage {
            SocksStage::MethodSelection => {
                if first != VERSION {
                    return Err(SocksError::BadVersion(first));
                }
                match (second, &self.credentials) {
                    (METHOD_NONE, None) => self.send_connect(out),
                    (METHOD_PASSWORD, Some((user, pass))) => {
                        out.push(AUTH_VERSION);
                        out.push(user.len() as u8);
                        out.extend_from_slice(user);
                        out.push(pass.len() as u8);
                        out.extend_from_slice(pass);
                        self.state = State::Waiting(SocksStage::Authentication);
                    }
                    (NO_ACCEPTABLE, _) => return Err(SocksError::NoAcceptableMethod),
                    (other, _) => return Err(SocksError::UnsupportedMethod(other)),
                }
            }
            SocksStage::Authentication => {
                if first != AUTH_VERSION {
                    return Err(SocksError::BadAuthVersion(first));
                }
                if second != 0 {
                    return Err(SocksError::AuthFailed(second));
                }
                self.send_connect(out);
            }
            // `needed` checked the version, the code and the address.
            SocksStage::Connect => self.state = State::Done,
        }
        Ok(())
    }

    fn send_connect(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, CMD_CONNECT, 0]);
        let port = match &self.target {
            SocksTarget::Ip(IpAddr::V4(a), port) => {
                out.push(ATYP_V4);
                out.extend_from_slice(&a.octets());
                port
            }
            SocksTarget::Ip(IpAddr::V6(a), port) => {
                out.push(ATYP_V6);
                out.extend_from_slice(&a.octets());
                port
            }
            SocksTarget::Domain(name, port) => {
                out.push(ATYP_DOMAIN);
                // Checked in `new`.
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                port
            }
        };
        out.extend_from_slice(&port.to_be_bytes());
        self.state = State::Waiting(SocksStage::Connect);
    }
}

#[cfg(test)]
#[path = "socks_tests.rs"]
mod tests;
