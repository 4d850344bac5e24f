//! RedirectAgent against nginx, httpbin and scripted servers: following, method rewriting,
//! body replay, scheme and downgrade refusals, the credential matrix, limits, cancellation.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::scripted::*;
use support::servers::{Httpbin, Nginx, TestCa, TestDir};
use weft::client::{
    Agent, AgentConfig, Cause, Error, HttpAgent, PreviousResponse, ReadProducer, RedirectAgent,
    RedirectConfig, Request, RequestHandle, TimeoutKind, Timeouts, Timing,
};
use weft::proto::Headers;
use weft::reactor::Reactor;
use weft::tls::TlsConnector;

/// What a request through the redirect agent ended with.
#[derive(Debug, Default)]
struct Got {
    code: Option<u16>,
    url: String,
    method: String,
    headers: Headers,
    history: Vec<PreviousResponse>,
    timing: Option<Timing>,
    body: Vec<u8>,
    error: Option<Error>,
    finished: bool,
}

impl Got {
    fn cause(&self) -> Option<&Cause> {
        self.error.as_ref().map(|e| e.cause())
    }

    fn history_codes(&self) -> Vec<u16> {
        self.history.iter().map(|h| h.code).collect()
    }
}

type Shared = Rc<RefCell<Got>>;

fn start<A: HttpAgent>(reactor: &mut Reactor, agent: &A, req: Request) -> (Shared, RequestHandle) {
    let got: Shared = Rc::default();
    let g = got.clone();
    let handle = agent.request(
        reactor.ctx(),
        req,
        Box::new(move |ctx, r| match r {
            Ok(resp) => {
                {
                    let mut o = g.borrow_mut();
                    o.code = Some(resp.code);
                    o.url = resp.url.to_string();
                    o.method = resp.method.to_string();
                    o.headers = resp.headers.clone();
                    o.history = resp.history.clone();
                    o.timing = Some(resp.timing);
                }
                resp.collect(ctx, 1 << 20, move |_, body| {
                    let mut o = g.borrow_mut();
                    match body {
                        Ok(b) => o.body = b.body,
                        Err(e) => o.error = Some(e),
                    }
                    o.finished = true;
                });
            }
            Err(e) => {
                let mut o = g.borrow_mut();
                o.error = Some(e);
                o.finished = true;
            }
        }),
    );
    (got, handle)
}

fn wait(reactor: &mut Reactor, got: &Shared) {
    turn_until(reactor, Duration::from_secs(15), || got.borrow().finished);
}

/// A reactor, and a redirect agent over a fresh Agent with `config`.
fn setup(agent: AgentConfig, config: RedirectConfig) -> (Reactor, RedirectAgent<Agent>) {
    let mut reactor = Reactor::new().unwrap();
    let inner = Agent::new(reactor.ctx(), agent);
    (reactor, RedirectAgent::new(inner, config))
}

fn run(config: RedirectConfig, req: Request) -> Got {
    let (mut reactor, agent) = setup(test_config(), config);
    let (got, _) = start(&mut reactor, &agent, req);
    wait(&mut reactor, &got);
    got.take()
}

