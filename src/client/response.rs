//! A response whose head has arrived; its body waits for [`Response::deliver_body`].

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;

use url::Url;

use crate::proto::{Headers, Version};
use crate::reactor::Ctx;

use super::agent::Shared;
use super::body::{BodyHandle, BodyProtocol};
use super::timing::Timing;

/// Turns the protocol that will receive a body into the one the agent feeds.
pub(crate) type BodyFilter = Rc<dyn Fn(Box<dyn BodyProtocol>) -> Box<dyn BodyProtocol>>;

/// A response that came before this one in the same exchange (a redirect or a challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousResponse {
    /// Its status code.
    pub code: u16,
    /// Its URL.
    pub url: Url,
    /// Its header fields.
    pub headers: Headers,
}

/// The head of a response, reported as soon as it arrives (Twisted's `IResponse`).
///
/// The body is not read from the socket until [`Response::deliver_body`] (or
/// [`Response::collect`]) is called. Dropping a `Response` without either discards the body
/// and closes its connection: it is never returned to the pool with unread bytes.
pub struct Response {
    /// Protocol version of the response.
    pub version: Version,
    /// Status code.
    pub code: u16,
    /// Reason phrase (the usual phrases are static strings).
    pub phrase: Cow<'static, str>,
    /// Header fields, in the order received.
    pub headers: Headers,
    /// Body length when known in advance (Content-Length, or 0 for responses without a
    /// body); `None` for chunked and close-delimited bodies.
    pub length: Option<u64>,
    /// The URL requested (shared with the agent, which parses each URL once).
    pub url: Rc<Url>,
    /// The request method.
    pub method: Cow<'static, str>,
    /// When each phase of the request ended.
    pub timing: Timing,
    /// Earlier responses that led here (redirects, authentication challenges), oldest first.
    pub history: Vec<PreviousResponse>,
    pub(crate) handle: BodyHandle,
    pub(crate) filters: Vec<BodyFilter>,
    /// Where [`Response::deliver_body`] leaves the body protocol for the agent.
    pub(crate) agent: Rc<Shared>,
    /// Set by `deliver_body`; a response dropped without it tells the agent its body was
    /// abandoned (the connection is then closed).
    pub(crate) delivered: Cell<bool>,
}

impl Response {
    /// Streams the body to `protocol`, which then receives `data_received` calls and exactly
    /// one `connection_lost`. A second call fails the second protocol with
    /// [`super::Cause::BodyAlreadyDelivered`].
    pub fn deliver_body(&self, ctx: &mut Ctx, protocol: impl BodyProtocol) {
        let mut protocol: Box<dyn BodyProtocol> = Box::new(protocol);
        for filter in self.filters.iter().rev() {
            protocol = filter(protocol);
        }
        self.delivered.set(true);
        self.agent
            .deliver_body(ctx, self.handle.agent, self.handle.request, protocol);
    }

    /// Interposes a body protocol between the agent and whatever protocol is given to
    /// [`Response::deliver_body`] later: `filter` receives that protocol and returns the one
    /// that gets the body (a decompressor that feeds it, for example). Filters added later sit
    /// closer to the user's protocol.
    pub fn map_body(
        &mut self,
        filter: impl Fn(Box<dyn BodyProtocol>) -> Box<dyn BodyProtocol> + 'static,
    ) {
        self.filters.push(Rc::new(filter));
    }

    /// Like [`Response::map_body`], but the filter sits closest to the agent, before every
    /// filter already added (to see the body as it came off the wire).
    pub(crate) fn map_body_raw(
        &mut self,
        filter: impl Fn(Box<dyn BodyProtocol>) -> Box<dyn BodyProtocol> + 'static,
    ) {
        self.filters.insert(0, Rc::new(filter));
    }

    /// The handle that pauses, resumes or stops body delivery.
    pub fn body_handle(&self) -> BodyHandle {
        self.handle
    }
}

impl Response {
    /// Room to reserve for collecting the body: its declared length, never past `max_bytes`.
    /// Reserved up front, a large body is not copied again at every doubling; untouched
    /// capacity costs no resident memory.
    pub(crate) fn body_capacity(&self, max_bytes: u64) -> usize {
        self.length
            .map_or(0, |len| usize::try_from(len.min(max_bytes)).unwrap_or(0))
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        if !self.delivered.get() {
            self.agent.abandoned(self.handle.request);
        }
        self.agent
            .recycle_headers(std::mem::take(&mut self.headers));
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("version", &self.version)
            .field("code", &self.code)
            .field("phrase", &self.phrase)
            .field("headers", &self.headers)
            .field("length", &self.length)
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("timing", &self.timing)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}
