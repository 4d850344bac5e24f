//! `embed_mio`: weft inside an application's own event loop, with no second thread and no
//! polling.
//!
//! The application owns a mio `Poll`. In it: its own TCP echo service (a listener on
//! 127.0.0.1, an ephemeral port), a client of that service that sends a line every 20 ms, and
//! weft's reactor, as one more descriptor (`AsRawFd`, registered through mio's `SourceFd`).
//! The loop follows the reactor's contract: it bounds each wait by [`Reactor::timeout`]
//! (weft's timers are not descriptors), and after each wake-up (weft's descriptor readable,
//! or the wait elapsed) calls [`Reactor::dispatch`], which never blocks. Work posted from
//! other threads through [`Reactor::remote`] wakes the same descriptor.
//!
//! ```sh
//! cargo run --example embed_mio -- 'http://127.0.0.1:8080/slow?s=0.3' [N]
//! cargo run --example embed_mio -- --idle-cpu 'http://127.0.0.1:8080/slow?s=3'
//! ```
//!
//! Starts N (default 5) GETs of the URL; while they are in flight the echo service answers.
//! Prints `echo: listening on 127.0.0.1:<port>`, one `request <i>: <status>, <n> bytes` line
//! per request, `requests: <ok> ok, <failed> failed`, `echo: <n> answered, <m> while requests
//! were in flight`, `wake-ups: <n>`. Exits 1 when a request fails, an echo answer is wrong or
//! none came, or after 30 s.
//!
//! `--idle-cpu URL`: one request to a slow URL, the echo service idle; prints the process's
//! CPU time (user + system, from `/proc/self/stat`) spent while waiting for it:
//! `idle-cpu: <ms> ms of CPU in <s> s, <n> wake-ups`.

#[path = "common/cpu.rs"]
mod cpu;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use weft::{HttpClient, Reactor};

const WEFT: Token = Token(0);
const LISTENER: Token = Token(1);
const ECHO_CLIENT: Token = Token(2);
/// Connections accepted by the echo service get tokens from here on.
const FIRST_ECHO_CONN: usize = 10;
/// How often the echo client sends a line.
const PING_EVERY: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(30);

/// The outcome of each request: status and body length, or the error.
type Outcomes = Rc<RefCell<Vec<Result<(u16, usize), String>>>>;

/// One socket with what is waiting to be written to it.
struct Peer {
    sock: TcpStream,
    outbox: Vec<u8>,
}

