//! Unit tests of `route.rs`: URL resolution, pool keys and the target cache.

use super::*;

#[test]
fn prepare_rejects_bad_urls_and_headers() {
    let config = AgentConfig::default();
    assert!(matches!(
        resolve(&config, "ftp://x/", None),
        Err(Cause::UnsupportedScheme(_))
    ));
    assert!(matches!(
        resolve(&config, "not a url", None),
        Err(Cause::InvalidUrl(_))
    ));
    let mut h = Headers::new();
    h.append("X-Bad", b"a\r\nInjected: 1");
    let target = resolve(&config, "http://127.0.0.1/", None).unwrap();
    assert!(matches!(
        prepare(&config, &target, "GET", &h),
        Err(Cause::InvalidRequest(_))
    ));
}

/// The fields a request was sent with before [`added_fields`]: its own copied into one
/// list, then the added ones.
fn reference_fields(config: &AgentConfig, target: &Target, headers: &Headers) -> Headers {
    let mut out = headers.clone();
    if let Some(ua) = &config.user_agent
        && !headers.contains("user-agent")
    {
        out.append("User-Agent", ua.as_bytes());
    }
    if !config.persistent && !headers.has_token("connection", "close") {
        out.append("Connection", b"close");
    }
    if let Some(auth) = &target.proxy_auth
        && !headers.contains("proxy-authorization")
    {
        out.append("Proxy-Authorization", auth.as_bytes());
    }
    out
}

#[test]
fn added_fields_follow_the_callers_as_the_combined_list_did() {
    let configs = [
        AgentConfig::default(),
        AgentConfig {
            user_agent: None,
            ..AgentConfig::default()
        },
        AgentConfig {
            user_agent: Some("ua/1".into()),
            persistent: false,
            proxies: crate::client::Proxies::all("http://u:p@127.0.0.1:3128").unwrap(),
            ..AgentConfig::default()
        },
    ];
    let lists: [&[(&str, &[u8])]; 6] = [
        &[],
        &[("X-A", b"1"), ("x-a", b"2")],
        &[("user-agent", b"mine")],
        &[("Connection", b"keep-alive")],
        &[("connection", b"keep-alive, Close")],
        &[("Proxy-Authorization", b"Basic x"), ("User-Agent", b"")],
    ];
    let mut proxied = 0;
    for config in &configs {
        let target = resolve(config, "http://origin.test/", None).unwrap();
        proxied += usize::from(target.proxy_auth.is_some());
        // What the target keeps encoded is what a request without fields gets.
        let none = added_fields(config, &target, &Headers::new());
        assert_eq!(*target.added_lines, *proto::encode_fields(none.as_slice()));
        let close = none.as_slice().iter().any(|f| f.0 == "Connection");
        assert_eq!(!config.persistent, close, "what exchange.rs tells the core");
        let line = proto::encode_line(&target.target, &target.host_header);
        assert_eq!(*target.line, *line);
        let whole = [&line[..], &target.added_lines, b"\r\n"].concat();
        assert_eq!(target.whole(), &whole[..]);
        assert_eq!(*target.get_whole, *[&b"GET"[..], &whole].concat());
        for list in lists {
            let h: Headers = list.iter().copied().collect();
            let mut sent = h.clone();
            for &(name, value) in added_fields(config, &target, &h).as_slice() {
                sent.append(name, value);
            }
            assert_eq!(sent, reference_fields(config, &target, &h), "{list:?}");
        }
    }
    assert_eq!(proxied, 1, "one configuration adds proxy credentials");
    // All three, in order, for a request without fields.
    let target = resolve(&configs[2], "http://origin.test/", None).unwrap();
    let names: Vec<&str> = added_fields(&configs[2], &target, &Headers::new())
        .as_slice()
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, ["User-Agent", "Connection", "Proxy-Authorization"]);
}

#[test]
fn a_bad_user_agent_is_refused_unless_the_request_gives_its_own() {
    let config = AgentConfig {
        user_agent: Some("bad\r\nInjected: 1".into()),
        ..AgentConfig::default()
    };
    let target = resolve(&config, "http://127.0.0.1/", None).unwrap();
    assert!(!target.user_agent_ok);
    assert!(matches!(
        prepare(&config, &target, "GET", &Headers::new()),
        Err(Cause::InvalidRequest(RequestError::InvalidHeaderValue(name))) if name == "User-Agent"
    ));
    let mut own = Headers::new();
    own.append("User-Agent", b"mine");
    assert!(prepare(&config, &target, "GET", &own).is_ok());
    assert!(matches!(
        prepare(&config, &target, "G T", &own),
        Err(Cause::InvalidRequest(RequestError::InvalidMethod))
    ));
}

