//! The Agent: requests over pooled connections, one reactor handler owning them all.
//!
//! The agent's state lives inside the reactor as one handler. The [`Agent`] the user holds is
//! a copyable handle: every call posts a message, so nothing touches the state while the
//! reactor has it borrowed (for instance from inside a response callback). The one
//! exception keeps that rule: a request submitted during the agent's own read, with nothing
//! else queued, is taken by the agent when the read returns (see `Shared::held`).
//!
//! The files, each one concern:
//!
//! | File | What it holds |
//! |---|---|
//! | `mod.rs` | the [`Agent`] handle, its commands, and the reactor's entry points into the state |
//! | `config.rs` | [`AgentConfig`] |
//! | `shared.rs` | what the handles share with the state: the submitted requests, the URL cache |
//! | `route.rs` | routing a URL to a connection and a pool key; the per-URL cache |
//! | `state.rs` | the state's data: requests, connections, host table, [`PoolStats`] |
//! | `table.rs` | the tables of connections (a slab) and requests (an array by id slot) |
//! | `pool.rs` | admission, the per-host queues and caps, dispatch, idle connections |
//! | `exchange.rs` | sending a request and its body; ending it (done, failed, retried) |
//! | `receive.rs` | parsing the response, delivering its body with flow control |
//! | `tunnel.rs` | the `CONNECT` tunnel through a proxy |
//! | `upgrade.rs` | `101 Switching Protocols`: the connection leaves for a user protocol |
//! | `socks.rs` | the SOCKS5 tunnel through a proxy |
//! | `timers.rs` | total, queue, read, 100-continue and idle timers |
//!
//! The messages the body, producer and request handles post live in the client's leaf module
//! `msg.rs`, so those files depend on it and not on the agent.

mod config;
mod exchange;
mod pool;
mod receive;
mod route;
mod shared;
mod socks;
mod state;
mod table;
mod timers;
mod trace;
mod tunnel;
mod upgrade;

use std::any::Any;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::reactor::{ConnId, Ctx, Disconnect, HandlerId, Protocol, TransportError};

use super::error::{Cause, Error, Phase, TimeoutKind};
use super::msg::{Msg, NextBody, NextUpgrade, RequestId, pop_trimmed};
use super::request::{HttpAgent, Request, RequestHandle, ResponseCallback};

pub use config::AgentConfig;
pub use state::PoolStats;

use shared::{AGENTS, NewRequest, NextRequest, Parts, Shared};
use socks::SocksResolved;
use state::AgentState;
use timers::TimerTarget;

type StatsCallback = Box<dyn FnOnce(&mut Ctx, PoolStats)>;

/// What the [`Agent`] handle asks of the agent's state, apart from the per-request messages
/// of [`Msg`].
enum Command {
    Init(HandlerId),
    CloseIdle,
    Stats(StatsCallback),
    Shutdown,
}

/// An HTTP/1.1 client with a connection pool (Twisted's `Agent` with an `HTTPConnectionPool`).
///
/// `Agent` is a copyable handle to state owned by the reactor.
///
/// Requests go through [`HttpAgent::request`], the one interface every wrapper shares.
///
/// ```no_run
/// use weft::{Agent, AgentConfig, HttpAgent, Reactor, Request};
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// agent.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/"),
///     Box::new(|ctx, result| match result {
///         Ok(response) => {
///             println!("{} {}", response.code, response.phrase);
///             response.collect(ctx, 1 << 20, |ctx, full| {
///                 println!("{} bytes", full.map(|f| f.body.len()).unwrap_or(0));
///                 ctx.stop();
///             });
///         }
///         Err(e) => { eprintln!("{e}"); ctx.stop(); }
///     }));
/// reactor.run().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    handler: HandlerId,
    /// Finds the agent's [`Shared`] half in [`AGENTS`].
    id: u64,
}

static NEXT_AGENT: AtomicU64 = AtomicU64::new(1);

impl Agent {
    /// Creates an agent on this reactor.
    pub fn new(ctx: &mut Ctx, config: AgentConfig) -> Agent {
        let shared = Shared::new(config);
        let id = NEXT_AGENT.fetch_add(1, Ordering::Relaxed);
        AGENTS.with(|a| a.borrow_mut().insert(id, shared.clone()));
        let handler = ctx.add_handler(Box::new(AgentState::new(id, shared)));
        ctx.post(handler, Box::new(Command::Init(handler)));
        Agent { handler, id }
    }

