//! The agent's state, owned by the reactor as one handler: its requests, its connections, its
//! host table and its counts. This file holds the data; the behaviour is split by concern:
//! `pool.rs` (queueing, dispatch, idle connections), `exchange.rs` (sending a request and
//! ending it: retry, failure), `receive.rs` (parsing and delivering the response), `tunnel.rs`
//! (`CONNECT` through a proxy), `socks.rs` (SOCKS5 tunnels) and `timers.rs`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::client::body::{BodyEnd, BodyProtocol};
use crate::client::msg::RequestId;
use crate::client::producer::BodyProducer;
use crate::client::request::ResponseCallback;
use crate::client::timing::Timing;
use crate::proto::socks::SocksClient;
use crate::proto::{ClientConnection, Headers};
use crate::reactor::{ConnId, ConnTiming, Ctx, Disconnect, HandlerId, TimerId};

use super::route::{PoolKey, Target, Tunnel};
use super::shared::{AGENTS, Shared};
use super::table::{Handle, KeyedSlab, ReqTable, SlabMap};
use super::timers::ConnTimers;
#[cfg(doc)]
use super::timers::NO_CONN_TIMER;

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

#[derive(Default)]
pub(super) struct HostPool {
    pub(super) idle: Vec<ConnId>,
    pub(super) active: usize,
    pub(super) waiting: VecDeque<(u64, RequestId)>,
}

impl HostPool {
    /// Whether the host has a connection or a waiting request.
    pub(super) fn in_use(&self) -> bool {
        self.active > 0 || !self.idle.is_empty() || !self.waiting.is_empty()
    }
}

pub(super) enum BodyState {
    NotAttached,
    Attached(Box<dyn BodyProtocol>),
}

pub(super) struct Req {
    pub(super) method: Cow<'static, str>,
    /// Shared by every request to the same URL.
    pub(super) target: Rc<Target>,
    pub(super) headers: Headers,
    pub(super) producer: Option<Box<dyn BodyProducer>>,
    pub(super) producer_started: bool,
    pub(super) on_response: Option<ResponseCallback>,
    pub(super) conn: Option<ConnId>,
    pub(super) queued: bool,
    pub(super) head_sent: bool,
    pub(super) body_sent: bool,
    pub(super) head_delivered: bool,
    pub(super) body: BodyState,
    pub(super) paused: bool,
    /// How the body ended, when that is known before a body protocol is attached.
    pub(super) end: Option<Ended>,
    pub(super) retried: bool,
    pub(super) fresh_only: bool,
    /// The total-timeout timer (set by default: kept inline, where a list would allocate
    /// for each request), cancelled when the request ends.
    pub(super) total_timer: Option<TimerId>,
    /// The rarer timers and limits, boxed and made only when one is set: most requests have
    /// none, and their entry is smaller to build, move and drop without them.
    pub(super) rare: Option<Box<Rare>>,
    /// When each phase ended, for [`Timing`].
    pub(super) marks: Marks,
    /// The total limit, for the figures of a timeout error.
    pub(super) total_timeout: Option<Duration>,
    /// Silence allowed while active (watched by the connection's timer), and when the last
    /// byte moved.
    pub(super) read_timeout: Option<Duration>,
    pub(super) last_activity: Instant,
}

/// The fields of a request that most requests leave unset (see [`Req::rare`]).
#[derive(Default)]
pub(super) struct Rare {
    /// The 100-continue and handshake timers, cancelled when the request ends.
    pub(super) timers: Vec<TimerId>,
    /// Cancelled once the request leaves the queue.
    pub(super) queue_timer: Option<TimerId>,
    /// The queue limit, for the figures of a timeout error.
    pub(super) queue_timeout: Option<Duration>,
}

/// How a response's body ended, kept until a body protocol attaches: a [`BodyEnd`] in 16
/// bytes rather than the error's size in every request's entry (a failure is boxed).
pub(super) enum Ended {
    Done,
    PotentialDataLoss,
    Failed(Box<crate::client::Error>),
}

impl From<BodyEnd> for Ended {
    #[inline]
    fn from(end: BodyEnd) -> Self {
        match end {
            BodyEnd::Done => Ended::Done,
            BodyEnd::PotentialDataLoss => Ended::PotentialDataLoss,
            BodyEnd::Failed(error) => Ended::Failed(Box::new(error)),
        }
    }
}

impl From<Ended> for BodyEnd {
    #[inline]
    fn from(end: Ended) -> Self {
        match end {
            Ended::Done => BodyEnd::Done,
            Ended::PotentialDataLoss => BodyEnd::PotentialDataLoss,
            Ended::Failed(error) => BodyEnd::Failed(*error),
        }
    }
}

