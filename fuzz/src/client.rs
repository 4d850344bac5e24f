//! The shared body of the `client` fuzz target and of its corpus replay test
//! (`tests/fuzz_corpus.rs`): the whole
//! client (reactor, Agent and pool, redirects, cookies, auth, content decoding, body flow
//! control) over in-memory connections, against scripted responses.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use weft::proto::{self, Event, Headers};
use weft::reactor::{Ctx, Reactor, ReactorStats};

use crate::common::{piece_lengths, sent_request};
use weft::client::{
    Agent, AgentConfig, AuthMode, BodyCtx, BodyEnd, BodyHandle, BodyProtocol, Credentials,
    DecodeConfig, HttpAgent, HttpClient, Request,
};

/// Separates the scripted responses in the input.
const SEPARATOR: &[u8] = b"#~#";
/// Harness iterations before the peers are closed; each writes a piece or finds nothing to do.
const MAX_STEPS: usize = 2_000;
/// Harness iterations in a row without anything to do before the peers are closed.
const IDLE_STEPS: usize = 4;
/// Reactor turns allowed after the peers are closed for every request to finish.
const MAX_DRAIN_TURNS: usize = 500;

/// The server end of one in-memory connection.
struct Peer {
    sock: Option<UnixStream>,
    /// Request bytes received and not yet parsed.
    inbuf: Vec<u8>,
    /// Method of the request being answered on this connection, once one arrived.
    method: Option<String>,
    /// What was written in answer to it so far.
    written: Vec<u8>,
    /// The rest of its scripted response.
    pending: VecDeque<u8>,
}

/// What the user saw for one top-level request.
#[derive(Default)]
struct Outcome {
    /// The response callback ran (with a head or an error).
    answered: bool,
    /// The body ended (`connection_lost`), for a response whose body was delivered.
    body_ended: bool,
    /// The body is being delivered.
    delivering: bool,
    /// Paused and waiting for the harness to resume it.
    paused: Option<BodyHandle>,
}

type Outcomes = Rc<RefCell<Vec<Outcome>>>;

/// How the user consumes each response body.
#[derive(Clone, Copy)]
enum BodyMode {
    ReadAll,
    StopAtFirstPiece,
    PauseAtFirstPiece,
    DropResponse,
}

/// Records one body's events and checks that nothing follows its end.
struct Recorder {
    index: usize,
    mode: BodyMode,
    outcomes: Outcomes,
    ended: bool,
    paused_once: bool,
}

impl BodyProtocol for Recorder {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        assert!(!self.ended, "body data after the body ended");
        assert!(!data.is_empty(), "empty body piece");
        match self.mode {
            BodyMode::StopAtFirstPiece => body.stop(),
            BodyMode::PauseAtFirstPiece if !self.paused_once => {
                self.paused_once = true;
                body.pause();
                self.outcomes.borrow_mut()[self.index].paused = Some(body.handle());
            }
            _ => {}
        }
    }

    fn trailers_received(&mut self, _: &mut BodyCtx<'_>, _: &Headers) {
        assert!(!self.ended, "trailers after the body ended");
    }

    fn connection_lost(&mut self, _: &mut Ctx, _: BodyEnd) {
        assert!(!self.ended, "a body ended twice");
        self.ended = true;
        let mut outcomes = self.outcomes.borrow_mut();
        outcomes[self.index].body_ended = true;
        outcomes[self.index].paused = None;
    }
}

