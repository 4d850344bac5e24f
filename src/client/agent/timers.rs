//! The agent's timers: the total, queue and 100-continue limits of each request, and one timer
//! per connection for its read timeout while in use and its idle timeout while pooled, told
//! apart by their tags.

use std::time::{Duration, Instant};

use crate::client::error::{Cause, Timeout, TimeoutKind};
use crate::client::msg::RequestId;
use crate::reactor::{ConnId, Ctx, TimerId};

use super::state::AgentState;

#[derive(Clone, Copy)]
pub(super) enum TimerTarget {
    /// The connection's timer: the read timeout of its request, or its idle timeout.
    Conn(ConnId),
    Total(RequestId),
    Queue(RequestId),
    Continue(RequestId),
    /// What is left of the connect timeout once TCP to a SOCKS proxy is up.
    Handshake(RequestId),
}

// A timer's tag says what it is for: the kind in the top bits, the request id (or a connection
// timer's serial) below. No table of pending request timers is kept, so a cancelled timer
// leaves nothing behind.
pub(super) const TAG_KIND: u64 = 0b111 << 61;
pub(super) const TAG_CONN: u64 = 1 << 61;
pub(super) const TAG_TOTAL: u64 = 2 << 61;
pub(super) const TAG_QUEUE: u64 = 3 << 61;
pub(super) const TAG_CONTINUE: u64 = 4 << 61;
pub(super) const TAG_HANDSHAKE: u64 = 6 << 61;

impl TimerTarget {
    /// The tag to set the timer with; a connection timer gets a fresh serial mapped to its
    /// connection (request ids stay far below 2^61).
    pub(super) fn tag(self, agent: &mut AgentState) -> u64 {
        match self {
            TimerTarget::Conn(cid) => {
                agent.conn_timer_seq += 1;
                let tag = agent.conn_timer_seq | TAG_CONN;
                agent.conn_timer_tags.insert(tag, cid);
                tag
            }
            TimerTarget::Total(id) => id.0 | TAG_TOTAL,
            TimerTarget::Queue(id) => id.0 | TAG_QUEUE,
            TimerTarget::Continue(id) => id.0 | TAG_CONTINUE,
            TimerTarget::Handshake(id) => id.0 | TAG_HANDSHAKE,
        }
    }

    /// The target of a fired timer's tag (`None` for a connection timer already forgotten).
    pub(super) fn from_tag(tag: u64, agent: &mut AgentState) -> Option<TimerTarget> {
        let id = RequestId(tag & !TAG_KIND);
        Some(match tag & TAG_KIND {
            TAG_CONN => TimerTarget::Conn(agent.conn_timer_tags.remove(&tag)?),
            TAG_TOTAL => TimerTarget::Total(id),
            TAG_QUEUE => TimerTarget::Queue(id),
            TAG_CONTINUE => TimerTarget::Continue(id),
            TAG_HANDSHAKE => TimerTarget::Handshake(id),
            _ => return None,
        })
    }
}

/// Whether a connection's armed timer (if any) fires no later than `until`.
#[inline]
pub(super) fn fires_by(timer: Option<(TimerId, u64, Instant)>, until: Instant) -> bool {
    timer.is_some_and(|(_, _, at)| at <= until)
}

impl AgentState {
    pub(super) fn set_timer(
        &mut self,
        ctx: &mut Ctx,
        delay: Duration,
        target: TimerTarget,
    ) -> TimerId {
        let tag = target.tag(self);
        ctx.set_timer(delay, self.me(), tag)
    }

    /// Marks a pooled connection idle until `delay` from now.
    #[inline]
    pub(super) fn set_idle_timer(&mut self, ctx: &mut Ctx, cid: ConnId, delay: Duration) {
        let until = ctx.now() + delay;
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.idle_until = Some(until);
        if !fires_by(conn.timer, until) {
            self.rearm_conn_timer(ctx, cid, until);
        }
    }

    /// Makes sure the connection's timer fires no later than `until`: kept if the armed one
    /// fires earlier (it re-checks then and re-arms for the rest), re-armed otherwise. So a
    /// connection that serves request after request with the same limits costs no timer work
    /// per request: the timer is moved in the connection's fields, not in the reactor's heap.
    #[inline]
    pub(super) fn arm_conn_timer(&mut self, ctx: &mut Ctx, cid: ConnId, until: Instant) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if fires_by(conn.timer, until) {
            return;
        }
        self.rearm_conn_timer(ctx, cid, until);
    }

    /// [`Self::arm_conn_timer`] when the armed timer fires too late (or none is armed): kept
    /// out of line, so that the usual case is a compare where it is called.
    #[inline(never)]
    pub(super) fn rearm_conn_timer(&mut self, ctx: &mut Ctx, cid: ConnId, until: Instant) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let stale = conn.timer.take();
        self.cancel_conn_timer(ctx, stale);
        let delay = until.saturating_duration_since(ctx.now());
        let timer = self.set_timer(ctx, delay, TimerTarget::Conn(cid));
        let tag = self.conn_timer_seq | TAG_CONN;
        if let Some(conn) = self.conns.get_mut(&cid) {
            conn.timer = Some((timer, tag, until));
        }
    }

    /// Cancels a connection's timer and forgets its tag.
    pub(super) fn cancel_conn_timer(
        &mut self,
        ctx: &mut Ctx,
        timer: Option<(TimerId, u64, Instant)>,
    ) {
        if let Some((t, tag, _)) = timer {
            ctx.cancel_timer(t);
            self.conn_timer_tags.remove(&tag);
        }
    }

    /// A connection's timer fired: it may be early (the deadline moved since it was armed),
    /// so the deadline is worked out again from the connection's state.
    fn conn_timer_fired(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let now = ctx.now();
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.timer = None;
        let Some(id) = conn.req else {
            // Idle in the pool (or closing): the idle timeout.
            let Some(until) = conn.idle_until else {
                return;
            };
            if now >= until {
                self.close_conn(ctx, cid, false);
            } else {
                self.arm_conn_timer(ctx, cid, until);
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
            self.arm_conn_timer(ctx, cid, now + wait);
        }
    }

    pub(super) fn timer(&mut self, ctx: &mut Ctx, target: TimerTarget) {
        match target {
            TimerTarget::Conn(cid) => self.conn_timer_fired(ctx, cid),
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
            TimeoutKind::Queue => req.queue_timeout,
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
