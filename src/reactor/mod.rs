//! The reactor: one thread, a mio `Poll`, a slab of connections and handlers, a timer heap and
//! a `Waker` for calls from other threads.
//!
//! # Ownership and the callback contract
//!
//! The [`Reactor`] owns everything. Users and protocols hold copyable, generational handles
//! ([`ConnId`], [`HandlerId`], [`TimerId`]); a stale handle is a no-op, never another object.
//! Callbacks receive `&mut Ctx`: the reactor's state minus the handler being called. Methods on
//! [`Ctx`] only record intent or update buffers (a write is appended to the connection's buffer
//! and flushed after the callback returns; a close happens after it returns; a posted message
//! is delivered after it returns). No `Ctx` method ever calls back into user code, so nothing
//! re-enters a handler while it is borrowed.
//!
//! # Handlers and protocols
//!
//! A [`Protocol`] receives the events of the connections it owns. The Twisted shape, one
//! protocol per connection, is [`Ctx::connect_tcp`] / [`Ctx::listen_tcp`]; a handler that owns
//! many connections (the HTTP agent) is added with [`Ctx::add_handler`] and attaches each
//! connection with [`ConnectOptions::owner`].
//!
//! ```no_run
//! use weft::reactor::{Reactor, Ctx, ConnId, Protocol, Disconnect, ConnectOptions};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
//!         ctx.write(conn, data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new().unwrap();
//! let addr = reactor.ctx().listen_tcp("127.0.0.1:0".parse().unwrap(), || Box::new(Echo)).unwrap();
//! reactor.ctx().call_later(std::time::Duration::from_secs(1), |ctx| ctx.stop());
//! reactor.run().unwrap();
//! # let _ = addr;
//! ```
//!
//! # Driving contract
//!
//! Each [`Reactor::turn`] reads the clock once ([`Ctx::now`]), runs the calls queued by
//! [`Remote`]s, waits for readiness (never past the next timer, and not at all when work is
//! already queued), dispatches each event, and after every dispatch applies what the callback
//! recorded: dirty write buffers are flushed, closes are performed, `connection_made` /
//! `connection_lost` / `connection_failed` / `write_drained` / `tls_started` notifications and
//! posted messages are delivered (in the order they were recorded). Due timers fire last.

// This file: the `Protocol` trait, `ConnectOptions`, the `Ctx` state and the loop.
mod conn; // a connection and its lifecycle up to Open, and its single exit (`finish`)
mod ctx; // the public `Ctx` methods
mod dns; // resolver threads
mod error; // Disconnect, TransportError, ReactorGone
mod ids; // ConnId, HandlerId, TimerId, ListenerId and mio tokens
mod remote; // Remote: calls from other threads
mod slots; // generational slab: the one place that checks an id's generation
mod stream; // a connection's socket: TCP, or a stream from a Connector
mod timers; // timer heap
mod transport; // moving bytes: flush (plain or TLS), interest, the read path

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::tls::TlsConnector;
use conn::{Conn, End, State};
use ids::{GENERATION_MASK, Source, WAKER_TOKEN, conn_token, decode_token};
use slots::{Generational, Slots};
use stream::Stream;
use timers::{TimerKind, Timers};

pub use conn::ConnTiming;
pub use ctx::ReactorStats;
pub use dns::{Resolver, SystemResolver};
pub use error::{Disconnect, ReactorGone, TransportError};
pub use ids::{ConnId, HandlerId, ListenerId, TimerId};
pub use remote::Remote;
pub use stream::Connector;

/// Size of the single read buffer shared by all connections.
const READ_BUF_SIZE: usize = 16 * 1024;
/// Above this many buffered bytes, [`Ctx::write_full`] is true.
const HIGH_WATER: usize = 64 * 1024;
/// Below this many buffered bytes (after having been above [`HIGH_WATER`]), `write_drained`.
const LOW_WATER: usize = 16 * 1024;
/// Deferred actions and messages handled per settle before yielding to I/O.
const SETTLE_BUDGET: usize = 100_000;

/// How to open a client connection.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Give up when TCP connect plus TLS handshake take longer. `None`: no limit.
    pub connect_timeout: Option<Duration>,
    /// Wrap the connection in TLS with this connector (server name is the host connected to).
    pub tls: Option<TlsConnector>,
    /// The handler that receives this connection's events. `None` with [`Ctx::connect_tcp`]
    /// means the protocol passed there.
    pub owner: Option<HandlerId>,
}

