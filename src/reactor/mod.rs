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
//!
//! # Embedding the reactor's descriptor in another loop
//!
//! The reactor's mio `Poll` is one descriptor (an epoll instance on Linux) that is readable
//! while any of its sockets is ready. [`Reactor`] implements `AsFd` and `AsRawFd` for it, so a
//! loop the application already runs (its own mio `Poll`, tokio's `AsyncFd`, GLib, `poll(2)`)
//! can wait on weft's sockets together with its own, with no second thread and no polling.
//! The contract:
//!
//! 1. Register the descriptor for readability in the host loop.
//! 2. Before the host sleeps, bound its wait by [`Reactor::timeout`]: the time until the next
//!    timer ([`Reactor::next_deadline`]; timers are not descriptors), or zero when work is
//!    already queued, or `None` when only readiness can bring work.
//! 3. When the descriptor is readable, or that wait has elapsed, call [`Reactor::dispatch`]:
//!    it never blocks, handles what is ready and fires due timers. `turn(Some(Duration::ZERO))`
//!    is also valid, but handles one round only (see below).
//! 4. Calls posted with [`Remote::call`] from other threads make the descriptor readable (the
//!    reactor's mio `Waker` is registered in that poll), so the host wakes for them too.
//! 5. Work handed over on the reactor's own thread by the futures of [`crate::futures`] makes
//!    the descriptor readable too — unless the host drives the reactor from an async task
//!    that also waits on [`Reactor::work_queued`]: that task is then woken directly, with no
//!    system call, and answers with [`Reactor::run_queued`] (which does not poll).
//!
//! Edge- and level-triggered hosts. An epoll descriptor nested in another poller is readable
//! while it has ready events. A level-triggered host (`poll(2)`, GLib) sees it readable again
//! and again until they are handled. An edge-triggered host (mio, tokio's `AsyncFd`) reports it once per new readiness:
//! if a wake-up left ready events behind, no new edge would come. [`Reactor::dispatch`] is made
//! for both: it drains, running zero-timeout rounds until one takes every ready event and
//! leaves nothing queued (usually the first; at most 16 rounds of up to 256 events, for
//! fairness to the host's other sources); when it stops at that limit
//! it makes [`Reactor::timeout`] answer zero, so a host that honours it comes back at once. So
//! one `dispatch` per wake-up is right for either kind. (A host calling `turn(Some(ZERO))`
//! instead must, when edge-triggered, repeat it while it has work, as `dispatch` does.)
//!
//! ```no_run
//! use std::os::fd::AsRawFd;
//! use mio::{Events, Interest, Poll, Token, unix::SourceFd};
//! # fn main() -> std::io::Result<()> {
//! let mut reactor = weft::Reactor::new()?;
//! let mut host = Poll::new()?; // the application's own loop
//! const WEFT: Token = Token(0);
//! let fd = reactor.as_raw_fd();
//! host.registry().register(&mut SourceFd(&fd), WEFT, Interest::READABLE)?;
//! let mut events = Events::with_capacity(64);
//! loop {
//!     host.poll(&mut events, reactor.timeout())?;
//!     // ... the application's own sources ...
//!     reactor.dispatch()?; // readable, or timeout elapsed: either way, nothing blocks
//!     # break;
//! }
//! # Ok(())
//! # }
//! ```

// This file: the `Protocol` trait, `ConnectOptions`, the `Ctx` state and the loop.
mod conn; // a connection and its lifecycle up to Open, and its single exit (`finish`)
mod ctx; // the public `Ctx` methods
mod dns; // resolver threads
mod error; // Disconnect, TransportError, ReactorGone
mod event_loop; // Reactor: the loop that waits, dispatches and applies what callbacks recorded
mod eyeballs; // Happy Eyeballs: the connect race over a connection's addresses
mod ids; // ConnId, HandlerId, TimerId, ListenerId and mio tokens
mod local; // jobs from the reactor's own thread (futures), and the wake-up of its driver
mod remote; // Remote: calls from other threads
mod slots; // generational slab: the one place that checks an id's generation
mod stream; // a connection's socket: TCP, a Unix socket path, or a stream from a Connector
mod timers; // timer heap
mod transport; // moving bytes: flush (plain or TLS), interest, the read path

use std::any::Any;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::Registry;
use mio::net::TcpListener;

