//! I/O failure torture (docs/http-support.md §2.1 row 38; curl's torture tests by analogy):
//! every response fixture is cut by a TCP reset after each possible number of bytes, and every
//! upload is cut after each of a set of offsets. Each run must end in exactly one typed outcome
//! (a complete response only when every byte was sent), never deliver bytes after its end,
//! never leave the failed connection in the pool, and leave the reactor as it found it.
//!
//! Rust allocation failures abort rather than return, so the allocation half of the row has no
//! analogue here; bounded allocation is covered by the caps and the fuzz targets.

mod support;

use std::time::{Duration, Instant};

use support::faults::{Baseline, assert_nothing_pooled, config, pool_stats, run, turn_for};
use support::scripted::{ScriptedServer, Step};
use weft::client::{Agent, BodyEnd, BytesProducer, Phase};
use weft::reactor::Reactor;

/// Responses with every framing: length, chunked with a trailer, interim then final,
/// close-delimited.
const FIXTURES: [&[u8]; 4] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
];

/// The body each fixture carries when it arrives whole.
const BODIES: [&[u8]; 4] = [b"hello world", b"hello world", b"ok", b"until the end"];

#[test]
fn a_reset_after_every_byte_count_ends_each_request_once_and_cleanly() {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config());
    let mut cases = 0;
    for (fixture, body) in FIXTURES.iter().zip(BODIES) {
        // One connection per cut: the server writes the first `n` bytes, then resets.
        let scripts = (0..=fixture.len())
            .map(|n| {
                vec![
                    Step::ExpectRequest,
                    Step::Write(fixture[..n].to_vec()),
                    Step::Reset,
                ]
            })
            .collect();
        let server = ScriptedServer::start(scripts);
        let baseline = Baseline::take(&mut reactor);
        for n in 0..=fixture.len() {
            let (out, _) = run(&mut reactor, agent, "GET", &server.url("/t"), None);
            match &out.result {
                // Only a fixture sent whole may succeed (the reset can still win the race).
                Some(Ok(BodyEnd::Done | BodyEnd::PotentialDataLoss)) => {
                    assert_eq!(n, fixture.len(), "cut at {n}: {out:?}");
                    assert_eq!(out.body, body, "cut at {n}");
                }
                Some(Ok(BodyEnd::Failed(e))) => {
                    assert_eq!(e.phase(), Phase::ResponseFailed, "cut at {n}: {e}");
                    assert!(body.starts_with(&out.body), "cut at {n}: foreign bytes");
                }
                Some(Err(e)) => {
                    assert!(
                        matches!(
                            e.phase(),
                            Phase::ResponseNeverReceived | Phase::RequestTransmissionFailed
                        ),
                        "cut at {n}: {e}"
                    );
                    assert!(out.body.is_empty());
                }
                None => panic!("cut at {n}: no outcome"),
            }
            cases += 1;
            if out.error().is_none() {
                // A whole response may reach the pool before the reset does; the reset must
                // then evict it promptly (idle connections are read).
                let deadline = Instant::now() + Duration::from_secs(2);
                while pool_stats(&mut reactor, agent).idle > 0 {
                    assert!(Instant::now() < deadline, "cut at {n}: reset not noticed");
                    turn_for(&mut reactor, Duration::from_millis(5));
                }
            }
            assert_nothing_pooled(&mut reactor, agent);
        }
        baseline.assert_back(&mut reactor);
    }
    assert_eq!(
        cases,
        FIXTURES.iter().map(|f| f.len() + 1).sum::<usize>(),
        "every cut ran"
    );
}

#[test]
fn a_reset_while_the_request_body_is_sent_fails_it_with_the_right_phase() {
    let body = vec![b'x'; 256 * 1024];
    let cuts = [0usize, 1, 100, 4096, 65_536, 200_000];
    let scripts = cuts
        .iter()
        .map(|&k| vec![Step::ExpectHead, Step::ReadBytes(k), Step::Reset])
        .collect();
    let server = ScriptedServer::start(scripts);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), config());
    let baseline = Baseline::take(&mut reactor);
    for k in cuts {
        let producer = Box::new(BytesProducer::new(body.clone()));
        let (out, took) = run(
            &mut reactor,
            agent,
            "POST",
            &server.url("/up"),
            Some(producer),
        );
        let e = out.error().unwrap_or_else(|| panic!("cut at {k}: {out:?}"));
        // The server may have read part of the body: never "not sent", never retried.
        assert!(
            matches!(
                e.phase(),
                Phase::RequestTransmissionFailed | Phase::ResponseNeverReceived
            ),
            "cut at {k}: {e}"
        );
        assert!(e.server_may_have_processed(), "cut at {k}");
        assert!(took < Duration::from_secs(5), "cut at {k}: {took:?}");
        assert_nothing_pooled(&mut reactor, agent);
    }
    baseline.assert_back(&mut reactor);
    assert_eq!(
        server.connections(),
        cuts.len(),
        "no automatic retry of a POST"
    );
}
