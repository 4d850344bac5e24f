//! Hostile servers and bad input against the Agent: the rows of the reliability checklist in
//! docs/http-support.md (§1, the RFC rules, and §2.1, the hostile-server checklist) that no
//! other test file covers at the Agent level (the checklist maps every row to its tests). Test
//! names start with the row id; the section comments below follow the checklist's numbering.
//!
//! Every response fixture runs
//! * through the protocol core whole, byte by byte, at random split points and as the first
//!   half of a keep-alive pair (`support::proto::run` and `run_pair`), and
//! * through the Agent over a loopback socket, written whole, one byte at a time and at random
//!   split points (`Step::WriteSlow`, `Step::WriteSplit` with
//!   `support::proto::random_split_points`). Each time a second request follows: it must get its
//!   own response, on the same connection when the fixture leaves it reusable and on a new one
//!   otherwise, and never a byte of the fixture.
#![cfg(feature = "cookies")]

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use support::baseline::pool_stats;
use support::proto::{Rng, random_split_points};
use support::scripted::{
    Req, ScriptedServer, Step, finished, issue, run_one, test_config, turn_until,
};
use support::servers::{TestCa, TestDir};
use weft::client::{
    Agent, AgentConfig, BodyEnd, BytesProducer, Cause, CookieAgent, CookieJar, Phase, ReadProducer,
    TimeoutKind,
};
use weft::proto::{ProtocolError, RequestError};
use weft::reactor::Reactor;
use weft::tls::TlsConnector;

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
/// The answer to the second request when it reuses the fixture's connection.
const REUSED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused";
/// The answer to the second request on a new connection.
const FRESH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh!";
/// The second response of a keep-alive pair in the core.
const SECOND: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
/// Longest wait for any one condition.
const LIMIT: Duration = Duration::from_secs(10);

// ---- fixtures -----------------------------------------------------------------------------

/// What a fixture must end in.
#[derive(Clone, Debug)]
enum Want {
    /// A response: its status, its body, how the body ended, and whether the connection may
    /// carry the next request.
    Ok {
        status: u16,
        body: Vec<u8>,
        end: BodyEnd,
        reuse: bool,
    },
    /// A failed request: its phase, the core's error, and the body bytes delivered before it.
    /// The connection is closed.
    Err {
        phase: Phase,
        error: ProtocolError,
        body: Vec<u8>,
    },
}

/// A response fixture: what the server writes in answer to one request.
#[derive(Clone, Debug)]
struct Fixture {
    method: &'static str,
    response: Vec<u8>,
    /// The server closes the connection after writing the response.
    close: bool,
    want: Want,
}

