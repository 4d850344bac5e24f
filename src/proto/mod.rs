//! The sans-IO HTTP/1.1 client protocol core.
//!
//! No sockets, no mio, no clock, no user callbacks: bytes and end-of-file go in, events and
//! bytes come out. This is the layer the fuzz targets and micro-benchmarks drive.
//!
//! # Scope
//!
//! In scope: encoding request heads and bodies (Content-Length or chunked), parsing response
//! heads incrementally (httparse, called once per head, or for the usual plain head a
//! one-pass reader that reads exactly as httparse does), RFC 9112 section 6.3 body framing, a
//! strict chunked decoder, interim responses, `Expect: 100-continue`, and the keep-alive
//! decision. Refused: transfer codings other than `chunked`. Out of scope: content codings
//! (gzip...), cookies, redirects, timeouts (the caller owns the clock and calls
//! [`ClientConnection::continue_timed_out`]), pipelining (one request at a time), tunnels and
//! upgraded protocols after their head. The policies are listed on [`ClientConnection`].
//!
//! # Driving contract
//!
//! 1. [`ClientConnection::send_request`] encodes a request head into an output buffer; then,
//!    if the request has a body, [`ClientConnection::send_body`] and
//!    [`ClientConnection::finish_body`] encode it (Content-Length or chunked framing).
//! 2. Every byte read from the peer goes to [`ClientConnection::receive`], which consumes a
//!    prefix of its input and returns one [`Event`]. Call it again with the rest of the input
//!    until it returns [`Event::NeedMore`] having consumed everything. Body data is handed out
//!    as slices of the input, without copying.
//! 3. When the peer closes, call [`ClientConnection::receive_eof`].
//! 4. After [`Event::Complete`] with `keep_alive: true`, call [`ClientConnection::reset`] to
//!    send the next request on the same connection.
//!
//! Errors latch: once `receive` fails, every later call returns the same error.
//!
//! ```
//! use weft::proto::{ClientConnection, Config, Event, Headers, RequestBody, RequestHead};
//!
//! let mut conn = ClientConnection::new(Config::default());
//! let mut out = Vec::new();
//! let head = RequestHead { method: "GET", target: "/", host: "example.test", headers: &Headers::new() };
//! conn.send_request(&head, RequestBody::None, &mut out).unwrap();
//! assert!(out.starts_with(b"GET / HTTP/1.1\r\nHost: example.test\r\n"));
//!
//! let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
//! let (n, ev) = conn.receive(reply).unwrap();
//! assert!(matches!(ev, Event::Head(ref h) if h.status == 200));
//! let (m, ev) = conn.receive(&reply[n..]).unwrap();
//! assert!(matches!(ev, Event::Data(b"hi")));
//! let (_, ev) = conn.receive(&reply[n + m..]).unwrap();
//! assert!(matches!(ev, Event::Complete { keep_alive: true, .. }));
//! ```

mod chunked;
mod error;
#[cfg(feature = "fuzzing")]
mod fuzz;
#[cfg(feature = "fuzzing")]
mod fuzz_chunked;
mod head_scan;
mod headers;
mod request;
mod response;
pub mod socks;
mod types;

pub use error::{ProtocolError, RequestError};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz::fuzz_plain_head;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz::piece_lengths;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz_chunked::fuzz_chunked;
pub use headers::Headers;
pub use types::{Config, Event, Framing, RequestBody, RequestHead, ResponseHead, Version};

use std::time::Duration;

use chunked::{ChunkedDecoder, Step};
use request::SendState;
pub(crate) use request::{
    Encoded, EncodedFields, TargetCheck, encode_fields, encode_line, is_valid_value, validate_with,
};

/// What the response side is doing.
#[derive(Debug)]
enum RecvState {
    /// No request outstanding: any byte from the peer is unsolicited.
    Idle,
    /// Reading a response head (interim or final).
    Head,
    /// Reading a body of this many remaining bytes.
    Length(u64),
    /// Reading a chunked body.
    Chunked,
    /// Reading a body that ends when the peer closes.
    CloseDelimited,
    /// The response ended; [`Event::Complete`] is still to be returned.
    Ending,
    /// [`Event::Complete`] was returned.
    Done,
    /// A protocol error latched (boxed: rare, and inline it would make every connection's
    /// state 16 bytes larger).
    Failed(Box<ProtocolError>),
}

