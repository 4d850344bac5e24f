//! Response content decoding (Twisted's `ContentDecoderAgent`): offers `Accept-Encoding` and
//! undoes `Content-Encoding` while the body streams, piece by piece, in bounded memory.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use zstd::stream::raw::{DParameter, Decoder as ZstdDecoder, InBuffer, Operation, OutBuffer};

use crate::proto::Headers;
use crate::reactor::{ConnId, Ctx, HandlerId, Protocol};

use crate::client::RequestId;
use crate::client::body::{BodyControl, BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use crate::client::error::{Cause, Error, Phase};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};
use crate::client::response::Response;

/// Decoded bytes handed to the user's protocol per call, at most.
const CHUNK: usize = 32 * 1024;
/// A gzip header longer than this (name, comment, extra field) is refused.
const MAX_GZIP_HEADER: usize = 64 * 1024;
/// zstd window cap (8 MiB), the limit RFC 9659 sets for `Content-Encoding: zstd`.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// A content coding the decoder can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (also `x-gzip`), several members allowed.
    Gzip,
    /// `deflate`: zlib-wrapped (RFC 9110), or raw deflate as some servers send.
    Deflate,
    /// `br` (Brotli).
    Brotli,
    /// `zstd` (Zstandard, window up to 8 MiB).
    Zstd,
}

impl Coding {
    /// The token used in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding named by a `Content-Encoding` token (case-insensitive), if supported.
    ///
    /// ```
    /// use weft::client::Coding;
    /// assert_eq!(Coding::from_token("X-GZIP"), Some(Coding::Gzip));
    /// assert_eq!(Coding::from_token("compress"), None);
    /// ```
    pub fn from_token(token: &str) -> Option<Coding> {
        let t = token.trim().to_ascii_lowercase();
        match t.as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// Settings of a [`ContentDecoderAgent`].
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// The codings offered in `Accept-Encoding` and undone in responses, in order of
    /// preference (default gzip, deflate, br, zstd).
    pub encodings: Vec<Coding>,
    /// Cap on the decoded body in bytes (default 1 GiB); past it the body fails with
    /// [`Cause::DecodedTooLarge`] and delivery stops. It bounds the damage of a
    /// decompression bomb in time; memory is bounded regardless (32 KiB of output at a time).
    pub max_decoded_size: u64,
    /// Cap on the number of codings in `Content-Encoding` (all fields together, `identity`
    /// not counted); more fail the body with [`Cause::TooManyContentEncodings`] (default 5).
    pub max_codings: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            encodings: vec![Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd],
            max_decoded_size: 1 << 30,
            max_codings: 5,
        }
    }
}

/// Decodes compressed response bodies (Twisted's `ContentDecoderAgent`).
///
/// It adds `Accept-Encoding` to requests that have none. When a response's
/// `Content-Encoding` names codings it supports, the body is decoded as it streams (no
/// buffering of the whole body), codings are undone in reverse order of application, and the
/// response handed on has no `Content-Encoding` nor `Content-Length`, with `length = None`.
///
/// - `identity` is ignored. Codings it does not support stay in `Content-Encoding` and their
///   bytes pass as they are; only a supported suffix of the list is undone (with `foo, gzip`,
///   gzip is undone and `Content-Encoding: foo` remains).
/// - `deflate` accepts zlib-wrapped data (RFC 9110) and raw deflate, told apart by the first
///   two bytes, as browsers and curl do.
/// - A truncated stream, a bad checksum or bytes after the end of a stream (except further
///   gzip members) end the body with [`Cause::Decode`], never [`BodyEnd::Done`].
/// - Responses to `HEAD`, `1xx`, `204`, `304` and empty bodies are passed unchanged.
/// - Pause, resume and stop work through the decoder: the [`BodyHandle`] the protocol gets
///   (in `body_started` or from [`BodyCtx::handle`]) pauses at once, even in the middle of a
///   piece that decodes to many megabytes. Use that handle rather than
///   [`Response::body_handle`], which bypasses the decoder.
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, ContentDecoderAgent, DecodeConfig, HttpAgent, Request};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = ContentDecoderAgent::new(
///     Agent::new(reactor.ctx(), AgentConfig::default()),
///     DecodeConfig::default(),
/// );
/// agent.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/gzip"), Box::new(|ctx, r| {
///     let response = r.unwrap();
///     response.collect(ctx, 1 << 20, |ctx, body| {
///         println!("{} decoded bytes", body.unwrap().body.len());
///         ctx.stop();
///     });
/// }));
/// reactor.run().unwrap();
/// ```
pub struct ContentDecoderAgent<A: HttpAgent> {
    inner: A,
    config: Rc<DecodeConfig>,
}

impl<A: HttpAgent> ContentDecoderAgent<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, config: DecodeConfig) -> Self {
        ContentDecoderAgent {
            inner,
            config: Rc::new(config),
        }
    }

    /// The wrapped agent.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: HttpAgent> HttpAgent for ContentDecoderAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        mut request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        if !request.headers.contains("accept-encoding") && !self.config.encodings.is_empty() {
            let offer: Vec<&str> = self.config.encodings.iter().map(|c| c.token()).collect();
            request
                .headers
                .append("Accept-Encoding", offer.join(", ").as_bytes());
        }
        let config = self.config.clone();
        self.inner.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let result = result.map(|mut response| {
                    prepare(&config, &mut response);
                    response
                });
                on_response(ctx, result);
            }),
        )
    }

    fn default_total_timeout(&self) -> Option<std::time::Duration> {
        self.inner.default_total_timeout()
    }
}