impl Req {
    /// Cancels every timer of the request (it ended, or lost its connection for good).
    pub(super) fn cancel_timers(&mut self, ctx: &mut Ctx) {
        // Field by field rather than one chained iterator: most requests have no timer at
        // all, or only the total one, and end here.
        if let Some(t) = self.total_timer.take() {
            ctx.cancel_timer(t);
        }
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.cancel_timers(ctx);
        }
    }

    /// The request's rare fields, made on first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    /// The queue limit, if one was set.
    pub(super) fn queue_timeout(&self) -> Option<Duration> {
        self.rare.as_ref().and_then(|r| r.queue_timeout)
    }
}

impl Rare {
    /// Cancels the timers kept here (out of line: most requests have none).
    #[cold]
    fn cancel_timers(&mut self, ctx: &mut Ctx) {
        if let Some(t) = self.queue_timer.take() {
            ctx.cancel_timer(t);
        }
        for t in self.timers.drain(..) {
            ctx.cancel_timer(t);
        }
    }
}

/// Instants of a request's phases.
#[derive(Clone, Copy)]
pub(super) struct Marks {
    pub(super) submitted: Instant,
    pub(super) dispatched: Option<Instant>,
    pub(super) sent: Option<Instant>,
    pub(super) first_byte: Option<Instant>,
    pub(super) reused: bool,
}

impl Marks {
    /// The request's timing; `conn` is its connection's, used unless the connection was
    /// reused. Each phase is clamped to end no earlier than the one before (the reactor's
    /// connection marks are taken once per loop turn).
    pub(super) fn timing(&self, head: Instant, conn: Option<ConnTiming>) -> Timing {
        let conn = conn.filter(|_| !self.reused);
        // The usual request on a kept connection: sent in the loop turn that submitted it,
        // its head read with its first byte. Every phase but the wait for the answer is
        // zero: one subtraction, none of the comparisons of the general case (the same
        // figures; a test compares the two).
        if conn.is_none()
            && self.dispatched == Some(self.submitted)
            && self.sent == Some(self.submitted)
            && self.first_byte == Some(head)
        {
            let waited = head.saturating_duration_since(self.submitted);
            return Timing {
                queued: Duration::ZERO,
                dns: None,
                connect: None,
                tls: None,
                request_sent: Duration::ZERO,
                first_byte: waited,
                head: waited,
                redirect: Duration::ZERO,
                reused: self.reused,
                retries: 0,
            };
        }
        self.timing_in_general(head, conn)
    }

    /// [`Marks::timing`] for any marks.
    fn timing_in_general(&self, head: Instant, conn: Option<ConnTiming>) -> Timing {
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(self.submitted));
        let queued = match self.dispatched {
            Some(t) if t != self.submitted => t.saturating_duration_since(self.submitted),
            _ => Duration::ZERO,
        };
        let dns = conn.and_then(|c| since(c.resolved)).map(|d| d.max(queued));
        let connect = conn
            .and_then(|c| since(c.connected))
            .map(|d| d.max(dns.unwrap_or(queued)));
        let tls = conn
            .and_then(|c| since(c.tls_done))
            .map(|d| d.max(connect.unwrap_or(queued)));
        // Phases passed in one loop turn share its instant: a mark equal to the one before
        // ends where that one did, without another subtraction.
        let (request_sent, first_byte, head) = if conn.is_none() {
            let (at, queued) = (self.dispatched.unwrap_or(self.submitted), queued);
            let (at, sent) = self.after(at, queued, self.sent);
            let (at, first_byte) = self.after(at, sent, self.first_byte);
            let (_, head) = self.after(at, first_byte, Some(head));
            (sent, first_byte, head)
        } else {
            let before_send = tls.or(connect).unwrap_or(queued);
            let sent = since(self.sent).unwrap_or_default().max(before_send);
            let first_byte = since(self.first_byte).unwrap_or_default().max(sent);
            let head = head
                .saturating_duration_since(self.submitted)
                .max(first_byte);
            (sent, first_byte, head)
        };
        Timing {
            queued,
            dns,
            connect,
            tls,
            request_sent,
            first_byte,
            head,
            redirect: Duration::ZERO,
            reused: self.reused,
            retries: 0,
        }
    }

    /// The end of the phase marked `mark` (none: zero, clamped), given that the one before
    /// was marked `at` and ended at `before`, clamped to end no earlier; and the instant to
    /// compare the next mark with.
    #[inline]
    fn after(&self, at: Instant, before: Duration, mark: Option<Instant>) -> (Instant, Duration) {
        match mark {
            Some(t) if t == at => (t, before),
            Some(t) => (t, t.saturating_duration_since(self.submitted).max(before)),
            None => (at, before),
        }
    }
}

