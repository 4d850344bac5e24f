//! `crawl`: fetch many URLs with at most N requests in flight (the Twisted "semaphore" recipe,
//! as one call: [`HttpClient::fetch_all`]), printing each status as it completes.
//!
//! Requests are created lazily from an iterator, so the list may be long; the agent's pool
//! reuses connections to the same host. Results arrive in completion order, each with its
//! index in the list.
//!
//! ```sh
//! cargo run --example crawl -- --max 4 http://127.0.0.1:8080/a http://127.0.0.1:8080/b
//! ```
//!
//! Prints `[<index>] <url>: <code> <phrase>, <n> bytes` or `[<index>] <url>: error: ...` per
//! URL, then `done: <ok> ok, <failed> failed`. Exits 1 if any request failed (an HTTP error
//! status is a response, not a failure).

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::HttpClient;
use weft::reactor::Reactor;

fn main() -> ExitCode {
    let mut max_in_flight = 4;
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--max" {
            match args.next().map(|n| n.parse()) {
                Some(Ok(n)) => max_in_flight = n,
                _ => {
                    eprintln!("crawl: --max needs a number");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            urls.push(arg);
        }
    }
    if urls.is_empty() {
        urls = (1..=3)
            .map(|i| format!("http://127.0.0.1:8080/{i}"))
            .collect();
    }

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        .build(reactor.ctx());

    let ok = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let (ok_count, failed_count) = (ok.clone(), failed.clone());
    let names = urls.clone();
    let c = client.clone();
    client.fetch_all(
        reactor.ctx(),
        // Built one at a time, as slots free up.
        urls.into_iter().map(move |u| c.get(&u)),
        max_in_flight,
        move |_ctx, i, result| match result {
            Ok(r) => {
                println!(
                    "[{i}] {}: {} {}, {} bytes",
                    names[i],
                    r.code,
                    r.phrase,
                    r.body.len()
                );
                ok_count.set(ok_count.get() + 1);
            }
            Err(e) => {
                println!("[{i}] {}: error: {e}", names[i]);
                failed_count.set(failed_count.get() + 1);
            }
        },
        |ctx| ctx.stop(),
    );
    reactor.run().expect("reactor failed");

    println!("done: {} ok, {} failed", ok.get(), failed.get());
    if failed.get() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
