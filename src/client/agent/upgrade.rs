//! Protocol switching: a `101 Switching Protocols` response's connection waits, paused, for
//! the response's decision, then leaves the pool for the protocol given to
//! [`Response::upgrade`](crate::client::Response::upgrade) (or is closed).

use std::io;

use crate::client::msg::RequestId;
use crate::reactor::{ConnId, Ctx, Protocol, TransportError};

use super::state::AgentState;

impl AgentState {
    /// The `101` response of `id` ended (its head was handed out): keep `rest`, the bytes
    /// after the head, for the new protocol, and stop reading until it takes over.
    pub(super) fn hold_switched(&mut self, ctx: &mut Ctx, cid: ConnId, id: RequestId, rest: &[u8]) {
        self.stash(ctx, cid, rest);
        self.switched.insert(id, cid);
    }

    /// Hands the connection of `id`'s `101` response to `protocol`; the agent forgets it.
    pub(super) fn switch_protocols(
        &mut self,
        ctx: &mut Ctx,
        id: RequestId,
        protocol: Box<dyn Protocol>,
    ) {
        // The request ended with its head; only its entry was left for this decision.
        if let Some(req) = self.reqs.get_mut(&id) {
            req.cancel_timers(ctx);
            self.forget(id);
        }
        let cid = self.switched.remove(&id).unwrap_or(ConnId::STALE);
        let Some(mut conn) = self.conns.remove(&cid) else {
            return gone(ctx, cid, protocol);
        };
        self.conn_timer_dropped(ctx);
        if let Some(host) = self.hosts.get_mut(&conn.opened_for.key) {
            host.active -= 1;
            self.active_total -= 1;
            self.maybe_unused = true;
        }
        let unread = std::mem::take(&mut conn.pending).into_vec();
        if conn.eof.is_some() {
            // The reactor's connection already ended.
            ctx.abort_connection(cid);
            gone(ctx, cid, protocol);
        } else if let Err(protocol) = ctx.hand_over(cid, protocol, unread) {
            gone(ctx, cid, protocol);
        }
        // A slot is free (and the host may have nothing left).
        self.pump(ctx);
    }

    /// Closes the connections still waiting for a protocol (the agent shuts down); their
    /// entries stay, so that a later `upgrade` is told.
    pub(super) fn close_switched(&mut self, ctx: &mut Ctx) {
        let cids: Vec<ConnId> = self.switched.values().copied().collect();
        for cid in cids {
            self.close_conn(ctx, cid, true);
        }
    }
}

/// Tells `protocol` that the connection it was to take over is gone.
fn gone(ctx: &mut Ctx, cid: ConnId, mut protocol: Box<dyn Protocol>) {
    let error = TransportError::Io(
        io::ErrorKind::NotConnected,
        "the connection closed before the protocol switch".to_string(),
    );
    protocol.connection_failed(ctx, cid, error);
}
