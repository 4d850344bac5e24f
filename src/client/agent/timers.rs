//! The agent's timers: the total, queue, read and 100-continue limits of each request and the
//! idle timer of each pooled connection, told apart by their tags.

use std::time::{Duration, Instant};

use crate::client::error::{Cause, Timeout, TimeoutKind};
use crate::client::msg::RequestId;
use crate::reactor::{ConnId, Ctx, TimerId};

use super::state::AgentState;

#[derive(Clone, Copy)]
pub(super) enum TimerTarget {
    Idle(ConnId),
    Total(RequestId),
    Queue(RequestId),
    Continue(RequestId),
    Read(RequestId),
    /// What is left of the connect timeout once TCP to a SOCKS proxy is up.
    Handshake(RequestId),
}

// A timer's tag says what it is for: the kind in the top bits, the request id (or an idle
// serial) below. No table of pending timers is kept, so a cancelled timer leaves nothing behind.
pub(super) const TAG_KIND: u64 = 0b111 << 61;
pub(super) const TAG_IDLE: u64 = 1 << 61;
pub(super) const TAG_TOTAL: u64 = 2 << 61;
pub(super) const TAG_QUEUE: u64 = 3 << 61;
pub(super) const TAG_CONTINUE: u64 = 4 << 61;
pub(super) const TAG_READ: u64 = 5 << 61;
pub(super) const TAG_HANDSHAKE: u64 = 6 << 61;

impl TimerTarget {
    /// The tag to set the timer with; an idle timer gets a fresh serial mapped to its
    /// connection (request ids stay far below 2^61).
    pub(super) fn tag(self, agent: &mut AgentState) -> u64 {
        match self {
            TimerTarget::Idle(cid) => {
                agent.idle_seq += 1;
                agent.idle_tags.insert(agent.idle_seq | TAG_IDLE, cid);
                agent.idle_seq | TAG_IDLE
            }
            TimerTarget::Total(id) => id.0 | TAG_TOTAL,
            TimerTarget::Queue(id) => id.0 | TAG_QUEUE,
            TimerTarget::Continue(id) => id.0 | TAG_CONTINUE,
            TimerTarget::Read(id) => id.0 | TAG_READ,
            TimerTarget::Handshake(id) => id.0 | TAG_HANDSHAKE,
        }
    }

    /// The target of a fired timer's tag (`None` for an idle timer already forgotten).
    pub(super) fn from_tag(tag: u64, agent: &mut AgentState) -> Option<TimerTarget> {
        let id = RequestId(tag & !TAG_KIND);
        Some(match tag & TAG_KIND {
            TAG_IDLE => TimerTarget::Idle(agent.idle_tags.remove(&tag)?),
            TAG_TOTAL => TimerTarget::Total(id),
            TAG_QUEUE => TimerTarget::Queue(id),
            TAG_CONTINUE => TimerTarget::Continue(id),
            TAG_READ => TimerTarget::Read(id),
            TAG_HANDSHAKE => TimerTarget::Handshake(id),
            _ => return None,
        })
    }
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

    /// Marks a pooled connection idle until `delay` from now, arming its idle timer unless
    /// the one still armed fires no later (it re-arms then for the rest).
    pub(super) fn set_idle_timer(&mut self, ctx: &mut Ctx, cid: ConnId, delay: Duration) {
        let until = ctx.now() + delay;
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.idle_until = Some(until);
        if conn.idle_timer.is_some_and(|(_, _, at)| at <= until) {
            return;
        }
        let stale = conn.idle_timer.take();
        self.cancel_idle_timer(ctx, stale);
        let timer = self.set_timer(ctx, delay, TimerTarget::Idle(cid));
        let tag = self.idle_seq | TAG_IDLE;
        if let Some(conn) = self.conns.get_mut(&cid) {
            conn.idle_timer = Some((timer, tag, until));
        }
    }

    /// Cancels an idle timer and forgets its tag.
    pub(super) fn cancel_idle_timer(
        &mut self,
        ctx: &mut Ctx,
        timer: Option<(TimerId, u64, Instant)>,
    ) {
        if let Some((t, tag, _)) = timer {
            ctx.cancel_timer(t);
            self.idle_tags.remove(&tag);
        }
    }

    pub(super) fn timer(&mut self, ctx: &mut Ctx, target: TimerTarget) {
        match target {
            TimerTarget::Idle(cid) => {
                let Some(conn) = self.conns.get_mut(&cid) else {
                    return;
                };
                conn.idle_timer = None;
                // In use again since it was armed: nothing to do until it is idle again.
                let Some(until) = conn.idle_until.filter(|_| conn.req.is_none()) else {
                    return;
                };
                let now = ctx.now();
                if now >= until {
                    self.close_conn(ctx, cid, false);
                } else {
                    self.set_idle_timer(ctx, cid, until - now);
                }
            }
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
            TimerTarget::Read(id) => {
                let Some(req) = self.reqs.get(&id) else {
                    return;
                };
                let (Some(limit), Some(_)) = (req.read_timeout, req.conn) else {
                    return;
                };
                let silent = req.last_activity.elapsed();
                if silent >= limit && !req.paused {
                    let cause = self.timeout(id, TimeoutKind::Read);
                    self.cancel(ctx, id, cause);
                } else {
                    // Re-armed rather than reset on every read: one timer per request.
                    let wait = if req.paused { limit } else { limit - silent };
                    let timer = self.set_timer(ctx, wait, TimerTarget::Read(id));
                    if let Some(req) = self.reqs.get_mut(&id) {
                        req.read_timer = Some(timer);
                    }
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
