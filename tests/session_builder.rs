//! The session builder (`HttpClient::builder`): treq's defaults (redirects, cookies, decoding,
//! URL credentials) against httpbin, each switch turned off, per-request `basic_auth` /
//! `bearer_auth`, and the safe stacking order (credentials never follow a redirect to another
//! origin) against scripted servers.

#![cfg(all(feature = "cookies", feature = "json", feature = "gzip"))]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::{ScriptedServer, Step, test_config, turn_until, write};
use support::servers::Httpbin;
use weft::client::{AuthMode, Cause, ClientBuilder, Credentials, Phase};
use weft::{Error, FullResponse, HttpClient, Reactor, RequestBuilder};

/// Builds a client from `builder` (on the test agent settings) and fetches one request.
fn fetch_on(
    builder: ClientBuilder,
    build: impl FnOnce(&HttpClient) -> RequestBuilder,
) -> (HttpClient, Result<FullResponse, Error>) {
    let mut reactor = Reactor::new().unwrap();
    let client = builder.agent_config(test_config()).build(reactor.ctx());
    let got: Rc<RefCell<Option<Result<FullResponse, Error>>>> = Rc::default();
    let g = got.clone();
    build(&client).fetch(reactor.ctx(), move |_, r| *g.borrow_mut() = Some(r));
    turn_until(&mut reactor, Duration::from_secs(15), || {
        got.borrow().is_some()
    });
    let result = got.borrow_mut().take().unwrap();
    (client, result)
}

fn fetch(
    builder: ClientBuilder,
    build: impl FnOnce(&HttpClient) -> RequestBuilder,
) -> Result<FullResponse, Error> {
    fetch_on(builder, build).1
}

