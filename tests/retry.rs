//! The retry policy (`ClientBuilder::retry`, `RetryAgent`) against scripted flaky servers on
//! loopback: what is retried and what is not, `Retry-After` and its caps, the request body,
//! the discarded responses' connections, cancelling during a wait, and nothing left behind.

mod support;

use std::cell::RefCell;
use std::io::Cursor;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::baseline::{Baseline, assert_nothing_pooled};
use support::scripted::{ScriptedServer, Step, response, test_config, turn_for, turn_until, write};
use weft::client::{
    AgentConfig, Backoff, Cause, Phase, ReadProducer, RequestHandle, RetryHook, RetryPolicy,
    TimeoutKind,
};
use weft::{Error, FullResponse, HttpClient, Reactor, RequestBuilder};

type Got = Rc<RefCell<Option<Result<FullResponse, Error>>>>;

/// A policy that waits 20 ms between attempts, so that tests stay quick.
fn quick() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::Fixed(Duration::from_millis(20)),
        ..RetryPolicy::default()
    }
}

fn client_with(reactor: &mut Reactor, config: AgentConfig, policy: RetryPolicy) -> HttpClient {
    HttpClient::builder()
        .agent_config(config)
        .retry(policy)
        .build(reactor.ctx())
}

/// Starts `build`'s request; the result lands in the returned slot.
fn start(
    reactor: &mut Reactor,
    client: &HttpClient,
    build: impl FnOnce(&HttpClient) -> RequestBuilder,
) -> (Got, RequestHandle) {
    let got: Got = Rc::default();
    let g = got.clone();
    let handle = build(client).fetch(reactor.ctx(), move |_, r| *g.borrow_mut() = Some(r));
    (got, handle)
}

fn wait_for(reactor: &mut Reactor, got: &Got) -> Result<FullResponse, Error> {
    turn_until(reactor, Duration::from_secs(15), || got.borrow().is_some());
    got.borrow_mut().take().unwrap()
}

/// Fetches one request with `policy` and the test agent settings; also gives the time taken.
fn fetch(
    policy: RetryPolicy,
    config: AgentConfig,
    build: impl FnOnce(&HttpClient) -> RequestBuilder,
) -> (Result<FullResponse, Error>, Duration) {
    let mut reactor = Reactor::new().unwrap();
    let client = client_with(&mut reactor, config, policy);
    let baseline = Baseline::take(&mut reactor);
    let t0 = Instant::now();
    let (got, _) = start(&mut reactor, &client, build);
    let result = wait_for(&mut reactor, &got);
    let took = t0.elapsed();
    // Nothing of the request is left: no request, no timer, no connection once idle ones go.
    let agent = client.pool().unwrap();
    agent.close_idle(reactor.ctx());
    assert_nothing_pooled(&mut reactor, agent);
    drop(client);
    baseline.assert_back(&mut reactor);
    (result, took)
}

fn ok() -> Step {
    response("200 OK", "", "fine")
}

fn unavailable(extra: &str) -> Step {
    response("503 Service Unavailable", extra, "busy")
}

/// The request lines the server read, in order.
fn request_lines(server: &ScriptedServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|(_, raw)| {
            let text = String::from_utf8_lossy(raw);
            text.lines().next().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn a_503_then_200_succeeds_on_the_second_attempt_and_both_are_in_the_history() {
    // The 503's small body is read to its end, so the retry reuses its connection.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable(""),
        Step::ExpectRequest,
        ok(),
    ]]);
    let (r, _) = fetch(quick(), test_config(), |c| c.get(server.url("/flaky")));
    let r = r.unwrap();
    assert_eq!((r.code, r.text().as_str()), (200, "fine"));
    let history: Vec<u16> = r.history.iter().map(|p| p.code).collect();
    assert_eq!(history, [503]);
    assert_eq!(r.history[0].url.path(), "/flaky");
    assert_eq!(r.timing.retries, 1);
    assert!(
        r.timing.redirect >= Duration::from_millis(20),
        "{:?}",
        r.timing
    );
    assert!(r.total >= r.timing.redirect);
    assert_eq!(request_lines(&server), ["GET /flaky HTTP/1.1"; 2]);
    assert_eq!(
        server.connections(),
        1,
        "the read 503's connection is reused"
    );
}

