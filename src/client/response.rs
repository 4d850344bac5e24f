//! A response whose head has arrived; its body waits for [`Response::deliver_body`].

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use url::Url;

use crate::proto::{Headers, Version};
use crate::reactor::{Ctx, HandlerId, Protocol};

use super::body::{BodyHandle, BodyProtocol};
use super::msg::{NextBody, NextUpgrade, RequestId, pop_trimmed};
use super::timing::Timing;

/// Turns the protocol that will receive a body into the one the agent feeds.
pub(crate) type BodyFilter = Rc<dyn Fn(Box<dyn BodyProtocol>) -> Box<dyn BodyProtocol>>;

/// What the responses of an agent hand back to it: body protocols to feed, bodies abandoned
/// unread, and header storage to reuse.
///
/// Body protocols wait in a queue here instead of travelling in boxed messages, which cost
/// an allocation per body; each has one zero-sized [`NextBody`] posted for it, so the reactor
/// still decides when (and in which order with other messages) the agent takes it. A body
/// handed over inside the response callback (the usual case) is taken by the agent as soon
/// as the callback returns, so none is posted for it (see [`AgentInbox::hold`]); the first
/// such body waits in a slot of its own rather than in the queue.
#[derive(Default)]
pub(crate) struct AgentInbox {
    bodies: RefCell<VecDeque<(RequestId, Box<dyn BodyProtocol>)>>,
    /// The body handed over for `held` while its callback runs, when it is the only one: no
    /// queue push and pop (nor their borrow checks) for the usual hand-over.
    handed: Cell<Option<Box<dyn BodyProtocol>>>,
    /// Protocols given the connections of `101` responses, as `bodies`.
    upgrades: RefCell<VecDeque<(RequestId, Box<dyn Protocol>)>>,
    /// Requests whose response was dropped without its body being asked for: the agent
    /// discards the body and closes the connection.
    dropped: RefCell<Vec<RequestId>>,
    /// The header storage of dropped responses, for the next heads (see
    /// [`ClientConnection::receive_reusing`](crate::proto::ClientConnection::receive_reusing)):
    /// a response head then allocates nothing.
    spare_headers: RefCell<Vec<Headers>>,
    /// The storage recycled last, apart from the list: the next head takes it back without
    /// the list's borrow check, push and pop (a response is mostly dropped before the next
    /// one is read).
    spare_last: Cell<Option<Headers>>,
    /// The request whose response callback is running, if any: a body handed over for it
    /// there is queued without a [`NextBody`].
    held: Cell<Option<RequestId>>,
    /// Bodies queued for `held` without a [`NextBody`].
    unposted: Cell<usize>,
}

/// Most spare `Headers` kept, and the largest kept (bytes of storage).
const SPARE_HEADERS: usize = 64;
const SPARE_HEADERS_MAX_BYTES: usize = 4096;

impl AgentInbox {
    /// Queues a body protocol for the agent and tells it. Inline: the usual case (the first
    /// body handed over inside the callback) only fills the empty slot.
    #[inline]
    fn deliver_body(
        &self,
        ctx: &mut Ctx,
        agent: HandlerId,
        id: RequestId,
        body: Box<dyn BodyProtocol>,
    ) {
        if self.held.get() == Some(id) && self.unposted.get() == 0 {
            match self.handed.take() {
                None => self.handed.set(Some(body)),
                // A second body for the same response: both go the queue's way, in order.
                Some(first) => {
                    self.queue(ctx, agent, id, first);
                    self.queue(ctx, agent, id, body);
                }
            }
        } else {
            self.queue(ctx, agent, id, body);
        }
    }

    /// Queues a body protocol: with a [`NextBody`] posted for it, unless it is for `held`
    /// (posted for after the callback).
    #[inline(never)]
    fn queue(&self, ctx: &mut Ctx, agent: HandlerId, id: RequestId, body: Box<dyn BodyProtocol>) {
        self.bodies.borrow_mut().push_back((id, body));
        if self.held.get() == Some(id) {
            self.unposted.set(self.unposted.get() + 1);
        } else {
            ctx.post(agent, Box::new(NextBody));
        }
    }

