//! Response body delivery (Twisted's `Response.deliverBody`): a body protocol with flow control.

use std::any::Any;

use crate::proto::Headers;
use crate::reactor::{Ctx, HandlerId};

use super::error::{Cause, Error, Phase};
use super::msg::{Msg, RequestId};

/// How a response body ended, told once to [`BodyProtocol::connection_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body arrived (Twisted's `ResponseDone`).
    Done,
    /// The body was delimited by the connection closing, so a truncation cannot be told from
    /// the end (Twisted's `PotentialDataLoss`). Over TLS, a close with `close_notify` is
    /// [`BodyEnd::Done`]; one without it fails the body as incomplete
    /// ([`ProtocolError::Incomplete`](crate::proto::ProtocolError::Incomplete)), since a
    /// truncation cannot be told from the end.
    PotentialDataLoss,
    /// The body failed (Twisted's `ResponseFailed`): truncated, malformed, timed out, stopped.
    Failed(Error),
}

impl BodyEnd {
    /// Whether the body is known to be complete.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyEnd::Done)
    }
}

/// Receives a response body. `data_received` is never called while delivery is paused.
///
/// ```
/// use weft::client::{BodyCtx, BodyEnd, BodyProtocol};
/// use weft::reactor::Ctx;
///
/// /// Counts body bytes and stops the reactor at the end.
/// struct Count(u64);
/// impl BodyProtocol for Count {
///     fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
///         self.0 += data.len() as u64;
///     }
///     fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
///         println!("{} bytes, {:?}", self.0, reason);
///         ctx.stop();
///     }
/// }
/// ```
pub trait BodyProtocol: 'static {
    /// Delivery starts; `handle` pauses, resumes or stops it from anywhere later.
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        let _ = (ctx, handle);
    }

    /// A piece of body. Pause or stop through `body`.
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]);

    /// The trailer fields of a chunked body, just before the end.
    fn trailers_received(&mut self, body: &mut BodyCtx<'_>, trailers: &Headers) {
        let _ = (body, trailers);
    }

    /// The body ended; called exactly once.
    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd);
}

/// What a body protocol can do from inside its callbacks.
pub struct BodyCtx<'a> {
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) handle: BodyHandle,
    pub(crate) paused: bool,
    pub(crate) stopped: bool,
}

impl<'a> BodyCtx<'a> {
    pub(crate) fn new(ctx: &'a mut Ctx, agent: HandlerId, request: RequestId) -> Self {
        BodyCtx {
            ctx,
            handle: BodyHandle { agent, request },
            paused: false,
            stopped: false,
        }
    }

    /// Delivers nothing more until [`BodyHandle::resume`]; the socket is not read meanwhile.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Stops delivery: the connection is closed and `connection_lost` follows with a
    /// cancellation.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// A handle for later (to resume after a pause).
    pub fn handle(&self) -> BodyHandle {
        self.handle
    }

    /// The reactor context.
    pub fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
}

/// Controls the delivery of one response body from outside its callbacks. Copyable; stale
/// handles do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHandle {
    pub(crate) agent: HandlerId,
    pub(crate) request: RequestId,
}

impl BodyHandle {
    /// Pauses delivery (Twisted's `pauseProducing`).
    pub fn pause(&self, ctx: &mut Ctx) {
        ctx.post(self.agent, Box::new(Msg::PauseBody(self.request)));
    }

    /// Resumes delivery (Twisted's `resumeProducing`).
    pub fn resume(&self, ctx: &mut Ctx) {
        ctx.post(self.agent, Box::new(Msg::ResumeBody(self.request)));
    }

    /// Stops delivery and closes the connection (Twisted's `stopProducing`).
    pub fn stop(&self, ctx: &mut Ctx) {
        ctx.post(self.agent, Box::new(Msg::Cancel(self.request)));
    }
}

/// What a [`BodyHandle`] (or a [`BodyCtx`] handle) asks of whoever delivers the body.
///
/// A body protocol that sits between the agent and the user's protocol (the decoding wrapper)
/// gives the user's protocol a handle [`relayed`](BodyHandle::relayed_to) to a handler of its
/// own; that handler reads each request with [`BodyControl::from_message`], acts on it (a
/// resume first decodes what was held back) and forwards it to the agent's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyControl {
    /// [`BodyHandle::pause`].
    Pause,
    /// [`BodyHandle::resume`].
    Resume,
    /// [`BodyHandle::stop`].
    Stop,
}

impl BodyControl {
    /// The request a body handle posted, if `message` is one.
    pub(crate) fn from_message(message: Box<dyn Any>) -> Option<BodyControl> {
        match *message.downcast::<Msg>().ok()? {
            Msg::PauseBody(_) => Some(BodyControl::Pause),
            Msg::ResumeBody(_) => Some(BodyControl::Resume),
            Msg::Cancel(_) => Some(BodyControl::Stop),
            Msg::ResumeProducer(_) => None,
        }
    }
}

impl BodyHandle {
    /// This handle with its pause, resume and stop posted to `relay` instead of the agent
    /// (read there with [`BodyControl::from_message`]).
    pub(crate) fn relayed_to(self, relay: HandlerId) -> BodyHandle {
        BodyHandle {
            agent: relay,
            request: self.request,
        }
    }
}

/// A body read into memory by [`super::Response::collect`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Collected {
    /// The body bytes.
    pub body: Vec<u8>,
    /// Trailer fields, if the body was chunked and had any.
    pub trailers: Headers,
    /// False when the body was close-delimited ([`BodyEnd::PotentialDataLoss`]).
    pub complete: bool,
}

type CollectCallback = Box<dyn FnOnce(&mut Ctx, Result<Collected, Error>)>;

/// The body protocol behind [`super::Response::collect`].
pub(crate) struct Collector {
    pub(crate) max: u64,
    pub(crate) out: Collected,
    pub(crate) done: Option<CollectCallback>,
    pub(crate) overflow: bool,
}

impl BodyProtocol for Collector {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        if self.out.body.len() as u64 + data.len() as u64 > self.max {
            self.overflow = true;
            body.stop();
            return;
        }
        self.out.body.extend_from_slice(data);
    }

    fn trailers_received(&mut self, _body: &mut BodyCtx<'_>, trailers: &Headers) {
        self.out.trailers = trailers.clone();
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let Some(done) = self.done.take() else { return };
        let result = match reason {
            _ if self.overflow => {
                let error = Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(self.max));
                // The agent's end of the stopped body names the URL.
                Err(match &reason {
                    BodyEnd::Failed(stopped) => error.with_url_of(stopped),
                    _ => error,
                })
            }
            BodyEnd::Done | BodyEnd::PotentialDataLoss => {
                let mut out = std::mem::take(&mut self.out);
                out.complete = reason.is_done();
                Ok(out)
            }
            BodyEnd::Failed(e) => Err(e),
        };
        done(ctx, result);
    }
}
