//! A strict, hand-written decoder for the chunked transfer coding (RFC 9112 section 7.1).
//!
//! Grammar enforced:
//!
//! ```text
//! chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size = 1*HEXDIG                    ; at most 64 bits of value, leading zeros allowed
//! chunk-ext  = *( BWS ";" ... )            ; no CTL except HTAB, bounded per body
//! last-chunk = 1*"0" [ chunk-ext ] CRLF
//! trailer-section = *( field-line CRLF ) CRLF
//! ```
//!
//! Line ends are CRLF exactly. Chunk data is handed out as slices of the input; nothing is
//! allocated from a declared size. The only buffer is for a non-empty trailer section.

use super::response::{find_blank_line, parse_trailers};
use super::{Config, Headers, ProtocolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk-size.
    Size,
    /// Whitespace after the size; only `;` may follow.
    SizeWs,
    /// Inside a chunk extension, up to CR.
    Ext,
    /// CR of the size line seen; LF must follow.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// CR after chunk data expected.
    DataCr,
    /// LF after chunk data expected.
    DataLf,
    /// After the last chunk: the trailer section.
    Trailers,
}

/// What one decoding step produced.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// All input used; more is needed.
    NeedMore,
    /// A piece of chunk data.
    Data(&'a [u8]),
    /// The body ended; trailers, if any were sent.
    End(Option<Headers>),
}

/// The decoder's state for one body (reused across bodies).
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk, or data bytes left while in `Data`.
    size: u64,
    /// Whether the current size line has a digit yet.
    has_digit: bool,
    /// Extension bytes seen over this body.
    ext_bytes: usize,
    /// Trailer bytes buffered so far (kept for reuse).
    trailer_buf: Vec<u8>,
}

/// The value of each byte as a hex digit, or `NOT_HEX`: one load per digit of a size line.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

#[inline]
fn hex_value(b: u8) -> Option<u64> {
    let d = HEX[usize::from(b)];
    (d != NOT_HEX).then_some(u64::from(d))
}

