//! The `CONNECT` tunnel through a proxy for an https request: asking the proxy for a tunnel,
//! reading its answer, and starting TLS with the origin inside it. A SOCKS5 proxy's tunnel
//! is set up in `socks.rs` instead, from the same two entry points.

use crate::client::error::Cause;
use crate::proto::{ClientConnection, Event, RequestBody, RequestHead};
use crate::reactor::{ConnId, Ctx};

use super::state::{AgentState, TunnelPhase};

impl AgentState {
    /// Asks the proxy for a tunnel to the request's origin.
    pub(super) fn send_connect(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.as_deref_mut() else {
            return;
        };
        if tunnel.socks.is_some() {
            return self.start_socks(ctx, cid);
        }
        *phase = TunnelPhase::AwaitingProxy;
        let head = RequestHead {
            method: "CONNECT",
            target: &tunnel.authority,
            host: &tunnel.authority,
            headers: &tunnel.headers,
        };
        self.scratch.clear();
        let sent = conn
            .proto
            .send_request(&head, RequestBody::None, &mut self.scratch);
        match (sent, conn.req) {
            (Ok(()), _) => ctx.write(cid, &self.scratch),
            (Err(e), Some(id)) => self.fail(ctx, id, Cause::InvalidRequest(e)),
            (Err(_), None) => self.close_conn(ctx, cid, true),
        }
    }

    /// Reads the proxy's answer to `CONNECT`: a 2xx starts TLS inside the tunnel; anything
    /// else fails the request. Bytes after the answer are dropped: nothing may arrive before
    /// our TLS hello, and treating such bytes as the origin's would let the proxy inject them.
    pub(super) fn process_proxy_answer(&mut self, ctx: &mut Ctx, cid: ConnId, input: &[u8]) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if conn
            .tunnel
            .as_deref()
            .is_some_and(|(t, _)| t.socks.is_some())
        {
            return self.process_socks(ctx, cid, input);
        }
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, true);
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.as_deref().cloned() else {
            return;
        };
        if phase != TunnelPhase::AwaitingProxy {
            return;
        }
        let mut pos = 0;
        loop {
            match conn.proto.receive(&input[pos..]) {
                Ok((_, Event::NeedMore)) => return,
                Ok((n, Event::Informational(_))) => pos += n,
                Ok((_, Event::Head(head))) if (200..300).contains(&head.status) => {
                    conn.tunnel = Some(Box::new((tunnel.clone(), TunnelPhase::Handshaking)));
                    conn.proto = ClientConnection::new(self.shared.config.limits.clone());
                    ctx.start_tls(cid, &self.shared.config.tls, &tunnel.server_name);
                    return;
                }
                Ok((_, Event::Head(head))) => {
                    let msg = format!(
                        "the proxy answered CONNECT with {} {}",
                        head.status, head.reason
                    );
                    return self.fail(ctx, id, Cause::Proxy(msg));
                }
                Ok(_) => return,
                Err(e) => {
                    let msg = format!("bad answer to CONNECT: {e}");
                    return self.fail(ctx, id, Cause::Proxy(msg));
                }
            }
        }
    }
}
