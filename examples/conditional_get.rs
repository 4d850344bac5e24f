//! `conditional_get`: fetch a URL twice through a client built with a [`ValidatorCache`]; the
//! second fetch sends the validators from the first (`If-None-Match`, `If-Modified-Since`),
//! and a `304 Not Modified` answer comes back with the body from the cache (the Twisted
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

use weft::{Ctx, FullResponse, HttpClient, Reactor, ValidatorCache};

/// Prints one fetch's outcome: a `304` carries the cached body.
fn report(n: u32, response: &FullResponse) {
    if response.code == 304 {
        println!(
            "fetch {n}: {} unchanged, {} bytes (from cache)",
            response.code,
            response.body.len()
        );
    } else {
        println!(
            "fetch {n}: {} changed, {} bytes",
            response.code,
            response.body.len()
        );
    }
}

/// Fetches `url` for the `n`th time (of two), then the next time, then stops.
fn fetch(ctx: &mut Ctx, client: HttpClient, url: String, n: u32, ok: Rc<Cell<bool>>) {
    let c = client.clone();
    client.get(&url).fetch(ctx, move |ctx, result| {
        match result {
            Ok(response) => {
                report(n, &response);
                if n == 1 {
                    let cache = c.validator_cache().expect("built with a cache");
                    if let Some(v) = cache.validators(&url) {
                        let etag = v.etag.map(|e| String::from_utf8_lossy(&e).into_owned());
                        println!("cached validators: etag {}", etag.unwrap_or_default());
                    }
                    // Fetch again from inside the callback: the client allows it.
                    return fetch(ctx, c, url, 2, ok);
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
    // The cache is shared with the client: it could outlive it, or be inspected afterwards.
    let cache = ValidatorCache::new();
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        .conditional(cache.clone())
        .build(reactor.ctx());

    let ok = Rc::new(Cell::new(false));
    fetch(reactor.ctx(), client, url, 1, ok.clone());
    reactor.run().expect("reactor failed");

    println!("cache entries: {}", cache.len());
    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
