//! The Agent: requests over pooled connections, one reactor handler owning them all.
//!
//! The agent's state lives inside the reactor as one handler. The [`Agent`] the user holds is
//! a copyable handle: every call posts a message, so nothing touches the state while the
//! reactor has it borrowed (for instance from inside a response callback).

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use url::Url;

use crate::proto::{
    self, ClientConnection, Event, Framing, Headers, RequestBody, RequestError, RequestHead,
};
use crate::reactor::TransportError;
use crate::reactor::{
    ConnId, ConnTiming, ConnectOptions, Ctx, Disconnect, HandlerId, Protocol, TimerId,
};
use crate::tls::TlsConnector;

use super::body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use super::error::{Cause, Error, Phase, TimeoutKind};
use super::producer::{BodyProducer, BodySink, Produce, ProducerHandle};
use super::proxy::{Proxies, proxy_authorization};
use super::request::{HandlePool, HttpAgent, Request, RequestHandle, ResponseCallback, Timeouts};
use super::response::Response;
use super::timing::Timing;

/// Settings of an [`Agent`] and its connection pool.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Keep connections open for reuse (default). When false every request carries
    /// `Connection: close` and gets its own connection, as Twisted's non-persistent mode.
    pub persistent: bool,
    /// Idle connections kept per host (default 2, as in Twisted).
    pub max_idle_per_host: usize,
    /// Connections in use per host at once (default 6); further requests wait in FIFO order.
    pub max_active_per_host: usize,
    /// Connections in use in total at once (default 256); further requests wait.
    pub max_active_total: usize,
    /// How long an idle connection is kept (default 240 s); a shorter `Keep-Alive: timeout=`
    /// from the server wins.
    pub idle_timeout: Duration,
    /// Limit on DNS + TCP connect + TLS handshake (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// Limit on a whole request, from submission to the end of its body, every redirect and
    /// authentication hop included when a wrapper makes them (default 300 s; set
    /// `None` for transfers that may legitimately take longer, such as large downloads on a
    /// slow link — the read timeout still catches a stalled server).
    pub timeout: Option<Duration>,
    /// Limit on the time a request waits for a free connection (default none).
    pub queue_timeout: Option<Duration>,
    /// Limit on a silence while a request is active: no byte received or sent for this long
    /// (default 60 s). A paused body does not count as silence.
    pub read_timeout: Option<Duration>,
    /// How long to wait for `100 Continue` before sending the body anyway (default 1 s).
    pub continue_timeout: Duration,
    /// TLS settings for `https` URLs (default: verify against the webpki roots).
    pub tls: TlsConnector,
    /// Parser limits of the protocol core.
    pub limits: proto::Config,
    /// `User-Agent` sent when the request has none (default `weft/<version>`).
    pub user_agent: Option<String>,
    /// Proxies (default none; [`Proxies::from_env`] reads them as curl does).
    pub proxies: Proxies,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            persistent: true,
            max_idle_per_host: 2,
            max_active_per_host: 6,
            max_active_total: 256,
            idle_timeout: Duration::from_secs(240),
            connect_timeout: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(300)),
            queue_timeout: None,
            read_timeout: Some(Duration::from_secs(60)),
            continue_timeout: Duration::from_secs(1),
            tls: TlsConnector::webpki_roots(),
            limits: proto::Config::default(),
            user_agent: Some(concat!("weft/", env!("CARGO_PKG_VERSION")).to_string()),
            proxies: Proxies::none(),
        }
    }
}

/// Identifies one request of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Counts of the pool's connections and requests, for monitoring and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections carrying (or connecting for) a request.
    pub active: usize,
    /// Connections idle in the pool.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub queued: usize,
    /// Requests not yet finished (including bodies not yet delivered).
    pub requests: usize,
    /// Hosts (scheme, host, port, TLS settings and proxy) with a connection or a waiting
    /// request: the pool forgets the others.
    pub hosts: usize,
    /// Connections opened since the agent started.
    pub connections_opened: u64,
    /// Requests sent on a reused connection.
    pub reused: u64,
}

type StatsCallback = Box<dyn FnOnce(&mut Ctx, PoolStats)>;

/// Messages from handles to the agent's state.
pub(crate) enum Msg {
    Init(HandlerId),
    Cancel(RequestId),
    PauseBody(RequestId),
    ResumeBody(RequestId),
    ResumeProducer(RequestId),
    CloseIdle,
    Stats(StatsCallback),
    Shutdown,
}

/// Posted by the agent to itself after handing out a response head, to discard the body if
/// the callback dropped the response. It carries nothing, so boxing it for [`Ctx::post`]
/// allocates nothing.
struct CheckAbandoned;

/// Posted for each request put in [`Shared::requests`]; carries nothing (no allocation).
struct NextRequest;

/// Posted for each body protocol put in [`Shared::bodies`]; carries nothing.
pub(crate) struct NextBody;

/// What the [`Agent`] handles (and the responses) share with the agent's state.
///
/// Requests and body protocols wait in queues here instead of travelling in boxed messages,
/// which cost two allocations per request and one per body; each queued item has one
/// zero-sized message posted for it, so the reactor still decides when (and in which order
/// with other messages) the agent takes it.
pub(crate) struct Shared {
    config: AgentConfig,
    /// Parsed request URLs: a handle resolves a URL as it submits the request.
    targets: RefCell<Targets>,
    requests: RefCell<VecDeque<NewRequest>>,
    bodies: RefCell<VecDeque<(RequestId, Box<dyn BodyProtocol>)>>,
    /// Requests whose response was dropped without its body being asked for: the agent
    /// discards the body and closes the connection (see [`AgentState::sweep_abandoned`]).
    dropped: RefCell<Vec<RequestId>>,
    /// The header storage of dropped responses, for the next heads (see
    /// [`ClientConnection::receive_reusing`]): a response head then allocates nothing.
    spare_headers: RefCell<Vec<Headers>>,
    handles: HandlePool,
}

/// Most spare `Headers` kept, and the largest kept (bytes of storage).
const SPARE_HEADERS: usize = 64;
const SPARE_HEADERS_MAX_BYTES: usize = 4096;

impl Shared {
    /// Queues a body protocol for the agent and tells it.
    pub(crate) fn deliver_body(
        &self,
        ctx: &mut Ctx,
        agent: HandlerId,
        id: RequestId,
        body: Box<dyn BodyProtocol>,
    ) {
        self.bodies.borrow_mut().push_back((id, body));
        ctx.post(agent, Box::new(NextBody));
    }

    /// Notes that the response of `id` was dropped without its body being asked for. (Called
    /// from `Drop`, so it neither fails nor posts: the agent looks at the list on its next
    /// message or read.)
    pub(crate) fn abandoned(&self, id: RequestId) {
        if let Ok(mut dropped) = self.dropped.try_borrow_mut() {
            dropped.push(id);
        }
    }

    /// Keeps the header storage of a dropped response for a later head.
    pub(crate) fn recycle_headers(&self, headers: Headers) {
        if headers.capacity() == 0 || headers.capacity() > SPARE_HEADERS_MAX_BYTES {
            return;
        }
        if let Ok(mut spare) = self.spare_headers.try_borrow_mut()
            && spare.len() < SPARE_HEADERS
        {
            spare.push(headers);
        }
    }
}

/// A request as the caller gave it, apart from its URL.
struct Parts {
    method: Cow<'static, str>,
    headers: Headers,
    producer: Option<Box<dyn BodyProducer>>,
    timeouts: Timeouts,
}

/// A request queued for the agent in [`Shared::requests`].
struct NewRequest {
    id: RequestId,
    /// Resolved when the request was submitted; an error is reported from the agent, as
    /// for any request it refuses.
    target: Result<Rc<Target>, Cause>,
    parts: Parts,
    on_response: ResponseCallback,
}

/// An HTTP/1.1 client with a connection pool (Twisted's `Agent` with an `HTTPConnectionPool`).
///
/// `Agent` is a copyable handle to state owned by the reactor.
///
/// Requests go through [`HttpAgent::request`], the one interface every wrapper shares.
///
/// ```no_run
/// use weft::{Agent, AgentConfig, HttpAgent, Reactor, Request};
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// agent.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/"),
///     Box::new(|ctx, result| match result {
///         Ok(response) => {
///             println!("{} {}", response.code, response.phrase);
///             response.collect(ctx, 1 << 20, |ctx, full| {
///                 println!("{} bytes", full.map(|f| f.body.len()).unwrap_or(0));
///                 ctx.stop();
///             });
///         }
///         Err(e) => { eprintln!("{e}"); ctx.stop(); }
///     }));
/// reactor.run().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    handler: HandlerId,
    /// Finds the agent's [`Shared`] half in [`AGENTS`].
    id: u64,
}

