//! The SOCKS5 handshake (`weft::proto::socks::SocksClient`) fed a proxy's bytes whole and at
//! split points. Byte 0: bit 0 offers credentials, bit 1 targets an address rather than a
//! name, the rest seeds the split points; then the proxy's bytes.

use std::net::IpAddr;

use weft::proto::socks::{SocksClient, SocksError, SocksEvent, SocksTarget};

use crate::common::piece_lengths;

/// Runs one input; panics on a broken invariant.
pub fn fuzz_socks(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let creds: Option<(&[u8], &[u8])> = (ctl & 1 == 1).then_some((b"user", b"pass"));
    let target = if ctl & 2 == 0 {
        SocksTarget::Domain("origin.test".into(), 443)
    } else {
        SocksTarget::Ip(IpAddr::from([127, 0, 0, 1]), 80)
    };
    let fresh = || SocksClient::new(target.clone(), creds).expect("a valid target");

    let mut whole = fresh();
    let mut sent_whole = Vec::new();
    let verdict_whole = whole.receive(input, &mut sent_whole);
    if let Ok((n, ev)) = verdict_whole {
        assert!(n <= input.len());
        assert!(
            ev == SocksEvent::Connected || n == input.len(),
            "NeedMore with bytes left"
        );
    }

    let mut split = fresh();
    let mut sent_split = Vec::new();
    let mut next = piece_lengths(ctl >> 2, [2, 8, 300]);
    let mut pos = 0;
    let verdict_split: Result<(usize, SocksEvent), SocksError> = loop {
        let piece = next().min(input.len() - pos);
        match split.receive(&input[pos..pos + piece], &mut sent_split) {
            Ok((n, SocksEvent::Connected)) => break Ok((pos + n, SocksEvent::Connected)),
            Ok((n, SocksEvent::NeedMore)) => assert_eq!(n, piece, "NeedMore with bytes left"),
            Err(e) => break Err(e),
        }
        pos += piece;
        if pos == input.len() {
            break Ok((pos, SocksEvent::NeedMore));
        }
    };
    assert_eq!(
        verdict_whole, verdict_split,
        "the split changed the verdict"
    );
    assert_eq!(sent_whole, sent_split, "the split changed what was sent");
    // Method selection, credentials and one CONNECT at most.
    assert!(sent_whole.len() <= 3 + 10 + 4 + 1 + 11 + 2);

    match verdict_whole {
        Err(e) => {
            // Errors latch, EOF included.
            assert_eq!(whole.receive(b"\x05\x00", &mut Vec::new()), Err(e));
            assert_eq!(whole.receive_eof(), e);
        }
        Ok((_, SocksEvent::NeedMore)) => {
            let e = whole.receive_eof();
            assert!(matches!(e, SocksError::Closed { .. }), "{e:?}");
        }
        Ok((_, SocksEvent::Connected)) => assert!(whole.is_connected()),
    }
}
