//! `tokio_multithread`: weft's reactor on a thread of its own, used from a tokio multi-thread
//! runtime through [`weft::SharedClient`], the `Send + Sync + Clone` handle whose requests
//! are futures that any task on any worker thread can `.await`.
//!
//! Eight tasks share one handle (one connection pool, one cookie jar) and fetch the URL 100
//! times between them; the reactor thread does all the I/O.
//!
//! ```sh
//! cargo run --example tokio_multithread -- http://127.0.0.1:8080/hello.txt
//! ```
//!
//! Prints `requests: <ok> ok, <failed> failed`, `bytes: <n>`, `worker threads: <n>` (how many
//! runtime threads issued requests) and `pool: <opened> opened, <reused> reused`; each error
//! goes to stderr. Exits 1 if a request failed or answered 400 or more.
//!
//! `--idle-cpu URL`: one awaited request to a slow URL (e.g. `/slow?s=3`) instead; prints
//! `status: <code>` and `idle-cpu: <ms> ms of CPU in <s> s` for the whole process (the
//! reactor thread, tokio's four workers and the main thread).

#[path = "common/cpu.rs"]
mod cpu;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use weft::{AgentConfig, HttpClient, Reactor, SharedClient};

const REQUESTS: usize = 100;
const TASKS: usize = 8;

/// What one task saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    bytes: usize,
    threads: HashSet<thread::ThreadId>,
}

/// One task: its share of the requests, one after the other.
async fn task(client: SharedClient, url: String, count: usize) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..count {
        tally.threads.insert(thread::current().id());
        match client.get(&url).fetch().await {
            Ok(r) if r.code < 400 => {
                tally.ok += 1;
                tally.bytes += r.body.len();
            }
            Ok(r) => {
                eprintln!("tokio_multithread: {url}: status {}", r.code);
                tally.failed += 1;
            }
            Err(e) => {
                eprintln!("tokio_multithread: {e}");
                tally.failed += 1;
            }
        }
    }
    tally
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let idle_cpu = args.first().is_some_and(|a| a == "--idle-cpu");
    if idle_cpu {
        args.remove(0);
    }
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());

    // The reactor lives and runs on its own thread; the client is built there (its wrapper
    // chain is not `Send`) and only the handle comes back.
    let (tx, rx) = mpsc::channel();
    let reactor_thread = thread::spawn(move || -> std::io::Result<()> {
        let mut reactor = Reactor::new()?;
        // Room in the pool for every task's connection between two requests (the default
        // keeps two idle per host).
        let config = AgentConfig {
            max_idle_per_host: TASKS,
            ..AgentConfig::default()
        };
        let client = HttpClient::builder()
            .agent_config(config)
            .timeout(Duration::from_secs(30))
            .build_shared(reactor.ctx());
        let _ = tx.send((client, reactor.remote()));
        reactor.run()
    });
    let Ok((client, remote)) = rx.recv() else {
        eprintln!(
            "tokio_multithread: cannot start the reactor: {:?}",
            reactor_thread.join()
        );
        return ExitCode::FAILURE;
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("cannot start the tokio runtime");
    if idle_cpu {
        let outcome = idle(&runtime, &client, &url);
        let _ = remote.call(|ctx| ctx.stop());
        let joined = reactor_thread.join().expect("the reactor thread panicked");
        return match outcome.and_then(|()| joined.map_err(|e| format!("reactor: {e}"))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tokio_multithread: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                // 100 over 8 tasks: the first four do one more.
                let count = REQUESTS / TASKS + usize::from(i < REQUESTS % TASKS);
                tokio::spawn(task(client.clone(), url.clone(), count))
            })
            .collect();
        let mut tallies = Vec::new();
        for t in tasks {
            tallies.push(t.await.expect("a task panicked"));
        }
        tallies
    });

    let ok: usize = tallies.iter().map(|t| t.ok).sum();
    let failed: usize = tallies.iter().map(|t| t.failed).sum();
    let bytes: usize = tallies.iter().map(|t| t.bytes).sum();
    let threads: HashSet<_> = tallies.iter().flat_map(|t| &t.threads).collect();
    println!("requests: {ok} ok, {failed} failed");
    println!("bytes: {bytes}");
    println!("worker threads: {}", threads.len());

    // Pool figures are read on the reactor thread, which owns the pool.
    let (stats_tx, stats_rx) = mpsc::channel();
    let asked = client.with_client(move |ctx, client| {
        if let Some(pool) = client.pool() {
            pool.stats(ctx, move |_, stats| {
                let _ = stats_tx.send(stats);
            });
        }
    });
    if asked.is_ok()
        && let Ok(stats) = stats_rx.recv_timeout(Duration::from_secs(5))
    {
        println!(
            "pool: {} opened, {} reused",
            stats.connections_opened, stats.reused
        );
    }

    let _ = remote.call(|ctx| ctx.stop());
    if let Err(e) = reactor_thread.join().expect("the reactor thread panicked") {
        eprintln!("tokio_multithread: reactor: {e}");
        return ExitCode::FAILURE;
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One request to a slow URL, awaited on the runtime: the CPU the whole process spends while
/// it waits (the reactor thread sleeps in its poll, tokio's workers in theirs).
fn idle(runtime: &tokio::runtime::Runtime, client: &SharedClient, url: &str) -> Result<(), String> {
    let cpu = cpu::process_cpu()?;
    let started = Instant::now();
    let page = runtime
        .block_on(client.get(url).fetch())
        .map_err(|e| e.to_string())?;
    println!("status: {}", page.code);
    cpu::report_idle(cpu, started, "")
}
