//! Happy Eyeballs v2 (RFC 8305) in the reactor's connect path, the IPv4/IPv6 filter, and the
//! agent's `--resolve` / `--connect-to` overrides. Loopback only: an address whose connect
//! never completes is a listener on 127.0.0.x or `::1` with a full accept queue
//! ([`Blackhole`]); a [`Connector`](weft::reactor::Connector) stands in for the network where
//! only the order of the attempts matters.

mod support;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::baseline::{Baseline, LIMIT, assert_nothing_pooled};
use support::blackhole::{Blackhole, has_ipv6_loopback, refused_v4, refused_v6};
use support::reactor::{Echo, Ev, LoggingProtocol, endings, log, non_data, turn_until};
use support::scripted::{Outcome, Req, finished, issue, test_config};
use support::servers::{Nginx, Tinyproxy};
use weft::client::{Agent, AgentConfig, Cause, ConnectTo, Proxies, ResolveOverride};
use weft::reactor::{ConnectOptions, IpFamily, Reactor, TransportError};
use weft::tls::TlsConnector;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DELAY: Duration = Duration::from_millis(100);

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn options(delay: Duration, timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Some(timeout),
        attempt_delay: Some(delay),
        ..Default::default()
    }
}

/// A reactor with an echo listener on 127.0.0.1, whose resolver answers `addrs` (with the
/// listener's address wherever `None` is given) for every name.
fn reactor_resolving(addrs: Vec<Option<SocketAddr>>) -> (Reactor, SocketAddr) {
    let mut reactor = Reactor::new().unwrap();
    let good = reactor
        .ctx()
        .listen_tcp("127.0.0.1:0".parse().unwrap(), || Box::new(Echo))
        .unwrap();
    let addrs: Vec<SocketAddr> = addrs.into_iter().map(|a| a.unwrap_or(good)).collect();
    reactor
        .ctx()
        .set_resolver(move |_: &str, _: u16| Ok(addrs.clone()));
    (reactor, good)
}

/// Connects to "race.test" through a resolver that gives a hanging address on `hole_ip`,
/// then a good one: the good one must win after about the attempt delay, and the hanging
/// attempt must be closed.
fn hanging_address_loses_to_the_next(hole_ip: IpAddr) {
    let Some(hole) = Blackhole::new(hole_ip, 0) else {
        eprintln!("connects to a full accept queue complete here: not testable");
        return;
    };
    let (mut reactor, good) = reactor_resolving(vec![Some(hole.addr()), None]);
    let baseline = Baseline::take(&mut reactor);
    let client_log = log();
    let started = Instant::now();
    let conn = reactor.ctx().connect_tcp(
        "race.test",
        1,
        options(DELAY, CONNECT_TIMEOUT),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| !non_data(&client_log).is_empty()));
    let took = started.elapsed();
    assert_eq!(non_data(&client_log), vec![Ev::Made(conn)]);
    assert!(
        took >= DELAY * 9 / 10,
        "the second attempt did not wait: {took:?}"
    );
    assert!(took < CONNECT_TIMEOUT / 2, "{took:?}");
    assert_eq!(reactor.ctx().peer_addr(conn), Some(good));
    // The winner and the connection it was accepted as are registered; the loser is not, and
    // neither the attempt-delay nor the connect-timeout timer is left.
    let now = reactor.stats();
    assert_eq!(now.registrations, baseline.reactor.registrations + 2);
    assert_eq!(now.timers, baseline.reactor.timers);
    reactor.ctx().lose_connection(conn);
    baseline.assert_back(&mut reactor);
}

#[test]
fn a_hanging_ipv4_address_loses_to_the_next_after_the_attempt_delay() {
    hanging_address_loses_to_the_next(v4(2));
}

#[test]
fn a_hanging_ipv6_address_loses_to_an_ipv4_one() {
    if !has_ipv6_loopback() {
        eprintln!("no ::1 here: skipped");
        return;
    }
    hanging_address_loses_to_the_next(V6);
}

#[test]
fn all_hanging_addresses_end_with_the_connect_timeout_with_every_attempt_closed() {
    let (Some(a), Some(b)) = (Blackhole::new(v4(2), 0), Blackhole::new(v4(3), 0)) else {
        eprintln!("connects to a full accept queue complete here: not testable");
        return;
    };
    let (mut reactor, _) = reactor_resolving(vec![Some(a.addr()), Some(b.addr())]);
    let baseline = Baseline::take(&mut reactor);
    let client_log = log();
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let conn = reactor.ctx().connect_tcp(
        "race.test",
        1,
        options(DELAY, timeout),
        LoggingProtocol::new(&client_log).boxed(),
    );
    // Both attempts go on together once the delay has passed.
    assert!(turn_until(&mut reactor, LIMIT, |r| r.stats().registrations
        == baseline.reactor.registrations + 2));
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let took = started.elapsed();
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Failed(conn, TransportError::ConnectTimeout)]
    );
    assert!(took >= timeout * 9 / 10 && took < timeout * 4, "{took:?}");
    baseline.assert_back(&mut reactor);
}