/// Events of the connections a handler owns, plus its timers and messages.
///
/// Every method has a default that does nothing, except [`Protocol::data_received`].
pub trait Protocol: 'static {
    /// The connection is established (after the TLS handshake, on a secure one).
    fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// Bytes arrived. They are only valid for this call: keep what you need.
    fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]);

    /// The connection ended; called exactly once for every connection that was made.
    fn connection_lost(&mut self, ctx: &mut Ctx, conn: ConnId, reason: Disconnect) {
        let _ = (ctx, conn, reason);
    }

    /// The connection could not be made (resolution, connect, TLS handshake, timeout). Called
    /// instead of `connection_made`, and no `connection_lost` follows.
    fn connection_failed(&mut self, ctx: &mut Ctx, conn: ConnId, error: TransportError) {
        let _ = (ctx, conn, error);
    }

    /// The connection's write buffer drained below its low-water mark after being above it:
    /// a producer may write more.
    ///
    /// The exact rule: once [`Ctx::write`] takes the buffer above the high-water mark
    /// (64 KiB, [`Ctx::write_full`]), the next flush that leaves fewer than 16 KiB buffered
    /// calls `write_drained` once. A buffer that never went above the high-water mark never
    /// calls it.
    fn write_drained(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A timer set with [`Ctx::set_timer`] fired.
    fn timer_fired(&mut self, ctx: &mut Ctx, tag: u64) {
        let _ = (ctx, tag);
    }

    /// A message posted with [`Ctx::post`] arrived.
    fn message(&mut self, ctx: &mut Ctx, msg: Box<dyn Any>) {
        let _ = (ctx, msg);
    }

    /// The TLS handshake begun by [`Ctx::start_tls`] completed: from now on
    /// `data_received` carries only decrypted bytes, and bytes written since `start_tls`
    /// are on their way, encrypted. (A failed handshake ends the connection with
    /// `connection_lost(Failed(Tls(..)))` instead.)
    fn tls_started(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let _ = (ctx, conn);
    }
}

struct HandlerSlot {
    generation: u32,
    /// `None` while the handler's callback runs.
    proto: Option<Box<dyn Protocol>>,
    /// Its `set_timer` timers (some may have fired; pruned now and then).
    timers: Vec<u64>,
    /// Prune `timers` when it reaches this length: twice what survived the last pruning, so
    /// a handler with many live timers (an agent with hundreds of connections) pays O(1) per
    /// timer on average rather than a scan of them all.
    prune_at: usize,
}

impl Generational for HandlerSlot {
    fn generation(&self) -> u32 {
        self.generation
    }
}

struct Listener {
    generation: u32,
    sock: TcpListener,
    factory: Box<dyn FnMut() -> Box<dyn Protocol>>,
}

impl Generational for Listener {
    fn generation(&self) -> u32 {
        self.generation
    }
}

/// Work recorded by `Ctx` methods and done by the reactor after the current callback.
enum Deferred {
    Made {
        owner: HandlerId,
        conn: ConnId,
    },
    Lost {
        owner: HandlerId,
        conn: ConnId,
        reason: Disconnect,
        remove: Option<HandlerId>,
    },
    Failed {
        owner: HandlerId,
        conn: ConnId,
        error: TransportError,
        remove: Option<HandlerId>,
    },
    Drained(ConnId),
    TlsStarted(ConnId),
    TryRead(ConnId),
}

/// The reactor's state as seen by callbacks: every action on connections, timers and handlers.
pub struct Ctx {
    registry: Registry,
    conns: Slots<Conn, ConnId>,
    handlers: Slots<HandlerSlot, HandlerId>,
    listeners: Slots<Listener, ListenerId>,
    timers: Timers<Ctx>,
    messages: VecDeque<(HandlerId, Box<dyn Any>)>,
    deferred: VecDeque<Deferred>,
    /// Connections with bytes (or a close) to flush after the current callback.
    dirty: Vec<ConnId>,
    /// Connections that hit the per-event read limit: read again next turn.
    read_again: Vec<ConnId>,
    now: Instant,
    stopped: bool,
    next_generation: u32,
    remote: Remote,
    /// Resolves host names for `connect_*` (on helper threads).
    resolver: dns::SharedResolver,
    /// Replaces TCP connects when set (tests and fuzzing).
    connector: Option<Box<dyn Connector>>,
    /// Emptied write buffers, lent to the next connection that writes: a request's bytes
    /// are usually flushed at once, so a few buffers serve every connection, and an idle
    /// connection holds none.
    spare_wbufs: Vec<Vec<u8>>,
}

