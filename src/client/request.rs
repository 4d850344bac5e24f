//! What every agent takes (a [`Request`]) and gives back (a [`RequestHandle`]), and the
//! [`HttpAgent`] interface that lets wrapper agents compose, as Twisted's `IAgent` does.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::proto::Headers;
use crate::reactor::{Ctx, HandlerId};

use super::error::Error;
use super::msg::{Msg, RequestId};
use super::producer::{BodyProducer, BytesProducer};
use super::response::Response;

/// Called once with the response head, or with the error that prevented it.
pub type ResponseCallback = Box<dyn FnOnce(&mut Ctx, Result<Response, Error>)>;

/// A request to send: method, URL, header fields and an optional body.
///
/// ```
/// use weft::client::Request;
/// let req = Request::new("POST", "http://127.0.0.1:8080/submit")
///     .header("Content-Type", "text/plain")
///     .body_bytes("hello");
/// assert_eq!(req.method, "POST");
/// assert_eq!(req.headers.get("content-type"), Some(&b"text/plain"[..]));
/// ```
pub struct Request {
    /// The method, e.g. `GET` (the standard methods are static strings, so a request made
    /// with one allocates nothing for it; `"PURGE".into()` or a `String` converted with
    /// `.into()` gives any other).
    pub method: Cow<'static, str>,
    /// The absolute URL (shared: a caller that sends many requests to one URL hands the same
    /// `Rc<str>` to each, and no request copies it).
    pub url: Rc<str>,
    /// Header fields to send (the agent adds `Host` and the framing fields).
    pub headers: Headers,
    /// The body, if any.
    pub body: Option<Box<dyn BodyProducer>>,
    /// Timeouts for this request; `None` fields use the agent's settings.
    pub timeouts: Timeouts,
    /// Connect to this Unix domain socket instead of the URL's host and port (curl's
    /// `--unix-socket`); `None` uses the agent's
    /// [`AgentConfig::unix_socket`](super::AgentConfig::unix_socket). Redirect and
    /// authentication hops keep it.
    pub unix_socket: Option<Rc<Path>>,
}

/// A method as kept with a request: the standard ones as static strings, so that a request
/// and its response hold them without allocating.
///
/// Always inlined: a caller that names its method with a literal (`Request::new("GET", ..)`,
/// in another crate too) then gets the static string with no match at run time.
#[inline(always)]
pub(crate) fn method_name(method: &str) -> Cow<'static, str> {
    // Matched as bytes: compiled to a length switch and inline compares, no `memcmp` call.
    Cow::Borrowed(match method.as_bytes() {
        b"GET" => "GET",
        b"HEAD" => "HEAD",
        b"POST" => "POST",
        b"PUT" => "PUT",
        b"DELETE" => "DELETE",
        b"OPTIONS" => "OPTIONS",
        b"PATCH" => "PATCH",
        b"TRACE" => "TRACE",
        b"CONNECT" => "CONNECT",
        _ => return other_method(method),
    })
}

/// A method that is not one of the standard ones, owned.
#[inline(never)]
fn other_method(method: &str) -> Cow<'static, str> {
    Cow::Owned(method.to_string())
}

/// Per-request timeouts. A `None` field falls back to the agent's [`super::AgentConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Limit on the whole request, from submission to the end of the body; through
    /// `RedirectAgent` and `AuthAgent` it covers every hop together.
    pub total: Option<Duration>,
    /// Limit on a silence: no byte received (nor sent) for this long while active.
    pub read: Option<Duration>,
    /// Limit on the wait for a free connection.
    pub queue: Option<Duration>,
}

impl Timeouts {
    /// These timeouts for a later hop (a redirect, an authentication retry) of an exchange
    /// that started at `started`: the total limit covers the whole exchange, so a hop gets
    /// what remains of it. `None` when nothing remains.
    pub(crate) fn for_hop(self, started: std::time::Instant) -> Option<Timeouts> {
        let total = match self.total {
            None => None,
            Some(t) => Some(t.checked_sub(started.elapsed()).filter(|r| !r.is_zero())?),
        };
        Some(Timeouts { total, ..self })
    }