    /// The agent's shared half; `None` once the agent's state is gone (its reactor was
    /// dropped), when a request would be dropped unanswered as a message to it would.
    #[inline]
    fn shared(&self) -> Option<Rc<Shared>> {
        AGENTS.with(|a| a.borrow_mut().get(self.id))
    }

    /// Resolves the request's URL (parsed once per URL; see `route::Targets`) and queues the
    /// request for the agent.
    ///
    /// The queued request is built from the caller's fields where it is stored (no
    /// intermediate `Parts`, whose two block copies cost ~30 instructions per request).
    #[inline]
    fn submit(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let Some(shared) = self.shared() else {
            return RequestHandle::for_agent(self.handler, RequestId::next_unused(), None);
        };
        let id = shared.ids.borrow_mut().take();
        let target = shared
            .targets
            .borrow_mut()
            .get(&shared.config, &request.url, request.unix_socket.as_ref())
            .map_err(|cause| {
                Box::new(Error::new(Phase::RequestNotSent, cause).with_url(&request.url))
            });
        shared.requests.borrow_mut().push_back(NewRequest {
            id,
            target,
            parts: Parts {
                method: request.method,
                headers: request.headers,
                producer: request.body,
                timeouts: request.timeouts,
            },
            on_response,
        });
        // Taken at the end of the agent's read when it runs now and nothing else is
        // queued (so no message is passed); otherwise the reactor says when.
        if shared.held.get() && ctx.nothing_queued() {
            shared.unposted.set(shared.unposted.get() + 1);
        } else {
            ctx.post(self.handler, Box::new(NextRequest));
        }
        RequestHandle::for_agent(self.handler, id, Some(&shared.handles))
    }

    /// Closes every idle pooled connection.
    pub fn close_idle(&self, ctx: &mut Ctx) {
        ctx.post(self.handler, Box::new(Command::CloseIdle));
    }

    /// Reports the pool's counts to `f` (on the reactor, after pending messages).
    pub fn stats(&self, ctx: &mut Ctx, f: impl FnOnce(&mut Ctx, PoolStats) + 'static) {
        ctx.post(self.handler, Box::new(Command::Stats(Box::new(f))));
    }

    /// Closes the agent: every connection is closed, every request in flight fails with
    /// [`Cause::AgentClosed`] (its response callback, or its body protocol's
    /// `connection_lost`, is called as for any failure), and later requests fail the same way
    /// at once.
    pub fn shutdown(&self, ctx: &mut Ctx) {
        ctx.post(self.handler, Box::new(Command::Shutdown));
    }
}

impl HttpAgent for Agent {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        self.submit(ctx, request, on_response)
    }

    fn default_total_timeout(&self) -> Option<Duration> {
        self.shared().and_then(|s| s.config.timeout)
    }
}

impl AgentState {
    /// What [`Protocol::data_received`] does, apart from taking the requests submitted
    /// meanwhile.
    #[inline]
    fn received(&mut self, ctx: &mut Ctx, cid: ConnId, data: &[u8]) {
        self.sweep_abandoned(ctx);
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if let Some(req) = conn.req.and_then(|id| self.reqs.get_mut(&id)) {
            // The loop's clock was read when the poll saw these bytes arrive (never before the
            // request went out, for a connection reused within that same turn).
            let now = req.marks.sent.map_or(ctx.now(), |sent| sent.max(ctx.now()));
            req.marks.first_byte.get_or_insert(now);
            req.last_activity = now;
        }
        if !conn.pending.is_empty() {
            // Reading was paused after these arrived: keep order.
            conn.pending.extend_from_slice(data);
            ctx.pause_reading(cid);
            return;
        }
        self.process(ctx, cid, data);
    }

    /// Takes the requests submitted during a read without a message (see [`Shared::held`]),
    /// as their messages would have: after the responses dropped unread are seen to.
    fn take_unposted(&mut self, ctx: &mut Ctx) {
        let n = self.shared.unposted.replace(0);
        self.sweep_abandoned(ctx);
        for _ in 0..n {
            let new = pop_trimmed(&mut self.shared.requests.borrow_mut());
            if let Some(new) = new {
                self.take_request(ctx, new);
            }
        }
    }