static NEXT_AGENT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The shared half of every agent on this thread, by agent id. Looked up rather than held
    /// by the handle, so that `Agent` stays a `Copy + Send` id (requests may be issued from
    /// another thread through a `Remote`). An entry lives as long as its agent's state.
    static AGENTS: RefCell<FxHashMap<u64, Rc<Shared>>> = RefCell::default();
}

impl Agent {
    /// Creates an agent on this reactor.
    pub fn new(ctx: &mut Ctx, config: AgentConfig) -> Agent {
        let shared = Rc::new(Shared {
            config,
            targets: RefCell::default(),
            requests: RefCell::default(),
            bodies: RefCell::default(),
            dropped: RefCell::default(),
            spare_headers: RefCell::default(),
            handles: HandlePool::default(),
        });
        let id = NEXT_AGENT.fetch_add(1, Ordering::Relaxed);
        AGENTS.with(|a| a.borrow_mut().insert(id, shared.clone()));
        let handler = ctx.add_handler(Box::new(AgentState::new(id, shared)));
        ctx.post(handler, Box::new(Msg::Init(handler)));
        Agent { handler, id }
    }

    /// The agent's shared half; `None` once the agent's state is gone (its reactor was
    /// dropped), when a request would be dropped unanswered as a message to it would.
    fn shared(&self) -> Option<Rc<Shared>> {
        AGENTS.with(|a| a.borrow().get(&self.id).cloned())
    }

    /// Resolves the request's URL (parsed once per URL; see [`Targets`]) and queues the
    /// request for the agent.
    fn submit(
        &self,
        ctx: &mut Ctx,
        url: &str,
        parts: Parts,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let id = RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed));
        let shared = self.shared();
        if let Some(shared) = &shared {
            let new = NewRequest {
                id,
                target: shared.targets.borrow_mut().get(&shared.config, url),
                parts,
                on_response,
            };
            shared.requests.borrow_mut().push_back(new);
            ctx.post(self.handler, Box::new(NextRequest));
        }
        RequestHandle::for_agent(self.handler, id, shared.as_ref().map(|s| &s.handles))
    }

    /// Closes every idle pooled connection.
    pub fn close_idle(&self, ctx: &mut Ctx) {
        ctx.post(self.handler, Box::new(Msg::CloseIdle));
    }

    /// Reports the pool's counts to `f` (on the reactor, after pending messages).
    pub fn stats(&self, ctx: &mut Ctx, f: impl FnOnce(&mut Ctx, PoolStats) + 'static) {
        ctx.post(self.handler, Box::new(Msg::Stats(Box::new(f))));
    }

    /// Closes the agent: every connection is closed, every request in flight fails with
    /// [`Cause::AgentClosed`] (its response callback, or its body protocol's
    /// `connection_lost`, is called as for any failure), and later requests fail the same way
    /// at once.
    pub fn shutdown(&self, ctx: &mut Ctx) {
        ctx.post(self.handler, Box::new(Msg::Shutdown));
    }
}

impl HttpAgent for Agent {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let parts = Parts {
            method: request.method,
            headers: request.headers,
            producer: request.body,
            timeouts: request.timeouts,
        };
        self.submit(ctx, &request.url, parts, on_response)
    }

    fn default_total_timeout(&self) -> Option<Duration> {
        self.shared().and_then(|s| s.config.timeout)
    }
}

/// Where a pooled connection goes. Cloned for every request (queue, host table, request):
/// the names are shared, so a clone allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: Rc<str>,
    port: u16,
    tls: usize,
    /// The proxy the connection goes through, if any.
    proxy: Option<(Rc<str>, u16)>,
}

#[derive(Default)]
struct HostPool {
    idle: Vec<ConnId>,
    active: usize,
    waiting: VecDeque<(u64, RequestId)>,
}

enum BodyState {
    NotAttached,
    Attached(Box<dyn BodyProtocol>),
}

struct Req {
    method: Cow<'static, str>,
    /// Shared by every request to the same URL.
    target: Rc<Target>,
    headers: Headers,
    producer: Option<Box<dyn BodyProducer>>,
    producer_started: bool,
    on_response: Option<ResponseCallback>,
    conn: Option<ConnId>,
    queued: bool,
    head_sent: bool,
    body_sent: bool,
    head_delivered: bool,
    body: BodyState,
    paused: bool,
    /// How the body ended, when that is known before a body protocol is attached.
    end: Option<BodyEnd>,
    retried: bool,
    fresh_only: bool,
    /// Total-timeout and 100-continue timers, cancelled when the request ends.
    timers: Vec<TimerId>,
    /// Cancelled once the request leaves the queue.
    queue_timer: Option<TimerId>,
    /// When each phase ended, for [`Timing`].
    marks: Marks,
    /// Silence allowed while active, and when the last byte moved.
    read_timeout: Option<Duration>,
    read_timer: Option<TimerId>,
    last_activity: Instant,
}

impl Req {
    /// Cancels every timer of the request (it ended, or lost its connection for good).
    fn cancel_timers(&mut self, ctx: &mut Ctx) {
        let timers = self.timers.drain(..);
        for t in timers
            .chain(self.read_timer.take())
            .chain(self.queue_timer.take())
        {
            ctx.cancel_timer(t);
        }
    }
}

/// Instants of a request's phases.
#[derive(Clone, Copy)]
struct Marks {
    submitted: Instant,
    dispatched: Option<Instant>,
    sent: Option<Instant>,
    first_byte: Option<Instant>,
    reused: bool,
}

impl Marks {
    /// The request's timing; `conn` is its connection's, used unless the connection was
    /// reused. Each phase is clamped to end no earlier than the one before (the reactor's
    /// connection marks are taken once per loop turn).
    fn timing(&self, head: Instant, conn: Option<ConnTiming>) -> Timing {
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(self.submitted));
        let queued = since(self.dispatched).unwrap_or_default();
        let conn = conn.filter(|_| !self.reused);
        let dns = conn.and_then(|c| since(c.resolved)).map(|d| d.max(queued));
        let connect = conn
            .and_then(|c| since(c.connected))
            .map(|d| d.max(dns.unwrap_or(queued)));
        let tls = conn
            .and_then(|c| since(c.tls_done))
            .map(|d| d.max(connect.unwrap_or(queued)));
        let before_send = tls.or(connect).unwrap_or(queued);
        let request_sent = since(self.sent).unwrap_or_default().max(before_send);
        let first_byte = since(self.first_byte).unwrap_or_default().max(request_sent);
        Timing {
            queued,
            dns,
            connect,
            tls,
            request_sent,
            first_byte,
            head: head
                .saturating_duration_since(self.submitted)
                .max(first_byte),
            redirect: Duration::ZERO,
            reused: self.reused,
        }
    }
}

struct Conn {
    key: PoolKey,
    proto: ClientConnection,
    req: Option<RequestId>,
    served: u32,
    /// Bytes read but not yet delivered (the body is paused or not yet attached).
    pending: Vec<u8>,
    /// The connection was lost while `pending` still held bytes.
    eof: Option<Disconnect>,
    /// The idle timer, its tag and when it fires. Left armed when the connection is taken
    /// for a request: a connection reused at once costs no timer work, and the timer, when it
    /// fires, checks `idle_until` and re-arms or lets go.
    idle_timer: Option<(TimerId, u64, Instant)>,
    /// When the connection, idle in the pool, is to be closed (`None` while in use).
    idle_until: Option<Instant>,
    keep_alive_hint: Option<Duration>,
    /// A `CONNECT` tunnel still being set up (cleared once TLS runs inside it).
    tunnel: Option<(Rc<Tunnel>, TunnelPhase)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelPhase {
    /// TCP to the proxy is being opened.
    Connecting,
    /// `CONNECT` sent; waiting for the proxy's answer.
    AwaitingProxy,
    /// The proxy said yes; TLS with the origin is being set up inside the tunnel.
    Handshaking,
}

#[derive(Clone, Copy)]
enum TimerTarget {
    Idle(ConnId),
    Total(RequestId),
    Queue(RequestId),
    Continue(RequestId),
    Read(RequestId),
}

// A timer's tag says what it is for: the kind in the top bits, the request id (or an idle
// serial) below. No table of pending timers is kept, so a cancelled timer leaves nothing behind.
const TAG_KIND: u64 = 0b111 << 61;
const TAG_IDLE: u64 = 1 << 61;
const TAG_TOTAL: u64 = 2 << 61;
const TAG_QUEUE: u64 = 3 << 61;
const TAG_CONTINUE: u64 = 4 << 61;
const TAG_READ: u64 = 5 << 61;

impl TimerTarget {
    /// The tag to set the timer with; an idle timer gets a fresh serial mapped to its
    /// connection (request ids stay far below 2^61).
    fn tag(self, agent: &mut AgentState) -> u64 {
        match self {
            TimerTarget::Idle(cid) => {
                agent.idle_seq += 1;
                agent.idle_tags.insert(agent.idle_seq | TAG_IDLE, cid);
                agent.idle_seq | TAG_IDLE
            }
            TimerTarget::Total(id) => id.0 | TAG_TOTAL,
            TimerTarget::Queue(id) => id.0 | TAG_QUEUE,
            TimerTarget::Continue(id) => id.0 | TAG_CONTINUE,
            TimerTarget::Read(id) => id.0 | TAG_READ,
        }
    }

