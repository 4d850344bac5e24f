//! The event loop: [`Reactor`] waits for readiness, dispatches each event to its handler and
//! applies what the callbacks recorded on [`Ctx`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, End, State};
use super::ctx::ReactorStats;
use super::dns;
use super::ids::{ConnId, ListenerId, Source, WAKER_TOKEN, conn_token, decode_token};
use super::local::{LocalQueue, WorkQueued};
use super::remote::Remote;
use super::slots::Slots;
use super::stream::Stream;
use super::timers::{TimerKind, Timers};
use super::{Ctx, Deferred, READ_BUF_SIZE, SETTLE_BUDGET, TransportError, dispatch};

/// Most zero-timeout rounds one [`Reactor::dispatch`] runs (documented there). A reactor still
/// busy after this many yields to the host loop and says so through [`Reactor::timeout`].
const DISPATCH_ROUNDS: usize = 16;
/// Readiness events taken from the poll descriptor per round (per [`Reactor::turn`]).
const EVENTS_PER_ROUND: usize = 256;

/// A readiness event, copied out of mio's `Events`.
#[derive(Clone, Copy)]
pub(super) struct Ready {
    pub(super) token: Token,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer's end is closed (or the socket failed): read until end-of-file.
    pub(super) read_closed: bool,
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
///
/// Instead of [`Reactor::run`], a loop the application already has can drive it: through
/// [`Reactor::turn`], or by waiting on the reactor's descriptor ([`AsFd`](std::os::fd::AsFd),
/// [`AsRawFd`](std::os::fd::AsRawFd)) among its own and calling [`Reactor::dispatch`]. The
/// contract is in the [module docs](crate::reactor#embedding-the-reactors-descriptor-in-another-loop).
pub struct Reactor {
    poll: Poll,
    events: Events,
    /// How many readiness events the last turn took from the poll descriptor.
    events_taken: usize,
    /// The other half of `Ctx::read_again`, swapped in each turn.
    spare_again: Vec<ConnId>,
    /// The one read buffer, shared by every connection (outside `Ctx` so that a slice of it
    /// can be handed to a callback together with `&mut Ctx`).
    pub(super) read_buf: Box<[u8]>,
    pub(super) ctx: Ctx,
    /// The last [`Reactor::dispatch`] stopped at its round limit with work still coming.
    unfinished: bool,
    /// Jobs from this thread's futures (see [`Reactor::work_queued`]).
    local: Rc<LocalQueue>,
}

impl Reactor {
    /// A new reactor with no connections.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let local = LocalQueue::new(waker.clone());
        let remote = Remote::new(waker);
        Ok(Reactor {
            poll,
            events: Events::with_capacity(EVENTS_PER_ROUND),
            events_taken: 0,
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
            unfinished: false,
            local,
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
    /// loop together with [`Reactor::next_deadline`]; a loop that polls the reactor's
    /// descriptor itself calls [`Reactor::dispatch`] instead (see the type's docs).
    ///
    /// `turn(Some(Duration::ZERO))` never blocks; `turn(None)` may wait forever if nothing is
    /// registered and no timer is pending.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.unfinished = false;
        self.turn_counted(timeout).map(drop)
    }

    /// Handles whatever is ready now, without blocking: the call a host loop makes when the
    /// reactor's descriptor ([`AsFd`](std::os::fd::AsFd)) is readable, or when the wait
    /// bounded by [`Reactor::timeout`] has elapsed. Returns how many readiness events, calls
    /// from [`Remote`]s, due timers and continued reads it handled (0: there was nothing to do).
    ///
    /// It drains: it runs zero-timeout turns until one has taken every ready event from the
    /// descriptor (fewer than the 256 a round holds; weft's registrations are edge-triggered,
    /// so whatever becomes ready afterwards makes the descriptor readable anew) and left no
    /// queued work and no timer already due — usually a single turn — and at most 16 of them. So the descriptor's
    /// readiness is consumed and an edge-triggered host sees the next edge. When it stops at
    /// the limit with work still coming, it returns (fairness to the host's other sources) and
    /// [`Reactor::timeout`] answers zero until the next dispatch: a host that bounds its wait
    /// by it comes back at once. One `dispatch` per wake-up is therefore right for both edge-
    /// and level-triggered hosts; calling it when nothing is ready is harmless.
    ///
    /// Same as `turn(Some(Duration::ZERO))` repeated, which stays valid.
    pub fn dispatch(&mut self) -> io::Result<usize> {
        let mut handled = 0;
        for _ in 0..DISPATCH_ROUNDS {
            handled += self.turn_counted(Some(Duration::ZERO))?;
            let timer_due = self.next_deadline().is_some_and(|d| d <= self.ctx.now);
            if self.events_taken < EVENTS_PER_ROUND && !self.has_queued_work() && !timer_due {
                self.unfinished = false;
                return Ok(handled);
            }
        }
        self.unfinished = true;
        Ok(handled)
    }

    /// A future that completes when work is queued for this reactor from its own thread by
    /// code that holds no [`Ctx`]: the futures of [`crate::futures`] handing over their
    /// requests. Such work does not need the descriptor: a host that drives the reactor from
    /// an async task waits on this future beside the descriptor's readiness and the
    /// [`Reactor::timeout`], and calls [`Reactor::dispatch`] when any of them completes. The
    /// hand-over then wakes that task directly, with no system call; without a `WorkQueued`
    /// being polled, it makes the descriptor readable instead. Answer it with
    /// [`Reactor::run_queued`] (or a `dispatch`).
    ///
    /// ```no_run
    /// # async fn readable() {}
    /// # async fn sleep(_: Option<std::time::Duration>) {}
    /// # async fn drive(mut reactor: weft::Reactor) -> std::io::Result<()> {
    /// loop {
    ///     reactor.dispatch()?;
    ///     let wait = reactor.timeout();
    ///     // With the host's own select (tokio::select!, futures::select!, ...):
    ///     // select { readable() => {}, sleep(wait) => {}, reactor.work_queued() => {} }
    ///     # reactor.work_queued().await;
    /// }
    /// # }
    /// ```
    pub fn work_queued(&self) -> WorkQueued<'_> {
        WorkQueued { queue: &self.local }
    }

