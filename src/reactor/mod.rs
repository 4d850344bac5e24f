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
//! `connection_lost` / `connection_failed` / `write_drained` notifications and posted messages
//! are delivered (in the order they were recorded). Due timers fire last.

mod timers;

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::tls::{TlsConnector, TlsError, TlsStage};
use timers::{TimerKind, Timers};

/// Size of the single read buffer shared by all connections.
const READ_BUF_SIZE: usize = 16 * 1024;
/// Above this many buffered bytes, [`Ctx::write_full`] is true.
const HIGH_WATER: usize = 64 * 1024;
/// Below this many buffered bytes (after having been above [`HIGH_WATER`]), `write_drained`.
const LOW_WATER: usize = 16 * 1024;
/// Socket reads per readiness event before the connection yields to others.
const READS_PER_EVENT: usize = 32;
/// Plaintext fed to TLS at a time (one record).
const TLS_CHUNK: usize = 16 * 1024;
/// Deferred actions and messages handled per settle before yielding to I/O.
const SETTLE_BUDGET: usize = 100_000;
/// Token of the cross-thread waker.
const WAKER_TOKEN: Token = Token(usize::MAX);
/// Set in the tokens of listeners.
const LISTENER_FLAG: usize = 1 << 63;
/// Generations are 31 bits so they fit in a token next to the 32-bit index and the flag.
const GENERATION_MASK: u32 = 0x7FFF_FFFF;

// Tokens carry a 32-bit index and a 31-bit generation.
const _: () = assert!(usize::BITS >= 64, "weft's reactor needs a 64-bit target");

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

fn conn_token(id: ConnId) -> Token {
    Token(((id.generation as usize) << 32) | id.index as usize)
}

fn listener_token(id: ListenerId) -> Token {
    Token(LISTENER_FLAG | ((id.generation as usize) << 32) | id.index as usize)
}

/// Splits a token into (is a listener, index, generation).
fn decode_token(token: Token) -> (bool, u32, u32) {
    let raw = token.0;
    let listener = raw & LISTENER_FLAG != 0;
    let generation = ((raw >> 32) as u32) & GENERATION_MASK;
    (listener, raw as u32, generation)
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
        match self {
            TransportError::Dns(m) => write!(f, "name resolution failed: {m}"),
            TransportError::ConnectionRefused => f.write_str("connection refused"),
            TransportError::ConnectTimeout => f.write_str("connect timed out"),
            TransportError::ConnectionReset => f.write_str("connection reset by peer"),
            TransportError::Io(_, m) => write!(f, "I/O error: {m}"),
            TransportError::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TransportError {}

impl TransportError {
    fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => TransportError::ConnectionRefused,
            io::ErrorKind::ConnectionReset => TransportError::ConnectionReset,
            kind => TransportError::Io(kind, err.to_string()),
        }
    }
}

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
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the resolver thread.
    Resolving,
    /// TCP connect in progress (to the current address).
    Connecting,
    /// TCP connected, TLS handshake in progress.
    Handshaking,
    /// Established: `connection_made` is queued or delivered.
    Open,
}

struct Conn {
    generation: u32,
    owner: HandlerId,
    /// The handler created for this connection alone; removed when the connection ends.
    auto_handler: Option<HandlerId>,
    state: State,
    host: String,
    sock: Option<TcpStream>,
    /// The interest currently registered with mio (`None`: not registered).
    interest: Option<Interest>,
    addrs: VecDeque<SocketAddr>,
    last_error: Option<io::Error>,
    tls: Option<TlsStage>,
    close_notify_sent: bool,
    wbuf: Vec<u8>,
    wpos: usize,
    above_high: bool,
    paused: bool,
    eof: bool,
    /// `connection_made` has been delivered.
    made: bool,
    /// `lose_connection` was called: close once flushed.
    closing: bool,
    dirty: bool,
    connect_timer: Option<u64>,
    peer: Option<SocketAddr>,
}

impl Conn {
    fn new(generation: u32, owner: HandlerId, state: State) -> Self {
        Conn {
            generation,
            owner,
            auto_handler: None,
            state,
            host: String::new(),
            sock: None,
            interest: None,
            addrs: VecDeque::new(),
            last_error: None,
            tls: None,
            close_notify_sent: false,
            wbuf: Vec::new(),
            wpos: 0,
            above_high: false,
            paused: false,
            eof: false,
            made: false,
            closing: false,
            dirty: false,
            connect_timer: None,
            peer: None,
        }
    }

    fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

struct HandlerSlot {
    generation: u32,
    /// `None` while the handler's callback runs.
    proto: Option<Box<dyn Protocol>>,
    /// Its `set_timer` timers (some may have fired; pruned now and then).
    timers: Vec<u64>,
}

struct Listener {
    generation: u32,
    sock: TcpListener,
    factory: Box<dyn FnMut() -> Box<dyn Protocol>>,
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
    TryRead(ConnId),
}

/// How a connection ends, as asked by the code that ends it.
enum End {
    /// Ended after it was made, or converted to a failure if it never was.
    Lost(Disconnect),
    /// Failed before it was made.
    Failed(TransportError),
}

type RemoteCall = Box<dyn FnOnce(&mut Ctx) + Send>;

struct RemoteQueue {
    calls: VecDeque<RemoteCall>,
    alive: bool,
}

fn lock(queue: &Mutex<RemoteQueue>) -> MutexGuard<'_, RemoteQueue> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reactor's state as seen by callbacks: every action on connections, timers and handlers.
pub struct Ctx {
    registry: Registry,
    conns: Slab<Conn>,
    handlers: Slab<HandlerSlot>,
    listeners: Slab<Listener>,
    timers: Timers<Ctx>,
    messages: VecDeque<(HandlerId, Box<dyn Any>)>,
    deferred: VecDeque<Deferred>,
    dirty: Vec<ConnId>,
    read_again: Vec<ConnId>,
    now: Instant,
    stopped: bool,
    next_generation: u32,
    remote: Remote,
}

/// Calls one handler callback: takes the handler out of its slot, calls `f`, puts it back
/// (or drops it, if it was removed meanwhile). A stale or busy handler is skipped.
fn dispatch(ctx: &mut Ctx, handler: HandlerId, f: impl FnOnce(&mut dyn Protocol, &mut Ctx)) {
    let Some(slot) = ctx.handlers.get_mut(handler.index as usize) else {
        return;
    };
    if slot.generation != handler.generation {
        return;
    }
    let Some(mut proto) = slot.proto.take() else {
        return;
    };
    f(&mut *proto, ctx);
    if let Some(slot) = ctx.handlers.get_mut(handler.index as usize)
        && slot.generation == handler.generation
    {
        slot.proto = Some(proto);
    }
}

impl Ctx {
    fn next_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        generation
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.index as usize)
            .filter(|c| c.generation == id.generation)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
    }

    fn handler_alive(&self, id: HandlerId) -> bool {
        self.handlers
            .get(id.index as usize)
            .is_some_and(|h| h.generation == id.generation)
    }

    fn insert_conn(&mut self, make: impl FnOnce(u32) -> Conn) -> ConnId {
        let generation = self.next_generation();
        let index = self.conns.insert(make(generation));
        ConnId {
            index: index as u32,
            generation,
        }
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Removes a connection (deregistering its socket) and queues the notification.
    fn finish(&mut self, id: ConnId, end: End) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        let was_open = conn.state == State::Open;
        let state = conn.state;
        let mut conn = self.conns.remove(id.index as usize);
        if let Some(sock) = conn.sock.as_mut()
            && conn.interest.is_some()
        {
            let _ = self.registry.deregister(sock);
        }
        if let Some(timer) = conn.connect_timer.take() {
            self.timers.cancel(timer);
        }
        let owner = conn.owner;
        let remove = conn.auto_handler;
        let deferred = match (end, was_open) {
            (End::Lost(reason), true) => Deferred::Lost {
                owner,
                conn: id,
                reason,
                remove,
            },
            (End::Failed(error), true) => Deferred::Lost {
                owner,
                conn: id,
                reason: Disconnect::Failed(error),
                remove,
            },
            (End::Failed(error), false) => Deferred::Failed {
                owner,
                conn: id,
                error,
                remove,
            },
            (End::Lost(reason), false) => {
                let error = match reason {
                    Disconnect::Failed(e) => e,
                    Disconnect::ClosedLocally => TransportError::Io(
                        io::ErrorKind::Interrupted,
                        "connection attempt cancelled".to_string(),
                    ),
                    Disconnect::PeerClosed | Disconnect::PeerClosedWithoutCloseNotify => {
                        let during = if state == State::Handshaking {
                            "the TLS handshake"
                        } else {
                            "connect"
                        };
                        TransportError::Io(
                            io::ErrorKind::UnexpectedEof,
                            format!("the peer closed the connection during {during}"),
                        )
                    }
                };
                Deferred::Failed {
                    owner,
                    conn: id,
                    error,
                    remove,
                }
            }
        };
        self.deferred.push_back(deferred);
        // Dropping `conn` closes the socket.
    }

    /// Connects to the next address of a resolved connection, or fails it when none is left.
    fn try_next_addr(&mut self, id: ConnId) {
        loop {
            let Some(conn) = self
                .conns
                .get_mut(id.index as usize)
                .filter(|c| c.generation == id.generation)
            else {
                return;
            };
            let Some(addr) = conn.addrs.pop_front() else {
                let error = match conn.last_error.take() {
                    Some(e) => TransportError::from_io(&e),
                    None => TransportError::Dns(format!("{}: no address to connect to", conn.host)),
                };
                self.finish(id, End::Failed(error));
                return;
            };
            match TcpStream::connect(addr) {
                Ok(mut sock) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    match self.registry.register(&mut sock, conn_token(id), interest) {
                        Ok(()) => {
                            conn.sock = Some(sock);
                            conn.interest = Some(interest);
                            conn.state = State::Connecting;
                            return;
                        }
                        Err(e) => conn.last_error = Some(e),
                    }
                }
                Err(e) => conn.last_error = Some(e),
            }
        }
    }

    /// The resolver thread's answer.
    fn dns_resolved(&mut self, id: ConnId, result: io::Result<Vec<SocketAddr>>) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != State::Resolving {
            return;
        }
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                conn.addrs = addrs.into();
                self.try_next_addr(id);
            }
            Ok(_) => {
                let msg = format!("{}: no addresses found", conn.host);
                self.finish(id, End::Failed(TransportError::Dns(msg)));
            }
            Err(e) => {
                let msg = format!("{}: {e}", conn.host);
                self.finish(id, End::Failed(TransportError::Dns(msg)));
            }
        }
    }

    /// A readiness event on a connecting socket: finished, failed, or not yet.
    fn connect_ready(&mut self, id: ConnId) {
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return;
        };
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        let mut error = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => None,
        };
        let mut peer = None;
        if error.is_none() {
            match sock.peer_addr() {
                Ok(addr) => peer = Some(addr),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => error = Some(e),
            }
        }
        if let Some(e) = error {
            if let Some(mut sock) = conn.sock.take() {
                let _ = self.registry.deregister(&mut sock);
            }
            conn.interest = None;
            conn.last_error = Some(e);
            self.try_next_addr(id);
            return;
        }
        let _ = sock.set_nodelay(true);
        conn.peer = peer;
        if conn.tls.is_some() {
            conn.state = State::Handshaking;
        } else {
            conn.state = State::Open;
            let owner = conn.owner;
            if let Some(timer) = conn.connect_timer.take() {
                self.timers.cancel(timer);
            }
            self.deferred.push_back(Deferred::Made { owner, conn: id });
        }
        self.mark_dirty(id);
    }

    /// The TLS handshake of `id` just completed.
    fn handshake_done(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.state = State::Open;
        let owner = conn.owner;
        if let Some(timer) = conn.connect_timer.take() {
            self.timers.cancel(timer);
        }
        self.deferred.push_back(Deferred::Made { owner, conn: id });
        self.mark_dirty(id);
    }

    fn flush_dirty(&mut self) {
        while let Some(id) = self.dirty.pop() {
            self.flush(id);
        }
    }

    /// Writes what the kernel takes, closes a closing connection once empty, fires the drained
    /// notification, and updates the registered interest.
    fn flush(&mut self, id: ConnId) {
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return;
        };
        conn.dirty = false;
        let mut error: Option<io::Error> = None;
        if let Some(sock) = conn.sock.as_mut()
            && matches!(conn.state, State::Handshaking | State::Open)
        {
            if let Some(tls) = conn.tls.as_mut() {
                'feed: loop {
                    while tls.wants_write() {
                        match tls.write_tls_to(sock) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 'feed,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                error = Some(e);
                                break 'feed;
                            }
                        }
                    }
                    if conn.state != State::Open {
                        break;
                    }
                    let pending = conn.wbuf.len() - conn.wpos;
                    if pending > 0 {
                        let n = pending.min(TLS_CHUNK);
                        if let Err(e) = tls.write_plaintext(&conn.wbuf[conn.wpos..conn.wpos + n]) {
                            error = Some(e);
                            break;
                        }
                        conn.wpos += n;
                        continue;
                    }
                    if conn.closing && !conn.close_notify_sent {
                        tls.send_close_notify();
                        conn.close_notify_sent = true;
                        continue;
                    }
                    break;
                }
            } else if conn.state == State::Open {
                while conn.wpos < conn.wbuf.len() {
                    match sock.write(&conn.wbuf[conn.wpos..]) {
                        Ok(0) => {
                            error = Some(io::ErrorKind::WriteZero.into());
                            break;
                        }
                        Ok(n) => conn.wpos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        // Keep the buffer compact: reset when empty, shift once half of it is consumed.
        if conn.wpos == conn.wbuf.len() {
            conn.wbuf.clear();
            conn.wpos = 0;
            if conn.wbuf.capacity() > 4 * HIGH_WATER {
                conn.wbuf = Vec::new();
            }
        } else if conn.wpos >= conn.wbuf.len() - conn.wpos {
            conn.wbuf.drain(..conn.wpos);
            conn.wpos = 0;
        }
        if let Some(e) = error {
            self.finish(
                id,
                End::Lost(Disconnect::Failed(TransportError::from_io(&e))),
            );
            return;
        }
        let pending = conn.pending();
        if conn.above_high && pending < LOW_WATER {
            conn.above_high = false;
            self.deferred.push_back(Deferred::Drained(id));
        }
        let tls_done = conn
            .tls
            .as_ref()
            .is_none_or(|t| conn.close_notify_sent && !t.wants_write());
        if conn.closing && conn.state == State::Open && pending == 0 && tls_done {
            self.finish(id, End::Lost(Disconnect::ClosedLocally));
            return;
        }
        self.update_interest(id);
    }

    /// Registers WRITABLE only while something waits to be written (or a connect is pending).
    fn update_interest(&mut self, id: ConnId) {
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return;
        };
        let want_write = match conn.state {
            State::Resolving => return,
            State::Connecting => true,
            State::Handshaking | State::Open => {
                conn.tls.as_ref().is_some_and(|t| t.wants_write())
                    || (conn.state == State::Open && conn.pending() > 0)
            }
        };
        let interest = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if conn.interest == Some(interest) {
            return;
        }
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        let token = conn_token(id);
        let result = if conn.interest.is_some() {
            self.registry.reregister(sock, token, interest)
        } else {
            self.registry.register(sock, token, interest)
        };
        match result {
            Ok(()) => conn.interest = Some(interest),
            Err(e) => {
                self.finish(
                    id,
                    End::Lost(Disconnect::Failed(TransportError::from_io(&e))),
                );
            }
        }
    }

    fn connect_inner(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        owner: HandlerId,
        auto_handler: Option<HandlerId>,
    ) -> ConnId {
        let id = self.insert_conn(|generation| {
            let mut conn = Conn::new(generation, owner, State::Resolving);
            conn.auto_handler = auto_handler;
            conn.host = host.to_string();
            conn
        });
        if let Some(timeout) = options.connect_timeout {
            let timer = self
                .timers
                .insert(self.now + timeout, TimerKind::ConnectTimeout(id));
            if let Some(conn) = self.conn_mut(id) {
                conn.connect_timer = Some(timer);
            }
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Some(connector) = &options.tls {
            match TlsStage::new(connector, bare) {
                Ok(stage) => {
                    if let Some(conn) = self.conn_mut(id) {
                        conn.tls = Some(stage);
                    }
                }
                Err(e) => {
                    self.finish(id, End::Failed(TransportError::Tls(e)));
                    return id;
                }
            }
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if let Some(conn) = self.conn_mut(id) {
                conn.addrs.push_back(SocketAddr::new(ip, port));
            }
            self.try_next_addr(id);
            return id;
        }
        let remote = self.remote.clone();
        let name = bare.to_string();
        let spawned = std::thread::Builder::new()
            .name("weft-dns".to_string())
            .spawn(move || {
                let result = (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect::<Vec<_>>());
                // If the reactor is gone there is nobody to tell.
                let _ = remote.call(move |ctx| ctx.dns_resolved(id, result));
            });
        if let Err(e) = spawned {
            let msg = format!("cannot start the resolver thread: {e}");
            self.finish(id, End::Failed(TransportError::Dns(msg)));
        }
        id
    }

    /// The time of the current loop iteration (read once per turn).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Ask [`Reactor::run`] to return after the current iteration.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Registers a handler; it lives until [`Ctx::remove_handler`] (or, for a protocol passed
    /// to `connect_tcp`/`listen_tcp`, until its connection is lost).
    pub fn add_handler(&mut self, handler: Box<dyn Protocol>) -> HandlerId {
        let generation = self.next_generation();
        let index = self.handlers.insert(HandlerSlot {
            generation,
            proto: Some(handler),
            timers: Vec::new(),
        });
        HandlerId {
            index: index as u32,
            generation,
        }
    }

    /// Drops a handler after the current callback returns. Its connections are aborted and its
    /// timers cancelled; pending messages are discarded.
    ///
    /// The handler is not called again: its connections end without `connection_lost`.
    /// A stale id is a no-op.
    pub fn remove_handler(&mut self, id: HandlerId) {
        if !self.handler_alive(id) {
            return;
        }
        let slot = self.handlers.remove(id.index as usize);
        for timer in &slot.timers {
            self.timers.cancel(*timer);
        }
        let owned: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.owner == id)
            .map(|(index, c)| ConnId {
                index: index as u32,
                generation: c.generation,
            })
            .collect();
        for conn in owned {
            self.finish(conn, End::Lost(Disconnect::ClosedLocally));
        }
        self.messages.retain(|(to, _)| *to != id);
        // If the handler's own callback is running, its box is dropped when it returns.
        drop(slot);
    }

    /// Delivers `msg` to the handler's [`Protocol::message`] after the current callback returns.
    /// A message to a removed handler is dropped.
    pub fn post(&mut self, to: HandlerId, msg: Box<dyn Any>) {
        if self.handler_alive(to) {
            self.messages.push_back((to, msg));
        }
    }

    /// Runs `f` once after `delay`.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut Ctx) + 'static) -> TimerId {
        TimerId(
            self.timers
                .insert(self.now + delay, TimerKind::Call(Box::new(f))),
        )
    }

    /// Calls `handler`'s [`Protocol::timer_fired`] with `tag` after `delay` (no allocation).
    ///
    /// With a stale handler nothing is scheduled (the returned id is never pending).
    pub fn set_timer(&mut self, delay: Duration, handler: HandlerId, tag: u64) -> TimerId {
        if !self.handler_alive(handler) {
            return TimerId(u64::MAX);
        }
        let seq = self
            .timers
            .insert(self.now + delay, TimerKind::Handler(handler, tag));
        let slot = &mut self.handlers[handler.index as usize];
        if slot.timers.len() >= 32 {
            let timers = &self.timers;
            slot.timers.retain(|t| timers.contains(*t));
        }
        slot.timers.push(seq);
        TimerId(seq)
    }

    /// Cancels a timer; returns whether it was still pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id.0)
    }

    /// Opens a client connection to `host:port` with `protocol` as its own handler (Twisted's
    /// `connectTCP`). Names are resolved on a helper thread; each address is tried in turn.
    ///
    /// `host` may be a name, an IP literal, or a bracketed IPv6 literal (`[::1]`). The handler
    /// is removed after the connection ends (or fails). If `options.owner` is set, that handler
    /// receives the events instead, and `protocol` is still removed with the connection.
    pub fn connect_tcp(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        protocol: Box<dyn Protocol>,
    ) -> ConnId {
        let handler = self.add_handler(protocol);
        let owner = match options.owner {
            Some(owner) if self.handler_alive(owner) => owner,
            _ => handler,
        };
        self.connect_inner(host, port, options, owner, Some(handler))
    }

    /// Opens a client connection whose events go to an existing handler, `options.owner`
    /// (which must be set).
    ///
    /// Without a live owner nothing is opened and the returned id is stale from the start.
    pub fn connect_owned(&mut self, host: &str, port: u16, options: ConnectOptions) -> ConnId {
        match options.owner {
            Some(owner) if self.handler_alive(owner) => {
                self.connect_inner(host, port, options, owner, None)
            }
            _ => ConnId {
                index: u32::MAX,
                generation: 0,
            },
        }
    }

    /// Listens on `addr`; each accepted connection gets a protocol from `factory`. Returns the
    /// bound address (useful with port 0).
    ///
    /// Each accepted connection's `connection_made` is delivered from the loop, never from
    /// inside this call. The listener lives as long as the reactor.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl FnMut() -> Box<dyn Protocol> + 'static,
    ) -> io::Result<SocketAddr> {
        let mut sock = TcpListener::bind(addr)?;
        let local = sock.local_addr()?;
        let generation = self.next_generation();
        let entry = self.listeners.vacant_entry();
        let id = ListenerId {
            index: entry.key() as u32,
            generation,
        };
        self.registry
            .register(&mut sock, listener_token(id), Interest::READABLE)?;
        entry.insert(Listener {
            generation,
            sock,
            factory: Box::new(factory),
        });
        Ok(local)
    }

    /// Appends bytes to the connection's write buffer; they are flushed after the callback.
    /// Writing to a closed or closing connection is a no-op.
    ///
    /// Bytes written before the connection is made are sent once it is.
    pub fn write(&mut self, conn: ConnId, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let Some(c) = self.conn_mut(conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.wbuf.extend_from_slice(data);
        if c.pending() > HIGH_WATER {
            c.above_high = true;
        }
        self.mark_dirty(conn);
    }

    /// Bytes accepted by [`Ctx::write`] but not yet handed to the kernel.
    ///
    /// On a TLS connection, bytes already encrypted (at most one record) are not counted.
    pub fn write_buffered(&self, conn: ConnId) -> usize {
        self.conn(conn).map_or(0, Conn::pending)
    }

    /// Whether the write buffer is above its high-water mark (64 KiB): producers should pause
    /// until [`Protocol::write_drained`].
    pub fn write_full(&self, conn: ConnId) -> bool {
        self.write_buffered(conn) > HIGH_WATER
    }

    /// Stops reading from the connection (Twisted's `pauseProducing`).
    pub fn pause_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.paused = true;
        }
    }

    /// Resumes reading; bytes already waiting in the kernel are read at once.
    pub fn resume_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn)
            && c.paused
        {
            c.paused = false;
            self.deferred.push_back(Deferred::TryRead(conn));
        }
    }

    /// Closes after the write buffer is flushed (Twisted's `loseConnection`).
    ///
    /// On TLS, `close_notify` is sent after the data. Reading stops at once. A connection that
    /// is not made yet is cancelled (its handler gets `connection_failed`).
    pub fn lose_connection(&mut self, conn: ConnId) {
        let Some(c) = self.conn_mut(conn) else {
            return;
        };
        if c.state != State::Open {
            self.finish(conn, End::Lost(Disconnect::ClosedLocally));
            return;
        }
        if !c.closing {
            c.closing = true;
            self.mark_dirty(conn);
        }
    }

    /// Closes at once, discarding unsent data (Twisted's `abortConnection`).
    ///
    /// The handler gets `connection_lost(ClosedLocally)` after the current callback, or
    /// `connection_failed` if the connection was not made yet.
    pub fn abort_connection(&mut self, conn: ConnId) {
        self.finish(conn, End::Lost(Disconnect::ClosedLocally));
    }

    /// Moves a connection to another handler (used by connection pools).
    ///
    /// A stale connection or handler makes this a no-op.
    pub fn set_owner(&mut self, conn: ConnId, owner: HandlerId) {
        if !self.handler_alive(owner) {
            return;
        }
        if let Some(c) = self.conn_mut(conn) {
            c.owner = owner;
        }
    }

    /// Whether the connection is established and not closing.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conn(conn)
            .is_some_and(|c| c.state == State::Open && !c.closing)
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conn(conn).and_then(|c| c.peer)
    }

    /// Number of live connections (for leak checks).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of pending timers (for leak checks).
    ///
    /// Includes the internal connect-timeout timer of each connection still connecting with a
    /// `connect_timeout`.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}

