//! TLS failure classes through the Agent (docs/http-support.md §2.1 row 25 and §2.2 row F9).
//!
//! Every certificate is generated at test time (rcgen); the server is rustls on 127.0.0.1 and
//! records every byte it decrypts, so "no request byte reached the server" is checked where it
//! matters. Host names (`*.test`) resolve through a resolver injected into the reactor, so
//! nothing reaches the system resolver or the network.
//!
//! Each class gives its own `TlsError`. Two pairs cannot be told apart by any client, because
//! the chain the server sends is the same: a leaf from an unknown CA sent alone, and a leaf
//! whose intermediate the server forgot to send, are both `UnknownIssuer` (its issuer is
//! neither trusted nor sent). An unknown CA whose root the server sends along is
//! `UntrustedRoot`.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::faults::*;
use support::servers::Leaf;
use support::servers::tls::server_config;
use weft::client::{Agent, AgentConfig, Cause, Phase};
use weft::reactor::{Reactor, TransportError};
use weft::tls::{TlsConnector, TlsError};

/// A failed handshake must end well within this.
const HANDSHAKE_BOUND: Duration = Duration::from_secs(3);

type Issuer = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str, parent: Option<&Issuer>) -> Issuer {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    match parent {
        None => CertifiedIssuer::self_signed(params, key).unwrap(),
        Some(parent) => CertifiedIssuer::signed_by(params, key, parent).unwrap(),
    }
}

/// A certificate chain as the server sends it, and the leaf's key.
struct Chain {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A date: year, month, day.
type Ymd = (i32, u8, u8);

/// How a leaf differs from a good one.
#[derive(Default)]
struct LeafSpec {
    /// SANs; `None`: none at all (CN only).
    names: Option<Vec<&'static str>>,
    validity: Option<(Ymd, Ymd)>,
    eku: Option<ExtendedKeyUsagePurpose>,
}

fn leaf(spec: LeafSpec, issuer: &Issuer) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let names: Vec<String> = spec
        .names
        .unwrap_or_default()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "weft.test");
    params.extended_key_usages = vec![spec.eku.unwrap_or(ExtendedKeyUsagePurpose::ServerAuth)];
    if let Some(((y1, m1, d1), (y2, m2, d2))) = spec.validity {
        params.not_before = rcgen::date_time_ymd(y1, m1, d1);
        params.not_after = rcgen::date_time_ymd(y2, m2, d2);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let key = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    (cert.der().clone(), key)
}

fn good_names() -> Option<Vec<&'static str>> {
    Some(vec!["weft.test"])
}

/// A leaf for the right name issued by `issuer`, served with the CA certificates `sent`
/// after it (what a server sends as its chain).
fn chain_from(issuer: &Issuer, sent: &[&Issuer]) -> Chain {
    let (cert, key) = leaf(
        LeafSpec {
            names: good_names(),
            ..LeafSpec::default()
        },
        issuer,
    );
    let mut certs = vec![cert];
    certs.extend(sent.iter().map(|ca| ca.der().clone()));
    Chain { certs, key }
}

/// The PKI of one test: a trusted root, an intermediate under it, and an unrelated CA.
struct Pki {
    root: Issuer,
    intermediate: Issuer,
    stranger: Issuer,
}

impl Pki {
    fn new() -> Pki {
        let root = ca("weft classes root", None);
        let intermediate = ca("weft classes intermediate", Some(&root));
        let stranger = ca("someone else's root", None);
        Pki {
            root,
            intermediate,
            stranger,
        }
    }

    /// The client trusts only `root`.
    fn connector(&self) -> TlsConnector {
        TlsConnector::with_root_pem(self.root.pem().as_bytes()).unwrap()
    }

    fn leaf_of_root(&self, spec: LeafSpec) -> Chain {
        let (cert, key) = leaf(spec, &self.root);
        Chain {
            certs: vec![cert],
            key,
        }
    }
}

/// What the TLS server decrypted, over all its connections.
type Decrypted = Arc<Mutex<Vec<u8>>>;

/// Serves TLS with `chain`; records decrypted bytes and answers each request with `ok`.
fn tls_server(chain: Chain, decrypted: &Decrypted) -> RawServer {
    let config = server_config(Leaf {
        chain: chain.certs,
        key: chain.key,
    });
    let decrypted = decrypted.clone();
    RawServer::start(Box::new(move |_, tcp, _| {
        use std::io::{Read, Write};
        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    decrypted.lock().unwrap().extend_from_slice(&buf[..n]);
                    seen.extend_from_slice(&buf[..n]);
                    if seen.ends_with(b"\r\n\r\n") {
                        seen.clear();
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                }
            }
        }
    }))
}

/// `*.test` → 127.0.0.1; anything else fails, so nothing leaves the machine.
fn hermetic_reactor() -> Reactor {
    let mut reactor = Reactor::new().unwrap();
    reactor.ctx().set_resolver(|host: &str, port: u16| {
        if host.ends_with(".test") {
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host}: not in the test resolver"),
            ))
        }
    });
    reactor
}

