//! Lifecycle events through the `log` crate against the real nginx: connect, reuse, redirect
//! and close at debug level (and a retry, against a scripted server), heads at trace level with credentials masked, and a failed
//! connect named. One test: the logger is process-wide.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use support::scripted::{ScriptedServer, Step, response};
use support::servers::Nginx;
use weft::client::{Backoff, RetryPolicy};
use weft::{FullResponse, HttpClient, Reactor};

/// Every record logged, as (level, target, message).
static RECORDS: Mutex<Vec<(Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        RECORDS.lock().unwrap().push((
            record.level(),
            record.target().to_string(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

type Results = Rc<RefCell<Vec<Result<FullResponse, weft::Error>>>>;

/// Fetches each URL in turn (one after the other, so the second can reuse the first's
/// connection) and returns the outcomes.
fn fetch_in_turn(
    urls: Vec<(String, Option<&'static str>)>,
) -> Vec<Result<FullResponse, weft::Error>> {
    fn next(
        ctx: &mut weft::Ctx,
        client: HttpClient,
        mut urls: Vec<(String, Option<&'static str>)>,
        out: Results,
    ) {
        if urls.is_empty() {
            return ctx.stop();
        }
        let (url, secret) = urls.remove(0);
        let mut request = client.get(url);
        if let Some(secret) = secret {
            request = request
                .header("Authorization", secret)
                .header("Cookie", secret);
        }
        let c = client.clone();
        request.fetch(ctx, move |ctx, result| {
            out.borrow_mut().push(result);
            next(ctx, c, urls, out);
        });
    }
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::new(reactor.ctx());
    let out = Results::default();
    next(reactor.ctx(), client, urls, out.clone());
    reactor
        .ctx()
        .call_later(Duration::from_secs(20), |ctx| ctx.stop());
    reactor.run().unwrap();
    out.take()
}

fn messages(level: Level) -> Vec<String> {
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, t, _)| *l == level && t.starts_with("weft"))
        .map(|(_, _, m)| m.clone())
        .collect()
}

#[test]
fn lifecycle_at_debug_heads_at_trace_with_credentials_masked() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(LevelFilter::Trace);
    let nginx = Nginx::start();
    let dead = format!("http://127.0.0.1:{}/", support::servers::free_port());
    let outcomes = fetch_in_turn(vec![
        (nginx.http_url("/hello.txt"), Some("Bearer s3cr3t-token")),
        (nginx.http_url("/redirect"), None),
        (dead.clone(), None),
    ]);
    assert_eq!(outcomes[0].as_ref().unwrap().code, 200);
    assert_eq!(outcomes[1].as_ref().unwrap().code, 200);
    assert!(outcomes[2].is_err());

    let debug = messages(Level::Debug);
    let has = |what: &str| debug.iter().any(|m| m.contains(what));
    assert!(has("connecting to 127.0.0.1:"), "{debug:#?}");
    assert!(has("connected to 127.0.0.1"), "{debug:#?}");
    assert!(has("reused for request"), "{debug:#?}");
    assert!(has("redirect 301 (1 of at most"), "{debug:#?}");
    assert!(
        has("failed to connect to 127.0.0.1: connection refused"),
        "{debug:#?}"
    );

    let trace = messages(Level::Trace);
    let heads = trace.join("\n");
    assert!(heads.contains("> GET /hello.txt HTTP/1.1"), "{heads}");
    assert!(heads.contains("> Authorization: <masked>"), "{heads}");
    assert!(heads.contains("> Cookie: <masked>"), "{heads}");
    assert!(heads.contains("< HTTP/1.1 200 OK"), "{heads}");
    assert!(
        heads.contains("< HTTP/1.1 301 Moved Permanently"),
        "{heads}"
    );
    // A retried 503: the retry is logged with its wait and the status that caused it.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("503 Service Unavailable", "", ""),
        Step::ExpectRequest,
        response("200 OK", "", "ok"),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let policy = RetryPolicy {
        backoff: Backoff::Fixed(Duration::from_millis(10)),
        ..RetryPolicy::default()
    };
    let client = HttpClient::builder().retry(policy).build(reactor.ctx());
    let got: Rc<RefCell<Option<Result<FullResponse, weft::Error>>>> = Rc::default();
    let put = got.clone();
    client
        .get(server.url("/flaky"))
        .fetch(reactor.ctx(), move |ctx, r| {
            *put.borrow_mut() = Some(r);
            ctx.stop();
        });
    reactor
        .ctx()
        .call_later(Duration::from_secs(20), |ctx| ctx.stop());
    reactor.run().unwrap();
    assert_eq!(got.take().unwrap().unwrap().code, 200);
    let debug = messages(Level::Debug);
    assert!(
        debug
            .iter()
            .any(|m| m.contains("retry 1 in 10 ms after status 503 - http://127.0.0.1:")),
        "{debug:#?}"
    );

    let all = RECORDS.lock().unwrap();
    assert!(
        !all.iter().any(|(_, _, m)| m.contains("s3cr3t")),
        "a credential reached the log"
    );
}