fn follow(req: Request) -> Got {
    run(RedirectConfig::default(), req)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The header section of the `i`th recorded request, lower-cased.
fn request_head(srv: &ScriptedServer, i: usize) -> String {
    let reqs = srv.requests();
    let raw = &reqs[i].1;
    let end = find(raw, b"\r\n\r\n").map_or(raw.len(), |e| e + 4);
    text(&raw[..end]).to_ascii_lowercase()
}

fn request_body(srv: &ScriptedServer, i: usize) -> Vec<u8> {
    let reqs = srv.requests();
    let raw = &reqs[i].1;
    let end = find(raw, b"\r\n\r\n").map_or(raw.len(), |e| e + 4);
    raw[end..].to_vec()
}

fn redirect_to(code: u16, location: &str) -> Step {
    write(
        format!("HTTP/1.1 {code} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Waits a little so that a hop the agent should not send would have reached the server.
fn settle(reactor: &mut Reactor) {
    for _ in 0..10 {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
}

// ---- nginx ---------------------------------------------------------------------------------

#[test]
fn nginx_301_absolute_is_followed_on_the_same_connection() {
    let nginx = Nginx::start();
    let got = follow(Request::get(nginx.http_url("/redirect")));
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.body, b"hello world\n");
    assert_eq!(got.url, nginx.http_url("/hello.txt"));
    assert_eq!(got.history_codes(), vec![301]);
    assert_eq!(got.history[0].url.as_str(), nginx.http_url("/redirect"));
    let location = got.history[0].headers.get_str("location").unwrap();
    assert!(location.starts_with("http://"), "{location}");
    // The 301's small body was read, so its connection carried the second hop.
    nginx.wait_access_log(2);
    assert_eq!(nginx.distinct_connections(), 1);
}

#[test]
fn nginx_relative_redirect() {
    let nginx = Nginx::start();
    let got = follow(Request::get(nginx.http_url("/redirect-relative")));
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.body, b"hello world\n");
    assert_eq!(got.url, nginx.http_url("/hello.txt"));
    assert_eq!(
        got.history[0].headers.get_str("location"),
        Some("/hello.txt")
    );
}

#[test]
fn nginx_302_found() {
    let nginx = Nginx::start();
    let got = follow(Request::get(nginx.http_url("/found")));
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.history_codes(), vec![302]);
    assert_eq!(got.method, "GET");
    let timing = got.timing.unwrap();
    assert!(timing.redirect > Duration::ZERO, "{timing:?}");
}

#[test]
fn nginx_loop_stops_at_the_limit() {
    let nginx = Nginx::start();
    let config = RedirectConfig {
        max_redirects: 3,
        ..RedirectConfig::default()
    };
    let got = run(config, Request::get(nginx.http_url("/redirect-loop")));
    assert_eq!(got.cause(), Some(&Cause::TooManyRedirects(3)), "{got:?}");
    assert!(got.error.as_ref().unwrap().server_may_have_processed());
    let log = nginx.wait_access_log(4);
    std::thread::sleep(Duration::from_millis(100));
    let log2 = nginx.access_log_entries();
    assert_eq!(log2.len(), 4, "{log2:?}");
    assert!(log.iter().all(|e| e.request.contains("/redirect-loop")));
}

#[test]
fn zero_redirects_allowed_fails_on_the_first() {
    let nginx = Nginx::start();
    let config = RedirectConfig {
        max_redirects: 0,
        ..RedirectConfig::default()
    };
    let got = run(config, Request::get(nginx.http_url("/found")));
    assert_eq!(got.cause(), Some(&Cause::TooManyRedirects(0)), "{got:?}");
    assert_eq!(nginx.wait_access_log(1).len(), 1);
}

// ---- httpbin -------------------------------------------------------------------------------

#[test]
fn httpbin_redirect_chains() {
    let bin = Httpbin::start();
    let (mut reactor, agent) = setup(test_config(), RedirectConfig::default());
    for (path, hops) in [
        ("/redirect/3", 3),
        ("/relative-redirect/2", 2),
        ("/absolute-redirect/2", 2),
    ] {
        let (got, _) = start(&mut reactor, &agent, Request::get(bin.url(path)));
        wait(&mut reactor, &got);
        let got = got.take();
        assert_eq!(got.code, Some(200), "{path}: {got:?}");
        assert_eq!(got.url, bin.url("/get"), "{path}");
        assert_eq!(got.history.len(), hops, "{path}: {:?}", got.history);
        assert!(got.history.iter().all(|h| h.code == 302), "{path}");
        // Oldest first: the first entry is the URL asked for.
        assert_eq!(got.history[0].url.as_str(), bin.url(path));
        assert!(text(&got.body).contains("\"url\""), "{path}");
    }
}

#[test]
fn httpbin_307_replays_the_post_body() {
    let bin = Httpbin::start();
    let req = Request::new("POST", bin.url("/redirect-to?url=/post&status_code=307"))
        .header("Content-Type", "text/plain")
        .body_bytes("the body survives");
    let got = follow(req);
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.method, "POST");
    assert_eq!(got.url, bin.url("/post"));
    assert_eq!(got.history_codes(), vec![307]);
    let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(json["data"], "the body survives", "{json}");
    assert_eq!(json["headers"]["Content-Type"], "text/plain", "{json}");
}

#[test]
fn httpbin_303_and_302_turn_post_into_get() {
    let bin = Httpbin::start();
    for code in [303, 302, 301] {
        let req = Request::new(
            "POST",
            bin.url(&format!("/redirect-to?url=/anything&status_code={code}")),
        )
        .header("Content-Type", "text/plain")
        .body_bytes("dropped");
        let got = follow(req);
        assert_eq!(got.code, Some(200), "{code}: {got:?}");
        assert_eq!(got.method, "GET", "{code}");
        let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(json["method"], "GET", "{code}: {json}");
        assert_eq!(json["data"], "", "{code}: {json}");
        assert!(
            json["headers"].get("Content-Type").is_none(),
            "{code}: {json}"
        );
        assert!(
            json["headers"].get("Content-Length").is_none(),
            "{code}: {json}"
        );
    }
}

// ---- method and body rules (scripted) -------------------------------------------------------

#[test]
fn redirect_308_keeps_put_and_its_body() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        redirect_to(308, "/there"),
        Step::ExpectRequest,
        write(OK),
    ]]);
    let req = Request::new("PUT", srv.url("/here"))
        .header("Content-Type", "text/plain")
        .body_bytes("payload");
    let got = follow(req);
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.method, "PUT");
    let second = request_head(&srv, 1);
    assert!(second.starts_with("put /there "), "{second}");
    assert!(second.contains("content-type: text/plain"), "{second}");
    assert_eq!(request_body(&srv, 1), b"payload");
}

