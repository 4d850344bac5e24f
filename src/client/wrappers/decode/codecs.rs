//! The content codings: one streaming decoder per coding, each behind its cargo feature
//! (`gzip` for gzip and deflate, `brotli`, `zstd`). A coding whose feature is off does not
//! exist here, so it is neither offered nor undone.

#[cfg(feature = "brotli")]
use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
#[cfg(feature = "gzip")]
use flate2::{Crc, Decompress, FlushDecompress, Status};
#[cfg(feature = "zstd")]
use zstd::stream::raw::{DParameter, Decoder as ZstdDecoder, InBuffer, Operation, OutBuffer};

/// A gzip header longer than this (name, comment, extra field) is refused.
#[cfg(feature = "gzip")]
const MAX_GZIP_HEADER: usize = 64 * 1024;
/// zstd window cap (8 MiB), the limit RFC 9659 sets for `Content-Encoding: zstd`.
#[cfg(feature = "zstd")]
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// A content coding the decoder can undo: one variant per coding whose cargo feature is on
/// (`gzip` brings gzip and deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coding {
    /// `gzip` (also `x-gzip`), several members allowed.
    #[cfg(feature = "gzip")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
    Gzip,
    /// `deflate`: zlib-wrapped (RFC 9110), or raw deflate as some servers send.
    #[cfg(feature = "gzip")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
    Deflate,
    /// `br` (Brotli).
    #[cfg(feature = "brotli")]
    #[cfg_attr(docsrs, doc(cfg(feature = "brotli")))]
    Brotli,
    /// `zstd` (Zstandard, window up to 8 MiB).
    #[cfg(feature = "zstd")]
    #[cfg_attr(docsrs, doc(cfg(feature = "zstd")))]
    Zstd,
}

impl Coding {
    /// Every coding this build can undo, in the default order of preference.
    pub const ALL: &[Coding] = &[
        #[cfg(feature = "gzip")]
        Coding::Gzip,
        #[cfg(feature = "gzip")]
        Coding::Deflate,
        #[cfg(feature = "brotli")]
        Coding::Brotli,
        #[cfg(feature = "zstd")]
        Coding::Zstd,
    ];

    /// The token used in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            #[cfg(feature = "gzip")]
            Coding::Gzip => "gzip",
            #[cfg(feature = "gzip")]
            Coding::Deflate => "deflate",
            #[cfg(feature = "brotli")]
            Coding::Brotli => "br",
            #[cfg(feature = "zstd")]
            Coding::Zstd => "zstd",
        }
    }

    /// The coding named by a `Content-Encoding` token (case-insensitive), if this build
    /// supports it.
    ///
    /// ```
    /// use weft::client::Coding;
    /// # #[cfg(feature = "gzip")]
    /// assert_eq!(Coding::from_token("X-GZIP"), Some(Coding::Gzip));
    /// assert_eq!(Coding::from_token("compress"), None);
    /// ```
    pub fn from_token(token: &str) -> Option<Coding> {
        let t = token.trim().to_ascii_lowercase();
        let t = if t == "x-gzip" { "gzip" } else { t.as_str() };
        Coding::ALL.iter().copied().find(|c| c.token() == t)
    }
}

/// One coding's streaming decoder.
pub(super) trait Stage {
    /// Decodes some of `input` into `out`: (bytes consumed, bytes produced). Called with empty
    /// input to flush output held back (when `out` was full, or at the end of an internal
    /// window).
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String>;
    /// Whether the input so far is a complete stream.
    fn complete(&self) -> bool;
}

#[cfg(feature = "gzip")]
fn inflate(
    d: &mut Decompress,
    input: &[u8],
    out: &mut [u8],
) -> Result<(usize, usize, bool), String> {
    let (i0, o0) = (d.total_in(), d.total_out());
    let status = d
        .decompress(input, out, FlushDecompress::None)
        .map_err(|e| e.to_string())?;
    Ok((
        (d.total_in() - i0) as usize,
        (d.total_out() - o0) as usize,
        status == Status::StreamEnd,
    ))
}

