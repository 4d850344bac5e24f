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

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::tls::{TlsConnector, TlsError};

/// Handle to a connection. Copyable; generational, so a handle to a closed connection never
/// reaches a newer connection that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// Handle to a handler (a [`Protocol`] registered with the reactor). Generational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId {
    index: u32,
    generation: u32,
}

/// Handle to a pending timer. Cancelling a timer that already fired is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Handle to a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId {
    index: u32,
    generation: u32,
}

/// Why a connection ended, as told to [`Protocol::connection_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The peer closed cleanly: TCP FIN on a plain connection, TLS `close_notify` on a secure one.
    PeerClosed,
    /// The peer closed a TLS connection without `close_notify`: data may have been cut off.
    PeerClosedWithoutCloseNotify,
    /// We closed it ([`Ctx::lose_connection`] or [`Ctx::abort_connection`]).
    ClosedLocally,
    /// A transport failure (reset, TLS error...).
    Failed(TransportError),
}

/// A failure below HTTP: name resolution, connecting, the socket, or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Name resolution failed (the message says why).
    Dns(String),
    /// Every address refused the connection.
    ConnectionRefused,
    /// The connect (TCP and TLS handshake) did not finish in time.
    ConnectTimeout,
    /// The peer reset the connection.
    ConnectionReset,
    /// Another socket error.
    Io(io::ErrorKind, String),
    /// TLS failed (certificate, alert, handshake).
    Tls(TlsError),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl std::error::Error for TransportError {}

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
}

/// The reactor's state as seen by callbacks: every action on connections, timers and handlers.
pub struct Ctx {}

impl Ctx {
    /// The time of the current loop iteration (read once per turn).
    pub fn now(&self) -> Instant {
        todo!()
    }

    /// Ask [`Reactor::run`] to return after the current iteration.
    pub fn stop(&mut self) {
        todo!()
    }

    /// Registers a handler; it lives until [`Ctx::remove_handler`] (or, for a protocol passed
    /// to `connect_tcp`/`listen_tcp`, until its connection is lost).
    pub fn add_handler(&mut self, handler: Box<dyn Protocol>) -> HandlerId {
        todo!()
    }

    /// Drops a handler after the current callback returns. Its connections are aborted and its
    /// timers cancelled; pending messages are discarded.
    pub fn remove_handler(&mut self, id: HandlerId) {
        todo!()
    }

    /// Delivers `msg` to the handler's [`Protocol::message`] after the current callback returns.
    /// A message to a removed handler is dropped.
    pub fn post(&mut self, to: HandlerId, msg: Box<dyn Any>) {
        todo!()
    }

    /// Runs `f` once after `delay`.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut Ctx) + 'static) -> TimerId {
        todo!()
    }

    /// Calls `handler`'s [`Protocol::timer_fired`] with `tag` after `delay` (no allocation).
    pub fn set_timer(&mut self, delay: Duration, handler: HandlerId, tag: u64) -> TimerId {
        todo!()
    }

    /// Cancels a timer; returns whether it was still pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        todo!()
    }

    /// Opens a client connection to `host:port` with `protocol` as its own handler (Twisted's
    /// `connectTCP`). Names are resolved on a helper thread; each address is tried in turn.
    pub fn connect_tcp(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        protocol: Box<dyn Protocol>,
    ) -> ConnId {
        todo!()
    }

    /// Opens a client connection whose events go to an existing handler, `options.owner`
    /// (which must be set).
    pub fn connect_owned(&mut self, host: &str, port: u16, options: ConnectOptions) -> ConnId {
        todo!()
    }

    /// Listens on `addr`; each accepted connection gets a protocol from `factory`. Returns the
    /// bound address (useful with port 0).
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl FnMut() -> Box<dyn Protocol> + 'static,
    ) -> io::Result<SocketAddr> {
        todo!()
    }

    /// Appends bytes to the connection's write buffer; they are flushed after the callback.
    /// Writing to a closed or closing connection is a no-op.
    pub fn write(&mut self, conn: ConnId, data: &[u8]) {
        todo!()
    }

    /// Bytes accepted by [`Ctx::write`] but not yet handed to the kernel.
    pub fn write_buffered(&self, conn: ConnId) -> usize {
        todo!()
    }

    /// Whether the write buffer is above its high-water mark (64 KiB): producers should pause
    /// until [`Protocol::write_drained`].
    pub fn write_full(&self, conn: ConnId) -> bool {
        todo!()
    }

    /// Stops reading from the connection (Twisted's `pauseProducing`).
    pub fn pause_reading(&mut self, conn: ConnId) {
        todo!()
    }

    /// Resumes reading; bytes already waiting in the kernel are read at once.
    pub fn resume_reading(&mut self, conn: ConnId) {
        todo!()
    }

    /// Closes after the write buffer is flushed (Twisted's `loseConnection`).
    pub fn lose_connection(&mut self, conn: ConnId) {
        todo!()
    }

    /// Closes at once, discarding unsent data (Twisted's `abortConnection`).
    pub fn abort_connection(&mut self, conn: ConnId) {
        todo!()
    }

    /// Moves a connection to another handler (used by connection pools).
    pub fn set_owner(&mut self, conn: ConnId, owner: HandlerId) {
        todo!()
    }

    /// Whether the connection is established and not closing.
    pub fn is_open(&self, conn: ConnId) -> bool {
        todo!()
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        todo!()
    }

    /// Number of live connections (for leak checks).
    pub fn connection_count(&self) -> usize {
        todo!()
    }

    /// Number of pending timers (for leak checks).
    pub fn timer_count(&self) -> usize {
        todo!()
    }
}

/// A thread-safe handle that schedules calls onto the reactor's thread.
#[derive(Clone)]
pub struct Remote {}

impl Remote {
    /// Runs `f` on the reactor thread at its next iteration; wakes the reactor if it sleeps.
    /// Returns an error if the reactor is gone.
    pub fn call(&self, f: impl FnOnce(&mut Ctx) + Send + 'static) -> Result<(), ReactorGone> {
        todo!()
    }
}

/// The reactor a [`Remote`] points to was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactorGone;

impl fmt::Display for ReactorGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor is gone")
    }
}

impl std::error::Error for ReactorGone {}

/// The event loop.
pub struct Reactor {}

impl Reactor {
    /// A new reactor with no connections.
    pub fn new() -> io::Result<Self> {
        todo!()
    }

    /// The context, to act on the reactor from outside any callback.
    pub fn ctx(&mut self) -> &mut Ctx {
        todo!()
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote {
        todo!()
    }

    /// Runs until [`Ctx::stop`].
    pub fn run(&mut self) -> io::Result<()> {
        todo!()
    }

    /// One iteration: waits for readiness at most `timeout` (and no later than the next timer),
    /// dispatches events, fires due timers, applies deferred actions. For embedding in another
    /// loop together with [`Reactor::next_deadline`].
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        todo!()
    }

    /// When the earliest timer is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// Whether [`Ctx::stop`] was called since the last `run`.
    pub fn is_stopped(&self) -> bool {
        todo!()
    }
}