#[test]
fn redirect_303_turns_delete_into_get_but_keeps_head() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        redirect_to(303, "/a"),
        Step::ExpectRequest,
        write(OK),
        Step::ExpectRequest,
        redirect_to(303, "/b"),
        Step::ExpectHead,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
    ]]);
    let (mut reactor, agent) = setup(test_config(), RedirectConfig::default());
    let (got, _) = start(&mut reactor, &agent, Request::new("DELETE", srv.url("/x")));
    wait(&mut reactor, &got);
    assert_eq!(got.borrow().method, "GET");
    let (got, _) = start(&mut reactor, &agent, Request::new("HEAD", srv.url("/y")));
    wait(&mut reactor, &got);
    assert_eq!(got.borrow().method, "HEAD", "{:?}", got.borrow());
    assert!(request_head(&srv, 1).starts_with("get /a "));
    assert!(request_head(&srv, 3).starts_with("head /b "));
}

#[test]
fn redirect_307_with_unreplayable_body_is_returned_as_is() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        redirect_to(307, "/again"),
        Step::ExpectRequest,
        write(OK),
    ]]);
    let body = ReadProducer::new(std::io::Cursor::new(b"once".to_vec()), Some(4));
    let got = follow(Request::new("POST", srv.url("/upload")).body(body));
    assert_eq!(got.code, Some(307), "{got:?}");
    assert!(got.history.is_empty());
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn other_3xx_are_returned_as_they_are() {
    for code in [300, 304, 305, 306] {
        let srv = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            redirect_to(code, "/elsewhere"),
            Step::ExpectRequest,
            write(OK),
        ]]);
        let got = follow(Request::get(srv.url("/")));
        assert_eq!(got.code, Some(code), "{got:?}");
        assert_eq!(srv.requests().len(), 1, "{code}");
    }
}

// ---- refused targets -----------------------------------------------------------------------