#[test]
fn refused_attempts_start_the_next_at_once_and_the_error_counts_them() {
    let mut addrs = vec![Some(refused_v4()), Some(refused_v4())];
    if has_ipv6_loopback() {
        addrs.push(Some(refused_v6()));
    }
    let tried = addrs.len();
    // Interleaved: 127.0.0.1, ::1, 127.0.0.1 (or the two IPv4 ones alone).
    let last = addrs[1].unwrap();
    let (mut reactor, _) = reactor_resolving(addrs);
    let baseline = Baseline::take(&mut reactor);
    let client_log = log();
    let started = Instant::now();
    // A delay far above the test's bound: only failures can start the next attempts.
    let conn = reactor.ctx().connect_tcp(
        "race.test",
        1,
        options(Duration::from_secs(30), CONNECT_TIMEOUT),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let expected = TransportError::AllAttemptsFailed {
        tried,
        last_addr: last,
        last: Box::new(TransportError::ConnectionRefused),
    };
    assert_eq!(
        non_data(&client_log),
        vec![Ev::Failed(conn, expected.clone())]
    );
    assert_eq!(expected.last(), &TransportError::ConnectionRefused);
    let message = expected.to_string();
    assert!(
        message.contains(&format!("all {tried} addresses failed")) && message.contains("refused"),
        "{message}"
    );
    baseline.assert_back(&mut reactor);
}

#[test]
fn aborting_a_race_closes_every_attempt() {
    let (Some(a), Some(b)) = (Blackhole::new(v4(2), 0), Blackhole::new(v4(3), 0)) else {
        eprintln!("connects to a full accept queue complete here: not testable");
        return;
    };
    let (mut reactor, _) = reactor_resolving(vec![Some(a.addr()), Some(b.addr())]);
    let baseline = Baseline::take(&mut reactor);
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "race.test",
        1,
        options(Duration::from_millis(20), CONNECT_TIMEOUT),
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |r| r.stats().registrations
        == baseline.reactor.registrations + 2));
    reactor.ctx().abort_connection(conn);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(matches!(
        &non_data(&client_log)[..],
        [Ev::Failed(c, TransportError::Io(std::io::ErrorKind::Interrupted, _))] if *c == conn
    ));
    baseline.assert_back(&mut reactor);
}

