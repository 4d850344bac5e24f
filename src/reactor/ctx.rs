//! The public methods of [`Ctx`]: what handlers (and code outside callbacks) may ask of the
//! reactor. They record intent or touch buffers; none calls user code.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpListener;

use super::conn::{Conn, ConnTiming, End, State};
use super::dns::{Resolver, SharedResolver};
use super::error::{Disconnect, TransportError};
use super::ids::{ConnId, HandlerId, TimerId, listener_token};
use super::timers::TimerKind;
use super::transport::discard_unread;
use super::{
    ConnectOptions, Connector, Ctx, Deferred, HIGH_WATER, HandlerSlot, Listener, Protocol,
};
use crate::tls::{TlsConnector, TlsStage};

/// The least length at which a handler's list of timers is pruned.
const MIN_PRUNE: usize = 32;

impl Ctx {
    /// The time of the current loop iteration (read once per turn).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Ask [`Reactor::run`](super::Reactor::run) to return after the current iteration.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Registers a handler; it lives until [`Ctx::remove_handler`] (or, for a protocol passed
    /// to `connect_tcp`/`listen_tcp`, until its connection is lost).
    pub fn add_handler(&mut self, handler: Box<dyn Protocol>) -> HandlerId {
        let generation = self.next_generation();
        self.handlers.insert(HandlerSlot {
            generation,
            proto: Some(handler),
            timers: Vec::new(),
            prune_at: MIN_PRUNE,
        })
    }

    /// Drops a handler after the current callback returns. Its connections are aborted and its
    /// timers cancelled; pending messages are discarded.
    ///
    /// The handler is not called again: its connections end without `connection_lost`.
    /// A stale id is a no-op.
    pub fn remove_handler(&mut self, id: HandlerId) {
        let Some(slot) = self.handlers.remove(id) else {
            return;
        };
        for timer in &slot.timers {
            self.timers.cancel(*timer);
        }
        let owned: Vec<ConnId> = self
            .conns
            .ids()
            .filter(|(_, c)| c.owner == id)
            .map(|(conn, _)| conn)
            .collect();
        for conn in owned {
            self.finish(conn, End::Lost(Disconnect::ClosedLocally));
        }
        self.messages.retain(|(to, _)| *to != id);
        // If the handler's own callback is running, its box is dropped when it returns.
        drop(slot);
    }

    /// Delivers `msg` to the handler's [`Protocol::message`] after the current callback returns.
    /// A message to a removed handler is dropped.
    pub fn post(&mut self, to: HandlerId, msg: Box<dyn Any>) {
        if self.handlers.contains(to) {
            self.messages.push_back((to, msg));
        }
    }

    /// Whether nothing posted or recorded waits to be delivered: a handler may then act on
    /// something at the end of its own callback rather than post a message for it, and no
    /// other message is passed.
    pub(crate) fn nothing_queued(&self) -> bool {
        self.messages.is_empty() && self.deferred.is_empty()
    }