impl Fixture {
    fn head(mut self) -> Self {
        self.method = "HEAD";
        self
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// A `GET` answered with `response`: status, body, end `Done`, reusable or not.
fn ok(response: impl AsRef<[u8]>, status: u16, body: &[u8], reuse: bool) -> Fixture {
    Fixture {
        method: "GET",
        response: response.as_ref().to_vec(),
        close: false,
        want: Want::Ok {
            status,
            body: body.to_vec(),
            end: BodyEnd::Done,
            reuse,
        },
    }
}

/// A `GET` whose response head is refused with `error`.
fn bad_head(response: impl AsRef<[u8]>, error: ProtocolError) -> Fixture {
    Fixture {
        method: "GET",
        response: response.as_ref().to_vec(),
        close: false,
        want: Want::Err {
            phase: Phase::ResponseNeverReceived,
            error,
            body: Vec::new(),
        },
    }
}

/// A `GET` whose body fails with `error` after `body` was delivered.
fn bad_body(response: impl AsRef<[u8]>, error: ProtocolError, body: &[u8]) -> Fixture {
    Fixture {
        method: "GET",
        response: response.as_ref().to_vec(),
        close: false,
        want: Want::Err {
            phase: Phase::ResponseFailed,
            error,
            body: body.to_vec(),
        },
    }
}

/// A chunked response head followed by `body`.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(body);
    r
}

/// A 200 head with these extra field lines (each ending in CRLF) and `Content-Length: 2`.
fn with_fields(fields: &[u8]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
    r.extend_from_slice(fields);
    r.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    r
}

/// The fixtures of one row.
fn fixtures(row: &str) -> Vec<Fixture> {
    use ProtocolError as P;
    match row {
        "1a" => vec![ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, b"", true).head()],
        "1b" => vec![
            ok(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n-foo-\n",
                200,
                b"",
                false,
            )
            .head(),
        ],
        "1c" => vec![ok(
            b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
            204,
            b"",
            true,
        )],
        "1d" => vec![ok(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 677777\r\n\r\n",
            304,
            b"",
            true,
        )],
        "1e" => vec![ok(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
            204,
            b"",
            false,
        )],
        "3" => vec![ok(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            200,
            b"hello",
            false,
        )],
        "4" => vec![
            ok(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                200,
                b"ok",
                true,
            ),
            bad_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                P::UnsupportedTransferCoding,
            ),
        ],
        "5" => vec![
            bad_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00",
                P::UnsupportedTransferCoding,
            )
            .closing(),
            bad_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello",
                P::UnsupportedTransferCoding,
            )
            .closing(),
            bad_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
                P::UnsupportedTransferCoding,
            ),
        ],
        "6" => {
            let mut v = vec![
                ok(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
                    200,
                    b"hello",
                    true,
                ),
                bad_head(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                    P::InvalidContentLength,
                ),
            ];
            for value in [
                &b"+5"[..],
                b"-6",
                b"crap",
                b"\r-6",
                b"0x5",
                b"5 5",
                b"",
                b"36893488147419103232",
                b"1_0",
            ] {
                let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: ".to_vec();
                r.extend_from_slice(value);
                r.extend_from_slice(b"\r\n\r\nhello");
                // A bare CR inside the value is a bad value before it is a bad length.
                let error = if value.contains(&b'\r') {
                    P::InvalidHeaderValue
                } else {
                    P::InvalidContentLength
                };
                v.push(bad_head(r, error));
            }
            v
        }
        "7" => vec![
            bad_body(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
                P::Incomplete {
                    expected: Some(100),
                    received: 10,
                },
                b"0123456789",
            )
            .closing(),
        ],
        "9" => vec![Fixture {
            want: Want::Ok {
                status: 200,
                body: b"hello".to_vec(),
                end: BodyEnd::PotentialDataLoss,
                reuse: false,
            },
            ..ok(b"HTTP/1.1 200 OK\r\n\r\nhello", 200, b"", false).closing()
        }],
        "10" => vec![ok(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            200,
            b"ok",
            false,
        )],
        "11" => vec![ok(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            200,
            b"ok",
            false,
        )],
        "C1" => vec![
            bad_body(chunked(b"\r\n\r\n"), P::InvalidChunkSize, b""),
            bad_body(chunked(b";x\r\n\r\n"), P::InvalidChunkSize, b""),
        ],
        "C2" => [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-2\r\nhi\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"5_0\r\nhello\r\n0\r\n\r\n",
        ]
        .iter()
        .map(|b| bad_body(chunked(b), P::InvalidChunkSize, b""))
        .collect(),
        "C3" => vec![
            bad_body(chunked(b"10000000000000000\r\nx"), P::InvalidChunkSize, b""),
            bad_body(chunked(b"12345678123456789\r\nx"), P::InvalidChunkSize, b""),
        ],
        "C4" => vec![
            bad_body(
                chunked(b"ffffffffffffffff\r\nabc"),
                P::Incomplete {
                    expected: None,
                    received: 3,
                },
                b"abc",
            )
            .closing(),
        ],
        "C5" => vec![bad_body(
            chunked(b"5\r\nhelloXX0\r\n\r\n"),
            P::MissingChunkDataCrlf,
            b"hello",
        )],
        "C6" => vec![bad_body(
            chunked(b"5\nhello\r\n0\r\n\r\n"),
            P::InvalidChunkSize,
            b"",
        )],
        "C7" => vec![bad_body(
            chunked(b"5\rXhello\r\n0\r\n\r\n"),
            P::InvalidChunkSize,
            b"",
        )],
        "C8" => vec![
            bad_body(
                chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
                P::InvalidChunkExtension,
                b"",
            ),
            bad_body(
                chunked(b"5;\x00ext\r\nhello\r\n0\r\n\r\n"),
                P::InvalidChunkExtension,
                b"",
            ),
        ],
        "C9" => {
            // One 1 MiB extension, then more: the default 16 KiB cap stops it.
            let mut body = b"1;".to_vec();
            body.extend(std::iter::repeat_n(b'a', 1 << 20));
            body.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            vec![bad_body(chunked(&body), P::ChunkExtensionTooLong, b"")]
        }
        "C10" => vec![bad_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;foo=bar\r\n\r\n0\r\n\r\n",
            P::UnsupportedTransferCoding,
        )],
        "C11" => {
            let mut body = b"41\r\n".to_vec();
            body.extend_from_slice(&[b'x'; 64]);
            vec![
                bad_body(
                    chunked(&body),
                    P::Incomplete {
                        expected: None,
                        received: 64,
                    },
                    &[b'x'; 64],
                )
                .closing(),
            ]
        }
        "C12" => vec![ok(chunked(b"5\r\nhello\r\n0\r\n"), 200, b"hello", false).closing()],
        "C14" => vec![ok(
            chunked(b"A\r\nhelloworld\r\n0\r\n\r\n"),
            200,
            b"helloworld",
            true,
        )],
        "C15" => vec![ok(
            chunked(b"00000000000000000005\r\nhello\r\n0\r\n\r\n"),
            200,
            b"hello",
            true,
        )],
        "T1" => vec![ok(
            chunked(b"3\r\nabc\r\n0\r\nContent-Length: 999\r\nSet-Cookie: s=1\r\nX-Checksum: abc\r\n\r\n"),
            200,
            b"abc",
            true,
        )],
        "T2" => {
            // 24 KiB of trailer fields and no end: the 16 KiB cap stops them.
            let mut body = b"3\r\nabc\r\n0\r\n".to_vec();
            body.extend(b"X: y\r\n".repeat(4096));
            vec![bad_body(chunked(&body), P::TrailersTooLarge, b"abc")]
        }
        "T3" => vec![
            bad_body(
                chunked(b"3\r\nabc\r\n0\r\nX: a\x00b\r\n\r\n"),
                P::InvalidTrailers,
                b"abc",
            ),
            bad_body(
                chunked(b"3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\n"),
                P::InvalidTrailers,
                b"abc",
            ),
        ],
        "I1" => vec![ok(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 104 Experiment\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            200,
            b"ok",
            true,
        )],
        "I2" => vec![bad_head(
            b"HTTP/1.1 100 Continue\r\n\r\n".repeat(17),
            P::TooManyInformational,
        )],
        "I3" => vec![bad_head(
            b"HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            P::InvalidStatusLine,
        )],
        "I4" => vec![bad_head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            P::UnexpectedSwitchingProtocols,
        )],
        "I5" => vec![ok(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            200,
            b"ok",
            true,
        )],
        "S1" => vec![bad_head(with_fields(b"X: a\rb\r\n"), P::InvalidHeaderValue)],
        "S2" => vec![ok(
            b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            200,
            b"ok",
            true,
        )],
        "S3" => vec![bad_head(
            b"HTTP/1.1 200 OK\r\n Date: x\r\nContent-Length: 0\r\n\r\n",
            P::InvalidHeaderName,
        )],
        "S4" => vec![
            bad_head(
                b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                P::InvalidStatusLine,
            ),
            bad_head(
                b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
                P::UnsupportedVersion,
            ),
            bad_head(
                b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                P::UnsupportedVersion,
            ),
            bad_head(
                b"HTTP/1.10 200 OK\r\nContent-Length: 0\r\n\r\n",
                P::UnsupportedVersion,
            ),
            // HTTP/0.9: a body with no head, refused from its first byte.
            bad_head(b"<html>hello</html>", P::InvalidStatusLine).closing(),
        ],
        "S5" => [
            &b"HTTP/1.1 20 OK"[..],
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 099 X",
            b"HTTP/1.1 600 X",
            b"HTTP/1.1 999 X",
        ]
        .iter()
        .map(|line| {
            let mut r = line.to_vec();
            r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            bad_head(r, P::InvalidStatusLine)
        })
        .collect(),
        "S6" => vec![
            ok(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", true),
            ok(
                b"HTTP/1.1 200 \xffOK\x80\r\nContent-Length: 2\r\n\r\nok",
                200,
                b"ok",
                true,
            ),
            bad_head(
                b"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok",
                P::InvalidStatusLine,
            ),
        ],
        "S7" => vec![
            bad_head(with_fields(b"Content-Length : 5\r\n"), P::InvalidHeaderName),
            bad_head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
                P::InvalidHeaderName,
            ),
        ],
        "S8" => vec![
            bad_head(with_fields(b"X-A: one\r\n two\r\n"), P::InvalidHeaderName),
            bad_head(
                b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 2\r\n\r\nok",
                P::InvalidHeaderName,
            ),
        ],
        "S9" => vec![
            bad_head(with_fields(b"X: a\x00b\r\n"), P::InvalidHeaderValue),
            bad_head(with_fields(b"X: a\x01b\r\n"), P::InvalidHeaderValue),
            ok(with_fields(b"X: \xa0value\x85\r\n"), 200, b"ok", true),
        ],
        "S10" => vec![
            bad_head(with_fields(b": b\r\n"), P::InvalidHeaderName),
            bad_head(with_fields(b"Server x\r\n"), P::InvalidHeaderName),
            bad_head(with_fields(b"X\x80: b\r\n"), P::InvalidHeaderName),
        ],
        "S11" => {
            let mut line = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
            line.extend(std::iter::repeat_n(b'a', 1 << 20));
            line.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
            many.extend(b"A: b\r\n".repeat(10_000));
            many.extend_from_slice(b"\r\n");
            let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
            endless.extend(b"X-Endless: header line\r\n".repeat(5000));
            vec![
                bad_head(line, P::HeadTooLarge),
                bad_head(many, P::TooManyHeaders),
                bad_head(endless, P::HeadTooLarge),
            ]
        }
        "K1" => [
            &b"Connection: close\r\n"[..],
            b"Connection: CLOSE\r\n",
            b"Connection: keep-alive, close\r\n",
            b"Connection: keep-alive\r\nConnection: close\r\n",
        ]
        .iter()
        .map(|f| ok(with_fields(f), 200, b"ok", false))
        .collect(),
        "K2" => vec![
            ok(
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                200,
                b"ok",
                false,
            ),
            ok(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                200,
                b"ok",
                true,
            ),
        ],
        "K5" => vec![
            bad_head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n",
                P::IncompleteHead,
            )
            .closing(),
            bad_head(b"", P::IncompleteHead).closing(),
        ],
        other => panic!("no fixtures for row {other}"),
    }
}