    /// These timeouts with `total` filled in from `default` (an agent's
    /// [`HttpAgent::default_total_timeout`]) when unset: what a wrapper that makes several
    /// hops fixes when a request arrives, so the limit covers every hop together.
    pub(crate) fn with_default_total(self, default: Option<Duration>) -> Timeouts {
        Timeouts {
            total: self.total.or(default),
            ..self
        }
    }
}

impl Request {
    /// A request without header fields or body; `url` is a `&str`, a `String` or a shared
    /// `Rc<str>` (which is not copied).
    #[inline]
    pub fn new(method: &str, url: impl IntoUrl) -> Self {
        Request {
            method: method_name(method),
            url: url.into_url(),
            headers: Headers::new(),
            body: None,
            timeouts: Timeouts::default(),
            unix_socket: None,
        }
    }

    /// A `GET` of `url`.
    #[inline]
    pub fn get(url: impl IntoUrl) -> Self {
        Request::new("GET", url)
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(name, value.as_ref());
        self
    }

    /// Sets the body from a producer.
    pub fn body(mut self, producer: impl BodyProducer) -> Self {
        self.body = Some(Box::new(producer));
        self
    }

    /// Sets this request's timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the body from bytes held in memory.
    pub fn body_bytes(self, data: impl Into<Vec<u8>>) -> Self {
        self.body(BytesProducer::new(data))
    }

    /// Asks the server to switch this connection to `protocol` (`websocket`, `h2c`...): adds
    /// `Connection: upgrade` and `Upgrade: protocol`. A `101 Switching Protocols` answer is
    /// then handed to a [`Protocol`](crate::reactor::Protocol) with
    /// [`Response::upgrade`]; any other answer is an ordinary response.
    ///
    /// ```
    /// use weft::client::Request;
    /// let req = Request::get("http://127.0.0.1:8080/chat").upgrade("websocket");
    /// assert_eq!(req.headers.get("upgrade"), Some(&b"websocket"[..]));
    /// assert_eq!(req.headers.get("connection"), Some(&b"upgrade"[..]));
    /// ```
    pub fn upgrade(self, protocol: &str) -> Self {
        self.header("Connection", "upgrade")
            .header("Upgrade", protocol)
    }

    /// Sends this request over the Unix domain socket at `path` (see
    /// [`Request::unix_socket`](Request#structfield.unix_socket)).
    ///
    /// ```
    /// use weft::client::Request;
    /// let req = Request::get("http://localhost/v1.43/version").unix_socket("/run/docker.sock");
    /// assert_eq!(req.unix_socket.as_deref(), Some(std::path::Path::new("/run/docker.sock")));
    /// ```
    pub fn unix_socket(mut self, path: impl AsRef<Path>) -> Self {
        self.unix_socket = Some(path.as_ref().into());
        self
    }
}

/// What a [`Request`]'s URL can be made from: text is copied once, a shared `Rc<str>` is not.
pub trait IntoUrl {
    /// The URL as the request keeps it.
    fn into_url(self) -> Rc<str>;
}

impl IntoUrl for &str {
    fn into_url(self) -> Rc<str> {
        self.into()
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Rc<str> {
        self.as_str().into()
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Rc<str> {
        self.into()
    }
}

impl IntoUrl for Rc<str> {
    fn into_url(self) -> Rc<str> {
        self
    }
}

impl IntoUrl for &Rc<str> {
    fn into_url(self) -> Rc<str> {
        self.clone()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body.as_ref().map(|b| b.length()))
            .field("unix_socket", &self.unix_socket)
            .finish()
    }
}

/// Anything that issues requests: the [`super::Agent`] and every wrapper around it
/// (redirects, cookies, decoding...). Wrappers hold their inner agent and compose freely.
pub trait HttpAgent: 'static {
    /// Issues `request`; `on_response` is called once, with the response head or an error.
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle;

    /// The total timeout this agent gives a request whose [`Timeouts::total`] is `None`:
    /// [`AgentConfig::timeout`](super::AgentConfig::timeout) for an [`Agent`](super::Agent);
    /// wrappers pass on their inner agent's. Wrappers that make several hops of one request
    /// (redirects, authentication retries) fix the deadline from it when the request arrives,
    /// so the limit covers every hop together rather than each hop anew. Default: `None`.
    fn default_total_timeout(&self) -> Option<Duration> {
        None
    }
}

