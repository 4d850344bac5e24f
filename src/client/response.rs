//! A response whose head has arrived; its body waits for [`Response::deliver_body`].

use std::cell::Cell;
use std::rc::Rc;

use url::Url;

use crate::proto::{Headers, Version};
use crate::reactor::Ctx;

use super::agent::Msg;
use super::body::{BodyHandle, BodyProtocol, Collected, Collector};
use super::error::Error;

/// The head of a response, reported as soon as it arrives (Twisted's `IResponse`).
///
/// The body is not read from the socket until [`Response::deliver_body`] (or
/// [`Response::collect`]) is called. Dropping a `Response` without either discards the body
/// and closes its connection: it is never returned to the pool with unread bytes.
#[derive(Debug)]
pub struct Response {
    /// Protocol version of the response.
    pub version: Version,
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub phrase: String,
    /// Header fields, in the order received.
    pub headers: Headers,
    /// Body length when known in advance (Content-Length, or 0 for responses without a
    /// body); `None` for chunked and close-delimited bodies.
    pub length: Option<u64>,
    /// The URL requested.
    pub url: Url,
    pub(crate) handle: BodyHandle,
    // Shared with the agent, set by `deliver_body`: when the agent holds the only reference
    // and it was never set, the body was abandoned and its connection is closed.
    pub(crate) delivery: Rc<Cell<bool>>,
}

impl Response {
    /// Streams the body to `protocol`, which then receives `data_received` calls and exactly
    /// one `connection_lost`. A second call fails the second protocol with
    /// [`super::Cause::BodyAlreadyDelivered`].
    pub fn deliver_body(&self, ctx: &mut Ctx, protocol: impl BodyProtocol) {
        self.delivery.set(true);
        ctx.post(
            self.handle.agent,
            Box::new(Msg::DeliverBody(self.handle.request, Box::new(protocol))),
        );
    }

    /// Reads the whole body into memory, failing with [`super::Cause::BodyTooLarge`] past
    /// `max_bytes` (the connection is then closed, not pooled).
    pub fn collect(
        &self,
        ctx: &mut Ctx,
        max_bytes: u64,
        done: impl FnOnce(&mut Ctx, Result<Collected, Error>) + 'static,
    ) {
        self.deliver_body(
            ctx,
            Collector {
                max: max_bytes,
                out: Collected::default(),
                done: Some(Box::new(done)),
                overflow: false,
            },
        );
    }

    /// The handle that pauses, resumes or stops body delivery.
    pub fn body_handle(&self) -> BodyHandle {
        self.handle
    }
}