// ---- running fixtures ---------------------------------------------------------------------

/// How the server writes a fixture.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Whole,
    Bytes,
    Split(u64),
}

fn write_step(bytes: &[u8], mode: Mode) -> Step {
    match mode {
        Mode::Whole => Step::Write(bytes.to_vec()),
        Mode::Bytes => Step::WriteSlow(bytes.to_vec(), Duration::from_micros(50)),
        Mode::Split(seed) => Step::WriteSplit(
            bytes.to_vec(),
            random_split_points(bytes.len(), &mut Rng::new(seed)),
        ),
    }
}

/// The fixture through the core: every split mode agrees (checked by `run`), the outcome is
/// the wanted one, and in a keep-alive pair the second response is parsed on its own.
fn check_core(f: &Fixture) {
    let out = support::proto::run(f.method, &f.response, f.close);
    match &f.want {
        Want::Ok {
            status,
            body,
            reuse,
            ..
        } => {
            assert_eq!(out.status(), Some(*status), "{f:?}: {out:?}");
            assert_eq!(&out.body(), body, "{f:?}: {out:?}");
            assert!(out.complete().is_some(), "{f:?}: {out:?}");
            // Only bytes after the end may fail, and then the connection is not reusable.
            assert!(
                matches!(out.error, None | Some(ProtocolError::UnsolicitedData)),
                "{f:?}: {out:?}"
            );
            assert_eq!(out.reusable, *reuse, "{f:?}: {out:?}");
        }
        Want::Err { error, body, .. } => {
            assert_eq!(out.error.as_ref(), Some(error), "{f:?}: {out:?}");
            assert_eq!(&out.body(), body, "{f:?}: {out:?}");
            assert!(out.complete().is_none(), "{f:?}: {out:?}");
        }
    }
    let (_, second) = support::proto::run_pair(f.method, &f.response, SECOND);
    match (&f.want, second) {
        (Want::Ok { reuse: true, .. }, Some(second)) => {
            assert_eq!(second.error, None, "{f:?}: {second:?}");
            assert_eq!(second.status(), Some(200));
            assert_eq!(second.body(), b"second");
        }
        (Want::Ok { reuse: true, .. }, None) => panic!("{f:?}: not reusable in pair mode"),
        (_, second) => assert!(second.is_none(), "{f:?}: reused: {second:?}"),
    }
}

/// Turns the reactor until the pool holds `idle` idle connections and none in use.
fn await_pool(reactor: &mut Reactor, agent: Agent, idle: usize) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = pool_stats(reactor, agent);
        if s.idle == idle && s.active == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "pool never settled: {s:?}");
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
}