/// A shared agent is an agent: lets a chain chosen at run time be held as `Rc<dyn HttpAgent>`.
impl<A: HttpAgent + ?Sized> HttpAgent for std::rc::Rc<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        (**self).request(ctx, request, on_response)
    }

    fn default_total_timeout(&self) -> Option<Duration> {
        (**self).default_total_timeout()
    }
}

/// A boxed agent is an agent.
impl<A: HttpAgent + ?Sized> HttpAgent for Box<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        (**self).request(ctx, request, on_response)
    }

    fn default_total_timeout(&self) -> Option<Duration> {
        (**self).default_total_timeout()
    }
}

/// Most handle states an agent keeps for reuse.
const POOLED_HANDLES: usize = 64;

/// Handle states for an agent's requests, reused once no handle refers to them: most callers
/// drop the handle `request` returns at once, and allocating a fresh state for each request
/// was one allocation per request.
///
/// The pool keeps a reference to each state it hands out; a state whose only reference is
/// the pool's is free again. The states are looked at in turn, one per take, so taking stays
/// O(1); one kept busy by a long-lived handle is passed over until its turn comes again.
#[derive(Default)]
pub(crate) struct HandlePool(RefCell<HandleRing>);

/// The states of a [`HandlePool`], and the one to look at next.
#[derive(Default)]
struct HandleRing {
    states: Vec<Rc<HandleState>>,
    next: usize,
}

impl HandlePool {
    /// A handle attached to nothing, reusing a free state when there is one.
    fn take(&self) -> RequestHandle {
        let mut ring = self.0.borrow_mut();
        let HandleRing { states, next } = &mut *ring;
        let len = states.len();
        if let Some(state) = states.get_mut(*next) {
            *next = if *next + 1 == len { 0 } else { *next + 1 };
            // Only the pool's reference left: free, and reset without the cells' checks.
            if let Some(free) = Rc::get_mut(state) {
                *free.current.get_mut() = None;
                *free.cancelled.get_mut() = false;
                free.followed.get_mut().take();
                free.on_cancel.get_mut().take();
                return RequestHandle {
                    state: state.clone(),
                };
            }
        }
        let state = Rc::<HandleState>::default();
        if states.len() < POOLED_HANDLES {
            states.push(state.clone());
        }
        RequestHandle { state }
    }
}

#[derive(Default)]
struct HandleState {
    current: Cell<Option<(HandlerId, RequestId)>>,
    cancelled: Cell<bool>,
    /// The handle of the hop this one follows: a wrapper beneath may issue further hops of
    /// its own (retries), and a cancel must reach whichever of them is in flight then, not
    /// the hop that was current when [`RequestHandle::follow`] was called.
    followed: RefCell<Option<RequestHandle>>,
    /// Run once by a cancel: a wrapper waiting between hops (a retry's backoff) stops
    /// waiting.
    on_cancel: RefCell<Option<CancelHook>>,
}

/// What [`RequestHandle::on_cancel`] keeps.
type CancelHook = Box<dyn FnOnce(&mut Ctx)>;

impl fmt::Debug for HandleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleState")
            .field("current", &self.current.get())
            .field("cancelled", &self.cancelled.get())
            .finish_non_exhaustive()
    }
}

/// Cancels a request, whichever hop of it is in flight (a redirect or an authentication
/// retry is a new request underneath; the handle follows it). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestHandle {
    state: Rc<HandleState>,
}

impl RequestHandle {
    /// A handle not yet attached to any request (wrappers attach hops with
    /// [`RequestHandle::follow`]).
    pub fn new() -> Self {
        RequestHandle::default()
    }

    /// A handle on request `id` of `agent`, its state taken from the agent's pool if given.
    #[inline]
    pub(crate) fn for_agent(agent: HandlerId, id: RequestId, pool: Option<&HandlePool>) -> Self {
        let h = pool.map_or_else(RequestHandle::new, HandlePool::take);
        h.state.current.set(Some((agent, id)));
        h
    }