    /// The target of a fired timer's tag (`None` for an idle timer already forgotten).
    fn from_tag(tag: u64, agent: &mut AgentState) -> Option<TimerTarget> {
        let id = RequestId(tag & !TAG_KIND);
        Some(match tag & TAG_KIND {
            TAG_IDLE => TimerTarget::Idle(agent.idle_tags.remove(&tag)?),
            TAG_TOTAL => TimerTarget::Total(id),
            TAG_QUEUE => TimerTarget::Queue(id),
            TAG_CONTINUE => TimerTarget::Continue(id),
            TAG_READ => TimerTarget::Read(id),
            _ => return None,
        })
    }
}

struct AgentState {
    me: Option<HandlerId>,
    /// Its key in [`AGENTS`].
    id: u64,
    shared: Rc<Shared>,
    // Internal integer keys (never chosen by a peer): a fast hash rather than SipHash, which
    // showed in profiles at hundreds of connections.
    reqs: FxHashMap<RequestId, Req>,
    /// Boxed: the table holds a pointer per slot, so its spare capacity costs 8 bytes a slot
    /// rather than a whole connection's state (10,000 idle connections: ~250 B each saved).
    conns: FxHashMap<ConnId, Box<Conn>>,
    /// Hashed several times per request, so a fast hash too: host names can come from a
    /// peer (redirects), but the table only holds hosts with a connection or a waiting
    /// request, so colliding names could only slow down lookups among the caller's own
    /// traffic, never grow without bound.
    hosts: FxHashMap<PoolKey, HostPool>,
    active_total: usize,
    waiting_seq: u64,
    /// The connections whose idle timer carries each idle tag (see [`TimerTarget::tag`]).
    idle_tags: FxHashMap<u64, ConnId>,
    idle_seq: u64,
    scratch: Vec<u8>,
    /// The fields of the request being written (see [`sent_fields`]).
    fields: Headers,
    /// Storage for the fields of the next response head, from `Shared::spare_headers`.
    spare_headers: Headers,
    /// Emptied `Conn::pending` buffers of connections gone idle. The body bytes that arrive
    /// with a head are stashed until the body protocol attaches, so most responses with a
    /// body stash once: a fresh buffer for each was one allocation per request.
    spare_stashes: Vec<Vec<u8>>,
    stats: PoolStats,
    /// Set by [`Agent::shutdown`]: new requests fail at once.
    closed: bool,
}

/// Most spare stash buffers the agent keeps, and the largest kept (a stash is usually what
/// is left of one read after the head, under the reactor's 16 KiB read buffer).
const SPARE_STASHES: usize = 8;
const SPARE_STASH_MAX_BYTES: usize = 16 * 1024;

const METHODS_WITH_CONTENT: [&str; 3] = ["POST", "PUT", "PATCH"];
const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

impl AgentState {
    fn new(id: u64, shared: Rc<Shared>) -> Self {
        AgentState {
            me: None,
            id,
            shared,
            reqs: FxHashMap::default(),
            conns: FxHashMap::default(),
            hosts: FxHashMap::default(),
            active_total: 0,
            waiting_seq: 0,
            idle_tags: FxHashMap::default(),
            idle_seq: 0,
            scratch: Vec::with_capacity(1024),
            fields: Headers::new(),
            spare_headers: Headers::new(),
            spare_stashes: Vec::new(),
            closed: false,
            stats: PoolStats::default(),
        }
    }

    fn me(&self) -> HandlerId {
        self.me.expect("the Init message is the agent's first")
    }

    fn set_timer(&mut self, ctx: &mut Ctx, delay: Duration, target: TimerTarget) -> TimerId {
        let tag = target.tag(self);
        ctx.set_timer(delay, self.me(), tag)
    }

    /// Marks a pooled connection idle until `delay` from now, arming its idle timer unless
    /// the one still armed fires no later (it re-arms then for the rest).
    fn set_idle_timer(&mut self, ctx: &mut Ctx, cid: ConnId, delay: Duration) {
        let until = ctx.now() + delay;
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.idle_until = Some(until);
        if conn.idle_timer.is_some_and(|(_, _, at)| at <= until) {
            return;
        }
        let stale = conn.idle_timer.take();
        self.cancel_idle_timer(ctx, stale);
        let timer = self.set_timer(ctx, delay, TimerTarget::Idle(cid));
        let tag = self.idle_seq | TAG_IDLE;
        if let Some(conn) = self.conns.get_mut(&cid) {
            conn.idle_timer = Some((timer, tag, until));
        }
    }

    /// Cancels an idle timer and forgets its tag.
    fn cancel_idle_timer(&mut self, ctx: &mut Ctx, timer: Option<(TimerId, u64, Instant)>) {
        if let Some((t, tag, _)) = timer {
            ctx.cancel_timer(t);
            self.idle_tags.remove(&tag);
        }
    }

    // ---- submission -------------------------------------------------------------------

    fn take_request(&mut self, ctx: &mut Ctx, new: NewRequest) {
        if self.closed {
            let error = Error::new(Phase::RequestNotSent, Cause::AgentClosed);
            (new.on_response)(ctx, Err(error));
            return;
        }
        let NewRequest {
            id,
            target,
            parts:
                Parts {
                    method,
                    headers,
                    producer,
                    timeouts,
                },
            on_response,
        } = new;
        let prepared =
            target.and_then(|t| prepare(&self.shared.config, &t, &method, &headers).map(|()| t));
        let target = match prepared {
            Ok(t) => t,
            Err(cause) => {
                on_response(ctx, Err(Error::new(Phase::RequestNotSent, cause)));
                return;
            }
        };
        let key = target.key.clone();
        let mut req = Req {
            method,
            target,
            headers,
            producer,
            producer_started: false,
            on_response: Some(on_response),
            conn: None,
            queued: true,
            head_sent: false,
            body_sent: false,
            head_delivered: false,
            body: BodyState::NotAttached,
            paused: false,
            end: None,
            retried: false,
            fresh_only: false,
            timers: Vec::new(),
            queue_timer: None,
            read_timeout: None,
            read_timer: None,
            last_activity: ctx.now(),
            marks: Marks {
                // The loop's clock: this turn's, a clock read saved per request.
                submitted: ctx.now(),
                dispatched: None,
                sent: None,
                first_byte: None,
                reused: false,
            },
        };
        if let Some(t) = timeouts.total.or(self.shared.config.timeout) {
            let timer = self.set_timer(ctx, t, TimerTarget::Total(id));
            req.timers.push(timer);
        }
        if let Some(t) = timeouts.queue.or(self.shared.config.queue_timeout) {
            req.queue_timer = Some(self.set_timer(ctx, t, TimerTarget::Queue(id)));
        }
        req.read_timeout = timeouts.read.or(self.shared.config.read_timeout);
        self.reqs.insert(id, req);
        self.enqueue(id, key);
        self.pump(ctx);
    }

    fn enqueue(&mut self, id: RequestId, key: PoolKey) {
        self.waiting_seq += 1;
        let seq = self.waiting_seq;
        self.hosts
            .entry(key)
            .or_default()
            .waiting
            .push_back((seq, id));
        if let Some(r) = self.reqs.get_mut(&id) {
            r.queued = true;
        }
    }

    /// Starts waiting requests while connection slots are free, oldest first.
    fn pump(&mut self, ctx: &mut Ctx) {
        while self.active_total < self.shared.config.max_active_total {
            let cap = self.shared.config.max_active_per_host;
            let next = self
                .hosts
                .iter()
                .filter(|(_, h)| h.active < cap)
                .filter_map(|(k, h)| h.waiting.front().map(|&(seq, _)| (seq, k)))
                .min_by_key(|&(seq, _)| seq)
                .map(|(_, k)| k.clone());
            let Some(key) = next else { break };
            let host = self.hosts.get_mut(&key).expect("key came from the map");
            let (_, id) = host.waiting.pop_front().expect("host had a waiter");
            self.dispatch(ctx, id);
        }
        // Forget hosts with nothing left, so a client that meets many hosts over its life
        // (redirects, crawls) keeps a table of the hosts in use, not of every host seen.
        self.hosts
            .retain(|_, h| h.active > 0 || !h.idle.is_empty() || !h.waiting.is_empty());
    }

