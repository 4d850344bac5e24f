//! `blocking`: the blocking client, [`weft::blocking::Client`] (Tornado's `HTTPClient`): no
//! callbacks, each call runs the client's own reactor until the response is complete.
//!
//! Gets the URL twice (the second request reuses the pooled connection), then prints the
//! pool's counts.
//!
//! ```sh
//! cargo run --example blocking -- http://127.0.0.1:8080/hello.txt
//! ```
//!
//! Prints `status: <code> <phrase>`, `content-type: ...`, `body: <n> bytes`, the body, then
//! `second: <code>` and
//! `pool: <opened> opened, <reused> reused, <idle> idle`. Exits 1 on failure or a status of 400 or more.

use std::process::ExitCode;
use std::time::Duration;

use weft::Error;
use weft::blocking::Client;

fn run(url: &str) -> Result<bool, Error> {
    // The same builder as on a reactor. Bound each call: the blocking client waits as long
    // as the agent lets it.
    let mut client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build_blocking()
        .expect("cannot create the client");

    let r = client.get(url)?;
    println!("status: {} {}", r.code, r.phrase);
    if let Some(ct) = r.headers.get_str("content-type") {
        println!("content-type: {ct}");
    }
    println!("body: {} bytes", r.body.len());
    println!("{}", r.text());

    let again = client.get(url)?;
    println!("second: {}", again.code);
    let stats = client.stats()?;
    println!(
        "pool: {} opened, {} reused, {} idle",
        stats.connections_opened, stats.reused, stats.idle
    );
    Ok(r.code < 400 && again.code < 400)
}

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());
    match run(&url) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("blocking: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
