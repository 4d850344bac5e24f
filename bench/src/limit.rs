//! `limit`: the floor for an HTTP/1.1 client on mio + httparse. No API, no URL parsing per
//! request, no per-request allocation: the request bytes are built once, `conns` connections
//! each send them again as soon as the previous response ends, one read buffer is shared by
//! all connections (a connection keeps only the few bytes of a head or chunk-size line cut by
//! a read), and bodies are counted, not stored. Content-Length and chunked framing only.
//! After a whole response it does not read again to see `WouldBlock`: one `recv`, one `send`
//! per request, plus the amortized `epoll_wait`.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::Params;
use crate::meter::{Meter, live_heap, report_idle, rss_kib};

const READ_BUF: usize = 256 << 10;

enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailers,
}

struct Conn {
    stream: TcpStream,
    connected: bool,
    state: State,
    body: u64,
    /// Bytes cut by the end of a read (a partial head or chunk line); usually empty.
    pending: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

impl Conn {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        let n = self.stream.write(request)?;
        if n != request.len() {
            return Err(bad("short write of a request"));
        }
        Ok(())
    }

    /// Consumes a prefix of `data`; returns its length and the body size of a response that
    /// ended (at most one: no pipelining).
    fn process(&mut self, data: &[u8]) -> io::Result<(usize, Option<u64>)> {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.state {
                State::Head => {
                    if rest.is_empty() {
                        return Ok((pos, None));
                    }
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut response = httparse::Response::new(&mut headers);
                    let n = match response.parse(rest).map_err(|e| bad(&e.to_string()))? {
                        httparse::Status::Complete(n) => n,
                        httparse::Status::Partial => return Ok((pos, None)),
                    };
                    pos += n;
                    let mut next = State::Length(0);
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let v = std::str::from_utf8(h.value).map_err(|_| bad("length"))?;
                            next = State::Length(v.trim().parse().map_err(|_| bad("length"))?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            next = State::ChunkSize;
                        }
                    }
                    self.state = next;
                    if let State::Length(0) = self.state {
                        return Ok((pos, Some(self.finish())));
                    }
                }
                State::Length(left) | State::ChunkData(left) => {
                    if rest.is_empty() {
                        return Ok((pos, None));
                    }
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    self.body += take;
                    let left = left - take;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => return Ok((pos, Some(self.finish()))),
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkCrlf,
                        _ => State::ChunkData(left),
                    };
                }
                State::ChunkSize => {
                    let Some(end) = find_crlf(rest) else {
                        return Ok((pos, None));
                    };
                    let line = &rest[..end];
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let hex = std::str::from_utf8(hex).map_err(|_| bad("chunk size"))?;
                    let size =
                        u64::from_str_radix(hex.trim(), 16).map_err(|_| bad("chunk size"))?;
                    pos += end + 2;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkCrlf => {
                    if rest.len() < 2 {
                        return Ok((pos, None));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(bad("chunk CRLF"));
                    }
                    pos += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(end) = find_crlf(rest) else {
                        return Ok((pos, None));
                    };
                    pos += end + 2;
                    if end == 0 {
                        return Ok((pos, Some(self.finish())));
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> u64 {
        self.state = State::Head;
        std::mem::take(&mut self.body)
    }

    /// Reads until the socket would block. Each ended response goes to `on_end`, which says
    /// whether to send the next request; returns true when it said no.
    fn readable(
        &mut self,
        buf: &mut [u8],
        request: &[u8],
        on_end: &mut impl FnMut(u64) -> bool,
    ) -> io::Result<bool> {
        let mut stopped = false;
        let mut filled = self.pending.len();
        buf[..filled].copy_from_slice(&self.pending);
        self.pending.clear();
        loop {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    filled += n;
                    let (used, ended) = self.process(&buf[..filled])?;
                    buf.copy_within(used..filled, 0);
                    filled -= used;
                    if let Some(body) = ended {
                        if on_end(body) {
                            self.send(request)?;
                        } else {
                            stopped = true;
                        }
                        if filled == 0 {
                            // A whole response and nothing after it: without pipelining no
                            // more bytes can be waiting, and the next response's bytes will
                            // raise a new edge. Skip the read that would say WouldBlock.
                            break;
                        }
                    }
                    if filled == buf.len() {
                        return Err(bad("head larger than the read buffer"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.extend_from_slice(&buf[..filled]);
        Ok(stopped)
    }
}

/// Runs `conns` connections; `on_end` gets each ended body and says whether to send another
/// request on that connection; returns when `on_end` has said no for every connection.
fn drive(p: &Params, mut on_end: impl FnMut(u64) -> bool) -> io::Result<Vec<Conn>> {
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", p.path, p.addr).into_bytes();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(p.conns);
    for i in 0..p.conns {
        let mut stream = TcpStream::connect(p.addr)?;
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            connected: false,
            state: State::Head,
            body: 0,
            pending: Vec::new(),
        });
    }
    let mut buf = vec![0u8; READ_BUF];
    let mut running = p.conns;
    while running > 0 {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            let c = &mut conns[event.token().0];
            if !c.connected {
                if let Some(e) = c.stream.take_error()? {
                    return Err(e);
                }
                match c.stream.peer_addr() {
                    Ok(_) => {
                        c.connected = true;
                        let _ = c.stream.set_nodelay(true);
                        c.send(&request)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => return Err(e),
                }
            }
            if event.is_readable() && c.readable(&mut buf, &request, &mut on_end)? {
                running -= 1;
            }
        }
    }
    Ok(conns)
}

/// `limit`: the load run.
pub fn run(p: &Params, meter: Meter) -> Result<(), String> {
    drive(p, |body| {
        meter.done(body);
        true
    })
    .map(drop)
    .map_err(|e| e.to_string())
}

/// `idle limit`: one request per connection, all at once, then the connections held open.
pub fn idle(p: &Params) -> Result<(), String> {
    if p.url.starts_with("https://") {
        return idle_tls(p, false);
    }
    let (rss_before, heap_before) = (rss_kib(), live_heap());
    let mut seen = 0usize;
    let conns = drive(p, |_| {
        seen += 1;
        false
    })
    .map_err(|e| e.to_string())?;
    report_idle("limit", seen, rss_before, heap_before);
    drop(conns);
    Ok(())
}

/// `idle limit-serial` (`https://` only): the TLS floor with the connections made one after
/// another, each handshake finished before the next starts, so all but the first resume the
/// session. A client opening its connections all at once cannot do that; this shows how much
/// of an idle connection's memory is owed to the pattern rather than to the client.
pub fn idle_serial(p: &Params) -> Result<(), String> {
    if !p.url.starts_with("https://") {
        return Err("limit-serial is the TLS floor: it needs an https:// URL".into());
    }
    idle_tls(p, true)
}

/// One TLS connection of the floor: a bare rustls `ClientConnection` on a socket, all it
/// keeps once idle.
struct TlsConn {
    sock: TcpStream,
    tls: rustls::ClientConnection,
}

/// What a [`TlsConn`] needs only until its response is in; dropped before measuring.
struct Exchange {
    /// The request, written once the handshake is done (written before, rustls would keep
    /// the queue it waited in, ~120 B per connection).
    request: Option<std::sync::Arc<[u8]>>,
    /// The response so far.
    got: Vec<u8>,
    /// The whole response is in.
    done: bool,
}

impl TlsConn {
    /// Moves bytes both ways until the socket would block; `Ok(true)` once the whole
    /// response (head and Content-Length body) is in.
    fn step(&mut self, x: &mut Exchange) -> io::Result<bool> {
        loop {
            let mut moved = false;
            if !self.tls.is_handshaking()
                && let Some(request) = x.request.take()
            {
                self.tls.writer().write_all(&request)?;
            }
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut self.sock) {
                    Ok(_) => moved = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Err(bad("server closed")),
                Ok(_) => {
                    self.tls
                        .process_new_packets()
                        .map_err(|e| bad(&e.to_string()))?;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let mut buf = [0u8; 4096];
            loop {
                match self.tls.reader().read(&mut buf) {
                    Ok(0) => return Err(bad("server closed")),
                    Ok(n) => x.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if response_complete(&x.got)? {
                x.got = Vec::new();
                return Ok(true);
            }
            if !moved {
                return Ok(false);
            }
        }
    }
}

/// Whether `got` holds a whole response with a Content-Length body.
fn response_complete(got: &[u8]) -> io::Result<bool> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = resp.parse(got) else {
        return Ok(false);
    };
    let len: usize = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or_else(|| bad("no Content-Length"))?;
    Ok(got.len() >= head + len)
}

/// The rustls floor for an idle TLS connection: `conns` sockets, each with a bare rustls
/// `ClientConnection` that did its handshake and one request, kept open. No buffers beyond
/// rustls's own: what any client on rustls must hold at least. Like every client's idle
/// mode the connections are opened and their handshakes run all at once, unless `serial`
/// (see [`idle_serial`]).
fn idle_tls(p: &Params, serial: bool) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let ca = p.ca.as_ref().ok_or("https needs --ca")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    let (host, port, path) = split_url(&p.url)?;
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let request: Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n")
        .into_bytes()
        .into();

    let (rss_before, heap_before) = (rss_kib(), live_heap());
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conns: Vec<TlsConn> = Vec::with_capacity(p.conns);
    // One allocation, given back before measuring.
    let mut exchanges: Vec<Exchange> = Vec::with_capacity(p.conns);
    for i in 0..p.conns {
        let sock =
            std::net::TcpStream::connect((host.as_str(), port)).map_err(|e| e.to_string())?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let tls = rustls::ClientConnection::new(config.clone(), name.clone())
            .map_err(|e| e.to_string())?;
        let mut conn = TlsConn {
            sock: TcpStream::from_std(sock),
            tls,
        };
        exchanges.push(Exchange {
            request: Some(request.clone()),
            got: Vec::new(),
            done: false,
        });
        poll.registry()
            .register(
                &mut conn.sock,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        conns.push(conn);
        // Serial: this connection's handshake and response before the next one starts;
        // otherwise all of them once every connection is made.
        if serial || i + 1 == p.conns {
            let from = if serial { i } else { 0 };
            wait_all(
                &mut poll,
                &mut events,
                &mut conns,
                &mut exchanges,
                from,
                deadline,
            )?;
        }
    }
    drop(exchanges);
    let name = if serial {
        "limit-tls-serial"
    } else {
        "limit-tls"
    };
    report_idle(name, conns.len(), rss_before, heap_before);
    Ok(())
}

/// Steps the connections from `from` on (their ClientHello), then drives every connection
/// readiness names until all of those are whole.
fn wait_all(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [TlsConn],
    exchanges: &mut [Exchange],
    from: usize,
    deadline: std::time::Instant,
) -> Result<(), String> {
    let mut left = 0;
    for (c, x) in conns[from..].iter_mut().zip(&mut exchanges[from..]) {
        x.done = c.step(x).map_err(|e| e.to_string())?;
        left += usize::from(!x.done);
    }
    while left > 0 {
        let time = deadline.saturating_duration_since(std::time::Instant::now());
        if time.is_zero() {
            return Err(format!("TLS floor: {left} responses missing after 60 s"));
        }
        poll.poll(events, Some(time)).map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let x = &mut exchanges[i];
            // A finished connection may still get a session ticket: read, not counted.
            let was_done = x.done;
            x.done |= conns[i].step(x).map_err(|e| e.to_string())?;
            if x.done && !was_done {
                left -= 1;
            }
        }
    }
    Ok(())
}

fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.split_once("://").ok_or("no scheme")?.1;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority.rsplit_once(':').ok_or("no port")?;
    let port = port.parse().map_err(|_| "bad port")?;
    Ok((host.to_string(), port, path.to_string()))
}
