use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn client(target: SocksTarget, creds: Option<(&[u8], &[u8])>) -> SocksClient {
    SocksClient::new(target, creds).unwrap()
}

fn domain(name: &str) -> SocksTarget {
    SocksTarget::Domain(name.to_owned(), 80)
}

/// Feeds `script` whole, byte by byte, and with trailing bytes; each way gives `expect` and
/// the same bytes to send, and the trailing bytes are left unconsumed.
fn run(
    creds: Option<(&[u8], &[u8])>,
    script: &[u8],
    expect: Result<SocksEvent, SocksError>,
) -> Vec<u8> {
    let mut sent_whole = Vec::new();
    let mut c = client(domain("origin.test"), creds);
    let whole = c.receive(script, &mut sent_whole).map(|(_, ev)| ev);
    assert_eq!(whole, expect, "whole");

    let mut sent_split = Vec::new();
    let mut c = client(domain("origin.test"), creds);
    let mut last = Ok(SocksEvent::NeedMore);
    for b in script {
        last = c
            .receive(std::slice::from_ref(b), &mut sent_split)
            .map(|(_, ev)| ev);
        if last != Ok(SocksEvent::NeedMore) {
            break;
        }
    }
    assert_eq!(last, expect, "byte by byte");
    assert_eq!(sent_whole, sent_split);

    if expect == Ok(SocksEvent::Connected) {
        let mut c = client(domain("origin.test"), creds);
        let mut input = script.to_vec();
        input.extend_from_slice(b"HTTP/1.1");
        let (n, ev) = c.receive(&input, &mut Vec::new()).unwrap();
        assert_eq!((n, ev), (script.len(), SocksEvent::Connected));
        assert!(c.is_connected());
    }
    sent_whole
}

const OK_V4: [u8; 10] = [5, 0, 0, 1, 127, 0, 0, 1, 0, 80];

#[test]
fn no_auth_handshake_sends_the_name() {
    let mut script = vec![5, 0];
    script.extend_from_slice(&OK_V4);
    let sent = run(None, &script, Ok(SocksEvent::Connected));
    let mut want = vec![5, 1, 0, 3, 11];
    want.extend_from_slice(b"origin.test");
    want.extend_from_slice(&[0, 80]);
    assert_eq!(sent, want);
}

#[test]
fn addresses_are_sent_as_addresses() {
    let mut out = Vec::new();
    let v4 = SocksTarget::Ip(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 443);
    client(v4, None).receive(&[5, 0], &mut out).unwrap();
    assert_eq!(out, [5, 1, 0, 1, 10, 1, 2, 3, 1, 187]);
    out.clear();
    let v6 = SocksTarget::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080);
    client(v6, None).receive(&[5, 0], &mut out).unwrap();
    assert_eq!(out.len(), 4 + 16 + 2);
    assert_eq!(out[3], 4);
    assert_eq!(&out[20..], [0x1f, 0x90]);
}

#[test]
fn password_authentication() {
    let creds: Option<(&[u8], &[u8])> = Some((b"us@er", b"p:ss"));
    let mut greeting = Vec::new();
    client(domain("o"), creds).start(&mut greeting);
    assert_eq!(greeting, [5, 1, 2]);
    let mut script = vec![5, 2, 1, 0];
    script.extend_from_slice(&[5, 0, 0, 3, 4]);
    script.extend_from_slice(b"host");
    script.extend_from_slice(&[0, 1]);
    let sent = run(creds, &script, Ok(SocksEvent::Connected));
    let mut want = vec![1, 5];
    want.extend_from_slice(b"us@er");
    want.push(4);
    want.extend_from_slice(b"p:ss");
    assert!(sent.starts_with(&want), "{sent:?}");
    // A wrong password.
    run(creds, &[5, 2, 1, 1], Err(SocksError::AuthFailed(1)));
    run(creds, &[5, 2, 9, 0], Err(SocksError::BadAuthVersion(9)));
}

#[test]
fn every_reply_code_is_named() {
    let names = [
        (
            1,
            SocksReply::GeneralFailure,
            "general SOCKS server failure",
        ),
        (2, SocksReply::NotAllowed, "not allowed"),
        (3, SocksReply::NetworkUnreachable, "network unreachable"),
        (4, SocksReply::HostUnreachable, "host unreachable"),
        (5, SocksReply::ConnectionRefused, "connection refused"),
        (6, SocksReply::TtlExpired, "TTL expired"),
        (7, SocksReply::CommandNotSupported, "command not supported"),
        (
            8,
            SocksReply::AddressTypeNotSupported,
            "address type not supported",
        ),
        (
            0x42,
            SocksReply::Other(0x42),
            "unknown reply code (reply 66)",
        ),
    ];
    for (code, reply, words) in names {
        assert_eq!(SocksReply::from_code(code), reply);
        assert_eq!(reply.code(), code);
        // The code fails the handshake as soon as it arrives, whatever follows.
        let e = SocksError::Reply(reply);
        run(None, &[5, 0, 5, code], Err(e));
        assert!(e.to_string().contains(words), "{reply}");
    }
}

