//! Moving bytes on connections: flushing write buffers (through TLS when there is a stage),
//! keeping the registered interest in step, and the read path that feeds handlers.

use std::io::{self, Read, Write};

use mio::Interest;

use super::conn::{Conn, End, State, WriteBuf};
use super::error::{Disconnect, TransportError};
use super::ids::{ConnId, conn_token};
use super::stream::Stream;
use super::{Ctx, Deferred, HIGH_WATER, LOW_WATER, NARROW_READ, Reactor, dispatch};

/// Socket reads per readiness event before the connection yields to others.
const READS_PER_EVENT: usize = 32;
/// Bytes delivered per readiness event before the connection yields to others (checked
/// between reads: one fast connection cannot starve the rest).
const BYTES_PER_EVENT: usize = 1024 * 1024;
/// Plaintext fed to TLS at a time (one record).
const TLS_CHUNK: usize = 16 * 1024;

/// What the next step of the read loop does.
enum Step {
    Continue,
    Stop,
}

impl Ctx {
    pub(super) fn flush_dirty(&mut self) {
        while let Some(id) = self.dirty.pop() {
            self.flush(id);
        }
    }

    /// Writes what the kernel takes, closes a closing connection once empty, fires the drained
    /// notification, and updates the registered interest.
    pub(super) fn flush(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.dirty = false;
        let result = write_out(conn);
        compact(conn, &mut self.spare_wbufs);
        if let Err(e) = result {
            // A peer that answers early (a 413 while the body is still being sent) and closes
            // resets the connection: the answer is read and delivered before the write's
            // error ends it, as a client reading its response would expect.
            if conn.state == State::Open
                && matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                )
            {
                self.deferred
                    .push_back(Deferred::WriteFailed(id, End::io(&e)));
            } else {
                self.finish(id, End::io(&e));
            }
            return;
        }
        // `Conn::pending`, read from the buffer `compact` left.
        let pending = conn.wbuf.as_ref().map_or(0, |w| w.bytes.len() - w.pos);
        if conn.above_high && pending < LOW_WATER {
            conn.above_high = false;
            self.deferred.push_back(Deferred::Drained(id));
        }
        if conn.closing && conn.state == State::Open && pending == 0 {
            let tls_flushed = conn
                .tls
                .as_ref()
                .is_none_or(|t| t.close_notify_sent && !t.wants_write());
            if tls_flushed {
                self.finish(id, End::Lost(Disconnect::ClosedLocally));
                return;
            }
        }
        // The interest, decided on the connection at hand: usually unchanged.
        let Some(interest) = wanted_interest(conn, pending) else {
            return;
        };
        if conn.interest == Some(interest) {
            return;
        }
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        let token = conn_token(id);
        let result = if conn.interest.is_some() {
            self.registry.reregister(sock, token, interest)
        } else {
            self.registry.register(sock, token, interest)
        };
        match result {
            Ok(()) => conn.interest = Some(interest),
            Err(e) => self.finish(id, End::io(&e)),
        }
    }
}

/// The readiness a connection with `pending` bytes buffered waits for: WRITABLE only while
/// something waits to be written (or a connect is pending). `None` while it resolves (no
/// socket yet).
#[inline]
fn wanted_interest(conn: &Conn, pending: usize) -> Option<Interest> {
    let want_write = match conn.state {
        State::Resolving => return None,
        State::Connecting => true,
        State::Handshaking | State::Open => {
            let open = conn.state == State::Open;
            match conn.tls.as_ref() {
                Some(t) => {
                    t.plain_left > 0 || t.wants_write() || (open && !t.upgrading && pending > 0)
                }
                None => open && pending > 0,
            }
        }
    };
    Some(if want_write {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    })
}