/// The fixture through the Agent, written in `mode`, followed by a second request.
fn check_agent(f: &Fixture, mode: Mode) {
    let mut first = vec![Step::ExpectRequest, write_step(&f.response, mode)];
    if f.close {
        first.push(Step::Close);
    } else {
        first.extend([
            Step::ExpectRequest,
            Step::Write(REUSED.to_vec()),
            Step::WaitClose,
        ]);
    }
    let srv = ScriptedServer::start(vec![
        first,
        vec![
            Step::ExpectRequest,
            Step::Write(FRESH.to_vec()),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    // The global invariants: whatever the fixture did, connections, registrations, timers and
    // descriptors come back once the pool is emptied.
    let baseline = support::baseline::Baseline::take(&mut reactor);
    let one = issue(
        reactor.ctx(),
        agent,
        Req::new(f.method, srv.url("/fixture")),
    );
    turn_until(&mut reactor, LIMIT, || finished(&one));
    let reuse = match &f.want {
        Want::Ok { reuse, .. } => {
            // Every byte of the fixture is out (stray bytes after the response included)
            // before the pool is judged.
            turn_until(&mut reactor, LIMIT, || srv.writes() >= 1);
            *reuse
        }
        Want::Err { .. } => false,
    };
    await_pool(&mut reactor, agent, reuse as usize);
    let two = issue(reactor.ctx(), agent, Req::get(srv.url("/second")));
    turn_until(&mut reactor, LIMIT, || finished(&two));

    let one = one.borrow().clone();
    let ctx = format!("{mode:?} {f:?}: {one:?}");
    match &f.want {
        Want::Ok {
            status, body, end, ..
        } => {
            assert_eq!(one.status, Some(*status), "{ctx}");
            assert_eq!(&one.body, body, "{ctx}");
            assert_eq!(one.end(), Some(end), "{ctx}");
        }
        Want::Err { phase, error, body } => {
            let err = one.error().unwrap_or_else(|| panic!("no error: {ctx}"));
            assert_eq!(err.phase(), *phase, "{ctx}");
            assert_eq!(err.cause(), &Cause::Protocol(error.clone()), "{ctx}");
            assert_eq!(&one.body, body, "{ctx}");
        }
    }
    let two = two.borrow().clone();
    assert!(two.is_done(), "{ctx}: second {two:?}");
    let expected: &[u8] = if reuse { b"reused" } else { b"fresh!" };
    assert_eq!(two.body, expected, "{ctx}: second {two:?}");
    assert_eq!(srv.connections(), if reuse { 1 } else { 2 }, "{ctx}");
    agent.close_idle(reactor.ctx());
    baseline.assert_back(&mut reactor);
}

/// Every fixture of `row`, through the core and through the Agent in every write mode.
fn check_row(row: &str) {
    for (i, f) in fixtures(row).iter().enumerate() {
        check_core(f);
        let seed = (i as u64) << 8 ^ row.len() as u64;
        // One byte per write is for small fixtures; big ones are cut at random points twice.
        let modes = if f.response.len() <= 4096 {
            [Mode::Whole, Mode::Bytes, Mode::Split(seed)]
        } else {
            [Mode::Whole, Mode::Split(seed), Mode::Split(seed + 1)]
        };
        for mode in modes {
            check_agent(f, mode);
        }
    }
}

// ---- §1.1 message body length -------------------------------------------------------------

#[test]
fn r1b_head_with_stray_bytes_is_closed_and_the_next_request_is_fresh() {
    check_row("1b");
}

#[test]
fn r1c_204_with_chunked_has_no_body() {
    check_row("1c");
}

#[test]
fn r1d_304_with_content_length_has_no_body_and_is_reused() {
    check_row("1d");
}

#[test]
fn r1e_204_with_body_bytes_is_closed() {
    check_row("1e");
}

#[test]
fn r2_connect_2xx_starts_the_tunnel_and_407_is_framed() {
    // A proxy answers CONNECT with 407 (framed normally, no tunnel), then with a 2xx
    // carrying Content-Length and Transfer-Encoding plus stray bytes: weft sends no byte
    // before the 2xx and starts TLS at the blank line, dropping the stray bytes, so the
    // handshake with this (plain) server cannot succeed and nothing is parsed as a response.
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectHead,
            Step::Write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope"
                    .to_vec(),
            ),
            Step::WaitClose,
        ],
        vec![
            Step::ExpectHead,
            Step::Write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil".to_vec(),
            ),
            Step::ReadBytes(1),
            Step::Close,
        ],
    ]);
    let config = AgentConfig {
        proxies: weft::client::Proxies::all(&srv.url("")).unwrap(),
        ..test_config()
    };
    let outs = support::scripted::run_sequential(
        config,
        vec![
            Req::get("https://origin.test/".into()),
            Req::get("https://origin.test/".into()),
        ],
    );
    let err = outs[0].error().expect("407 to CONNECT fails");
    assert!(
        matches!(err.cause(), Cause::Proxy(m) if m.contains("407")),
        "{err}"
    );
    let err = outs[1].error().expect("no TLS server behind the tunnel");
    assert!(
        matches!(err.cause(), Cause::Transport(_)),
        "the stray bytes are never a response: {err}"
    );
    let reqs = srv.requests();
    let connect = String::from_utf8_lossy(&reqs[1].1);
    assert!(
        connect.starts_with("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n"),
        "{connect}"
    );
    // The first byte after the 2xx is our TLS ClientHello (a handshake record).
    assert_eq!(reqs[2].1, [0x16], "first tunnel byte");
}

#[test]
fn r3_te_and_cl_is_decoded_chunked_then_closed() {
    check_row("3");
}

#[test]
fn r4_chunked_in_any_case_and_gzip_chunked_refused() {
    check_row("4");
}

#[test]
fn r5_codings_without_final_chunked_are_refused() {
    check_row("5");
}

#[test]
fn r11_http10_with_transfer_encoding_is_not_reused() {
    check_row("11");
}

// ---- §1.2 chunked coding ------------------------------------------------------------------

#[test]
fn c1_empty_chunk_size_line() {
    check_row("C1");
}

#[test]
fn c2_chunk_size_syntax() {
    check_row("C2");
}

#[test]
fn c3_chunk_size_overflow() {
    check_row("C3");
}

#[test]
fn c4_huge_chunk_streams_then_incomplete() {
    check_row("C4");
}

#[test]
fn c5_chunk_data_without_crlf() {
    check_row("C5");
}

#[test]
fn c6_bare_lf_after_chunk_size() {
    check_row("C6");
}

#[test]
fn c7_cr_without_lf_after_chunk_size() {
    check_row("C7");
}

#[test]
fn c8_lf_and_nul_in_chunk_extension() {
    check_row("C8");
}

#[test]
fn c9_one_mebibyte_chunk_extension() {
    check_row("C9");
}

#[test]
fn c10_parameters_on_chunked() {
    check_row("C10");
}

#[test]
fn c11_truncated_chunk() {
    check_row("C11");
}

#[test]
fn c12_eof_after_last_chunk_completes() {
    check_row("C12");
}

#[test]
fn c14_c15_upper_case_hex_and_leading_zeros() {
    check_row("C14");
    check_row("C15");
}

// ---- §1.3 trailers ------------------------------------------------------------------------

