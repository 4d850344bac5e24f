//! Leak and memory checks run after a test's work: [`Baseline`] (the reactor's counts and the
//! process's open descriptors come back to what they were), the agent's pool emptied
//! ([`assert_nothing_pooled`]), and [`RssProbe`] (resident memory growth across a capped
//! transfer).
//!
//! [`Baseline::take`] snapshots the reactor's counts ([`Reactor::stats`]: connections, poller
//! registrations, handlers, listeners, timers, queued notifications) and the process's open
//! file descriptors (`/proc/self/fd`). [`Baseline::assert_back`] turns the reactor (bounded in
//! time) until both are back, then asserts. Take it after the agent and the test's servers
//! exist, and join the server threads before checking, so only what the client owns counts.
//!
//! Descriptors are counted per process: nextest runs every test in its own process, so there
//! the count is exact. Under `cargo test` other tests run on other threads of the same process
//! and open descriptors of their own, so the descriptor check is only made when this test is
//! alone (nextest, or `--test-threads=1`); the reactor counts are always checked.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use weft::client::{Agent, PoolStats};
use weft::reactor::{Reactor, ReactorStats};

use super::scripted::turn_until;

/// The most any single wait in these tests may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

/// How long [`Baseline::assert_back`] lets closes and cancellations settle. Short on purpose:
/// a timer or socket that lingers until some far deadline is a leak too.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Open descriptors of this process, or `None` where `/proc` is missing.
pub fn open_fds() -> Option<usize> {
    // The directory handle itself is counted each time, so differences are exact.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Whether this test runs alone in its process, so that descriptor counts are its own.
fn alone_in_process() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test")
        || std::env::var("RUST_TEST_THREADS").is_ok_and(|n| n == "1")
}

/// `field` of `/proc/self/status` (`VmRSS`, `VmHWM`) in bytes, or `None` where it is missing.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Growth of this process's resident memory across a piece of work, to show that a capped
/// transfer stays bounded. The current RSS is compared at every [`RssProbe::sample`] (call it
/// on each reactor turn: a buffer freed before the end would not show after it) and at the
/// check. The kernel's peak is compared too when this test is alone in its process (nextest)
/// and the peak can be reset (`/proc/self/clear_refs`): under `cargo test` other tests on
/// other threads would raise it. Their allocations also reach the sampled figure, so bounds
/// must leave room for a few MiB of them.
pub struct RssProbe {
    before: Option<u64>,
    peak_reset: bool,
    most: std::cell::Cell<u64>,
}

impl RssProbe {
    /// Reads the current RSS and, when alone in the process, resets the peak to it.
    pub fn start() -> RssProbe {
        let peak_reset = alone_in_process()
            && std::fs::write("/proc/self/clear_refs", "5").is_ok()
            && status_bytes("VmHWM").is_some();
        let before = status_bytes("VmRSS");
        RssProbe {
            before,
            peak_reset,
            most: std::cell::Cell::new(before.unwrap_or(0)),
        }
    }

    /// Notes the current RSS if it is the highest seen.
    pub fn sample(&self) {
        if let Some(now) = status_bytes("VmRSS") {
            self.most.set(self.most.get().max(now));
        }
    }

    /// Asserts that the highest sampled RSS (this moment included), and the kernel's peak
    /// where it was reset, grew by less than `bound` bytes since [`RssProbe::start`]; returns
    /// both growths (peak `None` where not measured), or `None` without `/proc`.
    pub fn assert_growth_below(&self, bound: u64, what: &str) -> Option<(u64, Option<u64>)> {
        let before = self.before?;
        self.sample();
        let sampled = self.most.get().saturating_sub(before);
        let peak = self
            .peak_reset
            .then(|| status_bytes("VmHWM"))
            .flatten()
            .map(|p| p.saturating_sub(before));
        eprintln!(
            "{what}: RSS grew {} KiB at most when sampled, peak {:?} KiB",
            sampled >> 10,
            peak.map(|p| p >> 10)
        );
        assert!(
            sampled < bound,
            "{what}: RSS grew by {sampled} bytes (bound {bound})"
        );
        if let Some(peak) = peak {
            assert!(
                peak < bound,
                "{what}: peak RSS grew by {peak} bytes (bound {bound})"
            );
        }
        Some((sampled, peak))
    }
}

/// What the process and the reactor held before a test's work.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub fds: Option<usize>,
    pub reactor: ReactorStats,
}

impl Baseline {
    /// Snapshots the reactor and the open descriptors.
    pub fn take(reactor: &mut Reactor) -> Baseline {
        // Let queued notifications (an agent's init message...) be delivered first.
        for _ in 0..3 {
            reactor.turn(Some(Duration::ZERO)).unwrap();
        }
        Baseline {
            fds: if alone_in_process() { open_fds() } else { None },
            reactor: reactor.stats(),
        }
    }

    /// Turns the reactor (at most [`SETTLE`]) until its counts and the descriptor count are
    /// back to the baseline, then asserts they are.
    pub fn assert_back(&self, reactor: &mut Reactor) {
        let deadline = Instant::now() + SETTLE;
        loop {
            reactor.turn(Some(Duration::from_millis(5))).unwrap();
            let now = self.current(reactor);
            if now.0 == self.reactor && now.1 == self.fds {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "not back to the baseline: reactor {:?} (was {:?}), fds {:?} (was {:?})",
                    now.0, self.reactor, now.1, self.fds
                );
            }
        }
    }

    fn current(&self, reactor: &Reactor) -> (ReactorStats, Option<usize>) {
        let fds = self.fds.and_then(|_| open_fds());
        (reactor.stats(), fds)
    }
}

/// The agent's pool counts, read through the reactor.
pub fn pool_stats(reactor: &mut Reactor, agent: Agent) -> PoolStats {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    agent.stats(reactor.ctx(), move |_, s| *o.borrow_mut() = Some(s));
    turn_until(reactor, LIMIT, || out.borrow().is_some());
    out.borrow().unwrap()
}

/// Asserts that the agent holds no request and no connection: nothing active, idle or queued.
pub fn assert_nothing_pooled(reactor: &mut Reactor, agent: Agent) {
    let s = pool_stats(reactor, agent);
    assert_eq!(
        (s.active, s.idle, s.queued, s.requests),
        (0, 0, 0, 0),
        "{s:?}"
    );
}
