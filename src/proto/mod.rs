//! The sans-IO HTTP/1.1 client protocol core.
//!
//! No sockets, no mio, no clock, no user callbacks: bytes and end-of-file go in, events and
//! bytes come out. This is the layer the fuzz targets and micro-benchmarks drive.
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

mod headers;

pub use headers::Headers;

use std::fmt;

/// Limits applied while parsing a response. Every cap is a guard against a hostile peer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest response head (status line + header fields + blank line), in bytes. Default 64 KiB.
    pub max_head_size: usize,
    /// Most header fields in one head. Default 128.
    pub max_headers: usize,
    /// Most chunk-extension bytes accepted over one body. Default 16 KiB.
    pub max_chunk_ext_bytes: usize,
    /// Largest trailer section, in bytes. Default 16 KiB.
    pub max_trailer_size: usize,
    /// Most interim (1xx) responses before the final one. Default 16.
    pub max_interim_responses: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_head_size: 64 * 1024,
            max_headers: 128,
            max_chunk_ext_bytes: 16 * 1024,
            max_trailer_size: 16 * 1024,
            max_interim_responses: 16,
        }
    }
}

/// HTTP version of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// A parsed response head (status line and header fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Protocol version from the status line.
    pub version: Version,
    /// Status code (100..=999 as sent; the core rejects codes outside 100..=599).
    pub status: u16,
    /// Reason phrase, lossily decoded.
    pub reason: String,
    /// Header fields in the order received.
    pub headers: Headers,
}

/// How the body of a response is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all: HEAD, 1xx, 204, 304.
    NoBody,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    CloseDelimited,
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body: neither Content-Length nor Transfer-Encoding is sent.
    None,
    /// A body of exactly this many bytes, sent with Content-Length.
    Length(u64),
    /// A body of unknown length, sent chunked.
    Chunked,
}

/// What the caller wants sent as the request head.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Method; must be an RFC 9110 token.
    pub method: &'a str,
    /// Request target: origin-form (`/path?q`) or absolute-form (for proxies).
    pub target: &'a str,
    /// Value of the Host header (`host` or `host:port`); a user `Host` header overrides it.
    pub host: &'a str,
    /// Extra header fields. Names and values with CR, LF or NUL are rejected.
    pub headers: &'a Headers,
}

/// One step of output from [`ClientConnection::receive`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Nothing more can be done with the input given; feed more bytes.
    NeedMore,
    /// An interim (1xx other than 101) response head; the final one is still to come.
    Informational(ResponseHead),
    /// The final response head. Its framing is [`ClientConnection::framing`].
    Head(ResponseHead),
    /// A piece of body, borrowed from the input.
    Data(&'a [u8]),
    /// The trailer section of a chunked body (never merged into the head's fields).
    Trailers(Headers),
    /// The response ended.
    Complete {
        /// Whether the connection can carry another request.
        keep_alive: bool,
        /// The body was close-delimited: its end cannot be told from a truncation.
        close_delimited: bool,
    },
}

/// A protocol violation by the peer. The connection must be closed; the error latches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The status line is not `HTTP/1.x NNN reason`.
    InvalidStatusLine,
    /// A version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// A header field name with forbidden bytes, or a line without a colon.
    InvalidHeaderName,
    /// A header field value with forbidden bytes (CR, LF, NUL, other CTLs).
    InvalidHeaderValue,
    /// The head is larger than [`Config::max_head_size`].
    HeadTooLarge,
    /// More header fields than [`Config::max_headers`].
    TooManyHeaders,
    /// More interim responses than [`Config::max_interim_responses`].
    TooManyInformational,
    /// `101 Switching Protocols` to a request that did not ask for an upgrade.
    UnexpectedSwitchingProtocols,
    /// Content-Length is not a single decimal number (or a list of identical ones).
    InvalidContentLength,
    /// A Transfer-Encoding the core cannot decode (parameters on `chunked`, `chunked` twice...).
    UnsupportedTransferCoding,
    /// A chunk-size line that is not hex digits, or one that overflows 64 bits.
    InvalidChunkSize,
    /// A chunk extension with control characters.
    InvalidChunkExtension,
    /// More chunk-extension bytes than [`Config::max_chunk_ext_bytes`].
    ChunkExtensionTooLong,
    /// Chunk data not followed by CRLF.
    MissingChunkDataCrlf,
    /// Trailer section larger than [`Config::max_trailer_size`] or malformed.
    InvalidTrailers,
    /// The peer closed before the response ended.
    Incomplete {
        /// Body bytes the framing promised, when known.
        expected: Option<u64>,
        /// Body bytes received.
        received: u64,
    },
    /// The peer closed before sending a complete response head.
    IncompleteHead,
    /// Bytes arrived that belong to no request.
    UnsolicitedData,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl std::error::Error for ProtocolError {}

