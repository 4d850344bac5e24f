//! The agent's timers: the total, queue and 100-continue limits of each request, told apart by
//! their tags, and one deadline per connection for its read timeout while in use and its idle
//! timeout while pooled, all under one reactor timer ([`ConnTimers`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::client::error::{Cause, Timeout, TimeoutKind};
use crate::client::msg::RequestId;
use crate::reactor::{ConnId, Ctx, TimerId};

use super::state::AgentState;

#[derive(Clone, Copy)]
pub(super) enum TimerTarget {
    /// The reactor timer of [`ConnTimers`]: some connection's deadline may have come.
    Conns,
    Total(RequestId),
    Queue(RequestId),
    Continue(RequestId),
    /// What is left of the connect timeout once TCP to a SOCKS proxy is up.
    Handshake(RequestId),
}

// A timer's tag says what it is for: the kind in the top bits, the request id below. No table
// of pending request timers is kept, so a cancelled timer leaves nothing behind.
pub(super) const TAG_KIND: u64 = 0b111 << 61;
pub(super) const TAG_CONNS: u64 = 1 << 61;
pub(super) const TAG_TOTAL: u64 = 2 << 61;
pub(super) const TAG_QUEUE: u64 = 3 << 61;
pub(super) const TAG_CONTINUE: u64 = 4 << 61;
pub(super) const TAG_HANDSHAKE: u64 = 6 << 61;

impl TimerTarget {
    /// The tag to set the timer with (request ids stay far below 2^61).
    pub(super) fn tag(self) -> u64 {
        match self {
            TimerTarget::Conns => TAG_CONNS,
            TimerTarget::Total(id) => id.0 | TAG_TOTAL,
            TimerTarget::Queue(id) => id.0 | TAG_QUEUE,
            TimerTarget::Continue(id) => id.0 | TAG_CONTINUE,
            TimerTarget::Handshake(id) => id.0 | TAG_HANDSHAKE,
        }
    }

    /// The target of a fired timer's tag.
    pub(super) fn from_tag(tag: u64) -> Option<TimerTarget> {
        let id = RequestId(tag & !TAG_KIND);
        Some(match tag & TAG_KIND {
            TAG_CONNS => TimerTarget::Conns,
            TAG_TOTAL => TimerTarget::Total(id),
            TAG_QUEUE => TimerTarget::Queue(id),
            TAG_CONTINUE => TimerTarget::Continue(id),
            TAG_HANDSHAKE => TimerTarget::Handshake(id),
            _ => return None,
        })
    }
}

/// [`Conn::timer`](super::state::Conn::timer) of a connection whose timer is not armed.
pub(super) const NO_CONN_TIMER: u64 = u64::MAX;

/// The deadlines of the agent's connection timers, under one reactor timer. Each connection
/// (in use or idle in the pool) has a deadline; a reactor timer of its own cost ~130 bytes
/// of tables per connection (the reactor's timer heap, its map of live timers, the handler's
/// list of them and the agent's map from tag to connection), this heap 16 bytes an entry.
///
/// Cancellation is lazy: an entry counts only while its connection is still there and its
/// [`Conn::timer`](super::state::Conn::timer) is the entry's deadline. So a connection that
/// goes away, or whose timer moves earlier, leaves nothing to do but a stale entry, skipped
/// when it comes to the top and dropped when the heap is compacted.
pub(super) struct ConnTimers {
    /// What deadlines are counted from (nanoseconds after it: 16 bytes an entry).
    epoch: Instant,
    heap: BinaryHeap<Reverse<(u64, ConnId)>>,
    /// The reactor timer, and the deadline it was set for.
    armed: Option<(TimerId, u64)>,
    /// The loop's clock last converted, and its value: deadlines are armed a few times per
    /// request, in a loop turn that serves many.
    now: (Instant, u64),
}

impl ConnTimers {
    pub(super) fn new() -> Self {
        let epoch = Instant::now();
        ConnTimers {
            epoch,
            heap: BinaryHeap::new(),
            armed: None,
            now: (epoch, 0),
        }
    }

    /// `delay` after `now` (the loop's clock) as nanoseconds after the epoch: the clock's
    /// conversion is kept for the rest of its turn.
    #[inline]
    pub(super) fn after(&mut self, now: Instant, delay: Duration) -> u64 {
        if self.now.0 != now {
            self.now = (now, self.nanos(now));
        }
        let delay = u64::try_from(delay.as_nanos()).unwrap_or(NO_CONN_TIMER);
        self.now.1.saturating_add(delay).min(NO_CONN_TIMER - 1)
    }