    /// Puts a request on an idle connection or a new one.
    fn dispatch(&mut self, ctx: &mut Ctx, id: RequestId) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        req.queued = false;
        req.marks.dispatched = Some(Instant::now());
        if let Some(t) = req.queue_timer.take() {
            ctx.cancel_timer(t);
        }
        let key = req.target.key.clone();
        let fresh_only = req.fresh_only;
        let host = self.hosts.entry(key.clone()).or_default();
        host.active += 1;
        self.active_total += 1;
        if let Some(cid) = (!fresh_only).then(|| self.take_idle(ctx, &key)).flatten() {
            if let Some(conn) = self.conns.get_mut(&cid) {
                conn.req = Some(id);
            }
            if let Some(req) = self.reqs.get_mut(&id) {
                req.conn = Some(cid);
                req.marks.reused = true;
            }
            self.stats.reused += 1;
            self.start_request(ctx, cid);
            return;
        }
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let options = ConnectOptions {
            connect_timeout: self.shared.config.connect_timeout,
            tls: req.target.route.tls.then(|| self.shared.config.tls.clone()),
            owner: self.me,
        };
        let route = &req.target.route;
        let cid = ctx.connect_owned(&route.host, route.port, options);
        let tunnel = route.tunnel.clone();
        req.conn = Some(cid);
        self.stats.connections_opened += 1;
        self.conns.insert(
            cid,
            Box::new(Conn {
                key,
                proto: ClientConnection::new(self.shared.config.limits.clone()),
                req: Some(id),
                served: 0,
                pending: Vec::new(),
                eof: None,
                idle_timer: None,
                idle_until: None,
                keep_alive_hint: None,
                tunnel: tunnel.map(|t| (t, TunnelPhase::Connecting)),
            }),
        );
    }

    /// Takes the most recently idled connection of a host that is still open.
    fn take_idle(&mut self, ctx: &mut Ctx, key: &PoolKey) -> Option<ConnId> {
        loop {
            let cid = self.hosts.get_mut(key)?.idle.pop()?;
            let Some(conn) = self.conns.get_mut(&cid) else {
                continue;
            };
            // The idle timer stays armed (see `Conn::idle_timer`).
            conn.idle_until = None;
            if ctx.is_open(cid) {
                return Some(cid);
            }
            if let Some(conn) = self.conns.remove(&cid) {
                self.cancel_idle_timer(ctx, conn.idle_timer);
            }
        }
    }

    // ---- sending ----------------------------------------------------------------------

    fn start_request(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else { return };
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let body = match &req.producer {
            Some(p) => match p.length() {
                Some(n) => RequestBody::Length(n),
                None => RequestBody::Chunked,
            },
            None if METHODS_WITH_CONTENT.contains(&&*req.method) => RequestBody::Length(0),
            None => RequestBody::None,
        };
        sent_fields(
            &self.shared.config,
            &req.target,
            &req.headers,
            &mut self.fields,
        );
        let head = RequestHead {
            method: &req.method,
            target: &req.target.target,
            host: &req.target.host_header,
            headers: &self.fields,
        };
        self.scratch.clear();
        if let Err(e) = conn.proto.send_request(&head, body, &mut self.scratch) {
            self.fail(ctx, id, Cause::InvalidRequest(e));
            return;
        }
        ctx.write(cid, &self.scratch);
        req.head_sent = true;
        let now = Instant::now();
        req.marks.sent = Some(now);
        req.last_activity = now;
        if let Some(t) = req.read_timeout {
            let timer = self.set_timer(ctx, t, TimerTarget::Read(id));
            if let Some(req) = self.reqs.get_mut(&id) {
                req.read_timer = Some(timer);
            }
        }
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if body == RequestBody::Length(0) && req.producer.is_none() {
            let _ = conn.proto.finish_body(&mut self.scratch);
        }
        if req.producer.is_none() {
            req.body_sent = true;
            return;
        }
        if conn.proto.may_send_body() {
            self.produce(ctx, id);
        } else {
            let t = self.shared.config.continue_timeout;
            let timer = self.set_timer(ctx, t, TimerTarget::Continue(id));
            if let Some(req) = self.reqs.get_mut(&id) {
                req.timers.push(timer);
            }
        }
    }

    /// Lets the producer write while the socket buffer has room.
    fn produce(&mut self, ctx: &mut Ctx, id: RequestId) {
        let me = self.me();
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let Some(cid) = req.conn else { return };
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if req.body_sent || !conn.proto.may_send_body() {
            return;
        }
        let Some(producer) = req.producer.as_mut() else {
            return;
        };
        // A producer that keeps answering `More` without filling the buffer gets the loop
        // back after a few rounds: the rest is picked up from a posted message.
        for _ in 0..16 {
            if ctx.write_full(cid) {
                producer.pause_producing();
                return;
            }
            let mut sink = BodySink {
                ctx,
                conn: cid,
                proto: &mut conn.proto,
                scratch: &mut self.scratch,
                error: None,
                written: 0,
                handle: ProducerHandle {
                    agent: me,
                    request: id,
                },
            };
            let outcome = if req.producer_started {
                producer.resume_producing(&mut sink)
            } else {
                req.producer_started = true;
                producer.start_producing(&mut sink)
            };
            if let Some(msg) = sink.error.take() {
                self.fail(ctx, id, Cause::Producer(msg));
                return;
            }
            match outcome {
                Produce::More => continue,
                Produce::Wait => return,
                Produce::Failed(msg) => {
                    self.fail(ctx, id, Cause::Producer(msg));
                    return;
                }
                Produce::Done => {
                    self.scratch.clear();
                    if let Err(e) = conn.proto.finish_body(&mut self.scratch) {
                        self.fail(ctx, id, Cause::Producer(e.to_string()));
                        return;
                    }
                    ctx.write(cid, &self.scratch);
                    req.body_sent = true;
                    return;
                }
            }
        }
        ctx.post(me, Box::new(Msg::ResumeProducer(id)));
    }

    // ---- receiving --------------------------------------------------------------------