#[test]
fn a_retried_response_whose_body_is_not_read_never_returns_its_connection() {
    // A chunked 503 is dropped unread: its connection is closed, the retry opens another.
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n"),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, ok()],
    ]);
    let (r, _) = fetch(quick(), test_config(), |c| c.get(server.url("/")));
    assert_eq!(r.unwrap().code, 200);
    let conns: Vec<usize> = server.requests().iter().map(|(c, _)| *c).collect();
    assert_eq!(conns, [0, 1]);
}

#[test]
fn each_hop_of_a_redirect_is_retried_on_its_own() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("302 Found", "Location: /b\r\n", ""),
        Step::ExpectRequest,
        unavailable(""),
        Step::ExpectRequest,
        ok(),
    ]]);
    let (r, _) = fetch(quick(), test_config(), |c| c.get(server.url("/a")));
    let r = r.unwrap();
    assert_eq!(r.code, 200);
    let history: Vec<(u16, &str)> = r.history.iter().map(|p| (p.code, p.url.path())).collect();
    assert_eq!(history, [(302, "/a"), (503, "/b")]);
    assert_eq!(r.timing.retries, 1);
    assert_eq!(
        request_lines(&server),
        ["GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /b HTTP/1.1"]
    );
}

#[test]
fn retry_after_in_seconds_is_honoured() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable("Retry-After: 1\r\n"),
        Step::ExpectRequest,
        ok(),
    ]]);
    let (r, took) = fetch(quick(), test_config(), |c| c.get(server.url("/")));
    assert_eq!(r.unwrap().code, 200);
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn retry_after_as_a_date_is_measured_from_the_response_date() {
    // Two seconds after the server's own Date, whatever the local clock says; a date
    // before it asks for no wait.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable(
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nRetry-After: Sun, 06 Nov 1994 08:49:39 GMT\r\n",
        ),
        Step::ExpectRequest,
        unavailable(
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nRetry-After: Sat, 05 Nov 1994 08:49:37 GMT\r\n",
        ),
        Step::ExpectRequest,
        ok(),
    ]]);
    let (r, took) = fetch(quick(), test_config(), |c| c.get(server.url("/")));
    let r = r.unwrap();
    assert_eq!((r.code, r.timing.retries), (200, 2));
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn a_retry_after_over_the_cap_is_cut_to_the_cap() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable("Retry-After: 3600\r\n"),
        Step::ExpectRequest,
        ok(),
    ]]);
    let policy = RetryPolicy {
        max_retry_after: Duration::from_millis(300),
        ..quick()
    };
    let (r, took) = fetch(policy, test_config(), |c| c.get(server.url("/")));
    assert_eq!(r.unwrap().code, 200);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn hostile_retry_after_values_fall_back_to_the_backoff() {
    let mut script = Vec::new();
    for value in ["-5", "1e9", "soon", "99999999999999999999999999"] {
        script.push(Step::ExpectRequest);
        script.push(unavailable(&format!("Retry-After: {value}\r\n")));
    }
    script.extend([Step::ExpectRequest, ok()]);
    let server = ScriptedServer::start(vec![script]);
    let policy = RetryPolicy {
        max_retries: 4,
        max_retry_after: Duration::from_millis(100),
        ..quick()
    };
    let (r, took) = fetch(policy, test_config(), |c| c.get(server.url("/")));
    assert_eq!(r.unwrap().timing.retries, 4);
    // The huge number is capped, the others ignored: 3 backoffs and one capped wait.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_huge_retry_after_past_the_total_cap_gives_up_with_the_last_response() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response(
            "429 Too Many Requests",
            "Retry-After: 100000\r\n",
            "slow down",
        ),
    ]]);
    let policy = RetryPolicy {
        max_retry_after: Duration::from_secs(3600),
        max_total: Some(Duration::from_secs(2)),
        ..quick()
    };
    let (r, took) = fetch(policy, test_config(), |c| c.get(server.url("/")));
    let r = r.unwrap();
    assert_eq!((r.code, r.text().as_str()), (429, "slow down"));
    assert_eq!((r.timing.retries, r.history.len()), (0, 0));
    assert!(took < Duration::from_secs(1), "gave up at once: {took:?}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_refused_connection_is_retried_until_a_listener_appears_whatever_the_method() {
    // A request that never left is retried even for POST: the server cannot have seen it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut reactor = Reactor::new().unwrap();
    let policy = RetryPolicy {
        max_retries: 20,
        backoff: Backoff::Fixed(Duration::from_millis(100)),
        ..RetryPolicy::default()
    };
    let client = client_with(&mut reactor, test_config(), policy);
    let url = format!("http://127.0.0.1:{port}/late");
    let (got, _) = start(&mut reactor, &client, |c| c.post(&url).body("payload"));
    turn_for(&mut reactor, Duration::from_millis(350));
    assert!(got.borrow().is_none(), "still retrying");
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = ScriptedServer::start_on(listener, vec![vec![Step::ExpectRequest, ok()]]);
    let r = wait_for(&mut reactor, &got).unwrap();
    assert_eq!(r.code, 200);
    assert!(r.timing.retries >= 2, "{:?}", r.timing);
    let (_, raw) = &server.requests()[0];
    assert!(
        raw.ends_with(b"\r\n\r\npayload"),
        "{}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn refused_connections_end_with_the_last_error_and_the_retries_made() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = RetryPolicy {
        max_retries: 2,
        ..quick()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let (r, _) = fetch(policy, test_config(), |c| c.get(&url));
    let e = r.unwrap_err();
    assert_eq!(e.kind(), "connection_refused");
    assert_eq!(e.retries(), 2);
    assert_eq!(e.retry_refused(), Some("2 retries allowed"));
    assert!(
        e.to_string()
            .ends_with("(after 2 retries; no more: 2 retries allowed)"),
        "{e}"
    );
}

#[test]
fn a_timeout_before_the_first_response_byte_is_retried() {
    let server = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, Step::Sleep(Duration::from_secs(1))],
        vec![Step::ExpectRequest, ok()],
    ]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let (r, _) = fetch(quick(), config, |c| c.get(server.url("/")));
    let r = r.unwrap();
    assert_eq!((r.code, r.timing.retries), (200, 1));
    // A timeout leaves no response: only responses are in the history.
    assert!(r.history.is_empty());
}

