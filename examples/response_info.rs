//! `response_info`: print a response's head as soon as it arrives, then stream its body to a
//! [`BodyProtocol`] that counts the bytes (Twisted's `Response.deliverBody`).
//!
//! The head (version, code, phrase, header fields) is printed before a single body byte is
//! read; the body then flows to `Counter`, which sees each piece as it comes off the socket
//! and is told once how the body ended (`Done`, `PotentialDataLoss` or `Failed`).
//!
//! ```sh
//! cargo run --example response_info -- http://127.0.0.1:8080/big.bin
//! ```
//!
//! Prints `HTTP/1.1 200 OK`, one `name: value` line per field, then
//! `body: <n> bytes in <pieces> pieces, end: Done`. Exits 1 unless the body ended `Done`.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, HttpAgent, Request};
use weft::reactor::{Ctx, Reactor};

/// Counts body bytes and pieces; reports and stops the reactor at the end.
struct Counter {
    bytes: u64,
    pieces: u64,
    ok: Rc<Cell<bool>>,
}

impl BodyProtocol for Counter {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
        // `data` borrows the connection's read buffer: copy it if you need to keep it.
        self.bytes += data.len() as u64;
        self.pieces += 1;
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let end = match &reason {
            BodyEnd::Done => "Done".to_string(),
            BodyEnd::PotentialDataLoss => "PotentialDataLoss".to_string(),
            BodyEnd::Failed(e) => format!("Failed ({e})"),
        };
        println!(
            "body: {} bytes in {} pieces, end: {end}",
            self.bytes, self.pieces
        );
        self.ok.set(reason.is_done());
        ctx.stop();
    }
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
    let agent = Agent::new(reactor.ctx(), config);

    // The callbacks own a copy of the URL, for their messages.
    let name = url.clone();
    let ok = Rc::new(Cell::new(false));
    let counter_ok = ok.clone();
    agent.request(
        reactor.ctx(),
        Request::new("GET", &url),
        Box::new(move |ctx, result| match result {
            Ok(response) => {
                // The head, before any body byte is read.
                println!("{} {} {}", response.version, response.code, response.phrase);
                for (name, value) in response.headers.iter() {
                    println!("{name}: {}", String::from_utf8_lossy(value));
                }
                match response.length {
                    Some(n) => println!("length: {n}"),
                    None => println!("length: unknown"),
                }
                // Nothing of the body has been read yet: reading starts now.
                response.deliver_body(
                    ctx,
                    Counter {
                        bytes: 0,
                        pieces: 0,
                        ok: counter_ok,
                    },
                );
            }
            Err(e) => {
                eprintln!("response_info: {name}: {e}");
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
