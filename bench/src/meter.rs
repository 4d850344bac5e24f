//! The measured window: counts completed requests and body bytes, and snapshots wall time,
//! CPU time and heap allocations when warm-up ends and when the window closes.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{GLOBAL, Params};

/// Clock ticks per second of `/proc/*/stat` (USER_HZ: 100 on every Linux build that matters).
const TICKS_PER_SEC: u64 = 100;

/// User and system CPU time of this process, all threads, in clock ticks.
pub fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the name.
    let get = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get(11), get(12))
}

/// Resident set size, KiB (VmRSS of /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Bytes live on the heap now.
pub fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    requests: u64,
    bytes: u64,
    user: u64,
    sys: u64,
    allocs: u64,
    alloc_bytes: u64,
}

impl Snapshot {
    fn take(requests: u64, bytes: u64) -> Snapshot {
        let (user, sys) = cpu_ticks();
        let s = GLOBAL.stats();
        Snapshot {
            at: Instant::now(),
            requests,
            bytes,
            user,
            sys,
            allocs: (s.allocations + s.reallocations) as u64,
            alloc_bytes: s.bytes_allocated as u64,
        }
    }
}

struct State {
    name: String,
    warmup_end: Instant,
    duration: Duration,
    requests: u64,
    bytes: u64,
    start: Option<Snapshot>,
    /// When the last request finished, and the longest wait between two in the window.
    last: Instant,
    max_gap: Duration,
}

/// Shared by every task or thread of a client; cloning shares the counts.
#[derive(Clone)]
pub struct Meter(Arc<Mutex<State>>);

impl Meter {
    /// A meter whose warm-up starts now.
    pub fn new(name: &str, p: &Params) -> Meter {
        Meter(Arc::new(Mutex::new(State {
            name: name.to_string(),
            warmup_end: Instant::now() + Duration::from_secs_f64(p.warmup),
            duration: Duration::from_secs_f64(p.duration),
            requests: 0,
            bytes: 0,
            start: None,
            last: Instant::now(),
            max_gap: Duration::ZERO,
        })))
    }

    /// One request finished with `bytes` of body. When the window closes this prints the
    /// result line and ends the process (no client needs an orderly shutdown to be measured).
    pub fn done(&self, bytes: u64) {
        self.done_many(1, bytes);
    }

    /// `requests` requests finished with `bytes` of body between them (a thread's batch).
    fn done_many(&self, requests: u64, bytes: u64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.requests += requests;
        s.bytes += bytes;
        let now = Instant::now();
        let gap = now.duration_since(s.last);
        s.last = now;
        match s.start {
            None => {
                if now >= s.warmup_end {
                    s.start = Some(Snapshot::take(s.requests, s.bytes));
                }
            }
            Some(start) => {
                s.max_gap = s.max_gap.max(gap);
                if now.duration_since(start.at) >= s.duration {
                    let end = Snapshot::take(s.requests, s.bytes);
                    let us = |ticks: u64| ticks * (1_000_000 / TICKS_PER_SEC);
                    println!(
                        "result client={} requests={} bytes={} wall_s={:.6} user_us={} sys_us={} allocs={} alloc_bytes={} max_gap_ms={:.3}",
                        s.name,
                        end.requests - start.requests,
                        end.bytes - start.bytes,
                        end.at.duration_since(start.at).as_secs_f64(),
                        us(end.user - start.user),
                        us(end.sys - start.sys),
                        end.allocs - start.allocs,
                        end.alloc_bytes - start.alloc_bytes,
                        s.max_gap.as_secs_f64() * 1e3,
                    );
                    std::process::exit(0);
                }
            }
        }
    }
}

/// Requests a [`LocalMeter`] counts before it hands them to the shared [`Meter`].
const BATCH: u64 = 16;

/// One thread's tally, handed to the shared [`Meter`] every [`BATCH`] requests, so that the
/// threads of one client (`--threads`) do not pass the meter's lock between cores on every
/// request. The window opens and closes up to `BATCH - 1` requests per thread late, which is
/// noise beside the hundreds of thousands counted; `max_gap_ms` is then the longest time
/// between two batches.
pub struct LocalMeter {
    meter: Meter,
    requests: Cell<u64>,
    bytes: Cell<u64>,
}

impl LocalMeter {
    /// A tally for this thread.
    pub fn new(meter: Meter) -> LocalMeter {
        LocalMeter {
            meter,
            requests: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    /// One request finished with `bytes` of body.
    pub fn done(&self, bytes: u64) {
        let (n, b) = (self.requests.get() + 1, self.bytes.get() + bytes);
        if n < BATCH {
            self.requests.set(n);
            self.bytes.set(b);
            return;
        }
        self.requests.set(0);
        self.bytes.set(0);
        self.meter.done_many(n, b);
    }
}

/// Prints the line of an `idle` run.
pub fn report_idle(name: &str, conns: usize, rss_before: u64, heap_before: i64) {
    println!(
        "idle client={name} conns={conns} fds={} rss_before_kib={rss_before} rss_after_kib={} heap_bytes={}",
        open_fds(),
        rss_kib(),
        live_heap() - heap_before
    );
}