#[test]
fn non_http_schemes_and_bad_locations_are_refused_without_fetching() {
    type Check = fn(&Cause) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (
            b"Location: file:///etc/passwd\r\n".to_vec(),
            |c| matches!(c, Cause::RedirectNotAllowed(l) if l == "file:///etc/passwd"),
        ),
        (
            b"Location: ftp://127.0.0.1/x\r\n".to_vec(),
            |c| matches!(c, Cause::RedirectNotAllowed(l) if l.starts_with("ftp:")),
        ),
        (
            b"Location: data:text/plain,hello\r\n".to_vec(),
            |c| matches!(c, Cause::RedirectNotAllowed(l) if l.starts_with("data:")),
        ),
        (b"Location: gopher://127.0.0.1:70/\r\n".to_vec(), |c| {
            matches!(c, Cause::RedirectNotAllowed(_))
        }),
        (
            b"Location: http://[::1\r\n".to_vec(),
            |c| matches!(c, Cause::InvalidLocation(l) if l == "http://[::1"),
        ),
        (b"Location: http://\r\n".to_vec(), |c| {
            matches!(c, Cause::InvalidLocation(_))
        }),
        (b"Location: /a\tb\r\n".to_vec(), |c| {
            matches!(c, Cause::InvalidLocation(_))
        }),
        (b"Location: /\xff\r\n".to_vec(), |c| {
            matches!(c, Cause::InvalidLocation(_))
        }),
        (
            b"".to_vec(),
            |c| matches!(c, Cause::InvalidLocation(l) if l.is_empty()),
        ),
        (
            b"Location: /a\r\nLocation: http://evil.test/\r\n".to_vec(),
            |c| matches!(c, Cause::InvalidLocation(_)),
        ),
    ];
    for (location, check) in cases {
        let mut response = b"HTTP/1.1 302 Found\r\n".to_vec();
        response.extend_from_slice(&location);
        response.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let srv = ScriptedServer::start(vec![
            vec![
                Step::ExpectRequest,
                Step::Write(response),
                Step::ExpectRequest,
                write(OK),
            ],
            vec![Step::ExpectRequest, write(OK)],
        ]);
        let (mut reactor, agent) = setup(test_config(), RedirectConfig::default());
        let (got, _) = start(&mut reactor, &agent, Request::get(srv.url("/")));
        wait(&mut reactor, &got);
        settle(&mut reactor);
        let got = got.take();
        let shown = text(&location);
        assert!(got.cause().is_some_and(check), "{shown:?}: {got:?}");
        assert_eq!(srv.requests().len(), 1, "{shown:?}");
        assert_eq!(srv.connections(), 1, "{shown:?}");
    }
}

struct Tls {
    _dir: TestDir,
    ca: TestCa,
}

impl Tls {
    fn new() -> Tls {
        let dir = TestDir::new("weft-redirect-tls");
        let ca = TestCa::generate(dir.path());
        Tls { _dir: dir, ca }
    }

    fn serve(&self, scripts: Vec<Vec<Step>>) -> ScriptedServer {
        let chain: Vec<CertificateDer<'static>> = vec![self.ca.server_cert_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.ca.server_key_der.clone()));
        ScriptedServer::start_tls(scripts, chain, key)
    }

    fn config(&self) -> AgentConfig {
        AgentConfig {
            tls: TlsConnector::with_root_pem(self.ca.ca_cert_pem.as_bytes()).unwrap(),
            ..test_config()
        }
    }
}