/// Calls one handler callback: takes the handler out of its slot, calls `f`, puts it back
/// (or drops it, if it was removed meanwhile). A stale or busy handler is skipped.
fn dispatch(ctx: &mut Ctx, handler: HandlerId, f: impl FnOnce(&mut dyn Protocol, &mut Ctx)) {
    let Some(mut proto) = ctx.handlers.get_mut(handler).and_then(|s| s.proto.take()) else {
        return;
    };
    f(&mut *proto, ctx);
    if let Some(slot) = ctx.handlers.get_mut(handler) {
        slot.proto = Some(proto);
    }
}

impl Ctx {
    /// Generations are shared by connections, handlers and listeners; 0 is never used, so
    /// an id made of zeroes is always stale.
    fn next_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        generation
    }
}

/// A readiness event, copied out of mio's `Events`.
#[derive(Clone, Copy)]
struct Ready {
    token: Token,
    readable: bool,
    writable: bool,
    /// The peer's end is closed (or the socket failed): read until end-of-file.
    read_closed: bool,
}

/// The event loop.
///
/// A client and an echo server on one reactor:
///
/// ```
/// use std::time::Duration;
/// use weft::reactor::{ConnId, ConnectOptions, Ctx, Disconnect, Protocol, Reactor};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
///         ctx.write(conn, data);
///     }
/// }
///
/// struct Client(Vec<u8>);
/// impl Protocol for Client {
///     fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
///         ctx.write(conn, b"ping");
///     }
///     fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
///         self.0.extend_from_slice(data);
///         if self.0 == b"ping" {
///             ctx.lose_connection(conn);
///         }
///     }
///     fn connection_lost(&mut self, ctx: &mut Ctx, _conn: ConnId, reason: Disconnect) {
///         assert_eq!(reason, Disconnect::ClosedLocally);
///         ctx.stop();
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let addr = reactor.ctx().listen_tcp("127.0.0.1:0".parse().unwrap(), || Box::new(Echo))?;
/// let client = Box::new(Client(Vec::new()));
/// reactor.ctx().connect_tcp("127.0.0.1", addr.port(), ConnectOptions::default(), client);
/// let safety_net = reactor.ctx().call_later(Duration::from_secs(10), |ctx| ctx.stop());
/// reactor.run()?;
/// assert!(reactor.ctx().cancel_timer(safety_net), "stopped by the client, not the timer");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    poll: Poll,
    events: Events,
    ready: Vec<Ready>,
    /// The other half of `Ctx::read_again`, swapped in each turn.
    spare_again: Vec<ConnId>,
    /// The one read buffer, shared by every connection (outside `Ctx` so that a slice of it
    /// can be handed to a callback together with `&mut Ctx`).
    read_buf: Box<[u8]>,
    ctx: Ctx,
}