/// Rewrites the head and interposes the decoder, when the response is encoded.
fn prepare(config: &DecodeConfig, response: &mut Response) {
    if response.method.eq_ignore_ascii_case("HEAD")
        || response.code < 200
        || response.code == 204
        || response.code == 304
        || response.length == Some(0)
    {
        return;
    }
    let (keep, undo) = match plan(config, &response.headers) {
        Plan::Pass => return,
        Plan::TooMany => {
            response.map_body(|inner| {
                Box::new(DecodeBody::failing(inner, Cause::TooManyContentEncodings))
            });
            return;
        }
        Plan::Undo { keep, undo } => (keep, undo),
    };
    response.headers.remove("content-encoding");
    if !keep.is_empty() {
        response
            .headers
            .append("Content-Encoding", keep.join(", ").as_bytes());
    }
    response.headers.remove("content-length");
    response.length = None;
    let cap = config.max_decoded_size;
    response.map_body(move |inner| Box::new(DecodeBody::new(inner, &undo, cap)));
}

/// What the `Content-Encoding` fields of a response call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to undo: no coding, or the last one is not supported.
    Pass,
    /// More codings than [`DecodeConfig::max_codings`].
    TooMany,
    /// Undo `undo`, in this order (the reverse of application); `keep` (lowercased) stays in
    /// `Content-Encoding`.
    Undo {
        /// Codings left in place, in order of application.
        keep: Vec<String>,
        /// Codings to undo, last applied first.
        undo: Vec<Coding>,
    },
}

