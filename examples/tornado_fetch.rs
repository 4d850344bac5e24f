//! `tornado_fetch`: Tornado's `AsyncHTTPClient.fetch(url, callback)` shape: one
//! [`HttpClient`] fetch per URL, each result handed to a callback, and non-2xx statuses
//! turned into errors (`error_for_status`, Tornado's `raise_error`).
//!
//! ```sh
//! cargo run --example tornado_fetch -- http://127.0.0.1:8080/a http://127.0.0.1:8080/b
//! ```
//!
//! The callback prints `<url>: <code> <n> bytes in <ms> ms` and the body, or
//! `Error: <url>: HTTP <code>` for an error status, `Error: <url>: <error>` for a failure.
//! The program stops when every fetch has reported, and exits 1 if any failed.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Cause, Error, FullResponse, HttpClient};
use weft::reactor::{Ctx, Reactor};

/// The callback, as in Tornado's docs: print the body, or the error.
fn handle_response(url: &str, result: Result<FullResponse, Error>) -> bool {
    match result {
        Ok(r) => {
            println!(
                "{url}: {} {} bytes in {} ms",
                r.code,
                r.body.len(),
                r.total.as_millis()
            );
            print!("{}", r.text());
            true
        }
        Err(e) => {
            // A response refused for its status carries the code in the cause; anything
            // else (refused connection, timeout...) is a transport or protocol failure.
            match e.cause() {
                Cause::HttpStatus(code) => println!("Error: {url}: HTTP {code}"),
                _ => println!("Error: {url}: {e}"),
            }
            false
        }
    }
}

fn main() -> ExitCode {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("http://127.0.0.1:8080/".to_string());
    }

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        // Every non-2xx response becomes an error (a request can override it).
        .error_for_status(true)
        .build(reactor.ctx());

    // All fetches start at once; the last callback stops the loop.
    let pending = Rc::new(Cell::new(urls.len()));
    let failed = Rc::new(Cell::new(false));
    for url in urls {
        let (pending, failed) = (pending.clone(), failed.clone());
        client
            .get(&url)
            .fetch(reactor.ctx(), move |ctx: &mut Ctx, result| {
                if !handle_response(&url, result) {
                    failed.set(true);
                }
                pending.set(pending.get() - 1);
                if pending.get() == 0 {
                    ctx.stop();
                }
            });
    }
    reactor.run().expect("reactor failed");

    if failed.get() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