/// A connection's bytes read but not yet delivered. Boxed: 8 bytes in every connection's
/// slot rather than the 24 of a `Vec`, as only a connection whose body is paused or not yet
/// attached holds any (the box is lent from `AgentState::spare_stashes` and given back).
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(super) struct Pending(Option<Box<Vec<u8>>>);

impl Pending {
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|buf| buf.is_empty())
    }

    pub(super) fn has_buffer(&self) -> bool {
        self.0.is_some()
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    pub(super) fn extend_from_slice(&mut self, data: &[u8]) {
        self.0.get_or_insert_default().extend_from_slice(data);
    }

    /// Lends `buf` to an empty stash.
    #[allow(clippy::box_collection)]
    pub(super) fn lend(&mut self, buf: Box<Vec<u8>>) {
        self.0 = Some(buf);
    }

    /// The buffer, if any, leaving none.
    #[allow(clippy::box_collection)]
    pub(super) fn take_buffer(&mut self) -> Option<Box<Vec<u8>>> {
        self.0.take()
    }

    /// The bytes, leaving none.
    pub(super) fn into_vec(self) -> Vec<u8> {
        self.0.map(|buf| *buf).unwrap_or_default()
    }
}

pub(super) struct Conn {
    /// The target of the request that opened it; its `key` is the connection's pool key
    /// (shared rather than a copy of the key: 8 bytes a connection, not 72).
    pub(super) opened_for: Rc<Target>,
    /// Its host's entry in `AgentState::hosts` (which lives while the connection counts as
    /// active or idle there).
    pub(super) host: Handle,
    pub(super) proto: ClientConnection,
    pub(super) req: Option<RequestId>,
    pub(super) served: u32,
    /// Bytes read but not yet delivered (the body is paused or not yet attached).
    pub(super) pending: Pending,
    /// The connection was lost while `pending` still held bytes (boxed: rare, and a
    /// `Disconnect` inline would make every connection's slot 48 bytes larger).
    pub(super) eof: Option<Box<Disconnect>>,
    /// When the connection's one timer fires, in [`ConnTimers`] time ([`NO_CONN_TIMER`]: not
    /// armed): the read timeout of its request while in use, the idle timeout while pooled.
    /// Moved forward without touching the heap: when it fires it compares with the deadline
    /// of the moment (`idle_until`, or the request's `last_activity`) and re-arms for the
    /// rest or lets go.
    pub(super) timer: u64,
    /// When the connection, idle in the pool, is to be closed, in [`ConnTimers`] time
    /// ([`NO_CONN_TIMER`] while in use).
    pub(super) idle_until: u64,
    /// A `CONNECT` tunnel still being set up (cleared once TLS runs inside it; boxed: 8 bytes
    /// of every slot rather than 16, as only a proxied connection being set up has one).
    pub(super) tunnel: Option<Box<(Rc<Tunnel>, TunnelPhase)>>,
    /// The response is a `101 Switching Protocols`: when it completes, the connection waits
    /// in `AgentState::switched` for its new protocol.
    pub(super) switching: bool,
    /// The SOCKS5 handshake in progress, once the method selection is sent.
    pub(super) socks: Option<Box<SocksClient>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TunnelPhase {
    /// TCP to the proxy is being opened.
    Connecting,
    /// `CONNECT` sent; waiting for the proxy's answer.
    AwaitingProxy,
    /// The proxy said yes; TLS with the origin is being set up inside the tunnel.
    Handshaking,
}

pub(super) struct AgentState {
    pub(super) me: Option<HandlerId>,
    /// Its key in [`AGENTS`].
    pub(super) id: u64,
    pub(super) shared: Rc<Shared>,
    // Internal integer keys (never chosen by a peer): a fast hash rather than SipHash, which
    // showed in profiles at hundreds of connections.
    /// Each at the slot its id names (ids are given out by `Shared::ids`; see `table.rs`): a
    /// burst's memory goes back once it has drained.
    pub(super) reqs: ReqTable<Req>,
    /// Stored inline in one slab (see `table.rs`), not boxed one by one; found by reactor slot.
    pub(super) conns: SlabMap<ConnId, Conn>,
    /// Hashed several times per request, so a fast hash too: host names can come from a
    /// peer (redirects), but the table only holds hosts with a connection or a waiting
    /// request, so colliding names could only slow down lookups among the caller's own
    /// traffic, never grow without bound.
    /// Found by key once per request, then by the handle its connections keep.
    pub(super) hosts: KeyedSlab<PoolKey, HostPool>,
    pub(super) active_total: usize,
    pub(super) waiting_seq: u64,
    /// The deadlines of the connections' timers, under one reactor timer.
    pub(super) conn_timers: ConnTimers,
    /// How many requests wait in the hosts' queues, kept in step with them: the pool looks
    /// for the oldest waiter only when there is one.
    pub(super) waiting: usize,
    /// Set when a host may have been left with nothing (no connection, no waiter): the pool
    /// then looks for such hosts to forget; clear, it need not look.
    pub(super) maybe_unused: bool,
    pub(super) scratch: Vec<u8>,
    /// Storage for the fields of the next response head, from `Shared::spare_headers`.
    pub(super) spare_headers: Headers,
    /// Emptied `Conn::pending` buffers of connections gone idle. The body bytes that arrive
    /// with a head are stashed until the body protocol attaches, so most responses with a
    /// body stash once: a fresh buffer for each was one allocation per request.
    #[allow(clippy::vec_box)]
    pub(super) spare_stashes: Vec<Box<Vec<u8>>>,
    pub(super) stats: PoolStats,
    /// Connections that switched protocols, by the request whose `101` response decides
    /// their fate (`upgrade.rs`). Still counted as active until then.
    pub(super) switched: FxHashMap<RequestId, ConnId>,
    /// Set by [`Agent::shutdown`](super::Agent::shutdown): new requests fail at once.
    pub(super) closed: bool,
}

/// Most spare stash buffers the agent keeps, and the largest kept (a stash is usually what
/// is left of one read after the head, under the reactor's 16 KiB read buffer).
pub(super) const SPARE_STASHES: usize = 8;
pub(super) const SPARE_STASH_MAX_BYTES: usize = 16 * 1024;

impl AgentState {
    pub(super) fn new(id: u64, shared: Rc<Shared>) -> Self {
        AgentState {
            me: None,
            id,
            shared,
            reqs: ReqTable::default(),
            conns: SlabMap::default(),
            hosts: KeyedSlab::default(),
            active_total: 0,
            waiting_seq: 0,
            conn_timers: ConnTimers::new(),
            waiting: 0,
            maybe_unused: false,
            scratch: Vec::with_capacity(1024),
            spare_headers: Headers::new(),
            spare_stashes: Vec::new(),
            closed: false,
            stats: PoolStats::default(),
            switched: FxHashMap::default(),
        }
    }