#[test]
fn t1_trailers_never_reach_the_head_or_the_cookie_jar() {
    check_row("T1");
    // Through a cookie agent: a Set-Cookie in the trailer (or in a 1xx) is not stored.
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(
            b"HTTP/1.1 103 Early Hints\r\nSet-Cookie: early=1\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 999\r\nSet-Cookie: s=1\r\n\r\n"
                .to_vec(),
        ),
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::WaitClose,
    ]]);
    let mut reactor = Reactor::new().unwrap();
    let jar = CookieJar::new();
    let agent = CookieAgent::new(Agent::new(reactor.ctx(), test_config()), jar.clone());
    let r = support::scripted::run_via(
        &mut reactor,
        &agent,
        weft::client::Request::get(srv.url("/")),
    );
    assert_eq!(r.out.body, b"abc");
    assert!(r.out.is_done());
    assert_eq!(r.out.trailers.get("set-cookie"), Some(&b"s=1"[..]));
    assert_eq!(r.out.headers.get("content-length"), None);
    assert!(jar.is_empty(), "{:?}", jar.cookies_for(&srv.url("/")));
    let r = support::scripted::run_via(
        &mut reactor,
        &agent,
        weft::client::Request::get(srv.url("/")),
    );
    assert_eq!(r.out.body, b"hello");
    assert_eq!(srv.connections(), 1, "the connection stays reusable");
    let second = String::from_utf8_lossy(&srv.requests()[1].1).into_owned();
    assert!(!second.to_ascii_lowercase().contains("cookie"), "{second}");
}

#[test]
fn t2_endless_trailers_hit_the_cap() {
    check_row("T2");
}

#[test]
fn t3_nul_and_obs_fold_in_trailers() {
    check_row("T3");
}

// ---- §1.4 interim responses ---------------------------------------------------------------

#[test]
fn i2_endless_interim_responses_hit_the_cap() {
    check_row("I2");
}

#[test]
fn i3_interim_response_with_body_bytes() {
    check_row("I3");
}

#[test]
fn i4_unexpected_switching_protocols() {
    check_row("I4");
}

#[test]
fn i5_unexpected_100_continue_is_ignored() {
    check_row("I5");
}

// ---- §1.5 start line and fields -----------------------------------------------------------

#[test]
fn s1_bare_cr_in_a_value() {
    check_row("S1");
}

#[test]
fn s2_bare_lf_line_ends_in_the_head() {
    check_row("S2");
}

#[test]
fn s3_whitespace_before_the_first_field() {
    check_row("S3");
}

#[test]
fn s4_versions_and_http09() {
    check_row("S4");
}

#[test]
fn s5_status_code_range() {
    check_row("S5");
}

#[test]
fn s6_reason_phrase_is_opaque_but_nul_is_refused() {
    check_row("S6");
}

#[test]
fn s7_whitespace_before_the_colon() {
    check_row("S7");
}

#[test]
fn s8_obs_fold_is_refused() {
    check_row("S8");
}

#[test]
fn s9_control_bytes_refused_and_obs_text_kept_exact() {
    check_row("S9");
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(with_fields(b"X: \xa0value\x85\r\n")),
        Step::WaitClose,
    ]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    assert_eq!(out.headers.get("x"), Some(&b"\xa0value\x85"[..]));
}

#[test]
fn s10_bad_field_names() {
    check_row("S10");
}

#[test]
fn s11_oversized_heads_hit_the_caps() {
    check_row("S11");
}

// ---- §1.6 connections ---------------------------------------------------------------------

#[test]
fn k4_unsolicited_408_on_an_idle_connection_evicts_it() {
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            Step::Write(OK_HELLO.to_vec()),
            // Later, while the connection idles in the pool.
            Step::Sleep(Duration::from_millis(50)),
            Step::Write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n".to_vec()),
            Step::Close,
        ],
        vec![
            Step::ExpectRequest,
            Step::Write(FRESH.to_vec()),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let one = issue(reactor.ctx(), agent, Req::get(srv.url("/1")));
    turn_until(&mut reactor, LIMIT, || finished(&one));
    assert!(one.borrow().is_done());
    assert_eq!(pool_stats(&mut reactor, agent).idle, 1);
    turn_until(&mut reactor, LIMIT, || srv.writes() >= 2);
    await_pool(&mut reactor, agent, 0);
    let two = issue(reactor.ctx(), agent, Req::get(srv.url("/2")));
    turn_until(&mut reactor, LIMIT, || finished(&two));
    let two = two.borrow();
    assert_eq!(
        two.status,
        Some(200),
        "the 408 is never the answer: {two:?}"
    );
    assert_eq!(two.body, b"fresh!");
    assert_eq!(srv.connections(), 2);
    assert_eq!(srv.requests().len(), 2);
}

#[test]
fn k5_close_inside_the_head_or_before_it() {
    check_row("K5");
}

#[test]
fn k6_tls_close_without_alert_after_a_complete_body_is_fine() {
    let dir = TestDir::new("weft-hostile-tls");
    let ca = TestCa::generate(dir.path());
    let leaf = ca.server_leaf();
    let srv = ScriptedServer::start_tls(
        vec![
            vec![
                Step::ExpectRequest,
                Step::Write(OK_HELLO.to_vec()),
                Step::DropTcp,
            ],
            vec![
                Step::ExpectRequest,
                Step::Write(chunked(b"5\r\nhello\r\n0\r\n\r\n")),
                Step::DropTcp,
            ],
        ],
        leaf.chain,
        leaf.key,
    );
    let config = AgentConfig {
        tls: TlsConnector::with_root_pem(ca.ca_cert_pem.as_bytes()).unwrap(),
        ..test_config()
    };
    let url = format!("https://localhost:{}/", srv.addr.port());
    let outs =
        support::scripted::run_sequential(config, vec![Req::get(url.clone()), Req::get(url)]);
    for out in &outs {
        assert_eq!(out.body, b"hello");
        assert!(out.is_done(), "{out:?}");
    }
    assert_eq!(
        srv.connections(),
        2,
        "a connection the server dropped is not reused"
    );
}