    /// The instant `at` nanoseconds after the epoch.
    pub(super) fn instant(&self, at: u64) -> Instant {
        self.epoch + Duration::from_nanos(at)
    }

    /// `at` as nanoseconds after the epoch: 0 for an instant before it (due at once), and
    /// never [`NO_CONN_TIMER`] (584 years ahead).
    pub(super) fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos)
            .unwrap_or(NO_CONN_TIMER - 1)
            .min(NO_CONN_TIMER - 1)
    }
}

impl AgentState {
    pub(super) fn set_timer(
        &mut self,
        ctx: &mut Ctx,
        delay: Duration,
        target: TimerTarget,
    ) -> TimerId {
        ctx.set_timer(delay, self.me(), target.tag())
    }

    /// Marks a pooled connection idle until `delay` from now.
    #[inline]
    pub(super) fn set_idle_timer(&mut self, ctx: &mut Ctx, cid: ConnId, delay: Duration) {
        let at = self.conn_timers.after(ctx.now(), delay);
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.idle_until = at;
        // The armed timer mostly fires earlier and is kept: seen without a second lookup.
        if conn.timer > at {
            self.arm_conn_timer_at(ctx, cid, at);
        }
    }

    /// Makes sure the connection's timer fires no later than `delay` from now (see
    /// [`Self::arm_conn_timer_at`]).
    #[inline]
    pub(super) fn arm_conn_timer(&mut self, ctx: &mut Ctx, cid: ConnId, delay: Duration) {
        let at = self.conn_timers.after(ctx.now(), delay);
        self.arm_conn_timer_at(ctx, cid, at);
    }