fn agent_config(tls: TlsConnector) -> AgentConfig {
    AgentConfig { tls, ..config() }
}

/// Requests `https://weft.test:<port>/` from a server with `chain` and returns the outcome,
/// what the server decrypted, and how long it took. Checks the leak baseline.
fn fetch(chain: Chain, tls: TlsConnector) -> (Outcome, Vec<u8>, Duration) {
    let mut reactor = hermetic_reactor();
    let agent = Agent::new(reactor.ctx(), agent_config(tls));
    let baseline = Baseline::take(&mut reactor);
    let decrypted = Decrypted::default();
    let server = tls_server(chain, &decrypted);
    let url = format!("https://weft.test:{}/", server.addr.port());
    let (out, took) = run(&mut reactor, agent, "GET", &url, None);
    if out.error().is_some() {
        assert_nothing_pooled(&mut reactor, agent);
    }
    agent.close_idle(reactor.ctx());
    turn_for(&mut reactor, Duration::from_millis(20));
    server.join();
    baseline.assert_back(&mut reactor);
    let bytes = decrypted.lock().unwrap().clone();
    (out, bytes, took)
}

/// Asserts the request failed before sending with exactly `expected`, that no byte of it was
/// decrypted by the server, and that it failed quickly.
fn assert_refused(chain: Chain, tls: TlsConnector, expected: TlsError) {
    let (out, decrypted, took) = fetch(chain, tls);
    let err = out.error().expect("the handshake must fail").clone();
    assert_eq!(
        err.cause(),
        &Cause::Transport(TransportError::Tls(expected.clone())),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
    assert!(!err.server_may_have_processed());
    assert!(
        err.to_string().contains(&expected.to_string()),
        "the message names the cause: {err}"
    );
    assert!(
        decrypted.is_empty(),
        "request bytes reached the server: {:?}",
        String::from_utf8_lossy(&decrypted)
    );
    assert!(took < HANDSHAKE_BOUND, "took {took:?}");
}

#[test]
fn control_a_good_chain_succeeds_and_the_server_sees_the_request() {
    let pki = Pki::new();
    let chain = pki.leaf_of_root(LeafSpec {
        names: good_names(),
        ..LeafSpec::default()
    });
    let (out, decrypted, _) = fetch(chain, pki.connector());
    assert!(out.is_done(), "{:?}", out.result);
    assert_eq!(out.body, b"ok");
    assert!(
        decrypted.starts_with(b"GET / HTTP/1.1\r\n"),
        "the recorder works"
    );
}

#[test]
fn control_leaf_with_its_intermediate_succeeds() {
    let pki = Pki::new();
    let chain = chain_from(&pki.intermediate, &[&pki.intermediate]);
    let (out, decrypted, _) = fetch(chain, pki.connector());
    assert!(out.is_done(), "{:?}", out.result);
    assert!(!decrypted.is_empty());
}

#[test]
fn expired_certificate() {
    let pki = Pki::new();
    let chain = pki.leaf_of_root(LeafSpec {
        names: good_names(),
        validity: Some(((2001, 1, 1), (2002, 1, 1))),
        ..LeafSpec::default()
    });
    assert_refused(chain, pki.connector(), TlsError::Expired);
}

#[test]
fn certificate_not_yet_valid() {
    let pki = Pki::new();
    let chain = pki.leaf_of_root(LeafSpec {
        names: good_names(),
        validity: Some(((2090, 1, 1), (2091, 1, 1))),
        ..LeafSpec::default()
    });
    assert_refused(chain, pki.connector(), TlsError::NotValidYet);
}

#[test]
fn certificate_for_another_host() {
    let pki = Pki::new();
    let chain = pki.leaf_of_root(LeafSpec {
        names: Some(vec!["other.test", "127.0.0.2"]),
        ..LeafSpec::default()
    });
    assert_refused(chain, pki.connector(), TlsError::NameMismatch);
}

#[test]
fn self_signed_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["weft.test".to_string()]).unwrap();
    let chain = Chain {
        certs: vec![ck.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
    };
    assert_refused(chain, Pki::new().connector(), TlsError::SelfSigned);
}

#[test]
fn chain_ending_in_an_unknown_root() {
    let pki = Pki::new();
    let chain = chain_from(&pki.stranger, &[&pki.stranger]);
    assert_refused(chain, pki.connector(), TlsError::UntrustedRoot);
}

#[test]
fn leaf_from_an_unknown_ca_sent_alone() {
    let pki = Pki::new();
    let chain = chain_from(&pki.stranger, &[]);
    assert_refused(chain, pki.connector(), TlsError::UnknownIssuer);
}

#[test]
fn missing_intermediate() {
    let pki = Pki::new();
    let chain = chain_from(&pki.intermediate, &[]);
    assert_refused(chain, pki.connector(), TlsError::UnknownIssuer);
}

#[test]
fn common_name_only_without_subject_alt_name() {
    let pki = Pki::new();
    // CN = weft.test, the host asked for; RFC 9110 §4.3.4 forbids using it.
    let chain = pki.leaf_of_root(LeafSpec {
        names: None,
        ..LeafSpec::default()
    });
    assert_refused(chain, pki.connector(), TlsError::NoSubjectAltName);
}