/// Writes the connection's buffer to its socket until the kernel stops taking bytes: through
/// TLS (feeding one record at a time, then `close_notify` when closing), or directly.
#[inline]
fn write_out(conn: &mut Conn) -> io::Result<()> {
    let Some(sock) = conn.sock.as_mut() else {
        return Ok(());
    };
    if !matches!(conn.state, State::Handshaking | State::Open) {
        return Ok(());
    }
    let Some(tls) = conn.tls.as_mut() else {
        if conn.state == State::Open
            && let Some(w) = conn.wbuf.as_mut()
        {
            w.pos += write_raw(sock, w.unsent())?;
        }
        return Ok(());
    };
    if tls.plain_left > 0
        && let Some(w) = conn.wbuf.as_mut()
    {
        // Written before `start_tls`: plaintext, and before the ClientHello.
        let left = usize::try_from(tls.plain_left).unwrap_or(usize::MAX);
        let n = write_raw(sock, &w.unsent()[..left])?;
        w.pos += n;
        // `n` is at most `left`, itself a `u32`.
        tls.plain_left -= u32::try_from(n).unwrap_or(tls.plain_left);
        if tls.plain_left > 0 {
            return Ok(());
        }
    }
    loop {
        while tls.wants_write() {
            match tls.write_tls_to(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Plaintext waits in `wbuf` until the handshake is done (so it counts for
        // `write_full`), rather than piling up inside rustls.
        if conn.state != State::Open || tls.upgrading {
            return Ok(());
        }
        if let Some(w) = conn.wbuf.as_mut()
            && !w.unsent().is_empty()
        {
            let unsent = w.unsent();
            let n = unsent.len().min(TLS_CHUNK);
            tls.write_plaintext(&unsent[..n])?;
            w.pos += n;
        } else if conn.closing && !tls.close_notify_sent {
            tls.send_close_notify();
            tls.close_notify_sent = true;
        } else {
            return Ok(());
        }
    }
}

/// Writes `data` until the kernel stops taking bytes; returns how many it took.
#[inline]
fn write_raw(sock: &mut Stream, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match sock.write(&data[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Reads and drops whatever the peer sent that is waiting in the kernel; marks EOF if the
/// peer closed. Used by `start_tls`: bytes that arrived before our ClientHello cannot be
/// part of the TLS session, and must never reach the handler as if they were (curl's
/// CVE-2021-22947).
pub(super) fn discard_unread(conn: &mut Conn) -> io::Result<()> {
    let Some(sock) = conn.sock.as_mut() else {
        return Ok(());
    };
    let mut scratch = [0u8; 4096];
    loop {
        match sock.read(&mut scratch) {
            Ok(0) => {
                conn.eof = true;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Keeps the write buffer compact: lent back to `spares` when empty, shifted once half of it
/// is consumed.
#[allow(clippy::vec_box)]
#[inline]
fn compact(conn: &mut Conn, spares: &mut Vec<Box<WriteBuf>>) {
    let Some(w) = conn.wbuf.as_mut() else {
        return;
    };
    if w.unsent().is_empty() {
        if let Some(w) = conn.wbuf.take() {
            give_back(w, spares);
        }
    } else if w.pos >= w.unsent().len() {
        w.bytes.drain(..w.pos);
        w.pos = 0;
    }
}

impl Reactor {
    /// Reads until the socket would block (at most [`READS_PER_EVENT`] reads and about
    /// [`BYTES_PER_EVENT`] bytes), delivering the bytes, unless the connection is paused,
    /// closing or not made yet.
    ///
    /// A plain-socket read that does not fill its window has emptied the socket: the next
    /// read would only say `WouldBlock`, so it is skipped (one `recv` per response instead of
    /// two). Edge-triggered readiness reports any byte or close that arrives later as a new
    /// event, so nothing is missed — unless an event already reported the peer's close
    /// (`Conn::close_reported`, perhaps while the connection was paused): then reads go on to
    /// EOF.
    ///
    /// Each read takes at most [`NARROW_READ`] bytes after the connection wrote, the whole
    /// shared buffer once a read has filled its window (`Conn::wide_reads`): few reads per
    /// megabyte of body, and a small first read for the head.
    pub(super) fn read_conn(&mut self, id: ConnId) {
        let mut reads = 0;
        let mut bytes = 0;
        loop {
            let ctx = &mut self.ctx;
            let Some(conn) = ctx.conns.get_mut(id) else {
                return;
            };
            let deliverable = conn.made && !conn.paused && !conn.closing;
            // Bytes a previous owner read but left (`Ctx::hand_over`) come before any other.
            if deliverable && let Some(unread) = conn.unread.take() {
                let owner = conn.owner;
                dispatch(ctx, owner, |p, ctx| p.data_received(ctx, id, &unread));
                ctx.flush_dirty();
                continue;
            }
            let window = if conn.wide_reads {
                self.read_buf.len()
            } else {
                NARROW_READ.min(self.read_buf.len())
            };
            // Decrypted bytes first.
            if deliverable && let Some(tls) = conn.tls.as_mut() {
                match tls.read_plaintext(&mut self.read_buf[..window]) {
                    Ok(0) => {}
                    Ok(n) => {
                        // Set before delivery: a write the handler makes now narrows it again.
                        conn.wide_reads |= n == window;
                        bytes += n;
                        let owner = conn.owner;
                        dispatch(ctx, owner, |p, ctx| {
                            p.data_received(ctx, id, &self.read_buf[..n])
                        });
                        ctx.flush_dirty();
                        continue;
                    }
                    Err(e) => {
                        ctx.finish(id, End::io(&e));
                        return;
                    }
                }
            }
            match conn.state {
                State::Resolving | State::Connecting => return,
                State::Handshaking => {}
                // The handshake of `start_tls` goes on while paused or closing.
                State::Open => {
                    if !deliverable && !conn.upgrading() {
                        return;
                    }
                }
            }
            if conn.eof {
                let reason = match &conn.tls {
                    _ if conn.upgrading() => Disconnect::Failed(TransportError::Io(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake".to_string(),
                    )),
                    Some(tls) if !tls.received_close_notify() => {
                        Disconnect::PeerClosedWithoutCloseNotify
                    }
                    _ => Disconnect::PeerClosed,
                };
                ctx.finish(id, End::Lost(reason));
                return;
            }
            if reads == READS_PER_EVENT || bytes >= BYTES_PER_EVENT {
                ctx.read_again.push(id);
                return;
            }
            reads += 1;
            let step = if conn.tls.is_some() {
                read_tls(ctx, id)
            } else {
                let Some(sock) = conn.sock.as_mut() else {
                    return;
                };
                match sock.read(&mut self.read_buf[..window]) {
                    Ok(0) => {
                        conn.eof = true;
                        Step::Continue
                    }
                    Ok(n) => {
                        conn.wide_reads |= n == window;
                        bytes += n;
                        let (owner, close_reported) = (conn.owner, conn.close_reported);
                        dispatch(ctx, owner, |p, ctx| {
                            p.data_received(ctx, id, &self.read_buf[..n])
                        });
                        ctx.flush_dirty();
                        if n < window && !close_reported {
                            return;
                        }
                        Step::Continue
                    }
                    Err(e) => io_step(ctx, id, &e),
                }
            };
            if let Step::Stop = step {
                return;
            }
        }
    }
}

/// One socket read into the TLS stage of `id`, and what follows from it.
fn read_tls(ctx: &mut Ctx, id: ConnId) -> Step {
    let Some(conn) = ctx.conns.get_mut(id) else {
        return Step::Stop;
    };
    let (Some(sock), Some(tls)) = (conn.sock.as_mut(), conn.tls.as_mut()) else {
        return Step::Stop;
    };
    match tls.read_tls_from(sock) {
        Ok(0) => {
            conn.eof = true;
            Step::Continue
        }
        Ok(_) => {
            if let Err(e) = tls.process() {
                // Best effort: send the alert rustls queued.
                while tls.wants_write() {
                    if tls.write_tls_to(sock).is_err() {
                        break;
                    }
                }
                let error = TransportError::Tls(e);
                ctx.finish(id, End::Lost(Disconnect::Failed(error)));
                return Step::Stop;
            }
            if tls.received_close_notify() {
                conn.eof = true;
            }
            if conn.state == State::Handshaking && !tls.is_handshaking() {
                // Made is queued; reading resumes when it is delivered.
                ctx.handshake_done(id);
                return Step::Stop;
            }
            if tls.upgrading && !tls.is_handshaking() {
                // Likewise for `tls_started`.
                ctx.upgrade_done(id);
                return Step::Stop;
            }
            if tls.wants_write() {
                ctx.mark_dirty(id);
            }
            Step::Continue
        }
        Err(e) => io_step(ctx, id, &e),
    }
}

/// A failed socket read: wait for readiness, retry, or end the connection.
fn io_step(ctx: &mut Ctx, id: ConnId, e: &io::Error) -> Step {
    match e.kind() {
        io::ErrorKind::WouldBlock => Step::Stop,
        io::ErrorKind::Interrupted => Step::Continue,
        _ => {
            ctx.finish(id, End::io(e));
            Step::Stop
        }
    }
}

/// Most spare write buffers kept, and the largest one kept.
const SPARE_WBUFS: usize = 32;
const SPARE_WBUF_CAPACITY: usize = 4 * HIGH_WATER;

/// Returns an emptied write buffer to the spares, or frees it when there are enough or it
/// grew large.
#[allow(clippy::vec_box)]
#[inline]
pub(super) fn give_back(mut buf: Box<WriteBuf>, spares: &mut Vec<Box<WriteBuf>>) {
    if buf.bytes.capacity() <= SPARE_WBUF_CAPACITY && spares.len() < SPARE_WBUFS {
        buf.bytes.clear();
        buf.pos = 0;
        spares.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::reactor::HandlerId;

    fn conn_with(bytes: &[u8], pos: usize) -> Conn {
        let owner = HandlerId {
            index: 0,
            generation: 1,
        };
        let mut conn = Conn::new(1, owner, State::Open, Instant::now());
        conn.wbuf = Some(Box::new(WriteBuf {
            bytes: bytes.to_vec(),
            pos,
        }));
        conn
    }

    #[test]
    fn a_sent_write_buffer_goes_back_to_the_spares() {
        let mut spares = Vec::new();
        let mut conn = conn_with(b"GET / HTTP/1.1\r\n\r\n", 18);
        compact(&mut conn, &mut spares);
        assert!(
            conn.wbuf.is_none(),
            "an idle connection holds no write buffer"
        );
        assert_eq!(conn.pending(), 0);
        assert_eq!(spares.len(), 1);
        assert!(spares[0].bytes.is_empty() && spares[0].pos == 0);
    }

    #[test]
    fn a_half_sent_write_buffer_is_shifted_and_kept() {
        let mut spares = Vec::new();
        let mut conn = conn_with(b"0123456789", 6);
        compact(&mut conn, &mut spares);
        let wbuf = conn.wbuf.as_ref().expect("bytes are left to send");
        assert_eq!((wbuf.unsent(), wbuf.pos), (&b"6789"[..], 0));
        assert_eq!(conn.pending(), 4);
        let mut conn = conn_with(b"0123456789", 2);
        compact(&mut conn, &mut spares);
        assert_eq!(conn.wbuf.as_ref().map(|w| w.pos), Some(2));
        assert!(spares.is_empty());
    }

    #[test]
    fn spares_are_bounded_in_number_and_size() {
        let mut spares = Vec::new();
        for _ in 0..SPARE_WBUFS + 5 {
            give_back(Box::default(), &mut spares);
        }
        assert_eq!(spares.len(), SPARE_WBUFS);
        let mut spares = Vec::new();
        let big = WriteBuf {
            bytes: Vec::with_capacity(SPARE_WBUF_CAPACITY + 1),
            pos: 0,
        };
        give_back(Box::new(big), &mut spares);
        assert!(spares.is_empty(), "a buffer grown large is freed");
    }
}