impl Reactor {
    /// A new reactor with no connections.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let remote = Remote::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        Ok(Reactor {
            poll,
            events: Events::with_capacity(256),
            ready: Vec::with_capacity(256),
            spare_again: Vec::new(),
            read_buf: vec![0; READ_BUF_SIZE].into_boxed_slice(),
            ctx: Ctx {
                registry,
                conns: Slots::new(),
                handlers: Slots::new(),
                listeners: Slots::new(),
                timers: Timers::new(),
                messages: VecDeque::new(),
                deferred: VecDeque::new(),
                dirty: Vec::new(),
                read_again: Vec::new(),
                now: Instant::now(),
                stopped: false,
                next_generation: 1,
                remote,
                resolver: dns::SharedResolver::default(),
                connector: None,
                spare_wbufs: Vec::new(),
            },
        })
    }

    /// The context, to act on the reactor from outside any callback.
    ///
    /// Refreshes [`Ctx::now`]. What is recorded here is applied at the next [`Reactor::turn`].
    pub fn ctx(&mut self) -> &mut Ctx {
        self.ctx.now = Instant::now();
        &mut self.ctx
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote {
        self.ctx.remote.clone()
    }

    /// Runs until [`Ctx::stop`].
    ///
    /// A stop requested before `run` was called is forgotten: only a stop during this run
    /// makes it return.
    pub fn run(&mut self) -> io::Result<()> {
        self.ctx.stopped = false;
        while !self.ctx.stopped {
            self.turn(None)?;
        }
        Ok(())
    }

    /// One iteration: waits for readiness at most `timeout` (and no later than the next timer),
    /// dispatches events, fires due timers, applies deferred actions. For embedding in another
    /// loop together with [`Reactor::next_deadline`].
    ///
    /// `turn(Some(Duration::ZERO))` never blocks; `turn(None)` may wait forever if nothing is
    /// registered and no timer is pending.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        self.ctx.now = now;
        let mut wait = timeout;
        if let Some(deadline) = self.ctx.timers.next_deadline() {
            let until = deadline.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        let busy = !self.ctx.deferred.is_empty()
            || !self.ctx.messages.is_empty()
            || !self.ctx.dirty.is_empty()
            || !self.ctx.read_again.is_empty()
            || self.ctx.remote.has_calls();
        if busy {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }
        self.ctx.now = Instant::now();

        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| Ready {
            token: e.token(),
            readable: e.is_readable() || e.is_read_closed() || e.is_error(),
            writable: e.is_writable() || e.is_write_closed(),
            read_closed: e.is_read_closed() || e.is_error(),
        }));

        self.run_remote_calls();
        self.settle();
        // The list is swapped with a spare so that neither allocates turn after turn.
        let mut again = std::mem::replace(
            &mut self.ctx.read_again,
            std::mem::take(&mut self.spare_again),
        );
        for event in &ready {
            self.handle_event(*event);
            self.settle();
        }
        self.ready = ready;
        for &id in &again {
            self.read_conn(id);
            self.settle();
        }
        again.clear();
        self.spare_again = again;
        self.fire_timers();
        Ok(())
    }

    /// Counts of connections, registrations, handlers, listeners, timers and queued
    /// notifications ([`Ctx::stats`]).
    pub fn stats(&self) -> ReactorStats {
        self.ctx.stats()
    }

    /// When the earliest timer is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ctx.timers.next_deadline()
    }

    /// Whether [`Ctx::stop`] was called since the last `run`.
    pub fn is_stopped(&self) -> bool {
        self.ctx.stopped
    }

    fn run_remote_calls(&mut self) {
        let calls = self.ctx.remote.take_calls();
        for call in calls {
            call(&mut self.ctx);
            self.settle();
        }
    }

    fn handle_event(&mut self, event: Ready) {
        let id = match decode_token(event.token) {
            Source::Waker => return,
            Source::Listener(id) => return self.accept(id),
            Source::Conn(id) => id,
        };
        let Some(conn) = self.ctx.conns.get(id) else {
            return;
        };
        if conn.state == State::Connecting {
            self.ctx.connect_ready(id);
        }
        if event.readable {
            self.read_conn_on_event(id, !event.read_closed);
        }
        if event.writable {
            self.ctx.flush(id);
        }
    }

    fn accept(&mut self, id: ListenerId) {
        loop {
            let Some(listener) = self.ctx.listeners.get_mut(id) else {
                return;
            };
            let (mut sock, peer) = match listener.sock.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: done. Other errors (out of descriptors...): try at the next event.
                Err(_) => return,
            };
            let proto = (listener.factory)();
            let _ = sock.set_nodelay(true);
            let handler = self.ctx.add_handler(proto);
            let now = self.ctx.now;
            let mut conn = Conn::new(self.ctx.next_generation(), handler, State::Open, now);
            conn.timing.resolved = Some(now);
            conn.timing.connected = Some(now);
            let id = self.ctx.conns.next_id(conn.generation);
            let registered =
                self.ctx
                    .registry
                    .register(&mut sock, conn_token(id), Interest::READABLE);
            if registered.is_err() {
                self.ctx.remove_handler(handler);
                continue;
            }
            conn.auto_handler = Some(handler);
            conn.peer = Some(peer);
            conn.sock = Some(Stream::Tcp(sock));
            conn.interest = Some(Interest::READABLE);
            let conn = self.ctx.conns.insert(conn);
            self.ctx.deferred.push_back(Deferred::Made {
                owner: handler,
                conn,
            });
        }
    }

    /// Applies what callbacks recorded: flushes, closes, notifications, messages.
    fn settle(&mut self) {
        let mut budget = SETTLE_BUDGET;
        loop {
            self.ctx.flush_dirty();
            if budget == 0 {
                return;
            }
            budget -= 1;
            if let Some(deferred) = self.ctx.deferred.pop_front() {
                self.deliver(deferred);
                continue;
            }
            if let Some((to, msg)) = self.ctx.messages.pop_front() {
                dispatch(&mut self.ctx, to, |p, ctx| p.message(ctx, msg));
                continue;
            }
            return;
        }
    }

    fn deliver(&mut self, deferred: Deferred) {
        match deferred {
            Deferred::Made { owner, conn } => {
                let owner = match self.ctx.conns.get_mut(conn) {
                    Some(c) => {
                        c.made = true;
                        c.owner
                    }
                    None => owner,
                };
                dispatch(&mut self.ctx, owner, |p, ctx| p.connection_made(ctx, conn));
                self.ctx.flush_dirty();
                self.read_conn(conn);
            }
            Deferred::Lost {
                owner,
                conn,
                reason,
                remove,
            } => {
                dispatch(&mut self.ctx, owner, |p, ctx| {
                    p.connection_lost(ctx, conn, reason)
                });
                if let Some(handler) = remove {
                    self.ctx.remove_handler(handler);
                }
            }
            Deferred::Failed {
                owner,
                conn,
                error,
                remove,
            } => {
                dispatch(&mut self.ctx, owner, |p, ctx| {
                    p.connection_failed(ctx, conn, error)
                });
                if let Some(handler) = remove {
                    self.ctx.remove_handler(handler);
                }
            }
            Deferred::Drained(conn) => {
                if let Some(c) = self.ctx.conns.get(conn) {
                    let owner = c.owner;
                    dispatch(&mut self.ctx, owner, |p, ctx| p.write_drained(ctx, conn));
                }
            }
            Deferred::TlsStarted(conn) => {
                if let Some(c) = self.ctx.conns.get(conn) {
                    let owner = c.owner;
                    dispatch(&mut self.ctx, owner, |p, ctx| p.tls_started(ctx, conn));
                    self.ctx.flush_dirty();
                    // Reading paused when the handshake ended, so that no decrypted byte
                    // comes before `tls_started`.
                    self.read_conn(conn);
                }
            }
            Deferred::TryRead(conn) => self.read_conn(conn),
        }
    }

    fn fire_timers(&mut self) {
        let limit = self.ctx.timers.next_seq();
        let now = self.ctx.now;
        while let Some(kind) = self.ctx.timers.pop_due(now, limit) {
            match kind {
                TimerKind::Call(f) => f(&mut self.ctx),
                TimerKind::Handler(handler, tag) => {
                    dispatch(&mut self.ctx, handler, |p, ctx| p.timer_fired(ctx, tag))
                }
                TimerKind::ConnectTimeout(conn) => {
                    if let Some(c) = self.ctx.conns.get_mut(conn) {
                        c.connect_timer = None;
                        if c.state != State::Open {
                            self.ctx
                                .finish(conn, End::Failed(TransportError::ConnectTimeout));
                        }
                    }
                }
            }
            self.settle();
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.ctx.remote.shut_down();
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("connections", &self.ctx.conns.len())
            .field("handlers", &self.ctx.handlers.len())
            .field("timers", &self.ctx.timers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_skip_zero_and_stay_in_31_bits() {
        let mut reactor = Reactor::new().unwrap();
        reactor.ctx.next_generation = GENERATION_MASK;
        assert_eq!(reactor.ctx.next_generation(), GENERATION_MASK);
        assert_eq!(reactor.ctx.next_generation(), 1);
    }

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
            ctx.write(conn, data);
        }
    }

    struct OneShot;
    impl Protocol for OneShot {
        fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
            ctx.write(conn, b"x");
        }
        fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, _: &[u8]) {
            ctx.lose_connection(conn);
        }
    }

    /// Handlers made for one connection go away with it; nothing else is left behind.
    #[test]
    fn per_connection_handlers_and_registrations_do_not_leak() {
        let mut reactor = Reactor::new().unwrap();
        let addr = reactor
            .ctx()
            .listen_tcp("127.0.0.1:0".parse().unwrap(), || Box::new(Echo))
            .unwrap();
        for _ in 0..5 {
            let options = ConnectOptions {
                connect_timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            };
            reactor
                .ctx()
                .connect_tcp("127.0.0.1", addr.port(), options, Box::new(OneShot));
        }
        // Refused connects too.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        reactor.ctx().connect_tcp(
            "127.0.0.1",
            closed_port,
            ConnectOptions::default(),
            Box::new(OneShot),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && (!reactor.ctx.conns.is_empty() || !reactor.ctx.handlers.is_empty())
        {
            reactor.turn(Some(Duration::from_millis(10))).unwrap();
        }
        assert!(reactor.ctx.conns.is_empty());
        assert!(reactor.ctx.handlers.is_empty());
        assert_eq!(reactor.ctx.timers.len(), 0);
        assert!(reactor.ctx.deferred.is_empty());
        assert!(reactor.ctx.messages.is_empty());
    }

    /// Logs what a client connection sees, as text.
    struct Logger(std::rc::Rc<std::cell::RefCell<Vec<String>>>);
    impl Protocol for Logger {
        fn connection_made(&mut self, _: &mut Ctx, _: ConnId) {
            self.0.borrow_mut().push("made".into());
        }
        fn data_received(&mut self, _: &mut Ctx, _: ConnId, data: &[u8]) {
            let text = String::from_utf8_lossy(data);
            self.0.borrow_mut().push(format!("data:{text}"));
        }
        fn connection_lost(&mut self, _: &mut Ctx, _: ConnId, reason: Disconnect) {
            self.0.borrow_mut().push(format!("lost:{reason:?}"));
        }
    }

    type TextLog = std::rc::Rc<std::cell::RefCell<Vec<String>>>;

    /// Connects a `Logger` to `listener`; returns its id, its log and the server's socket.
    fn logged_connection(
        reactor: &mut Reactor,
        listener: &std::net::TcpListener,
    ) -> (ConnId, TextLog, std::net::TcpStream) {
        let log = TextLog::default();
        let port = listener.local_addr().unwrap().port();
        let id = reactor.ctx().connect_tcp(
            "127.0.0.1",
            port,
            ConnectOptions::default(),
            Box::new(Logger(log.clone())),
        );
        let (server, _) = listener.accept().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.borrow().is_empty() && Instant::now() < deadline {
            reactor.turn(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(*log.borrow(), ["made"]);
        (id, log, server)
    }

    fn inject(reactor: &mut Reactor, id: ConnId) {
        let token = conn_token(id);
        reactor.handle_event(Ready {
            token,
            readable: true,
            writable: true,
            read_closed: false,
        });
        reactor.settle();
    }

    /// F12: readiness that is spurious (nothing to read), repeated, or that carries data and
    /// the close together is processed once: no empty deliveries, one data event, one loss.
    #[test]
    fn spurious_repeated_and_coalesced_readiness_is_processed_once() {
        use std::io::Write;
        let mut reactor = Reactor::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (id, log, mut server) = logged_connection(&mut reactor, &listener);
        for _ in 0..3 {
            inject(&mut reactor, id);
        }
        assert_eq!(
            *log.borrow(),
            ["made"],
            "spurious readiness delivered something"
        );
        assert_eq!(reactor.stats().connections, 1);

        server.write_all(b"hello").unwrap();
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        // Data and FIN are both waiting: one injected event sees them together, the second
        // (and the real ones from the poller) find the connection gone.
        inject(&mut reactor, id);
        inject(&mut reactor, id);
        for _ in 0..5 {
            reactor.turn(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(*log.borrow(), ["made", "data:hello", "lost:PeerClosed"]);
        assert_eq!(reactor.stats(), ReactorStats::default());
    }

    /// F12: a slot reused by a new connection gets a new generation, and an event carrying
    /// the old connection's token never reaches the new one.
    #[test]
    fn events_for_a_closed_connection_never_reach_the_one_reusing_its_slot() {
        use std::io::Write;
        let mut reactor = Reactor::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (old, old_log, _old_server) = logged_connection(&mut reactor, &listener);
        reactor.ctx().abort_connection(old);
        for _ in 0..3 {
            reactor.turn(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(reactor.stats().connections, 0);
        let (new, new_log, mut server) = logged_connection(&mut reactor, &listener);
        assert_eq!(new.index, old.index, "the slot is reused");
        assert_ne!(new.generation, old.generation);
        assert_ne!(conn_token(new), conn_token(old));

        server.write_all(b"for-new").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        inject(&mut reactor, old);
        assert_eq!(
            *new_log.borrow(),
            ["made"],
            "the stale event read the new connection"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while new_log.borrow().len() < 2 && Instant::now() < deadline {
            reactor.turn(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(*new_log.borrow(), ["made", "data:for-new"]);
        assert_eq!(old_log.borrow().len(), 2, "{:?}", old_log.borrow());
    }
}
