//! A connection and its lifecycle up to `Open`: resolve, race the addresses (Happy Eyeballs,
//! in `eyeballs`), TLS handshake, and the single exit, [`Ctx::finish`].
//!
//! ```text
//! Resolving ──addrs──▶ Connecting ──connected──▶ Handshaking ──done──▶ Open
//!     │                  │  ▲ (more attempts: delay, failure)  (TLS)     │
//!     └──────────────────┴──┴──── finish: connection_failed ─────────────┴── finish: connection_lost
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::Interest;

use super::error::{Disconnect, TransportError};
use super::eyeballs::{DEFAULT_ATTEMPT_DELAY, Race, drop_race};
use super::ids::{ConnId, HandlerId};
use super::slots::Generational;
use super::stream::Stream;
use super::timers::TimerKind;
use super::transport::give_back;
use super::{ConnectOptions, Ctx, Deferred, dns};
use crate::tls::TlsStage;

/// When a connection passed each step of its setup, in [`Ctx::now`] time (the clock of the
/// loop iteration that saw the step). From [`Ctx::conn_timing`].
///
/// Durations follow by subtraction, e.g. `connected? - started` for curl's
/// `time_connect`-style reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTiming {
    /// The connection was asked for ([`Ctx::connect_tcp`] / [`Ctx::connect_owned`]), or
    /// accepted by a listener.
    pub started: Instant,
    /// The resolver's answer arrived; the same as `started` for an IP literal or an accepted
    /// connection. `None` while resolving.
    pub resolved: Option<Instant>,
    /// The TCP connect completed (to the address that worked); `started` for an accepted
    /// connection. `None` before.
    pub connected: Option<Instant>,
    /// The TLS handshake completed: at connect time with [`ConnectOptions::tls`], or after
    /// [`Ctx::start_tls`]. `None` on plain TCP and while handshaking.
    pub tls_done: Option<Instant>,
}

impl ConnTiming {
    fn new(started: Instant) -> Self {
        ConnTiming {
            started,
            resolved: None,
            connected: None,
            tls_done: None,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Waiting for the resolver thread.
    Resolving,
    /// TCP connect in progress (to the current address).
    Connecting,
    /// TCP connected, TLS handshake in progress.
    Handshaking,
    /// Established: `connection_made` is queued or delivered.
    Open,
}

pub(super) struct Conn {
    pub(super) generation: u32,
    pub(super) owner: HandlerId,
    /// The handler created for this connection alone; removed when the connection ends.
    pub(super) auto_handler: Option<HandlerId>,
    pub(super) state: State,
    pub(super) host: String,
    pub(super) sock: Option<Stream>,
    /// The interest currently registered with mio (`None`: not registered).
    pub(super) interest: Option<Interest>,
    /// The Happy Eyeballs race, from the start until an attempt connects (boxed: an open
    /// connection has none).
    pub(super) race: Option<Box<Race>>,
    /// Boxed: a TLS session is about a kilobyte, and most pooled connections of a plain-HTTP
    /// client never have one (this keeps an idle connection's slot small).
    pub(super) tls: Option<Box<TlsStage>>,
    pub(super) close_notify_sent: bool,
    pub(super) wbuf: Vec<u8>,
    pub(super) wpos: usize,
    pub(super) above_high: bool,
    pub(super) paused: bool,
    pub(super) eof: bool,
    /// `connection_made` has been delivered.
    pub(super) made: bool,
    /// `lose_connection` was called: close once flushed.
    pub(super) closing: bool,
    /// Queued in `Ctx::dirty` for a flush.
    pub(super) dirty: bool,
    pub(super) connect_timer: Option<u64>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) timing: ConnTiming,
    /// Open, and in the TLS handshake begun by `Ctx::start_tls`.
    pub(super) upgrading: bool,
    /// Bytes at the front of `wbuf` written before `Ctx::start_tls`: they go out in
    /// plaintext, before the TLS handshake starts.
    pub(super) plain_left: usize,
}

impl Generational for Conn {
    fn generation(&self) -> u32 {
        self.generation
    }
}

impl Conn {
    pub(super) fn new(generation: u32, owner: HandlerId, state: State, now: Instant) -> Self {
        Conn {
            generation,
            owner,
            auto_handler: None,
            state,
            host: String::new(),
            sock: None,
            interest: None,
            race: None,
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
            timing: ConnTiming::new(now),
            upgrading: false,
            plain_left: 0,
        }
    }

