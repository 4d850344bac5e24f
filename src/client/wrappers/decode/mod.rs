//! Response content decoding (Twisted's `ContentDecoderAgent`): offers `Accept-Encoding` and
//! undoes `Content-Encoding` while the body streams, piece by piece, in bounded memory.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use crate::proto::Headers;
use crate::reactor::{ConnId, Ctx, HandlerId, Protocol};

use crate::client::RequestId;
use crate::client::body::{BodyControl, BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use crate::client::error::{Cause, Error, Phase};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};
use crate::client::response::Response;

mod codecs;

pub use codecs::Coding;
use codecs::{Stage, new_stage};

/// Decoded bytes handed to the user's protocol per call, at most.
const CHUNK: usize = 32 * 1024;

/// Settings of a [`ContentDecoderAgent`].
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// The codings offered in `Accept-Encoding` and undone in responses, in order of
    /// preference (default [`Coding::ALL`]: gzip, deflate, br, zstd, those whose cargo
    /// feature is on).
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
            encodings: Coding::ALL.to_vec(),
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
/// - `identity` is ignored. Codings it does not support (including those whose cargo feature,
///   `gzip`, `brotli` or `zstd`, is off) stay in `Content-Encoding` and their bytes pass as
///   they are; only a supported suffix of the list is undone (with `foo, gzip`,
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
            let url: Rc<str> = response.url.as_str().into();
            response.map_body(move |inner| {
                let cause = Cause::TooManyContentEncodings;
                Box::new(DecodeBody::failing(inner, url.clone(), cause))
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
    let url: Rc<str> = response.url.as_str().into();
    response.map_body(move |inner| Box::new(DecodeBody::new(inner, url.clone(), &undo, cap)));
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
    #[cfg(feature = "fuzzing")]
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
    /// The response's URL, named by the errors decided here.
    url: Rc<str>,
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
        let error = Error::new(Phase::ResponseFailed, cause).with_url(&s.url);
        end = BodyEnd::Failed(error);
    } else if !matches!(end, BodyEnd::Failed(_))
        && let Some(coding) = s.decoder.unfinished()
    {
        let msg = format!("{}: truncated stream", coding.token());
        let error = Error::new(Phase::ResponseFailed, Cause::Decode(msg)).with_url(&s.url);
        end = BodyEnd::Failed(error);
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
    fn new(inner: Box<dyn BodyProtocol>, url: Rc<str>, codings: &[Coding], cap: u64) -> Self {
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
                url,
            })),
        }
    }

    fn failing(inner: Box<dyn BodyProtocol>, url: Rc<str>, cause: Cause) -> Self {
        let body = DecodeBody::new(inner, url, &[], 0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;

    /// Records the `Accept-Encoding` field of the last request it is given; answers none.
    struct Capture(Rc<RefCell<Option<String>>>);

    impl HttpAgent for Capture {
        fn request(&self, _: &mut Ctx, request: Request, _: ResponseCallback) -> RequestHandle {
            *self.0.borrow_mut() = request
                .headers
                .get_str("accept-encoding")
                .map(str::to_owned);
            RequestHandle::new()
        }
    }

    /// Each coding with whether this build has its cargo feature on.
    const BUILT: [(&str, bool); 4] = [
        ("gzip", cfg!(feature = "gzip")),
        ("deflate", cfg!(feature = "gzip")),
        ("br", cfg!(feature = "brotli")),
        ("zstd", cfg!(feature = "zstd")),
    ];

    #[test]
    fn a_coding_left_out_of_the_build_is_neither_offered_nor_undone() {
        let mut reactor = Reactor::new().unwrap();
        let seen = Rc::new(RefCell::new(None));
        let agent = ContentDecoderAgent::new(Capture(seen.clone()), DecodeConfig::default());
        let request = Request::get("http://127.0.0.1:1/");
        agent.request(reactor.ctx(), request, Box::new(|_, _| {}));
        let offer = seen.borrow().clone();
        let offered: Vec<&str> = offer.iter().flat_map(|v| v.split(", ")).collect();
        let built: Vec<&str> = BUILT.iter().filter(|b| b.1).map(|b| b.0).collect();
        assert_eq!(offered, built);

        for (token, on) in BUILT {
            assert_eq!(Coding::from_token(token).is_some(), on, "{token}");
            let mut headers = Headers::new();
            headers.append("Content-Encoding", token.as_bytes());
            let undone = match plan(&DecodeConfig::default(), &headers) {
                Plan::Pass => false,
                Plan::Undo { keep, undo } => {
                    assert!(keep.is_empty() && undo.len() == 1, "{token}");
                    true
                }
                Plan::TooMany => panic!("{token}: too many codings"),
            };
            assert_eq!(undone, on, "{token}");
        }
    }
}