    /// Marks the response callback of `id` as running: bodies handed over for it until
    /// [`AgentInbox::release`] are queued without a [`NextBody`], the agent looking for them
    /// itself right after the callback.
    pub(crate) fn hold(&self, id: RequestId) {
        self.held.set(Some(id));
    }

    /// Ends [`AgentInbox::hold`]; returns the one body handed over meanwhile, if it was the
    /// only one, and how many were queued meanwhile without a [`NextBody`] (the agent posts
    /// one for each it does not take at once, and gives back with [`AgentInbox::requeue`] a
    /// handed-over body it does not attach).
    #[inline]
    pub(crate) fn release(&self) -> (Option<Box<dyn BodyProtocol>>, usize) {
        self.held.set(None);
        (self.handed.take(), self.unposted.replace(0))
    }

    /// Queues a body returned by [`AgentInbox::release`] that the agent did not attach at
    /// once; the agent posts its [`NextBody`].
    pub(crate) fn requeue(&self, id: RequestId, body: Box<dyn BodyProtocol>) {
        self.bodies.borrow_mut().push_back((id, body));
    }

    /// Queues the protocol that takes over the connection of a `101` response, and tells the
    /// agent.
    fn upgrade(&self, ctx: &mut Ctx, agent: HandlerId, id: RequestId, proto: Box<dyn Protocol>) {
        self.upgrades.borrow_mut().push_back((id, proto));
        ctx.post(agent, Box::new(NextUpgrade));
    }

    /// The oldest protocol waiting to take over a connection.
    pub(crate) fn next_upgrade(&self) -> Option<(RequestId, Box<dyn Protocol>)> {
        pop_trimmed(&mut self.upgrades.borrow_mut())
    }

    /// Notes that the response of `id` was dropped without its body being asked for. (Called
    /// from `Drop`, so it neither fails nor posts: the agent looks at the list on its next
    /// message or read.)
    fn abandoned(&self, id: RequestId) {
        if let Ok(mut dropped) = self.dropped.try_borrow_mut() {
            dropped.push(id);
        }
    }

    /// What dropping an undelivered response of `id` with these fields does, for a head
    /// whose response was never built.
    pub(crate) fn unread(&self, id: RequestId, headers: Headers) {
        self.abandoned(id);
        self.recycle_headers(headers);
    }

    /// Keeps the header storage of a dropped response for a later head. Inline: the usual
    /// case only fills the empty slot.
    #[inline]
    fn recycle_headers(&self, headers: Headers) {
        if headers.capacity() == 0 || headers.capacity() > SPARE_HEADERS_MAX_BYTES {
            return;
        }
        if let Some(older) = self.spare_last.replace(Some(headers)) {
            self.keep_headers(older);
        }
    }

    /// Keeps header storage in the list behind the slot, while it has room.
    #[inline(never)]
    fn keep_headers(&self, headers: Headers) {
        if let Ok(mut spare) = self.spare_headers.try_borrow_mut()
            && spare.len() < SPARE_HEADERS
        {
            spare.push(headers);
        }
    }

    /// The oldest body protocol waiting for the agent.
    pub(crate) fn next_body(&self) -> Option<(RequestId, Box<dyn BodyProtocol>)> {
        pop_trimmed(&mut self.bodies.borrow_mut())
    }

    /// The body protocol queued for request `id`, if it is the next one: the agent takes it
    /// at once when it was handed over inside the response callback (queued then without a
    /// [`NextBody`]; should one have been posted, it finds the queue without the body, which is
    /// harmless: each takes whatever is next).
    pub(crate) fn take_body_for(&self, id: RequestId) -> Option<Box<dyn BodyProtocol>> {
        let mut bodies = self.bodies.borrow_mut();
        match bodies.front() {
            Some((first, _)) if *first == id => bodies.pop_front().map(|(_, body)| body),
            _ => None,
        }
    }

    /// Whether a response was dropped unread and not yet seen to.
    #[inline]
    pub(crate) fn any_abandoned(&self) -> bool {
        // A borrow held elsewhere (cannot happen on the agent's path) counts as "maybe".
        self.dropped.try_borrow().map_or(true, |d| !d.is_empty())
    }

