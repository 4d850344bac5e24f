//! CookieAgent and CookieJar against httpbin and scripted servers on 127.0.0.1.
#![cfg(feature = "cookies")]

mod support;

use support::scripted::*;
use support::servers::{Httpbin, TestDir};
use weft::client::{Agent, AgentConfig, CookieAgent, CookieJar, Proxies, Request};
use weft::reactor::Reactor;

fn setup() -> (Reactor, CookieAgent<Agent>, CookieJar) {
    let mut reactor = Reactor::new().unwrap();
    let jar = CookieJar::new();
    let agent = CookieAgent::new(Agent::new(reactor.ctx(), test_config()), jar.clone());
    (reactor, agent, jar)
}

fn ok(code: u16, extra: &str) -> Step {
    write(format!("HTTP/1.1 {code} X\r\n{extra}Content-Length: 2\r\n\r\nok").as_bytes())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(body)))
}

#[test]
fn httpbin_set_cookie_on_a_redirect_is_stored_and_sent() {
    let httpbin = Httpbin::start();
    let (mut reactor, agent, jar) = setup();
    let r = run_via(
        &mut reactor,
        &agent,
        Request::get(httpbin.url("/cookies/set?a=1&b=2")),
    );
    assert_eq!(r.out.status, Some(302), "{:?}", r.out);
    let mut got = jar.cookies_for(&httpbin.url("/"));
    got.sort();
    assert_eq!(got, pairs(&[("a", "1"), ("b", "2")]));

    let r = run_via(&mut reactor, &agent, Request::get(httpbin.url("/cookies")));
    assert_eq!(r.out.status, Some(200));
    assert_eq!(
        json(&r.out.body)["cookies"],
        serde_json::json!({"a": "1", "b": "2"})
    );

    // Deletion: httpbin answers with an expired Set-Cookie.
    let r = run_via(
        &mut reactor,
        &agent,
        Request::get(httpbin.url("/cookies/delete?a")),
    );
    assert_eq!(r.out.status, Some(302));
    assert_eq!(jar.cookies_for(&httpbin.url("/")), pairs(&[("b", "2")]));
    let r = run_via(&mut reactor, &agent, Request::get(httpbin.url("/cookies")));
    assert_eq!(json(&r.out.body)["cookies"], serde_json::json!({"b": "2"}));
}

#[test]
fn caller_cookie_header_is_kept() {
    let httpbin = Httpbin::start();
    let (mut reactor, agent, jar) = setup();
    jar.store_set_cookie(&httpbin.url("/"), "a=1");
    let req = Request::get(httpbin.url("/cookies")).header("Cookie", "mine=yes");
    let r = run_via(&mut reactor, &agent, req);
    assert_eq!(
        json(&r.out.body)["cookies"],
        serde_json::json!({"mine": "yes"})
    );
}

#[test]
fn secure_cookie_from_plain_http_is_ignored() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        ok(200, "Set-Cookie: s=1; Secure\r\nSet-Cookie: p=2\r\n"),
        Step::ExpectRequest,
        ok(200, ""),
    ]]);
    let (mut reactor, agent, jar) = setup();
    run_via(&mut reactor, &agent, Request::get(server.url("/")));
    let r = run_via(&mut reactor, &agent, Request::get(server.url("/next")));
    assert!(r.out.is_done());
    let seen = heads(&server.requests());
    assert_eq!(seen.len(), 2);
    assert_eq!(header_of(&seen[0], "cookie"), None);
    assert_eq!(header_of(&seen[1], "cookie").as_deref(), Some("p=2"));
    // RFC 6265bis: a plain-http response cannot set a Secure cookie, not even for https.
    let https = format!("https://{}/", server.addr);
    assert_eq!(jar.cookies_for(&https), pairs(&[("p", "2")]));
}

#[test]
fn secure_cookie_from_https_is_sent_over_https_only() {
    let jar = CookieJar::new();
    assert!(jar.store_set_cookie("https://example.test/", "s=1; Secure"));
    assert_eq!(
        jar.cookies_for("https://example.test/"),
        pairs(&[("s", "1")])
    );
    assert_eq!(jar.cookies_for("http://example.test/"), pairs(&[]));
}

#[test]
fn path_scoping() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        ok(200, "Set-Cookie: a=1; Path=/app\r\n"),
        Step::ExpectRequest,
        ok(200, ""),
        Step::ExpectRequest,
        ok(200, ""),
        Step::ExpectRequest,
        ok(200, ""),
    ]]);
    let (mut reactor, agent, _jar) = setup();
    for p in ["/login", "/application", "/app/x", "/"] {
        let r = run_via(&mut reactor, &agent, Request::get(server.url(p)));
        assert!(r.out.is_done(), "{p}: {:?}", r.out);
    }
    let seen = heads(&server.requests());
    let cookies: Vec<Option<String>> = seen.iter().map(|r| header_of(r, "cookie")).collect();
    assert_eq!(cookies, vec![None, None, Some("a=1".to_string()), None]);
}