    /// Feeds bytes to the connection's request, delivering events until the input is used
    /// up, delivery pauses, or the request ends. Unprocessed bytes are kept in `pending`.
    fn process(&mut self, ctx: &mut Ctx, cid: ConnId, input: &[u8]) {
        if self.conns.get(&cid).is_some_and(|c| c.tunnel.is_some()) {
            return self.process_proxy_answer(ctx, cid, input);
        }
        let me = self.me();
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(&cid) else {
                return;
            };
            let Some(id) = conn.req else {
                // Bytes on a connection with no request: the server is out of step.
                self.close_conn(ctx, cid, true);
                return;
            };
            let has_body = conn.proto.framing() != Some(Framing::NoBody);
            let waiting = has_body
                && self.reqs.get(&id).is_some_and(|r| {
                    r.head_delivered && (r.paused || matches!(r.body, BodyState::NotAttached))
                });
            if waiting && pos < input.len() {
                // The body protocol is paused or not attached yet: keep the rest for later.
                self.stash(ctx, cid, &input[pos..]);
                return;
            }
            if self.spare_headers.capacity() == 0
                && let Some(spare) = self.shared.spare_headers.borrow_mut().pop()
            {
                self.spare_headers = spare;
            }
            let result = conn
                .proto
                .receive_reusing(&input[pos..], &mut self.spare_headers);
            let (n, event) = match result {
                Ok(x) => x,
                Err(e) => {
                    self.fail(ctx, id, Cause::Protocol(e));
                    return;
                }
            };
            pos += n;
            match event {
                Event::NeedMore => {
                    debug_assert_eq!(pos, input.len());
                    return;
                }
                Event::Informational(_) => {
                    // A 100 Continue may have unblocked the body.
                    self.produce(ctx, id);
                }
                Event::Head(head) => {
                    let framing = conn.proto.framing();
                    conn.keep_alive_hint = keep_alive_timeout(&head.headers);
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    if head.status == 417
                        && !req.retried
                        && !req.producer_started
                        && req.producer.is_some()
                        && req.headers.has_token("expect", "100-continue")
                    {
                        // RFC 9110 section 10.1.1: the server refused the expectation before
                        // any body byte was sent; repeat the request once without it, on a
                        // new connection (this one still owes the 417's body).
                        req.headers.remove("expect");
                        self.requeue(ctx, id, cid);
                        return;
                    }
                    if !req.body_sent {
                        // An early final response: the body will not be sent.
                        if let Some(p) = req.producer.as_mut() {
                            p.stop_producing();
                        }
                    }
                    req.head_delivered = true;
                    let timing = req.marks.timing(Instant::now(), ctx.conn_timing(cid));
                    let response = Response {
                        version: head.version,
                        code: head.status,
                        phrase: head.reason,
                        headers: head.headers,
                        length: match framing {
                            Some(Framing::NoBody) => Some(0),
                            Some(Framing::Length(n)) => Some(n),
                            _ => None,
                        },
                        url: req.target.url.clone(),
                        method: req.method.clone(),
                        agent: self.shared.clone(),
                        timing,
                        history: Vec::new(),
                        filters: Vec::new(),
                        handle: BodyHandle {
                            agent: me,
                            request: id,
                        },
                        delivered: Cell::new(false),
                    };
                    let callback = req.on_response.take();
                    if let Some(cb) = callback {
                        cb(ctx, Ok(response));
                    }
                    ctx.post(me, Box::new(CheckAbandoned));
                    // The loop goes on: a body-less response completes at once; otherwise
                    // the rest waits in `pending` until a body protocol is attached.
                }
                Event::Data(data) => {
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    let BodyState::Attached(body) = &mut req.body else {
                        // Cannot happen: the loop stops before receiving while unattached.
                        return;
                    };
                    let mut bctx = BodyCtx::new(ctx, me, id);
                    body.data_received(&mut bctx, data);
                    let (paused, stopped) = (bctx.paused, bctx.stopped);
                    if stopped {
                        self.fail(ctx, id, Cause::Cancelled);
                        return;
                    }
                    if paused {
                        req.paused = true;
                        if pos == input.len() {
                            ctx.pause_reading(cid);
                        }
                    }
                }
                Event::Trailers(trailers) => {
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    if let BodyState::Attached(body) = &mut req.body {
                        let mut bctx = BodyCtx::new(ctx, me, id);
                        body.trailers_received(&mut bctx, &trailers);
                        if bctx.stopped {
                            self.fail(ctx, id, Cause::Cancelled);
                            return;
                        }
                    }
                }
                Event::Complete {
                    keep_alive,
                    close_delimited,
                } => {
                    let end = if close_delimited {
                        BodyEnd::PotentialDataLoss
                    } else {
                        BodyEnd::Done
                    };
                    let reusable = keep_alive
                        && pos == input.len()
                        && conn.eof.is_none()
                        && self.shared.config.persistent
                        && self.reqs.get(&id).is_some_and(|r| r.body_sent);
                    self.finish(ctx, id, end);
                    if reusable {
                        self.release_conn(ctx, cid);
                    } else {
                        // Bytes after the response belong to no request: never reuse.
                        self.close_conn(ctx, cid, pos != input.len());
                    }
                    return;
                }
            }
        }
    }

    /// Asks the proxy for a tunnel to the request's origin.
    fn send_connect(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.as_mut() else {
            return;
        };
        *phase = TunnelPhase::AwaitingProxy;
        let head = RequestHead {
            method: "CONNECT",
            target: &tunnel.authority,
            host: &tunnel.authority,
            headers: &tunnel.headers,
        };
        self.scratch.clear();
        let sent = conn
            .proto
            .send_request(&head, RequestBody::None, &mut self.scratch);
        match (sent, conn.req) {
            (Ok(()), _) => ctx.write(cid, &self.scratch),
            (Err(e), Some(id)) => self.fail(ctx, id, Cause::InvalidRequest(e)),
            (Err(_), None) => self.close_conn(ctx, cid, true),
        }
    }

    /// Reads the proxy's answer to `CONNECT`: a 2xx starts TLS inside the tunnel; anything
    /// else fails the request. Bytes after the answer are dropped: nothing may arrive before
    /// our TLS hello, and treating such bytes as the origin's would let the proxy inject them.
    fn process_proxy_answer(&mut self, ctx: &mut Ctx, cid: ConnId, input: &[u8]) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, true);
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.clone() else {
            return;
        };
        if phase != TunnelPhase::AwaitingProxy {
            return;
        }
        let mut pos = 0;
        loop {
            match conn.proto.receive(&input[pos..]) {
                Ok((_, Event::NeedMore)) => return,
                Ok((n, Event::Informational(_))) => pos += n,
                Ok((_, Event::Head(head))) if (200..300).contains(&head.status) => {
                    conn.tunnel = Some((tunnel.clone(), TunnelPhase::Handshaking));
                    conn.proto = ClientConnection::new(self.shared.config.limits.clone());
                    ctx.start_tls(cid, &self.shared.config.tls, &tunnel.server_name);
                    return;
                }
                Ok((_, Event::Head(head))) => {
                    let msg = format!(
                        "the proxy answered CONNECT with {} {}",
                        head.status, head.reason
                    );
                    return self.fail(ctx, id, Cause::Proxy(msg));
                }
                Ok(_) => return,
                Err(e) => {
                    let msg = format!("bad answer to CONNECT: {e}");
                    return self.fail(ctx, id, Cause::Proxy(msg));
                }
            }
        }
    }

    /// Keeps unprocessed bytes and stops reading until delivery resumes.
    fn stash(&mut self, ctx: &mut Ctx, cid: ConnId, rest: &[u8]) {
        if let Some(conn) = self.conns.get_mut(&cid) {
            if conn.pending.capacity() == 0
                && let Some(buf) = self.spare_stashes.pop()
            {
                conn.pending = buf;
            }
            conn.pending.extend_from_slice(rest);
            ctx.pause_reading(cid);
        }
    }

    /// Delivers stashed bytes (and a stashed end of connection), then reads again.
    fn resume_conn(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let pending = std::mem::take(&mut conn.pending);
        if !pending.is_empty() {
            self.process(ctx, cid, &pending);
        }
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let still_waiting = !conn.pending.is_empty()
            || conn
                .req
                .and_then(|id| self.reqs.get(&id))
                .is_some_and(|r| r.paused || matches!(r.body, BodyState::NotAttached));
        if conn.pending.is_empty() {
            let mut pending = pending;
            pending.clear();
            conn.pending = pending;
        }
        if still_waiting {
            return;
        }
        if let Some(reason) = conn.eof.take() {
            self.handle_eof(ctx, cid, reason);
        } else {
            ctx.resume_reading(cid);
        }
    }

    fn handle_eof(&mut self, ctx: &mut Ctx, cid: ConnId, reason: Disconnect) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, false);
            return;
        };
        if let Some((_, phase)) = conn.tunnel.clone() {
            let cause = match reason {
                Disconnect::Failed(e) if phase == TunnelPhase::Handshaking => Cause::Transport(e),
                _ => {
                    Cause::Proxy("the proxy closed the connection before the tunnel was up".into())
                }
            };
            return self.fail(ctx, id, cause);
        }
        let started = conn.proto.response_started();
        let outcome = match reason {
            Disconnect::Failed(e) => Err(Cause::Transport(e)),
            Disconnect::PeerClosed
            | Disconnect::PeerClosedWithoutCloseNotify
            | Disconnect::ClosedLocally => match conn.proto.receive_eof() {
                Ok(Event::Complete {
                    close_delimited: true,
                    ..
                }) => match (conn.key.https, &reason) {
                    (true, Disconnect::PeerClosed) => Ok(BodyEnd::Done),
                    // RFC 9112 section 9.8: over TLS a close-delimited body is complete only
                    // if a closure alert arrived. Without one, an attacker who injects a FIN
                    // can cut the body short, so the body fails as incomplete instead of
                    // ending as `PotentialDataLoss`, which callers take as success.
                    (true, Disconnect::PeerClosedWithoutCloseNotify) => {
                        Err(Cause::Protocol(proto::ProtocolError::Incomplete {
                            expected: None,
                            received: conn.proto.body_received(),
                        }))
                    }
                    _ => Ok(BodyEnd::PotentialDataLoss),
                },
                Ok(_) => Ok(BodyEnd::Done),
                Err(e) => Err(Cause::Protocol(e)),
            },
        };
        let served = conn.served;
        match outcome {
            Ok(end) => {
                self.finish(ctx, id, end);
                self.close_conn(ctx, cid, false);
            }
            Err(cause) => {
                if !started && served > 0 && self.retry(ctx, id, cid) {
                    return;
                }
                self.fail(ctx, id, cause);
            }
        }
    }

    /// Retries a request that failed on a reused connection before any response byte, when
    /// it is idempotent and its body can be replayed. Returns whether it was retried.
    fn retry(&mut self, ctx: &mut Ctx, id: RequestId, cid: ConnId) -> bool {
        let Some(req) = self.reqs.get_mut(&id) else {
            return false;
        };
        if req.retried || !IDEMPOTENT.contains(&&*req.method) {
            return false;
        }
        if let Some(p) = req.producer.as_mut()
            && !p.rewind()
        {
            return false;
        }
        self.requeue(ctx, id, cid);
        true
    }

    /// Sends a request again, once, on a fresh connection, ahead of the waiting ones; closes
    /// the connection it was on.
    fn requeue(&mut self, ctx: &mut Ctx, id: RequestId, cid: ConnId) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        // The first attempt's read timer goes with it (the retry arms its own).
        if let Some(t) = req.read_timer.take() {
            ctx.cancel_timer(t);
        }
        req.retried = true;
        req.fresh_only = true;
        req.head_sent = false;
        req.body_sent = false;
        req.producer_started = false;
        req.conn = None;
        let key = req.target.key.clone();
        self.drop_conn(ctx, cid, true);
        // A retry goes to the front of the line: it was already admitted once.
        self.hosts
            .entry(key)
            .or_default()
            .waiting
            .push_front((0, id));
        self.pump(ctx);
    }

    // ---- ending -----------------------------------------------------------------------

    /// The body ended normally: tell the body protocol, or remember it until one attaches.
    fn finish(&mut self, ctx: &mut Ctx, id: RequestId, end: BodyEnd) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        if let Some(cid) = req.conn.take()
            && let Some(conn) = self.conns.get_mut(&cid)
        {
            conn.served += 1;
        }
        req.cancel_timers(ctx);
        match std::mem::replace(&mut req.body, BodyState::NotAttached) {
            BodyState::Attached(mut body) => {
                self.reqs.remove(&id);
                body.connection_lost(ctx, end);
            }
            BodyState::NotAttached => req.end = Some(end),
        }
    }

    /// Gives back the request table's memory after a burst: a table sized for 10,000 requests
    /// in flight would otherwise stay that large (hundreds of bytes per slot) while the pool
    /// sits idle. Shrinks only once it is a quarter full, so the cost stays amortised O(1).
    fn trim_tables(&mut self) {
        if self.reqs.capacity() > 64 && self.reqs.len() * 4 < self.reqs.capacity() {
            self.reqs.shrink_to(self.reqs.len() * 2);
        }
    }

    /// Closes every idle pooled connection.
    fn close_idle(&mut self, ctx: &mut Ctx) {
        let idle: Vec<ConnId> = self
            .hosts
            .values_mut()
            .flat_map(|h| h.idle.drain(..))
            .collect();
        for cid in idle {
            if let Some(conn) = self.conns.remove(&cid) {
                self.cancel_idle_timer(ctx, conn.idle_timer);
            }
            ctx.lose_connection(cid);
        }
    }

    /// The request failed: report the error where it belongs and close its connection.
    fn fail(&mut self, ctx: &mut Ctx, id: RequestId, cause: Cause) {
        let Some(mut req) = self.reqs.remove(&id) else {
            return;
        };
        req.cancel_timers(ctx);
        if let Some(p) = req.producer.as_mut()
            && !req.body_sent
        {
            p.stop_producing();
        }
        if req.queued
            && let Some(host) = self.hosts.get_mut(&req.target.key)
        {
            host.waiting.retain(|&(_, r)| r != id);
        }
        if let Some(cid) = req.conn.take() {
            self.close_conn(ctx, cid, true);
        }
        let phase = if req.head_delivered {
            Phase::ResponseFailed
        } else if !req.head_sent {
            Phase::RequestNotSent
        } else if !req.body_sent {
            Phase::RequestTransmissionFailed
        } else {
            Phase::ResponseNeverReceived
        };
        let error = Error::new(phase, cause);
        if let Some(cb) = req.on_response.take() {
            cb(ctx, Err(error));
            return;
        }
        match req.body {
            BodyState::Attached(mut body) => body.connection_lost(ctx, BodyEnd::Failed(error)),
            BodyState::NotAttached => {
                // Kept until a body protocol attaches (or the response is dropped).
                req.end = Some(BodyEnd::Failed(error));
                req.body = BodyState::NotAttached;
                self.reqs.insert(id, req);
            }
        }
    }

    /// Returns a connection whose response was read to its end to the idle pool.
    fn release_conn(&mut self, ctx: &mut Ctx, cid: ConnId) {
        self.trim_tables();
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.req = None;
        // An idle connection keeps no buffer it does not need (see `trim_tables` too); a
        // small one goes to the agent's few spares for the next stash.
        if conn.pending.capacity() > 0 && conn.pending.is_empty() {
            let buf = std::mem::take(&mut conn.pending);
            if buf.capacity() <= SPARE_STASH_MAX_BYTES && self.spare_stashes.len() < SPARE_STASHES {
                self.spare_stashes.push(buf);
            }
        }
        let host = self.hosts.entry(conn.key.clone()).or_default();
        host.active -= 1;
        self.active_total -= 1;
        let keep = conn.proto.reset().is_ok()
            && ctx.is_open(cid)
            && host.idle.len() < self.shared.config.max_idle_per_host;
        if keep {
            host.idle.push(cid);
            let mut timeout = self.shared.config.idle_timeout;
            if let Some(hint) = conn.keep_alive_hint {
                // Leave the server's own timer a margin so we are not the one caught sending
                // on a connection it is closing.
                timeout = timeout.min(hint.saturating_sub(Duration::from_millis(500)));
            }
            // Idle connections are read so that a close (or stray bytes) is seen at once.
            ctx.resume_reading(cid);
            self.set_idle_timer(ctx, cid, timeout);
        } else {
            self.conns.remove(&cid);
            ctx.lose_connection(cid);
        }
        self.pump(ctx);
    }

    /// Closes a connection and frees its slot (`abort`: at once, dropping unsent bytes).
    fn close_conn(&mut self, ctx: &mut Ctx, cid: ConnId, abort: bool) {
        self.drop_conn(ctx, cid, abort);
        self.pump(ctx);
    }

    fn drop_conn(&mut self, ctx: &mut Ctx, cid: ConnId, abort: bool) {
        let Some(conn) = self.conns.remove(&cid) else {
            return;
        };
        self.cancel_idle_timer(ctx, conn.idle_timer);
        if let Some(host) = self.hosts.get_mut(&conn.key) {
            if conn.req.is_some() {
                host.active -= 1;
                self.active_total -= 1;
            } else {
                host.idle.retain(|&c| c != cid);
            }
        }
        if let Some(id) = conn.req
            && let Some(req) = self.reqs.get_mut(&id)
            && req.conn == Some(cid)
        {
            req.conn = None;
        }
        if abort {
            ctx.abort_connection(cid);
        } else {
            ctx.lose_connection(cid);
        }
    }

    // ---- messages from handles --------------------------------------------------------

    fn deliver_body(&mut self, ctx: &mut Ctx, id: RequestId, mut body: Box<dyn BodyProtocol>) {
        let handle = BodyHandle {
            agent: self.me(),
            request: id,
        };
        let attachable = self
            .reqs
            .get(&id)
            .is_some_and(|r| r.head_delivered && matches!(r.body, BodyState::NotAttached));
        if !attachable {
            let err = Error::new(Phase::ResponseFailed, Cause::BodyAlreadyDelivered);
            body.connection_lost(ctx, BodyEnd::Failed(err));
            return;
        }
        body.body_started(ctx, handle);
        let req = self.reqs.get_mut(&id).expect("checked above");
        if let Some(end) = req.end.take() {
            self.reqs.remove(&id);
            body.connection_lost(ctx, end);
            return;
        }
        req.body = BodyState::Attached(body);
        if let Some(cid) = req.conn
            && !req.paused
        {
            self.resume_conn(ctx, cid);
        }
    }

    /// Discards the bodies of responses dropped without their body being asked for, and
    /// closes their connections (a connection never goes back to the pool with unread bytes).
    fn sweep_abandoned(&mut self, ctx: &mut Ctx) {
        loop {
            let id = self.shared.dropped.borrow_mut().pop();
            let Some(id) = id else { return };
            // The request may have failed (and been forgotten) meanwhile.
            let abandoned = self
                .reqs
                .get(&id)
                .is_some_and(|r| r.head_delivered && matches!(r.body, BodyState::NotAttached));
            if !abandoned {
                continue;
            }
            let mut req = self.reqs.remove(&id).expect("checked above");
            req.cancel_timers(ctx);
            if let Some(cid) = req.conn {
                self.close_conn(ctx, cid, true);
            }
        }
    }

    fn cancel(&mut self, ctx: &mut Ctx, id: RequestId, cause: Cause) {
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        if req.end.is_some() {
            // The response already ended; only its body is waiting to be picked up.
            return;
        }
        self.fail(ctx, id, cause);
    }

    fn timer(&mut self, ctx: &mut Ctx, target: TimerTarget) {
        match target {
            TimerTarget::Idle(cid) => {
                let Some(conn) = self.conns.get_mut(&cid) else {
                    return;
                };
                conn.idle_timer = None;
                // In use again since it was armed: nothing to do until it is idle again.
                let Some(until) = conn.idle_until.filter(|_| conn.req.is_none()) else {
                    return;
                };
                let now = ctx.now();
                if now >= until {
                    self.close_conn(ctx, cid, false);
                } else {
                    self.set_idle_timer(ctx, cid, until - now);
                }
            }
            TimerTarget::Total(id) => self.cancel(ctx, id, Cause::Timeout(TimeoutKind::Total)),
            TimerTarget::Queue(id) => {
                if self.reqs.get(&id).is_some_and(|r| r.queued) {
                    self.cancel(ctx, id, Cause::Timeout(TimeoutKind::Queue));
                }
            }
            TimerTarget::Read(id) => {
                let Some(req) = self.reqs.get(&id) else {
                    return;
                };
                let (Some(limit), Some(_)) = (req.read_timeout, req.conn) else {
                    return;
                };
                let silent = req.last_activity.elapsed();
                if silent >= limit && !req.paused {
                    self.cancel(ctx, id, Cause::Timeout(TimeoutKind::Read));
                } else {
                    // Re-armed rather than reset on every read: one timer per request.
                    let wait = if req.paused { limit } else { limit - silent };
                    let timer = self.set_timer(ctx, wait, TimerTarget::Read(id));
                    if let Some(req) = self.reqs.get_mut(&id) {
                        req.read_timer = Some(timer);
                    }
                }
            }
            TimerTarget::Continue(id) => {
                let cid = self.reqs.get(&id).and_then(|r| r.conn);
                if let Some(conn) = cid.and_then(|c| self.conns.get_mut(&c)) {
                    conn.proto.continue_timed_out();
                    self.produce(ctx, id);
                }
            }
        }
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            active: self.active_total,
            idle: self.hosts.values().map(|h| h.idle.len()).sum(),
            queued: self.hosts.values().map(|h| h.waiting.len()).sum(),
            requests: self.reqs.len(),
            hosts: self.hosts.len(),
            ..self.stats
        }
    }
}