/// A byte that may not appear in a chunk extension: CTLs other than HTAB, and DEL.
#[inline]
fn is_bad_ext_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            has_digit: false,
            ext_bytes: 0,
            trailer_buf: Vec::new(),
        }
    }

    /// Prepares for a new body, keeping the trailer buffer's capacity.
    pub(crate) fn reset(&mut self) {
        self.state = State::Size;
        self.size = 0;
        self.has_digit = false;
        self.ext_bytes = 0;
        self.trailer_buf.clear();
    }

    /// Whether the last chunk was received (only trailers or the final CRLF are missing).
    pub(crate) fn in_trailers(&self) -> bool {
        self.state == State::Trailers
    }

    /// Decodes from `input`. Returns the bytes consumed and what they produced. Framing bytes
    /// are consumed silently; the step ends at the first piece of data, at the end of the body,
    /// or when the input runs out.
    pub(crate) fn decode<'a>(
        &mut self,
        input: &'a [u8],
        config: &Config,
    ) -> Result<(usize, Step<'a>), ProtocolError> {
        if let Some((n, data)) = self.next_data(input) {
            return Ok((n, Step::Data(data)));
        }
        let len = input.len();
        let mut i = 0;
        loop {
            if i == len {
                return Ok((i, Step::NeedMore));
            }
            match self.state {
                State::Size => {
                    while i < len {
                        let Some(d) = hex_value(input[i]) else { break };
                        if self.size >> 60 != 0 {
                            return Err(ProtocolError::InvalidChunkSize);
                        }
                        self.size = (self.size << 4) | d;
                        self.has_digit = true;
                        i += 1;
                    }
                    if i == len {
                        continue;
                    }
                    if !self.has_digit {
                        return Err(ProtocolError::InvalidChunkSize);
                    }
                    match input[i] {
                        b'\r' => self.state = State::SizeLf,
                        b';' => {
                            self.count_ext(1, config)?;
                            self.state = State::Ext;
                        }
                        b' ' | b'\t' => self.state = State::SizeWs,
                        _ => return Err(ProtocolError::InvalidChunkSize),
                    }
                    i += 1;
                }
                State::SizeWs => {
                    match input[i] {
                        b' ' | b'\t' => {}
                        b';' => {
                            self.count_ext(1, config)?;
                            self.state = State::Ext;
                        }
                        _ => return Err(ProtocolError::InvalidChunkSize),
                    }
                    i += 1;
                }
                State::Ext => {
                    let rest = &input[i..];
                    let stop = rest.iter().position(|&b| is_bad_ext_byte(b));
                    let n = stop.unwrap_or(rest.len());
                    self.count_ext(n, config)?;
                    i += n;
                    if stop.is_some() {
                        if input[i] != b'\r' {
                            return Err(ProtocolError::InvalidChunkExtension);
                        }
                        self.state = State::SizeLf;
                        i += 1;
                    }
                }
                State::SizeLf => {
                    if input[i] != b'\n' {
                        return Err(ProtocolError::InvalidChunkSize);
                    }
                    i += 1;
                    self.has_digit = false;
                    if self.size == 0 {
                        self.state = State::Trailers;
                        // Fast path: no trailer fields, the final CRLF is right here.
                        if input[i..].starts_with(b"\r\n") {
                            return Ok((i + 2, Step::End(None)));
                        }
                    } else {
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let avail = (len - i) as u64;
                    let n = self.size.min(avail) as usize;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((i + n, Step::Data(&input[i..i + n])));
                }
                State::DataCr => {
                    if input[i] != b'\r' {
                        return Err(ProtocolError::MissingChunkDataCrlf);
                    }
                    self.state = State::DataLf;
                    i += 1;
                    // Common case: the LF and the next size line follow at once.
                    if input.get(i) == Some(&b'\n') {
                        self.state = State::Size;
                        i += 1;
                    }
                }
                State::DataLf => {
                    if input[i] != b'\n' {
                        return Err(ProtocolError::MissingChunkDataCrlf);
                    }
                    self.state = State::Size;
                    i += 1;
                }
                State::Trailers => return self.trailers(input, i, config),
            }
        }
    }

    /// The fast path of [`Self::decode`] for the usual shape of a chunked body: returns the
    /// next piece of data when `input` holds it and everything before it whole and plain
    /// (the rest of the current chunk; or the CRLF ending the previous chunk's data if it is
    /// due, then a size line of at most 16 hex digits and CRLF, without extension, not the last
    /// chunk, and at least one data byte). Returns the bytes consumed and the piece, as
    /// `decode` would. Anything else, including every error, returns `None` and changes
    /// nothing: `decode`'s state machine then takes it, byte by byte.
    #[inline]
    pub(crate) fn next_data<'a>(&mut self, input: &'a [u8]) -> Option<(usize, &'a [u8])> {
        let start = match self.state {
            State::Data if !input.is_empty() => {
                let n = self.size.min(input.len() as u64) as usize;
                self.take_data(n);
                return Some((n, &input[..n]));
            }
            State::DataCr if input.starts_with(b"\r\n") => 2,
            // No digit yet means no size either: the line starts here.
            State::Size if !self.has_digit => 0,
            _ => return None,
        };
        // 16 digits hold any 64-bit size; a longer line (leading zeros) takes the slow path.
        let end = input.len().min(start + 17);
        let mut size: u64 = 0;
        let mut i = start;
        while i < end {
            let d = HEX[usize::from(input[i])];
            if d == NOT_HEX {
                break;
            }
            size = (size << 4) | u64::from(d);
            i += 1;
        }
        if i == start || i - start > 16 || size == 0 || input.get(i..i + 2) != Some(b"\r\n") {
            return None;
        }
        let data = &input[i + 2..];
        if data.is_empty() {
            return None;
        }
        let n = size.min(data.len() as u64) as usize;
        self.size = size;
        self.take_data(n);
        Some((i + 2 + n, &data[..n]))
    }

    /// Accounts for `n` data bytes of the current chunk (at most what is left of it).
    #[inline]
    fn take_data(&mut self, n: usize) {
        self.size -= n as u64;
        self.state = if self.size == 0 {
            State::DataCr
        } else {
            State::Data
        };
    }

    fn count_ext(&mut self, n: usize, config: &Config) -> Result<(), ProtocolError> {
        self.ext_bytes = self.ext_bytes.saturating_add(n);
        if self.ext_bytes > config.max_chunk_ext_bytes {
            return Err(ProtocolError::ChunkExtensionTooLong);
        }
        Ok(())
    }

    /// The trailer section: buffered until its blank line, then parsed with httparse.
    fn trailers<'a>(
        &mut self,
        input: &'a [u8],
        i: usize,
        config: &Config,
    ) -> Result<(usize, Step<'a>), ProtocolError> {
        // The cap covers the trailer fields; the final blank line (2 bytes) is always allowed,
        // so an empty trailer section never fails, however the input is split.
        let cap = config.max_trailer_size.saturating_add(2);
        let rest = &input[i..];
        let room = cap.saturating_sub(self.trailer_buf.len());
        let window = &rest[..rest.len().min(room)];
        match find_blank_line(&self.trailer_buf, window, true) {
            Some(end) => {
                let headers = if self.trailer_buf.is_empty() {
                    parse_trailers(&rest[..end], config)?
                } else {
                    self.trailer_buf.extend_from_slice(&rest[..end]);
                    parse_trailers(&self.trailer_buf, config)?
                };
                let trailers = (!headers.is_empty()).then_some(headers);
                Ok((i + end, Step::End(trailers)))
            }
            None => {
                if self.trailer_buf.len() + rest.len() > cap {
                    return Err(ProtocolError::TrailersTooLarge);
                }
                self.trailer_buf.extend_from_slice(rest);
                Ok((input.len(), Step::NeedMore))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut ChunkedDecoder, mut input: &[u8]) -> (Vec<u8>, bool) {
        let config = Config::default();
        let mut body = Vec::new();
        loop {
            let (n, step) = dec.decode(input, &config).unwrap();
            match step {
                Step::NeedMore => return (body, false),
                Step::Data(d) => {
                    // Zero copy: the piece is a slice of the input.
                    let inner = input.as_ptr_range();
                    assert!(inner.contains(&d.as_ptr()));
                    body.extend_from_slice(d);
                }
                Step::End(_) => return (body, true),
            }
            input = &input[n..];
        }
    }

    #[test]
    fn data_is_borrowed_and_decoder_is_reusable() {
        let mut dec = ChunkedDecoder::new();
        let (body, done) = decode_all(&mut dec, b"3\r\nabc\r\n0\r\nX: y\r\n\r\n");
        assert_eq!((body.as_slice(), done), (&b"abc"[..], true));
        dec.reset();
        let (body, done) = decode_all(&mut dec, b"2\r\nhi\r\n0\r\n\r\n");
        assert_eq!((body.as_slice(), done), (&b"hi"[..], true));
    }

    #[test]
    fn hex_table_matches_every_byte() {
        for b in 0..=u8::MAX {
            let want = char::from(b).to_digit(16).map(u64::from);
            assert_eq!(hex_value(b), want, "byte {b:#04x}");
        }
    }

    #[test]
    fn next_data_takes_plain_chunks_and_leaves_the_rest_untouched() {
        let config = Config::default();
        let mut dec = ChunkedDecoder::new();
        let input = b"3\r\nabc\r\n0002\r\nde\r\n1;x\r\nf\r\n0\r\n\r\n";
        assert_eq!(dec.next_data(input), Some((6, &b"abc"[..])));
        // Leading zeros within 16 digits are plain too.
        assert_eq!(dec.next_data(&input[6..]), Some((10, &b"de"[..])));
        // An extension is the slow path's: nothing consumed, the state unchanged.
        assert_eq!(dec.next_data(&input[16..]), None);
        let (n, step) = dec.decode(&input[16..], &config).unwrap();
        assert!(matches!(step, Step::Data(b"f")));
        // So is the last chunk.
        let rest = &input[16 + n..];
        assert_eq!(dec.next_data(rest), None);
        assert!(matches!(
            dec.decode(rest, &config),
            Ok((7, Step::End(None)))
        ));
    }

    #[test]
    fn next_data_refuses_what_decode_must_judge() {
        let config = Config::default();
        // (input after "1\r\nx", what decode says after next_data declined)
        let cases: [(&[u8], Option<ProtocolError>); 8] = [
            (b"\r", None),
            (b"\r\n", None),
            (b"\r\n5", None),
            (b"\r\n5\r\n", None),
            (b"\n\r\n1\r\ny", Some(ProtocolError::MissingChunkDataCrlf)),
            (b"\r\n5\n\r\ny", Some(ProtocolError::InvalidChunkSize)),
            (b"\r\n\r\n", Some(ProtocolError::InvalidChunkSize)),
            (
                b"\r\n10000000000000000\r\ny",
                Some(ProtocolError::InvalidChunkSize),
            ),
        ];
        for (rest, error) in cases {
            let mut dec = ChunkedDecoder::new();
            assert_eq!(dec.next_data(b"1\r\nx"), Some((4, &b"x"[..])));
            assert_eq!(dec.next_data(rest), None, "{rest:?}");
            match (dec.decode(rest, &config), error) {
                (Err(got), Some(want)) => assert_eq!(got, want, "{rest:?}"),
                (Ok((n, Step::NeedMore)), None) => assert_eq!(n, rest.len()),
                (got, want) => panic!("{rest:?}: {got:?}, expected {want:?}"),
            }
        }
        // Seventeen digits of leading zeros: valid, but the slow path's.
        let mut dec = ChunkedDecoder::new();
        let long = b"00000000000000001\r\nz";
        assert_eq!(dec.next_data(long), None);
        assert!(matches!(
            dec.decode(long, &config),
            Ok((20, Step::Data(b"z")))
        ));
    }

    #[test]
    fn sixteen_significant_digits_fit_seventeen_do_not() {
        let config = Config::default();
        let mut dec = ChunkedDecoder::new();
        let (n, step) = dec.decode(b"0000ffffffffffffffff\r\n", &config).unwrap();
        assert_eq!(n, 22);
        assert!(matches!(step, Step::NeedMore));
        let mut dec = ChunkedDecoder::new();
        assert_eq!(
            dec.decode(b"1ffffffffffffffff\r\n", &config).unwrap_err(),
            ProtocolError::InvalidChunkSize
        );
    }

    #[test]
    fn empty_trailer_section_ignores_the_trailer_cap() {
        let config = Config {
            max_trailer_size: 0,
            ..Config::default()
        };
        for split in 1..=5 {
            let input = b"0\r\n\r\n";
            let mut dec = ChunkedDecoder::new();
            let (n, step) = dec.decode(&input[..split], &config).unwrap();
            assert_eq!(n, split);
            if let Step::End(None) = step {
                assert_eq!(split, 5);
                continue;
            }
            let (_, step) = dec.decode(&input[split..], &config).unwrap();
            assert!(matches!(step, Step::End(None)), "{split}");
        }
    }
}
