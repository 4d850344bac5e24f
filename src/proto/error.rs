//! The two error types of the core: the peer's protocol violations and the caller's
//! requests that cannot be encoded.

use std::fmt;

#[cfg(doc)]
use super::Config;

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
    /// A malformed trailer section (a line without CRLF, a NUL or obs-fold in a field...).
    InvalidTrailers,
    /// A trailer section larger than [`Config::max_trailer_size`] bytes, or with more fields
    /// than [`Config::max_headers`].
    TrailersTooLarge,
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
        match self {
            ProtocolError::InvalidStatusLine => f.write_str("invalid status line in response"),
            ProtocolError::UnsupportedVersion => {
                f.write_str("unsupported HTTP version in response (only HTTP/1.0 and HTTP/1.1)")
            }
            ProtocolError::InvalidHeaderName => f.write_str("invalid header name in response"),
            ProtocolError::InvalidHeaderValue => f.write_str("invalid header value in response"),
            ProtocolError::HeadTooLarge => f.write_str("response head exceeds the size limit"),
            ProtocolError::TooManyHeaders => {
                f.write_str("response has more header fields than the limit")
            }
            ProtocolError::TooManyInformational => {
                f.write_str("too many interim (1xx) responses before the final response")
            }
            ProtocolError::UnexpectedSwitchingProtocols => {
                f.write_str("server switched protocols without an upgrade request")
            }
            ProtocolError::InvalidContentLength => {
                f.write_str("invalid Content-Length header in response")
            }
            ProtocolError::UnsupportedTransferCoding => {
                f.write_str("unsupported Transfer-Encoding in response")
            }
            ProtocolError::InvalidChunkSize => {
                f.write_str("invalid chunk size line in response body")
            }
            ProtocolError::InvalidChunkExtension => {
                f.write_str("invalid chunk extension in response body")
            }
            ProtocolError::ChunkExtensionTooLong => {
                f.write_str("chunk extensions in response body exceed the size limit")
            }
            ProtocolError::MissingChunkDataCrlf => {
                f.write_str("chunk data not followed by CRLF in response body")
            }
            ProtocolError::InvalidTrailers => f.write_str("invalid trailer section in response"),
            ProtocolError::TrailersTooLarge => {
                f.write_str("trailer section in response exceeds the size limit")
            }
            ProtocolError::Incomplete {
                expected: Some(expected),
                received,
            } => write!(
                f,
                "response ended after {received} of {expected} body bytes"
            ),
            ProtocolError::Incomplete {
                expected: None,
                received,
            } => write!(
                f,
                "response ended after {received} body bytes, before the body was complete"
            ),
            ProtocolError::IncompleteHead => {
                f.write_str("connection closed before a complete response head")
            }
            ProtocolError::UnsolicitedData => {
                f.write_str("server sent data that belongs to no request")
            }
        }
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
        match self {
            RequestError::InvalidMethod => f.write_str("request method is not a valid token"),
            RequestError::InvalidTarget => f.write_str(
                "request target is empty or contains whitespace, control characters or a fragment",
            ),
            RequestError::InvalidHeaderName(name) => {
                write!(f, "request header name {name:?} is not a valid token")
            }
            RequestError::InvalidHeaderValue(name) => write!(
                f,
                "request header {name:?} has an invalid value (CR, LF or NUL)"
            ),
            RequestError::BodyTooLong { declared } => write!(
                f,
                "request body is longer than its declared Content-Length of {declared} bytes"
            ),
            RequestError::BodyTooShort { declared, written } => write!(
                f,
                "request body ended after {written} of {declared} declared bytes"
            ),
            RequestError::WrongState => {
                f.write_str("call does not fit the connection's current state")
            }
        }
    }
}

impl std::error::Error for RequestError {}