/// Queued items above which an emptied queue gives its memory back.
const QUEUE_KEPT: usize = 1024;

/// Takes the oldest item of a queue; frees the queue's memory once a burst (10,000 requests
/// submitted at once: some 200 bytes a slot) has drained, as [`AgentState::trim_tables`] does
/// for the request table. Queues of up to [`QUEUE_KEPT`] keep theirs, so that a steady load
/// does not reallocate them.
fn pop_trimmed<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let item = queue.pop_front();
    if queue.is_empty() && queue.capacity() > QUEUE_KEPT {
        *queue = VecDeque::new();
    }
    item
}

impl Drop for AgentState {
    fn drop(&mut self) {
        // `try_with`: the reactor may be dropped while the thread's locals are torn down.
        let _ = AGENTS.try_with(|a| a.borrow_mut().remove(&self.id));
    }
}

impl Protocol for AgentState {
    fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if self.conns.get(&conn).is_some_and(|c| c.tunnel.is_some()) {
            self.send_connect(ctx, conn);
        } else {
            self.start_request(ctx, conn);
        }
    }

    fn tls_started(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tunnel = None;
            self.start_request(ctx, conn);
        }
    }

    fn data_received(&mut self, ctx: &mut Ctx, cid: ConnId, data: &[u8]) {
        self.sweep_abandoned(ctx);
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if let Some(req) = conn.req.and_then(|id| self.reqs.get_mut(&id)) {
            // The loop's clock was read when the poll saw these bytes arrive (never before the
            // request went out, for a connection reused within that same turn).
            let now = req.marks.sent.map_or(ctx.now(), |sent| sent.max(ctx.now()));
            req.marks.first_byte.get_or_insert(now);
            req.last_activity = now;
        }
        if !conn.pending.is_empty() {
            // Reading was paused after these arrived: keep order.
            conn.pending.extend_from_slice(data);
            ctx.pause_reading(cid);
            return;
        }
        self.process(ctx, cid, data);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, cid: ConnId, reason: Disconnect) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if !conn.pending.is_empty() {
            conn.eof = Some(reason);
            return;
        }
        self.handle_eof(ctx, cid, reason);
    }

    fn connection_failed(&mut self, ctx: &mut Ctx, cid: ConnId, error: TransportError) {
        let Some(id) = self.conns.get(&cid).and_then(|c| c.req) else {
            self.drop_conn(ctx, cid, true);
            return;
        };
        let cause = match error {
            TransportError::ConnectTimeout => Cause::Timeout(TimeoutKind::Connect),
            e => Cause::Transport(e),
        };
        self.fail(ctx, id, cause);
    }

    fn write_drained(&mut self, ctx: &mut Ctx, cid: ConnId) {
        if let Some(id) = self.conns.get(&cid).and_then(|c| c.req) {
            if let Some(req) = self.reqs.get_mut(&id) {
                req.last_activity = Instant::now();
            }
            self.produce(ctx, id);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Ctx, tag: u64) {
        if let Some(target) = TimerTarget::from_tag(tag, self) {
            self.timer(ctx, target);
        }
    }

    fn message(&mut self, ctx: &mut Ctx, msg: Box<dyn Any>) {
        let msg = match msg.downcast::<Msg>() {
            Ok(msg) => msg,
            Err(other) => {
                if other.is::<NextRequest>() {
                    let new = pop_trimmed(&mut self.shared.requests.borrow_mut());
                    if let Some(new) = new {
                        self.take_request(ctx, new);
                    }
                } else if other.is::<NextBody>() {
                    let next = pop_trimmed(&mut self.shared.bodies.borrow_mut());
                    if let Some((id, body)) = next {
                        self.deliver_body(ctx, id, body);
                    }
                } else if other.is::<CheckAbandoned>() {
                    self.sweep_abandoned(ctx);
                }
                return;
            }
        };
        match *msg {
            Msg::Init(me) => self.me = Some(me),
            Msg::Shutdown => {
                self.closed = true;
                let mut ids: Vec<RequestId> = self.reqs.keys().copied().collect();
                ids.sort_unstable_by_key(|id| id.0);
                for id in ids {
                    // A failure kept for a body protocol that has not attached stays as is.
                    if self.reqs.get(&id).is_some_and(|r| r.end.is_none()) {
                        self.fail(ctx, id, Cause::AgentClosed);
                    }
                }
                self.close_idle(ctx);
            }
            Msg::Cancel(id) => self.cancel(ctx, id, Cause::Cancelled),
            Msg::PauseBody(id) => {
                if let Some(req) = self.reqs.get_mut(&id) {
                    req.paused = true;
                    if let Some(cid) = req.conn {
                        ctx.pause_reading(cid);
                    }
                }
            }
            Msg::ResumeBody(id) => {
                if let Some(req) = self.reqs.get_mut(&id)
                    && req.paused
                {
                    req.paused = false;
                    if let Some(cid) = req.conn {
                        self.resume_conn(ctx, cid);
                    }
                }
            }
            Msg::ResumeProducer(id) => self.produce(ctx, id),
            Msg::CloseIdle => self.close_idle(ctx),
            Msg::Stats(f) => {
                let stats = self.stats();
                f(ctx, stats);
            }
        }
    }
}