fn with_credentials(req: Request) -> Request {
    req.header("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
        .header("Cookie", "session=secret")
        .header("Proxy-Authorization", "Basic cHJveHk6cHJveHk=")
        .header("Referer", "https://localhost/page")
}

#[test]
fn https_to_http_is_refused_by_default() {
    let tls = Tls::new();
    let plain = ScriptedServer::start(vec![vec![Step::ExpectRequest, write(OK)]]);
    let secure = tls.serve(vec![vec![
        Step::ExpectRequest,
        redirect_to(302, &plain.url("/insecure")),
        Step::WaitClose,
    ]]);
    let (mut reactor, agent) = setup(tls.config(), RedirectConfig::default());
    let url = format!("https://localhost:{}/", secure.addr.port());
    let (got, _) = start(&mut reactor, &agent, Request::get(&url));
    wait(&mut reactor, &got);
    settle(&mut reactor);
    let got = got.take();
    assert!(
        matches!(got.cause(), Some(Cause::RedirectNotAllowed(l)) if l == &plain.url("/insecure")),
        "{got:?}"
    );
    assert_eq!(secure.requests().len(), 1);
    assert_eq!(plain.connections(), 0);
}

#[test]
fn allowed_downgrade_strips_credentials_and_referer() {
    let tls = Tls::new();
    let plain = ScriptedServer::start(vec![vec![Step::ExpectRequest, write(OK)]]);
    let secure = tls.serve(vec![vec![
        Step::ExpectRequest,
        redirect_to(302, &plain.url("/insecure")),
        Step::WaitClose,
    ]]);
    let config = RedirectConfig {
        allow_downgrade: true,
        ..RedirectConfig::default()
    };
    let (mut reactor, agent) = setup(tls.config(), config);
    let url = format!("https://localhost:{}/", secure.addr.port());
    let (got, _) = start(&mut reactor, &agent, with_credentials(Request::get(&url)));
    wait(&mut reactor, &got);
    let got = got.take();
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.url, plain.url("/insecure"));
    let first = {
        let reqs = secure.requests();
        text(&reqs[0].1).to_ascii_lowercase()
    };
    assert!(first.contains("authorization: basic") && first.contains("cookie: session"));
    let head = request_head(&plain, 0);
    for name in ["authorization", "cookie", "proxy-authorization", "referer"] {
        assert!(!head.contains(&format!("{name}:")), "{name} leaked: {head}");
    }
}

// ---- credentials ---------------------------------------------------------------------------

/// A listener on a free loopback port, and that port.
fn bind() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn redirect_and_close(location: &str) -> Vec<Step> {
    vec![
        Step::ExpectRequest,
        write(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\n\
                 Connection: close\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        ),
        Step::Close,
    ]
}

#[test]
fn credentials_are_dropped_across_origins_and_never_return() {
    // A (127.0.0.1) -> B (localhost, another port) -> back to A.
    let (la, a_port) = bind();
    let (lb, b_port) = bind();
    let a = ScriptedServer::start_on(
        la,
        vec![
            redirect_and_close(&format!("http://localhost:{b_port}/b")),
            vec![Step::ExpectRequest, write(OK), Step::WaitClose],
        ],
    );
    let b = ScriptedServer::start_on(
        lb,
        vec![redirect_and_close(&format!(
            "http://127.0.0.1:{a_port}/back-to-a"
        ))],
    );
    let req = with_credentials(Request::get(a.url("/a")));
    let got = follow(req);
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.url, a.url("/back-to-a"));
    assert_eq!(got.history_codes(), vec![302, 302]);
    let first = request_head(&a, 0);
    assert!(first.contains("authorization: basic"), "{first}");
    assert!(first.contains("cookie: session=secret"), "{first}");
    assert!(first.contains("proxy-authorization: basic"), "{first}");
    for (who, head) in [("B", request_head(&b, 0)), ("A again", request_head(&a, 1))] {
        for name in ["authorization", "cookie", "proxy-authorization"] {
            assert!(
                !head.contains(&format!("{name}:")),
                "{name} sent to {who}: {head}"
            );
        }
    }
    // The caller's other fields stay.
    assert!(request_head(&a, 1).contains("referer: https://localhost/page"));
}

#[test]
fn credentials_are_dropped_on_a_port_change() {
    let (la, _) = bind();
    let (lb, b_port) = bind();
    let a = ScriptedServer::start_on(
        la,
        vec![redirect_and_close(&format!("http://127.0.0.1:{b_port}/b"))],
    );
    let b = ScriptedServer::start_on(lb, vec![vec![Step::ExpectRequest, write(OK)]]);
    let got = follow(with_credentials(Request::get(a.url("/a"))));
    assert_eq!(got.code, Some(200), "{got:?}");
    let head = request_head(&b, 0);
    assert!(
        !head.contains("authorization:") && !head.contains("cookie:"),
        "{head}"
    );
}