    /// A request whose response was dropped unread, if any is left.
    pub(crate) fn next_abandoned(&self) -> Option<RequestId> {
        self.dropped.borrow_mut().pop()
    }

    /// Header storage from a dropped response, if any is kept.
    #[inline]
    pub(crate) fn spare_headers(&self) -> Option<Headers> {
        match self.spare_last.take() {
            Some(headers) => Some(headers),
            None => self.spare_headers.borrow_mut().pop(),
        }
    }
}

/// Why [`Response::upgrade`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeError {
    /// The server did not switch protocols: this is its status code.
    NotSwitching(u16),
    /// The body or the connection was already asked for.
    AlreadyDelivered,
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeError::NotSwitching(code) => {
                write!(f, "the server answered {code}, not 101 Switching Protocols")
            }
            UpgradeError::AlreadyDelivered => {
                f.write_str("the response's body or connection was already taken")
            }
        }
    }
}

impl std::error::Error for UpgradeError {}

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
    pub(crate) inbox: Rc<AgentInbox>,
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
        self.inbox
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

    /// Hands the connection of a `101 Switching Protocols` response to `protocol` (see
    /// [`Request::upgrade`](super::Request::upgrade)), which owns it from then on, outside
    /// the pool: the agent forgets the connection (it is no longer counted, never reused,
    /// and the request's timeouts have ended), and `protocol` gets `connection_made`, then
    /// `data_received` with the bytes that followed the `101` head, if any (exactly once,
    /// before anything read later), and one `connection_lost` at the end. It writes with
    /// [`Ctx::write`] and closes with [`Ctx::lose_connection`], plain or TLS alike, and is
    /// dropped when the connection ends (the reactor's [`Ctx::hand_over`] does the switch).
    ///
    /// The hand-over happens after the current callback returns. If the connection ended
    /// in between (the agent was shut down), `protocol` gets `connection_failed` instead.
    ///
    /// Dropping a `101` response without calling this closes the connection; calling
    /// [`Response::deliver_body`] instead gets an empty body, and closes it too.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::NotSwitching`] if the status is not 101 (the response is left as it
    /// was: read or drop its body as usual), [`UpgradeError::AlreadyDelivered`] after
    /// `deliver_body` or an earlier `upgrade`. `protocol` is dropped unused.
    pub fn upgrade(&self, ctx: &mut Ctx, protocol: impl Protocol) -> Result<(), UpgradeError> {
        if self.code != 101 {
            return Err(UpgradeError::NotSwitching(self.code));
        }
        if self.delivered.replace(true) {
            return Err(UpgradeError::AlreadyDelivered);
        }
        self.inbox.upgrade(
            ctx,
            self.handle.agent,
            self.handle.request,
            Box::new(protocol),
        );
        Ok(())
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
    // Inline: called for every response, from the caller's crate.
    #[inline]
    fn drop(&mut self) {
        if !self.delivered.get() {
            self.inbox.abandoned(self.handle.request);
        }
        self.inbox
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

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(bytes: usize) -> Headers {
        let mut headers = Headers::new();
        headers.reserve(1, bytes);
        headers
    }

    /// Header storage comes back latest first, and no more is kept than the slot and the
    /// list hold, however much is recycled; none without room, none too large.
    #[test]
    fn kept_header_storage_is_bounded_and_the_latest_comes_back_first() {
        let inbox = AgentInbox::default();
        inbox.recycle_headers(Headers::new());
        inbox.recycle_headers(storage(SPARE_HEADERS_MAX_BYTES + 1));
        assert!(inbox.spare_headers().is_none());
        for _ in 0..SPARE_HEADERS * 3 {
            inbox.recycle_headers(storage(64));
        }
        inbox.recycle_headers(storage(100));
        assert_eq!(inbox.spare_headers().map(|h| h.capacity()), Some(100));
        let mut kept = 1;
        while let Some(headers) = inbox.spare_headers() {
            assert_eq!(headers.capacity(), 64);
            kept += 1;
            assert!(kept <= SPARE_HEADERS + 1, "{kept} kept");
        }
        assert_eq!(kept, SPARE_HEADERS + 1);
    }
}