/// Runs the whole client against scripted responses and checks its invariants; panics when
/// one is broken.
///
/// Byte 0 picks the wrappers (bit 0: redirects, at most 3; bit 1: cookies; bit 2: auth, Basic
/// up front or, with bit 3, Digest/Basic on a challenge; bit 4: content decoding, capped at
/// 1 MiB) and bits 5-6 the number of requests (1 to 4, all issued at once, `GET` except that
/// bit 7 makes the second a `HEAD`). Byte 1 picks how bodies are read (bits 0-1: read all,
/// stop at the first piece, pause at the first piece until the harness resumes, drop the
/// response unread), the connections per host (bit 2: one, so that requests queue for it and
/// reuse it, or six) and seeds the split points (bits 3-7). The rest is the responses,
/// separated by `#~#`, served in order to whichever request arrives next on any connection
/// (redirects and auth retries included); each is written in pieces with reactor turns
/// between them. A request that finds no response left gets its connection closed.
///
/// Checked: no panic; every request is answered exactly once and every delivered body ends
/// exactly once, with no data after its end; a connection never carries a request after a
/// response the protocol core says makes it unusable (an error, a close, a truncation, or
/// bytes beyond the response); once the peers are gone and the idle pool is closed, the
/// reactor holds no connection, registration, timer or queued notification.
pub fn fuzz_client(data: &[u8]) {
    let [flags, body_flags, rest @ ..] = data else {
        return;
    };
    let (flags, body_flags) = (*flags, *body_flags);
    let mut scripts: VecDeque<Vec<u8>> = split(rest, SEPARATOR).map(<[u8]>::to_vec).collect();
    let mode = match body_flags & 3 {
        0 => BodyMode::ReadAll,
        1 => BodyMode::StopAtFirstPiece,
        2 => BodyMode::PauseAtFirstPiece,
        _ => BodyMode::DropResponse,
    };
    let mut pieces = piece_lengths(body_flags >> 3, [4, 64, 1024]);
    let limits = proto::Config {
        max_head_size: 4096,
        max_headers: 32,
        max_chunk_ext_bytes: 256,
        max_trailer_size: 512,
        max_interim_responses: 4,
    };

    let mut reactor = Reactor::new().expect("a reactor");
    let peers: Rc<RefCell<Vec<Peer>>> = Rc::default();
    let closed = Rc::new(RefCell::new(false));
    {
        let ctx = reactor.ctx();
        // Every name is "resolved" to a test address, and every address goes to the connector:
        // no packet leaves the process.
        ctx.set_resolver(|_: &str, port: u16| Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))]));
        let (peers, closed) = (peers.clone(), closed.clone());
        ctx.set_connector(move |_addr| {
            if *closed.borrow() {
                return Some(Err(io::ErrorKind::ConnectionRefused.into()));
            }
            let (ours, theirs) = match UnixStream::pair() {
                Ok(pair) => pair,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = theirs.set_nonblocking(true) {
                return Some(Err(e));
            }
            peers.borrow_mut().push(Peer {
                sock: Some(theirs),
                inbuf: Vec::new(),
                method: None,
                written: Vec::new(),
                pending: VecDeque::new(),
            });
            Some(Ok(ours))
        });
    }
    let baseline = reactor.stats();
    let threads_before = thread_count();

    let config = AgentConfig {
        limits: limits.clone(),
        // Timeouts would make the outcome depend on the machine's speed.
        timeout: None,
        read_timeout: None,
        connect_timeout: None,
        // One connection per host makes the requests queue for it and reuse it.
        max_active_per_host: if body_flags & 4 == 0 { 1 } else { 6 },
        ..AgentConfig::default()
    };
    let agent = Agent::new(reactor.ctx(), config);
    let client = chain(agent, flags);

    let count = usize::from((flags >> 5) & 3) + 1;
    let outcomes: Outcomes = Rc::new(RefCell::new(
        (0..count).map(|_| Outcome::default()).collect(),
    ));
    for index in 0..count {
        let method = if index == 1 && flags & 0x80 != 0 {
            "HEAD"
        } else {
            "GET"
        };
        let url = format!("http://192.0.2.1/{index}");
        let outcomes = outcomes.clone();
        client.request(
            reactor.ctx(),
            Request::new(method, &url),
            Box::new(move |ctx, result| {
                let mut all = outcomes.borrow_mut();
                assert!(!all[index].answered, "a request answered twice");
                all[index].answered = true;
                let Ok(response) = result else {
                    return;
                };
                if matches!(mode, BodyMode::DropResponse) {
                    return;
                }
                all[index].delivering = true;
                drop(all);
                response.deliver_body(
                    ctx,
                    Recorder {
                        index,
                        mode,
                        outcomes: outcomes.clone(),
                        ended: false,
                        paused_once: false,
                    },
                );
            }),
        );
    }

    // Serve: read requests, check the connection was fit to carry them, write responses in
    // pieces, and let the client settle after each step.
    let mut idle_steps = 0;
    for _ in 0..MAX_STEPS {
        let mut progress = false;
        for peer in peers.borrow_mut().iter_mut() {
            progress |= serve(peer, &mut scripts, &limits, &mut pieces);
        }
        progress |= resume_paused(reactor.ctx(), &outcomes);
        for _ in 0..3 {
            reactor.turn(Some(Duration::ZERO)).expect("turn");
        }
        idle_steps = if progress { 0 } else { idle_steps + 1 };
        if idle_steps > 0 && all_done(&outcomes) || idle_steps > IDLE_STEPS {
            // Done, or waiting for bytes that no script will send.
            break;
        }
        if idle_steps > 0 {
            // Give a resolver thread the chance to answer.
            let wait = resolver_wait(threads_before);
            reactor.turn(Some(wait)).expect("turn");
        }
    }

    // Close every server end: whatever is still waiting must now finish.
    *closed.borrow_mut() = true;
    for peer in peers.borrow_mut().iter_mut() {
        peer.sock = None;
    }
    for _ in 0..MAX_DRAIN_TURNS {
        resume_paused(reactor.ctx(), &outcomes);
        if all_done(&outcomes) {
            break;
        }
        for peer in peers.borrow_mut().iter_mut() {
            peer.sock = None;
        }
        let wait = resolver_wait(threads_before);
        reactor.turn(Some(wait)).expect("turn");
    }
    for (i, o) in outcomes.borrow().iter().enumerate() {
        assert!(o.answered, "request {i} never answered");
        assert!(!o.delivering || o.body_ended, "body {i} never ended");
    }

    agent.close_idle(reactor.ctx());
    for _ in 0..MAX_DRAIN_TURNS {
        if settled(&reactor.stats(), &baseline) {
            break;
        }
        let wait = resolver_wait(threads_before);
        reactor.turn(Some(wait)).expect("turn");
    }
    let stats = reactor.stats();
    assert!(settled(&stats, &baseline), "left behind: {stats:?}");
    drop(reactor);
    // Resolver threads post their answer and then exit; one still exiting when the input
    // ends would look like a leak (its thread-local bookkeeping) to the leak checker.
    for _ in 0..MAX_DRAIN_TURNS {
        if thread_count() <= threads_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long an idle turn may wait: a little while a resolver thread is alive (its answer
/// comes through the waker), else nothing (socket pairs are ready at once), which keeps the
/// target fast.
fn resolver_wait(threads_before: usize) -> Duration {
    if thread_count() > threads_before {
        Duration::from_millis(1)
    } else {
        Duration::ZERO
    }
}

/// Threads of this process (0 where `/proc` cannot tell).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The wrapper chain the flags ask for, stacked by the session builder (decoding innermost,
/// auth outermost), as the `weft` command and `HttpClient` get it.
fn chain(agent: Agent, flags: u8) -> Rc<dyn HttpAgent> {
    let mut builder = HttpClient::builder()
        .redirects(false)
        .cookies(false)
        .decompress(false)
        .url_credentials(false);
    if flags & 0x10 != 0 {
        builder = builder.decode_config(DecodeConfig {
            max_decoded_size: 1 << 20,
            ..DecodeConfig::default()
        });
    }
    if flags & 2 != 0 {
        builder = builder.cookies(true);
    }
    if flags & 1 != 0 {
        builder = builder.max_redirects(3);
    }
    if flags & 4 != 0 {
        let mode = if flags & 8 != 0 {
            AuthMode::Auto
        } else {
            AuthMode::Basic
        };
        builder = builder.auth(Credentials::new("user", "secret"), mode);
    }
    builder.wrap(agent).agent().clone()
}

/// One step of one server end; whether anything happened.
fn serve(
    peer: &mut Peer,
    scripts: &mut VecDeque<Vec<u8>>,
    limits: &proto::Config,
    pieces: &mut impl FnMut() -> usize,
) -> bool {
    let Some(sock) = peer.sock.as_mut() else {
        return false;
    };
    let mut progress = false;
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => {
                // The client closed: this connection is done.
                peer.sock = None;
                return true;
            }
            Ok(n) => {
                peer.inbuf.extend_from_slice(&buf[..n]);
                assert!(peer.inbuf.len() <= 1 << 20, "request bytes without end");
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                peer.sock = None;
                return true;
            }
        }
    }
    // Requests carry no body here (GET and HEAD, and their redirects and retries), so a
    // request ends at its blank line.
    while let Some(end) = find(&peer.inbuf, b"\r\n\r\n") {
        let head: Vec<u8> = peer.inbuf.drain(..end + 4).collect();
        if let Some(previous) = &peer.method {
            assert!(
                reusable(previous, &peer.written, limits),
                "a request was sent on a connection whose previous response left it unusable"
            );
        }
        let method = head.split(|&b| b == b' ').next().unwrap_or_default();
        peer.method = Some(String::from_utf8_lossy(method).into_owned());
        peer.written.clear();
        match scripts.pop_front() {
            Some(script) => peer.pending = script.into(),
            None => {
                peer.sock = None;
                return true;
            }
        }
        progress = true;
    }
    let Some(sock) = peer.sock.as_mut() else {
        return progress;
    };
    if !peer.pending.is_empty() {
        let n = pieces().min(peer.pending.len());
        let piece: Vec<u8> = peer.pending.drain(..n).collect();
        match sock.write(&piece) {
            Ok(written) => {
                peer.written.extend_from_slice(&piece[..written]);
                // What the kernel did not take goes back to the front.
                for &b in piece[written..].iter().rev() {
                    peer.pending.push_front(b);
                }
            }
            Err(_) => peer.sock = None,
        }
        progress = true;
    }
    progress
}