#[test]
fn same_origin_redirect_keeps_credentials() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        redirect_to(301, "/next"),
        Step::ExpectRequest,
        write(OK),
    ]]);
    let got = follow(with_credentials(Request::get(srv.url("/first"))));
    assert_eq!(got.code, Some(200), "{got:?}");
    let second = request_head(&srv, 1);
    assert!(second.starts_with("get /next "), "{second}");
    assert!(second.contains("authorization: basic"), "{second}");
    assert!(second.contains("cookie: session=secret"), "{second}");
}

#[test]
fn userinfo_in_location_is_not_kept() {
    let (l, port) = bind();
    let srv = ScriptedServer::start_on(
        l,
        vec![vec![
            Step::ExpectRequest,
            redirect_to(302, &format!("http://attacker:pw@127.0.0.1:{port}/x")),
            Step::ExpectRequest,
            write(OK),
        ]],
    );
    let got = follow(Request::get(srv.url("/")));
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.url, srv.url("/x"));
    let head = request_head(&srv, 1);
    assert!(
        !head.contains("attacker") && !head.contains("authorization:"),
        "{head}"
    );
}

// ---- cancellation --------------------------------------------------------------------------

#[test]
fn cancel_while_draining_an_intermediate_body_stops_the_chain() {
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 10\r\n\r\nabc"),
            Step::Sleep(Duration::from_secs(2)),
            write(b"defghij"),
            Step::ExpectRequest,
            write(OK),
        ],
        vec![Step::ExpectRequest, write(OK)],
    ]);
    let (mut reactor, agent) = setup(test_config(), RedirectConfig::default());
    let (got, handle) = start(&mut reactor, &agent, Request::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        !srv.requests().is_empty()
    });
    settle(&mut reactor);
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(1), || {
        got.borrow().finished
    });
    settle(&mut reactor);
    let got = got.take();
    assert_eq!(got.cause(), Some(&Cause::Cancelled), "{got:?}");
    assert_eq!(srv.requests().len(), 1);
    assert_eq!(srv.connections(), 1);
}

#[test]
fn cancel_reaches_the_second_hop() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        redirect_to(302, "/slow"),
        Step::ExpectRequest,
        Step::Sleep(Duration::from_secs(3)),
        write(OK),
    ]]);
    let (mut reactor, agent) = setup(test_config(), RedirectConfig::default());
    let (got, handle) = start(&mut reactor, &agent, Request::get(srv.url("/")));
    turn_until(&mut reactor, Duration::from_secs(5), || {
        srv.requests().len() == 2
    });
    let cancelled_at = std::time::Instant::now();
    handle.cancel(reactor.ctx());
    turn_until(&mut reactor, Duration::from_secs(1), || {
        got.borrow().finished
    });
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert_eq!(
        got.borrow().cause(),
        Some(&Cause::Cancelled),
        "{:?}",
        got.borrow()
    );
    assert!(got.borrow().code.is_none());
}

// ---- intermediate bodies, inner history, timing --------------------------------------------

/// An inner wrapper standing in for a decoder and an auth layer: it adds a body filter that
/// counts its uses, and one 401 entry to every response's history.
struct Marking {
    inner: Agent,
    filtered: Rc<std::cell::Cell<u32>>,
}

impl HttpAgent for Marking {
    fn request(
        &self,
        ctx: &mut weft::reactor::Ctx,
        request: Request,
        on_response: weft::client::ResponseCallback,
    ) -> RequestHandle {
        let filtered = self.filtered.clone();
        HttpAgent::request(
            &self.inner,
            ctx,
            request,
            Box::new(move |ctx, r| {
                let r = r.map(|mut resp| {
                    resp.history.push(PreviousResponse {
                        code: 401,
                        url: (*resp.url).clone(),
                        headers: Headers::new(),
                    });
                    resp.map_body(move |p| {
                        filtered.set(filtered.get() + 1);
                        p
                    });
                    resp
                });
                on_response(ctx, r)
            }),
        )
    }
}