    /// Forgets request `id` for good, dropping it where it is: its id's slot may go to a new
    /// request. Returns whether it was there.
    #[inline]
    pub(super) fn forget(&mut self, id: RequestId) -> bool {
        let found = self.reqs.delete(&id);
        if found {
            self.shared.ids.borrow_mut().give_back(id);
        }
        found
    }

    #[inline]
    pub(super) fn me(&self) -> HandlerId {
        self.me.expect("the Init message is the agent's first")
    }
}

impl Drop for AgentState {
    fn drop(&mut self) {
        // `try_with`: the reactor may be dropped while the thread's locals are torn down.
        let _ = AGENTS.try_with(|a| a.borrow_mut().remove(self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection of the pool, in use or idle, has one slot: 232 bytes, of which the
    /// protocol state is 144.
    /// The shortcut for the usual marks gives the figures the general case gives, and only
    /// the marks it is meant for take it (the others agree too, trivially).
    #[test]
    fn the_usual_marks_time_as_the_general_case_does() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let marks = [None, Some(0), Some(3), Some(7)];
        let mut compared = 0;
        for reused in [true, false] {
            for dispatched in marks {
                for sent in marks {
                    for first_byte in marks {
                        for head in [0, 3, 7, 9] {
                            let m = Marks {
                                submitted: at(0),
                                dispatched: dispatched.map(at),
                                sent: sent.map(at),
                                first_byte: first_byte.map(at),
                                reused,
                            };
                            let fast = m.timing(at(head), None);
                            let general = m.timing_in_general(at(head), None);
                            assert_eq!(format!("{fast:?}"), format!("{general:?}"));
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 4 * 4 * 4 * 4);
    }

    /// Every request's entry: its rare fields and a failed end are boxed.
    #[test]
    fn a_request_entry_stays_small() {
        let size = std::mem::size_of::<Req>();
        println!(
            "size_of::<Req>() = {size}, Ended {}",
            std::mem::size_of::<Option<Ended>>()
        );
        assert!(std::mem::size_of::<Option<Ended>>() <= 16);
        assert!(size <= 320, "{size}");
    }

    #[test]
    fn a_connection_slot_stays_small() {
        let size = std::mem::size_of::<Conn>();
        println!("size_of::<Conn>() = {size}");
        assert!(size <= 232, "{size}");
    }
}