/// A request the core refuses to encode: the caller's mistake, caught before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The method is not an RFC 9110 token.
    InvalidMethod,
    /// The target is empty or contains whitespace, CTLs or a fragment.
    InvalidTarget,
    /// A header name that is not a token (names the offending header).
    InvalidHeaderName(String),
    /// A header value containing CR, LF or NUL (names the header).
    InvalidHeaderValue(String),
    /// More body bytes were written than the declared Content-Length.
    BodyTooLong {
        /// Declared length.
        declared: u64,
    },
    /// The body ended before the declared Content-Length.
    BodyTooShort {
        /// Declared length.
        declared: u64,
        /// Bytes written.
        written: u64,
    },
    /// The call does not fit the connection's state (for example a second request before
    /// the first response completed).
    WrongState,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl std::error::Error for RequestError {}

/// The client side of one HTTP/1.1 connection, as a state machine.
#[derive(Debug)]
pub struct ClientConnection {}

impl ClientConnection {
    /// A fresh connection with the given limits.
    pub fn new(config: Config) -> Self {
        todo!()
    }

    /// Encodes a request head into `out`. Adds `Host` (unless the caller gave one) and the
    /// framing header for `body`. `Expect: 100-continue` among the caller's headers makes
    /// [`Self::may_send_body`] false until a 100 arrives or [`Self::continue_timed_out`].
    pub fn send_request(
        &mut self,
        head: &RequestHead<'_>,
        body: RequestBody,
        out: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        todo!()
    }

    /// Encodes a piece of request body into `out` (with chunk framing when chunked).
    pub fn send_body(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RequestError> {
        todo!()
    }

    /// Ends the request body (the last chunk when chunked; a length check otherwise).
    pub fn finish_body(&mut self, out: &mut Vec<u8>) -> Result<(), RequestError> {
        todo!()
    }

    /// Whether the request body may be sent now (false while waiting for `100 Continue`, and
    /// once a final response arrived before the body was sent).
    pub fn may_send_body(&self) -> bool {
        todo!()
    }

    /// The wait for `100 Continue` timed out: the body may be sent anyway.
    pub fn continue_timed_out(&mut self) {
        todo!()
    }

    /// Consumes a prefix of `input` and returns the number of bytes consumed and one event.
    pub fn receive<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), ProtocolError> {
        todo!()
    }

    /// The peer closed its side. Returns [`Event::Complete`] for a close-delimited body (or
    /// when a chunked body's last chunk arrived), otherwise [`ProtocolError::Incomplete`].
    pub fn receive_eof(&mut self) -> Result<Event<'static>, ProtocolError> {
        todo!()
    }

    /// Framing of the current response, known once its head was returned.
    pub fn framing(&self) -> Option<Framing> {
        todo!()
    }

    /// Body bytes of the current response received so far.
    pub fn body_received(&self) -> u64 {
        todo!()
    }

    /// True once the response completed and the connection can carry another request.
    pub fn is_reusable(&self) -> bool {
        todo!()
    }

    /// True once any byte of a response to the current request has been received.
    pub fn response_started(&self) -> bool {
        todo!()
    }

    /// Prepares a reusable connection for its next request.
    pub fn reset(&mut self) -> Result<(), RequestError> {
        todo!()
    }
}

/// Checks a request head as [`ClientConnection::send_request`] would, without encoding it:
/// lets a client refuse a bad request before opening a connection.
pub fn validate_request(head: &RequestHead<'_>) -> Result<(), RequestError> {
    todo!()
}
