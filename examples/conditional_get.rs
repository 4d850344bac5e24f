//! `conditional_get`: fetch a URL twice through a [`ConditionalAgent`]; the second fetch sends
//! the validators from the first (`If-None-Match`, `If-Modified-Since`), and a `304 Not
//! Modified` answer comes back as "unchanged" with the body from the cache (the Twisted
//! book's `updatecheck`).
//!
//! Works with any server that sends `ETag` or `Last-Modified` (nginx does for static files).
//!
//! ```sh
//! cargo run --example conditional_get -- http://127.0.0.1:8080/hello.txt
//! ```
//!
//! Prints one line per fetch, e.g. `fetch 1: 200 changed, 12 bytes` then
//! `fetch 2: 304 unchanged, 12 bytes (from cache)`, and the cached ETag. Exits 1 on failure.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Agent, AgentConfig, ConditionalAgent, Fetched, Freshness, ValidatorCache};
use weft::proto::Headers;
use weft::reactor::{Ctx, Reactor};

type Conditional = ConditionalAgent<Agent>;

/// Prints one fetch's outcome.
fn report(n: u32, fetched: &Fetched) {
    match fetched.freshness {
        Freshness::Changed => println!(
            "fetch {n}: {} changed, {} bytes",
            fetched.code,
            fetched.body.len()
        ),
        Freshness::Unchanged => println!(
            "fetch {n}: {} unchanged, {} bytes (from cache)",
            fetched.code,
            fetched.body.len()
        ),
    }
}

/// Fetches `url` for the `n`th time (of two), then the next time, then stops.
fn fetch(ctx: &mut Ctx, agent: Rc<Conditional>, url: String, n: u32, ok: Rc<Cell<bool>>) {
    let a = agent.clone();
    let target = url.clone();
    agent.fetch(ctx, &target, Headers::new(), move |ctx, result| {
        match result {
            Ok(fetched) => {
                report(n, &fetched);
                if n == 1 {
                    if let Some(v) = a.cache().validators(&url) {
                        let etag = v.etag.map(|e| String::from_utf8_lossy(&e).into_owned());
                        println!("cached validators: etag {}", etag.unwrap_or_default());
                    }
                    // Fetch again from inside the callback: the agent allows it.
                    return fetch(ctx, a, url, 2, ok);
                }
                ok.set(true);
            }
            Err(e) => eprintln!("conditional_get: {url}: {e}"),
        }
        ctx.stop();
    });
}

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let config = AgentConfig {
        timeout: Some(Duration::from_secs(30)),
        ..AgentConfig::default()
    };
    // The cache is shared with the agent: it could outlive it, or be inspected afterwards.
    let cache = ValidatorCache::new();
    let agent = Rc::new(ConditionalAgent::new(
        Agent::new(reactor.ctx(), config),
        cache.clone(),
    ));

    let ok = Rc::new(Cell::new(false));
    fetch(reactor.ctx(), agent, url, 1, ok.clone());
    reactor.run().expect("reactor failed");

    println!("cache entries: {}", cache.len());
    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
