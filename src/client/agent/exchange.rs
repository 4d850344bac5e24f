//! One exchange on a connection, from the agent's side: writing the request head, letting the
//! producer send the body, and ending the request (done, failed, cancelled, or retried once on
//! a fresh connection).

use crate::client::body::BodyEnd;
use crate::client::error::{Cause, Error, Phase};
use crate::client::msg::{Msg, RequestId};
use crate::client::producer::{BodySink, Produce, ProducerHandle};
use crate::proto::{Encoded, EncodedFields, RequestBody, RequestHead};
use crate::reactor::{ConnId, Ctx};

use super::route::{Added, added_fields};
use super::state::{AgentState, BodyState, Ended};
use super::timers::TimerTarget;

const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

impl AgentState {
    pub(super) fn start_request(&mut self, ctx: &mut Ctx, cid: ConnId) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let Some(id) = conn.req else { return };
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let body = match &req.producer {
            Some(p) => match p.length() {
                Some(n) => RequestBody::Length(n),
                None => RequestBody::Chunked,
            },
            // The methods that define a meaning for content (compared as bytes: inline).
            None if matches!(req.method.as_bytes(), b"POST" | b"PUT" | b"PATCH") => {
                RequestBody::Length(0)
            }
            None => RequestBody::None,
        };
        // The pieces the target keeps encoded: the line (used unless the caller gives a Host)
        // and, for a request without fields of its own, the fields the agent adds.
        let target = &req.target;
        let own_fields = !req.headers.is_empty();
        // The agent adds `Connection: close` exactly when it keeps no connection.
        let close = !self.shared.config.persistent;
        // Checked when the request was admitted (`route::prepare`: the method, target, Host
        // and the caller's fields, and the User-Agent added; the other added fields are the
        // agent's own), so only the connection's state is checked here. The head is encoded
        // straight into the connection's write buffer.
        let proto = &mut conn.proto;
        let mut send = |out: &mut Vec<u8>| {
            let start = out.len();
            let sent = if !own_fields && body == RequestBody::None {
                // The commonest head: the method and one piece the target keeps (with the
                // method, for a `GET`).
                let (first, rest) = match &*req.method {
                    "GET" => (&*target.get_whole, &[][..]),
                    method => (method.as_bytes(), target.whole()),
                };
                proto.send_whole_request(&req.method, first, rest, close, out)
            } else {
                let added =
                    own_fields.then(|| added_fields(&self.shared.config, target, &req.headers));
                let added = added.as_ref().map_or(&[][..], Added::as_slice);
                let encoded = Encoded {
                    line: Some(&target.line),
                    added: (!own_fields).then_some(EncodedFields {
                        lines: &target.added_lines,
                        close,
                    }),
                    whole: (!own_fields).then_some(target.whole()),
                };
                let head = RequestHead {
                    method: &req.method,
                    target: &target.target,
                    host: &target.host_header,
                    headers: &req.headers,
                };
                proto.send_validated_request(&head, added, encoded, body, out)
            };
            // Looked at here: the trace's formatting stays out of this path.
            if sent.is_ok() && log::log_enabled!(log::Level::Trace) {
                super::trace::request_head(cid, &out[start..]);
            }
            sent
        };
        // A closed or closing connection takes no bytes; the core still sees the request.
        let sent = match ctx.write_in_place(cid, &mut send) {
            Some(sent) => sent,
            None => {
                self.scratch.clear();
                send(&mut self.scratch)
            }
        };
        if let Err(e) = sent {
            self.fail(ctx, id, Cause::InvalidRequest(e));
            return;
        }
        req.head_sent = true;
        // The loop's clock, read once per turn: no clock read per request.
        let now = ctx.now();
        req.marks.sent = Some(now);
        req.last_activity = now;
        // Without a producer the request is complete with its head. Settled before the
        // timer is armed, so that the common case looks neither entry up again.
        let body_done = req.producer.is_none();
        if body_done {
            if body == RequestBody::Length(0) {
                let _ = conn.proto.finish_body(&mut self.scratch);
            }
            req.body_sent = true;
        }
        if let Some(t) = req.read_timeout {
            // Checked on the connection at hand: its armed timer mostly fires earlier and
            // is kept (it re-checks then), so most requests need no lookup to arm it.
            let at = self.conn_timers.after(now, t);
            if conn.timer > at {
                self.arm_conn_timer_at(ctx, cid, at);
            }
        }
        if body_done {
            return;
        }
        let Some(conn) = self.conns.get(&cid) else {
            return;
        };
        if conn.proto.may_send_body() {
            self.produce(ctx, id);
        } else {
            let t = self.shared.config.continue_timeout;
            let timer = self.set_timer(ctx, t, TimerTarget::Continue(id));
            if let Some(req) = self.reqs.get_mut(&id) {
                req.rare().timers.push(timer);
            }
        }
    }

    /// Lets the producer write while the socket buffer has room.
    pub(super) fn produce(&mut self, ctx: &mut Ctx, id: RequestId) {
        let me = self.me();
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let Some(cid) = req.conn else { return };
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if req.body_sent || !conn.proto.may_send_body() {
            return;
        }
        let Some(producer) = req.producer.as_mut() else {
            return;
        };
        // A producer that keeps answering `More` without filling the buffer gets the loop
        // back after a few rounds: the rest is picked up from a posted message.
        for _ in 0..16 {
            if ctx.write_full(cid) {
                producer.pause_producing();
                return;
            }
            let mut sink = BodySink {
                ctx,
                conn: cid,
                proto: &mut conn.proto,
                scratch: &mut self.scratch,
                error: None,
                written: 0,
                handle: ProducerHandle {
                    agent: me,
                    request: id,
                },
            };
            let outcome = if req.producer_started {
                producer.resume_producing(&mut sink)
            } else {
                req.producer_started = true;
                producer.start_producing(&mut sink)
            };
            if let Some(msg) = sink.error.take() {
                self.fail(ctx, id, Cause::Producer(msg));
                return;
            }
            match outcome {
                Produce::More => continue,
                Produce::Wait => return,
                Produce::Failed(msg) => {
                    self.fail(ctx, id, Cause::Producer(msg));
                    return;
                }
                Produce::Done => {
                    self.scratch.clear();
                    if let Err(e) = conn.proto.finish_body(&mut self.scratch) {
                        self.fail(ctx, id, Cause::Producer(e.to_string()));
                        return;
                    }
                    ctx.write(cid, &self.scratch);
                    req.body_sent = true;
                    return;
                }
            }
        }
        ctx.post(me, Box::new(Msg::ResumeProducer(id)));
    }

    /// Retries a request that failed on a reused connection before any response byte, when
    /// it is idempotent and its body can be replayed. Returns whether it was retried.
    pub(super) fn retry(&mut self, ctx: &mut Ctx, id: RequestId, cid: ConnId) -> bool {
        let Some(req) = self.reqs.get_mut(&id) else {
            return false;
        };
        if req.retried || !IDEMPOTENT.contains(&&*req.method) {
            return false;
        }
        if let Some(p) = req.producer.as_mut()
            && !p.rewind()
        {
            return false;
        }
        self.requeue(ctx, id, cid);
        true
    }

    /// Sends a request again, once, on a fresh connection, ahead of the waiting ones; closes
    /// the connection it was on.
    pub(super) fn requeue(&mut self, ctx: &mut Ctx, id: RequestId, cid: ConnId) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        // The first attempt's read timer goes with its connection (the retry arms its own).
        req.retried = true;
        req.fresh_only = true;
        req.head_sent = false;
        req.body_sent = false;
        req.producer_started = false;
        req.conn = None;
        let key = req.target.key.clone();
        self.drop_conn(ctx, cid, true);
        // A retry goes to the front of the line: it was already admitted once.
        self.hosts
            .entry(key)
            .or_default()
            .waiting
            .push_front((0, id));
        self.waiting += 1;
        self.pump(ctx);
    }

    /// The body ended normally: tell the body protocol, or remember it until one attaches.
    /// Returns whether the request had sent its body whole (false when it is not there): read
    /// here, in the lookup this needs anyway.
    pub(super) fn finish(&mut self, ctx: &mut Ctx, id: RequestId, end: BodyEnd) -> bool {
        let Some(req) = self.reqs.get_mut(&id) else {
            return false;
        };
        let body_sent = req.body_sent;
        if let Some(cid) = req.conn.take()
            && let Some(conn) = self.conns.get_mut(&cid)
        {
            conn.served += 1;
        }
        req.cancel_timers(ctx);
        match std::mem::replace(&mut req.body, BodyState::NotAttached) {
            BodyState::Attached(mut body) => {
                self.forget(id);
                body.connection_lost(ctx, end);
            }
            BodyState::NotAttached => req.end = Some(end.into()),
        }
        body_sent
    }

    /// The request failed: report the error where it belongs and close its connection.
    pub(super) fn fail(&mut self, ctx: &mut Ctx, id: RequestId, cause: Cause) {
        // Taken out while it is failed; forgotten (its id given back) unless kept below.
        let Some(mut req) = self.reqs.remove(&id) else {
            return;
        };
        req.cancel_timers(ctx);
        if let Some(p) = req.producer.as_mut()
            && !req.body_sent
        {
            p.stop_producing();
        }
        if req.queued
            && let Some(host) = self.hosts.get_mut(&req.target.key)
        {
            let before = host.waiting.len();
            host.waiting.retain(|&(_, r)| r != id);
            self.waiting -= before - host.waiting.len();
            self.maybe_unused = true;
        }
        if let Some(cid) = req.conn.take() {
            self.close_conn(ctx, cid, true);
        }
        let phase = if req.head_delivered {
            Phase::ResponseFailed
        } else if !req.head_sent {
            Phase::RequestNotSent
        } else if !req.body_sent {
            Phase::RequestTransmissionFailed
        } else {
            Phase::ResponseNeverReceived
        };
        // A SOCKS failure names its proxy already.
        let names_proxy = matches!(cause, Cause::Socks { .. });
        let mut error = Error::new(phase, cause).with_url(req.target.url.as_str());
        if let Some((host, port)) = &req.target.key.proxy
            && !names_proxy
        {
            error = error.with_proxy(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            });
        }
        if let Some(cb) = req.on_response.take() {
            self.shared.ids.borrow_mut().give_back(id);
            cb(ctx, Err(error));
            return;
        }
        match req.body {
            BodyState::Attached(mut body) => {
                self.shared.ids.borrow_mut().give_back(id);
                body.connection_lost(ctx, BodyEnd::Failed(error));
            }
            BodyState::NotAttached => {
                // Kept until a body protocol attaches (or the response is dropped).
                req.end = Some(Ended::Failed(Box::new(error)));
                req.body = BodyState::NotAttached;
                self.reqs.insert(id, req);
            }
        }
    }

    pub(super) fn cancel(&mut self, ctx: &mut Ctx, id: RequestId, cause: Cause) {
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        if req.end.is_some() {
            // The response already ended; only its body is waiting to be picked up.
            return;
        }
        self.fail(ctx, id, cause);
    }
}
