//! The SOCKS5 tunnel: once TCP to the proxy is up, the handshake of
//! [`proto::socks`](crate::proto::socks) runs on the connection (after resolving the origin
//! for `socks5://`); then TLS with the origin starts inside the tunnel (https) or the request
//! goes out (http). The connect timeout covers the handshake.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::client::error::{Cause, TimeoutKind};
use crate::client::msg::RequestId;
use crate::proto::socks::{SocksClient, SocksError, SocksEvent, SocksStage, SocksTarget};
use crate::reactor::{ConnId, Ctx, TransportError};

use super::state::{AgentState, TunnelPhase};
use super::timers::TimerTarget;

/// The resolver's answer for the origin of a `socks5://` connection, posted to the agent.
pub(super) struct SocksResolved {
    cid: ConnId,
    result: io::Result<Vec<SocketAddr>>,
}

impl AgentState {
    /// TCP to the proxy is up: resolves the origin if the client must, then greets.
    pub(super) fn start_socks(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, true);
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.as_deref_mut() else {
            return;
        };
        *phase = TunnelPhase::AwaitingProxy;
        let tunnel = tunnel.clone();
        let Some(socks) = tunnel.socks.as_ref() else {
            return;
        };
        self.arm_handshake_timer(ctx, id);
        let port = socks.port;
        if let Ok(ip) = socks.host.parse::<IpAddr>() {
            return self.greet_socks(ctx, cid, SocksTarget::Ip(ip, port));
        }
        if socks.remote_dns {
            return self.greet_socks(ctx, cid, SocksTarget::Domain(socks.host.clone(), port));
        }
        let me = self.me();
        let asked = ctx.resolve_then(&socks.host, port, move |ctx, result| {
            ctx.post(me, Box::new(SocksResolved { cid, result }));
        });
        if let Err(e) = asked {
            let msg = format!("cannot start the resolver thread: {e}");
            self.fail(ctx, id, Cause::Transport(TransportError::Dns(msg)));
        }
    }

    /// The origin's addresses for `socks5://`: the first one goes to the proxy.
    pub(super) fn socks_resolved(&mut self, ctx: &mut Ctx, resolved: SocksResolved) {
        let SocksResolved { cid, result } = resolved;
        // The connection may have failed or timed out meanwhile (its id is then stale).
        let Some(conn) = self.conns.get(&cid) else {
            return;
        };
        let (Some(id), Some((tunnel, _))) = (conn.req, conn.tunnel.as_deref()) else {
            return;
        };
        let Some(socks) = tunnel.socks.as_ref().filter(|_| conn.socks.is_none()) else {
            return;
        };
        let msg = match result {
            Ok(addrs) => match addrs.first() {
                Some(a) => {
                    let target = SocksTarget::Ip(a.ip(), socks.port);
                    return self.greet_socks(ctx, cid, target);
                }
                None => format!("{}: no addresses found", socks.host),
            },
            Err(e) => format!("{}: {e}", socks.host),
        };
        self.fail(ctx, id, Cause::Transport(TransportError::Dns(msg)));
    }

    /// Sends the method selection.
    fn greet_socks(&mut self, ctx: &mut Ctx, cid: ConnId, target: SocksTarget) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let (Some(id), Some((tunnel, _))) = (conn.req, conn.tunnel.as_deref()) else {
            return;
        };
        let Some(socks) = tunnel.socks.as_ref() else {
            return;
        };
        let credentials = socks
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_slice(), p.as_slice()));
        match SocksClient::new(target, credentials) {
            Ok(client) => {
                self.scratch.clear();
                client.start(&mut self.scratch);
                conn.socks = Some(Box::new(client));
                ctx.write(cid, &self.scratch);
            }
            Err(error) => {
                let proxy = socks.proxy.clone();
                self.fail(ctx, id, Cause::Socks { proxy, error });
            }
        }
    }

    /// Feeds the proxy's bytes to the handshake; once the tunnel is up, starts TLS inside it
    /// or sends the request. Bytes after the proxy's reply are dropped, as after a `CONNECT`
    /// answer: the origin speaks only after our first bytes, so any there are the proxy's.
    pub(super) fn process_socks(&mut self, ctx: &mut Ctx, cid: ConnId, input: &[u8]) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, true);
            return;
        };
        let Some((tunnel, phase)) = conn.tunnel.as_deref().cloned() else {
            return;
        };
        let Some(socks) = tunnel.socks.as_ref() else {
            return;
        };
        let proxy = || socks.proxy.clone();
        let Some(client) = conn.socks.as_mut() else {
            // Still resolving the origin: nothing was sent, so the proxy has nothing to say.
            let msg = format!("SOCKS5 proxy {} spoke before the client", socks.proxy);
            return self.fail(ctx, id, Cause::Proxy(msg));
        };
        if phase != TunnelPhase::AwaitingProxy {
            return;
        }
        self.scratch.clear();
        match client.receive(input, &mut self.scratch) {
            Err(error) => {
                let proxy = proxy();
                self.fail(ctx, id, Cause::Socks { proxy, error });
            }
            Ok((_, SocksEvent::NeedMore)) => {
                if !self.scratch.is_empty() {
                    ctx.write(cid, &self.scratch);
                }
            }
            Ok((_, SocksEvent::Connected)) => {
                conn.socks = None;
                if socks.tls {
                    conn.tunnel = Some(Box::new((tunnel.clone(), TunnelPhase::Handshaking)));
                    ctx.start_tls(cid, &self.shared.config.tls, &tunnel.server_name);
                } else {
                    conn.tunnel = None;
                    self.start_request(ctx, cid);
                }
            }
        }
    }

    /// The cause for a SOCKS connection lost before its tunnel was up, if it is one.
    pub(super) fn socks_lost(&mut self, cid: ConnId) -> Option<Cause> {
        let conn = self.conns.get_mut(&cid)?;
        let (tunnel, phase) = conn.tunnel.as_deref()?;
        let socks = tunnel.socks.as_ref()?;
        if *phase == TunnelPhase::Handshaking {
            return None;
        }
        let error = match conn.socks.as_mut() {
            Some(client) => client.receive_eof(),
            None => SocksError::Closed {
                stage: SocksStage::MethodSelection,
                received: 0,
            },
        };
        Some(Cause::Socks {
            proxy: socks.proxy.clone(),
            error,
        })
    }

    /// Arms what is left of the connect timeout, for the handshake (and TLS inside it).
    fn arm_handshake_timer(&mut self, ctx: &mut Ctx, id: RequestId) {
        let Some(limit) = self.shared.config.connect_timeout else {
            return;
        };
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        let since = req.marks.dispatched.unwrap_or(req.marks.submitted);
        let left = limit.saturating_sub(ctx.now().saturating_duration_since(since));
        let timer = self.set_timer(ctx, left, TimerTarget::Handshake(id));
        if let Some(req) = self.reqs.get_mut(&id) {
            req.rare().timers.push(timer);
        }
    }

    /// The connect timeout ran out: fails the request if its tunnel is not up yet.
    pub(super) fn handshake_timed_out(&mut self, ctx: &mut Ctx, id: RequestId) {
        let pending = self
            .reqs
            .get(&id)
            .and_then(|r| r.conn)
            .and_then(|cid| self.conns.get(&cid))
            .is_some_and(|c| c.tunnel.is_some());
        if pending {
            let cause = self.timeout(id, TimeoutKind::Connect);
            self.cancel(ctx, id, cause);
        }
    }
}
