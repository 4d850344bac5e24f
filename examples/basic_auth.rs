//! `basic_auth`: HTTP Basic authentication with a retry on `401` (Twisted's webcat3 flow,
//! automated by the session builder's [`auth`](weft::ClientBuilder::auth)).
//!
//! The first request goes out without credentials; the server answers `401` with a
//! `WWW-Authenticate: Basic` challenge; the authentication wrapper reads that response, then sends
//! the request again once with `Authorization: Basic ...`. The final response lists the `401`
//! in its history. ([`AuthMode::Basic`] would instead send the credentials up front, as
//! curl's `-u` does, and a request's own `basic_auth` sends them on that request alone.)
//!
//! ```sh
//! cargo run --example basic_auth -- http://127.0.0.1:8080/basic-auth/user/passwd user passwd
//! ```
//!
//! Prints `history: 401`, `status: 200` and the body. Exits 1 when the final status is not
//! 2xx (wrong credentials end in `status: 401`) or the request fails.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{AuthMode, Credentials};
use weft::{HttpClient, Reactor};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/basic-auth/user/passwd".to_string());
    let user = args.next().unwrap_or_else(|| "user".to_string());
    let password = args.next().unwrap_or_else(|| "passwd".to_string());

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    // Agent -> ... -> authentication (answers challenges), stacked by the builder.
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        .auth(Credentials::new(&user, &password), AuthMode::Auto)
        .build(reactor.ctx());

    let ok = Rc::new(Cell::new(false));
    let result = ok.clone();
    client.get(&url).fetch(reactor.ctx(), move |ctx, response| {
        match response {
            Ok(r) => {
                // Each earlier response of this exchange: here the 401 challenge.
                for previous in &r.history {
                    println!("history: {}", previous.code);
                }
                println!("status: {}", r.code);
                println!("{}", r.text());
                result.set(r.is_success());
            }
            Err(e) => eprintln!("basic_auth: {url}: {e}"),
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
