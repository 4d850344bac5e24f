//! A scripted HTTP server on 127.0.0.1 for hostile and edge-case tests ([`ScriptedServer`]
//! plays one list of [`Step`]s per connection, plain or TLS), plus the drivers that run
//! requests through an Agent ([`issue`], [`run_one`], [`run_sequential`]) or through any
//! wrapper agent ([`issue_via`], [`run_via`]) on a reactor with a deadline, recording each
//! outcome in a [`Slot`].

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProducer, BodyProtocol, Error, HttpAgent,
    PreviousResponse, Request, RequestHandle, Response,
};
use weft::proto::Headers;
use weft::reactor::{Ctx, Reactor};

use super::servers::Leaf;
use super::servers::tls::server_config;

/// One step of what the server does on a connection.
#[derive(Clone, Debug)]
pub enum Step {
    /// Read one request (head, and body by Content-Length or chunked) and record it.
    ExpectRequest,
    /// Read only the request head and record it.
    ExpectHead,
    /// Read exactly this many bytes and record them as a request of their own.
    ReadBytes(usize),
    /// Write these bytes.
    Write(Vec<u8>),
    /// Sleep.
    Sleep(Duration),
    /// Half-close our side (FIN) but keep the socket.
    ShutdownWrite,
    /// Close the connection (over TLS: `close_notify`, then FIN).
    Close,
    /// Drop the TCP connection without any TLS closure alert (plain TCP: same as `Close`).
    DropTcp,
    /// Wait until the peer closes (read until EOF, bounded).
    WaitClose,
    /// Write these bytes in pieces cut at these offsets (ascending, inside the bytes), with
    /// `TCP_NODELAY` and a 1 ms pause between pieces so that they arrive as separate reads.
    WriteSplit(Vec<u8>, Vec<usize>),
    /// Write these bytes one at a time, pausing this long after each (`TCP_NODELAY`).
    WriteSlow(Vec<u8>, Duration),
    /// Abort the connection with a TCP reset (`SO_LINGER` 0, then close): the peer sees
    /// `ECONNRESET`, not a FIN.
    Reset,
}

/// Shorthand for a `Write` step.
pub fn write(bytes: &[u8]) -> Step {
    Step::Write(bytes.to_vec())
}

