//! `weft-bench`: one HTTP client driving one loopback workload, measured from inside.
//!
//! ```text
//! weft-bench client NAME --url URL [--conns N] [--warmup SECS] [--duration SECS] [--threads N]
//! weft-bench idle NAME --url URL [--conns N]
//! weft-bench list
//! ```
//!
//! `client` keeps `--conns` requests in flight for `--warmup` seconds (not measured), then
//! for `--duration` seconds, and prints one line:
//!
//! ```text
//! result client=NAME requests=R bytes=B wall_s=W user_us=U sys_us=S allocs=A alloc_bytes=AB max_gap_ms=G
//! ```
//!
//! counted over the measured window only: completed requests, body bytes, wall time, this
//! process's user and system CPU time (all threads, from `/proc/self/stat`), and heap
//! allocations (a counting global allocator, `stats_alloc`), and the longest time between two
//! completed requests (a stall shows there).
//!
//! `--threads N` (weft-agent only) runs N threads, each with its own reactor and Agent, the
//! connections split over them: one reactor per core.
//!
//! `idle` opens `--conns` keep-alive connections (one request each, all at once), lets them
//! fall idle in the client's pool, and prints the growth of RSS and of the live heap (over TLS
//! with an `https://` URL and `--ca PEM`, for weft-agent, reqwest and limit; `idle
//! limit-serial` is the TLS floor with its connections made one after another, each resuming
//! the first one's session):
//!
//! ```text
//! idle client=NAME conns=N fds=F rss_before_kib=A rss_after_kib=B heap_bytes=H
//! ```
//!
//! `scripts/bench-compare` runs every client as a child process of its own, pinned to one
//! core, against nginx pinned to the other.

#![forbid(unsafe_code)]

mod limit;
mod meter;
mod peers;
mod weft_clients;

use std::alloc::System;
use std::net::SocketAddr;
use std::process::ExitCode;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts every heap allocation of the process (one uncontended atomic add per call).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The clients, as named on the command line.
pub const CLIENTS: &[&str] = &[
    "weft-agent",
    "weft-client",
    "weft-client-reuse",
    "weft-blocking",
    "hyper",
    "hyper-conn",
    "reqwest",
    "reqwest-collect",
    "ureq",
    "ureq-collect",
    "limit",
];

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct Params {
    /// `http://127.0.0.1:PORT/path`.
    pub url: String,
    /// `127.0.0.1:PORT`, parsed from the URL.
    pub addr: SocketAddr,
    /// `/path`.
    pub path: String,
    /// Connections (requests in flight at once).
    pub conns: usize,
    /// Seconds before measuring.
    pub warmup: f64,
    /// Seconds measured.
    pub duration: f64,
    /// PEM file of the CA that signed the server's certificate (`https://` URLs, idle mode of
    /// weft-agent and reqwest only).
    pub ca: Option<String>,
    /// `--threads`: threads, each with its own reactor (weft-agent only). `None`: the
    /// single-threaded client, metered per request like every other client.
    pub threads: Option<usize>,
}

fn parse(args: &[String]) -> Result<Params, String> {
    let mut url = None;
    let mut conns = 1usize;
    let mut warmup = 1.0f64;
    let mut duration = 5.0f64;
    let mut ca = None;
    let mut threads = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--url" => url = Some(value()?.clone()),
            "--conns" => conns = value()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--warmup" => warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--ca" => ca = Some(value()?.clone()),
            "--threads" => threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?),
            "--duration" => duration = value()?.parse().map_err(|e| format!("--duration: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("only http:// and https:// URLs (an IP literal and a port)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority
        .parse()
        .map_err(|e| format!("{authority}: want IP:PORT ({e})"))?;
    if conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if threads.is_some_and(|n: usize| n == 0 || n > conns) {
        return Err("--threads must be between 1 and --conns".into());
    }
    Ok(Params {
        url: url.clone(),
        addr,
        path: path.to_string(),
        conns,
        warmup,
        duration,
        ca,
        threads,
    })
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: weft-bench client|idle NAME --url http://IP:PORT/PATH [--conns N] \
         [--warmup SECS] [--duration SECS] [--ca PEM] [--threads N]\n       weft-bench list\nclients: {}",
        CLIENTS.join(" ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, name) = match (args.first(), args.get(1)) {
        (Some(m), _) if m == "list" => {
            println!("{}", CLIENTS.join(" "));
            return ExitCode::SUCCESS;
        }
        (Some(m), Some(n)) => (m.as_str(), n.as_str()),
        _ => return usage(),
    };
    let params = match parse(&args[2..]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weft-bench: {e}");
            return usage();
        }
    };
    if params.threads.is_some() && !(mode == "client" && name == "weft-agent") {
        eprintln!("weft-bench: --threads is for `client weft-agent` only");
        return usage();
    }
    let result = match mode {
        "client" => {
            let meter = meter::Meter::new(name, &params);
            match name {
                "weft-agent" => match params.threads {
                    None => weft_clients::agent(&params, meter),
                    Some(n) => weft_clients::agent_threads(&params, meter, n),
                },
                "weft-client" => weft_clients::client(&params, meter),
                "weft-client-reuse" => weft_clients::client_reuse(&params, meter),
                "weft-blocking" => weft_clients::blocking(&params, meter),
                "hyper" => peers::hyper_pooled(&params, meter),
                "hyper-conn" => peers::hyper_conn(&params, meter),
                "reqwest" => peers::reqwest(&params, meter),
                "reqwest-collect" => peers::reqwest_collect(&params, meter),
                "ureq" => peers::ureq(&params, meter),
                "ureq-collect" => peers::ureq_collect(&params, meter),
                "limit" => limit::run(&params, meter),
                _ => return usage(),
            }
        }
        "idle" => match name {
            "weft-agent" => weft_clients::idle(&params),
            "hyper" => peers::hyper_idle(&params),
            "hyper-conn" => peers::hyper_conn_idle(&params),
            "reqwest" => peers::reqwest_idle(&params),
            "limit" => limit::idle(&params),
            "limit-serial" => limit::idle_serial(&params),
            _ => Err(format!("no idle mode for {name}")),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-bench {mode} {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