#[test]
fn a_timeout_after_some_body_bytes_is_not_retried() {
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes!"),
            Step::Sleep(Duration::from_millis(700)),
        ],
        vec![Step::ExpectRequest, ok()],
    ]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let (r, _) = fetch(quick(), config, |c| c.get(server.url("/")));
    let e = r.unwrap_err();
    assert_eq!(e.phase(), Phase::ResponseFailed);
    assert_eq!(e.timeout().map(|t| t.kind), Some(TimeoutKind::Read));
    assert_eq!((e.retries(), e.retry_refused()), (0, None));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn post_is_retried_only_when_every_method_is() {
    let script = || {
        vec![
            Step::ExpectRequest,
            unavailable(""),
            Step::ExpectRequest,
            ok(),
        ]
    };
    let server = ScriptedServer::start(vec![script()]);
    let (r, _) = fetch(quick(), test_config(), |c| {
        c.post(server.url("/submit")).body("order=1")
    });
    let r = r.unwrap();
    assert_eq!((r.code, r.timing.retries), (503, 0));
    assert_eq!(server.requests().len(), 1);

    let server = ScriptedServer::start(vec![script()]);
    let policy = RetryPolicy {
        all_methods: true,
        ..quick()
    };
    let (r, _) = fetch(policy, test_config(), |c| {
        c.post(server.url("/submit")).body("order=1")
    });
    assert_eq!(r.unwrap().code, 200);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for (_, raw) in &requests {
        assert!(
            raw.ends_with(b"\r\n\r\norder=1"),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn a_sent_body_that_cannot_be_rewound_is_not_sent_again() {
    let streamed = || ReadProducer::new(Cursor::new(b"streamed".to_vec()), Some(8));
    // Answered with a 503 after the body: the 503 is the answer.
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable(""),
        Step::ExpectRequest,
        ok(),
    ]]);
    let (r, _) = fetch(quick(), test_config(), |c| {
        c.put(server.url("/up")).producer(streamed())
    });
    assert_eq!(r.unwrap().code, 503);
    assert_eq!(server.requests().len(), 1);

    // A timeout after the body: the error says why it was not retried.
    let server = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, Step::Sleep(Duration::from_secs(1))],
        vec![Step::ExpectRequest, ok()],
    ]);
    let config = AgentConfig {
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let (r, _) = fetch(quick(), config, |c| {
        c.put(server.url("/up")).producer(streamed())
    });
    let e = r.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert_eq!(
        e.retry_refused(),
        Some("the request body cannot be sent again")
    );
    assert!(
        e.to_string()
            .ends_with("(not retried: the request body cannot be sent again)")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn max_retries_is_respected() {
    let failing = || {
        vec![
            Step::ExpectRequest,
            response("500 Internal Server Error", "Connection: close\r\n", "oops"),
        ]
    };
    let server = ScriptedServer::start((0..10).map(|_| failing()).collect());
    let policy = RetryPolicy {
        max_retries: 2,
        ..quick()
    };
    let (r, _) = fetch(policy, test_config(), |c| c.get(server.url("/")));
    let r = r.unwrap();
    assert_eq!((r.code, r.text().as_str()), (500, "oops"));
    assert_eq!((r.timing.retries, r.history.len()), (2, 2));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_server_failing_forever_is_bounded_by_the_total_cap() {
    let failing = || vec![Step::ExpectRequest, response("502 Bad Gateway", "", "")];
    let server = ScriptedServer::start(vec![(0..50).flat_map(|_| failing()).collect()]);
    let policy = RetryPolicy {
        max_retries: 1000,
        backoff: Backoff::Fixed(Duration::from_millis(100)),
        max_total: Some(Duration::from_millis(700)),
        ..RetryPolicy::default()
    };
    let (r, took) = fetch(policy, test_config(), |c| c.get(server.url("/")));
    let r = r.unwrap();
    assert_eq!(r.code, 502);
    let attempts = server.requests().len();
    assert!((3..=9).contains(&attempts), "{attempts} attempts");
    assert_eq!(r.timing.retries as usize, attempts - 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn cancelling_during_the_wait_ends_the_request_at_once_and_leaves_nothing() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable("Retry-After: 5\r\n"),
        Step::ExpectRequest,
        ok(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let client = client_with(&mut reactor, test_config(), quick());
    let baseline = Baseline::take(&mut reactor);
    let (got, handle) = start(&mut reactor, &client, |c| c.get(server.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        server.requests().len() == 1
    });
    turn_for(&mut reactor, Duration::from_millis(100));
    assert!(got.borrow().is_none(), "waiting out the Retry-After");
    let t0 = Instant::now();
    handle.cancel(reactor.ctx());
    let e = wait_for(&mut reactor, &got).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(matches!(e.cause(), Cause::Cancelled), "{e}");
    assert_eq!(e.retries(), 1);
    assert_eq!(server.requests().len(), 1);
    let agent = client.pool().unwrap();
    agent.close_idle(reactor.ctx());
    assert_nothing_pooled(&mut reactor, agent);
    drop(client);
    baseline.assert_back(&mut reactor);
}

#[test]
fn dropping_the_reactor_during_the_wait_frees_the_request() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable("Retry-After: 5\r\n"),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let client = client_with(&mut reactor, test_config(), quick());
    let (got, _) = start(&mut reactor, &client, |c| c.get(server.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        server.requests().len() == 1
    });
    turn_for(&mut reactor, Duration::from_millis(50));
    assert!(got.borrow().is_none(), "waiting out the Retry-After");
    drop(client);
    drop(reactor);
    // The callback (holding the only other reference to `got`) went with the timer.
    assert_eq!(Rc::strong_count(&got), 1);
}

#[test]
fn the_blocking_client_retries_through_its_builder() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        response("504 Gateway Timeout", "", ""),
        Step::ExpectRequest,
        ok(),
    ]]);
    let mut client = HttpClient::builder()
        .agent_config(test_config())
        .retry(quick())
        .build_blocking()
        .unwrap();
    let r = client.get(&server.url("/")).unwrap();
    assert_eq!((r.code, r.timing.retries), (200, 1));
}