    /// Cancels the request at whatever phase it is in: a queued request is dropped, a request
    /// in flight has its connection closed. The response callback (or the body protocol, once
    /// delivering) gets an error with [`super::Cause::Cancelled`]. A finished request is
    /// unaffected.
    pub fn cancel(&self, ctx: &mut Ctx) {
        self.state.cancelled.set(true);
        let hook = self.state.on_cancel.borrow_mut().take();
        if let Some(hook) = hook {
            hook(ctx);
        }
        let followed = self.state.followed.borrow().clone();
        if let Some(hop) = followed {
            hop.cancel(ctx);
        } else if let Some((agent, id)) = self.state.current.get() {
            ctx.post(agent, Box::new(Msg::Cancel(id)));
        }
    }

    /// Whether [`RequestHandle::cancel`] was called: a wrapper checks this before it issues
    /// a follow-up request.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.get()
    }

    /// Makes this handle control the request `hop` controls (the next hop of a wrapper).
    pub fn follow(&self, hop: &RequestHandle) {
        self.state.current.set(hop.state.current.get());
        if !Rc::ptr_eq(&self.state, &hop.state) {
            *self.state.followed.borrow_mut() = Some(hop.clone());
        }
    }

    /// Runs `hook` once if the request is cancelled before the hook is cleared
    /// ([`RequestHandle::clear_on_cancel`]): what a wrapper that waits between hops (a
    /// retry's backoff timer) uses to stop waiting. The hook runs inside [`RequestHandle::cancel`], so it only records
    /// intent (cancels a timer, schedules a call) and calls no user code.
    pub(crate) fn on_cancel(&self, hook: impl FnOnce(&mut Ctx) + 'static) {
        *self.state.on_cancel.borrow_mut() = Some(Box::new(hook));
    }

    /// Forgets a hook set by [`RequestHandle::on_cancel`] that is no longer needed.
    pub(crate) fn clear_on_cancel(&self) {
        self.state.on_cancel.borrow_mut().take();
    }

    /// The id of the request in flight, if any.
    pub fn id(&self) -> Option<RequestId> {
        let followed = self.state.followed.borrow();
        match &*followed {
            Some(hop) => hop.id(),
            None => self.state.current.get().map(|(_, id)| id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_kept_static_and_others_as_given() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
        ] {
            assert!(matches!(method_name(m), Cow::Borrowed(b) if b == m), "{m}");
        }
        // Methods are case-sensitive: near misses are kept as given, owned.
        for m in ["get", "GETS", "GE", "", "PROPFIND", "CONNECT\0"] {
            assert!(matches!(method_name(m), Cow::Owned(o) if o == m), "{m:?}");
        }
    }

    #[test]
    fn handle_states_are_reused_only_once_free() {
        let pool = HandlePool::default();
        let a = pool.take();
        a.state.cancelled.set(true);
        let first = Rc::as_ptr(&a.state);
        drop(a);
        let b = pool.take();
        assert_eq!(Rc::as_ptr(&b.state), first);
        assert!(!b.is_cancelled());
        // `b` is held: the next handle gets another state, and `b` keeps its own.
        let c = pool.take();
        assert_ne!(Rc::as_ptr(&c.state), first);
        c.state.cancelled.set(true);
        assert!(!b.is_cancelled());
        // Once every state is busy, a take makes one the pool does not keep.
        let held: Vec<_> = (0..2 * POOLED_HANDLES).map(|_| pool.take()).collect();
        assert_eq!(pool.0.borrow().states.len(), POOLED_HANDLES);
        let states = held.iter().map(|h| Rc::as_ptr(&h.state));
        assert_eq!(
            states.collect::<std::collections::HashSet<_>>().len(),
            2 * POOLED_HANDLES,
            "no state handed out twice"
        );
        // Freed, they are reused again, whichever the turn is at.
        drop((b, c, held));
        let again = pool.take();
        assert_eq!(Rc::strong_count(&again.state), 2, "a pooled state");
        assert!(!again.is_cancelled());
    }
}
