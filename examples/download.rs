//! `download`: save a URL to a file with progress reports, resuming a partial download
//! (curl's `-o FILE -C -`, Twisted's `downloadPage`).
//!
//! The body is streamed to a hidden partial file next to the target (`.<name>.weft-part`)
//! and renamed over the target only when complete. If a download fails after some bytes
//! arrived from a server that supports ranges, the partial file is kept; run again with
//! `--resume` and only the rest is requested (`Range: bytes=N-`, with `If-Range` so a changed
//! file is fetched whole instead).
//!
//! ```sh
//! cargo run --example download -- http://127.0.0.1:8080/big.bin big.bin --resume
//! ```
//!
//! Progress goes to stderr (`progress: <received>/<total> bytes`); the result to stdout:
//! `saved <bytes> bytes to <path> (status <code>, resumed from <offset>)`. Exits 1 on failure.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Agent, AgentConfig, DownloadOptions, Request, download, partial_path};
use weft::reactor::Reactor;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let resume = args.iter().any(|a| a == "--resume");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let url = positional
        .next()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080/big.bin".to_string());
    let path = positional
        .next()
        .cloned()
        .unwrap_or_else(|| "download.bin".to_string());

    if resume
        && let Some(part) = partial_path(path.as_ref())
        && let Ok(meta) = std::fs::metadata(&part)
    {
        println!("partial file: {} bytes", meta.len());
    }

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let config = AgentConfig {
        // No total timeout for a download of unknown size; fail if the server goes silent.
        read_timeout: Some(Duration::from_secs(30)),
        ..AgentConfig::default()
    };
    let agent = Agent::new(reactor.ctx(), config);

    let options = DownloadOptions {
        resume,
        // Called as bytes arrive (at most every 100 ms), and once more at the end.
        progress: Some(Box::new(|_ctx, p| match p.total {
            Some(total) => eprintln!(
                "progress: {}/{total} bytes ({:.0} KiB/s)",
                p.received,
                p.rate / 1024.0
            ),
            None => eprintln!("progress: {} bytes", p.received),
        })),
        ..DownloadOptions::default()
    };

    let ok = Rc::new(Cell::new(false));
    let result = ok.clone();
    download(
        reactor.ctx(),
        &agent,
        Request::get(&url),
        path,
        options,
        move |ctx, done| {
            match done {
                Ok(d) => {
                    println!(
                        "saved {} bytes to {} (status {}, resumed from {})",
                        d.bytes,
                        d.path.display(),
                        d.status,
                        d.resumed_from
                    );
                    if !d.complete {
                        println!("warning: the server closed the connection to end the body");
                    }
                    result.set(true);
                }
                Err(e) => eprintln!("download: {url}: {e}"),
            }
            ctx.stop();
        },
    );
    reactor.run().expect("reactor failed");

    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
