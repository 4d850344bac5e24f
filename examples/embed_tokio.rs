//! `embed_tokio`: weft inside a tokio application, on tokio's own thread, with `.await`.
//!
//! A current-thread tokio runtime runs a `LocalSet` holding three tasks: one drives weft's
//! reactor (tokio's `AsyncFd` waits on the reactor's descriptor, bounded by
//! [`Reactor::timeout`]; each wake-up runs the non-blocking [`Reactor::dispatch`]), one is the
//! application's own work (a ticker counting every 50 ms), and one awaits
//! HTTP requests through [`weft::futures`]: a whole response with `fetch_async`, then the
//! same URL streamed chunk by chunk with `send_async` and `into_stream`. No thread is started
//! besides weft's resolver helpers (a current-thread runtime has no workers).
//!
//! ```sh
//! cargo run --example embed_tokio -- 'http://127.0.0.1:8080/slow?s=0.3'
//! ```
//!
//! Prints `status: <code>`, `body: <n> bytes`, `streamed: <n> bytes`, then `ticks: <n>`.
//! Exits 1 on failure.
//!
//! Two measuring modes (figures in `docs/performance.md`):
//!
//! - `--idle-cpu URL`: one awaited request to a slow URL (e.g. `/slow?s=3`); prints
//!   `idle-cpu: <ms> ms of CPU in <s> s` for the whole process.
//! - `--latency N URL`: N keep-alive GETs one after the other (c1), awaited in tokio, and the
//!   same N through the callbacks under `Reactor::run`, in alternating rounds; prints the
//!   median latency of each and the median ratio.

#[path = "common/cpu.rs"]
mod cpu;

use std::cell::Cell;
use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::LocalSet;
use weft::futures::{AsyncRequest, AsyncResponse, Bridge};
use weft::{HttpClient, Reactor};

const TICK: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--idle-cpu") => match args.get(1) {
            Some(url) => idle_cpu(url),
            None => Err("usage: embed_tokio --idle-cpu URL".into()),
        },
        Some("--latency") => match (args.get(1).and_then(|n| n.parse().ok()), args.get(2)) {
            (Some(n), Some(url)) => latency(n, url),
            _ => Err("usage: embed_tokio --latency N URL".into()),
        },
        url => demo(url.unwrap_or("http://127.0.0.1:8080/")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_tokio: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on a current-thread tokio runtime, in a `LocalSet` where another task drives
/// weft's reactor through its descriptor, until `work` is done.
fn with_weft<T, F>(work: impl FnOnce(HttpClient, Bridge) -> F) -> Result<T, String>
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let client = HttpClient::new(reactor.ctx());
    // The futures reach the reactor through the bridge; they must be polled on this thread.
    let bridge = Bridge::new(&reactor);
    let set = LocalSet::new();

    let driver = set.spawn_local(drive(reactor));
    // A task of the set too: its wake-ups stay inside the set, where the driver's are.
    let work = set.spawn_local(work(client, bridge));
    runtime.block_on(set.run_until(async move {
        // The driver only ends on an error: whichever comes first decides.
        tokio::select! {
            out = work => out.map_err(|e| e.to_string()),
            ended = driver => Err(match ended {
                Ok(Err(e)) => e,
                Ok(Ok(())) => "the reactor stopped".to_string(),
                Err(e) => e.to_string(),
            }),
        }
    }))
}

/// weft's reactor as a tokio task: tokio waits on the reactor's descriptor with the rest of
/// its sources, bounded by weft's next timer, and for work this thread's futures hand over;
/// each wake-up runs a non-blocking dispatch.
/// Nothing polls: between events this task costs nothing. Returns only on an error.
async fn drive(mut reactor: Reactor) -> Result<(), String> {
    // tokio waits on a duplicate of the descriptor (the same epoll instance), owned, so
    // it stays valid as long as the `AsyncFd`: the I/O safety the deprecation asks for.
    let owned = reactor
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot wait on the reactor: {e}"))?;
    #[allow(deprecated)]
    let fd = AsyncFd::with_interest(owned, Interest::READABLE)
        .map_err(|e| format!("cannot wait on the reactor: {e}"))?;
    // One timer, moved only when weft's next deadline moves: a new `sleep` per turn would
    // cost tokio's timer wheel a re-registration (and its driver a wake-up) each time.
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(far());
    tokio::pin!(sleep);
    reactor.dispatch().map_err(|e| format!("reactor: {e}"))?;
    loop {
        if reactor.timeout() == Some(Duration::ZERO) {
            // Still busy: let the other tasks run, then carry on.
            tokio::task::yield_now().await;
            reactor.dispatch().map_err(|e| format!("reactor: {e}"))?;
            continue;
        }
        // No weft timer pending: only the descriptor or this thread's futures bring work.
        let deadline = reactor
            .next_deadline()
            .map_or_else(far, tokio::time::Instant::from_std);
        if deadline != sleep.deadline() {
            sleep.as_mut().reset(deadline);
        }
        let queued = tokio::select! {
            ready = fd.readable() => {
                // Edge-triggered: clear before dispatching, which drains what is ready.
                ready.map_err(|e| format!("reactor descriptor: {e}"))?.clear_ready();
                false
            }
            () = &mut sleep => {
                sleep.as_mut().reset(far());
                false
            }
            // Requests handed over by this thread's futures: a direct wake-up, no syscall.
            () = reactor.work_queued() => true,
        };
        if queued {
            // Only futures' work: no need to poll the descriptor (a readiness that came
            // meanwhile is still flagged on the `AsyncFd`, for the next round).
            reactor.run_queued();
        } else {
            reactor.dispatch().map_err(|e| format!("reactor: {e}"))?;
        }
    }
}

