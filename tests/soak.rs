//! Load and soak runs (docs/http-support.md §2.3, L1–L6), all `#[ignore]`: `scripts/soak` runs
//! them in release mode with the file limit raised and prints their figures. They talk to a real
//! nginx in a child process (and, for the hostile mix, scripted servers) on 127.0.0.1.
//!
//! Sizes come from the environment so a quick run and a nightly run share the code:
//! `WEFT_SOAK_CONNS` (L1, default 10,000), `WEFT_SOAK_REQUESTS` (L2, default 1,000,000),
//! `WEFT_SOAK_CHURN` (L3, default 20,000), `WEFT_SOAK_GIB` (L4, default 4),
//! `WEFT_SOAK_SECS` (L6, default 60).

mod support;

use std::alloc::System;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use support::baseline::pool_stats;
use support::scripted::{ScriptedServer, Step, write};
use support::servers::Nginx;
use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, HttpAgent, Request, Response,
};
use weft::reactor::{Ctx, Reactor};

/// Counts every allocation of this test binary: the leak criterion of L2.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Blocks currently allocated on the heap.
fn live_blocks() -> i64 {
    let s = GLOBAL.stats();
    s.allocations as i64 - s.deallocations as i64
}

/// Bytes currently allocated on the heap (stats_alloc already counts a realloc's growth or
/// shrink in `bytes_allocated` / `bytes_deallocated`).
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process, in KiB (from /proc/self/statm).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    support::baseline::open_fds().expect("/proc/self/fd")
}

/// Extra nginx locations for the load runs.
const LOCATIONS: &str = r#"
        location = /empty { return 200 ""; }
        location /huge/ { alias {www}/; keepalive_timeout 300s; }
        location /chunked-huge/ {
            alias {www}/;
            sub_filter_types *;
            sub_filter 'weft-this-never-matches' 'x';
            sub_filter_once off;
        }
"#;

/// nginx tuned for load: many connections, endless keep-alive.
fn nginx() -> Nginx {
    Nginx::start_with(&format!(
        "{LOCATIONS}\n        keepalive_requests 100000000;\n        keepalive_timeout 300s;"
    ))
}

fn agent_config(conns: usize) -> AgentConfig {
    AgentConfig {
        max_active_per_host: conns,
        max_active_total: conns,
        max_idle_per_host: conns,
        timeout: Some(Duration::from_secs(120)),
        connect_timeout: Some(Duration::from_secs(60)),
        ..AgentConfig::default()
    }
}

/// What the runs record per request.
#[derive(Default)]
struct Tally {
    /// Record each request's latency (off for the runs that measure memory).
    timed: bool,
    ok: Cell<u64>,
    failed: Cell<u64>,
    bytes: Cell<u64>,
    latencies: RefCell<Vec<Duration>>,
    first_error: RefCell<Option<String>>,
}

impl Tally {
    fn done(&self) -> u64 {
        self.ok.get() + self.failed.get()
    }
    fn fail(&self, e: impl std::fmt::Display) {
        self.failed.set(self.failed.get() + 1);
        self.first_error.borrow_mut().get_or_insert(e.to_string());
    }
}

/// What runs when a request ends (it issues the next one).
type Then = Box<dyn FnOnce(&mut Ctx)>;

/// A body sink that counts bytes (and hashes them when asked).
struct Sink {
    tally: Rc<Tally>,
    started: Instant,
    hash: Option<Rc<RefCell<Sha256>>>,
    on_end: Option<Then>,
}

impl BodyProtocol for Sink {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
        self.tally
            .bytes
            .set(self.tally.bytes.get() + data.len() as u64);
        if let Some(h) = &self.hash {
            h.borrow_mut().update(data);
        }
    }
    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        match reason {
            BodyEnd::Done | BodyEnd::PotentialDataLoss => {
                self.tally.ok.set(self.tally.ok.get() + 1);
                if self.tally.timed {
                    self.tally
                        .latencies
                        .borrow_mut()
                        .push(self.started.elapsed());
                }
            }
            BodyEnd::Failed(e) => self.tally.fail(e),
        }
        if let Some(f) = self.on_end.take() {
            f(ctx);
        }
    }
}

/// Issues `request` through `agent`; the body goes to a counting sink, then `then` runs.
fn fire(
    ctx: &mut Ctx,
    agent: &impl HttpAgent,
    request: Request,
    tally: &Rc<Tally>,
    hash: Option<Rc<RefCell<Sha256>>>,
    then: impl FnOnce(&mut Ctx) + 'static,
) {
    let tally = tally.clone();
    let started = Instant::now();
    agent.request(
        ctx,
        request,
        Box::new(move |ctx, r: Result<Response, _>| match r {
            Ok(resp) => resp.deliver_body(
                ctx,
                Sink {
                    tally,
                    started,
                    hash,
                    on_end: Some(Box::new(then)),
                },
            ),
            Err(e) => {
                tally.fail(e);
                then(ctx);
            }
        }),
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Turns the reactor until `done` or the limit; panics on the limit.
fn run_until(reactor: &mut Reactor, limit: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "load run did not finish in {limit:?}");
        reactor.turn(Some(Duration::from_millis(50))).unwrap();
    }
}