#[cfg(feature = "gzip")]
enum Gz {
    Header(Vec<u8>),
    Body,
    Trailer(Vec<u8>),
    Between,
}

/// gzip (RFC 1952), any number of members; checks CRC-32 and length of each.
#[cfg(feature = "gzip")]
struct Gzip {
    state: Gz,
    inflate: Decompress,
    crc: Crc,
}

/// Length of the complete gzip header at the start of `b`, `None` if more bytes are needed.
#[cfg(feature = "gzip")]
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, String> {
    let bad = |what: &str| Err(format!("invalid gzip header: {what}"));
    if !b.is_empty() && b[0] != 0x1f || b.len() > 1 && b[1] != 0x8b {
        return bad("bad magic");
    }
    if b.len() > 2 && b[2] != 8 {
        return bad("unknown compression method");
    }
    if b.len() < 10 {
        return Ok(None);
    }
    let flags = b[3];
    if flags & 0xe0 != 0 {
        return bad("reserved flags set");
    }
    let mut at = 10;
    if flags & 0x04 != 0 {
        let Some(x) = b.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            let Some(rest) = b.get(at..) else {
                return Ok(None);
            };
            let Some(nul) = rest.iter().position(|&c| c == 0) else {
                return Ok(None);
            };
            at += nul + 1;
        }
    }
    if flags & 0x02 != 0 {
        at += 2;
    }
    Ok((b.len() >= at).then_some(at))
}

#[cfg(feature = "gzip")]
impl Stage for Gzip {
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String> {
        match &mut self.state {
            Gz::Between => {
                if input.is_empty() {
                    return Ok((0, 0));
                }
                self.state = Gz::Header(Vec::new());
                self.step(input, out)
            }
            Gz::Header(buf) => {
                let before = buf.len();
                let take = input.len().min(MAX_GZIP_HEADER + 1 - before);
                buf.extend_from_slice(&input[..take]);
                match gzip_header_len(buf)? {
                    Some(len) => {
                        self.state = Gz::Body;
                        self.inflate.reset(false);
                        self.crc.reset();
                        Ok((len - before, 0))
                    }
                    None if buf.len() > MAX_GZIP_HEADER => Err("gzip header too long".into()),
                    None => Ok((take, 0)),
                }
            }
            Gz::Body => {
                let (c, p, end) = inflate(&mut self.inflate, input, out)?;
                self.crc.update(&out[..p]);
                if end {
                    self.state = Gz::Trailer(Vec::with_capacity(8));
                }
                Ok((c, p))
            }
            Gz::Trailer(buf) => {
                let take = input.len().min(8 - buf.len());
                buf.extend_from_slice(&input[..take]);
                if buf.len() == 8 {
                    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let size = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    if crc != self.crc.sum() {
                        return Err("gzip CRC mismatch".into());
                    }
                    if size != self.crc.amount() {
                        return Err("gzip length mismatch".into());
                    }
                    self.state = Gz::Between;
                }
                Ok((take, 0))
            }
        }
    }

    fn complete(&self) -> bool {
        matches!(self.state, Gz::Between)
    }
}

/// `deflate`: zlib (RFC 1950) or raw deflate (RFC 1951), chosen from the first two bytes.
#[cfg(feature = "gzip")]
struct Deflate {
    head: Vec<u8>,
    inflate: Option<Decompress>,
    done: bool,
}