#[test]
fn max_age_zero_deletes() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        ok(200, "Set-Cookie: x=1; Max-Age=100\r\nSet-Cookie: y=2\r\n"),
        Step::ExpectRequest,
        ok(200, "Set-Cookie: x=1; Max-Age=0\r\n"),
        Step::ExpectRequest,
        ok(200, ""),
    ]]);
    let (mut reactor, agent, jar) = setup();
    for _ in 0..3 {
        let r = run_via(&mut reactor, &agent, Request::get(server.url("/")));
        assert!(r.out.is_done(), "{:?}", r.out);
    }
    let seen = heads(&server.requests());
    assert_eq!(header_of(&seen[1], "cookie").as_deref(), Some("x=1; y=2"));
    assert_eq!(header_of(&seen[2], "cookie").as_deref(), Some("y=2"));
    assert_eq!(jar.len(), 1);
}

#[test]
fn cookie_of_one_host_is_not_sent_to_another() {
    // localhost resolves to 127.0.0.1 here, so both names reach the same server.
    let server = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            ok(200, "Set-Cookie: h=1\r\n"),
            Step::ExpectRequest,
            ok(200, ""),
        ],
        vec![Step::ExpectRequest, ok(200, "")],
    ]);
    let (mut reactor, agent, jar) = setup();
    let ip = server.url("/");
    let name = format!("http://localhost:{}/", server.addr.port());
    run_via(&mut reactor, &agent, Request::get(&ip));
    run_via(&mut reactor, &agent, Request::get(&ip));
    let r = run_via(&mut reactor, &agent, Request::get(&name));
    assert!(r.out.is_done(), "{:?}", r.out);
    let seen = heads(&server.requests());
    assert_eq!(seen.len(), 3);
    assert_eq!(header_of(&seen[1], "cookie").as_deref(), Some("h=1"));
    assert_eq!(header_of(&seen[2], "cookie"), None);
    assert!(jar.cookies_for(&name).is_empty());
}

#[test]
fn set_cookie_with_foreign_domain_is_refused() {
    let jar = CookieJar::new();
    assert!(!jar.store_set_cookie("http://127.0.0.1/", "a=1; Domain=example.com"));
    assert!(jar.store_set_cookie("http://www.example.com/", "b=1; Domain=example.com"));
    assert_eq!(
        jar.cookies_for("http://other.example.com/"),
        pairs(&[("b", "1")])
    );
    assert!(jar.cookies_for("http://example.org/").is_empty());
}

/// Fetches each `(url, Set-Cookie or "")` in order through a scripted plain-http proxy on
/// 127.0.0.1, so that named hosts are never resolved: every request arrives there in absolute
/// form. One connection per request (`Connection: close`). Returns the `Cookie` field each
/// request carried.
fn via_proxy(jar: &CookieJar, hops: &[(&str, &str)]) -> Vec<Option<String>> {
    let scripts = hops
        .iter()
        .map(|(_, set)| {
            let extra = if set.is_empty() {
                "Connection: close\r\n".to_string()
            } else {
                format!("Set-Cookie: {set}\r\nConnection: close\r\n")
            };
            vec![Step::ExpectRequest, ok(200, &extra), Step::Close]
        })
        .collect();
    let proxy = ScriptedServer::start(scripts);
    let mut reactor = Reactor::new().unwrap();
    let config = AgentConfig {
        proxies: Proxies::all(&proxy.url("")).unwrap(),
        ..test_config()
    };
    let agent = CookieAgent::new(Agent::new(reactor.ctx(), config), jar.clone());
    for (url, _) in hops {
        let r = run_via(&mut reactor, &agent, Request::get(*url));
        assert!(r.out.is_done(), "{url}: {:?}", r.out);
    }
    let seen = heads(&proxy.requests());
    assert_eq!(seen.len(), hops.len());
    for ((url, _), head) in hops.iter().zip(&seen) {
        assert!(
            head.starts_with(&format!("GET {url} HTTP/1.1\r\n")),
            "{head}"
        );
    }
    seen.iter().map(|h| header_of(h, "cookie")).collect()
}

#[test]
fn public_suffix_domain_is_ignored() {
    let jar = CookieJar::new();
    let sent = via_proxy(
        &jar,
        &[
            // ICANN section of the list.
            ("http://www.example.co.uk/", "uk=1; Domain=co.uk"),
            ("http://other.co.uk/", ""),
            ("http://www.example.co.uk/", ""),
            // Private section: github.io is a suffix although github.io itself is a host.
            ("http://a.github.io/", "gh=1; Domain=github.io"),
            ("http://b.github.io/", ""),
            ("http://a.github.io/", ""),
        ],
    );
    assert_eq!(sent, vec![None; 6]);
    assert!(jar.is_empty(), "{jar:?}");
}