/// Whether the protocol core, given `written` in answer to `method`, says the connection can
/// carry another request: a complete response that keeps the connection alive, and nothing
/// after it.
fn reusable(method: &str, written: &[u8], limits: &proto::Config) -> bool {
    // A method the core refuses to send cannot have been sent on this connection.
    let Ok(mut core) = sent_request(limits.clone(), method) else {
        return false;
    };
    let mut rest = written;
    loop {
        match core.receive(rest) {
            Ok((n, Event::Complete { keep_alive, .. })) => return keep_alive && n == rest.len(),
            Ok((_, Event::NeedMore)) | Err(_) => return false,
            Ok((n, _)) => rest = &rest[n..],
        }
    }
}

/// Resumes the bodies paused by their recorder; whether there was one.
fn resume_paused(ctx: &mut Ctx, outcomes: &Outcomes) -> bool {
    let handles: Vec<BodyHandle> = outcomes
        .borrow_mut()
        .iter_mut()
        .filter_map(|o| o.paused.take())
        .collect();
    for handle in &handles {
        handle.resume(ctx);
    }
    !handles.is_empty()
}

fn all_done(outcomes: &Outcomes) -> bool {
    outcomes
        .borrow()
        .iter()
        .all(|o| o.answered && (!o.delivering || o.body_ended))
}

/// Nothing left but what the reactor had before the first request (the Agent's handler may
/// remain).
fn settled(stats: &ReactorStats, baseline: &ReactorStats) -> bool {
    stats.connections == 0
        && stats.registrations == baseline.registrations
        && stats.timers == baseline.timers
        && stats.queued == 0
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data` cut at every `separator`.
fn split<'a>(data: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, separator) {
            Some(at) => {
                rest = Some(&current[at + separator.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}