#[test]
fn k7_early_413_during_a_large_upload_is_the_answer() {
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectHead,
            Step::ReadBytes(1024),
            Step::Write(
                b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!"
                    .to_vec(),
            ),
            Step::Close,
        ],
        vec![Step::ExpectRequest, Step::Write(FRESH.to_vec()), Step::WaitClose],
    ]);
    let size = 64 << 20;
    let mut post = Req::new("POST", srv.url("/upload"));
    post.body = Some(Box::new(ReadProducer::new(
        std::io::repeat(b'u').take(size),
        Some(size),
    )));
    let started = Instant::now();
    let outs =
        support::scripted::run_sequential(test_config(), vec![post, Req::get(srv.url("/next"))]);
    assert_eq!(outs[0].status, Some(413), "{:?}", outs[0]);
    assert_eq!(outs[0].body, b"big!");
    assert!(outs[0].is_done(), "{:?}", outs[0].result);
    assert_eq!(outs[1].body, b"fresh!", "not pooled");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- §1.7 retries -------------------------------------------------------------------------

#[test]
fn rt2_failure_on_a_fresh_connection_is_not_retried() {
    let srv = ScriptedServer::start(vec![vec![Step::ExpectRequest, Step::Close]]);
    let out = run_one(test_config(), Req::get(srv.url("/")));
    let err = out.error().expect("no response");
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
    assert_eq!(err.cause(), &Cause::Protocol(ProtocolError::IncompleteHead));
    assert_eq!(srv.connections(), 1);
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn rt3_reset_after_a_post_is_not_retried() {
    // A pooled connection; the server reads the POST's head (and what came with it), then
    // resets instead of answering.
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectRequest,
            Step::Write(OK_HELLO.to_vec()),
            Step::ExpectHead,
            Step::Reset,
        ],
        vec![
            Step::ExpectRequest,
            Step::Write(FRESH.to_vec()),
            Step::WaitClose,
        ],
    ]);
    let mut post = Req::new("POST", srv.url("/2"));
    post.body = Some(Box::new(BytesProducer::new(vec![b'p'; 256 * 1024])));
    let outs =
        support::scripted::run_sequential(test_config(), vec![Req::get(srv.url("/1")), post]);
    let err = outs[1].error().expect("the POST fails");
    assert!(err.server_may_have_processed(), "{err}");
    assert_ne!(err.phase(), Phase::RequestNotSent);
    assert_eq!(srv.connections(), 1, "never retried: {err}");
    assert_eq!(srv.requests().len(), 2);
}

/// Says whether a cause is the expected one.
type CauseCheck = fn(&Cause) -> bool;

// ---- §1.8 request construction -----------------------------------------------------------

#[test]
fn q1_host_target_without_userinfo_or_fragment() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::WaitClose,
    ]]);
    let port = srv.addr.port();
    let outs = support::scripted::run_sequential(
        test_config(),
        vec![
            Req::get(format!("http://u:p@127.0.0.1:{port}/a?b#f")),
            Req::get(format!("http://127.0.0.1:{port}")),
        ],
    );
    assert!(outs.iter().all(|o| o.is_done()));
    let reqs = srv.requests();
    let first = String::from_utf8_lossy(&reqs[0].1).into_owned();
    assert!(
        first.starts_with(&format!("GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")),
        "{first}"
    );
    assert_eq!(first.matches("Host:").count(), 1, "{first}");
    assert!(!first.contains("u:p") && !first.contains('#'), "{first}");
    assert!(
        first.ends_with("\r\n\r\n"),
        "no body, no extra CRLF: {first}"
    );
    let second = String::from_utf8_lossy(&reqs[1].1).into_owned();
    assert!(second.starts_with("GET / HTTP/1.1\r\n"), "{second}");
    assert!(!second.to_ascii_lowercase().contains("content-length"));
    assert!(!second.to_ascii_lowercase().contains("transfer-encoding"));
}

#[test]
fn q1_user_agent_is_weft_unless_the_caller_sets_one() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::WaitClose,
    ]]);
    let mut own = Req::get(srv.url("/own"));
    own.headers.append("User-Agent", b"mine/1");
    let outs = support::scripted::run_sequential(test_config(), vec![Req::get(srv.url("/")), own]);
    assert!(outs.iter().all(|o| o.is_done()));
    let reqs = srv.requests();
    let first = String::from_utf8_lossy(&reqs[0].1).into_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        first.contains(&format!("\r\nUser-Agent: weft/{version}\r\n")),
        "{first}"
    );
    let second = String::from_utf8_lossy(&reqs[1].1).into_owned();
    assert!(second.contains("\r\nUser-Agent: mine/1\r\n"), "{second}");
    assert_eq!(second.matches("User-Agent").count(), 1, "{second}");
}

#[test]
fn q4_control_bytes_in_any_request_part_fail_before_connecting() {
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::Write(OK_HELLO.to_vec()),
        Step::WaitClose,
    ]]);
    let url = srv.url("/");
    let with_header = |name: &str, value: &[u8]| {
        let mut r = Req::get(url.clone());
        r.headers.append(name, value);
        r
    };
    let cases: Vec<(Req, CauseCheck)> = vec![
        (Req::new("GET\r\nX: y", url.clone()), |c| {
            matches!(c, Cause::InvalidRequest(RequestError::InvalidMethod))
        }),
        (Req::new("GET /x", url.clone()), |c| {
            matches!(c, Cause::InvalidRequest(RequestError::InvalidMethod))
        }),
        (Req::get(srv.url("/a\r\nX-Evil: 1")), |c| {
            matches!(c, Cause::InvalidUrl(_))
        }),
        (Req::get(srv.url("/a\tb")), |c| {
            matches!(c, Cause::InvalidUrl(_))
        }),
        (Req::get(srv.url("/a\0b")), |c| {
            matches!(c, Cause::InvalidUrl(_))
        }),
        (with_header("X-A", b"a\r\nX-Evil: 1"), |c| {
            matches!(
                c,
                Cause::InvalidRequest(RequestError::InvalidHeaderValue(_))
            )
        }),
        (with_header("X-A", b"a\0b"), |c| {
            matches!(
                c,
                Cause::InvalidRequest(RequestError::InvalidHeaderValue(_))
            )
        }),
        (with_header("Foo Bar", b"x"), |c| {
            matches!(c, Cause::InvalidRequest(RequestError::InvalidHeaderName(_)))
        }),
        (with_header("Host", b"h\r\nX: y"), |c| {
            matches!(
                c,
                Cause::InvalidRequest(RequestError::InvalidHeaderValue(_))
            )
        }),
        (with_header("Authorization", b"Basic dTpw\r\nX: y"), |c| {
            matches!(
                c,
                Cause::InvalidRequest(RequestError::InvalidHeaderValue(_))
            )
        }),
    ];
    let mut reqs = Vec::new();
    let mut checks = Vec::new();
    for (req, check) in cases {
        reqs.push(req);
        checks.push(check);
    }
    // A valid request last: the server sees only its connection.
    reqs.push(Req::get(srv.url("/a b?c d")));
    let outs = support::scripted::run_sequential(test_config(), reqs);
    for (out, check) in outs.iter().zip(&checks) {
        let err = out.error().expect("refused");
        assert_eq!(err.phase(), Phase::RequestNotSent, "{err}");
        assert!(check(err.cause()), "{err}");
    }
    assert!(outs.last().unwrap().is_done());
    assert_eq!(srv.connections(), 1);
    let sent = String::from_utf8_lossy(&srv.requests()[0].1).into_owned();
    assert!(sent.starts_with("GET /a%20b?c%20d HTTP/1.1\r\n"), "{sent}");
}

