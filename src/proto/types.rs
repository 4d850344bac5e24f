//! The values the caller and the connection exchange: limits, request and response heads,
//! framing and events.

use std::borrow::Cow;
use std::fmt;

#[cfg(doc)]
use super::ClientConnection;
use super::Headers;

/// Limits applied while parsing a response. Every cap is a guard against a hostile peer.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Config {
    /// The defaults, as a constant: a connection with them refers to this one instead of
    /// holding its own copy.
    pub(crate) const DEFAULT: Config = Config {
        max_head_size: 64 * 1024,
        max_headers: 128,
        max_chunk_ext_bytes: 16 * 1024,
        max_trailer_size: 16 * 1024,
        max_interim_responses: 16,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
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
    /// Reason phrase, lossily decoded (the usual phrases are static strings: no allocation).
    pub reason: Cow<'static, str>,
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