#[test]
fn resolve_builds_target_and_host() {
    let config = AgentConfig::default();
    let p = resolve(&config, "http://[::1]:8080/a/b?x=1#frag", None).unwrap();
    assert_eq!(p.target, "/a/b?x=1");
    assert_eq!(p.host_header, "[::1]:8080");
    assert_eq!(p.route.host, "::1");
    assert_eq!(p.key.port, 8080);
    let p = resolve(&config, "https://Example.TEST/", None).unwrap();
    assert_eq!(p.host_header, "example.test");
    assert_eq!(p.key.port, 443);
    assert!(p.key.https && p.route.tls);
}

#[test]
fn socks_routes_keep_the_origin_and_name_the_proxy() {
    use crate::client::Proxies;
    let config = AgentConfig {
        proxies: Proxies::all("socks5h://u%40x:p@127.0.0.1:1081")
            .unwrap()
            .no_proxy("direct.test"),
        ..AgentConfig::default()
    };
    let t = resolve(&config, "http://origin.test/a?b", None).unwrap();
    assert_eq!(t.target, "/a?b", "origin-form through a SOCKS tunnel");
    assert!(t.proxy_auth.is_none());
    assert_eq!((t.route.host.as_str(), t.route.port), ("127.0.0.1", 1081));
    assert!(!t.route.tls);
    let socks = t.route.tunnel.as_ref().unwrap().socks.as_ref().unwrap();
    assert!(socks.remote_dns && !socks.tls);
    assert_eq!((socks.host.as_str(), socks.port), ("origin.test", 80));
    assert_eq!(socks.credentials, Some((b"u@x".to_vec(), b"p".to_vec())));
    assert_eq!(socks.proxy, "socks5h://127.0.0.1:1081");
    assert_eq!(
        (&*t.key.host, t.key.port, t.key.socks),
        ("origin.test", 80, true)
    );

    let s = resolve(&config, "https://origin.test/", None).unwrap();
    let tunnel = s.route.tunnel.as_ref().unwrap();
    assert!(tunnel.socks.as_ref().unwrap().tls && !s.route.tls);
    assert_eq!(tunnel.server_name, "origin.test");

    let direct = resolve(&config, "http://direct.test/", None).unwrap();
    assert!(direct.route.tunnel.is_none() && direct.key.proxy.is_none());
    assert!(!direct.key.socks);

    // An HTTP proxy at the same address is another pool.
    let http = AgentConfig {
        proxies: Proxies::all("http://127.0.0.1:1081").unwrap(),
        ..AgentConfig::default()
    };
    let h = resolve(&http, "https://origin.test/a?b", None).unwrap();
    assert_ne!(h.key, s.key);

    // socks5:// resolves locally; a name too long for the protocol is refused up front.
    let local = AgentConfig {
        proxies: Proxies::all("socks5://127.0.0.1").unwrap(),
        ..AgentConfig::default()
    };
    let l = resolve(&local, "http://[::1]:8080/", None).unwrap();
    let socks = l.route.tunnel.as_ref().unwrap().socks.as_ref().unwrap();
    assert!(!socks.remote_dns);
    assert_eq!((socks.host.as_str(), l.route.port), ("::1", 1080));
    let long = format!("http://{}.test/", "a.".repeat(130));
    assert!(matches!(
        resolve(&local, &long, None),
        Err(Cause::Socks {
            error: SocksError::NameTooLong(_),
            ..
        })
    ));
}