/// Facts recorded about the request in flight.
#[derive(Debug, Clone, Copy)]
struct RequestInfo {
    head: bool,
    connect: bool,
    upgrade: bool,
    close: bool,
    body: RequestBody,
    /// `Expect: 100-continue` was sent with a body and no 100 (or timeout) came yet.
    awaiting_continue: bool,
    /// A final response arrived before the body was completely sent.
    early_final: bool,
}

impl RequestInfo {
    const EMPTY: RequestInfo = RequestInfo {
        head: false,
        connect: false,
        upgrade: false,
        close: false,
        body: RequestBody::None,
        awaiting_continue: false,
        early_final: false,
    };
}

/// The client side of one HTTP/1.1 connection, as a state machine.
///
/// # Policies
///
/// * The core owns request framing: `Content-Length` and `Transfer-Encoding` fields among the
///   caller's headers are dropped and replaced by the framing of the [`RequestBody`].
/// * Exactly one `Host` is sent, first: the caller's first `Host` field if any (later ones are
///   dropped), else [`RequestHead::host`].
/// * Response heads may use bare LF line ends (httparse leniency); obs-fold is rejected
///   ([`ProtocolError::InvalidHeaderName`]); empty lines before the status line are skipped.
/// * Chunk lines and trailer lines must end in CRLF exactly. A chunk-size may have any number
///   of leading zeros (RFC-valid), but at most 64 bits of value.
/// * A response with both Transfer-Encoding and Content-Length, or Transfer-Encoding in
///   HTTP/1.0, is decoded by Transfer-Encoding (Content-Length is then ignored, not validated)
///   and the connection is not reused.
/// * Content-Length must be `1*DIGIT` without sign or spaces inside, fit in 64 bits, and every
///   value (comma lists and repeated lines) must be identical; an empty list member is invalid.
/// * Chunk extensions are ignored but bounded by [`Config::max_chunk_ext_bytes`] per body and may
///   not hold CTLs other than HTAB (an LF or NUL there is
///   [`ProtocolError::InvalidChunkExtension`]). Trailer fields are parsed by httparse, bounded by
///   [`Config::max_trailer_size`] (the final blank line is not counted) and returned as
///   [`Event::Trailers`] when non-empty. EOF after the last chunk completes the response
///   without reuse (RFC 9112 section 9.8).
/// * Status codes outside 100..=599 are [`ProtocolError::InvalidStatusLine`]; `HTTP/1.2` and
///   other versions are [`ProtocolError::UnsupportedVersion`]. Any number of 1xx responses up
///   to [`Config::max_interim_responses`] are returned as [`Event::Informational`]; `101` is only
///   accepted when the request carried `Upgrade`.
/// * A final response that arrives before the request body was finished blocks the rest of the
///   body ([`Self::may_send_body`] false, [`Self::send_body`] returns
///   [`RequestError::WrongState`]) and makes the connection not reusable.
/// * `chunked` is the only transfer coding: any other one in `Transfer-Encoding` (`gzip,
///   chunked`, `gzip`, `chunked, identity`) is [`ProtocolError::UnsupportedTransferCoding`],
///   so bytes still in a transfer coding are never delivered as the body.
/// * A 2xx to `CONNECT` and a `101` to an upgrade request end after the head
///   ([`Framing::NoBody`], not reusable): the bytes after the head belong to the tunnel and must
///   not be passed to [`Self::receive`].
/// * Bytes after a complete response are [`ProtocolError::UnsolicitedData`].
#[derive(Debug)]
pub struct ClientConnection {
    /// The limits; `None` for [`Config::DEFAULT`], so that the common case costs a pooled
    /// connection 8 bytes rather than 40.
    config: Option<Box<Config>>,
    send: SendState,
    req: RequestInfo,
    recv: RecvState,
    /// Bytes of a response head received so far (all searched for the blank line already).
    head_buf: Vec<u8>,
    /// Empty lines skipped before the status line (`u32`, as `interim`: the two share one
    /// word of every connection's state).
    leading_blank: u32,
    /// Created at the first chunked body and kept for the next ones: a connection that never
    /// reads one (most idle pooled connections) does not carry its 48 bytes.
    chunked: Option<Box<ChunkedDecoder>>,
    interim: u32,
    /// The final head's `Keep-Alive: timeout=N`, in seconds ([`NO_KEEP_ALIVE_HINT`]: none);
    /// a `u32`, so that it takes what would be padding.
    keep_alive_hint: u32,
    framing: Option<Framing>,
    body_received: u64,
    keep_alive: bool,
    started: bool,
    peer_closed: bool,
}

