//! The response side of an exchange: parsing what the connection reads, handing the head to
//! the caller, feeding the body to its protocol with flow control (bytes are stashed while it
//! is paused or not yet attached), and the end of the connection.

use std::cell::Cell;

use crate::client::body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use crate::client::error::{Cause, Error, Phase};
use crate::client::msg::{NextBody, RequestId};
use crate::client::response::Response;
use crate::proto::{self, Event, Framing};
use crate::reactor::{ConnId, Ctx, Disconnect};

use super::state::{AgentState, BodyState, Req, TunnelPhase};

impl AgentState {
    /// Feeds bytes to the connection's request, delivering events until the input is used
    /// up, delivery pauses, or the request ends. Unprocessed bytes are kept in `pending`.
    pub(super) fn process(&mut self, ctx: &mut Ctx, cid: ConnId, input: &[u8]) {
        let me = self.me();
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(&cid) else {
                return;
            };
            // Checked in the loop's lookup, not one of its own: nothing in the loop sets up a
            // tunnel, so only the first round can find one.
            if conn.tunnel.is_some() {
                return self.process_proxy_answer(ctx, cid, &input[pos..]);
            }
            let Some(id) = conn.req else {
                // Bytes on a connection with no request: the server is out of step.
                self.close_conn(ctx, cid, true);
                return;
            };
            // Input left first: the request is not looked up for a turn that has none (the
            // end of a response read whole, every time).
            // No framing yet: no head was read for the request, so none was delivered either.
            let waiting = pos < input.len()
                && matches!(conn.proto.framing(), Some(f) if f != Framing::NoBody)
                && self.reqs.get(&id).is_some_and(|r| {
                    r.head_delivered && (r.paused || matches!(r.body, BodyState::NotAttached))
                });
            if waiting {
                // The body protocol is paused or not attached yet: keep the rest for later.
                self.stash(ctx, cid, &input[pos..]);
                return;
            }
            if self.spare_headers.capacity() == 0
                && let Some(spare) = self.shared.inbox.spare_headers()
            {
                self.spare_headers = spare;
            }
            let mut result = conn
                .proto
                .receive_reusing(&input[pos..], &mut self.spare_headers);
            // The event is used where the core left it, by reference: moved out, its 96 bytes
            // were copied twice on the way to the head's fields.
            let (n, event) = match &mut result {
                Ok((n, event)) => (*n, event),
                Err(_) => {
                    if let Err(e) = result {
                        self.fail(ctx, id, Cause::Protocol(e));
                    }
                    return;
                }
            };
            pos += n;
            match event {
                Event::NeedMore => {
                    debug_assert_eq!(pos, input.len());
                    return;
                }
                Event::Informational(_) => {
                    // A 100 Continue may have unblocked the body.
                    self.produce(ctx, id);
                }
                Event::Head(head) => {
                    // The level checked here: a call per response saved when not tracing.
                    if log::log_enabled!(log::Level::Trace) {
                        super::trace::response_head(cid, head);
                    }
                    let framing = conn.proto.framing();
                    // The core accepts a 101 only in answer to an upgrade request.
                    conn.switching = head.status == 101;
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    if head.status == 417
                        && !req.retried
                        && !req.producer_started
                        && req.producer.is_some()
                        && req.headers.has_token("expect", "100-continue")
                    {
                        // RFC 9110 section 10.1.1: the server refused the expectation before
                        // any body byte was sent; repeat the request once without it, on a
                        // new connection (this one still owes the 417's body).
                        req.headers.remove("expect");
                        self.requeue(ctx, id, cid);
                        return;
                    }
                    if !req.body_sent {
                        // An early final response: the body will not be sent.
                        if let Some(p) = req.producer.as_mut() {
                            p.stop_producing();
                        }
                    }
                    req.head_delivered = true;
                    // The loop's clock, like the other marks: when the poll saw the head arrive.
                    // A reused connection's setup is not this request's: not looked up.
                    let conn_timing = if req.marks.reused {
                        None
                    } else {
                        ctx.conn_timing(cid)
                    };
                    let timing = req.marks.timing(ctx.now(), conn_timing);
                    let length = match framing {
                        Some(Framing::NoBody) => Some(0),
                        Some(Framing::Length(n)) => Some(n),
                        _ => None,
                    };
                    match req.on_response.take() {
                        Some(cb) => {
                            self.shared.inbox.hold(id);
                            // Built in the call's argument: a `Response` is over 300 bytes,
                            // not built first and copied there.
                            cb(
                                ctx,
                                Ok(Response {
                                    version: head.version,
                                    code: head.status,
                                    phrase: std::mem::take(&mut head.reason),
                                    headers: std::mem::take(&mut head.headers),
                                    length,
                                    url: req.target.url.clone(),
                                    method: req.method.clone(),
                                    inbox: self.shared.inbox.clone(),
                                    timing,
                                    history: Vec::new(),
                                    filters: Vec::new(),
                                    handle: BodyHandle {
                                        agent: me,
                                        request: id,
                                    },
                                    delivered: Cell::new(false),
                                }),
                            );
                        }
                        // Nobody to hand it to: as a response dropped unread.
                        None => self
                            .shared
                            .inbox
                            .unread(id, std::mem::take(&mut head.headers)),
                    }
                    let (mut handed, mut unposted) = self.shared.inbox.release();
                    // Dropped unread inside the callback: its connection closes now.
                    self.sweep_abandoned(ctx);
                    let switching = head.status == 101;
                    if handed.is_none()
                        && unposted > 0
                        && !switching
                        && self.reqs.get(&id).is_some_and(awaits_body)
                    {
                        // Two or more handed over: the first, at the queue's front, attaches.
                        handed = self.shared.inbox.take_body_for(id);
                        unposted -= usize::from(handed.is_some());
                    }
                    if let Some(body) = handed
                        && let Some(body) =
                            self.attach_if_handed_over(ctx, cid, id, switching, body)
                    {
                        self.shared.inbox.requeue(id, body);
                        unposted += 1;
                    }
                    // Bodies handed over in the callback but not attached here (a second
                    // one, a 101's, or the request ended) go the way of a later one.
                    for _ in 0..unposted {
                        ctx.post(me, Box::new(NextBody));
                    }
                    // A response that ends with its head completes here, as the next round
                    // would, without that round's lookups and call into the core. What the
                    // next round would stash, hand over or refuse goes round the loop.
                    let Some(conn) = self.conns.get_mut(&cid) else {
                        return;
                    };
                    if conn.req == Some(id)
                        && !conn.switching
                        && (pos == input.len() || framing == Some(Framing::NoBody))
                        && let Some((keep_alive, close_delimited)) = conn.proto.receive_end()
                    {
                        let reusable = keep_alive && pos == input.len() && conn.eof.is_none();
                        let trailing = pos != input.len();
                        self.end_response(ctx, cid, id, close_delimited, reusable, trailing);
                        return;
                    }
                    // Else the loop goes on: the body goes to its protocol if it is attached,
                    // else waits in `pending`.
                }
                Event::Data(data) => {
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    let BodyState::Attached(body) = &mut req.body else {
                        // Cannot happen: the loop stops before receiving while unattached.
                        return;
                    };
                    let mut bctx = BodyCtx::new(ctx, me, id);
                    body.data_received(&mut bctx, data);
                    // The next chunks of a chunked body in this read go straight to the
                    // protocol, without a round of this loop (and its lookups) per chunk.
                    while !bctx.paused
                        && !bctx.stopped
                        && let Some((n, more)) = conn.proto.receive_data(&input[pos..])
                    {
                        pos += n;
                        body.data_received(&mut bctx, more);
                    }
                    let (paused, stopped) = (bctx.paused, bctx.stopped);
                    if stopped {
                        self.fail(ctx, id, Cause::Cancelled);
                        return;
                    }
                    if paused {
                        req.paused = true;
                        if pos == input.len() {
                            ctx.pause_reading(cid);
                        }
                    }
                    // The last bytes of a Content-Length body: the response ends here, as the
                    // next round would end it (which stashes instead while paused with input
                    // left).
                    if (pos == input.len() || !paused)
                        && let Some((keep_alive, close_delimited)) = conn.proto.receive_end()
                    {
                        let reusable = keep_alive && pos == input.len() && conn.eof.is_none();
                        let trailing = pos != input.len();
                        self.end_response(ctx, cid, id, close_delimited, reusable, trailing);
                        return;
                    }
                }
                Event::Trailers(trailers) => {
                    let Some(req) = self.reqs.get_mut(&id) else {
                        return;
                    };
                    if let BodyState::Attached(body) = &mut req.body {
                        let mut bctx = BodyCtx::new(ctx, me, id);
                        body.trailers_received(&mut bctx, trailers);
                        if bctx.stopped {
                            self.fail(ctx, id, Cause::Cancelled);
                            return;
                        }
                    }
                }
                Event::Complete { .. } if conn.switching => {
                    // The rest of the input belongs to the new protocol.
                    self.finish(ctx, id, BodyEnd::Done);
                    self.hold_switched(ctx, cid, id, &input[pos..]);
                    return;
                }
                &mut Event::Complete {
                    keep_alive,
                    close_delimited,
                } => {
                    let reusable = keep_alive && pos == input.len() && conn.eof.is_none();
                    let trailing = pos != input.len();
                    self.end_response(ctx, cid, id, close_delimited, reusable, trailing);
                    return;
                }
            }
        }
    }

    /// A response ended: its request finishes, and its connection goes back to the pool when
    /// `reusable` (the response allows it, no byte follows it, the peer has not closed) and
    /// the agent keeps connections, else closes (aborted when bytes follow the response).
    fn end_response(
        &mut self,
        ctx: &mut Ctx,
        cid: ConnId,
        id: RequestId,
        close_delimited: bool,
        reusable: bool,
        trailing: bool,
    ) {
        let end = if close_delimited {
            BodyEnd::PotentialDataLoss
        } else {
            BodyEnd::Done
        };
        let body_sent = self.finish(ctx, id, end);
        if reusable && body_sent && self.shared.config.persistent {
            self.release_conn(ctx, cid);
        } else {
            // Bytes after the response belong to no request: never reuse.
            self.close_conn(ctx, cid, trailing);
        }
    }

    /// Attaches the body protocol the response callback handed over (the usual case), so the
    /// body bytes read with the head go straight to it: no stash, no message round trip
    /// before the body flows. A protocol handed over later arrives through `deliver_body`, as
    /// does one for a `101` (whose connection `deliver_body` then closes).
    /// Gives `body` back when it is not attached. `switching`: the response is a `101`.
    fn attach_if_handed_over(
        &mut self,
        ctx: &mut Ctx,
        cid: ConnId,
        id: RequestId,
        switching: bool,
        mut body: Box<dyn BodyProtocol>,
    ) -> Option<Box<dyn BodyProtocol>> {
        if switching {
            return Some(body);
        }
        let agent = self.me();
        // A request still here still has its connection: the only way the callback can end
        // either is dropping the response unread, and the sweep forgets such a request
        // before closing its connection.
        let Some(req) = self.reqs.get_mut(&id).filter(|req| awaits_body(req)) else {
            return Some(body);
        };
        debug_assert!(self.conns.get(&cid).is_some());
        // `body_started` reaches the agent only through posted messages: the request is
        // still there, unchanged.
        body.body_started(ctx, BodyHandle { agent, request: id });
        // Known to be `NotAttached` (checked above): forgotten rather than dropped, which
        // saves a call to the state's drop glue.
        let before = std::mem::replace(&mut req.body, BodyState::Attached(body));
        debug_assert!(matches!(before, BodyState::NotAttached));
        std::mem::forget(before);
        None
    }

    /// Keeps unprocessed bytes and stops reading until delivery resumes.
    pub(super) fn stash(&mut self, ctx: &mut Ctx, cid: ConnId, rest: &[u8]) {
        if let Some(conn) = self.conns.get_mut(&cid) {
            if !conn.pending.has_buffer()
                && let Some(buf) = self.spare_stashes.pop()
            {
                conn.pending.lend(buf);
            }
            conn.pending.extend_from_slice(rest);
            ctx.pause_reading(cid);
        }
    }

    /// Delivers stashed bytes (and a stashed end of connection), then reads again.
    pub(super) fn resume_conn(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let pending = std::mem::take(&mut conn.pending);
        if !pending.is_empty() {
            self.process(ctx, cid, pending.as_slice());
        }
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let still_waiting = !conn.pending.is_empty()
            || conn
                .req
                .and_then(|id| self.reqs.get(&id))
                .is_some_and(|r| r.paused || matches!(r.body, BodyState::NotAttached));
        if conn.pending.is_empty() {
            let mut pending = pending;
            if let Some(mut buf) = pending.take_buffer() {
                buf.clear();
                conn.pending.lend(buf);
            }
        }
        if still_waiting {
            return;
        }
        if let Some(reason) = conn.eof.take() {
            self.handle_eof(ctx, cid, *reason);
        } else {
            ctx.resume_reading(cid);
        }
    }

    pub(super) fn handle_eof(&mut self, ctx: &mut Ctx, cid: ConnId, reason: Disconnect) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else {
            self.close_conn(ctx, cid, false);
            return;
        };
        if let Some(cause) = self.socks_lost(cid) {
            return self.fail(ctx, id, cause);
        }
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if let Some(&(_, phase)) = conn.tunnel.as_deref() {
            let cause = match reason {
                Disconnect::Failed(e) if phase == TunnelPhase::Handshaking => Cause::Transport(e),
                _ => {
                    Cause::Proxy("the proxy closed the connection before the tunnel was up".into())
                }
            };
            return self.fail(ctx, id, cause);
        }
        let started = conn.proto.response_started();
        let outcome = match reason {
            Disconnect::Failed(e) => Err(Cause::Transport(e)),
            Disconnect::PeerClosed
            | Disconnect::PeerClosedWithoutCloseNotify
            | Disconnect::ClosedLocally => match conn.proto.receive_eof() {
                Ok(Event::Complete {
                    close_delimited: true,
                    ..
                }) => match (conn.opened_for.key.https, &reason) {
                    (true, Disconnect::PeerClosed) => Ok(BodyEnd::Done),
                    // RFC 9112 section 9.8: over TLS a close-delimited body is complete only
                    // if a closure alert arrived. Without one, an attacker who injects a FIN
                    // can cut the body short, so the body fails as incomplete instead of
                    // ending as `PotentialDataLoss`, which callers take as success.
                    (true, Disconnect::PeerClosedWithoutCloseNotify) => {
                        Err(Cause::Protocol(proto::ProtocolError::Incomplete {
                            expected: None,
                            received: conn.proto.body_received(),
                        }))
                    }
                    _ => Ok(BodyEnd::PotentialDataLoss),
                },
                Ok(_) => Ok(BodyEnd::Done),
                Err(e) => Err(Cause::Protocol(e)),
            },
        };
        let served = conn.served;
        match outcome {
            Ok(end) => {
                self.finish(ctx, id, end);
                self.close_conn(ctx, cid, false);
            }
            Err(cause) => {
                if !started && served > 0 && self.retry(ctx, id, cid) {
                    return;
                }
                self.fail(ctx, id, cause);
            }
        }
    }

    pub(super) fn deliver_body(
        &mut self,
        ctx: &mut Ctx,
        id: RequestId,
        mut body: Box<dyn BodyProtocol>,
    ) {
        let handle = BodyHandle {
            agent: self.me(),
            request: id,
        };
        let attachable = self
            .reqs
            .get(&id)
            .is_some_and(|r| r.head_delivered && matches!(r.body, BodyState::NotAttached));
        if !attachable {
            let mut err = Error::new(Phase::ResponseFailed, Cause::BodyAlreadyDelivered);
            if let Some(req) = self.reqs.get(&id) {
                err = err.with_url(req.target.url.as_str());
            }
            body.connection_lost(ctx, BodyEnd::Failed(err));
            return;
        }
        body.body_started(ctx, handle);
        let req = self.reqs.get_mut(&id).expect("checked above");
        if let Some(end) = req.end.take() {
            self.forget(id);
            body.connection_lost(ctx, end.into());
            // A `101` read as an empty body: its connection has no other use.
            if let Some(cid) = self.switched.remove(&id) {
                self.close_conn(ctx, cid, true);
            }
            return;
        }
        req.body = BodyState::Attached(body);
        if let Some(cid) = req.conn
            && !req.paused
        {
            self.resume_conn(ctx, cid);
        }
    }

    /// Discards the bodies of responses dropped without their body being asked for, and
    /// closes their connections (a connection never goes back to the pool with unread bytes).
    /// Inline: called after every response callback and message, it mostly finds none.
    #[inline(always)]
    pub(super) fn sweep_abandoned(&mut self, ctx: &mut Ctx) {
        if self.shared.inbox.any_abandoned() {
            self.sweep_abandoned_now(ctx);
        }
    }

    fn sweep_abandoned_now(&mut self, ctx: &mut Ctx) {
        loop {
            let id = self.shared.inbox.next_abandoned();
            let Some(id) = id else { return };
            // The request may have failed (and been forgotten) meanwhile.
            let abandoned = self
                .reqs
                .get(&id)
                .is_some_and(|r| r.head_delivered && matches!(r.body, BodyState::NotAttached));
            if !abandoned {
                continue;
            }
            let req = self.reqs.get_mut(&id).expect("checked above");
            req.cancel_timers(ctx);
            let conn = req.conn;
            self.forget(id);
            if let Some(cid) = conn.or_else(|| self.switched.remove(&id)) {
                self.close_conn(ctx, cid, true);
            }
        }
    }
}

/// Whether `req` waits for its body protocol: its head delivered, its end not yet known.
#[inline]
fn awaits_body(req: &Req) -> bool {
    req.head_delivered && req.end.is_none() && matches!(req.body, BodyState::NotAttached)
}