/// Where a request URL goes and how it is written on the wire. It depends only on the URL
/// string and the agent's configuration, so it is worked out once per URL (see [`Targets`]).
#[derive(Debug)]
struct Target {
    url: Rc<Url>,
    /// The request target: origin-form, or absolute-form through a plain-http proxy.
    target: String,
    host_header: String,
    route: Route,
    key: PoolKey,
    /// The `Proxy-Authorization` value for a plain-http proxy with credentials.
    proxy_auth: Option<String>,
}

/// Most URLs whose [`Target`] is kept; the table is emptied when full.
const TARGETS_KEPT: usize = 64;

/// Parsed targets by URL string. Parsing a URL and building its host, target and pool key
/// took a dozen allocations per request; a client usually asks the same few URLs again and
/// again, so a hit makes all of that an `Rc` clone.
#[derive(Default)]
struct Targets {
    map: FxHashMap<Box<str>, Rc<Target>>,
}

impl Targets {
    /// The target of `url`, parsed on first use.
    fn get(&mut self, config: &AgentConfig, url: &str) -> Result<Rc<Target>, Cause> {
        if let Some(t) = self.map.get(url) {
            return Ok(t.clone());
        }
        let target = Rc::new(resolve(config, url)?);
        if self.map.len() >= TARGETS_KEPT {
            // Clearing rather than evicting one by one: a client going through many distinct
            // URLs gains nothing from the table anyway.
            self.map.clear();
        }
        self.map.insert(url.into(), target.clone());
        Ok(target)
    }
}

