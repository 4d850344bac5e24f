//! `post_producer`: POST a body generated on the fly by a custom [`BodyProducer`], and print
//! the response (httpbin's `/post` echoes the body back as JSON under `"data"`).
//!
//! The producer writes `line 1` .. `line N` as the socket takes them: it stops when the
//! connection's write buffer is full ([`BodySink::is_full`]) and the agent calls it again once
//! the buffer drains, so even a huge body is never held in memory. Its length is computed up
//! front, so the request carries `Content-Length`; return `None` from `length` to send a
//! chunked body instead. `rewind` lets the agent replay the body if a pooled connection turns
//! out to be dead.
//!
//! ```sh
//! cargo run --example post_producer -- http://127.0.0.1:8080/post 1000
//! ```
//!
//! Prints `status: 200`, `sent: <n> bytes`, then the response body. Exits 1 on failure or a
//! non-2xx status.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{BodyProducer, BodySink, HttpClient, Produce};
use weft::reactor::Reactor;

/// Produces `line 1\n` .. `line <count>\n`, a few lines per call.
struct Lines {
    count: u64,
    next: u64,
}

impl Lines {
    fn new(count: u64) -> Self {
        Lines { count, next: 1 }
    }

    fn line(n: u64) -> String {
        format!("line {n}\n")
    }
}

impl BodyProducer for Lines {
    fn length(&self) -> Option<u64> {
        Some((1..=self.count).map(|n| Lines::line(n).len() as u64).sum())
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        // Write until the socket's buffer is full, then yield: the agent calls again later.
        while self.next <= self.count {
            if sink.is_full() {
                return Produce::More;
            }
            sink.write(Lines::line(self.next).as_bytes());
            self.next += 1;
        }
        Produce::Done
    }

    fn rewind(&mut self) -> bool {
        self.next = 1;
        true
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/post".to_string());
    let count: u64 = match args.next().map(|s| s.parse()) {
        None => 5,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("post_producer: bad line count: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        .build(reactor.ctx());

    let producer = Lines::new(count);
    let length = producer.length().unwrap_or(0);
    let ok = Rc::new(Cell::new(false));
    let result = ok.clone();
    client
        .post(&url)
        .header("Content-Type", "text/plain")
        .producer(producer)
        // `fetch` reads the whole response; `send` would stream it.
        .fetch(reactor.ctx(), move |ctx, response| {
            match response {
                Ok(r) => {
                    println!("status: {}", r.code);
                    println!("sent: {length} bytes");
                    println!("{}", r.text());
                    result.set(r.is_success());
                }
                Err(e) => eprintln!("post_producer: {url}: {e}"),
            }
            ctx.stop();
        });
    reactor.run().expect("reactor failed");

    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