/// A thread-safe handle that schedules calls onto the reactor's thread.
#[derive(Clone)]
pub struct Remote {
    queue: Arc<Mutex<RemoteQueue>>,
    waker: Arc<Waker>,
}

impl Remote {
    /// Runs `f` on the reactor thread at its next iteration; wakes the reactor if it sleeps.
    /// Returns an error if the reactor is gone.
    ///
    /// ```
    /// let mut reactor = weft::reactor::Reactor::new()?;
    /// let remote = reactor.remote();
    /// let worker = std::thread::spawn(move || remote.call(|ctx| ctx.stop()));
    /// reactor.run()?; // returns once the call has run
    /// worker.join().unwrap().unwrap();
    /// drop(reactor);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call(&self, f: impl FnOnce(&mut Ctx) + Send + 'static) -> Result<(), ReactorGone> {
        {
            let mut queue = lock(&self.queue);
            if !queue.alive {
                return Err(ReactorGone);
            }
            queue.calls.push_back(Box::new(f));
        }
        // A failed wake (the poll is being torn down) changes nothing for the caller.
        let _ = self.waker.wake();
        Ok(())
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
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

/// A readiness event, copied out of mio's `Events`.
#[derive(Clone, Copy)]
struct Ready {
    token: Token,
    readable: bool,
    writable: bool,
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
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let remote = Remote {
            queue: Arc::new(Mutex::new(RemoteQueue {
                calls: VecDeque::new(),
                alive: true,
            })),
            waker,
        };
        Ok(Reactor {
            poll,
            events: Events::with_capacity(256),
            ready: Vec::with_capacity(256),
            read_buf: vec![0; READ_BUF_SIZE].into_boxed_slice(),
            ctx: Ctx {
                registry,
                conns: Slab::new(),
                handlers: Slab::new(),
                listeners: Slab::new(),
                timers: Timers::new(),
                messages: VecDeque::new(),
                deferred: VecDeque::new(),
                dirty: Vec::new(),
                read_again: Vec::new(),
                now: Instant::now(),
                stopped: false,
                next_generation: 1,
                remote,
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
            || !lock(&self.ctx.remote.queue).calls.is_empty();
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
        }));