    /// Makes sure the connection's timer fires no later than `at`: kept if the armed one
    /// fires earlier (it re-checks then and re-arms for the rest), re-armed otherwise. So a
    /// connection that serves request after request with the same limits costs no timer work
    /// per request: the timer is moved in the connection's fields, not in a heap.
    pub(super) fn arm_conn_timer_at(&mut self, ctx: &mut Ctx, cid: ConnId, at: u64) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if conn.timer <= at {
            return;
        }
        conn.timer = at;
        let timers = &mut self.conn_timers;
        // A quarter more at a time once large, as the other tables (see `reserve_for_one`).
        let capacity = timers.heap.capacity();
        if timers.heap.len() == capacity && capacity >= 1024 {
            timers.heap.reserve_exact(capacity / 4);
        }
        timers.heap.push(Reverse((at, cid)));
        if timers.heap.len() > 64 && timers.heap.len() > 2 * self.conns.len() {
            let conns = &self.conns;
            timers
                .heap
                .retain(|&Reverse((at, cid))| conns.get(&cid).is_some_and(|c| c.timer == at));
            if timers.heap.capacity() >= 1024 && timers.heap.len() < timers.heap.capacity() / 4 {
                timers.heap.shrink_to(2 * timers.heap.len());
            }
        }
        if self.conn_timers.armed.is_none_or(|(_, armed)| armed > at) {
            self.arm_conns_timer(ctx);
        }
    }

    /// Sets the reactor timer for the earliest live deadline (none: no timer), dropping the
    /// stale entries above it.
    fn arm_conns_timer(&mut self, ctx: &mut Ctx) {
        let timers = &mut self.conn_timers;
        let conns = &self.conns;
        while let Some(&Reverse((at, cid))) = timers.heap.peek() {
            if conns.get(&cid).is_some_and(|c| c.timer == at) {
                break;
            }
            timers.heap.pop();
        }
        let next = timers.heap.peek().map(|&Reverse((at, _))| at);
        if let Some((_, armed)) = timers.armed
            && next.is_some_and(|next| armed <= next)
        {
            // Fires first: it re-arms for the rest then.
            return;
        }
        if let Some((timer, _)) = timers.armed.take() {
            ctx.cancel_timer(timer);
        }
        let Some(at) = next else {
            return;
        };
        let until = timers.instant(at);
        let delay = until.saturating_duration_since(ctx.now());
        let timer = self.set_timer(ctx, delay, TimerTarget::Conns);
        self.conn_timers.armed = Some((timer, at));
    }

    /// A connection left the table: with none left, its stale deadlines and the reactor
    /// timer go too (the others go as they come to the top).
    pub(super) fn conn_timer_dropped(&mut self, ctx: &mut Ctx) {
        if self.conns.is_empty() {
            self.conn_timers.heap = BinaryHeap::new();
            if let Some((timer, _)) = self.conn_timers.armed.take() {
                ctx.cancel_timer(timer);
            }
        }
    }

    /// The reactor timer fired: the connections whose deadline has come each look at their
    /// state again (a deadline may have moved later since it was armed).
    fn conn_timers_fired(&mut self, ctx: &mut Ctx) {
        self.conn_timers.armed = None;
        let now = self.conn_timers.nanos(ctx.now());
        // Taken first: a connection re-armed for now fires at the next turn, not in this loop.
        let mut due = Vec::new();
        while let Some(&Reverse((at, cid))) = self.conn_timers.heap.peek() {
            if at > now {
                break;
            }
            self.conn_timers.heap.pop();
            if let Some(conn) = self.conns.get_mut(&cid)
                && conn.timer == at
            {
                conn.timer = NO_CONN_TIMER;
                due.push(cid);
            }
        }
        for cid in due {
            self.conn_timer_fired(ctx, cid);
        }
        self.arm_conns_timer(ctx);
    }

    /// A connection's timer fired: it may be early (the deadline moved since it was armed),
    /// so the deadline is worked out again from the connection's state.
    fn conn_timer_fired(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let now = ctx.now();
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            // Idle in the pool (or closing): the idle timeout.
            let until = conn.idle_until;
            if until == NO_CONN_TIMER {
                return;
            }
            if self.conn_timers.nanos(now) >= until {
                self.close_conn(ctx, cid, false);
            } else {
                self.arm_conn_timer_at(ctx, cid, until);
            }
            return;
        };
        // In use: the read timeout of its request, which counts from the last byte moved
        // once the head is sent (`start_request` arms the timer then).
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        let Some(limit) = req
            .read_timeout
            .filter(|_| req.head_sent && req.conn == Some(cid))
        else {
            return;
        };
        let silent = now.saturating_duration_since(req.last_activity);
        if silent >= limit && !req.paused {
            let cause = self.timeout(id, TimeoutKind::Read);
            self.cancel(ctx, id, cause);
        } else {
            // A paused body is not the server's silence: wait a whole limit again.
            let wait = if req.paused { limit } else { limit - silent };
            self.arm_conn_timer(ctx, cid, wait);
        }
    }

    pub(super) fn timer(&mut self, ctx: &mut Ctx, target: TimerTarget) {
        match target {
            TimerTarget::Conns => self.conn_timers_fired(ctx),
            TimerTarget::Total(id) => {
                let cause = self.timeout(id, TimeoutKind::Total);
                self.cancel(ctx, id, cause);
            }
            TimerTarget::Queue(id) => {
                if self.reqs.get(&id).is_some_and(|r| r.queued) {
                    let cause = self.timeout(id, TimeoutKind::Queue);
                    self.cancel(ctx, id, cause);
                }
            }
            TimerTarget::Handshake(id) => self.handshake_timed_out(ctx, id),
            TimerTarget::Continue(id) => {
                let cid = self.reqs.get(&id).and_then(|r| r.conn);
                if let Some(conn) = cid.and_then(|c| self.conns.get_mut(&c)) {
                    conn.proto.continue_timed_out();
                    self.produce(ctx, id);
                }
            }
        }
    }

    /// The cause for request `id` running out of its `kind` limit, with the figures: the
    /// limit, the time since the request was submitted (since its connection attempt began,
    /// for a connect timeout) and the body bytes received.
    pub(super) fn timeout(&self, id: RequestId, kind: TimeoutKind) -> Cause {
        let now = Instant::now();
        let Some(req) = self.reqs.get(&id) else {
            return Cause::Timeout(Timeout {
                kind,
                limit: Duration::ZERO,
                elapsed: Duration::ZERO,
                received: 0,
            });
        };
        let limit = match kind {
            TimeoutKind::Connect => self.shared.config.connect_timeout,
            TimeoutKind::Total => req.total_timeout,
            TimeoutKind::Queue => req.queue_timeout(),
            TimeoutKind::Read => req.read_timeout,
        };
        let since = match kind {
            TimeoutKind::Connect => req.marks.dispatched.unwrap_or(req.marks.submitted),
            _ => req.marks.submitted,
        };
        let received = req
            .conn
            .and_then(|cid| self.conns.get(&cid))
            .map_or(0, |conn| conn.proto.body_received());
        Cause::Timeout(Timeout {
            kind,
            limit: limit.unwrap_or_default(),
            elapsed: now.saturating_duration_since(since),
            received,
        })
    }
}