impl Peer {
    /// Writes what it can of the outbox (the rest waits for the next writable event).
    fn flush(&mut self) -> io::Result<()> {
        while !self.outbox.is_empty() {
            match self.sock.write(&self.outbox) {
                Ok(n) => drop(self.outbox.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until it would block; appends to `into`. `Ok(false)` at end of stream.
    fn read_all(&mut self, into: &mut Vec<u8>) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What one run counted.
#[derive(Default)]
struct Tally {
    wakeups: u32,
    echoed: u32,
    echoed_in_flight: u32,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--idle-cpu") => match args.get(1) {
            Some(url) => idle_cpu(url),
            None => Err("usage: embed_mio --idle-cpu URL".into()),
        },
        Some(url) => {
            let n = args.get(1).map_or(Ok(5), |n| n.parse::<usize>());
            match n {
                Ok(n) => requests_beside_echo(url, n),
                Err(e) => Err(format!("bad request count: {e}")),
            }
        }
        None => Err("usage: embed_mio URL [N] | embed_mio --idle-cpu URL".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_mio: {e}");
            ExitCode::FAILURE
        }
    }
}

/// N requests while the echo service answers.
fn requests_beside_echo(url: &str, n: usize) -> Result<(), String> {
    let (outcomes, tally) = run(url, n, true)?;
    let outcomes = outcomes.borrow();
    let mut failed = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok((code, len)) => println!("request {i}: {code}, {len} bytes"),
            Err(e) => {
                failed += 1;
                println!("request {i}: error: {e}");
            }
        }
    }
    println!("requests: {} ok, {failed} failed", outcomes.len() - failed);
    println!(
        "echo: {} answered, {} while requests were in flight",
        tally.echoed, tally.echoed_in_flight
    );
    println!("wake-ups: {}", tally.wakeups);
    if failed > 0 {
        return Err(format!("{url}: {failed} of {n} requests failed"));
    }
    Ok(())
}

/// One request to a slow URL with the echo service idle: the CPU the whole process spends.
fn idle_cpu(url: &str) -> Result<(), String> {
    let cpu = cpu::process_cpu()?;
    let started = Instant::now();
    let (outcomes, tally) = run(url, 1, false)?;
    if let Some(Err(e)) = outcomes.borrow().first() {
        return Err(format!("{url}: {e}"));
    }
    cpu::report_idle(cpu, started, &format!(", {} wake-ups", tally.wakeups))
}

/// The application's loop: its echo service and client, and weft's descriptor, in one `Poll`.
/// Runs until the `n` requests are done (and, with `ping`, at least one echo came back).
fn run(url: &str, n: usize, ping: bool) -> Result<(Outcomes, Tally), String> {
    let io_err = |what: &str| {
        let what = what.to_string();
        move |e: io::Error| format!("{what}: {e}")
    };
    let mut poll = Poll::new().map_err(io_err("poll"))?;
    let mut events = Events::with_capacity(64);

    // weft: one more descriptor in the application's poll.
    let mut reactor = Reactor::new().map_err(io_err("reactor"))?;
    let fd = reactor.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), WEFT, Interest::READABLE)
        .map_err(io_err("register weft"))?;

    // The application's own service.
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut listener = TcpListener::bind(addr).map_err(io_err("bind"))?;
    let addr = listener.local_addr().map_err(io_err("bind"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(io_err("register listener"))?;
    if ping {
        println!("echo: listening on {addr}");
    }
    let mut served: HashMap<Token, Peer> = HashMap::new();
    let mut client = Peer {
        sock: TcpStream::connect(addr).map_err(io_err("connect to the echo service"))?,
        outbox: Vec::new(),
    };
    poll.registry()
        .register(
            &mut client.sock,
            ECHO_CLIENT,
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(io_err("register echo client"))?;
    let mut answers = Vec::new();
    let (mut sent, mut next_ping) = (0u32, Instant::now());

    let http = HttpClient::new(reactor.ctx());
    let outcomes = Outcomes::default();
    for _ in 0..n {
        let out = outcomes.clone();
        http.get(url).fetch(reactor.ctx(), move |_ctx, result| {
            let outcome = result.map(|r| (r.code, r.body.len()));
            out.borrow_mut().push(outcome.map_err(|e| e.to_string()));
        });
    }

    let give_up = Instant::now() + GIVE_UP;
    let mut tally = Tally::default();
    let mut next_token = FIRST_ECHO_CONN;
    loop {
        let in_flight = outcomes.borrow().len() < n;
        let echo_done = !ping || (tally.echoed > 0 && tally.echoed == sent);
        if !in_flight && echo_done {
            break;
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(format!("{url}: gave up after {GIVE_UP:?}"));
        }
        // The wait: weft's bound, the application's own next ping, and the overall limit.
        let mut wait = reactor.timeout().unwrap_or(GIVE_UP).min(give_up - now);
        if ping && in_flight {
            wait = wait.min(next_ping.saturating_duration_since(now));
        }
        poll.poll(&mut events, Some(wait)).map_err(io_err("poll"))?;
        tally.wakeups += 1;

        for event in events.iter() {
            match event.token() {
                // Nothing to do here: dispatch runs after every wake-up, below.
                WEFT => {}
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let token = Token(next_token);
                            next_token += 1;
                            poll.registry()
                                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                                .map_err(io_err("register echo connection"))?;
                            let outbox = Vec::new();
                            served.insert(token, Peer { sock, outbox });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("accept: {e}")),
                    }
                },
                ECHO_CLIENT => {
                    if !client
                        .read_all(&mut answers)
                        .map_err(io_err("echo client"))?
                    {
                        return Err("the echo service closed the connection".into());
                    }
                    client.flush().map_err(io_err("echo client"))?;
                }
                token => {
                    let Some(peer) = served.get_mut(&token) else {
                        continue;
                    };
                    let mut data = Vec::new();
                    let open = peer.read_all(&mut data).map_err(io_err("echo service"))?;
                    peer.outbox.extend_from_slice(&data); // the echo
                    peer.flush().map_err(io_err("echo service"))?;
                    if !open {
                        served.remove(&token);
                    }
                }
            }
        }

        // weft's turn: its descriptor was readable, or its timeout elapsed, or the wake-up was
        // for the application; dispatch never blocks, so calling it each time is simplest.
        reactor.dispatch().map_err(io_err("reactor"))?;

        // Check the echo answers: each must be the line sent.
        while let Some(end) = answers.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = answers.drain(..=end).collect();
            let expected = format!("ping {}\n", tally.echoed);
            if line != expected.as_bytes() {
                return Err(format!(
                    "echo answered {:?} to {expected:?}",
                    String::from_utf8_lossy(&line)
                ));
            }
            tally.echoed += 1;
            if outcomes.borrow().len() < n {
                tally.echoed_in_flight += 1;
            }
        }
        // The application's own periodic work: one line to its echo service.
        if ping && Instant::now() >= next_ping && (in_flight || sent == 0) {
            client
                .outbox
                .extend_from_slice(format!("ping {sent}\n").as_bytes());
            sent += 1;
            client.flush().map_err(io_err("echo client"))?;
            next_ping += PING_EVERY;
        }
    }
    Ok((outcomes, tally))
}