        self.run_remote_calls();
        self.settle();
        let again = std::mem::take(&mut self.ctx.read_again);
        for event in &ready {
            self.handle_event(*event);
            self.settle();
        }
        self.ready = ready;
        for id in again {
            self.read_conn(id);
            self.settle();
        }
        self.fire_timers();
        Ok(())
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
        let calls = std::mem::take(&mut lock(&self.ctx.remote.queue).calls);
        for call in calls {
            call(&mut self.ctx);
            self.settle();
        }
    }

    fn handle_event(&mut self, event: Ready) {
        if event.token == WAKER_TOKEN {
            return;
        }
        let (is_listener, index, generation) = decode_token(event.token);
        if is_listener {
            self.accept(ListenerId { index, generation });
            return;
        }
        let id = ConnId { index, generation };
        let Some(conn) = self.ctx.conn(id) else {
            return;
        };
        if conn.state == State::Connecting {
            self.ctx.connect_ready(id);
        }
        if event.readable {
            self.read_conn(id);
        }
        if event.writable {
            self.ctx.flush(id);
        }
    }

    fn accept(&mut self, id: ListenerId) {
        loop {
            let Some(listener) = self
                .ctx
                .listeners
                .get_mut(id.index as usize)
                .filter(|l| l.generation == id.generation)
            else {
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
            let conn = self.ctx.insert_conn(|generation| {
                let mut conn = Conn::new(generation, handler, State::Open);
                conn.auto_handler = Some(handler);
                conn.peer = Some(peer);
                conn
            });
            match self
                .ctx
                .registry
                .register(&mut sock, conn_token(conn), Interest::READABLE)
            {
                Ok(()) => {
                    let c = &mut self.ctx.conns[conn.index as usize];
                    c.sock = Some(sock);
                    c.interest = Some(Interest::READABLE);
                    self.ctx.deferred.push_back(Deferred::Made {
                        owner: handler,
                        conn,
                    });
                }
                Err(_) => {
                    self.ctx.conns.remove(conn.index as usize);
                    self.ctx.remove_handler(handler);
                }
            }
        }
    }

    /// Reads until the socket would block (at most [`READS_PER_EVENT`] reads), delivering the
    /// bytes, unless the connection is paused, closing or not made yet.
    fn read_conn(&mut self, id: ConnId) {
        let mut reads = 0;
        loop {
            let ctx = &mut self.ctx;
            let Some(conn) = ctx
                .conns
                .get_mut(id.index as usize)
                .filter(|c| c.generation == id.generation)
            else {
                return;
            };
            let deliverable = conn.made && !conn.paused && !conn.closing;
            // Decrypted bytes first.
            if deliverable && let Some(tls) = conn.tls.as_mut() {
                match tls.read_plaintext(&mut self.read_buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        let owner = conn.owner;
                        dispatch(ctx, owner, |p, ctx| {
                            p.data_received(ctx, id, &self.read_buf[..n])
                        });
                        ctx.flush_dirty();
                        continue;
                    }
                    Err(e) => {
                        let error = TransportError::from_io(&e);
                        ctx.finish(id, End::Lost(Disconnect::Failed(error)));
                        return;
                    }
                }
            }
            match conn.state {
                State::Resolving | State::Connecting => return,
                State::Handshaking => {}
                State::Open => {
                    if !deliverable {
                        return;
                    }
                }
            }
            if conn.eof {
                let reason = match &conn.tls {
                    Some(tls) if !tls.received_close_notify() => {
                        Disconnect::PeerClosedWithoutCloseNotify
                    }
                    _ => Disconnect::PeerClosed,
                };
                ctx.finish(id, End::Lost(reason));
                return;
            }
            if reads == READS_PER_EVENT {
                ctx.read_again.push(id);
                return;
            }
            reads += 1;
            let Some(sock) = conn.sock.as_mut() else {
                return;
            };
            if let Some(tls) = conn.tls.as_mut() {
                match tls.read_tls_from(sock) {
                    Ok(0) => conn.eof = true,
                    Ok(_) => {
                        if let Err(e) = tls.process() {
                            // Best effort: send the alert rustls queued.
                            while tls.wants_write() {
                                if tls.write_tls_to(sock).is_err() {
                                    break;
                                }
                            }
                            let error = TransportError::Tls(e);
                            ctx.finish(id, End::Lost(Disconnect::Failed(error)));
                            return;
                        }
                        if tls.received_close_notify() {
                            conn.eof = true;
                        }
                        let handshake_done =
                            conn.state == State::Handshaking && !tls.is_handshaking();
                        let wants_write = tls.wants_write();
                        if handshake_done {
                            // Made is queued; reading resumes when it is delivered.
                            ctx.handshake_done(id);
                            return;
                        }
                        if wants_write {
                            ctx.mark_dirty(id);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let error = TransportError::from_io(&e);
                        ctx.finish(id, End::Lost(Disconnect::Failed(error)));
                        return;
                    }
                }
            } else {
                match sock.read(&mut self.read_buf) {
                    Ok(0) => conn.eof = true,
                    Ok(n) => {
                        let owner = conn.owner;
                        dispatch(ctx, owner, |p, ctx| {
                            p.data_received(ctx, id, &self.read_buf[..n])
                        });
                        ctx.flush_dirty();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let error = TransportError::from_io(&e);
                        ctx.finish(id, End::Lost(Disconnect::Failed(error)));
                        return;
                    }
                }
            }
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
                let owner = match self.ctx.conn_mut(conn) {
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
                if let Some(c) = self.ctx.conn(conn) {
                    let owner = c.owner;
                    dispatch(&mut self.ctx, owner, |p, ctx| p.write_drained(ctx, conn));
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
                    if let Some(c) = self.ctx.conn_mut(conn) {
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
        let calls = {
            let mut queue = lock(&self.ctx.remote.queue);
            queue.alive = false;
            std::mem::take(&mut queue.calls)
        };
        drop(calls);
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
    fn tokens_round_trip() {
        let conn = ConnId {
            index: 7,
            generation: GENERATION_MASK,
        };
        assert_eq!(decode_token(conn_token(conn)), (false, 7, GENERATION_MASK));
        let listener = ListenerId {
            index: u32::MAX - 1,
            generation: 3,
        };
        assert_eq!(
            decode_token(listener_token(listener)),
            (true, u32::MAX - 1, 3)
        );
        assert_ne!(listener_token(listener), WAKER_TOKEN);
    }

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

    #[test]
    fn io_errors_map_to_transport_errors() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            TransportError::from_io(&refused),
            TransportError::ConnectionRefused
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            TransportError::from_io(&reset),
            TransportError::ConnectionReset
        );
        let other = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(matches!(
            TransportError::from_io(&other),
            TransportError::Io(io::ErrorKind::BrokenPipe, _)
        ));
    }
}