    /// Bytes written by the handler and not yet handed to the socket (or to TLS).
    pub(super) fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// How a connection ends, as asked by the code that ends it.
pub(super) enum End {
    /// Ended after it was made, or converted to a failure if it never was.
    Lost(Disconnect),
    /// Failed before it was made.
    Failed(TransportError),
}

impl End {
    /// An I/O error on the socket.
    pub(super) fn io(err: &io::Error) -> Self {
        End::Lost(Disconnect::Failed(TransportError::from_io(err)))
    }
}

impl Ctx {
    /// Queues a flush of `id` for after the current callback.
    pub(super) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Starts a client connection: resolve (or parse) `host`, or take `options.addrs`, then
    /// race the addresses.
    pub(super) fn connect_inner(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        owner: HandlerId,
        auto_handler: Option<HandlerId>,
    ) -> ConnId {
        let mut conn = Conn::new(self.next_generation(), owner, State::Resolving, self.now);
        conn.auto_handler = auto_handler;
        conn.host = host.to_string();
        let delay = options.attempt_delay.unwrap_or(DEFAULT_ATTEMPT_DELAY);
        conn.race = Some(Box::new(Race::new(delay, options.ip_family)));
        if let Some(timeout) = options.connect_timeout {
            // The id is known before the insert, so the timer can be set up front.
            let id = self.conns.next_id(conn.generation);
            let timer = self
                .timers
                .insert(self.now + timeout, TimerKind::ConnectTimeout(id));
            conn.connect_timer = Some(timer);
        }
        let id = self.conns.insert(conn);
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Some(connector) = &options.tls {
            let server_name = options.server_name.as_deref().unwrap_or(bare);
            match TlsStage::new(connector, server_name) {
                Ok(stage) => {
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.tls = Some(Box::new(stage));
                    }
                }
                Err(e) => {
                    self.finish(id, End::Failed(TransportError::Tls(e)));
                    return id;
                }
            }
        }
        let given = if !options.addrs.is_empty() {
            Some(options.addrs)
        } else {
            bare.parse::<IpAddr>()
                .ok()
                .map(|ip| vec![SocketAddr::new(ip, port)])
        };
        if let Some(addrs) = given {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.timing.resolved = Some(conn.timing.started);
            }
            self.start_race(id, addrs);
            return id;
        }
        let resolver = self.resolver.clone();
        if let Err(e) = dns::resolve(resolver, self.remote.clone(), id, bare.to_string(), port) {
            let msg = format!("cannot start the resolver thread: {e}");
            self.finish(id, End::Failed(TransportError::Dns(msg)));
        }
        id
    }

    /// The resolver thread's answer.
    pub(super) fn dns_resolved(&mut self, id: ConnId, result: io::Result<Vec<SocketAddr>>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.state != State::Resolving {
            return;
        }
        conn.timing.resolved = Some(self.now);
        match result {
            Ok(addrs) if !addrs.is_empty() => self.start_race(id, addrs),
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

    /// The TLS handshake of `id` just completed.
    pub(super) fn handshake_done(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.timing.tls_done = Some(self.now);
        }
        self.made(id);
    }

    /// The TLS handshake begun by `Ctx::start_tls` completed: queue `tls_started` and flush
    /// the writes held back during the handshake.
    pub(super) fn upgrade_done(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.upgrading = false;
        conn.timing.tls_done = Some(self.now);
        self.deferred.push_back(Deferred::TlsStarted(id));
        self.mark_dirty(id);
    }

    /// The connection is established: stop the connect timer, queue `connection_made`, and
    /// flush what was written before.
    pub(super) fn made(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.state = State::Open;
        // The race was only for connecting, and the host name for naming it in resolve and
        // connect errors.
        let race = conn.race.take();
        conn.host = String::new();
        let owner = conn.owner;
        if let Some(timer) = conn.connect_timer.take() {
            self.timers.cancel(timer);
        }
        if let Some(race) = race {
            drop_race(*race, &mut self.timers, &self.registry);
        }
        self.deferred.push_back(Deferred::Made { owner, conn: id });
        self.mark_dirty(id);
    }

    /// Removes a connection (deregistering its socket) and queues the notification:
    /// `connection_lost` if it was open, `connection_failed` otherwise. A stale id is a no-op.
    pub(super) fn finish(&mut self, id: ConnId, end: End) {
        let Some(mut conn) = self.conns.remove(id) else {
            return;
        };
        if let Some(sock) = conn.sock.as_mut()
            && conn.interest.is_some()
        {
            let _ = self.registry.deregister(sock);
        }
        if let Some(timer) = conn.connect_timer.take() {
            self.timers.cancel(timer);
        }
        if let Some(race) = conn.race.take() {
            drop_race(*race, &mut self.timers, &self.registry);
        }
        give_back(std::mem::take(&mut conn.wbuf), &mut self.spare_wbufs);
        let (owner, remove) = (conn.owner, conn.auto_handler);
        let deferred = match (end, conn.state == State::Open) {
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
            (End::Lost(reason), false) => Deferred::Failed {
                owner,
                conn: id,
                error: failure_before_open(reason, conn.state),
                remove,
            },
        };
        self.deferred.push_back(deferred);
        // Dropping `conn` closes the socket.
    }
}

/// The `connection_failed` error for a connection that ended before it was made.
fn failure_before_open(reason: Disconnect, state: State) -> TransportError {
    match reason {
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
    }
}