#[test]
fn hostile_answers_are_typed_errors() {
    run(None, &[4, 0], Err(SocksError::BadVersion(4)));
    run(None, &[5, 0xFF], Err(SocksError::NoAcceptableMethod));
    // Username/password chosen though no credentials were offered: no way to skip a step.
    run(None, &[5, 2], Err(SocksError::UnsupportedMethod(2)));
    run(
        Some((b"u", b"p")),
        &[5, 0],
        Err(SocksError::UnsupportedMethod(0)),
    );
    run(None, &[5, 0, 0x48, 0x54], Err(SocksError::BadVersion(0x48)));
    run(
        None,
        &[5, 0, 5, 0, 0, 9],
        Err(SocksError::BadAddressType(9)),
    );
    run(
        None,
        &[5, 0, 5, 0, 0, 3, 0],
        Err(SocksError::BadBoundName(0)),
    );
    run(
        None,
        &[5, 0, 5, 0, 0, 3, 254],
        Err(SocksError::BadBoundName(254)),
    );
    run(
        None,
        &[5, 0, 5, 0, 0, 3, 255],
        Err(SocksError::BadBoundName(255)),
    );
}

#[test]
fn errors_latch() {
    let mut c = client(domain("o"), None);
    let e = c.receive(&[5, 0xFF], &mut Vec::new()).unwrap_err();
    assert_eq!(c.receive(&[5, 0], &mut Vec::new()), Err(e));
    assert_eq!(c.receive_eof(), e);
}

#[test]
fn closing_early_says_where() {
    let mut c = client(domain("o"), None);
    assert_eq!(
        c.receive_eof(),
        SocksError::Closed {
            stage: SocksStage::MethodSelection,
            received: 0
        }
    );
    let mut c = client(domain("o"), None);
    c.receive(&[5, 0, 5, 0, 0, 1, 127], &mut Vec::new())
        .unwrap();
    let e = c.receive_eof();
    assert_eq!(
        e,
        SocksError::Closed {
            stage: SocksStage::Connect,
            received: 5
        }
    );
    assert_eq!(
        e.to_string(),
        "the proxy closed the connection during the connect reply (after 5 bytes)"
    );
}

#[test]
fn oversized_names_are_refused_before_sending() {
    let long = "a".repeat(256);
    assert_eq!(
        SocksClient::new(domain(&long), None).unwrap_err(),
        SocksError::NameTooLong(256)
    );
    assert!(SocksClient::new(domain(&long[..255]), None).is_ok());
    let pass = [b'x'; 300];
    assert_eq!(
        SocksClient::new(domain("o"), Some((b"u", &pass))).unwrap_err(),
        SocksError::CredentialsTooLong(300)
    );
}

/// Random input never panics, and the handshake never holds more than one reply.
#[test]
fn random_bytes_never_panic() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let creds: Option<(&[u8], &[u8])> = (round % 2 == 0).then_some((b"u", b"p"));
        let mut c = client(domain("origin.test"), creds);
        let len = (next() % 300) as usize;
        // Bias towards plausible prefixes so later states are reached too.
        let mut input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let prefix: &[u8] = if creds.is_some() {
            &[5, 2, 1, 0, 5, 0, 0]
        } else {
            &[5, 0, 5, 0, 0]
        };
        let keep = (next() as usize) % (prefix.len() + 1);
        input.splice(0..0, prefix[..keep].iter().copied());
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let piece = ((next() % 8) as usize + 1).min(input.len() - pos);
            match c.receive(&input[pos..pos + piece], &mut out) {
                Ok((n, SocksEvent::NeedMore)) => assert_eq!(n, piece),
                Ok((n, SocksEvent::Connected)) => {
                    assert!(n <= piece);
                    break;
                }
                Err(_) => break,
            }
            assert!(c.buf.len() <= 5 + MAX_BOUND_NAME + 2);
            pos += piece;
        }
        assert!(out.len() <= 3 + 2 * 256 + 4 + 256 + 2);
        let _ = c.receive_eof();
    }
}