fn json(r: &FullResponse) -> serde_json::Value {
    r.json().unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn defaults_follow_redirects_keep_cookies_and_decode() {
    let httpbin = Httpbin::start();
    let r = fetch(HttpClient::builder(), |c| c.get(httpbin.url("/redirect/2"))).unwrap();
    assert_eq!((r.code, r.history.len()), (200, 2), "{:?}", r.history);
    assert_eq!(r.url.path(), "/get");

    let (client, r) = fetch_on(HttpClient::builder(), |c| {
        c.get(httpbin.url("/cookies/set?flavour=oat"))
    });
    let r = r.unwrap();
    assert_eq!(json(&r)["cookies"]["flavour"], "oat");
    let jar = client.cookie_jar().expect("cookies are on by default");
    assert_eq!(jar.cookies_for(&httpbin.url("/")).len(), 1);

    let r = fetch(HttpClient::builder(), |c| c.get(httpbin.url("/gzip"))).unwrap();
    assert_eq!(json(&r)["gzipped"], true);
    assert!(r.sizes.body_wire < r.sizes.body_decoded, "{:?}", r.sizes);
}

#[test]
fn defaults_send_url_userinfo_as_basic_credentials() {
    let httpbin = Httpbin::start();
    let url = httpbin
        .url("/basic-auth/alice/s3cret")
        .replace("http://", "http://alice:s3cret@");
    let r = fetch(HttpClient::builder(), |c| c.get(&url)).unwrap();
    assert_eq!(r.code, 200, "{}", r.text());
    let r = fetch(HttpClient::builder().url_credentials(false), |c| {
        c.get(&url)
    })
    .unwrap();
    assert_eq!(r.code, 401);
}

#[test]
fn each_default_can_be_switched_off() {
    let httpbin = Httpbin::start();
    let r = fetch(HttpClient::builder().redirects(false), |c| {
        c.get(httpbin.url("/redirect/1"))
    })
    .unwrap();
    assert_eq!((r.code, r.history.len()), (302, 0));

    let (client, r) = fetch_on(HttpClient::builder().cookies(false), |c| {
        c.get(httpbin.url("/cookies/set?flavour=oat"))
    });
    assert_eq!(json(&r.unwrap())["cookies"], serde_json::json!({}));
    assert!(client.cookie_jar().is_none());

    let r = fetch(HttpClient::builder().decompress(false), |c| {
        c.get(httpbin.url("/headers"))
    })
    .unwrap();
    assert!(
        json(&r)["headers"].get("Accept-Encoding").is_none(),
        "{}",
        r.text()
    );
    let r = fetch(HttpClient::builder(), |c| c.get(httpbin.url("/headers"))).unwrap();
    assert!(json(&r)["headers"].get("Accept-Encoding").is_some());

    let e = fetch(HttpClient::builder().max_redirects(1), |c| {
        c.get(httpbin.url("/redirect/3"))
    })
    .unwrap_err();
    assert_eq!(e.cause(), &Cause::TooManyRedirects(1), "{e}");

    let e = fetch(HttpClient::builder().error_for_status(true), |c| {
        c.get(httpbin.url("/status/418"))
    })
    .unwrap_err();
    assert_eq!(e.cause(), &Cause::HttpStatus(418));
}

#[test]
fn per_request_basic_and_bearer_auth() {
    let httpbin = Httpbin::start();
    let r = fetch(HttpClient::builder(), |c| {
        c.get(httpbin.url("/basic-auth/bob/pw"))
            .basic_auth("bob", Some("pw"))
    })
    .unwrap();
    assert_eq!(r.code, 200);
    let r = fetch(HttpClient::builder(), |c| {
        c.get(httpbin.url("/basic-auth/bob/pw"))
            .basic_auth("bob", Some("wrong"))
    })
    .unwrap();
    assert_eq!(r.code, 401);
    let r = fetch(HttpClient::builder(), |c| {
        c.get(httpbin.url("/bearer")).bearer_auth("t0ken")
    })
    .unwrap();
    assert_eq!(
        (r.code, &json(&r)["token"]),
        (200, &serde_json::json!("t0ken"))
    );
    // A token that would split the header is refused before anything is sent.
    let e = fetch(HttpClient::builder(), |c| {
        c.get(httpbin.url("/bearer")).bearer_auth("t\r\nX-Evil: 1")
    })
    .unwrap_err();
    assert_eq!(e.phase(), Phase::RequestNotSent, "{e}");
    assert!(matches!(e.cause(), Cause::InvalidRequest(_)), "{e}");
}

#[test]
fn session_builder_auth_answers_a_digest_challenge() {
    let httpbin = Httpbin::start();
    let builder = HttpClient::builder().auth(Credentials::new("u", "p"), AuthMode::Auto);
    let r = fetch(builder, |c| c.get(httpbin.url("/digest-auth/auth/u/p"))).unwrap();
    assert_eq!(
        (r.code, r.history.first().map(|p| p.code)),
        (200, Some(401))
    );
}

/// Server A redirects to server B (another port: another origin); B must not see the
/// credentials, whether they came from the builder or from the request.
#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    for per_request in [false, true] {
        let b = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Step::WaitClose,
        ]]);
        let location = b.url("/landing");
        let a = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            write(
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            ),
            Step::WaitClose,
        ]]);
        let builder = if per_request {
            HttpClient::builder()
        } else {
            HttpClient::builder().auth(Credentials::new("u", "p"), AuthMode::Basic)
        };
        let r = fetch(builder, |c| {
            let req = c.get(a.url("/start"));
            if per_request {
                req.basic_auth("u", Some("p"))
            } else {
                req
            }
        })
        .unwrap();
        assert_eq!((r.code, r.history.len()), (200, 1));
        let to_a = String::from_utf8_lossy(&a.requests()[0].1).into_owned();
        let to_b = String::from_utf8_lossy(&b.requests()[0].1).into_owned();
        assert!(to_a.contains("Authorization: Basic dTpw\r\n"), "{to_a}");
        assert!(
            !to_b.to_ascii_lowercase().contains("authorization"),
            "{to_b}"
        );
    }
}
