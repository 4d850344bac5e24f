//! A connection and its lifecycle up to `Open`: resolve, race the addresses (Happy Eyeballs,
//! in `eyeballs`), TLS handshake, and the single exit, [`Ctx::finish`].
//!
//! ```text
//! Resolving ──addrs──▶ Connecting ──connected──▶ Handshaking ──done──▶ Open
//!     │                  │  ▲ (more attempts: delay, failure)  (TLS)     │
//!     └──────────────────┴──┴──── finish: connection_failed ─────────────┴── finish: connection_lost
//! ```
//!
//! A connection to a Unix socket path starts at `Connecting`, with the one path to try.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::Interest;

use super::error::{Disconnect, TransportError};
use super::eyeballs::{DEFAULT_ATTEMPT_DELAY, Progress, Race, drop_race, progress};
use super::ids::{ConnId, HandlerId, conn_token};
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
    /// The resolver's answer arrived; the same as `started` for an IP literal, a Unix socket
    /// or an accepted connection. `None` while resolving.
    pub resolved: Option<Instant>,
    /// The TCP (or Unix socket) connect completed (to the address that worked); `started`
    /// for an accepted connection. `None` before.
    pub connected: Option<Instant>,
    /// The TLS handshake completed: at connect time with [`ConnectOptions::tls`], or after
    /// [`Ctx::start_tls`]. `None` on plain TCP and while handshaking.
    pub tls_done: Option<Instant>,
}

/// No connect timer (timer ids count up from 0 and never get near it).
const NO_TIMER: u64 = u64::MAX;

/// A step not passed yet, in [`Steps`].
const NOT_YET: u64 = u64::MAX;

/// A connection's [`ConnTiming`] in 40 bytes rather than 64: each later step as nanoseconds
/// after `started` (585 years fit), [`NOT_YET`] for `None`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Steps {
    started: Instant,
    resolved: u64,
    connected: u64,
    tls_done: u64,
}

impl Steps {
    fn new(started: Instant) -> Self {
        Steps {
            started,
            resolved: NOT_YET,
            connected: NOT_YET,
            tls_done: NOT_YET,
        }
    }