/// Two requests beside the application's own ticking task.
fn demo(url: &str) -> Result<(), String> {
    let url = url.to_string();
    let ticks = Rc::new(Cell::new(0u32));
    let counting = ticks.clone();
    with_weft(move |client, bridge| async move {
        // The application's own work, going on while the requests wait.
        let ticker = tokio::task::spawn_local(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.tick().await; // the first tick is immediate
            loop {
                interval.tick().await;
                counting.set(counting.get() + 1);
            }
        });
        let outcome = requests(&client, &bridge, &url).await;
        ticker.abort();
        outcome
    })?
    .map_err(|e| e.to_string())?;
    println!("ticks: {}", ticks.get());
    Ok(())
}

/// One request to a slow URL: the CPU the whole process spends while it waits.
fn idle_cpu(url: &str) -> Result<(), String> {
    let url = url.to_string();
    let cpu = cpu::process_cpu()?;
    let started = Instant::now();
    let page =
        with_weft(
            move |client, bridge| async move { client.get(&url).fetch_async(&bridge).await },
        )?
        .map_err(|e| e.to_string())?;
    println!("status: {}", page.code);
    cpu::report_idle(cpu, started, "")
}

/// Rounds of the latency comparison: the two ways alternate, so that drift of the machine
/// (another process, frequency) touches both alike.
const LATENCY_ROUNDS: u32 = 10;

/// `n` keep-alive GETs one after the other, awaited in tokio and through the callbacks under
/// `Reactor::run`, in alternating rounds: the median of each way's mean latency per round, and
/// the median of the rounds' ratios.
fn latency(n: u32, url: &str) -> Result<(), String> {
    let per_round = (n / LATENCY_ROUNDS).max(1);
    let (mut awaited, mut run, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..LATENCY_ROUNDS {
        let (a, r) = if round % 2 == 0 {
            let a = latency_awaited(per_round, url)?;
            (a, latency_run(per_round, url)?)
        } else {
            let r = latency_run(per_round, url)?;
            (latency_awaited(per_round, url)?, r)
        };
        awaited.push(a.as_secs_f64());
        run.push(r.as_secs_f64());
        ratios.push(a.as_secs_f64() / r.as_secs_f64());
    }
    println!("latency tokio: {:.1} us", median(&mut awaited) * 1e6);
    println!("latency run: {:.1} us", median(&mut run) * 1e6);
    println!("latency ratio: {:.3}", median(&mut ratios));
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The mean latency of `n` GETs awaited one after the other in tokio.
fn latency_awaited(n: u32, url: &str) -> Result<Duration, String> {
    let target = url.to_string();
    with_weft(move |client, bridge| async move {
        client.get(&target).fetch_async(&bridge).await?; // connect, warm up
        let started = Instant::now();
        for _ in 0..n {
            client.get(&target).fetch_async(&bridge).await?;
        }
        Ok::<Duration, weft::Error>(started.elapsed() / n)
    })?
    .map_err(|e| e.to_string())
}

/// The same sequence through the callbacks, on weft's own loop.
fn latency_run(n: u32, url: &str) -> Result<Duration, String> {
    type Outcome = Rc<Cell<Option<Result<Duration, String>>>>;
    fn next(
        ctx: &mut weft::Ctx,
        client: HttpClient,
        url: Rc<str>,
        left: u32,
        t0: Option<Instant>,
        n: u32,
        out: Outcome,
    ) {
        let c = client.clone();
        client.get(&url).fetch(ctx, move |ctx, result| {
            if let Err(e) = result {
                out.set(Some(Err(e.to_string())));
                return ctx.stop();
            }
            // The first request connects and warms up; the clock starts after it.
            let t0 = t0.unwrap_or_else(Instant::now);
            if left == 0 {
                out.set(Some(Ok(t0.elapsed() / n)));
                return ctx.stop();
            }
            next(ctx, c, url, left - 1, Some(t0), n, out);
        });
    }
    let mut reactor = Reactor::new().map_err(|e| e.to_string())?;
    let client = HttpClient::new(reactor.ctx());
    let out: Outcome = Rc::default();
    next(reactor.ctx(), client, url.into(), n, None, n, out.clone());
    reactor.run().map_err(|e| e.to_string())?;
    out.take()
        .unwrap_or_else(|| Err("the reactor stopped early".into()))
}

/// Two requests, one after the other, as straight-line code.
async fn requests(client: &HttpClient, bridge: &Bridge, url: &str) -> Result<(), weft::Error> {
    let page = client.get(url).fetch_async(bridge).await?;
    println!("status: {}", page.code);
    println!("body: {} bytes", page.body.len());

    // The body as a stream: a chunk not yet taken pauses the socket.
    let response = client.get(url).send_async(bridge).await?;
    let mut body = response.into_stream(bridge);
    let mut streamed = 0;
    while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
        streamed += chunk?.len();
    }
    println!("streamed: {streamed} bytes");
    Ok(())
}