/// A `Write` step of a whole response: `status` (e.g. `503 Service Unavailable`), extra header
/// lines (each ending in CRLF), and `body` with its `Content-Length`.
pub fn response(status: &str, extra: &str, body: &str) -> Step {
    write(
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// What the server saw.
#[derive(Default, Debug)]
pub struct Record {
    /// Raw bytes of each request read, in order, with the index of its connection.
    pub requests: Vec<(usize, Vec<u8>)>,
    /// Write steps (`Write`, `WriteSplit`, `WriteSlow`) finished, over all connections (a
    /// step that failed because the peer was gone counts too).
    pub writes: usize,
}

/// A server that plays one script per accepted connection, in order.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    record: Arc<Mutex<Record>>,
}

impl ScriptedServer {
    /// Starts serving `scripts` (one per connection) on a free loopback port. Connections
    /// beyond the scripts are closed at once.
    pub fn start(scripts: Vec<Vec<Step>>) -> ScriptedServer {
        Self::start_with(scripts, None)
    }

    /// Like [`ScriptedServer::start`], over TLS with this certificate chain and key.
    pub fn start_tls(
        scripts: Vec<Vec<Step>>,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> ScriptedServer {
        Self::start_with(scripts, Some(server_config(Leaf { chain, key })))
    }

    /// Like [`ScriptedServer::start`], on a listener bound by the caller (so that scripts can
    /// name the server's own port, or another server's, before it starts).
    pub fn start_on(listener: TcpListener, scripts: Vec<Vec<Step>>) -> ScriptedServer {
        Self::serve(listener, scripts, None)
    }

    fn start_with(
        scripts: Vec<Vec<Step>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(listener, scripts, tls)
    }

    fn serve(
        listener: TcpListener,
        scripts: Vec<Vec<Step>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> ScriptedServer {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let record = Arc::new(Mutex::new(Record::default()));
        let (acc, rec) = (accepted.clone(), record.clone());
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut scripts = scripts.into_iter();
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let index = acc.fetch_add(1, Ordering::SeqCst);
                        let script = scripts.next().unwrap_or_default();
                        let rec = rec.clone();
                        let tls = tls.clone();
                        thread::spawn(move || {
                            sock.set_nonblocking(false).unwrap();
                            sock.set_read_timeout(Some(Duration::from_secs(10)))
                                .unwrap();
                            match tls {
                                None => play(Stream::Plain(sock), index, script, rec),
                                Some(cfg) => {
                                    let conn = rustls::ServerConnection::new(cfg).unwrap();
                                    let stream = rustls::StreamOwned::new(conn, sock);
                                    play(Stream::Tls(Box::new(stream)), index, script, rec)
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ScriptedServer {
            addr,
            accepted,
            record,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests read so far (connection index, raw bytes).
    pub fn requests(&self) -> Vec<(usize, Vec<u8>)> {
        self.record.lock().unwrap().requests.clone()
    }

    /// Write steps finished so far, over all connections (a test awaits this before it
    /// relies on every byte of a response having been sent or refused by the peer).
    pub fn writes(&self) -> usize {
        self.record.lock().unwrap().writes
    }
}

/// A server-side connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Ends the connection; over TLS, with `close_notify` first when `notify`.
    fn close(mut self, notify: bool) {
        if let (Stream::Tls(s), true) = (&mut self, notify) {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        // Give the client a moment to read what was written before the socket goes.
        thread::sleep(Duration::from_millis(20));
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

fn play(mut sock: Stream, index: usize, script: Vec<Step>, rec: Arc<Mutex<Record>>) {
    let mut buf = Vec::new();
    for step in script {
        match step {
            Step::ExpectRequest | Step::ExpectHead => {
                let Some(req) =
                    read_request(&mut sock, &mut buf, matches!(step, Step::ExpectRequest))
                else {
                    return;
                };
                rec.lock().unwrap().requests.push((index, req));
            }
            Step::ReadBytes(n) => {
                while buf.len() < n {
                    if fill(&mut sock, &mut buf).is_none() {
                        return;
                    }
                }
                let bytes: Vec<u8> = buf.drain(..n).collect();
                rec.lock().unwrap().requests.push((index, bytes));
            }
            Step::Write(_) | Step::WriteSplit(..) | Step::WriteSlow(..) => {
                let sent = write_step(&mut sock, step);
                // Counted even when the peer is gone: no more bytes can reach it either way.
                rec.lock().unwrap().writes += 1;
                if sent.is_err() {
                    return;
                }
            }
            Step::Reset => {
                let _ = socket2::SockRef::from(sock.tcp()).set_linger(Some(Duration::ZERO));
                return;
            }
            Step::Sleep(d) => thread::sleep(d),
            Step::ShutdownWrite => {
                let _ = sock.tcp().shutdown(Shutdown::Write);
            }
            Step::Close => return sock.close(true),
            Step::DropTcp => return sock.close(false),
            Step::WaitClose => {
                let mut b = [0u8; 1024];
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    match sock.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
                return;
            }
        }
    }
}

/// Plays a write step; fails when the peer is gone.
fn write_step(sock: &mut Stream, step: Step) -> std::io::Result<()> {
    match step {
        Step::Write(bytes) => sock.write_all(&bytes).and_then(|_| sock.flush()),
        Step::WriteSplit(bytes, points) => {
            sock.tcp().set_nodelay(true)?;
            let mut start = 0;
            for end in points.into_iter().chain([bytes.len()]) {
                let end = end.clamp(start, bytes.len());
                if end == start {
                    continue;
                }
                sock.write_all(&bytes[start..end])?;
                sock.flush()?;
                start = end;
                if start < bytes.len() {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(())
        }
        Step::WriteSlow(bytes, delay) => {
            sock.tcp().set_nodelay(true)?;
            for b in bytes.chunks(1) {
                sock.write_all(b)?;
                sock.flush()?;
                thread::sleep(delay);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Reads one request from `sock` (using and refilling `buf`); returns its raw bytes.
fn read_request(sock: &mut Stream, buf: &mut Vec<u8>, with_body: bool) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(sock, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let mut end = head_end;
    if with_body {
        if let Some(cl) = header(&head, "content-length") {
            let n: usize = cl.parse().ok()?;
            while buf.len() < head_end + n {
                fill(sock, buf)?;
            }
            end = head_end + n;
        } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                if let Some(i) = find(&buf[head_end..], b"\r\n0\r\n\r\n") {
                    end = head_end + i + 7;
                    break;
                }
                if buf[head_end..].starts_with(b"0\r\n\r\n") {
                    end = head_end + 5;
                    break;
                }
                fill(sock, buf)?;
            }
        }
    }
    let req = buf[..end].to_vec();
    buf.drain(..end);
    Some(req)
}

fn fill(sock: &mut Stream, buf: &mut Vec<u8>) -> Option<()> {
    let mut b = [0u8; 8192];
    match sock.read(&mut b) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&b[..n]);
            Some(())
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a request ended with, as seen by the test.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// The response's timing, once its head arrived.
    pub timing: Option<weft::client::Timing>,
    /// `None` while in flight; `Some(Ok(end))` once the body ended; `Some(Err)` when the
    /// request failed before its head.
    pub result: Option<Result<BodyEnd, Error>>,
    /// When the result arrived.
    pub at: Option<Instant>,
}

impl Outcome {
    /// The body ended as `Done`.
    pub fn is_done(&self) -> bool {
        matches!(self.result, Some(Ok(BodyEnd::Done)))
    }

    /// The error, from before the head or from the body.
    pub fn error(&self) -> Option<&Error> {
        match &self.result {
            Some(Err(e)) | Some(Ok(BodyEnd::Failed(e))) => Some(e),
            _ => None,
        }
    }

    /// The body ended, as the body protocol was told.
    pub fn end(&self) -> Option<&BodyEnd> {
        match &self.result {
            Some(Ok(end)) => Some(end),
            _ => None,
        }
    }
}

/// Slot for one outcome, filled in by callbacks.
pub type Slot = Rc<RefCell<Outcome>>;

/// A body protocol that records everything into a shared outcome.
pub struct Recorder {
    pub out: Slot,
}

impl BodyProtocol for Recorder {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
        let mut o = self.out.borrow_mut();
        assert!(o.result.is_none(), "data after the end of the body");
        o.body.extend_from_slice(data);
    }

    fn trailers_received(&mut self, _body: &mut BodyCtx<'_>, trailers: &Headers) {
        self.out.borrow_mut().trailers = trailers.clone();
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx, reason: BodyEnd) {
        let mut o = self.out.borrow_mut();
        assert!(o.result.is_none(), "connection_lost called twice");
        o.result = Some(Ok(reason));
        o.at = Some(Instant::now());
    }
}

/// A request to run.
pub struct Req {
    pub method: &'static str,
    pub url: String,
    pub headers: Headers,
    pub body: Option<Box<dyn BodyProducer>>,
}

impl Req {
    /// A GET of `url`.
    pub fn get(url: String) -> Req {
        Req::new("GET", url)
    }

    /// A request without body.
    pub fn new(method: &'static str, url: String) -> Req {
        Req {
            method,
            url,
            headers: Headers::new(),
            body: None,
        }
    }
}

/// Issues a request that records its outcome (head, streamed body, end) into a slot.
pub fn issue(ctx: &mut Ctx, agent: Agent, req: Req) -> Slot {
    issue_with_handle(ctx, agent, req).0
}

/// [`issue`], also returning the request's handle.
pub fn issue_with_handle(ctx: &mut Ctx, agent: Agent, req: Req) -> (Slot, RequestHandle) {
    let slot: Slot = Rc::new(RefCell::new(Outcome::default()));
    let handle = agent.request(
        ctx,
        {
            let mut r = Request::new(req.method, &req.url);
            r.headers = req.headers;
            r.body = req.body;
            r
        },
        Box::new(record_response(&slot, None)),
    );
    (slot, handle)
}

/// A response callback that records the head (and, given a place for it, the redirect and
/// authentication history) into `slot`, then streams the body into it with a [`Recorder`];
/// an error before the head ends the slot.
fn record_response(
    slot: &Slot,
    history: Option<History>,
) -> impl FnOnce(&mut Ctx, Result<Response, Error>) + 'static {
    let s = slot.clone();
    move |ctx, r| match r {
        Ok(resp) => {
            {
                let mut o = s.borrow_mut();
                o.status = Some(resp.code);
                o.headers = resp.headers.clone();
                o.timing = Some(resp.timing);
            }
            if let Some(h) = history {
                *h.borrow_mut() = resp.history.clone();
            }
            resp.deliver_body(ctx, Recorder { out: s });
        }
        Err(e) => {
            let mut o = s.borrow_mut();
            assert!(o.result.is_none(), "on_response called twice");
            o.result = Some(Err(e));
            o.at = Some(Instant::now());
        }
    }
}

/// Whether a slot holds a final outcome (error before the head, or a body end).
pub fn finished(slot: &Slot) -> bool {
    slot.borrow().result.is_some()
}

/// Turns the reactor until `done` holds or `limit` passes (then panics).
pub fn turn_until(reactor: &mut Reactor, limit: Duration, mut done: impl FnMut() -> bool) {
    assert!(
        super::reactor::turn_until(reactor, limit, |_| done()),
        "timed out waiting for the reactor"
    );
}

/// Turns the reactor for `d`.
pub fn turn_for(reactor: &mut Reactor, d: Duration) {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
}

/// Runs requests one after another on one agent; returns their outcomes.
pub fn run_sequential(config: AgentConfig, reqs: Vec<Req>) -> Vec<Outcome> {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config);
    let mut out = Vec::new();
    for req in reqs {
        let slot = issue(reactor.ctx(), agent, req);
        turn_until(&mut reactor, Duration::from_secs(15), || finished(&slot));
        // Let the agent settle (pool the connection) before the next request.
        for _ in 0..3 {
            reactor.turn(Some(Duration::from_millis(5))).unwrap();
        }
        out.push(slot.borrow().clone());
    }
    // Global invariants: once the pool is emptied, nothing of these requests is left in the
    // reactor (connections, registrations, timers, queued notifications).
    agent.close_idle(reactor.ctx());
    let settled = Instant::now() + Duration::from_secs(1);
    loop {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
        let st = reactor.stats();
        if st.connections == 0 && st.registrations == 0 && st.timers == 0 && st.queued == 0 {
            break;
        }
        assert!(Instant::now() < settled, "left behind: {st:?}");
    }
    out
}

/// Runs one request on a fresh agent.
pub fn run_one(config: AgentConfig, req: Req) -> Outcome {
    run_sequential(config, vec![req]).pop().unwrap()
}

/// Agent settings for tests: short timeouts so a bug fails fast.
pub fn test_config() -> AgentConfig {
    AgentConfig {
        connect_timeout: Some(Duration::from_secs(5)),
        timeout: Some(Duration::from_secs(10)),
        ..AgentConfig::default()
    }
}

/// The history of redirects and authentication hops a wrapper reports with its response.
pub type History = Rc<RefCell<Vec<PreviousResponse>>>;

/// An outcome plus the response's history.
#[derive(Debug, Clone, Default)]
pub struct Wrapped {
    pub out: Outcome,
    pub history: Vec<PreviousResponse>,
}

/// [`issue`] through any `HttpAgent` (a wrapper such as redirects or authentication): the
/// body is streamed into the slot, the history into the second value.
pub fn issue_via(
    reactor: &mut Reactor,
    agent: &impl HttpAgent,
    req: Request,
) -> (Slot, History, RequestHandle) {
    let slot: Slot = Rc::new(RefCell::new(Outcome::default()));
    let hist: History = Rc::new(RefCell::new(Vec::new()));
    let handle = agent.request(
        reactor.ctx(),
        req,
        Box::new(record_response(&slot, Some(hist.clone()))),
    );
    (slot, hist, handle)
}

/// Runs `req` through `agent` to the end of its body (15 s at most).
pub fn run_via(reactor: &mut Reactor, agent: &impl HttpAgent, req: Request) -> Wrapped {
    let (slot, hist, _) = issue_via(reactor, agent, req);
    turn_until(reactor, Duration::from_secs(15), || finished(&slot));
    for _ in 0..3 {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let out = slot.borrow().clone();
    let history = hist.borrow().clone();
    Wrapped { out, history }
}

/// The request heads a scripted server saw, as text.
pub fn heads(requests: &[(usize, Vec<u8>)]) -> Vec<String> {
    requests
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// The value of header `name` in a raw request, if present (case-insensitive).
pub fn header_of(raw: &str, name: &str) -> Option<String> {
    raw.split("\r\n\r\n").next()?.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
