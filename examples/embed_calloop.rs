//! `embed_calloop`: weft inside a calloop event loop (the callback-based loop of Smithay and
//! many Wayland/GUI programs), on the loop's own thread, with no second thread and no polling.
//!
//! The application's loop holds its own work — a calloop timer ticking every 50 ms — and
//! weft's reactor as one more source: calloop's `Generic` source on the reactor's descriptor,
//! level-triggered, whose callback runs the non-blocking [`Reactor::dispatch`]. The loop bounds
//! each wait by [`Reactor::timeout`] (weft's timers are not descriptors) and dispatches when
//! that bound was weft's. The requests are ordinary callbacks ([`RequestBuilder::fetch`]).
//!
//! ```sh
//! cargo run --example embed_calloop -- 'http://127.0.0.1:8080/slow?s=0.3' [N]
//! ```
//!
//! Starts N (default 3) GETs of the URL; prints one `request <i>: <status>, <n> bytes` line per
//! request, `requests: <ok> ok, <failed> failed`, `ticks: <n>` (the application's timer, which
//! kept ticking while the requests waited) and `wake-ups: <n>` (calloop dispatches). Exits 1
//! when a request fails, or after 30 s.
//!
//! `--idle-cpu URL`: one request to a slow URL (e.g. `/slow?s=3`); also prints
//! `idle-cpu: <ms> ms of CPU in <s> s` for the whole process.
//!
//! [`RequestBuilder::fetch`]: weft::RequestBuilder::fetch

#[path = "common/cpu.rs"]
mod cpu;

use std::cell::RefCell;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{EventLoop, Interest, Mode, PostAction};
use weft::{HttpClient, Reactor};

const TICK: Duration = Duration::from_millis(50);
const GIVE_UP: Duration = Duration::from_secs(30);

/// Each request's status and body length, or its error, by request number; shared with the
/// requests' callbacks.
type Outcomes = Rc<RefCell<Vec<Option<Result<(u16, usize), String>>>>>;

/// What the loop's callbacks share: the application's state, weft's reactor among it.
struct App {
    reactor: Reactor,
    ticks: u32,
    failure: Option<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--idle-cpu") => match args.get(1) {
            Some(url) => idle_cpu(url),
            None => Err("usage: embed_calloop --idle-cpu URL".into()),
        },
        url => {
            let url = url.unwrap_or("http://127.0.0.1:8080/");
            match args.get(1).map_or(Ok(3), |n| n.parse::<usize>()) {
                Ok(n) => run(url, n),
                Err(e) => Err(format!("bad request count: {e}")),
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_calloop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One request to a slow URL: the CPU the whole process spends while it waits.
fn idle_cpu(url: &str) -> Result<(), String> {
    let cpu = cpu::process_cpu()?;
    let started = Instant::now();
    run(url, 1)?;
    cpu::report_idle(cpu, started, "")
}

fn run(url: &str, n: usize) -> Result<(), String> {
    let mut event_loop: EventLoop<App> =
        EventLoop::try_new().map_err(|e| format!("cannot create the loop: {e}"))?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    // calloop owns what it waits on: a duplicate of the descriptor (the same epoll instance).
    let fd = reactor
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot wait on the reactor: {e}"))?;
    let handle = event_loop.handle();
    handle
        .insert_source(
            // Level-triggered: calloop reports the descriptor while weft has events ready.
            Generic::new(fd, Interest::READ, Mode::Level),
            |_, _, app: &mut App| {
                if let Err(e) = app.reactor.dispatch() {
                    app.failure = Some(format!("reactor: {e}"));
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| format!("cannot register the reactor: {e}"))?;
    // The application's own work.
    handle
        .insert_source(Timer::from_duration(TICK), |_, _, app: &mut App| {
            app.ticks += 1;
            TimeoutAction::ToDuration(TICK)
        })
        .map_err(|e| format!("cannot start the ticker: {e}"))?;

    let client = HttpClient::new(reactor.ctx());
    let outcomes: Outcomes = Rc::new(RefCell::new(vec![None; n]));
    for i in 0..n {
        let outcomes = outcomes.clone();
        client.get(url).fetch(reactor.ctx(), move |_, result| {
            outcomes.borrow_mut()[i] = Some(
                result
                    .map(|page| (page.code, page.body.len()))
                    .map_err(|e| e.to_string()),
            );
        });
    }
    let mut app = App {
        reactor,
        ticks: 0,
        failure: None,
    };
    let started = Instant::now();
    let mut wakeups = 0u32;
    while outcomes.borrow().iter().any(Option::is_none) {
        if started.elapsed() > GIVE_UP {
            return Err(format!("{url}: no answer after {} s", GIVE_UP.as_secs()));
        }
        // weft's bound on the wait: its next timer, or zero when it has work queued.
        let weft_bound = app.reactor.timeout();
        event_loop
            .dispatch(weft_bound, &mut app)
            .map_err(|e| format!("loop: {e}"))?;
        wakeups += 1;
        if weft_bound.is_some() && app.reactor.timeout() == Some(Duration::ZERO) {
            // The wait ended on weft's bound (a timer is due): timers are not descriptors.
            app.reactor
                .dispatch()
                .map_err(|e| format!("reactor: {e}"))?;
        }
        if let Some(e) = app.failure.take() {
            return Err(e);
        }
    }

    let mut failed = 0;
    for (i, outcome) in outcomes.borrow().iter().flatten().enumerate() {
        match outcome {
            Ok((code, len)) => println!("request {i}: {code}, {len} bytes"),
            Err(e) => {
                failed += 1;
                println!("request {i}: error: {e}");
            }
        }
    }
    println!("requests: {} ok, {failed} failed", n - failed);
    println!("ticks: {}", app.ticks);
    println!("wake-ups: {wakeups}");
    if failed > 0 {
        return Err(format!("{url}: {failed} of {n} requests failed"));
    }
    Ok(())
}