    /// Runs `f` once after `delay`.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut Ctx) + 'static) -> TimerId {
        TimerId(
            self.timers
                .insert(self.now + delay, TimerKind::Call(Box::new(f))),
        )
    }

    /// Calls `handler`'s [`Protocol::timer_fired`] with `tag` after `delay` (no allocation).
    ///
    /// With a stale handler nothing is scheduled (the returned id is never pending).
    pub fn set_timer(&mut self, delay: Duration, handler: HandlerId, tag: u64) -> TimerId {
        if !self.handlers.contains(handler) {
            return TimerId(u64::MAX);
        }
        let seq = self
            .timers
            .insert(self.now + delay, TimerKind::Handler(handler, tag));
        let Some(slot) = self.handlers.get_mut(handler) else {
            return TimerId(u64::MAX);
        };
        if slot.timers.len() >= slot.prune_at {
            let timers = &self.timers;
            slot.timers.retain(|t| timers.contains(*t));
            slot.prune_at = (2 * slot.timers.len()).max(MIN_PRUNE);
        }
        slot.timers.push(seq);
        TimerId(seq)
    }

    /// Cancels a timer; returns whether it was still pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id.0)
    }

    /// Opens a client connection to `host:port` with `protocol` as its own handler (Twisted's
    /// `connectTCP`). Names are resolved on a helper thread; the addresses are raced as RFC
    /// 8305 (Happy Eyeballs v2) says: interleaved by family, a new attempt every
    /// [`ConnectOptions::attempt_delay`] (or at once when one fails), the first to connect
    /// wins and the others are closed. The connect timeout covers the whole race; when every
    /// address fails, the error is the last one's, wrapped in
    /// [`TransportError::AllAttemptsFailed`] when there were several.
    ///
    /// `host` may be a name, an IP literal, or a bracketed IPv6 literal (`[::1]`). The handler
    /// is removed after the connection ends (or fails). If `options.owner` is set, that handler
    /// receives the events instead, and `protocol` is still removed with the connection.
    pub fn connect_tcp(
        &mut self,
        host: &str,
        port: u16,
        options: ConnectOptions,
        protocol: Box<dyn Protocol>,
    ) -> ConnId {
        let handler = self.add_handler(protocol);
        let owner = match options.owner {
            Some(owner) if self.handlers.contains(owner) => owner,
            _ => handler,
        };
        self.connect_inner(host, port, options, owner, Some(handler))
    }

    /// Opens a client connection whose events go to an existing handler, `options.owner`
    /// (which must be set).
    ///
    /// Without a live owner nothing is opened and the returned id is stale from the start.
    pub fn connect_owned(&mut self, host: &str, port: u16, options: ConnectOptions) -> ConnId {
        match options.owner {
            Some(owner) if self.handlers.contains(owner) => {
                self.connect_inner(host, port, options, owner, None)
            }
            _ => ConnId {
                index: u32::MAX,
                generation: 0,
            },
        }
    }

    /// Opens a client connection to the Unix domain socket at `path` with `protocol` as its
    /// own handler, as [`Ctx::connect_tcp`] does for TCP: the same lifecycle, connect
    /// timeout, write and read path, and stats.
    ///
    /// With `options.tls`, TLS runs over the socket and checks the certificate against
    /// `options.server_name`, which must then be set (a socket has no host name; without it
    /// the connect fails with `Tls(InvalidServerName)`). A failed connect reaches
    /// `connection_failed` from the loop as [`TransportError::UnixSocket`], naming the path:
    /// nothing there, permission denied, not a socket, nobody listening, or a full listen
    /// queue.
    ///
    /// ```
    /// # use weft::reactor::{ConnectOptions, Ctx, ConnId, Protocol, Reactor, TransportError};
    /// # use weft::reactor::UnixSocketError;
    /// struct Client;
    /// impl Protocol for Client {
    ///     fn data_received(&mut self, _: &mut Ctx, _: ConnId, _: &[u8]) {}
    ///     fn connection_failed(&mut self, ctx: &mut Ctx, _: ConnId, e: TransportError) {
    ///         assert!(matches!(
    ///             e,
    ///             TransportError::UnixSocket { error: UnixSocketError::NotFound, .. }
    ///         ));
    ///         ctx.stop();
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let path = std::path::Path::new("/nonexistent/weft.sock");
    /// reactor
    ///     .ctx()
    ///     .connect_unix(path, ConnectOptions::default(), Box::new(Client));
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_unix(
        &mut self,
        path: &Path,
        options: ConnectOptions,
        protocol: Box<dyn Protocol>,
    ) -> ConnId {
        let handler = self.add_handler(protocol);
        let owner = match options.owner {
            Some(owner) if self.handlers.contains(owner) => owner,
            _ => handler,
        };
        self.connect_unix_inner(path, options, owner, Some(handler))
    }

    /// Opens a connection to the Unix socket at `path` whose events go to an existing
    /// handler, `options.owner` (which must be set), as [`Ctx::connect_owned`] does for TCP.
    ///
    /// Without a live owner nothing is opened and the returned id is stale from the start.
    pub fn connect_unix_owned(&mut self, path: &Path, options: ConnectOptions) -> ConnId {
        match options.owner {
            Some(owner) if self.handlers.contains(owner) => {
                self.connect_unix_inner(path, options, owner, None)
            }
            _ => ConnId {
                index: u32::MAX,
                generation: 0,
            },
        }
    }

    /// Listens on `addr`; each accepted connection gets a protocol from `factory`. Returns the
    /// bound address (useful with port 0).
    ///
    /// Each accepted connection's `connection_made` is delivered from the loop, never from
    /// inside this call. The listener lives as long as the reactor.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl FnMut() -> Box<dyn Protocol> + 'static,
    ) -> io::Result<SocketAddr> {
        let mut sock = TcpListener::bind(addr)?;
        let local = sock.local_addr()?;
        let generation = self.next_generation();
        let id = self.listeners.next_id(generation);
        self.registry
            .register(&mut sock, listener_token(id), Interest::READABLE)?;
        self.listeners.insert(Listener {
            generation,
            sock,
            factory: Box::new(factory),
        });
        Ok(local)
    }

    /// Appends bytes to the connection's write buffer; they are flushed after the callback.
    /// Writing to a closed or closing connection is a no-op.
    ///
    /// Bytes written before the connection is made are sent once it is.
    pub fn write(&mut self, conn: ConnId, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.write_in_place(conn, |buf| buf.extend_from_slice(data));
    }

    /// [`Ctx::write`] for bytes encoded in place: `encode` appends them to the connection's
    /// write buffer itself, which saves encoding into a buffer of one's own and copying it
    /// here. Returns `None`, without calling `encode`, where a write would be a no-op (a
    /// closed or closing connection).
    pub(crate) fn write_in_place<R>(
        &mut self,
        conn: ConnId,
        encode: impl FnOnce(&mut Vec<u8>) -> R,
    ) -> Option<R> {
        let c = self.conns.get_mut(conn)?;
        if c.closing {
            return None;
        }
        let spares = &mut self.spare_wbufs;
        let wbuf = c
            .wbuf
            .get_or_insert_with(|| spares.pop().unwrap_or_default());
        let before = wbuf.bytes.len();
        let r = encode(&mut wbuf.bytes);
        if wbuf.bytes.len() == before {
            // Nothing written: a buffer lent for it goes back rather than stay idle here.
            if let Some(empty) = c.wbuf.take_if(|w| w.bytes.is_empty()) {
                super::transport::give_back(empty, spares);
            }
            return Some(r);
        }
        // A request went out: its answer's head comes with the next read, kept small.
        c.wide_reads = false;
        if c.pending() > HIGH_WATER {
            c.above_high = true;
        }
        // Queued for a flush as `mark_dirty` does, on the slot at hand.
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
        Some(r)
    }

    /// Bytes accepted by [`Ctx::write`] but not yet handed to the kernel.
    ///
    /// On a TLS connection, bytes already encrypted (at most one record) are not counted.
    pub fn write_buffered(&self, conn: ConnId) -> usize {
        self.conns.get(conn).map_or(0, Conn::pending)
    }

    /// Whether the write buffer is above its high-water mark (64 KiB): producers should pause
    /// until [`Protocol::write_drained`].
    pub fn write_full(&self, conn: ConnId) -> bool {
        self.write_buffered(conn) > HIGH_WATER
    }

    /// Stops reading from the connection (Twisted's `pauseProducing`).
    pub fn pause_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.paused = true;
        }
    }

    /// Resumes reading; bytes already waiting in the kernel are read at once.
    pub fn resume_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn)
            && c.paused
        {
            c.paused = false;
            self.deferred.push_back(Deferred::TryRead(conn));
        }
    }

    /// Closes after the write buffer is flushed (Twisted's `loseConnection`).
    ///
    /// On TLS, `close_notify` is sent after the data. Reading stops at once. A connection that
    /// is not made yet is cancelled (its handler gets `connection_failed`).
    pub fn lose_connection(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.state != State::Open {
            self.finish(conn, End::Lost(Disconnect::ClosedLocally));
            return;
        }
        if !c.closing {
            c.closing = true;
            self.mark_dirty(conn);
        }
    }

    /// Closes at once, discarding unsent data (Twisted's `abortConnection`).
    ///
    /// The handler gets `connection_lost(ClosedLocally)` after the current callback, or
    /// `connection_failed` if the connection was not made yet.
    pub fn abort_connection(&mut self, conn: ConnId) {
        self.finish(conn, End::Lost(Disconnect::ClosedLocally));
    }

    /// Upgrades an open plain-TCP connection to TLS (STARTTLS, or HTTPS through a proxy's
    /// `CONNECT` tunnel), checking the certificate against `server_name`.
    ///
    /// * Bytes the peer sent that were not delivered yet are discarded: nothing received
    ///   in plaintext is ever handed over as if it came from inside TLS. Bytes already
    ///   delivered (e.g. the rest of the `data_received` slice being handled) are the
    ///   protocol's to ignore.
    /// * Bytes written before this call are sent in plaintext, then the handshake starts;
    ///   bytes written after it are held until the handshake completes and then encrypted.
    /// * On success the handler gets [`Protocol::tls_started`]; from then on
    ///   `data_received` carries decrypted bytes. A failed handshake ends the connection
    ///   with `connection_lost(Failed(TransportError::Tls(..)))`; the peer closing during
    ///   it, with `connection_lost(Failed(Io(UnexpectedEof, ..)))`.
    /// * No connect timeout applies: set a timer if the handshake must be bounded.
    ///   Reading continues during the handshake even if the connection is paused.
    /// * [`Ctx::conn_timing`]'s `tls_done` is set when the handshake completes.
    ///
    /// Misuse aborts the connection with `Failed(TransportError::Io(InvalidInput, ..))`:
    /// on a connection that is already TLS or closing, or that holds 4 GiB or more written
    /// and not sent yet, as `connection_lost`; on one not
    /// open yet, as `connection_failed`. An invalid `server_name` ends it with
    /// `Failed(Tls(InvalidServerName))`. A stale id is a no-op.
    pub fn start_tls(&mut self, conn: ConnId, connector: &TlsConnector, server_name: &str) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let misuse = if c.state != State::Open {
            Some("start_tls on a connection that is not open")
        } else if c.tls.is_some() {
            Some("start_tls on a connection that is already TLS")
        } else if c.closing {
            Some("start_tls on a closing connection")
        } else if u32::try_from(c.pending()).is_err() {
            Some("start_tls with 4 GiB or more written and not sent yet")
        } else {
            None
        };
        if let Some(why) = misuse {
            let error = TransportError::Io(io::ErrorKind::InvalidInput, why.to_string());
            self.finish(conn, End::Lost(Disconnect::Failed(error)));
            return;
        }
        let stage = match TlsStage::new(connector, server_name) {
            Ok(stage) => stage,
            Err(e) => {
                self.finish(conn, End::Lost(Disconnect::Failed(TransportError::Tls(e))));
                return;
            }
        };
        if let Err(e) = discard_unread(c) {
            self.finish(conn, End::io(&e));
            return;
        }
        let mut tls = Box::new(stage);
        // Checked above: under 4 GiB.
        tls.plain_left = u32::try_from(c.pending()).unwrap_or(u32::MAX);
        tls.upgrading = true;
        c.tls = Some(tls);
        if c.eof {
            // The read path reports it; no readiness event may come for it.
            self.deferred.push_back(Deferred::TryRead(conn));
        }
        self.mark_dirty(conn);
    }

    /// Moves a connection to another handler (used by connection pools).
    ///
    /// A stale connection or handler makes this a no-op.
    pub fn set_owner(&mut self, conn: ConnId, owner: HandlerId) {
        if !self.handlers.contains(owner) {
            return;
        }
        if let Some(c) = self.conns.get_mut(conn) {
            c.owner = owner;
        }
    }

    /// Gives an open connection to a new handler, `protocol`, that owns it alone (Twisted's
    /// protocol switching: an HTTP `101 Switching Protocols`, a STARTTLS-like hand-off).
    ///
    /// * `unread`: bytes the previous owner read but did not consume (what followed the
    ///   `101` head in the same read). The new protocol gets `connection_made`, then
    ///   `data_received` with `unread` (if not empty), then whatever is read next, in that
    ///   order; all after the current callback returns, never from inside this call.
    /// * Reading resumes if the previous owner had paused it; the write buffer, the TLS
    ///   session and the connection's timing carry over.
    /// * From now on the new protocol gets every event of the connection, and exactly one
    ///   `connection_lost`; it is removed when the connection ends. Removing it
    ///   ([`Ctx::remove_handler`]) aborts the connection.
    /// * A handler made for this connection alone (by `connect_tcp` or a listener) is
    ///   removed: it is not called again.
    ///
    /// Returns the new handler's id, or `protocol` back, unused, when the connection is not
    /// open (stale, still connecting, or closing).
    pub fn hand_over(
        &mut self,
        conn: ConnId,
        protocol: Box<dyn Protocol>,
        unread: Vec<u8>,
    ) -> Result<HandlerId, Box<dyn Protocol>> {
        if !self.is_open(conn) {
            return Err(protocol);
        }
        let handler = self.add_handler(protocol);
        let c = self.conns.get_mut(conn).expect("checked open above");
        let previous = c.auto_handler.replace(handler);
        c.owner = handler;
        c.unread = (!unread.is_empty()).then(|| Box::new(unread));
        c.paused = false;
        // Nothing reaches the new owner before its `connection_made`.
        c.made = false;
        self.deferred.push_back(Deferred::Made {
            owner: handler,
            conn,
        });
        if let Some(previous) = previous {
            self.remove_handler(previous);
        }
        Ok(handler)
    }

    /// Whether the connection is established and not closing.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn)
            .is_some_and(|c| c.state == State::Open && !c.closing)
    }

    /// The peer's address, once connected (`None` over a Unix socket: it has none).
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        // While connecting, `peer` holds the address being tried.
        self.conns
            .get(conn)
            .filter(|c| c.timing.is_connected())
            .and_then(|c| c.peer)
    }

    /// When the connection was started, resolved, connected and (for TLS) secured; `None`
    /// for a stale id.
    ///
    /// ```
    /// # use weft::reactor::{ConnectOptions, Reactor};
    /// let mut reactor = Reactor::new()?;
    /// let conn = reactor.ctx().connect_owned("127.0.0.1", 9, ConnectOptions::default());
    /// assert!(reactor.ctx().conn_timing(conn).is_none(), "no owner: nothing was opened");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn conn_timing(&self, conn: ConnId) -> Option<ConnTiming> {
        self.conns.get(conn).map(|c| c.timing.get())
    }

    /// Number of live connections (for leak checks).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of pending timers (for leak checks).
    ///
    /// Includes the internal connect-timeout timer of each connection still connecting with a
    /// `connect_timeout`.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Counts of everything the reactor holds, for leak checks: after all work is done they
    /// return to what they were before it started.
    ///
    /// ```
    /// # use weft::reactor::Reactor;
    /// let mut reactor = Reactor::new()?;
    /// let stats = reactor.ctx().stats();
    /// assert_eq!(stats, Default::default());
    /// reactor.ctx().call_later(std::time::Duration::from_secs(1), |_| {});
    /// assert_eq!(reactor.ctx().stats().timers, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stats(&self) -> ReactorStats {
        let registered_conns: usize = self
            .conns
            .ids()
            .map(|(_, c)| {
                usize::from(c.interest.is_some()) + c.race().map_or(0, |r| r.registered())
            })
            .sum();
        ReactorStats {
            connections: self.conns.len(),
            registrations: registered_conns + self.listeners.len(),
            handlers: self.handlers.len(),
            listeners: self.listeners.len(),
            timers: self.timers.len(),
            queued: self.deferred.len() + self.messages.len(),
        }
    }

    /// Replaces the resolver used for host names by connections started from now on (the
    /// default is [`SystemResolver`](super::SystemResolver)). It runs on helper threads, never
    /// on the reactor thread.
    pub fn set_resolver(&mut self, resolver: impl Resolver) {
        self.resolver = SharedResolver(Arc::new(resolver));
    }

    /// Replaces the TCP connect of client connections started from now on: each address a
    /// connection tries goes to `connector` first (see [`Connector`]). For tests and fuzzing,
    /// where the peer is in the same process.
    pub fn set_connector(&mut self, connector: impl Connector) {
        self.connector = Some(Box::new(connector));
    }

    /// A handle for other threads, as [`Reactor::remote`](super::Reactor::remote) gives
    /// (for code that has only the context, such as a callback).
    pub fn remote(&self) -> super::Remote {
        self.remote.clone()
    }

    /// Resolves `host` (no brackets, not an IP literal) with the reactor's resolver on a
    /// helper thread, then runs `then` with the answer on the reactor thread (for a client
    /// that must send an address rather than a name, as through a `socks5://` proxy).
    /// Errs only if the thread cannot be started; if the reactor is gone by then, nothing runs.
    pub fn resolve_then(
        &mut self,
        host: &str,
        port: u16,
        then: impl FnOnce(&mut Ctx, io::Result<Vec<SocketAddr>>) + Send + 'static,
    ) -> io::Result<()> {
        let resolver = self.resolver.clone();
        let remote = self.remote.clone();
        let host = host.to_owned();
        std::thread::Builder::new()
            .name("weft-dns".to_string())
            .spawn(move || {
                let result = resolver.0.resolve(&host, port);
                let _ = remote.call(move |ctx| then(ctx, result));
            })
            .map(drop)
    }
}