#[test]
fn q7_417_repeats_the_request_once_without_the_expectation() {
    let expectation_failed = b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n";
    let srv = ScriptedServer::start(vec![
        vec![
            Step::ExpectHead,
            Step::Write(expectation_failed.to_vec()),
            Step::WaitClose,
        ],
        // The repeat, without Expect, on a new connection; that one is then reused by the
        // second POST, whose repeat goes to a third.
        vec![
            Step::ExpectRequest,
            Step::Write(OK_HELLO.to_vec()),
            Step::ExpectHead,
            Step::Write(expectation_failed.to_vec()),
            Step::WaitClose,
        ],
        vec![
            Step::ExpectRequest,
            Step::Write(expectation_failed.to_vec()),
            Step::WaitClose,
        ],
    ]);
    let post = || {
        let mut req = Req::new("POST", srv.url("/"));
        req.headers.append("Expect", b"100-continue");
        req.body = Some(Box::new(BytesProducer::new(b"payload".to_vec())));
        req
    };
    let config = AgentConfig {
        continue_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let outs = support::scripted::run_sequential(config, vec![post(), post()]);
    assert_eq!(outs[0].status, Some(200), "{:?}", outs[0]);
    assert_eq!(outs[0].body, b"hello");
    // A second 417 (to the repeat) is the answer: one repeat only.
    assert_eq!(outs[1].status, Some(417), "{:?}", outs[1]);
    assert_eq!(srv.connections(), 3);
    let reqs = srv.requests();
    let texts: Vec<String> = reqs
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(r).to_ascii_lowercase())
        .collect();
    assert!(texts[0].contains("expect: 100-continue") && !texts[0].ends_with("payload"));
    assert!(!texts[1].contains("expect:") && texts[1].ends_with("\r\n\r\npayload"));
    assert!(!texts[3].contains("expect:"));
}

// ---- §2.1 checklist rows without a §1 row --------------------------------------------------

#[test]
fn row13_slow_drip_head_is_bounded_by_the_total_timeout() {
    // §2.1 row 13: one header byte every 50 ms never trips the silence timeout, but the
    // total deadline ends it.
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    head.extend(b"X-Drip: ".iter().chain(&[b'd'; 200]));
    let srv = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        Step::WriteSlow(head, Duration::from_millis(50)),
    ]]);
    let config = AgentConfig {
        timeout: Some(Duration::from_millis(600)),
        read_timeout: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let started = Instant::now();
    let out = run_one(config, Req::get(srv.url("/")));
    let err = out.error().expect("times out");
    assert_eq!(
        err.timeout().map(|t| t.kind),
        Some(TimeoutKind::Total),
        "{err}"
    );
    assert_eq!(err.phase(), Phase::ResponseNeverReceived);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn row13_endless_head_keeps_memory_bounded() {
    // §2.1 row 13: header lines streamed with no blank line, up to 512 MiB. The 64 KiB
    // head cap must end the response and keep memory flat; a client that kept reading and
    // buffering would grow by the whole stream, eight times the bound below.
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const OFFERED: u64 = 512 << 20;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let srv = support::faults::RawServer::start(Box::new(move |conn, mut s, log| {
        if let Ok(Some(req)) = support::faults::read_request(&mut s) {
            support::faults::record(log, conn, req);
        }
        let lines = b"X-Endless: header line\r\n".repeat(2730);
        let mut chunk = b"HTTP/1.1 200 OK\r\n".to_vec();
        while counter.load(Ordering::SeqCst) < OFFERED && s.write_all(&chunk).is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            chunk.clone_from(&lines);
        }
    }));
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let rss = support::baseline::RssProbe::start();
    let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/")));
    turn_until(&mut reactor, LIMIT, || {
        rss.sample();
        finished(&slot)
    });
    rss.assert_growth_below(64 << 20, "endless head");
    let err = slot.borrow().error().cloned().expect("head too large");
    assert_eq!(err.cause(), &Cause::Protocol(ProtocolError::HeadTooLarge));
    drop(reactor);
    let log = srv.join();
    assert_eq!(log.requests.len(), 1);
    // The client stopped reading long before the end of the stream: what the server got out
    // is the cap plus the socket buffers.
    let sent = sent.load(Ordering::SeqCst);
    eprintln!("endless head: the server wrote {sent} bytes");
    assert!(sent < OFFERED / 4, "the server wrote {sent} bytes");
}

