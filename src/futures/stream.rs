//! A response body as a `Stream` of chunks, its backpressure the body's pause and resume.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::client::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol, Error, Response};
use crate::reactor::Ctx;

use super::bridge::{Bridge, reactor_gone};

/// Bytes held for the stream before the body is paused. Past it, the socket is not read until
/// the stream is polled again, so an unpolled stream holds at most this plus one read.
pub const STREAM_BUFFER: usize = 64 * 1024;

/// What the stream and its body protocol share.
#[derive(Default)]
struct Shared {
    chunks: VecDeque<Vec<u8>>,
    buffered: usize,
    /// The body is paused for want of room.
    paused: bool,
    /// Set by `connection_lost` (or by the protocol dropped without it).
    end: Option<BodyEnd>,
    handle: Option<BodyHandle>,
    waker: Option<Waker>,
}

impl Shared {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The body protocol behind a [`BodyStream`]; lives on the reactor.
struct Feed(Rc<RefCell<Shared>>);

impl BodyProtocol for Feed {
    fn body_started(&mut self, _ctx: &mut Ctx, handle: BodyHandle) {
        self.0.borrow_mut().handle = Some(handle);
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        let mut shared = self.0.borrow_mut();
        shared.handle = Some(body.handle());
        shared.buffered += data.len();
        shared.chunks.push_back(data.to_vec());
        if shared.buffered >= STREAM_BUFFER {
            shared.paused = true;
            body.pause();
        }
        shared.wake();
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
        let mut shared = self.0.borrow_mut();
        shared.end = Some(reason);
        shared.wake();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Dropped without `connection_lost`: the reactor went away with the body.
        if let Ok(mut shared) = self.0.try_borrow_mut()
            && shared.end.is_none()
        {
            shared.end = Some(BodyEnd::Failed(reactor_gone()));
            shared.wake();
        }
    }
}

/// A response body as a [`Stream`] of chunks: made by
/// [`AsyncResponse::into_stream`](super::AsyncResponse::into_stream).
///
/// Delivery starts when the stream is first polled. At most [`STREAM_BUFFER`] bytes (plus one
/// read) wait for the consumer: past that the body is paused and the socket is not read
/// until the stream is polled again. The stream ends after the last chunk of a complete body
/// (or of a close-delimited one, whose end cannot be told from a truncation); a failed body
/// yields its error as the last item. Dropping the stream before the end stops the body,
/// which closes its connection.
pub struct BodyStream {
    bridge: Bridge,
    /// The response, until the first poll hands its body to the reactor.
    response: Option<Response>,
    shared: Rc<RefCell<Shared>>,
    finished: bool,
}

impl BodyStream {
    pub(super) fn new(bridge: &Bridge, response: Response) -> Self {
        BodyStream {
            bridge: bridge.clone(),
            response: Some(response),
            shared: Rc::default(),
            finished: false,
        }
    }

    /// Bytes received and not yet taken from the stream.
    pub fn buffered(&self) -> usize {
        self.shared.borrow().buffered
    }
}

impl Stream for BodyStream {
    type Item = Result<Vec<u8>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(response) = this.response.take() {
            let feed = Feed(this.shared.clone());
            this.bridge
                .post(Box::new(move |ctx| response.deliver_body(ctx, feed)));
        }
        let mut shared = this.shared.borrow_mut();
        if let Some(chunk) = shared.chunks.pop_front() {
            shared.buffered -= chunk.len();
            if shared.paused && shared.buffered < STREAM_BUFFER && shared.end.is_none() {
                shared.paused = false;
                if let Some(handle) = shared.handle {
                    this.bridge.post(Box::new(move |ctx| handle.resume(ctx)));
                }
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match shared.end.take() {
            Some(end) => {
                this.finished = true;
                match end {
                    BodyEnd::Failed(e) => Poll::Ready(Some(Err(e))),
                    BodyEnd::Done | BodyEnd::PotentialDataLoss => Poll::Ready(None),
                }
            }
            None => {
                match &mut shared.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        // Never delivered: the response drops unread, which closes its connection.
        if self.response.is_some() || self.finished {
            return;
        }
        let Ok(shared) = self.shared.try_borrow() else {
            return;
        };
        if shared.end.is_some() {
            return;
        }
        let shared = self.shared.clone();
        self.bridge.post(Box::new(move |ctx| {
            let shared = shared.borrow();
            if shared.end.is_none()
                && let Some(handle) = shared.handle
            {
                handle.stop(ctx);
            }
        }));
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared.borrow();
        f.debug_struct("BodyStream")
            .field("started", &self.response.is_none())
            .field("buffered", &shared.buffered)
            .field("paused", &shared.paused)
            .field("ended", &(self.finished || shared.end.is_some()))
            .finish()
    }
}