/// L1: 10,000 requests in flight at once on one reactor thread, each on its own connection.
#[test]
#[ignore = "load run: scripts/soak"]
fn l1_ten_thousand_concurrent_connections() {
    let n = env_or("WEFT_SOAK_CONNS", 10_000) as usize;
    let nginx = nginx();
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), agent_config(n));
    let (fds0, rss0) = (open_fds(), rss_kib());
    let tally = Rc::new(Tally {
        timed: true,
        ..Tally::default()
    });
    let started = Instant::now();
    // Each request waits 2 s at the server, so all of them are open at the same time.
    for i in 0..n {
        let url = nginx.http_url(&format!("/slow?s=2&i={i}"));
        fire(
            reactor.ctx(),
            &agent,
            Request::get(&url),
            &tally,
            None,
            |_| {},
        );
    }
    run_until(&mut reactor, Duration::from_secs(300), || {
        tally.done() == n as u64
    });
    let elapsed = started.elapsed();
    let st = pool_stats(&mut reactor, agent);
    let rss_idle = rss_kib();
    let mut lat = tally.latencies.borrow().clone();
    lat.sort();
    println!(
        "L1: {n} concurrent requests: ok {} failed {} in {elapsed:.2?}; latency p50 {:.2?} p99 {:.2?} max {:.2?}",
        tally.ok.get(),
        tally.failed.get(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
    println!(
        "L1: connections opened {}, idle in pool {}; RSS {} KiB -> {} KiB ({:.0} B per idle connection); fds {} -> {}",
        st.connections_opened,
        st.idle,
        rss0,
        rss_idle,
        (rss_idle.saturating_sub(rss0) * 1024) as f64 / st.idle.max(1) as f64,
        fds0,
        open_fds()
    );
    assert_eq!(tally.failed.get(), 0, "{:?}", tally.first_error.borrow());
    assert!(
        st.connections_opened as usize >= n * 9 / 10,
        "only {} connections for {n} concurrent requests",
        st.connections_opened
    );
    agent.close_idle(reactor.ctx());
    run_until(&mut reactor, Duration::from_secs(30), || open_fds() <= fds0);
    println!("L1: after close_idle: fds {}", open_fds());
}

/// L2: a million keep-alive requests over 16 connections; RSS and the live heap stay flat.
#[test]
#[ignore = "load run: scripts/soak"]
fn l2_million_keepalive_requests_without_growth() {
    let total = env_or("WEFT_SOAK_REQUESTS", 1_000_000);
    let conns = 16;
    let nginx = nginx();
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), agent_config(conns));
    let tally = Rc::new(Tally::default());
    let paths = ["/empty", "/hello.txt", "/chunked/hello.txt", "/no-content"];
    let urls: Rc<Vec<String>> = Rc::new(paths.iter().map(|p| nginx.http_url(p)).collect());
    let issued = Rc::new(Cell::new(0u64));

    // Each finished request issues the next one: `conns` chains in flight.
    fn next(
        ctx: &mut Ctx,
        agent: Agent,
        urls: Rc<Vec<String>>,
        tally: Rc<Tally>,
        issued: Rc<Cell<u64>>,
        total: u64,
    ) {
        let i = issued.get();
        if i >= total {
            return;
        }
        issued.set(i + 1);
        let url = &urls[(i % urls.len() as u64) as usize];
        let (u, t, s) = (urls.clone(), tally.clone(), issued.clone());
        fire(ctx, &agent, Request::get(url), &tally, None, move |ctx| {
            next(ctx, agent, u, t, s, total)
        });
    }

    let warmup = (total / 10).max(1);
    let started = Instant::now();
    for _ in 0..conns {
        next(
            reactor.ctx(),
            agent,
            urls.clone(),
            tally.clone(),
            issued.clone(),
            total,
        );
    }
    run_until(&mut reactor, Duration::from_secs(3600), || {
        tally.done() >= warmup
    });
    let (rss_warm, heap_warm, t_warm) = (rss_kib(), live_heap(), Instant::now());
    let blocks_warm = live_blocks();
    let allocs_warm = GLOBAL.stats().allocations;
    let mut rss_max = rss_warm;
    let end = Instant::now() + Duration::from_secs(3600);
    while tally.done() < total {
        assert!(Instant::now() < end, "L2 did not finish");
        reactor.turn(Some(Duration::from_millis(50))).unwrap();
        rss_max = rss_max.max(rss_kib());
    }
    let after = tally.done() - warmup;
    let secs = t_warm.elapsed().as_secs_f64();
    let (rss_end, heap_end) = (rss_kib(), live_heap());
    println!(
        "L2: live blocks {blocks_warm} -> {}; reactor {:?}",
        live_blocks(),
        reactor.stats()
    );
    let allocs = GLOBAL.stats().allocations - allocs_warm;
    let st = pool_stats(&mut reactor, agent);
    println!(
        "L2: {total} requests ({} failed) in {:.1?}: {:.0} req/s after warm-up; RSS {rss_warm} KiB after {warmup} -> max {rss_max} -> end {rss_end} KiB ({:+.2} %); live heap {heap_warm} -> {heap_end} B; {:.1} allocations per request; connections opened {}",
        tally.failed.get(),
        started.elapsed(),
        after as f64 / secs,
        (rss_end as f64 - rss_warm as f64) * 100.0 / rss_warm as f64,
        allocs as f64 / after.max(1) as f64,
        st.connections_opened,
    );
    assert_eq!(tally.failed.get(), 0, "{:?}", tally.first_error.borrow());
    assert!(
        (rss_max as f64) < rss_warm as f64 * 1.05,
        "RSS grew from {rss_warm} to {rss_max} KiB"
    );
    // A few KiB of slack: the tally's own vectors and the pool's bookkeeping.
    assert!(
        heap_end - heap_warm < 64 * 1024,
        "live heap grew by {} B",
        heap_end - heap_warm
    );
    assert!(st.connections_opened <= conns as u64 + 4, "{st:?}");
}