    /// `at` as an offset from `started` (the loop's clock never goes back).
    fn offset(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.started).as_nanos();
        u64::try_from(nanos).unwrap_or(NOT_YET - 1).min(NOT_YET - 1)
    }

    fn at(&self, offset: u64) -> Option<Instant> {
        (offset != NOT_YET).then(|| self.started + Duration::from_nanos(offset))
    }

    /// Nothing to resolve (an IP literal, given addresses, a Unix socket).
    pub(super) fn resolved_at_start(&mut self) {
        self.resolved = 0;
    }

    pub(super) fn set_resolved(&mut self, at: Instant) {
        self.resolved = self.offset(at);
    }

    pub(super) fn set_connected(&mut self, at: Instant) {
        self.connected = self.offset(at);
    }

    pub(super) fn set_tls_done(&mut self, at: Instant) {
        self.tls_done = self.offset(at);
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected != NOT_YET
    }

    /// The public form.
    pub(super) fn get(&self) -> ConnTiming {
        ConnTiming {
            started: self.started,
            resolved: self.at(self.resolved),
            connected: self.at(self.connected),
            tls_done: self.at(self.tls_done),
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
    pub(super) sock: Option<Stream>,
    /// The interest currently registered with mio (`None`: not registered).
    pub(super) interest: Option<Interest>,
    /// What only connecting needs: the Happy Eyeballs race and the host name it is for, or
    /// the Unix socket path being connected to (for naming it in errors). Dropped once open;
    /// one box for either: 8 bytes in every connection's slot.
    pub(super) dialing: Option<Box<Dialing>>,
    /// Boxed: a TLS session is about a kilobyte, and most pooled connections of a plain-HTTP
    /// client never have one (this keeps an idle connection's slot small).
    pub(super) tls: Option<Box<Tls>>,
    /// Bytes written and not yet sent; `None` when there are none (lent from
    /// `Ctx::spare_wbufs` by `Ctx::write`, given back once sent).
    pub(super) wbuf: Option<Box<WriteBuf>>,
    pub(super) above_high: bool,
    pub(super) paused: bool,
    pub(super) eof: bool,
    /// `connection_made` has been delivered.
    pub(super) made: bool,
    /// `lose_connection` was called: close once flushed.
    pub(super) closing: bool,
    /// Queued in `Ctx::dirty` for a flush.
    pub(super) dirty: bool,
    /// The connect timeout's timer, [`NO_TIMER`] when none is pending (8 bytes where an
    /// `Option<u64>` takes 16; see [`Conn::take_connect_timer`]).
    pub(super) connect_timer: u64,
    pub(super) peer: Option<SocketAddr>,
    pub(super) timing: Steps,
    /// Bytes read by a previous owner but not consumed, handed over with the connection
    /// (`Ctx::hand_over`): delivered before anything else is read. Rare, so boxed: 8 bytes
    /// in every slot rather than the 24 of a `Vec` (the extra allocation is the point).
    #[allow(clippy::box_collection)]
    pub(super) unread: Option<Box<Vec<u8>>>,
    /// A read filled its window since the connection last wrote (a body is streaming): reads
    /// take the whole shared buffer rather than `NARROW_READ`.
    pub(super) wide_reads: bool,
    /// A readiness event reported the peer's close (or an error): from then on, reads go on
    /// to `WouldBlock` or EOF, since no later event will report it again.
    pub(super) close_reported: bool,
}

/// What a connection needs only while connecting (see [`Conn::dialing`]).
pub(super) enum Dialing {
    Race(Race),
    Unix(PathBuf),
}

/// The race in a connection's `dialing` field, for borrowing it beside the other fields.
pub(super) fn race_in(dialing: &mut Option<Box<Dialing>>) -> Option<&mut Race> {
    match dialing.as_deref_mut() {
        Some(Dialing::Race(race)) => Some(race),
        _ => None,
    }
}

/// A connection's write buffer: the bytes its handler wrote, sent from `pos` on. Boxed, so
/// that it takes 8 bytes of every connection's slot rather than 32: only a connection with
/// bytes to send holds one, lent from a short spare list.
#[derive(Default)]
pub(super) struct WriteBuf {
    pub(super) bytes: Vec<u8>,
    pub(super) pos: usize,
}

impl WriteBuf {
    /// The bytes not sent yet.
    #[inline]
    pub(super) fn unsent(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }
}

/// A connection's TLS session with the reactor's state that only a TLS connection has (the
/// stage's `plain_left`, `upgrading` and `close_notify_sent`), in the one box: a plain
/// connection's slot carries none of it.
pub(super) type Tls = TlsStage;

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
            sock: None,
            interest: None,
            dialing: None,
            tls: None,
            wbuf: None,
            above_high: false,
            paused: false,
            eof: false,
            made: false,
            closing: false,
            dirty: false,
            connect_timer: NO_TIMER,
            peer: None,
            timing: Steps::new(now),
            unread: None,
            wide_reads: false,
            close_reported: false,
        }
    }

    /// The pending connect timer, if any, leaving none.
    pub(super) fn take_connect_timer(&mut self) -> Option<u64> {
        let timer = std::mem::replace(&mut self.connect_timer, NO_TIMER);
        (timer != NO_TIMER).then_some(timer)
    }

    /// The host name being connected to, while the race lasts (for naming it in errors);
    /// empty for a Unix socket and once open.
    pub(super) fn host(&self) -> &str {
        self.race().map_or("", |race| race.host.as_str())
    }

    /// The Happy Eyeballs race, while it lasts.
    pub(super) fn race(&self) -> Option<&Race> {
        match self.dialing.as_deref() {
            Some(Dialing::Race(race)) => Some(race),
            _ => None,
        }
    }

    /// The Happy Eyeballs race, while it lasts.
    pub(super) fn race_mut(&mut self) -> Option<&mut Race> {
        race_in(&mut self.dialing)
    }

    /// The Unix socket path being connected to, until open.
    fn unix_path(&self) -> Option<&Path> {
        match self.dialing.as_deref() {
            Some(Dialing::Unix(path)) => Some(path),
            _ => None,
        }
    }

    /// Open, and in the TLS handshake begun by `Ctx::start_tls`.
    pub(super) fn upgrading(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.upgrading)
    }

    /// Bytes written by the handler and not yet handed to the socket (or to TLS).
    #[inline]
    pub(super) fn pending(&self) -> usize {
        self.wbuf.as_ref().map_or(0, |w| w.unsent().len())
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

    /// A client connection's slot, with its connect timer and, with `options.tls`, its TLS
    /// stage checking `tls_name`. `Err(id)`: it failed already (a bad TLS name).
    fn new_client_conn(
        &mut self,
        options: &ConnectOptions,
        owner: HandlerId,
        auto_handler: Option<HandlerId>,
        tls_name: &str,
    ) -> Result<ConnId, ConnId> {
        let mut conn = Conn::new(self.next_generation(), owner, State::Resolving, self.now);
        conn.auto_handler = auto_handler;
        if let Some(timeout) = options.connect_timeout {
            // The id is known before the insert, so the timer can be set up front.
            let id = self.conns.next_id(conn.generation);
            let timer = self
                .timers
                .insert(self.now + timeout, TimerKind::ConnectTimeout(id));
            conn.connect_timer = timer;
        }
        let id = self.conns.insert(conn);
        if let Some(connector) = &options.tls {
            match TlsStage::new(connector, tls_name) {
                Ok(stage) => {
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.tls = Some(Box::new(stage));
                    }
                }
                Err(e) => {
                    self.finish(id, End::Failed(TransportError::Tls(e)));
                    return Err(id);
                }
            }
        }
        Ok(id)
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
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let tls_name = options.server_name.as_deref().unwrap_or(bare);
        let id = match self.new_client_conn(&options, owner, auto_handler, tls_name) {
            Ok(id) => id,
            Err(id) => return id,
        };
        if let Some(conn) = self.conns.get_mut(id) {
            let delay = options.attempt_delay.unwrap_or(DEFAULT_ATTEMPT_DELAY);
            let race = Race::new(host.to_string(), delay, options.ip_family);
            conn.dialing = Some(Box::new(Dialing::Race(race)));
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
                conn.timing.resolved_at_start();
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

    /// Starts a client connection to the Unix socket at `path`. A failure is reported from
    /// the loop, as for TCP, with [`TransportError::UnixSocket`] naming the path.
    pub(super) fn connect_unix_inner(
        &mut self,
        path: &Path,
        options: ConnectOptions,
        owner: HandlerId,
        auto_handler: Option<HandlerId>,
    ) -> ConnId {
        // No host to check a certificate against: without a name given, TLS fails as for an
        // invalid name.
        let tls_name = options.server_name.as_deref().unwrap_or("");
        let id = match self.new_client_conn(&options, owner, auto_handler, tls_name) {
            Ok(id) => id,
            Err(id) => return id,
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return id;
        };
        conn.timing.resolved_at_start();
        let connected = Stream::connect_unix(path).and_then(|mut sock| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.registry
                .register(&mut sock, conn_token(id), interest)?;
            Ok((sock, interest))
        });
        match connected {
            Ok((sock, interest)) => {
                conn.sock = Some(sock);
                conn.dialing = Some(Box::new(Dialing::Unix(path.to_path_buf())));
                conn.interest = Some(interest);
                conn.state = State::Connecting;
            }
            Err(e) => self.finish(id, End::Failed(TransportError::unix(path, &e))),
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
        conn.timing.set_resolved(self.now);
        match result {
            Ok(addrs) if !addrs.is_empty() => self.start_race(id, addrs),
            Ok(_) => {
                let msg = format!("{}: no addresses found", conn.host());
                self.finish(id, End::Failed(TransportError::Dns(msg)));
            }
            Err(e) => {
                let msg = format!("{}: {e}", conn.host());
                self.finish(id, End::Failed(TransportError::Dns(msg)));
            }
        }
    }

    /// A readiness event on a connecting Unix socket (one socket, no race): connected,
    /// failed (the error names the path), or not yet.
    pub(super) fn unix_connect_ready(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Some(sock) = conn.sock.as_ref() else {
            return;
        };
        match progress(sock) {
            Progress::Pending => {}
            Progress::Failed(e) => {
                if let Some(mut sock) = conn.sock.take() {
                    let _ = self.registry.deregister(&mut sock);
                }
                conn.interest = None;
                let path = match conn.dialing.take().map(|d| *d) {
                    Some(Dialing::Unix(path)) => path,
                    _ => PathBuf::new(),
                };
                self.finish(id, End::Failed(TransportError::unix(&path, &e)));
            }
            Progress::Connected(_) => {
                conn.timing.set_connected(self.now);
                if conn.tls.is_some() {
                    conn.state = State::Handshaking;
                    self.mark_dirty(id);
                } else {
                    self.made(id);
                }
            }
        }
    }

    /// The TLS handshake of `id` just completed.
    pub(super) fn handshake_done(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.timing.set_tls_done(self.now);
        }
        self.made(id);
    }

    /// The TLS handshake begun by `Ctx::start_tls` completed: queue `tls_started` and flush
    /// the writes held back during the handshake.
    pub(super) fn upgrade_done(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(tls) = conn.tls.as_mut() {
            tls.upgrading = false;
        }
        conn.timing.set_tls_done(self.now);
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
        log::debug!(
            "connection {id}: connected to {} ({}){}",
            conn.unix_path()
                .map_or_else(|| conn.host().to_string(), |p| p.display().to_string()),
            conn.peer
                .map_or_else(|| "a stream".to_string(), |a| a.to_string()),
            if conn.tls.is_some() { ", TLS" } else { "" },
        );
        // The race was only for connecting, and the host name for naming it in resolve and
        // connect errors.
        let dialing = conn.dialing.take();
        let owner = conn.owner;
        if let Some(timer) = conn.take_connect_timer() {
            self.timers.cancel(timer);
        }
        if let Some(Dialing::Race(race)) = dialing.map(|d| *d) {
            drop_race(race, &mut self.timers, &self.registry);
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
        if let Some(timer) = conn.take_connect_timer() {
            self.timers.cancel(timer);
        }
        if let Some(wbuf) = conn.wbuf.take() {
            give_back(wbuf, &mut self.spare_wbufs);
        }
        let (owner, remove) = (conn.owner, conn.auto_handler);
        log::debug!(
            "connection {id}{}: {}",
            conn.peer.map(|a| format!(" ({a})")).unwrap_or_default(),
            match (&end, conn.state == State::Open) {
                (End::Lost(reason), true) => reason.to_string(),
                (End::Failed(error), true) => format!("failed: {error}"),
                (End::Failed(error), false) =>
                    format!("failed to connect to {}: {error}", conn.host()),
                (End::Lost(reason), false) =>
                    format!("failed to connect to {}: {reason}", conn.host()),
            }
        );
        // After the log line, which names the race's host.
        if let Some(Dialing::Race(race)) = conn.dialing.take().map(|d| *d) {
            drop_race(race, &mut self.timers, &self.registry);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One per connection in the reactor's slab, pooled ones included (it was 272 bytes
    /// with the host name and four `Instant`s inline, 224 with the TLS-only fields and the
    /// handed-over bytes inline, 184 with the race and the Unix path in two boxes).
    #[test]
    fn conn_slot_stays_small() {
        let size = std::mem::size_of::<Conn>();
        println!("size_of::<Conn>() = {size}");
        assert!(size <= 176, "the reactor's Conn grew to {size} bytes");
        assert_eq!(std::mem::size_of::<Steps>(), 40);
    }

    #[test]
    fn steps_give_back_the_instants_they_were_given() {
        let start = Instant::now();
        let mut steps = Steps::new(start);
        assert_eq!(
            steps.get(),
            ConnTiming {
                started: start,
                resolved: None,
                connected: None,
                tls_done: None,
            }
        );
        assert!(!steps.is_connected());
        steps.resolved_at_start();
        let connected = start + Duration::new(3, 123_456_789);
        steps.set_connected(connected);
        let tls = start + Duration::from_secs(7 * 24 * 3600);
        steps.set_tls_done(tls);
        assert!(steps.is_connected());
        assert_eq!(
            steps.get(),
            ConnTiming {
                started: start,
                resolved: Some(start),
                connected: Some(connected),
                tls_done: Some(tls),
            }
        );
    }

    #[test]
    fn steps_before_the_start_or_beyond_u64_nanos_are_clamped() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut steps = Steps::new(start);
        // A clock reading before `started` cannot come from the loop, but must not panic.
        steps.set_resolved(Instant::now());
        assert_eq!(steps.get().resolved, Some(start));
        if let Some(far) = start.checked_add(Duration::from_secs(600 * 365 * 24 * 3600)) {
            steps.set_connected(far);
            let got = steps
                .get()
                .connected
                .expect("a step passed is never `None`");
            assert!(got > start && got < far);
        }
    }
}