/// Runs a connect to "order.test" whose addresses are `given` through a connector that
/// refuses every one (no socket is opened); returns the addresses in the order they were
/// tried and the failure.
fn attempts(given: Vec<SocketAddr>, family: IpFamily) -> (Vec<SocketAddr>, TransportError) {
    let mut reactor = Reactor::new().unwrap();
    let asked: Rc<RefCell<Vec<SocketAddr>>> = Rc::default();
    let seen = asked.clone();
    reactor.ctx().set_connector(move |addr: SocketAddr| {
        seen.borrow_mut().push(addr);
        Some(Err(std::io::ErrorKind::ConnectionRefused.into()))
    });
    reactor
        .ctx()
        .set_resolver(move |_: &str, _: u16| Ok(given.clone()));
    let client_log = log();
    let options = ConnectOptions {
        ip_family: family,
        ..options(Duration::from_secs(30), CONNECT_TIMEOUT)
    };
    reactor.ctx().connect_tcp(
        "order.test",
        80,
        options,
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let error = match &non_data(&client_log)[..] {
        [Ev::Failed(_, e)] => e.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reactor.stats().connections, 0);
    let tried = asked.borrow().clone();
    (tried, error)
}

fn at(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

#[test]
fn attempts_alternate_between_families_starting_with_the_first_answer() {
    let given = vec![at(V6, 1), at(V6, 2), at(V6, 3), at(v4(1), 1), at(v4(1), 2)];
    let (tried, error) = attempts(given, IpFamily::Any);
    assert_eq!(
        tried,
        [at(V6, 1), at(v4(1), 1), at(V6, 2), at(v4(1), 2), at(V6, 3)]
    );
    assert!(
        matches!(error, TransportError::AllAttemptsFailed { tried: 5, last_addr, .. } if last_addr == at(V6, 3)),
        "{error:?}"
    );
}

#[test]
fn the_family_filter_keeps_one_family_or_fails_as_a_name_error() {
    let given = vec![at(V6, 1), at(v4(1), 1), at(V6, 2), at(v4(1), 2)];
    let (tried, _) = attempts(given.clone(), IpFamily::V4);
    assert_eq!(tried, [at(v4(1), 1), at(v4(1), 2)]);
    let (tried, _) = attempts(given, IpFamily::V6);
    assert_eq!(tried, [at(V6, 1), at(V6, 2)]);
    let (tried, error) = attempts(vec![at(v4(1), 1)], IpFamily::V6);
    assert!(tried.is_empty());
    assert!(
        matches!(&error, TransportError::Dns(m) if m.contains("order.test") && m.contains("no IPv6 address")),
        "{error:?}"
    );
}

#[test]
fn an_ip_literal_of_the_other_family_is_refused_without_a_connect() {
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let options = ConnectOptions {
        ip_family: IpFamily::V6,
        ..options(DELAY, CONNECT_TIMEOUT)
    };
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        9,
        options,
        LoggingProtocol::new(&client_log).boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    assert!(
        matches!(&non_data(&client_log)[..], [Ev::Failed(c, TransportError::Dns(m))] if *c == conn && m.contains("IPv6")),
        "{:?}",
        client_log.borrow()
    );
    assert_eq!(reactor.stats(), Default::default());
}

// The agent, against nginx on 127.0.0.1, for a host name that exists nowhere.

fn get(reactor: &mut Reactor, agent: Agent, url: &str) -> (Outcome, Duration) {
    let started = Instant::now();
    let slot = issue(reactor.ctx(), agent, Req::get(url.to_string()));
    support::scripted::turn_until(reactor, Duration::from_secs(15), || finished(&slot));
    let out = slot.borrow().clone();
    (out, started.elapsed())
}

/// Runs `urls` in turn on one agent with `config` (a resolver that knows no name, so only
/// the overrides can lead anywhere), checks that nothing is left behind, and returns the
/// outcomes with how long each took.
fn run_agent(config: AgentConfig, urls: &[&str]) -> Vec<(Outcome, Duration)> {
    let mut reactor = Reactor::new().unwrap();
    reactor.ctx().set_resolver(|host: &str, _: u16| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host}: not in the test resolver"),
        ))
    });
    let agent = Agent::new(reactor.ctx(), config);
    let baseline = Baseline::take(&mut reactor);
    let outs = urls.iter().map(|u| get(&mut reactor, agent, u)).collect();
    agent.close_idle(reactor.ctx());
    assert_nothing_pooled(&mut reactor, agent);
    baseline.assert_back(&mut reactor);
    outs
}

fn config_with(tls: Option<&Nginx>) -> AgentConfig {
    let mut config = AgentConfig {
        connect_timeout: Some(CONNECT_TIMEOUT),
        happy_eyeballs_delay: DELAY,
        ..test_config()
    };
    if let Some(nginx) = tls {
        config.tls = TlsConnector::with_root_pem_file(nginx.ca_pem_path()).unwrap();
    }
    config
}

fn assert_hello(out: &Outcome) {
    assert_eq!(out.status, Some(200), "{:?}", out.result);
    assert_eq!(out.body, b"hello world\n");
    assert!(out.is_done());
}

#[test]
fn resolve_override_races_a_hanging_address_and_reuses_the_winner() {
    let nginx = Nginx::start();
    let port = nginx.http_port();
    let Some(_hole) = Blackhole::new(v4(2), port) else {
        eprintln!("no blackhole on 127.0.0.2:{port}: skipped");
        return;
    };
    let config = AgentConfig {
        resolve_overrides: vec![
            format!("made.up.test:{port}:127.0.0.2,127.0.0.1")
                .parse()
                .unwrap(),
        ],
        ..config_with(None)
    };
    let url = format!("http://made.up.test:{port}/hello.txt");
    let outs = run_agent(config, &[&url, &url, &url]);
    for (out, took) in &outs {
        assert_hello(out);
        assert!(*took < CONNECT_TIMEOUT / 2, "{took:?}");
    }
    assert!(outs[0].1 >= DELAY * 9 / 10, "{:?}", outs[0].1);
    let log = nginx.wait_access_log(3);
    let conns: std::collections::HashSet<u64> = log.iter().map(|e| e.connection).collect();
    assert_eq!(conns.len(), 1, "the winner is pooled and reused: {log:?}");
}

#[test]
fn resolve_override_keeps_the_tls_name_of_the_url() {
    let nginx = Nginx::start();
    let port = nginx.https_port();
    let hole = Blackhole::new(v4(2), port);
    let mut list = String::from("127.0.0.1");
    if hole.is_some() {
        list.insert_str(0, "127.0.0.2,");
    }
    let config = AgentConfig {
        resolve_overrides: vec![
            format!("localhost:{port}:{list}").parse().unwrap(),
            format!("made.up.test:{port}:{list}").parse().unwrap(),
        ],
        ..config_with(Some(&nginx))
    };
    let good = format!("https://localhost:{port}/hello.txt");
    let other = format!("https://made.up.test:{port}/hello.txt");
    let outs = run_agent(config, &[&good, &other]);
    assert_hello(&outs[0].0);
    // The certificate is for localhost: made.up.test is checked as made.up.test.
    let err = outs[1].0.error().expect("name mismatch");
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Tls(_))),
        "{err}"
    );
}