#[test]
fn row24_growing_location_and_set_cookie_stop_at_the_limits() {
    // Every hop answers with a longer Location and a longer Set-Cookie, on one connection.
    let hop = |n: usize| {
        let location = "l".repeat(n * 4000);
        let cookie = "v".repeat(n * 300);
        Step::Write(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: /{location}\r\nSet-Cookie: c{n}={cookie}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
    };
    let mut script = Vec::new();
    for n in 1..=11 {
        script.extend([Step::ExpectRequest, hop(n)]);
    }
    script.push(Step::WaitClose);
    // A Location longer than the head cap fails the request instead of growing memory.
    let huge = format!(
        "HTTP/1.1 302 Found\r\nLocation: /{}\r\nContent-Length: 0\r\n\r\n",
        "h".repeat(70_000)
    );
    let srv = ScriptedServer::start(vec![
        script,
        vec![
            Step::ExpectRequest,
            Step::Write(huge.into_bytes()),
            Step::WaitClose,
        ],
    ]);
    let mut reactor = Reactor::new().unwrap();
    let jar = CookieJar::new();
    let agent = weft::client::RedirectAgent::new(
        CookieAgent::new(Agent::new(reactor.ctx(), test_config()), jar.clone()),
        weft::client::RedirectConfig::default(),
    );
    let r = support::scripted::run_via(
        &mut reactor,
        &agent,
        weft::client::Request::get(srv.url("/")),
    );
    let err = r.out.error().expect("too many redirects");
    assert_eq!(err.cause(), &Cause::TooManyRedirects(10), "{err}");
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 11, "the 11th redirect is not followed");
    assert_eq!(jar.len(), 11);
    assert_eq!(srv.connections(), 1);
    // A fresh agent for the oversized head (the first connection is still held).
    let agent = Agent::new(reactor.ctx(), test_config());
    let slot = issue(reactor.ctx(), agent, Req::get(srv.url("/huge")));
    turn_until(&mut reactor, LIMIT, || finished(&slot));
    let err = slot.borrow().error().cloned().expect("head too large");
    assert_eq!(err.cause(), &Cause::Protocol(ProtocolError::HeadTooLarge));
}

/// A cookie case: set from, `Set-Cookie` value, asked for, cookies sent.
type CookieCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn row30_cookie_scope_table() {
    // (set from, Set-Cookie value, asked for, cookies sent). Secure, path, host and foreign
    // domain cases are in client_cookies.rs; Set-Cookie in trailers and 1xx in t1 above.
    let cases: &[CookieCase] = &[
        // A single-label Domain (a top-level domain) is refused.
        (
            "http://example.com/",
            "a=1; Domain=com",
            "http://other.com/",
            &[],
        ),
        (
            "http://example.com/",
            "a=1; Domain=.com",
            "http://example.com/",
            &[],
        ),
        // Domain matching ignores case; a sub-domain gets a domain cookie.
        (
            "http://example.com/",
            "a=1; Domain=EXAMPLE.com",
            "http://WWW.Example.COM/",
            &[("a", "1")],
        ),
        // IP hosts: host-only, and no domain cookie for a suffix of an address.
        (
            "http://127.0.0.1/",
            "a=1",
            "http://127.0.0.1/",
            &[("a", "1")],
        ),
        (
            "http://127.0.0.1/",
            "a=1; Domain=0.0.1",
            "http://10.0.0.1/",
            &[],
        ),
        // A trailing dot names another host.
        (
            "http://example.com/",
            "a=1; Domain=example.com.",
            "http://example.com/",
            &[],
        ),
        ("http://example.com./", "a=1", "http://example.com/", &[]),
        // Path matching is by segment.
        (
            "http://example.com/",
            "a=1; Path=/p",
            "http://example.com/pq",
            &[],
        ),
        (
            "http://example.com/",
            "a=1; Path=/p",
            "http://example.com/p/q",
            &[("a", "1")],
        ),
        // Control characters make the whole field ignored.
        (
            "http://example.com/",
            "a=b\x01c",
            "http://example.com/",
            &[],
        ),
        (
            "http://example.com/",
            "a=b\x7fc",
            "http://example.com/",
            &[],
        ),
        (
            "http://example.com/",
            "a=b; Path=/\x00",
            "http://example.com/",
            &[],
        ),
        // An empty Domain attribute (`.` once its dot is dropped) is ignored, not the cookie:
        // the cookie is host-only (RFC 6265 5.2.3).
        (
            "http://example.com/",
            "a=1; Domain=.",
            "http://example.com/",
            &[("a", "1")],
        ),
        (
            "http://example.com/",
            "a=1; Domain=.",
            "http://www.example.com/",
            &[],
        ),
        // Secure over http is ignored (RFC 6265bis 5.7), even for a later https request.
        (
            "http://example.com/",
            "a=1; Secure",
            "https://example.com/",
            &[],
        ),
        (
            "https://example.com/",
            "a=1; Secure",
            "https://example.com/",
            &[("a", "1")],
        ),
        // Name prefixes (RFC 6265bis 4.1.3): __Secure- needs Secure; __Host- also needs no
        // Domain and Path=/.
        (
            "https://example.com/",
            "__Secure-a=1",
            "https://example.com/",
            &[],
        ),
        (
            "https://example.com/",
            "__Secure-a=1; Secure",
            "https://example.com/",
            &[("__Secure-a", "1")],
        ),
        (
            "https://example.com/",
            "__Host-a=1; Secure; Path=/; Domain=example.com",
            "https://example.com/",
            &[],
        ),
        (
            "https://example.com/",
            "__host-a=1; Secure",
            "https://example.com/",
            &[],
        ),
        (
            "https://example.com/",
            "__Host-a=1; Secure; Path=/",
            "https://example.com/",
            &[("__Host-a", "1")],
        ),
    ];
    for (from, set_cookie, to, want) in cases {
        let jar = CookieJar::new();
        jar.store_set_cookie(from, set_cookie);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(jar.cookies_for(to), want, "{from} {set_cookie:?} -> {to}");
    }
    // Limits: name and value over 4096 bytes; at most MAX_COOKIES cookies in the jar.
    let jar = CookieJar::new();
    assert!(!jar.store_set_cookie("http://example.com/", &format!("a={}", "x".repeat(4096))));
    assert!(jar.store_set_cookie("http://example.com/", &format!("a={}", "x".repeat(4095))));
    let long = format!("a=1; X={}", "y".repeat(CookieJar::MAX_SET_COOKIE));
    assert!(!jar.store_set_cookie("http://example.com/", &long));
    let jar = CookieJar::new();
    let taken = (0..CookieJar::MAX_COOKIES + 10)
        .filter(|i| jar.store_set_cookie("http://example.com/", &format!("c{i}=1")))
        .count();
    assert_eq!(taken, CookieJar::MAX_COOKIES);
    assert_eq!(jar.len(), CookieJar::MAX_COOKIES);
}

#[test]
fn row37_split_modes_for_rows_covered_elsewhere() {
    // Rows whose main tests are in proto_framing.rs and agent_scripted.rs (whole writes):
    // here in every split mode and in keep-alive pairs.
    for row in ["1a", "6", "7", "9", "10", "I1", "K1", "K2"] {
        check_row(row);
    }
}