#[test]
fn intermediate_bodies_are_not_filtered_and_inner_history_is_kept_in_order() {
    let nginx = Nginx::start();
    let mut reactor = Reactor::new().unwrap();
    let filtered = Rc::new(std::cell::Cell::new(0));
    let inner = Marking {
        inner: Agent::new(reactor.ctx(), test_config()),
        filtered: filtered.clone(),
    };
    let agent = RedirectAgent::new(inner, RedirectConfig::default());
    let (got, _) = start(&mut reactor, &agent, Request::get(nginx.http_url("/found")));
    wait(&mut reactor, &got);
    let got = got.take();
    assert_eq!(got.body, b"hello world\n");
    // Only the final body went through the filter.
    assert_eq!(filtered.get(), 1);
    let hist: Vec<(u16, String)> = got
        .history
        .iter()
        .map(|h| (h.code, h.url.path().to_string()))
        .collect();
    let expect = [(401, "/found"), (302, "/found"), (401, "/hello.txt")];
    let expect: Vec<(u16, String)> = expect.iter().map(|(c, p)| (*c, p.to_string())).collect();
    assert_eq!(hist, expect);
}

#[test]
fn large_or_unbounded_intermediate_bodies_are_dropped_and_redirect_time_is_counted() {
    let big = format!(
        "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 200000\r\n\r\n{}",
        "x".repeat(200_000)
    );
    let chunked = b"HTTP/1.1 302 Found\r\nLocation: /last\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n"
        .to_vec();
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            Step::Sleep(Duration::from_millis(150)),
            Step::Write(big.into_bytes()),
            Step::WaitClose,
        ],
        vec![Step::ExpectRequest, Step::Write(chunked), Step::WaitClose],
        vec![Step::ExpectRequest, write(OK)],
    ]);
    let got = follow(Request::get(srv.url("/first")));
    assert_eq!(got.code, Some(200), "{got:?}");
    assert_eq!(got.body, b"ok");
    assert_eq!(got.url, srv.url("/last"));
    assert_eq!(got.history_codes(), vec![302, 302]);
    // Each dropped body closed its connection.
    assert_eq!(srv.connections(), 3);
    let timing = got.timing.unwrap();
    assert!(timing.redirect >= Duration::from_millis(150), "{timing:?}");
    assert!(timing.head < Duration::from_millis(150), "{timing:?}");
}

/// Three hops of 300 ms each against a 700 ms total: every hop alone fits, three together do
/// not, whether the limit is the request's or the agent's default.
fn total_covers_three_hops(agent_total: Option<Duration>, request_total: Option<Duration>) {
    let hop = |location: &str| {
        vec![
            Step::ExpectRequest,
            Step::Sleep(Duration::from_millis(300)),
            write(
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            ),
            Step::Close,
        ]
    };
    let server = ScriptedServer::start(vec![hop("/b"), hop("/c"), hop("/d")]);
    let req = Request::get(server.url("/a")).timeouts(Timeouts {
        total: request_total,
        ..Timeouts::default()
    });
    let config = AgentConfig {
        timeout: agent_total,
        ..test_config()
    };
    let (mut reactor, agent) = setup(config, RedirectConfig::default());
    let started = std::time::Instant::now();
    let (got, _) = start(&mut reactor, &agent, req);
    wait(&mut reactor, &got);
    let got = got.take();
    assert!(
        matches!(got.cause(), Some(Cause::Timeout(t)) if t.kind == TimeoutKind::Total),
        "{:?}",
        got.error
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_total_timeout_covers_every_hop_together() {
    total_covers_three_hops(None, Some(Duration::from_millis(700)));
}

#[test]
fn the_agents_default_total_covers_every_hop_together() {
    total_covers_three_hops(Some(Duration::from_millis(700)), None);
}