#[test]
fn targets_are_parsed_once_per_url_and_bounded() {
    let config = AgentConfig::default();
    let mut targets = Targets::default();
    let a = targets
        .get(&config, &"http://127.0.0.1/a".into(), None)
        .unwrap();
    let again = targets
        .get(&config, &"http://127.0.0.1/a".into(), None)
        .unwrap();
    assert!(Rc::ptr_eq(&a, &again));
    let b = targets
        .get(&config, &"http://127.0.0.1/b".into(), None)
        .unwrap();
    assert_eq!(b.target, "/b");
    // The one asked before the last is still found, not parsed again.
    let a2 = targets
        .get(&config, &"http://127.0.0.1/a".into(), None)
        .unwrap();
    assert!(Rc::ptr_eq(&a, &a2));
    let b2 = targets
        .get(&config, &"http://127.0.0.1/b".into(), None)
        .unwrap();
    assert!(Rc::ptr_eq(&b, &b2));
    // A string differing from the last only in its end is another URL.
    let b3 = targets
        .get(&config, &"http://127.0.0.1/bb".into(), None)
        .unwrap();
    assert_eq!(b3.target, "/bb");
    assert!(targets.get(&config, &"nope".into(), None).is_err());
    for i in 0..2 * TARGETS_KEPT {
        targets
            .get(&config, &format!("http://h/{i}").into(), None)
            .unwrap();
    }
    assert!(targets.map.len() <= TARGETS_KEPT);
}

#[test]
fn a_shared_url_string_is_found_by_address_and_by_content() {
    let config = AgentConfig::default();
    let mut targets = Targets::default();
    let a: Rc<str> = "http://127.0.0.1/a".into();
    let first = targets.get(&config, &a, None).unwrap();
    assert!(Rc::ptr_eq(&first, &targets.get(&config, &a, None).unwrap()));
    // Another string with the same bytes: the same target, from the table.
    let copy: Rc<str> = "http://127.0.0.1/a".into();
    assert!(Rc::ptr_eq(
        &first,
        &targets.get(&config, &copy, None).unwrap()
    ));
    // The last string kept is the caller's, and a socket still makes another target.
    let sock: Rc<Path> = Path::new("/tmp/s.sock").into();
    let over = targets.get(&config, &copy, Some(&sock)).unwrap();
    assert_eq!(over.route.unix.as_deref(), Some(&*sock));
    let direct = targets.get(&config, &copy, None).unwrap();
    assert!(direct.route.unix.is_none());
    // A refused URL is refused each time, by address too.
    let bad: Rc<str> = "nope".into();
    for _ in 0..2 {
        assert!(targets.get(&config, &bad, None).is_err());
    }
    let b: Rc<str> = "http://127.0.0.1/b".into();
    assert_eq!(targets.get(&config, &b, None).unwrap().target, "/b");
}

#[test]
fn unix_socket_routes_skip_proxies_and_are_pooled_by_path() {
    let config = AgentConfig {
        proxies: crate::client::proxy::Proxies::all("http://proxy.test:3128").unwrap(),
        ..AgentConfig::default()
    };
    let a: Rc<Path> = Path::new("/tmp/a.sock").into();
    let t = resolve(&config, "https://Example.TEST:8443/x?y", Some(a.clone())).unwrap();
    assert!(t.route.tunnel.is_none() && t.key.proxy.is_none() && t.proxy_auth.is_none());
    assert_eq!(t.route.unix.as_deref(), Some(&*a));
    assert!(t.route.tls, "https over the socket");
    assert_eq!(t.route.host, "example.test", "the name TLS checks");
    assert_eq!(
        (t.host_header.as_str(), t.target.as_str()),
        ("example.test:8443", "/x?y")
    );
    let b = resolve(
        &config,
        "https://example.test:8443/",
        Some(Path::new("/b").into()),
    );
    assert_ne!(t.key, b.unwrap().key, "another path, another pool");

    // The cache answers a URL for the socket it was asked with.
    let mut targets = Targets::default();
    let over_a = targets.get(&config, &"http://h/".into(), Some(&a)).unwrap();
    let direct = targets.get(&config, &"http://h/".into(), None).unwrap();
    assert!(direct.route.unix.is_none() && direct.key.proxy.is_some());
    assert!(Rc::ptr_eq(
        &direct,
        &targets.get(&config, &"http://h/".into(), None).unwrap()
    ));
    let again = targets.get(&config, &"http://h/".into(), Some(&a)).unwrap();
    assert_eq!(again.key, over_a.key);

    // The agent's socket applies unless the request names its own.
    let agent_wide = AgentConfig {
        unix_socket: Some("/agent.sock".into()),
        ..config
    };
    let t = targets.get(&agent_wide, &"http://h/".into(), None).unwrap();
    assert_eq!(t.route.unix.as_deref(), Some(Path::new("/agent.sock")));
    let t = targets
        .get(&agent_wide, &"http://h/".into(), Some(&a))
        .unwrap();
    assert_eq!(t.route.unix.as_deref(), Some(&*a));
}