#[cfg(feature = "gzip")]
impl Stage for Deflate {
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String> {
        if self.done {
            return match input.is_empty() {
                true => Ok((0, 0)),
                false => Err("data after the end of the deflate stream".into()),
            };
        }
        let Some(d) = &mut self.inflate else {
            let take = input.len().min(2 - self.head.len());
            self.head.extend_from_slice(&input[..take]);
            if self.head.len() == 2 {
                let (cmf, flg) = (self.head[0], self.head[1]);
                let zlib = cmf & 0x0f == 8
                    && cmf >> 4 <= 7
                    && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                self.inflate = Some(Decompress::new(zlib));
            }
            return Ok((take, 0));
        };
        let mut head_out = 0;
        if !self.head.is_empty() {
            // The two bytes used to choose the format go first.
            let (c, p, end) = inflate(d, &self.head, out)?;
            self.head.drain(..c);
            self.done = end;
            if !self.head.is_empty() || end || p == out.len() {
                return Ok((0, p));
            }
            head_out = p;
        }
        let (c, p, end) = inflate(d, input, &mut out[head_out..])?;
        self.done = end;
        Ok((c, head_out + p))
    }

    fn complete(&self) -> bool {
        self.done
    }
}

#[cfg(feature = "brotli")]
type BrState = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

/// `br` (RFC 7932).
#[cfg(feature = "brotli")]
struct Brotli {
    state: Box<BrState>,
    done: bool,
}

#[cfg(feature = "brotli")]
impl Stage for Brotli {
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String> {
        if self.done {
            return match input.is_empty() {
                true => Ok((0, 0)),
                false => Err("data after the end of the brotli stream".into()),
            };
        }
        let (mut avail_in, mut in_off) = (input.len(), 0);
        let (mut avail_out, mut out_off, mut total) = (out.len(), 0, 0);
        let result = BrotliDecompressStream(
            &mut avail_in,
            &mut in_off,
            input,
            &mut avail_out,
            &mut out_off,
            out,
            &mut total,
            &mut self.state,
        );
        match result {
            BrotliResult::ResultFailure => Err("invalid brotli data".into()),
            BrotliResult::ResultSuccess => {
                self.done = true;
                Ok((in_off, out_off))
            }
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => Ok((in_off, out_off)),
        }
    }

    fn complete(&self) -> bool {
        self.done
    }
}

/// `zstd` (RFC 8878), any number of frames.
#[cfg(feature = "zstd")]
struct Zstd {
    decoder: ZstdDecoder<'static>,
    started: bool,
    frame_done: bool,
}

#[cfg(feature = "zstd")]
impl Stage for Zstd {
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String> {
        let mut inb = InBuffer::around(input);
        let mut outb = OutBuffer::around(out);
        let hint = self
            .decoder
            .run(&mut inb, &mut outb)
            .map_err(|e| format!("invalid zstd data: {e}"))?;
        let (c, p) = (inb.pos(), outb.pos());
        if c > 0 {
            self.started = true;
        }
        if c > 0 || p > 0 {
            self.frame_done = hint == 0;
        }
        Ok((c, p))
    }

    fn complete(&self) -> bool {
        self.started && self.frame_done
    }
}

/// A fresh decoder for `coding`; zstd's can fail to allocate.
// With no codec feature `Coding` has no variant and the match below never returns.
#[cfg_attr(
    not(any(feature = "gzip", feature = "brotli", feature = "zstd")),
    allow(unreachable_code)
)]
pub(super) fn new_stage(coding: Coding) -> Result<Box<dyn Stage>, String> {
    Ok(match coding {
        #[cfg(feature = "gzip")]
        Coding::Gzip => Box::new(Gzip {
            state: Gz::Header(Vec::new()),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }),
        #[cfg(feature = "gzip")]
        Coding::Deflate => Box::new(Deflate {
            head: Vec::with_capacity(2),
            inflate: None,
            done: false,
        }),
        #[cfg(feature = "brotli")]
        Coding::Brotli => {
            let mut state = Box::new(BrState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ));
            // Standard streams only: a large-window stream could ask for a 1 GiB window.
            state.large_window = false;
            Box::new(Brotli { state, done: false })
        }
        #[cfg(feature = "zstd")]
        Coding::Zstd => {
            let mut decoder = ZstdDecoder::new().map_err(|e| e.to_string())?;
            decoder
                .set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
                .map_err(|e| e.to_string())?;
            Box::new(Zstd {
                decoder,
                started: false,
                frame_done: false,
            })
        }
    })
}
