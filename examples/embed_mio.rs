//! `embed_mio`: drive weft's reactor from a loop you already have (a game loop, a GUI's idle
//! handler, another event loop), instead of handing the thread to [`Reactor::run`].
//!
//! The application here has its own periodic work (a "tick" every 50 ms). Each iteration it
//! computes how long it may sleep: until its own next tick, or until the reactor's next timer
//! ([`Reactor::next_deadline`]) if that is sooner. It then calls
//! [`Reactor::turn`]`(Some(timeout))`, which waits for socket readiness at most that long
//! (and never past the reactor's own timers), runs whatever callbacks are due and returns.
//! The loop ends when the application's condition (the response body is in) is met. Work
//! can also be handed to the reactor from other threads with [`Reactor::remote`].
//!
//! ```sh
//! cargo run --example embed_mio -- 'http://127.0.0.1:8080/slow?s=0.3'
//! ```
//!
//! Prints `status: <code>`, `body: <n> bytes`, then `ticks: <n>, turns: <n>`. Exits 1 on
//! failure or after 30 s.

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use weft::client::{Agent, AgentConfig, HttpAgent, Request};
use weft::reactor::Reactor;

/// What the HTTP callbacks leave for the application loop.
#[derive(Default)]
struct Outcome {
    status: Option<u16>,
    body: Option<Result<usize, String>>,
}

const TICK: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let agent = Agent::new(reactor.ctx(), AgentConfig::default());

    // The callbacks never stop the reactor: they only record, and the application loop looks.
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let out = outcome.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", &url),
        Box::new(move |ctx, result| match result {
            Ok(response) => {
                out.borrow_mut().status = Some(response.code);
                response.collect(ctx, 64 << 20, move |_ctx, body| {
                    out.borrow_mut().body =
                        Some(body.map(|b| b.body.len()).map_err(|e| e.to_string()));
                });
            }
            Err(e) => out.borrow_mut().body = Some(Err(e.to_string())),
        }),
    );

    // The application's own loop.
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut next_tick = Instant::now() + TICK;
    let (mut ticks, mut turns) = (0u32, 0u32);
    while outcome.borrow().body.is_none() {
        let now = Instant::now();
        if now >= give_up {
            eprintln!("embed_mio: {url}: gave up after 30 s");
            return ExitCode::FAILURE;
        }
        // The application's periodic work.
        if now >= next_tick {
            ticks += 1;
            next_tick += TICK;
        }
        // Sleep no later than our next tick, nor than the reactor's next timer.
        let mut wake = next_tick;
        if let Some(deadline) = reactor.next_deadline() {
            wake = wake.min(deadline);
        }
        let timeout = wake.saturating_duration_since(now);
        if let Err(e) = reactor.turn(Some(timeout)) {
            eprintln!("embed_mio: reactor failed: {e}");
            return ExitCode::FAILURE;
        }
        turns += 1;
    }

    let outcome = outcome.borrow();
    if let Some(code) = outcome.status {
        println!("status: {code}");
    }
    let ok = match &outcome.body {
        Some(Ok(n)) => {
            println!("body: {n} bytes");
            true
        }
        Some(Err(e)) => {
            eprintln!("embed_mio: {url}: {e}");
            false
        }
        None => false,
    };
    println!("ticks: {ticks}, turns: {turns}");
    if ok && outcome.status.is_some_and(|c| c < 400) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