#[test]
fn connect_to_sends_the_connection_elsewhere_and_keeps_host_and_tls_name() {
    let nginx = Nginx::start();
    let (http, https) = (nginx.http_port(), nginx.https_port());
    let rules: Vec<ConnectTo> = [
        format!("made.up.test:80:127.0.0.1:{http}"),
        format!("localhost:443:127.0.0.1:{https}"),
        format!("tls.made.up.test:443:localhost:{https}"),
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    let config = AgentConfig {
        connect_to: rules,
        // The rule's target may itself be overridden, as curl does.
        resolve_overrides: vec![format!("localhost:{https}:127.0.0.1").parse().unwrap()],
        ..config_with(Some(&nginx))
    };
    let outs = run_agent(
        config,
        &[
            "http://made.up.test/hello.txt",
            "https://localhost/hello.txt",
            "https://tls.made.up.test/hello.txt",
            "http://unmatched.made.up.test/hello.txt",
        ],
    );
    assert_hello(&outs[0].0);
    assert_hello(&outs[1].0);
    let err = outs[2].0.error().expect("name mismatch");
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Tls(_))),
        "{err}"
    );
    // No rule: resolved as usual, by a resolver that knows nothing.
    let err = outs[3].0.error().expect("not resolvable");
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Dns(_))),
        "{err}"
    );
}

#[test]
fn ip_family_filters_the_agents_addresses() {
    let nginx = Nginx::start();
    let port = nginx.http_port();
    let url = format!("http://made.up.test:{port}/hello.txt");
    // IPv4 only: a hanging ::1 first would cost the (long) attempt delay if it were tried.
    let hole = has_ipv6_loopback()
        .then(|| Blackhole::new(V6, port))
        .flatten();
    let list = if hole.is_some() {
        "[::1],127.0.0.1"
    } else {
        "127.0.0.1"
    };
    let entry: ResolveOverride = format!("made.up.test:{port}:{list}").parse().unwrap();
    let config = AgentConfig {
        resolve_overrides: vec![entry.clone()],
        ip_family: IpFamily::V4,
        happy_eyeballs_delay: Duration::from_secs(30),
        ..config_with(None)
    };
    let outs = run_agent(config, &[&url]);
    assert_hello(&outs[0].0);
    assert!(outs[0].1 < Duration::from_secs(5), "{:?}", outs[0].1);
    let config = AgentConfig {
        resolve_overrides: vec![format!("made.up.test:{port}:127.0.0.1").parse().unwrap()],
        ip_family: IpFamily::V6,
        ..config_with(None)
    };
    let outs = run_agent(config, &[&url]);
    let err = outs[0].0.error().expect("no IPv6 address");
    assert!(
        matches!(err.cause(), Cause::Transport(TransportError::Dns(m)) if m.contains("IPv6")),
        "{err}"
    );
}

#[test]
fn through_a_proxy_resolve_finds_the_proxy_and_connect_to_retargets_the_tunnel() {
    let nginx = Nginx::start();
    let proxy = Tinyproxy::start(None);
    let proxy_port = proxy.addr().port();
    let https = nginx.https_port();
    let config = AgentConfig {
        proxies: Proxies::all(&format!("http://proxy.made.up.test:{proxy_port}")).unwrap(),
        resolve_overrides: vec![
            format!("proxy.made.up.test:{proxy_port}:127.0.0.1")
                .parse()
                .unwrap(),
        ],
        connect_to: vec![format!("localhost:443:127.0.0.1:{https}").parse().unwrap()],
        ..config_with(Some(&nginx))
    };
    let outs = run_agent(config, &["https://localhost/hello.txt"]);
    assert_hello(&outs[0].0);
    let log = proxy.log();
    assert!(log.contains(&format!("127.0.0.1:{https}")), "{log}");
}

#[test]
fn a_resolver_answer_of_thousands_of_addresses_is_capped() {
    let given: Vec<SocketAddr> = (1..=3000).map(|p| at(v4(1), p)).collect();
    let (tried, error) = attempts(given, IpFamily::Any);
    assert_eq!(tried.len(), weft::reactor::MAX_ATTEMPTS);
    assert!(
        matches!(error, TransportError::AllAttemptsFailed { tried, .. } if tried == weft::reactor::MAX_ATTEMPTS),
        "{error:?}"
    );
}