/// What [`Ctx::stats`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReactorStats {
    /// Live connections (resolving, connecting, handshaking or open).
    pub connections: usize,
    /// Sockets registered with the poller (connections, each connect attempt of a connection
    /// still racing its addresses, and listeners).
    pub registrations: usize,
    /// Handlers (protocols), including the one made for each accepted or `connect_tcp`
    /// connection.
    pub handlers: usize,
    /// Listening sockets.
    pub listeners: usize,
    /// Pending timers, including internal connect-timeout timers.
    pub timers: usize,
    /// Notifications and messages recorded but not yet delivered.
    pub queued: usize,
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use super::super::{ConnectOptions, Protocol, Reactor};

    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &mut super::Ctx, _: super::ConnId, _: &[u8]) {}
    }

    /// Bytes encoded in place go out as written ones do; where a write would be a no-op, the
    /// encoder is not called.
    #[test]
    fn writing_in_place_sends_like_write_and_skips_closing_connections() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut reactor = Reactor::new().unwrap();
        let ctx = reactor.ctx();
        let id = ctx.connect_tcp(
            "127.0.0.1",
            port,
            ConnectOptions::default(),
            Box::new(Quiet),
        );
        // Before the connection is made: kept, and sent once it is.
        let head = b"GET / HTTP/1.1\r\n\r\n";
        let r = ctx.write_in_place(id, |buf| {
            buf.extend_from_slice(head);
            buf.len()
        });
        assert_eq!(r, Some(head.len()));
        assert_eq!(
            ctx.write_in_place(id, |_| "nothing written"),
            Some("nothing written")
        );
        ctx.write(id, b"+");
        assert_eq!(ctx.write_buffered(id), head.len() + 1);
        let (mut server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < head.len() + 1 && Instant::now() < deadline {
            reactor.turn(Some(Duration::from_millis(10))).unwrap();
            let mut buf = [0u8; 64];
            if let Ok(n) = server.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n+");
        let ctx = reactor.ctx();
        ctx.lose_connection(id);
        assert_eq!(
            ctx.write_in_place(id, |_| unreachable!("closing")),
            None::<()>
        );
        ctx.abort_connection(id);
        assert_eq!(
            ctx.write_in_place(id, |_| unreachable!("closed")),
            None::<()>
        );
    }
}