use crate::tls::TlsConnector;
use conn::Conn;
use ids::GENERATION_MASK;
use slots::{Generational, Slots};
use timers::Timers;

pub use conn::ConnTiming;
pub use ctx::ReactorStats;
pub use dns::{Resolver, SystemResolver};
pub use error::{Disconnect, ReactorGone, TransportError, UnixSocketError};
pub use event_loop::Reactor;
pub use eyeballs::{DEFAULT_ATTEMPT_DELAY, IpFamily, MAX_ATTEMPTS};
pub use ids::{ConnId, HandlerId, ListenerId, TimerId};
pub use local::WorkQueued;
pub(crate) use local::{LocalJob, LocalQueue};
pub use remote::Remote;
pub(crate) use slots::reserve_for_one;
pub use stream::Connector;

/// Size of the single read buffer shared by all connections: the most one read takes (a
/// streaming body is read in pieces this large, few system calls per megabyte).
const READ_BUF_SIZE: usize = 256 * 1024;
/// The most a connection reads at a time after it last wrote, until a read fills this much:
/// the read that brings a response's head stays small, and so does whatever a handler keeps
/// of it while it decides (the agent's stash before a body protocol attaches).
const NARROW_READ: usize = 16 * 1024;
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
    /// Wrap the connection in TLS with this connector (server name:
    /// [`ConnectOptions::server_name`], else the host connected to).
    pub tls: Option<TlsConnector>,
    /// The handler that receives this connection's events. `None` with [`Ctx::connect_tcp`]
    /// means the protocol passed there.
    pub owner: Option<HandlerId>,
    /// Happy Eyeballs (RFC 8305): how long one address's connect may go on before the next
    /// address is tried beside it. `None`: [`DEFAULT_ATTEMPT_DELAY`] (250 ms). A failed
    /// attempt starts the next at once; `Duration::ZERO` starts them all together.
    pub attempt_delay: Option<Duration>,
    /// The address families to connect to (curl's `-4` / `-6`); others are skipped, and a
    /// host with none left fails with [`TransportError::Dns`].
    pub ip_family: IpFamily,
    /// Connect to these addresses instead of resolving the host, which still names the
    /// connection (TLS server name, errors): curl's `--resolve`. Raced as resolved ones are.
    pub addrs: Vec<std::net::SocketAddr>,
    /// The TLS server name (SNI and certificate check) when it is not the host connected to:
    /// curl's `--connect-to`. A Unix socket has no host name: TLS over one
    /// ([`Ctx::connect_unix`]) needs this set.
    pub server_name: Option<String>,
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
    /// A write failed because the peer is gone: what it sent first is still read, then the
    /// connection ends with the write's error.
    WriteFailed(ConnId, conn::End),
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
    // Boxes, not bare buffers: the box is what a connection's slot holds, reused with its Vec.
    #[allow(clippy::vec_box)]
    spare_wbufs: Vec<Box<conn::WriteBuf>>,
}

/// Calls one handler callback: takes the handler out of its slot, calls `f`, puts it back
/// (or drops it, if it was removed meanwhile). A stale or busy handler is skipped.
#[inline]
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

#[cfg(test)]
mod tests {
    use super::event_loop::Ready;
    use super::ids::conn_token;
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

#[cfg(test)]
mod queue_tests {
    use super::*;

    struct Sink;
    impl Protocol for Sink {
        fn data_received(&mut self, _: &mut Ctx, _: ConnId, _: &[u8]) {}
    }

    /// A burst of posted messages leaves no large queue behind once delivered.
    #[test]
    fn a_drained_burst_of_messages_gives_the_queue_back() {
        let mut reactor = Reactor::new().unwrap();
        let to = reactor.ctx().add_handler(Box::new(Sink));
        for _ in 0..5_000 {
            reactor.ctx().post(to, Box::new(()));
        }
        assert!(reactor.ctx.messages.capacity() >= 5_000);
        // Settling has a budget per turn: a bounded number of turns delivers them all.
        for _ in 0..100 {
            if reactor.ctx.messages.is_empty() {
                break;
            }
            reactor.turn(Some(Duration::ZERO)).unwrap();
        }
        assert!(reactor.ctx.messages.is_empty());
        assert!(
            reactor.ctx.messages.capacity() <= 1024,
            "kept {}",
            reactor.ctx.messages.capacity()
        );
    }
}