#[test]
fn without_a_policy_nothing_is_retried() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable(""),
        Step::ExpectRequest,
        ok(),
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::builder()
        .agent_config(test_config())
        .build(reactor.ctx());
    let (got, _) = start(&mut reactor, &client, |c| c.get(server.url("/")));
    let r = wait_for(&mut reactor, &got).unwrap();
    assert_eq!((r.code, r.timing.retries), (503, 0));
}

#[test]
fn cancelling_reaches_an_attempt_issued_after_the_handle_was_returned() {
    // The handle the caller holds was returned with the first attempt; the cancel must
    // reach the second, in flight on another connection.
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            response("503 Busy", "Connection: close\r\n", ""),
        ],
        vec![Step::ExpectRequest, Step::WaitClose],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let client = client_with(&mut reactor, test_config(), quick());
    let baseline = Baseline::take(&mut reactor);
    let (got, handle) = start(&mut reactor, &client, |c| c.get(server.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        server.requests().len() == 2
    });
    let t0 = Instant::now();
    handle.cancel(reactor.ctx());
    let e = wait_for(&mut reactor, &got).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(e.retries(), 1);
    let agent = client.pool().unwrap();
    assert_nothing_pooled(&mut reactor, agent);
    drop(client);
    baseline.assert_back(&mut reactor);
}

/// The hook hears of each retry before its wait: which one, how many are left, the wait,
/// what failed and the URL without credentials; never of the final answer.
#[test]
fn the_retry_hook_hears_each_retry_with_what_failed() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        unavailable(""),
        Step::ExpectRequest,
        response("502 Bad Gateway", "", "bad"),
        Step::ExpectRequest,
        ok(),
    ]]);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = heard.clone();
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::builder()
        .agent_config(test_config())
        .retry(quick())
        .on_retry(RetryHook::new(move |n| {
            log.lock().unwrap().push((
                n.retry,
                n.retries_left,
                n.wait,
                n.status,
                n.error.is_some(),
                n.url.to_string(),
            ))
        }))
        .build(reactor.ctx());
    let url = server.url("/flaky").replace("http://", "http://u:pw@");
    let (got, _) = start(&mut reactor, &client, |c| c.get(url));
    assert_eq!(wait_for(&mut reactor, &got).unwrap().code, 200);
    let expected_url = server.url("/flaky");
    let wait = Duration::from_millis(20);
    assert_eq!(
        *heard.lock().unwrap(),
        [
            (1, 2, wait, Some(503), false, expected_url.clone()),
            (2, 1, wait, Some(502), false, expected_url),
        ]
    );
}