impl ClientConnection {
    /// A fresh connection with the given limits.
    pub fn new(config: Config) -> Self {
        ClientConnection {
            config: (config != Config::DEFAULT).then(|| Box::new(config)),
            send: SendState::Idle,
            req: RequestInfo::EMPTY,
            recv: RecvState::Idle,
            head_buf: Vec::new(),
            leading_blank: 0,
            chunked: None,
            interim: 0,
            keep_alive_hint: NO_KEEP_ALIVE_HINT,
            framing: None,
            body_received: 0,
            keep_alive: false,
            started: false,
            peer_closed: false,
        }
    }

    /// Encodes a request head into `out`. Adds `Host` (unless the caller gave one) and the
    /// framing header for `body`. `Expect: 100-continue` among the caller's headers makes
    /// [`Self::may_send_body`] false until a 100 arrives or [`Self::continue_timed_out`].
    ///
    /// Everything is validated before a byte is written to `out`. The caller's
    /// `Content-Length` and `Transfer-Encoding` fields are dropped: the core writes the framing
    /// for `body` itself (`Content-Length: n` for [`RequestBody::Length`], also for 0;
    /// `Transfer-Encoding: chunked` for [`RequestBody::Chunked`]; neither for
    /// [`RequestBody::None`]). Only valid on a fresh connection or after [`Self::reset`].
    pub fn send_request(
        &mut self,
        head: &RequestHead<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        self.encode_request(head, body, out)
    }

    /// Encodes a piece of request body into `out` (with chunk framing when chunked).
    ///
    /// Returns [`RequestError::WrongState`] while [`Self::may_send_body`] is false. Empty data
    /// writes nothing (an empty chunk would end a chunked body).
    pub fn send_body(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RequestError> {
        self.encode_body(data, out)
    }

    /// Ends the request body (the last chunk when chunked; a length check otherwise).
    pub fn finish_body(&mut self, out: &mut Vec<u8>) -> Result<(), RequestError> {
        self.encode_finish(out)
    }

    /// Whether the request body may be sent now (false while waiting for `100 Continue`, and
    /// once a final response arrived before the body was sent).
    pub fn may_send_body(&self) -> bool {
        matches!(self.send, SendState::Body { .. })
            && !self.req.awaiting_continue
            && !self.req.early_final
            && !matches!(self.recv, RecvState::Failed(_))
    }

    /// The wait for `100 Continue` timed out: the body may be sent anyway.
    pub fn continue_timed_out(&mut self) {
        self.req.awaiting_continue = false;
    }

    /// Consumes a prefix of `input` and returns the number of bytes consumed and one event.
    ///
    /// [`Event::NeedMore`] is returned only when all of `input` was consumed. A response head
    /// consumes only its own bytes; the body bytes after it stay in the caller's input.
    pub fn receive<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), ProtocolError> {
        self.receive_reusing(input, &mut Headers::new())
    }

