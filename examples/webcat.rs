//! `webcat`: fetch a URL and write its body to stdout (Twisted's `webcat.py`).
//!
//! Shows the smallest complete program: a [`Reactor`], an [`Agent`], one request whose
//! response head arrives first, then [`Response::collect`] to read the body into memory.
//!
//! ```sh
//! cargo run --example webcat -- http://127.0.0.1:8080/hello.txt
//! ```
//!
//! Exits 1 when the request fails or the status is 400 or more (the body is still printed).
//!
//! [`Response::collect`]: weft::client::Response::collect

use std::cell::Cell;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Agent, AgentConfig, HttpAgent, Request};
use weft::reactor::Reactor;

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    // Bound the whole request so a silent server cannot hang us.
    let config = AgentConfig {
        timeout: Some(Duration::from_secs(30)),
        ..AgentConfig::default()
    };
    let agent = Agent::new(reactor.ctx(), config);

    // Callbacks run on the reactor; they report the outcome through this shared cell.
    // The callbacks own a copy of the URL, for their messages.
    let name = url.clone();
    let ok = Rc::new(Cell::new(false));
    let result = ok.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", &url),
        Box::new(move |ctx, response| match response {
            Ok(response) => {
                let code = response.code;
                // The head is here; now read the body (at most 64 MiB).
                response.collect(ctx, 64 << 20, move |ctx, body| {
                    match body {
                        Ok(body) => {
                            let mut out = std::io::stdout().lock();
                            let written = out.write_all(&body.body).and_then(|()| out.flush());
                            result.set(written.is_ok() && code < 400);
                            if code >= 400 {
                                eprintln!("webcat: {name}: status {code}");
                            }
                        }
                        Err(e) => eprintln!("webcat: {name}: {e}"),
                    }
                    ctx.stop();
                });
            }
            Err(e) => {
                eprintln!("webcat: {name}: {e}");
                ctx.stop();
            }
        }),
    );
    reactor.run().expect("reactor failed");

    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