    /// Carries out a command of the [`Agent`] handle.
    fn command(&mut self, ctx: &mut Ctx, command: Command) {
        match command {
            Command::Init(me) => self.me = Some(me),
            Command::Shutdown => {
                self.closed = true;
                let slots = self.reqs.slots();
                let mut ids: Vec<RequestId> = slots
                    .map(|(slot, generation)| RequestId::at(slot as u32, generation))
                    .collect();
                // In the order they were submitted.
                ids.sort_unstable_by_key(|id| id.0);
                for id in ids {
                    // A failure kept for a body protocol that has not attached stays as is.
                    if self.reqs.get(&id).is_some_and(|r| r.end.is_none()) {
                        self.fail(ctx, id, Cause::AgentClosed);
                    }
                }
                self.close_idle(ctx);
                self.close_switched(ctx);
            }
            Command::CloseIdle => self.close_idle(ctx),
            Command::Stats(f) => {
                let stats = self.stats();
                f(ctx, stats);
            }
        }
    }
}

impl Protocol for AgentState {
    fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if self.conns.get(&conn).is_some_and(|c| c.tunnel.is_some()) {
            self.send_connect(ctx, conn);
        } else {
            self.start_request(ctx, conn);
        }
    }

    fn tls_started(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tunnel = None;
            self.start_request(ctx, conn);
        }
    }

    fn data_received(&mut self, ctx: &mut Ctx, cid: ConnId, data: &[u8]) {
        self.shared.held.set(true);
        self.received(ctx, cid, data);
        self.shared.held.set(false);
        if self.shared.unposted.get() > 0 {
            self.take_unposted(ctx);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, cid: ConnId, reason: Disconnect) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if !conn.pending.is_empty() {
            conn.eof = Some(Box::new(reason));
            return;
        }
        self.handle_eof(ctx, cid, reason);
    }

    fn connection_failed(&mut self, ctx: &mut Ctx, cid: ConnId, error: TransportError) {
        let Some(id) = self.conns.get(&cid).and_then(|c| c.req) else {
            self.drop_conn(ctx, cid, true);
            return;
        };
        let cause = match error {
            TransportError::ConnectTimeout => self.timeout(id, TimeoutKind::Connect),
            e => Cause::Transport(e),
        };
        self.fail(ctx, id, cause);
    }

    fn write_drained(&mut self, ctx: &mut Ctx, cid: ConnId) {
        if let Some(id) = self.conns.get(&cid).and_then(|c| c.req) {
            if let Some(req) = self.reqs.get_mut(&id) {
                req.last_activity = ctx.now();
            }
            self.produce(ctx, id);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Ctx, tag: u64) {
        if let Some(target) = TimerTarget::from_tag(tag) {
            self.timer(ctx, target);
        }
    }

    fn message(&mut self, ctx: &mut Ctx, msg: Box<dyn Any>) {
        // Responses dropped unread since the last look (outside any callback of the agent's,
        // e.g. by a future): their connections close before a cancel or a count sees them.
        self.sweep_abandoned(ctx);
        let msg = match msg.downcast::<Msg>() {
            Ok(msg) => msg,
            Err(other) => {
                if other.is::<NextRequest>() {
                    let new = pop_trimmed(&mut self.shared.requests.borrow_mut());
                    if let Some(new) = new {
                        self.take_request(ctx, new);
                    }
                } else if other.is::<NextBody>() {
                    let next = self.shared.inbox.next_body();
                    if let Some((id, body)) = next {
                        self.deliver_body(ctx, id, body);
                    }
                } else if other.is::<NextUpgrade>() {
                    let next = self.shared.inbox.next_upgrade();
                    if let Some((id, protocol)) = next {
                        self.switch_protocols(ctx, id, protocol);
                    }
                } else if other.is::<SocksResolved>() {
                    if let Ok(resolved) = other.downcast::<SocksResolved>() {
                        self.socks_resolved(ctx, *resolved);
                    }
                } else if let Ok(command) = other.downcast::<Command>() {
                    self.command(ctx, *command);
                }
                return;
            }
        };
        match *msg {
            Msg::Cancel(id) => self.cancel(ctx, id, Cause::Cancelled),
            Msg::PauseBody(id) => {
                if let Some(req) = self.reqs.get_mut(&id) {
                    req.paused = true;
                    if let Some(cid) = req.conn {
                        ctx.pause_reading(cid);
                    }
                }
            }
            Msg::ResumeBody(id) => {
                if let Some(req) = self.reqs.get_mut(&id)
                    && req.paused
                {
                    req.paused = false;
                    if let Some(cid) = req.conn {
                        self.resume_conn(ctx, cid);
                    }
                }
            }
            Msg::ResumeProducer(id) => self.produce(ctx, id),
        }
    }
}
