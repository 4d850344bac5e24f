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

use std::cell::Cell;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use futures_core::Stream;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::LocalSet;
use weft::futures::{AsyncRequest, AsyncResponse, Bridge};
use weft::{HttpClient, Reactor};

const TICK: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start tokio");

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let client = HttpClient::new(reactor.ctx());
    // The futures reach the reactor through the bridge; they must be polled on this thread.
    let bridge = Bridge::new(&reactor);
    let done = Rc::new(Cell::new(false));
    let set = LocalSet::new();

    // weft's reactor as a tokio task: tokio waits on the reactor's descriptor with the rest of
    // its sources, bounded by weft's next timer, and each wake-up runs a non-blocking
    // dispatch. Nothing polls: between events this task costs nothing.
    let finished = done.clone();
    set.spawn_local(async move {
        // tokio waits on a duplicate of the descriptor (the same epoll instance), owned, so
        // it stays valid as long as the `AsyncFd`: the I/O safety the deprecation asks for.
        let owned = match reactor.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => return eprintln!("embed_tokio: cannot wait on the reactor: {e}"),
        };
        #[allow(deprecated)]
        let fd = match AsyncFd::with_interest(owned, Interest::READABLE) {
            Ok(fd) => fd,
            Err(e) => return eprintln!("embed_tokio: cannot wait on the reactor: {e}"),
        };
        while !finished.get() {
            if let Err(e) = reactor.dispatch() {
                return eprintln!("embed_tokio: reactor: {e}");
            }
            // No weft timer pending: wake now and then anyway, to notice the end.
            let wait = reactor.timeout().unwrap_or(Duration::from_millis(100));
            tokio::select! {
                ready = fd.readable() => match ready {
                    // Edge-triggered: clear before dispatching, which drains what is ready.
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => return eprintln!("embed_tokio: reactor descriptor: {e}"),
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });

    // The application's own work, going on while the requests wait.
    let ticks = Rc::new(Cell::new(0u32));
    let (counting, finished) = (ticks.clone(), done.clone());
    set.spawn_local(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.tick().await; // the first tick is immediate
        while !finished.get() {
            interval.tick().await;
            counting.set(counting.get() + 1);
        }
    });

    let result = runtime.block_on(set.run_until(async move {
        let outcome = requests(&client, &bridge, &url).await;
        done.set(true);
        outcome
    }));
    match result {
        Ok(()) => {
            println!("ticks: {}", ticks.get());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed_tokio: {e}");
            ExitCode::FAILURE
        }
    }
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