    /// Runs the work this thread's futures handed over (what completed
    /// [`Reactor::work_queued`]) and applies what it recorded — a request's bytes are written
    /// now — without polling the descriptor: the call for a host woken by `work_queued` alone,
    /// one system call cheaper than [`Reactor::dispatch`]. Readiness pending on the descriptor
    /// is left for the host's next wake-up through it; [`Reactor::timeout`] answers zero if
    /// the jobs left work queued. Returns how many jobs ran.
    pub fn run_queued(&mut self) -> usize {
        self.ctx.now = Instant::now();
        let n = self.run_local_jobs();
        self.settle();
        n
    }

    /// The queue behind [`Reactor::work_queued`], for the futures layer.
    pub(crate) fn local_queue(&self) -> Rc<LocalQueue> {
        self.local.clone()
    }

    /// How long a host loop may wait for the reactor's descriptor before it must call
    /// [`Reactor::dispatch`] anyway: zero when work is already queued (callbacks' deferred
    /// actions, posts made from outside a callback, a dispatch that stopped at its round limit,
    /// a read that hit its per-event limit), the time until the next timer (timers are not
    /// descriptors: see [`Reactor::next_deadline`]), `None` when only descriptor readiness can
    /// bring work.
    pub fn timeout(&self) -> Option<Duration> {
        if self.unfinished || self.has_queued_work() {
            return Some(Duration::ZERO);
        }
        self.next_deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Work that needs a turn but will not make the poll descriptor readable.
    fn has_queued_work(&self) -> bool {
        !self.ctx.deferred.is_empty()
            || !self.ctx.messages.is_empty()
            || !self.ctx.dirty.is_empty()
            || !self.ctx.read_again.is_empty()
            || self.ctx.remote.has_calls()
            || self.local.has_jobs()
    }

    /// [`Reactor::turn`], returning how many events, remote calls, continued reads and timers
    /// it handled.
    fn turn_counted(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let now = Instant::now();
        self.ctx.now = now;
        let mut wait = timeout;
        if let Some(deadline) = self.ctx.timers.next_deadline() {
            let until = deadline.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if self.has_queued_work() {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }
        self.ctx.now = Instant::now();

        let mut handled = self.run_remote_calls() + self.run_local_jobs();
        self.settle();
        // The list is swapped with a spare so that neither allocates turn after turn.
        let mut again = std::mem::replace(
            &mut self.ctx.read_again,
            std::mem::take(&mut self.spare_again),
        );
        // The events are read where mio put them, not copied: lent out of `self` (an empty
        // `Events` holds no memory) while their handlers borrow the reactor.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let mut count = 0;
        for e in events.iter() {
            count += 1;
            self.handle_event(Ready {
                token: e.token(),
                readable: e.is_readable() || e.is_read_closed() || e.is_error(),
                writable: e.is_writable() || e.is_write_closed(),
                read_closed: e.is_read_closed() || e.is_error(),
            });
            self.settle();
        }
        self.events = events;
        self.events_taken = count;
        handled += count;
        for &id in &again {
            self.read_conn(id);
            self.settle();
        }
        handled += again.len();
        again.clear();
        self.spare_again = again;
        handled += self.fire_timers();
        Ok(handled)
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

    fn run_remote_calls(&mut self) -> usize {
        let calls = self.ctx.remote.take_calls();
        let n = calls.len();
        for call in calls {
            call(&mut self.ctx);
            self.settle();
        }
        n
    }

    fn run_local_jobs(&mut self) -> usize {
        let jobs = self.local.take();
        let n = jobs.len();
        for job in jobs {
            job(&mut self.ctx);
            self.settle();
        }
        n
    }

    pub(super) fn handle_event(&mut self, event: Ready) {
        let id = match decode_token(event.token) {
            Source::Waker => return,
            Source::Listener(id) => return self.accept(id),
            Source::Conn(id) => id,
        };
        let Some(conn) = self.ctx.conns.get_mut(id) else {
            return;
        };
        conn.close_reported |= event.read_closed;
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
            conn.timing.set_resolved(now);
            conn.timing.set_connected(now);
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
    pub(super) fn settle(&mut self) {
        self.ctx.flush_dirty();
        // Usual after a read: nothing was recorded but writes, now flushed.
        if self.ctx.deferred.is_empty() && self.ctx.messages.is_empty() {
            return;
        }
        self.settle_queued();
    }

    /// [`Reactor::settle`] with notifications or messages queued.
    fn settle_queued(&mut self) {
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
            shrink_drained(&mut self.ctx.deferred);
            shrink_drained(&mut self.ctx.messages);
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
            Deferred::WriteFailed(conn, end) => {
                self.read_conn(conn);
                self.ctx.finish(conn, end);
            }
        }
    }

    fn fire_timers(&mut self) -> usize {
        let limit = self.ctx.timers.next_seq();
        let now = self.ctx.now;
        let mut fired = 0;
        while let Some(kind) = self.ctx.timers.pop_due(now, limit) {
            fired += 1;
            match kind {
                TimerKind::Call(f) => f(&mut self.ctx),
                TimerKind::Handler(handler, tag) => {
                    dispatch(&mut self.ctx, handler, |p, ctx| p.timer_fired(ctx, tag))
                }
                TimerKind::ConnectTimeout(conn) => {
                    if let Some(c) = self.ctx.conns.get_mut(conn) {
                        // It fired: nothing left to cancel.
                        c.take_connect_timer();
                        if c.state != State::Open {
                            self.ctx
                                .finish(conn, End::Failed(TransportError::ConnectTimeout));
                        }
                    }
                }
                TimerKind::AttemptDelay(conn) => self.ctx.attempt_delay_elapsed(conn),
            }
            self.settle();
        }
        fired
    }
}

/// The reactor's poll descriptor (an epoll instance on Linux), for a host loop to wait on:
/// see [`Reactor`] for the contract.
#[cfg(unix)]
impl std::os::fd::AsFd for Reactor {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self.poll.registry())
    }
}

/// The same descriptor as [`AsFd`](std::os::fd::AsFd), for APIs that take a raw one (mio's
/// `SourceFd`, `poll(2)` wrappers).
#[cfg(unix)]
impl std::os::fd::AsRawFd for Reactor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.poll)
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.ctx.remote.shut_down();
        self.local.shut_down();
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

/// Queue slots above which a drained queue gives its memory back (a steady load keeps its).
const QUEUE_KEPT: usize = 1024;

/// Shrinks a drained queue after a burst (10,000 connections made at once, 10,000 requests
/// posted). In place rather than freed: glibc raises its mmap and trim thresholds to the
/// size of any large block freed, after which the main heap's holes stay resident.
fn shrink_drained<T>(queue: &mut VecDeque<T>) {
    // Capacity first: in the steady state it alone decides.
    if queue.capacity() > QUEUE_KEPT && queue.is_empty() {
        queue.shrink_to(16);
    }
}
