//! The connection pool: requests admitted and queued per host, dispatched to an idle
//! connection or a new one within the per-host and total caps, connections returned to the
//! pool or closed, and the pool's counts.

use std::time::Duration;

use crate::client::error::{Cause, Error, Phase};
use crate::client::msg::RequestId;
use crate::proto::ClientConnection;
use crate::reactor::{ConnId, ConnectOptions, Ctx};

use super::route::{Target, prepare};
use super::shared::{NewRequest, Parts};
use super::state::{
    AgentState, BodyState, Conn, HostPool, Marks, Pending, PoolStats, Rare, Req,
    SPARE_STASH_MAX_BYTES, SPARE_STASHES, TunnelPhase,
};
use super::table::Handle;
use super::timers::{NO_CONN_TIMER, TimerTarget};

impl AgentState {
    #[inline]
    pub(super) fn take_request(&mut self, ctx: &mut Ctx, new: NewRequest) {
        if self.closed {
            self.shared.ids.borrow_mut().give_back(new.id);
            let mut error = Error::new(Phase::RequestNotSent, Cause::AgentClosed);
            match &new.target {
                Ok(target) => error = error.with_url(target.url.as_str()),
                Err(refused) => error = error.or_url(refused.url().unwrap_or_default()),
            }
            (new.on_response)(ctx, Err(error));
            return;
        }
        let NewRequest {
            id,
            target,
            parts:
                Parts {
                    method,
                    headers,
                    producer,
                    timeouts,
                },
            on_response,
        } = new;
        let prepared =
            target.and_then(
                |t| match prepare(&self.shared.config, &t, &method, &headers) {
                    Ok(()) => Ok(t),
                    Err(cause) => Err(Box::new(
                        Error::new(Phase::RequestNotSent, cause).with_url(t.url.as_str()),
                    )),
                },
            );
        let target = match prepared {
            Ok(t) => t,
            Err(error) => {
                self.shared.ids.borrow_mut().give_back(id);
                on_response(ctx, Err(*error));
                return;
            }
        };
        let (host, room) = self.host_of(&target);
        let total_timeout = timeouts.total.or(self.shared.config.timeout);
        let queue_timeout = timeouts.queue.or(self.shared.config.queue_timeout);
        let total_timer = total_timeout.map(|t| self.set_timer(ctx, t, TimerTarget::Total(id)));
        let queue_timer = queue_timeout.map(|t| self.set_timer(ctx, t, TimerTarget::Queue(id)));
        // The loop's clock: this turn's, a clock read saved per request.
        let now = ctx.now();
        let read_timeout = timeouts.read.or(self.shared.config.read_timeout);
        self.reqs.insert_with(id, || Req {
            method,
            target,
            headers,
            producer,
            producer_started: false,
            on_response: Some(on_response),
            conn: None,
            queued: true,
            head_sent: false,
            body_sent: false,
            head_delivered: false,
            body: BodyState::NotAttached,
            paused: false,
            end: None,
            retried: false,
            fresh_only: false,
            total_timer,
            rare: queue_timeout.map(|queue_timeout| {
                Box::new(Rare {
                    timers: Vec::new(),
                    queue_timer,
                    queue_timeout: Some(queue_timeout),
                })
            }),
            total_timeout,
            read_timeout,
            last_activity: now,
            marks: Marks {
                submitted: now,
                dispatched: None,
                sent: None,
                first_byte: None,
                reused: false,
            },
        });
        // Nobody waiting and a slot free: the request goes out at once, neither queued nor
        // looked for (the common case, which `pump` would reach the long way).
        if self.waiting == 0 && self.active_total < self.shared.config.max_active_total && room {
            // Just made: there, and free to reuse a connection.
            self.dispatch_found(ctx, id, host, false);
            self.forget_unused_hosts();
            return;
        }
        self.enqueue(id, host);
        self.pump(ctx);
    }

    /// The host-table entry of `target`'s pool key, made if there is none, and whether the
    /// host has room for one more active connection. The handle found last time is kept in
    /// the target and used while its entry lives: requests to a URL asked before then skip
    /// hashing the key (names, port, TLS settings, proxy).
    pub(super) fn host_of(&mut self, target: &Target) -> (Handle, bool) {
        let cap = self.shared.config.max_active_per_host;
        if let Some(at) = target.host_at.get()
            && let Some(host) = self.hosts.at_mut(at)
        {
            return (at, host.active < cap);
        }
        let at = self.hosts.find_or_insert(&target.key);
        target.host_at.set(Some(at));
        let room = self.hosts.at_mut(at).is_some_and(|h| h.active < cap);
        (at, room)
    }

    /// Queues request `id` on host entry `at` (from [`Self::host_of`], with nothing removed
    /// from the table since).
    pub(super) fn enqueue(&mut self, id: RequestId, at: Handle) {
        self.waiting_seq += 1;
        let seq = self.waiting_seq;
        let host = self
            .hosts
            .at_mut(at)
            .expect("the entry was made by host_of");
        host.waiting.push_back((seq, id));
        self.waiting += 1;
        if let Some(r) = self.reqs.get_mut(&id) {
            r.queued = true;
        }
    }