/// Where a request's connection goes, and what happens on it before the request.
#[derive(Clone, Debug)]
struct Route {
    host: String,
    port: u16,
    /// TLS from the start (https without a proxy).
    tls: bool,
    /// https through a proxy: `CONNECT` first, then TLS inside the tunnel.
    tunnel: Option<Rc<Tunnel>>,
}

#[derive(Debug)]
struct Tunnel {
    /// `host:port` of the origin, the target of `CONNECT`.
    authority: String,
    /// The origin host, for SNI and certificate checks.
    server_name: String,
    /// Fields sent with `CONNECT` (`Proxy-Authorization`).
    headers: Headers,
}

/// Parses and checks a request URL and works out its route.
fn resolve(config: &AgentConfig, url: &str) -> Result<Target, Cause> {
    // WHATWG parsing silently drops TAB, CR and LF anywhere in the input: a URL with raw
    // control bytes is refused instead, so that what would be sent is what the caller wrote.
    if url.bytes().any(|b| b.is_ascii_control()) {
        return Err(Cause::InvalidUrl(format!("{url:?}: control character")));
    }
    let url = Url::parse(url).map_err(|e| Cause::InvalidUrl(format!("{url:?}: {e}")))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(Cause::UnsupportedScheme(other.to_string())),
    };
    let (connect_host, port) = host_and_port(&url)?;
    let host_str = url.host_str().unwrap_or_default();
    let host_header = match url.port() {
        Some(p) => format!("{host_str}:{p}"),
        None => host_str.to_string(),
    };
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let proxy = config.proxies.proxy_for(&url);
    let mut key = PoolKey {
        https,
        host: connect_host.to_ascii_lowercase().into(),
        port,
        tls: if https { config.tls.pool_id() } else { 0 },
        proxy: None,
    };
    let mut proxy_auth = None;
    let route = match proxy {
        None => Route {
            host: connect_host.clone(),
            port,
            tls: https,
            tunnel: None,
        },
        Some(proxy) => {
            let (proxy_host, proxy_port) = host_and_port(proxy)?;
            let auth = proxy_authorization(proxy);
            key.proxy = Some((proxy_host.to_ascii_lowercase().into(), proxy_port));
            let tunnel = if https {
                let mut connect_headers = Headers::new();
                if let Some(auth) = &auth {
                    connect_headers.append("Proxy-Authorization", auth.as_bytes());
                }
                Some(Rc::new(Tunnel {
                    authority: format!("{host_str}:{port}"),
                    server_name: connect_host.clone(),
                    headers: connect_headers,
                }))
            } else {
                // Plain http goes to the proxy in absolute form; one pooled connection to the
                // proxy serves every origin.
                target = absolute_target(&url);
                key.host = "".into();
                key.port = 0;
                proxy_auth = auth;
                None
            };
            Route {
                host: proxy_host,
                port: proxy_port,
                tls: false,
                tunnel,
            }
        }
    };
    Ok(Target {
        url: Rc::new(url),
        target,
        host_header,
        route,
        key,
        proxy_auth,
    })
}

/// Writes the fields a request is sent with into `out`: its own, then those the agent adds
/// (`User-Agent` unless given, `Connection: close` when not persistent, proxy credentials).
/// Built in the agent's reusable buffer when the head is written, rather than appended to the
/// request's own `Headers`, which would then allocate for every request sent without fields.
fn sent_fields(config: &AgentConfig, target: &Target, headers: &Headers, out: &mut Headers) {
    out.clear();
    for (name, value) in headers.iter() {
        out.append(name, value);
    }
    if let Some(ua) = &config.user_agent
        && !headers.contains("user-agent")
    {
        out.append("User-Agent", ua.as_bytes());
    }
    if !config.persistent && !headers.has_token("connection", "close") {
        out.append("Connection", b"close");
    }
    if let Some(auth) = &target.proxy_auth
        && !headers.contains("proxy-authorization")
    {
        out.append("Proxy-Authorization", auth.as_bytes());
    }
}

/// Checks a request before any connection is opened: its method, target and own fields,
/// and the `User-Agent` the agent would add (the other added fields are ours and valid), so
/// that nothing has to be copied for the check; the head is built once, when it is written.
fn prepare(
    config: &AgentConfig,
    target: &Target,
    method: &str,
    headers: &Headers,
) -> Result<(), Cause> {
    let head = RequestHead {
        method,
        target: &target.target,
        host: &target.host_header,
        headers,
    };
    proto::validate_request(&head).map_err(Cause::InvalidRequest)?;
    match &config.user_agent {
        Some(ua) if !proto::is_valid_value(ua.as_bytes()) && !headers.contains("user-agent") => {
            Err(Cause::InvalidRequest(RequestError::InvalidHeaderValue(
                "User-Agent".to_owned(),
            )))
        }
        _ => Ok(()),
    }
}

/// The host to connect to (IPv6 without brackets) and the port of a URL.
fn host_and_port(url: &Url) -> Result<(String, u16), Cause> {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Domain(d)) => d.to_string(),
        None => return Err(Cause::InvalidUrl(format!("{url}: no host"))),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Cause::InvalidUrl(format!("{url}: no port")))?;
    Ok((host, port))
}

/// The absolute-form target for a proxy: the URL without userinfo or fragment.
fn absolute_target(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.into()
}

/// The server's `Keep-Alive: timeout=N`, if any.
fn keep_alive_timeout(headers: &Headers) -> Option<Duration> {
    let value = headers.get_str("keep-alive")?;
    value.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("timeout") {
            v.trim().parse::<u64>().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_hint_is_parsed() {
        let mut h = Headers::new();
        h.append("Keep-Alive", b"timeout=5, max=100");
        assert_eq!(keep_alive_timeout(&h), Some(Duration::from_secs(5)));
        let mut h = Headers::new();
        h.append("Keep-Alive", b"max=100");
        assert_eq!(keep_alive_timeout(&h), None);
    }

    #[test]
    fn prepare_rejects_bad_urls_and_headers() {
        let config = AgentConfig::default();
        assert!(matches!(
            resolve(&config, "ftp://x/"),
            Err(Cause::UnsupportedScheme(_))
        ));
        assert!(matches!(
            resolve(&config, "not a url"),
            Err(Cause::InvalidUrl(_))
        ));
        let mut h = Headers::new();
        h.append("X-Bad", b"a\r\nInjected: 1");
        let target = resolve(&config, "http://127.0.0.1/").unwrap();
        assert!(matches!(
            prepare(&config, &target, "GET", &h),
            Err(Cause::InvalidRequest(_))
        ));
    }

    #[test]
    fn resolve_builds_target_and_host() {
        let config = AgentConfig::default();
        let p = resolve(&config, "http://[::1]:8080/a/b?x=1#frag").unwrap();
        assert_eq!(p.target, "/a/b?x=1");
        assert_eq!(p.host_header, "[::1]:8080");
        assert_eq!(p.route.host, "::1");
        assert_eq!(p.key.port, 8080);
        let p = resolve(&config, "https://Example.TEST/").unwrap();
        assert_eq!(p.host_header, "example.test");
        assert_eq!(p.key.port, 443);
        assert!(p.key.https && p.route.tls);
    }

    #[test]
    fn targets_are_parsed_once_per_url_and_bounded() {
        let config = AgentConfig::default();
        let mut targets = Targets::default();
        let a = targets.get(&config, "http://127.0.0.1/a").unwrap();
        let again = targets.get(&config, "http://127.0.0.1/a").unwrap();
        assert!(Rc::ptr_eq(&a, &again));
        let b = targets.get(&config, "http://127.0.0.1/b").unwrap();
        assert_eq!(b.target, "/b");
        assert!(targets.get(&config, "nope").is_err());
        for i in 0..2 * TARGETS_KEPT {
            targets.get(&config, &format!("http://h/{i}")).unwrap();
        }
        assert!(targets.map.len() <= TARGETS_KEPT);
    }
}