#[test]
fn registrable_domain_under_a_public_suffix_is_accepted() {
    let jar = CookieJar::new();
    let sent = via_proxy(
        &jar,
        &[
            ("http://www.example.co.uk/", "ex=1; Domain=example.co.uk"),
            ("http://other.example.co.uk/", ""),
            ("http://example.co.uk/", ""),
            ("http://example2.co.uk/", ""),
        ],
    );
    let ex = Some("ex=1".to_string());
    assert_eq!(sent, vec![None, ex.clone(), ex, None]);
}

#[test]
fn public_suffix_domain_equal_to_the_host_is_host_only() {
    // RFC 6265 section 5.3 step 5: the cookie is kept without its Domain attribute.
    let jar = CookieJar::new();
    let sent = via_proxy(
        &jar,
        &[
            ("http://github.io/", "h=1; Domain=github.io"),
            ("http://github.io/x", ""),
            ("http://a.github.io/", ""),
        ],
    );
    assert_eq!(sent, vec![None, Some("h=1".to_string()), None]);
    assert_eq!(jar.len(), 1);
}

fn sample_jar() -> CookieJar {
    let jar = CookieJar::new();
    let u = "https://www.example.com/";
    assert!(jar.store_set_cookie(u, "session=abc"));
    assert!(jar.store_set_cookie(u, "persist=1; Max-Age=3600; Path=/docs"));
    assert!(jar.store_set_cookie(u, "sec=2; Secure; HttpOnly; Max-Age=3600"));
    assert!(jar.store_set_cookie(u, "wide=3; Domain=example.com; Max-Age=3600"));
    jar
}

fn check_sample(jar: &CookieJar) {
    let mut got = jar.cookies_for("https://www.example.com/docs/x");
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("persist", "1"),
            ("sec", "2"),
            ("session", "abc"),
            ("wide", "3")
        ])
    );
    assert_eq!(
        jar.cookies_for("http://api.example.com/"),
        pairs(&[("wide", "3")])
    );
    let mut plain = jar.cookies_for("http://www.example.com/");
    plain.sort();
    assert_eq!(plain, pairs(&[("session", "abc"), ("wide", "3")]));
}

#[test]
fn json_save_load_round_trip() {
    let dir = TestDir::new("cookies-json");
    let jar = sample_jar();
    check_sample(&jar);
    let path = dir.join("jar.json");
    jar.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.trim_start().starts_with('['), "{text}");
    let loaded = CookieJar::load(&path).unwrap();
    check_sample(&loaded);
    assert_eq!(loaded.len(), 4);
}

#[test]
fn netscape_save_load_round_trip() {
    let dir = TestDir::new("cookies-netscape");
    let jar = sample_jar();
    let path = dir.join("jar.txt");
    jar.save_netscape(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("#HttpOnly_www.example.com\tFALSE\t/\tTRUE\t"),
        "{text}"
    );
    assert!(text.contains(".example.com\tTRUE\t/\tFALSE\t"), "{text}");
    assert!(
        text.contains("www.example.com\tFALSE\t/\tFALSE\t0\tsession\tabc"),
        "{text}"
    );
    let loaded = CookieJar::load(&path).unwrap();
    check_sample(&loaded);
    assert_eq!(loaded.len(), 4);
}

#[test]
fn netscape_file_written_by_curl_loads() {
    let text = "# Netscape HTTP Cookie File\n\
                # https://curl.se/docs/http-cookies.html\n\
                \n\
                127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1\n\
                #HttpOnly_127.0.0.1\tFALSE\t/api\tFALSE\t4102444800\tb\t2\n\
                .example.com\tTRUE\t/\tTRUE\t4102444800\tc\t3\n\
                127.0.0.1\tFALSE\t/\tFALSE\t1000\told\tgone\n\
                broken line\n";
    let jar = CookieJar::from_netscape(text).unwrap();
    assert_eq!(jar.cookies_for("http://127.0.0.1/"), pairs(&[("a", "1")]));
    let mut api = jar.cookies_for("http://127.0.0.1/api/v1");
    api.sort();
    assert_eq!(api, pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(
        jar.cookies_for("https://x.example.com/"),
        pairs(&[("c", "3")])
    );
    assert!(jar.cookies_for("http://x.example.com/").is_empty());
    assert_eq!(jar.len(), 3);
}

#[test]
fn clear_empties_the_jar() {
    let jar = sample_jar();
    let clone = jar.clone();
    clone.clear();
    assert!(jar.is_empty());
}