#[test]
fn client_auth_only_extended_key_usage() {
    let pki = Pki::new();
    let chain = pki.leaf_of_root(LeafSpec {
        names: good_names(),
        eku: Some(ExtendedKeyUsagePurpose::ClientAuth),
        ..LeafSpec::default()
    });
    assert_refused(chain, pki.connector(), TlsError::WrongPurpose);
}

#[test]
fn all_classes_are_distinct() {
    let classes = [
        TlsError::Expired,
        TlsError::NotValidYet,
        TlsError::NameMismatch,
        TlsError::SelfSigned,
        TlsError::UntrustedRoot,
        TlsError::UnknownIssuer,
        TlsError::NoSubjectAltName,
        TlsError::WrongPurpose,
    ];
    let messages: std::collections::HashSet<String> =
        classes.iter().map(|c| c.to_string()).collect();
    assert_eq!(messages.len(), classes.len(), "{messages:?}");
}

// ---- servers that do not complete a handshake --------------------------------------------

/// A raw server that reads what the client sends first (its ClientHello), then runs `act`;
/// returns the outcome, the bytes it read, and the time taken.
fn against_raw(act: fn(&mut std::net::TcpStream)) -> (Outcome, Duration) {
    let mut reactor = hermetic_reactor();
    let agent = Agent::new(reactor.ctx(), agent_config(Pki::new().connector()));
    let baseline = Baseline::take(&mut reactor);
    let server = RawServer::start(Box::new(move |_, mut tcp, log| {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let n = tcp.read(&mut buf).unwrap_or(0);
        record(log, 0, buf[..n].to_vec());
        act(&mut tcp);
    }));
    let url = format!("https://weft.test:{}/", server.addr.port());
    let (out, took) = run(&mut reactor, agent, "GET", &url, None);
    assert_nothing_pooled(&mut reactor, agent);
    let log = server.join();
    // What the server got is a TLS handshake record (content type 22), never HTTP.
    assert_eq!(log.requests.len(), 1);
    assert_eq!(log.requests[0].1.first(), Some(&0x16), "{:?}", log.requests);
    baseline.assert_back(&mut reactor);
    let err = out.error().expect("the request must fail");
    assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
    assert!(took < HANDSHAKE_BOUND, "took {took:?}");
    (out, took)
}

#[test]
fn server_sends_a_fatal_alert() {
    let (out, _) = against_raw(|tcp| {
        // alert record, TLS 1.2 framing: fatal (2), handshake_failure (40).
        send(tcp, &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    });
    let err = out.error().unwrap();
    match err.cause() {
        Cause::Transport(TransportError::Tls(TlsError::AlertReceived(a))) => {
            assert!(a.contains("HandshakeFailure"), "{a}")
        }
        other => panic!("expected an alert, got {other:?}"),
    }
}

#[test]
fn server_closes_mid_handshake() {
    let (out, _) = against_raw(|tcp| {
        // The start of a ServerHello record, then FIN.
        send(tcp, &[0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00]);
    });
    let err = out.error().unwrap();
    match err.cause() {
        Cause::Transport(TransportError::Io(std::io::ErrorKind::UnexpectedEof, m)) => {
            assert!(m.contains("TLS handshake"), "{m}")
        }
        other => panic!("expected EOF during the handshake, got {other:?}"),
    }
}

#[test]
fn plain_http_400_on_the_tls_port() {
    let (out, _) = against_raw(|tcp| {
        send(
            tcp,
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
        );
    });
    let err = out.error().unwrap();
    assert!(
        matches!(
            err.cause(),
            Cause::Transport(TransportError::Tls(TlsError::Protocol(_)))
        ),
        "{err}"
    );
    assert!(
        out.status.is_none(),
        "the 400 is never taken for a response"
    );
}

#[test]
fn server_stalls_mid_handshake_until_the_connect_timeout() {
    let mut reactor = hermetic_reactor();
    let config = AgentConfig {
        connect_timeout: Some(Duration::from_millis(300)),
        ..agent_config(Pki::new().connector())
    };
    let agent = Agent::new(reactor.ctx(), config);
    let baseline = Baseline::take(&mut reactor);
    let server = RawServer::start(Box::new(|_, mut tcp, _| {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf);
        // Say nothing until the client gives up.
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = tcp.read(&mut buf);
    }));
    let url = format!("https://weft.test:{}/", server.addr.port());
    let (out, took) = run(&mut reactor, agent, "GET", &url, None);
    let err = out.error().expect("must time out");
    assert!(
        matches!(
            err.cause(),
            Cause::Transport(TransportError::ConnectTimeout)
                | Cause::Timeout(weft::client::Timeout {
                    kind: weft::client::TimeoutKind::Connect,
                    ..
                })
        ),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::RequestNotSent);
    assert!(
        took >= Duration::from_millis(270) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_nothing_pooled(&mut reactor, agent);
    server.join();
    baseline.assert_back(&mut reactor);
}