/// Reads the `Content-Encoding` fields (every line, comma lists, `identity` ignored) and
/// decides what to undo: the longest supported suffix of the list.
pub(crate) fn plan(config: &DecodeConfig, headers: &Headers) -> Plan {
    let codings: Vec<String> = headers
        .get_all("content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "identity")
        .collect();
    if codings.len() > config.max_codings {
        return Plan::TooMany;
    }
    let supported = codings
        .iter()
        .rev()
        .map_while(|t| Coding::from_token(t).filter(|c| config.encodings.contains(c)))
        .count();
    if supported == 0 {
        return Plan::Pass;
    }
    let (keep, undo) = codings.split_at(codings.len() - supported);
    let undo: Vec<Coding> = undo
        .iter()
        .rev()
        .filter_map(|t| Coding::from_token(t))
        .collect();
    Plan::Undo {
        keep: keep.to_vec(),
        undo,
    }
}

// ---- decoders -----------------------------------------------------------------------------

/// One coding's streaming decoder.
trait Stage {
    /// Decodes some of `input` into `out`: (bytes consumed, bytes produced). Called with empty
    /// input to flush output held back (when `out` was full, or at the end of an internal
    /// window).
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String>;
    /// Whether the input so far is a complete stream.
    fn complete(&self) -> bool;
}

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

enum Gz {
    Header(Vec<u8>),
    Body,
    Trailer(Vec<u8>),
    Between,
}

/// gzip (RFC 1952), any number of members; checks CRC-32 and length of each.
struct Gzip {
    state: Gz,
    inflate: Decompress,
    crc: Crc,
}

/// Length of the complete gzip header at the start of `b`, `None` if more bytes are needed.
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
struct Deflate {
    head: Vec<u8>,
    inflate: Option<Decompress>,
    done: bool,
}

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

type BrState = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

/// `br` (RFC 7932).
struct Brotli {
    state: Box<BrState>,
    done: bool,
}

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
struct Zstd {
    decoder: ZstdDecoder<'static>,
    started: bool,
    frame_done: bool,
}

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

fn new_stage(coding: Coding) -> Result<Box<dyn Stage>, String> {
    Ok(match coding {
        Coding::Gzip => Box::new(Gzip {
            state: Gz::Header(Vec::new()),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }),
        Coding::Deflate => Box::new(Deflate {
            head: Vec::with_capacity(2),
            inflate: None,
            done: false,
        }),
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

struct Slot {
    coding: Coding,
    stage: Box<dyn Stage>,
    input: Vec<u8>,
    pos: usize,
    /// The last step produced output: the decoder may hold more, even when that output did
    /// not fill the buffer (inflate stops at the end of its internal window), so it is
    /// called again, with no input if need be, until it produces nothing.
    more: bool,
}

impl Slot {
    fn has_work(&self) -> bool {
        self.pos < self.input.len() || self.more
    }
}

// ---- the body filter ----------------------------------------------------------------------

/// What became of a run of decoding and delivery.
enum Pumped {
    /// Every byte received so far is decoded and delivered.
    Drained,
    /// The user's protocol paused; undecoded input is kept.
    Paused,
    /// The user's protocol stopped delivery.
    Stopped,
    /// Decoding failed.
    Failed(Cause),
}

/// The decoding stages of one body with their buffers and the output cap: the part of the
/// body filter that neither calls user code nor needs a reactor.
pub(crate) struct Decoder {
    slots: Vec<Slot>,
    buf: Vec<u8>,
    delivered: u64,
    cap: u64,
}

impl Decoder {
    /// Stages undoing `codings` in this order, output capped at `cap` bytes. A stage that
    /// cannot be created is left out and its failure returned.
    pub(crate) fn new(codings: &[Coding], cap: u64) -> (Decoder, Option<Cause>) {
        let mut failure = None;
        let mut slots = Vec::new();
        for &coding in codings {
            match new_stage(coding) {
                Ok(stage) => slots.push(Slot {
                    coding,
                    stage,
                    input: Vec::new(),
                    pos: 0,
                    more: false,
                }),
                Err(e) => failure = Some(Cause::Decode(e)),
            }
        }
        let decoder = Decoder {
            slots,
            buf: vec![0; CHUNK],
            delivered: 0,
            cap,
        };
        (decoder, failure)
    }

    /// Queues encoded bytes; false (and nothing queued) when there is no stage.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        let Some(first) = self.slots.first_mut() else {
            return false;
        };
        first.input.extend_from_slice(data);
        true
    }

    /// Decodes the next piece of output, at most [`CHUNK`] bytes, counted against the cap:
    /// its length (the bytes are [`Self::piece`]), or `None` when all input is used.
    pub(crate) fn next_piece(&mut self) -> Result<Option<usize>, Cause> {
        let Some(len) = self.next_chunk()? else {
            return Ok(None);
        };
        if self.delivered + len as u64 > self.cap {
            return Err(Cause::DecodedTooLarge(self.cap));
        }
        self.delivered += len as u64;
        Ok(Some(len))
    }

    /// The piece [`Self::next_piece`] just decoded.
    pub(crate) fn piece(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// The first coding whose stream is not complete, if any.
    pub(crate) fn unfinished(&self) -> Option<Coding> {
        self.slots
            .iter()
            .find(|slot| !slot.stage.complete())
            .map(|slot| slot.coding)
    }

    /// Decodes until one chunk for the user's protocol is ready (its length), or all input
    /// is used (`None`).
    fn next_chunk(&mut self) -> Result<Option<usize>, Cause> {
        let n = self.slots.len();
        // Deepest stage first, so a middle stage's input never holds more than one chunk.
        while let Some(i) = (0..n).rev().find(|&i| self.slots[i].has_work()) {
            let slot = &mut self.slots[i];
            let input = &slot.input[slot.pos..];
            let (c, p) = slot
                .stage
                .step(input, &mut self.buf)
                .map_err(|e| Cause::Decode(format!("{}: {e}", slot.coding.token())))?;
            if c == 0 && p == 0 && !input.is_empty() {
                return Err(Cause::Decode(format!(
                    "{}: no progress",
                    slot.coding.token()
                )));
            }
            slot.pos += c;
            if slot.pos == slot.input.len() {
                slot.input.clear();
                slot.pos = 0;
            }
            slot.more = p > 0;
            if p > 0 {
                if i + 1 == n {
                    return Ok(Some(p));
                }
                let next = &mut self.slots[i + 1];
                next.input.extend_from_slice(&self.buf[..p]);
            }
        }
        Ok(None)
    }

    /// Whether input is waiting to be decoded.
    pub(crate) fn pending(&self) -> bool {
        self.slots.iter().any(Slot::has_work)
    }
}

struct Shared {
    inner: Option<Box<dyn BodyProtocol>>,
    decoder: Decoder,
    /// A failure decided here, reported when the agent's delivery ends.
    failure: Option<Cause>,
    /// The body's end, held back while undecoded input waits for a resume.
    end: Option<BodyEnd>,
    trailers: Option<Headers>,
    agent: Option<BodyHandle>,
    relay: Option<HandlerId>,
    finished: bool,
}

impl Shared {
    fn pending(&self) -> bool {
        self.decoder.pending()
    }

    fn ids(&self, fallback: BodyHandle) -> (HandlerId, RequestId) {
        let handle = self.agent.unwrap_or(fallback);
        (self.relay.unwrap_or(handle.agent), handle.request)
    }
}

/// Decodes and feeds the user's protocol until input runs out, it pauses or stops, or
/// decoding fails. No borrow is held while the user's protocol runs.
fn pump(shared: &Rc<RefCell<Shared>>, ctx: &mut Ctx, fallback: BodyHandle) -> Pumped {
    loop {
        let mut s = shared.borrow_mut();
        let len = match s.decoder.next_piece() {
            Ok(Some(len)) => len,
            Ok(None) => return Pumped::Drained,
            Err(cause) => return Pumped::Failed(cause),
        };
        let (me, id) = s.ids(fallback);
        let Some(mut inner) = s.inner.take() else {
            return Pumped::Stopped;
        };
        let chunk = std::mem::take(&mut s.decoder.buf);
        drop(s);
        let mut bctx = BodyCtx::new(ctx, me, id);
        inner.data_received(&mut bctx, &chunk[..len]);
        let (paused, stopped) = (bctx.paused, bctx.stopped);
        let mut s = shared.borrow_mut();
        s.inner = Some(inner);
        s.decoder.buf = chunk;
        if stopped {
            return Pumped::Stopped;
        }
        if paused {
            return Pumped::Paused;
        }
    }
}

/// Gives the user's protocol its end (held trailers first) and retires the relay.
fn deliver_end(shared: &Rc<RefCell<Shared>>, ctx: &mut Ctx, mut end: BodyEnd) {
    let mut s = shared.borrow_mut();
    if s.finished {
        return;
    }
    s.finished = true;
    if let Some(cause) = s.failure.take() {
        end = BodyEnd::Failed(Error::new(Phase::ResponseFailed, cause));
    } else if !matches!(end, BodyEnd::Failed(_))
        && let Some(coding) = s.decoder.unfinished()
    {
        let msg = format!("{}: truncated stream", coding.token());
        end = BodyEnd::Failed(Error::new(Phase::ResponseFailed, Cause::Decode(msg)));
    }
    let relay = s.relay.take();
    let trailers = s.trailers.take();
    let agent = s.agent;
    let inner = s.inner.take();
    s.decoder.slots.clear();
    drop(s);
    if let Some(relay) = relay {
        ctx.remove_handler(relay);
    }
    let Some(mut inner) = inner else { return };
    if let (Some(trailers), Some(agent), BodyEnd::Done | BodyEnd::PotentialDataLoss) =
        (trailers, agent, &end)
    {
        let mut bctx = BodyCtx::new(ctx, agent.agent, agent.request);
        inner.trailers_received(&mut bctx, &trailers);
    }
    inner.connection_lost(ctx, end);
}

/// The protocol the agent feeds: decodes, then feeds the user's protocol.
struct DecodeBody {
    shared: Rc<RefCell<Shared>>,
}

impl DecodeBody {
    fn new(inner: Box<dyn BodyProtocol>, codings: &[Coding], cap: u64) -> Self {
        let (decoder, failure) = Decoder::new(codings, cap);
        DecodeBody {
            shared: Rc::new(RefCell::new(Shared {
                inner: Some(inner),
                decoder,
                failure,
                end: None,
                trailers: None,
                agent: None,
                relay: None,
                finished: false,
            })),
        }
    }

    fn failing(inner: Box<dyn BodyProtocol>, cause: Cause) -> Self {
        let body = DecodeBody::new(inner, &[], 0);
        body.shared.borrow_mut().failure = Some(cause);
        body
    }
}

impl BodyProtocol for DecodeBody {
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        let relay = ctx.add_handler(Box::new(Relay {
            shared: self.shared.clone(),
        }));
        let mut s = self.shared.borrow_mut();
        s.agent = Some(handle);
        s.relay = Some(relay);
        let failed = s.failure.is_some();
        let inner = s.inner.take();
        drop(s);
        if failed {
            // Nothing to deliver: end the exchange; the failure replaces the cancellation.
            handle.stop(ctx);
        }
        if let Some(mut inner) = inner {
            inner.body_started(ctx, handle.relayed_to(relay));
            self.shared.borrow_mut().inner = Some(inner);
        }
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        {
            let mut s = self.shared.borrow_mut();
            if s.finished || s.failure.is_some() {
                return;
            }
            if !s.decoder.push(data) {
                return;
            }
        }
        match pump(&self.shared, body.ctx, body.handle) {
            Pumped::Drained => {}
            Pumped::Paused => body.pause(),
            Pumped::Stopped => body.stop(),
            Pumped::Failed(cause) => {
                self.shared.borrow_mut().failure = Some(cause);
                body.stop();
            }
        }
    }

    fn trailers_received(&mut self, body: &mut BodyCtx<'_>, trailers: &Headers) {
        let mut s = self.shared.borrow_mut();
        if s.finished || s.failure.is_some() {
            return;
        }
        if s.pending() {
            s.trailers = Some(trailers.clone());
            return;
        }
        let (me, id) = s.ids(body.handle);
        let Some(mut inner) = s.inner.take() else {
            return;
        };
        drop(s);
        let mut bctx = BodyCtx::new(body.ctx, me, id);
        inner.trailers_received(&mut bctx, trailers);
        let stopped = bctx.stopped;
        self.shared.borrow_mut().inner = Some(inner);
        if stopped {
            body.stop();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let mut s = self.shared.borrow_mut();
        if s.finished {
            return;
        }
        if s.failure.is_none() && !matches!(reason, BodyEnd::Failed(_)) && s.pending() {
            // Paused with undecoded input: the end waits for the resume (see `Relay`).
            s.end = Some(reason);
            return;
        }
        drop(s);
        deliver_end(&self.shared, ctx, reason);
    }
}

/// Receives the pause, resume and stop requests of the user's protocol, so a resume can
/// first decode what was held back, and forwards them to the agent.
struct Relay {
    shared: Rc<RefCell<Shared>>,
}

impl Protocol for Relay {
    fn data_received(&mut self, _ctx: &mut Ctx, _conn: ConnId, _data: &[u8]) {}

    fn message(&mut self, ctx: &mut Ctx, msg: Box<dyn Any>) {
        let Some(control) = BodyControl::from_message(msg) else {
            return;
        };
        let (agent, ended) = {
            let s = self.shared.borrow();
            match s.agent {
                Some(agent) if !s.finished => (agent, s.end.is_some()),
                _ => return,
            }
        };
        match control {
            BodyControl::Pause => agent.pause(ctx),
            BodyControl::Stop if ended => {
                let end = cancelled();
                deliver_end(&self.shared, ctx, end);
            }
            BodyControl::Stop => agent.stop(ctx),
            BodyControl::Resume => match pump(&self.shared, ctx, agent) {
                Pumped::Paused => {}
                Pumped::Stopped if ended => deliver_end(&self.shared, ctx, cancelled()),
                Pumped::Stopped => agent.stop(ctx),
                Pumped::Failed(cause) => {
                    self.shared.borrow_mut().failure = Some(cause);
                    if ended {
                        deliver_end(&self.shared, ctx, cancelled());
                    } else {
                        agent.stop(ctx);
                    }
                }
                Pumped::Drained => {
                    let end = self.shared.borrow_mut().end.take();
                    match end {
                        Some(end) => deliver_end(&self.shared, ctx, end),
                        None => agent.resume(ctx),
                    }
                }
            },
        }
    }
}

fn cancelled() -> BodyEnd {
    BodyEnd::Failed(Error::new(Phase::ResponseFailed, Cause::Cancelled))
}