/// L3: connection churn: every request on a new connection (`persistent: false`).
#[test]
#[ignore = "load run: scripts/soak"]
fn l3_connection_churn() {
    let total = env_or("WEFT_SOAK_CHURN", 20_000);
    let nginx = nginx();
    let mut reactor = Reactor::new().unwrap();
    let config = AgentConfig {
        persistent: false,
        ..agent_config(8)
    };
    let agent = Agent::new(reactor.ctx(), config);
    let tally = Rc::new(Tally::default());
    let fds0 = open_fds();
    let url = nginx.http_url("/hello.txt");
    let queue: Rc<RefCell<VecDeque<u64>>> = Rc::new(RefCell::new((0..total).collect()));
    fn next(
        ctx: &mut Ctx,
        agent: Agent,
        url: Rc<String>,
        q: Rc<RefCell<VecDeque<u64>>>,
        t: Rc<Tally>,
    ) {
        if q.borrow_mut().pop_front().is_none() {
            return;
        }
        let (u, qq, tt) = (url.clone(), q.clone(), t.clone());
        fire(
            ctx,
            &agent,
            Request::get(url.as_str()),
            &t,
            None,
            move |ctx| next(ctx, agent, u, qq, tt),
        );
    }
    let url = Rc::new(url);
    let started = Instant::now();
    for _ in 0..8 {
        next(
            reactor.ctx(),
            agent,
            url.clone(),
            queue.clone(),
            tally.clone(),
        );
    }
    run_until(&mut reactor, Duration::from_secs(1800), || {
        tally.done() == total
    });
    let st = pool_stats(&mut reactor, agent);
    println!(
        "L3: {total} requests on new connections ({} failed) in {:.1?} ({:.0} conn/s); opened {}; fds {fds0} -> {}; RSS {} KiB",
        tally.failed.get(),
        started.elapsed(),
        total as f64 / started.elapsed().as_secs_f64(),
        st.connections_opened,
        open_fds(),
        rss_kib()
    );
    assert_eq!(tally.failed.get(), 0, "{:?}", tally.first_error.borrow());
    assert_eq!(st.connections_opened, total);
    run_until(&mut reactor, Duration::from_secs(30), || {
        open_fds() <= fds0 + 1
    });
}