    /// Starts waiting requests while connection slots are free, oldest first.
    #[inline]
    pub(super) fn pump(&mut self, ctx: &mut Ctx) {
        if self.waiting > 0 {
            self.start_waiting(ctx);
        }
        self.forget_unused_hosts();
    }

    /// The work of [`Self::pump`] when requests wait.
    #[inline(never)]
    fn start_waiting(&mut self, ctx: &mut Ctx) {
        while self.waiting > 0 && self.active_total < self.shared.config.max_active_total {
            let cap = self.shared.config.max_active_per_host;
            let next = self
                .hosts
                .iter()
                .filter(|(_, h)| h.active < cap)
                .filter_map(|(at, h)| h.waiting.front().map(|&(seq, _)| (seq, at)))
                .min_by_key(|&(seq, _)| seq)
                .map(|(_, at)| at);
            let Some(at) = next else { break };
            let host = self.hosts.at_mut(at).expect("handle came from the table");
            let (_, id) = host.waiting.pop_front().expect("host had a waiter");
            self.waiting -= 1;
            // Should the request be gone, its host may be left with nothing.
            self.maybe_unused = true;
            self.dispatch(ctx, id, at);
        }
    }

    /// Forgets hosts with nothing left, so a client that meets many hosts over its life
    /// (redirects, crawls) keeps a table of the hosts in use, not of every host seen.
    /// Looked for only when something may have left a host unused ([`AgentState::maybe_unused`]),
    /// and then first: a pass over the few hosts costs less than rebuilding the table.
    #[inline]
    fn forget_unused_hosts(&mut self) {
        if !self.maybe_unused {
            return;
        }
        self.maybe_unused = false;
        if !self.hosts.values().all(HostPool::in_use) {
            self.hosts.retain(HostPool::in_use);
        }
    }

    /// Puts a request taken from the queue of host `at` on an idle connection or a new one.
    #[inline]
    pub(super) fn dispatch(&mut self, ctx: &mut Ctx, id: RequestId, at: Handle) {
        let Some(fresh_only) = self.reqs.get(&id).map(|r| r.fresh_only) else {
            return;
        };
        self.dispatch_found(ctx, id, at, fresh_only);
    }

    /// [`Self::dispatch`] for request `id`, known to be in the table, whose
    /// [`Req::fresh_only`] is `fresh_only`.
    fn dispatch_found(&mut self, ctx: &mut Ctx, id: RequestId, at: Handle, fresh_only: bool) {
        let Some(host) = self.hosts.at_mut(at) else {
            return;
        };
        host.active += 1;
        // The most recently idled connection, taken while the host is at hand.
        let last_idle = if fresh_only { None } else { host.idle.pop() };
        self.active_total += 1;
        // The connection first, so that the request is looked up once more, not twice.
        let idle = last_idle.and_then(|cid| self.take_idle(ctx, at, id, cid));
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        req.queued = false;
        req.marks.dispatched = Some(ctx.now());
        if let Some(rare) = req.rare.as_deref_mut()
            && let Some(t) = rare.queue_timer.take()
        {
            ctx.cancel_timer(t);
        }
        if let Some(cid) = idle {
            req.conn = Some(cid);
            req.marks.reused = true;
            self.stats.reused += 1;
            log::debug!("connection {cid}: reused for request {}", id.0);
            self.start_request(ctx, cid);
            return;
        }
        let route = &req.target.route;
        let options = ConnectOptions {
            connect_timeout: self.shared.config.connect_timeout,
            tls: route.tls.then(|| self.shared.config.tls.clone()),
            owner: self.me,
            attempt_delay: Some(self.shared.config.happy_eyeballs_delay),
            ip_family: self.shared.config.ip_family,
            addrs: route.addrs.clone(),
            // A socket has no host name: TLS over one checks the URL's.
            server_name: route
                .server_name
                .clone()
                .or_else(|| (route.tls && route.unix.is_some()).then(|| route.host.clone())),
        };
        let cid = match &route.unix {
            Some(path) => ctx.connect_unix_owned(path, options),
            None => ctx.connect_owned(&route.host, route.port, options),
        };
        log::debug!(
            "connection {cid}: connecting to {}{} for request {}",
            match &route.unix {
                Some(path) => format!("the socket {}", path.display()),
                None => format!("{}:{}", route.host, route.port),
            },
            if route.tunnel.is_some() {
                " (proxy tunnel)"
            } else {
                ""
            },
            id.0,
        );
        let tunnel = route.tunnel.clone();
        let opened_for = req.target.clone();
        req.conn = Some(cid);
        self.stats.connections_opened += 1;
        self.conns.insert(
            cid,
            Conn {
                opened_for,
                host: at,
                proto: ClientConnection::new(self.shared.config.limits.clone()),
                req: Some(id),
                served: 0,
                pending: Pending::default(),
                eof: None,
                timer: NO_CONN_TIMER,
                idle_until: NO_CONN_TIMER,
                tunnel: tunnel.map(|t| Box::new((t, TunnelPhase::Connecting))),
                switching: false,
                socks: None,
            },
        );
    }

