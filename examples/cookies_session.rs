//! `cookies_session`: a session that keeps cookies across requests in a [`CookieJar`] (the
//! session builder's default: a cookie wrapper, Twisted's `CookieAgent`, under the redirect
//! wrapper).
//!
//! Against httpbin: `/cookies/set?name=value` sets cookies and redirects to `/cookies`, which
//! echoes the cookies the client sent; `/cookies/delete?name` expires one. The cookie agent
//! sits *inside* the redirect agent so every hop's `Set-Cookie` is stored and every hop gets
//! the cookies of its own URL.
//!
//! ```sh
//! cargo run --example cookies_session -- http://127.0.0.1:8080 session=abc123 theme=dark
//! ```
//!
//! For each of three steps (set the cookies, read them back, delete the first one) prints
//! `<step>: <code>`, the server's view `server saw: {...}` and the jar's content
//! `jar: name=value`. Exits 1 on any failure.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use weft::client::CookieJar;
use weft::{Ctx, HttpClient, Reactor};

/// One request of the session: a label and a URL.
struct Step {
    label: &'static str,
    url: String,
}

/// Runs `steps` one after the other (each from the previous one's callback), then stops.
fn run(
    ctx: &mut Ctx,
    client: HttpClient,
    jar: CookieJar,
    base: Rc<String>,
    mut steps: Vec<Step>,
    ok: Rc<Cell<bool>>,
) {
    if steps.is_empty() {
        ok.set(true);
        ctx.stop();
        return;
    }
    let step = steps.remove(0);
    let c = client.clone();
    client
        .get(&step.url)
        .error_for_status(true)
        .fetch(ctx, move |ctx, result| {
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cookies_session: {}: {e}", step.url);
                    ctx.stop();
                    return;
                }
            };
            println!("{}: {}", step.label, response.code);
            // httpbin answers {"cookies": {"name": "value", ...}}.
            match response.json::<serde_json::Value>() {
                Ok(json) => println!("server saw: {}", json["cookies"]),
                Err(_) => println!("server said: {}", response.text()),
            }
            for (name, value) in jar.cookies_for(&base) {
                println!("jar: {name}={value}");
            }
            run(ctx, c, jar, base, steps, ok);
        });
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    let base = base.trim_end_matches('/').to_string();
    let mut cookies: Vec<String> = args.collect();
    if cookies.is_empty() {
        cookies = vec!["session=abc123".to_string(), "theme=dark".to_string()];
    }
    let first_name = cookies[0].split('=').next().unwrap_or_default().to_string();

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    // The jar is shared: the client fills it, and we read it between requests.
    let jar = CookieJar::new();
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(30))
        .cookie_jar(jar.clone())
        .build(reactor.ctx());

    let steps = vec![
        Step {
            label: "set",
            url: format!("{base}/cookies/set?{}", cookies.join("&")),
        },
        Step {
            label: "get",
            url: format!("{base}/cookies"),
        },
        Step {
            label: "delete",
            url: format!("{base}/cookies/delete?{first_name}"),
        },
    ];
    let ok = Rc::new(Cell::new(false));
    let base = Rc::new(format!("{base}/"));
    run(reactor.ctx(), client, jar, base, steps, ok.clone());
    reactor.run().expect("reactor failed");

    if ok.get() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
