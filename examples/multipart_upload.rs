//! `multipart_upload`: upload a file from disk as `multipart/form-data`, streamed, with a
//! text field beside it (httpbin's `/post` echoes the form and the file back as JSON).
//!
//! [`Multipart::file`] takes only the file's length when the form is built; the content is
//! read in pieces as the socket takes them, so large files are never loaded whole. The
//! whole body's length is known, so the request carries `Content-Length`.
//!
//! ```sh
//! cargo run --example multipart_upload -- http://127.0.0.1:8080/post ./notes.txt
//! ```
//!
//! Prints `status: 200`, `uploaded: <file> (<n> bytes)`, then the response body. Exits 1 on
//! failure or a non-2xx status.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{Agent, AgentConfig, HttpAgent, Multipart, Request};
use weft::reactor::Reactor;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/post".to_string());
    let Some(path) = args.next() else {
        eprintln!("usage: multipart_upload URL FILE");
        return ExitCode::FAILURE;
    };

    // The form: one text field and one file field named "file". `file` fails here if the
    // file cannot be read.
    let form = match Multipart::new()
        .text("comment", "uploaded by weft")
        .file("file", &path)
    {
        Ok(form) => form,
        Err(e) => {
            eprintln!("multipart_upload: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // `attach` sets the body and `Content-Type: multipart/form-data; boundary=...`.
    let request = form.attach(Request::new("POST", &url));

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let config = AgentConfig {
        timeout: Some(Duration::from_secs(60)),
        ..AgentConfig::default()
    };
    let agent = Agent::new(reactor.ctx(), config);

    let ok = Rc::new(Cell::new(false));
    let result = ok.clone();
    // `Agent::request` takes the parts of a request; the `HttpAgent` trait method, shared by
    // every agent and wrapper, takes a whole `Request`.
    HttpAgent::request(
        &agent,
        reactor.ctx(),
        request,
        Box::new(move |ctx, response| match response {
            Ok(response) => {
                let code = response.code;
                response.collect(ctx, 16 << 20, move |ctx, body| {
                    match body {
                        Ok(body) => {
                            println!("status: {code}");
                            println!("uploaded: {path} ({size} bytes)");
                            println!("{}", String::from_utf8_lossy(&body.body));
                            result.set((200..300).contains(&code));
                        }
                        Err(e) => eprintln!("multipart_upload: {url}: {e}"),
                    }
                    ctx.stop();
                });
            }
            Err(e) => {
                eprintln!("multipart_upload: {url}: {e}");
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