    /// [`Self::receive`], with storage for the fields of a response head: a head returned by
    /// this call takes `spare`'s buffers (leaving it empty; its old fields are cleared), so
    /// that parsing it does not allocate. Pass the `Headers` of a response the caller is done
    /// with. (Given per call rather than kept, so an idle connection holds no such storage.)
    ///
    /// Inline: the event (96 bytes with its result) is then built where the caller reads it
    /// instead of being copied out, twice per response (head, end).
    #[inline]
    pub fn receive_reusing<'a>(
        &mut self,
        input: &'a [u8],
        spare: &mut Headers,
    ) -> Result<(usize, Event<'a>), ProtocolError> {
        let result = self.step(input, spare);
        if let Err(e) = &result {
            self.recv = RecvState::Failed(Box::new(e.clone()));
        }
        result
    }

    /// The next piece of body data, when the rest of `input` starts with one that a
    /// [`Self::receive`] call would return as [`Event::Data`] and nothing else is due first
    /// (for a chunked body: the chunk's framing is whole and plain). `None` otherwise, having
    /// changed nothing: then call `receive`. Lets a caller that just got [`Event::Data`] hand
    /// a read holding many chunks to its consumer without a full `receive` per chunk.
    pub(crate) fn receive_data<'a>(&mut self, input: &'a [u8]) -> Option<(usize, &'a [u8])> {
        let RecvState::Chunked = self.recv else {
            return None;
        };
        let (n, data) = self.chunked.as_mut()?.next_data(input)?;
        self.body_received += data.len() as u64;
        Some((n, data))
    }

    /// The end of the current response when none of it is left to read (a body-less final
    /// head, or a Content-Length body read whole): moves on as [`Self::receive`] would and
    /// returns what its [`Event::Complete`] would say, `(keep_alive, close_delimited)`. `None`
    /// otherwise, having changed nothing: then call `receive`. Lets a caller that just got a
    /// head (or the last body bytes) end the response without another `receive` round.
    #[inline]
    pub(crate) fn receive_end(&mut self) -> Option<(bool, bool)> {
        match self.recv {
            RecvState::Ending | RecvState::Length(0) => Some(self.end()),
            _ => None,
        }
    }

    fn step<'a>(
        &mut self,
        input: &'a [u8],
        spare: &mut Headers,
    ) -> Result<(usize, Event<'a>), ProtocolError> {
        match &mut self.recv {
            RecvState::Failed(e) => Err(ProtocolError::clone(e)),
            RecvState::Idle | RecvState::Done => {
                if input.is_empty() {
                    Ok((0, Event::NeedMore))
                } else {
                    Err(ProtocolError::UnsolicitedData)
                }
            }
            RecvState::Head => self.receive_head(input, spare),
            RecvState::Length(remaining) => {
                if *remaining == 0 {
                    return Ok((0, self.complete()));
                }
                if input.is_empty() {
                    return Ok((0, Event::NeedMore));
                }
                let n = (*remaining).min(input.len() as u64);
                *remaining -= n;
                if *remaining == 0 {
                    self.recv = RecvState::Ending;
                }
                self.body_received += n;
                let n = n as usize;
                Ok((n, Event::Data(&input[..n])))
            }
            RecvState::Chunked => {
                let chunked = chunked_decoder(&mut self.chunked);
                let (n, step) = chunked.decode(input, limits(&self.config))?;
                Ok((
                    n,
                    match step {
                        Step::NeedMore => Event::NeedMore,
                        Step::Data(d) => {
                            self.body_received += d.len() as u64;
                            Event::Data(d)
                        }
                        Step::End(Some(trailers)) => {
                            self.recv = RecvState::Ending;
                            Event::Trailers(trailers)
                        }
                        Step::End(None) => self.complete(),
                    },
                ))
            }
            RecvState::CloseDelimited => {
                if input.is_empty() {
                    return Ok((0, Event::NeedMore));
                }
                self.body_received += input.len() as u64;
                Ok((input.len(), Event::Data(input)))
            }
            RecvState::Ending => Ok((0, self.complete())),
        }
    }

    /// Moves to `Done` and builds the matching event.
    fn complete(&mut self) -> Event<'static> {
        let (keep_alive, close_delimited) = self.end();
        Event::Complete {
            keep_alive,
            close_delimited,
        }
    }

    /// Moves to `Done`; returns what [`Event::Complete`] says: `(keep_alive, close_delimited)`.
    fn end(&mut self) -> (bool, bool) {
        self.recv = RecvState::Done;
        (
            self.keep_alive,
            self.framing == Some(Framing::CloseDelimited),
        )
    }

    fn receive_head<'a>(
        &mut self,
        input: &'a [u8],
        spare: &mut Headers,
    ) -> Result<(usize, Event<'a>), ProtocolError> {
        if input.is_empty() {
            return Ok((0, Event::NeedMore));
        }
        self.started = true;
        let len = input.len();
        let mut i = 0;
        // Skip empty lines before the status line (a lone CR is held until its LF shows).
        while self.head_buf.is_empty() || self.head_buf == b"\r" {
            if i == len {
                return Ok((i, Event::NeedMore));
            }
            let skip = if self.head_buf.is_empty() {
                match (input[i], input.get(i + 1)) {
                    (b'\n', _) => 1,
                    (b'\r', Some(b'\n')) => 2,
                    (b'\r', None) => {
                        self.head_buf.push(b'\r');
                        return Ok((len, Event::NeedMore));
                    }
                    _ => break,
                }
            } else if input[i] == b'\n' {
                self.head_buf.clear();
                // The CR held from the previous input counts too, as it does when the CRLF
                // arrives in one piece: the cap must not depend on how the input is split.
                self.leading_blank = self.leading_blank.saturating_add(1);
                1
            } else {
                break;
            };
            i += skip;
            self.leading_blank = self.leading_blank.saturating_add(skip as u32);
            if self.leading_blank as usize > limits(&self.config).max_head_size {
                return Err(ProtocolError::HeadTooLarge);
            }
        }
        let rest = &input[i..];
        let base = self.head_buf.len();
        // A reply that cannot begin with `HTTP/` (an HTTP/0.9 body, another protocol) is
        // refused as soon as its first bytes show it, instead of being buffered until the head
        // cap or EOF. The check covers the bytes held from earlier reads too, so every split of
        // the input decides the same way.
        // (A head read whole starts with all five: checked without chaining the two.)
        if base < 5 && !(base == 0 && rest.starts_with(b"HTTP/")) {
            let first = self.head_buf.iter().chain(rest).take(5);
            if first.zip(b"HTTP/").any(|(a, b)| a != b) {
                return Err(ProtocolError::InvalidStatusLine);
            }
        }
        let config = limits(&self.config);
        let max = config.max_head_size;
        let window = &rest[..rest.len().min(max.saturating_sub(base))];
        // Fast path: a whole head in one read goes straight to httparse, without a separate
        // search for the blank line. Anything else (partial head, error) takes the buffered
        // path below, which decides the same way whatever the split.
        let whole = if base == 0 {
            head_scan::parse_head_prefix(window, config, spare)
        } else {
            Ok(None)
        };
        let (end, head, fields) = match whole {
            Ok(Some(parsed)) => {
                debug_assert_eq!(
                    response::find_blank_line(&[], window, false),
                    Some(parsed.0)
                );
                parsed
            }
            _ => {
                let Some(end) = response::find_blank_line(&self.head_buf, window, false) else {
                    if base + rest.len() > max {
                        return Err(ProtocolError::HeadTooLarge);
                    }
                    self.head_buf.extend_from_slice(rest);
                    return Ok((len, Event::NeedMore));
                };
                let (head, fields) = if base == 0 {
                    head_scan::parse_head(&rest[..end], config, spare)?
                } else {
                    self.head_buf.extend_from_slice(&rest[..end]);
                    head_scan::parse_head(&self.head_buf, config, spare)?
                };
                self.head_buf.clear();
                (end, head, fields)
            }
        };
        self.leading_blank = 0;
        // The head goes into the event once, here: `on_head` only looks at it.
        let event = if self.on_head(&head, &fields)? {
            Event::Head(head)
        } else {
            Event::Informational(head)
        };
        Ok((i + end, event))
    }

    /// Acts on a parsed head; `fields` is what its fields said about framing. Returns whether
    /// it is the final head (else an interim one).
    fn on_head(
        &mut self,
        head: &ResponseHead,
        fields: &response::FramingFields,
    ) -> Result<bool, ProtocolError> {
        if head.status == 101 && !self.req.upgrade {
            return Err(ProtocolError::UnexpectedSwitchingProtocols);
        }
        if head.status < 200 && head.status != 101 {
            self.interim = self.interim.saturating_add(1);
            if self.interim as usize > limits(&self.config).max_interim_responses {
                return Err(ProtocolError::TooManyInformational);
            }
            if head.status == 100 {
                self.req.awaiting_continue = false;
            }
            return Ok(false);
        }

        let facts = response::RequestFacts {
            head: self.req.head,
            connect: self.req.connect,
            close: self.req.close,
        };
        let (framing, mut keep_alive) = response::decide_framing(head, fields, &facts)?;
        if head.status == 101 {
            keep_alive = false;
        }
        if self.send != SendState::Done {
            // The server answered before the body was sent: never send the rest, and the
            // server may still be waiting for (or reading) body bytes, so do not reuse.
            self.req.early_final = true;
            keep_alive = false;
        }
        self.keep_alive = keep_alive;
        // Saturated: a hint of 136 years or more is as good as one of 136 years.
        self.keep_alive_hint = fields.keep_alive_timeout().map_or(NO_KEEP_ALIVE_HINT, |s| {
            s.min(u64::from(NO_KEEP_ALIVE_HINT - 1)) as u32
        });
        self.framing = Some(framing);
        self.recv = match framing {
            Framing::NoBody => RecvState::Ending,
            Framing::Length(n) => RecvState::Length(n),
            Framing::Chunked => {
                chunked_decoder(&mut self.chunked).reset();
                RecvState::Chunked
            }
            Framing::CloseDelimited => RecvState::CloseDelimited,
        };
        Ok(true)
    }

    /// The peer closed its side. Returns [`Event::Complete`] for a close-delimited body (or
    /// when a chunked body's last chunk arrived), otherwise [`ProtocolError::Incomplete`].
    ///
    /// Before any response byte, or inside a head, the error is
    /// [`ProtocolError::IncompleteHead`] (check [`Self::response_started`] to tell them apart).
    /// After [`Event::Complete`] this only marks the connection as not reusable and returns
    /// [`Event::NeedMore`].
    pub fn receive_eof(&mut self) -> Result<Event<'static>, ProtocolError> {
        self.peer_closed = true;
        let result = match &self.recv {
            RecvState::Failed(e) => Err(ProtocolError::clone(e)),
            RecvState::Done => return Ok(Event::NeedMore),
            RecvState::Idle | RecvState::Head => Err(ProtocolError::IncompleteHead),
            RecvState::Length(0) | RecvState::Ending => {
                self.keep_alive = false;
                Ok(self.complete())
            }
            RecvState::Length(remaining) => Err(ProtocolError::Incomplete {
                expected: Some(self.body_received + remaining),
                received: self.body_received,
            }),
            RecvState::Chunked if self.chunked.as_ref().is_some_and(|c| c.in_trailers()) => {
                // RFC 9112 section 9.8: the terminal chunk arrived; the rest is optional.
                self.keep_alive = false;
                Ok(self.complete())
            }
            RecvState::Chunked => Err(ProtocolError::Incomplete {
                expected: None,
                received: self.body_received,
            }),
            RecvState::CloseDelimited => {
                self.keep_alive = false;
                Ok(self.complete())
            }
        };
        if let Err(e) = &result {
            self.recv = RecvState::Failed(Box::new(e.clone()));
        }
        result
    }

    /// Framing of the current response, known once its head was returned.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// The server's `Keep-Alive: timeout=N` from the current final response's first
    /// Keep-Alive field, known once its head was returned (noted while its fields were
    /// copied: no second search of them).
    pub(crate) fn keep_alive_timeout(&self) -> Option<Duration> {
        (self.keep_alive_hint != NO_KEEP_ALIVE_HINT)
            .then(|| Duration::from_secs(u64::from(self.keep_alive_hint)))
    }

    /// Body bytes of the current response received so far.
    pub fn body_received(&self) -> u64 {
        self.body_received
    }

    /// True once the response completed and the connection can carry another request.
    pub fn is_reusable(&self) -> bool {
        matches!(self.recv, RecvState::Done)
            && self.keep_alive
            && !self.peer_closed
            && self.send == SendState::Done
    }

    /// True once any byte of a response to the current request has been received.
    pub fn response_started(&self) -> bool {
        self.started
    }

    /// Prepares a reusable connection for its next request.
    ///
    /// Only valid when [`Self::is_reusable`] is true; otherwise [`RequestError::WrongState`].
    /// Buffers keep their capacity.
    pub fn reset(&mut self) -> Result<(), RequestError> {
        if !self.is_reusable() {
            return Err(RequestError::WrongState);
        }
        self.send = SendState::Idle;
        self.req = RequestInfo::EMPTY;
        self.recv = RecvState::Idle;
        self.head_buf.clear();
        self.leading_blank = 0;
        if let Some(chunked) = &mut self.chunked {
            chunked.reset();
        }
        self.interim = 0;
        self.keep_alive_hint = NO_KEEP_ALIVE_HINT;
        self.framing = None;
        self.body_received = 0;
        self.keep_alive = false;
        self.started = false;
        Ok(())
    }
}

/// [`ClientConnection::keep_alive_hint`] when the head gave none.
const NO_KEEP_ALIVE_HINT: u32 = u32::MAX;

/// The connection's chunked decoder, made at its first chunked body and kept for the next.
fn chunked_decoder(chunked: &mut Option<Box<ChunkedDecoder>>) -> &mut ChunkedDecoder {
    chunked.get_or_insert_with(|| Box::new(ChunkedDecoder::new()))
}

/// The limits a connection applies (its own, or the defaults it does not store).
fn limits(config: &Option<Box<Config>>) -> &Config {
    config.as_deref().unwrap_or(&Config::DEFAULT)
}

/// Checks a request head as [`ClientConnection::send_request`] would, without encoding it:
/// lets a client refuse a bad request before opening a connection.
pub fn validate_request(head: &RequestHead<'_>) -> Result<(), RequestError> {
    request::validate(head).map(|_| ())
}

#[cfg(test)]
mod head_scan_tests;

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