    /// Takes the most recently idled connection of a host that is still open, for request
    /// `id`: `cid`, just taken from the host's idle list, or else the next there.
    fn take_idle(
        &mut self,
        ctx: &mut Ctx,
        at: Handle,
        id: RequestId,
        mut cid: ConnId,
    ) -> Option<ConnId> {
        loop {
            if let Some(conn) = self.conns.get_mut(&cid) {
                // Its timer stays armed (see `Conn::timer`).
                conn.idle_until = NO_CONN_TIMER;
                if ctx.is_open(cid) {
                    conn.req = Some(id);
                    return Some(cid);
                }
                self.conns.remove(&cid);
                self.conn_timer_dropped(ctx);
            }
            cid = self.hosts.at_mut(at)?.idle.pop()?;
        }
    }

    /// Closes every idle pooled connection.
    pub(super) fn close_idle(&mut self, ctx: &mut Ctx) {
        self.maybe_unused = true;
        let idle: Vec<ConnId> = self
            .hosts
            .values_mut()
            .flat_map(|h| h.idle.drain(..))
            .collect();
        for cid in idle {
            self.conns.remove(&cid);
            ctx.lose_connection(cid);
        }
        self.conn_timer_dropped(ctx);
    }

    /// Returns a connection whose response was read to its end to the idle pool.
    pub(super) fn release_conn(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        conn.req = None;
        // An idle connection keeps no buffer it does not need (the tables give theirs back too); a
        // small one goes to the agent's few spares for the next stash.
        if conn.pending.is_empty()
            && let Some(buf) = conn.pending.take_buffer()
            && buf.capacity() <= SPARE_STASH_MAX_BYTES
            && self.spare_stashes.len() < SPARE_STASHES
        {
            self.spare_stashes.push(buf);
        }
        let host = match self.hosts.at_or_get_mut(conn.host, &conn.opened_for.key) {
            Some(host) => host,
            None => self.hosts.entry(conn.opened_for.key.clone()).or_default(),
        };
        host.active -= 1;
        self.active_total -= 1;
        // The final head's `Keep-Alive: timeout`, read before the reset forgets it.
        let keep_alive_hint = conn.proto.keep_alive_timeout();
        let not_kept = if conn.proto.reset().is_err() {
            Some("its exchange does not allow reuse")
        } else if !ctx.is_open(cid) {
            Some("the server closed it")
        } else if host.idle.len() >= self.shared.config.max_idle_per_host {
            Some("the host has enough idle connections")
        } else {
            None
        };
        if let Some(why) = not_kept {
            log::debug!("connection {cid}: closing: {why}");
        }
        if not_kept.is_none() {
            host.idle.push(cid);
            let mut timeout = self.shared.config.idle_timeout;
            if let Some(hint) = keep_alive_hint {
                // Leave the server's own timer a margin so we are not the one caught sending
                // on a connection it is closing.
                timeout = timeout.min(hint.saturating_sub(Duration::from_millis(500)));
            }
            // Idle connections are read so that a close (or stray bytes) is seen at once.
            ctx.resume_reading(cid);
            self.set_idle_timer(ctx, cid, timeout);
        } else {
            self.maybe_unused = true;
            self.conns.remove(&cid);
            self.conn_timer_dropped(ctx);
            ctx.lose_connection(cid);
        }
        self.pump(ctx);
    }

    /// Closes a connection and frees its slot (`abort`: at once, dropping unsent bytes).
    pub(super) fn close_conn(&mut self, ctx: &mut Ctx, cid: ConnId, abort: bool) {
        self.drop_conn(ctx, cid, abort);
        self.pump(ctx);
    }

    pub(super) fn drop_conn(&mut self, ctx: &mut Ctx, cid: ConnId, abort: bool) {
        let Some(conn) = self.conns.remove(&cid) else {
            return;
        };
        self.conn_timer_dropped(ctx);
        self.maybe_unused = true;
        if let Some(host) = self.hosts.at_or_get_mut(conn.host, &conn.opened_for.key) {
            if conn.req.is_some() {
                host.active -= 1;
                self.active_total -= 1;
            } else {
                host.idle.retain(|&c| c != cid);
            }
        }
        if let Some(id) = conn.req
            && let Some(req) = self.reqs.get_mut(&id)
            && req.conn == Some(cid)
        {
            req.conn = None;
        }
        log::debug!(
            "connection {cid}: {}",
            if abort { "aborted" } else { "closing" }
        );
        if abort {
            ctx.abort_connection(cid);
        } else {
            ctx.lose_connection(cid);
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let queued = self.hosts.values().map(|h| h.waiting.len()).sum();
        debug_assert_eq!(queued, self.waiting, "the waiting count is out of step");
        debug_assert!(
            self.maybe_unused || self.hosts.values().all(HostPool::in_use),
            "a host was left unused unnoticed"
        );
        PoolStats {
            active: self.active_total,
            idle: self.hosts.values().map(|h| h.idle.len()).sum(),
            queued,
            requests: self.reqs.len(),
            hosts: self.hosts.len(),
            ..self.stats
        }
    }
}