/// L4: a multi-GiB body, Content-Length and chunked, in constant memory, hashed on the fly.
#[test]
#[ignore = "load run: scripts/soak"]
fn l4_huge_bodies_in_constant_memory() {
    let gib = env_or("WEFT_SOAK_GIB", 4);
    let nginx = nginx();
    // A sparse file: nothing on disk, zeros on the wire.
    let path = nginx.docroot().join("huge.bin");
    File::create(&path).unwrap().set_len(gib << 30).unwrap();
    let mut expected = Sha256::new();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(gib << 10) {
        expected.update(&zeros);
    }
    let expected = expected.finalize();
    drop(zeros);
    let mut reactor = Reactor::new().unwrap();
    let config = AgentConfig {
        timeout: None,
        ..agent_config(1)
    };
    let agent = Agent::new(reactor.ctx(), config);
    for prefix in ["/huge/", "/chunked-huge/"] {
        let tally = Rc::new(Tally::default());
        let hash = Rc::new(RefCell::new(Sha256::new()));
        let rss0 = rss_kib();
        let rss_max = Rc::new(Cell::new(rss0));
        let started = Instant::now();
        let url = nginx.http_url(&format!("{prefix}huge.bin"));
        fire(
            reactor.ctx(),
            &agent,
            Request::get(&url),
            &tally,
            Some(hash.clone()),
            |_| {},
        );
        let end = Instant::now() + Duration::from_secs(1800);
        while tally.done() == 0 {
            assert!(Instant::now() < end, "L4 did not finish");
            reactor.turn(Some(Duration::from_millis(50))).unwrap();
            rss_max.set(rss_max.get().max(rss_kib()));
        }
        let secs = started.elapsed().as_secs_f64();
        let digest = hash.borrow().clone().finalize();
        println!(
            "L4: {prefix}: {} GiB in {secs:.1} s ({:.0} MiB/s); RSS {rss0} KiB -> max {} KiB; sha256 {}",
            gib,
            tally.bytes.get() as f64 / secs / (1 << 20) as f64,
            rss_max.get(),
            if digest == expected { "ok" } else { "MISMATCH" }
        );
        assert_eq!(tally.failed.get(), 0, "{:?}", tally.first_error.borrow());
        assert_eq!(tally.bytes.get(), gib << 30);
        assert_eq!(digest, expected);
        assert!(
            rss_max.get() < rss0 + 16 * 1024,
            "RSS grew by more than 16 MiB"
        );
    }
}

/// Hostile answers for L5/L6; each must end in an error, never in a pooled connection.
fn hostile_scripts(n: usize) -> Vec<Vec<Step>> {
    let fixtures: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ntruncated",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    ];
    (0..n)
        .map(|i| {
            vec![
                Step::ExpectRequest,
                write(fixtures[i % fixtures.len()]),
                Step::Close,
            ]
        })
        .collect()
}

/// L5 and L6: normal requests keep succeeding, with the right bodies, while one in ten goes
/// to a hostile server; runs for `WEFT_SOAK_SECS`.
#[test]
#[ignore = "load run: scripts/soak"]
fn l5_l6_hostile_mix_soak() {
    let secs = env_or("WEFT_SOAK_SECS", 60);
    let nginx = nginx();
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), agent_config(16));
    let good = Rc::new(Tally::default());
    let bad = Rc::new(Tally::default());
    let hello = nginx.http_url("/hello.txt");
    let end = Instant::now() + Duration::from_secs(secs);
    let (fds0, rss0) = (open_fds(), rss_kib());
    let mut rounds = 0u64;
    while Instant::now() < end {
        // A round: 90 normal requests and 10 hostile ones, all in flight together.
        let hostile = ScriptedServer::start(hostile_scripts(10));
        let round_good = Rc::new(Tally::default());
        for i in 0..100 {
            if i % 10 == 9 {
                fire(
                    reactor.ctx(),
                    &agent,
                    Request::get(hostile.url("/h")),
                    &bad,
                    None,
                    |_| {},
                );
            } else {
                fire(
                    reactor.ctx(),
                    &agent,
                    Request::get(&hello),
                    &round_good,
                    None,
                    |_| {},
                );
            }
        }
        let target = bad.done() + 10;
        run_until(&mut reactor, Duration::from_secs(60), || {
            round_good.done() == 90 && bad.done() == target
        });
        assert_eq!(
            round_good.failed.get(),
            0,
            "{:?}",
            round_good.first_error.borrow()
        );
        // Every normal body is exactly "hello world\n": no bytes of a hostile answer leaked.
        assert_eq!(round_good.bytes.get(), 90 * 12);
        good.ok.set(good.ok.get() + round_good.ok.get());
        rounds += 1;
    }
    let st = pool_stats(&mut reactor, agent);
    println!(
        "L5/L6: {rounds} rounds in {secs} s: {} normal ok, {} hostile (ok {} failed {}); pool {st:?}; fds {fds0} -> {}; RSS {rss0} -> {} KiB",
        good.ok.get(),
        bad.done(),
        bad.ok.get(),
        bad.failed.get(),
        open_fds(),
        rss_kib()
    );
    // The scripted servers live in this process: their sockets count in `fds`, so weft's own
    // share is read from the reactor.
    let rs = reactor.stats();
    println!("L5/L6: reactor {rs:?}");
    assert_eq!(bad.ok.get(), 0, "a hostile answer was taken for a good one");
    assert!(st.idle <= 16, "{st:?}");
    assert!(rs.connections <= 16 && rs.registrations <= 16, "{rs:?}");
}
