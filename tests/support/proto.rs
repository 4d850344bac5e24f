//! The shared test driver: feeds a response whole, byte by byte and at random split points, and
//! checks that every mode gives the same outcome.

use weft::proto::{
    ClientConnection, Config, Event, Framing, Headers, ProtocolError, RequestBody, RequestHead,
    Version,
};

/// A normalized event: data pieces are concatenated, heads reduced to comparable parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Info(u16),
    Head(Version, u16, Vec<(String, Vec<u8>)>),
    Data(Vec<u8>),
    Trailers(Vec<(String, Vec<u8>)>),
    Complete {
        keep_alive: bool,
        close_delimited: bool,
    },
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Ev>,
    /// The first error, if any (from `receive` or `receive_eof`).
    pub error: Option<ProtocolError>,
    pub framing: Option<Framing>,
    pub reusable: bool,
}

impl Outcome {
    /// All body bytes delivered.
    pub fn body(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The status of the final head.
    pub fn status(&self) -> Option<u16> {
        self.events.iter().find_map(|e| match e {
            Ev::Head(_, s, _) => Some(*s),
            _ => None,
        })
    }

    /// The `Complete` event, if any.
    pub fn complete(&self) -> Option<(bool, bool)> {
        self.events.iter().find_map(|e| match e {
            Ev::Complete {
                keep_alive,
                close_delimited,
            } => Some((*keep_alive, *close_delimited)),
            _ => None,
        })
    }
}

fn fields(h: &Headers) -> Vec<(String, Vec<u8>)> {
    h.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect()
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sends `method /` with no body on a connection with `config`.
pub fn connection(method: &str, config: Config) -> ClientConnection {
    let mut conn = ClientConnection::new(config);
    let headers = Headers::new();
    let head = RequestHead {
        method,
        target: "/",
        host: "example.test",
        headers: &headers,
    };
    let mut out = Vec::new();
    conn.send_request(&head, RequestBody::None, &mut out)
        .expect("request encodes");
    conn
}

/// Feeds `pieces` to `conn` (then EOF if `eof`), recording normalized events.
pub fn drive(conn: &mut ClientConnection, pieces: &[&[u8]], eof: bool) -> Outcome {
    let mut events: Vec<Ev> = Vec::new();
    let push = |events: &mut Vec<Ev>, ev: Event<'_>| {
        let ev = match ev {
            Event::NeedMore => return,
            Event::Informational(h) => Ev::Info(h.status),
            Event::Head(h) => Ev::Head(h.version, h.status, fields(&h.headers)),
            Event::Data(d) => {
                assert!(!d.is_empty(), "empty Data event");
                if let Some(Ev::Data(prev)) = events.last_mut() {
                    prev.extend_from_slice(d);
                    return;
                }
                Ev::Data(d.to_vec())
            }
            Event::Trailers(t) => Ev::Trailers(fields(&t)),
            Event::Complete {
                keep_alive,
                close_delimited,
            } => Ev::Complete {
                keep_alive,
                close_delimited,
            },
        };
        events.push(ev);
    };
    let mut error = None;
    let mut guard = 0usize;
    'outer: for piece in pieces {
        let mut rest: &[u8] = piece;
        loop {
            guard += 1;
            assert!(guard < 10_000_000, "no progress");
            match conn.receive(rest) {
                Ok((n, ev)) => {
                    assert!(n <= rest.len());
                    rest = &rest[n..];
                    let need_more = ev == Event::NeedMore;
                    push(&mut events, ev);
                    if need_more {
                        assert!(rest.is_empty(), "NeedMore before all input was consumed");
                        break;
                    }
                }
                Err(e) => {
                    // Errors latch.
                    assert_eq!(conn.receive(b"more").map(|_| ()), Err(e.clone()));
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }
    if error.is_none() && eof {
        match conn.receive_eof() {
            Ok(ev) => push(&mut events, ev),
            Err(e) => {
                assert_eq!(conn.receive_eof().map(|_| ()), Err(e.clone()));
                assert_eq!(conn.receive(b"").map(|_| ()), Err(e.clone()));
                error = Some(e);
            }
        }
    }
    if error.is_some() {
        assert!(!conn.is_reusable());
    }
    Outcome {
        events,
        error,
        framing: conn.framing(),
        reusable: conn.is_reusable(),
    }
}

/// Random cut points for `len` bytes (ascending, each inside `0..len`): pieces of 1 to 2, 7,
/// 64 or 1024 bytes. Shared by the core modes here and by the socket modes of
/// `tests/hostile.rs` (`Step::WriteSplit`).
pub fn random_split_points(len: usize, rng: &mut Rng) -> Vec<usize> {
    let mut points = Vec::new();
    let mut pos = 0;
    while pos < len {
        let max = [2, 7, 64, 1024][rng.below(4)];
        pos = (pos + 1 + rng.below(max)).min(len);
        if pos < len {
            points.push(pos);
        }
    }
    points
}

/// `bytes` cut at `points` (as returned by [`random_split_points`]).
pub fn split_at<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for &p in points.iter().chain([&bytes.len()]) {
        pieces.push(&bytes[start..p]);
        start = p;
    }
    pieces
}

/// Runs `response` to a `method` request whole, byte by byte and at many random split points,
/// asserts that all modes agree, and returns the outcome.
pub fn run_with(method: &str, config: Config, response: &[u8], eof: bool) -> Outcome {
    let whole = drive(&mut connection(method, config.clone()), &[response], eof);

    let bytes: Vec<&[u8]> = response.chunks(1).collect();
    let by_byte = drive(&mut connection(method, config.clone()), &bytes, eof);
    assert_eq!(
        whole, by_byte,
        "byte-by-byte differs from whole for {response:?}"
    );

    let mut rng = Rng::new(response.len() as u64 ^ 0x5eed);
    // Checklist row 37 (docs/http-support.md §2.1): 1,000 random split patterns per case (the
    // sans-IO core is cheap: all of proto_framing.rs takes about 4 s in a debug build).
    // Responses over 100 KB keep 3, as 1,000 of them would take minutes; the Agent-level
    // socket modes of tests/hostile.rs keep their own few seeds, each being a real transfer.
    let rounds = if response.len() > 100_000 { 3 } else { 1000 };
    for _ in 0..rounds {
        let pieces = split_at(response, &random_split_points(response.len(), &mut rng));
        let split = drive(&mut connection(method, config.clone()), &pieces, eof);
        assert_eq!(
            whole, split,
            "random split differs from whole for {response:?}"
        );
    }
    whole
}

/// [`run_with`] with the default config.
pub fn run(method: &str, response: &[u8], eof: bool) -> Outcome {
    run_with(method, Config::default(), response, eof)
}

/// Keep-alive pair mode: `first` to a `method` request, `reset`, then `second` to a GET on the
/// same connection; run whole, byte by byte and at random splits, asserting all modes agree.
/// Returns both outcomes (the second is `None` when the connection could not be reset).
pub fn run_pair(method: &str, first: &[u8], second: &[u8]) -> (Outcome, Option<Outcome>) {
    let once = |split: &dyn Fn(&[u8]) -> Vec<Vec<u8>>| {
        let mut conn = connection(method, Config::default());
        let p1 = split(first);
        let p1: Vec<&[u8]> = p1.iter().map(|p| p.as_slice()).collect();
        let o1 = drive(&mut conn, &p1, false);
        if conn.reset().is_err() {
            return (o1, None);
        }
        let h = Headers::new();
        let head = RequestHead {
            method: "GET",
            target: "/second",
            host: "example.test",
            headers: &h,
        };
        let mut out = Vec::new();
        conn.send_request(&head, RequestBody::None, &mut out)
            .expect("second request encodes");
        let p2 = split(second);
        let p2: Vec<&[u8]> = p2.iter().map(|p| p.as_slice()).collect();
        (o1, Some(drive(&mut conn, &p2, false)))
    };
    let whole = once(&|b: &[u8]| vec![b.to_vec()]);
    let bytes = once(&|b: &[u8]| b.chunks(1).map(|c| c.to_vec()).collect());
    assert_eq!(whole, bytes, "pair mode: byte-by-byte differs from whole");
    for seed in 0..20u64 {
        let split = move |b: &[u8]| {
            let mut rng = Rng::new(seed ^ b.len() as u64);
            let mut v = Vec::new();
            let mut pos = 0;
            while pos < b.len() {
                let end = (pos + 1 + rng.below(16)).min(b.len());
                v.push(b[pos..end].to_vec());
                pos = end;
            }
            v
        };
        assert_eq!(
            whole,
            once(&split),
            "pair mode: random split differs from whole"
        );
    }
    whole
}
