//! One reactor per core: a `ReactorPool` of reactor threads, each with its own client, fed
//! from several threads at once against nginx; shutdown with requests in flight; a reactor
//! thread that panics, a builder that panics, a reactor that cannot be made (out of
//! descriptors) and a thread that cannot be started (out of address space), each in a child
//! process, and a pool of zero threads.

mod support;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::scripted::test_config;
use support::servers::Nginx;
use weft::client::{Cause, PoolStats};
use weft::handle::{ReactorPool, ReactorThreadError};
use weft::{HttpClient, SharedClient};

/// How long any one wait of these tests may take.
const BOUND: Duration = Duration::from_secs(10);

fn pool(threads: usize) -> ReactorPool {
    ReactorPool::new(threads, |_| {
        HttpClient::builder().agent_config(test_config())
    })
    .unwrap()
}

/// The name of the thread `client` runs on, and its pool statistics, read there.
fn where_and_stats(client: &SharedClient) -> (String, PoolStats) {
    let (tx, rx) = mpsc::channel();
    client
        .with_client(move |ctx, client| {
            let name = thread::current().name().unwrap_or("").to_string();
            client.pool().unwrap().stats(ctx, move |_, stats| {
                let _ = tx.send((name, stats));
            });
        })
        .unwrap();
    rx.recv_timeout(BOUND).unwrap()
}

/// Open descriptors, where this test has the process to itself (nextest): elsewhere other
/// tests open and close theirs meanwhile.
fn own_fds() -> Option<usize> {
    let alone = std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test");
    alone.then(|| std::fs::read_dir("/proc/self/fd").unwrap().count())
}

#[test]
fn requests_from_several_threads_are_spread_over_every_reactor() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    let fds_before = own_fds();
    let pool = pool(3);
    assert_eq!(pool.threads(), 3);
    thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..15 {
                        let r = pool.get(&url).fetch_blocking().unwrap();
                        assert_eq!(r.code, 200);
                        assert_eq!(&r.body[..], b"hello world\n");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    let mut names = BTreeSet::new();
    for i in 0..pool.threads() {
        let (name, stats) = where_and_stats(pool.client_at(i).unwrap());
        assert!(
            stats.connections_opened >= 1,
            "reactor {i} served nothing: {stats:?}"
        );
        names.insert(name);
    }
    let expected: BTreeSet<String> = (0..3).map(|i| format!("weft-reactor-{i}")).collect();
    assert_eq!(names, expected, "each client runs on a thread of its own");
    assert!(pool.client_at(3).is_none());
    pool.shutdown().unwrap();
    if let (Some(before), Some(after)) = (fds_before, own_fds()) {
        assert_eq!(
            after, before,
            "descriptors left open by the stopped reactors"
        );
    }
}

#[test]
fn one_key_always_lands_on_one_reactor() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    let pool = pool(4);
    let key = nginx.http_addr().to_string();
    for _ in 0..10 {
        let r = pool.client_for(&key).get(&url).fetch_blocking().unwrap();
        assert_eq!(r.code, 200);
    }
    let (home, _) = where_and_stats(pool.client_for(&key));
    for i in 0..pool.threads() {
        let (name, stats) = where_and_stats(pool.client_at(i).unwrap());
        let served = stats.connections_opened > 0;
        assert_eq!(served, name == home, "reactor {i} ({name}): {stats:?}");
        if served {
            // Sequential requests on one reactor share one kept-alive connection.
            assert_eq!(stats.connections_opened, 1, "{stats:?}");
        }
    }
}

#[test]
fn shutdown_with_requests_in_flight_fails_them_instead_of_hanging() {
    let nginx = Nginx::start();
    // Longer than the test may last: only the shutdown can end these requests.
    let slow = nginx.http_url("/slow?s=60");
    let pool = ReactorPool::new(2, |_| {
        let mut config = test_config();
        config.timeout = None;
        HttpClient::builder().agent_config(config)
    })
    .unwrap();
    let kept = pool.client_at(0).unwrap().clone();
    let (tx, rx) = mpsc::channel();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let request = pool.get(&slow);
            let tx = tx.clone();
            thread::spawn(move || {
                let _ = tx.send(request.fetch_blocking());
            })
        })
        .collect();
    // Until all four are on the wire (bounded).
    let deadline = Instant::now() + BOUND;
    loop {
        let active: usize = (0..2)
            .map(|i| where_and_stats(pool.client_at(i).unwrap()).1.active)
            .sum();
        if active == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "requests never became active");
        thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    pool.shutdown().unwrap();
    for _ in 0..4 {
        let e = rx.recv_timeout(BOUND).unwrap().unwrap_err();
        assert_eq!(e.cause(), &Cause::AgentClosed, "{e}");
    }
    assert!(stopped.elapsed() < BOUND);
    for w in waiters {
        w.join().unwrap();
    }
    // A handle kept past the pool fails at once.
    let e = kept
        .get(&nginx.http_url("/hello.txt"))
        .fetch_blocking()
        .unwrap_err();
    assert_eq!(e.cause(), &Cause::AgentClosed, "{e}");
}

#[test]
fn dropping_the_pool_stops_its_reactors() {
    let nginx = Nginx::start();
    let pool = pool(2);
    let kept = pool.client().clone();
    let r = kept.get(&nginx.http_url("/hello.txt")).fetch_blocking();
    assert_eq!(r.unwrap().code, 200);
    drop(pool);
    let e = kept
        .get(&nginx.http_url("/hello.txt"))
        .fetch_blocking()
        .unwrap_err();
    assert_eq!(e.cause(), &Cause::AgentClosed, "{e}");
}

#[test]
fn a_reactor_thread_that_panics_is_reported_and_fails_its_requests() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    let pool = pool(2);
    pool.client_at(1)
        .unwrap()
        .with_client(|_, _| panic!("deliberate panic on reactor 1"))
        .unwrap();
    // Whether queued before or after the panic, a request to the dead reactor ends.
    let e = pool
        .client_at(1)
        .unwrap()
        .get(&url)
        .fetch_blocking()
        .unwrap_err();
    assert_eq!(e.cause(), &Cause::AgentClosed, "{e}");
    // The other reactor goes on.
    let r = pool
        .client_at(0)
        .unwrap()
        .get(&url)
        .fetch_blocking()
        .unwrap();
    assert_eq!(r.code, 200);
    let errors = pool.shutdown().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    match &errors[0] {
        ReactorThreadError::Panicked { thread: 1, message } => {
            assert!(message.contains("deliberate panic"), "{message}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(
        errors[0].to_string(),
        "reactor thread 1 panicked: deliberate panic on reactor 1"
    );
}

#[test]
fn a_builder_that_panics_fails_the_start_and_stops_the_others() {
    let started = Instant::now();
    let e = ReactorPool::new(3, |i| {
        assert_ne!(i, 2, "no client for thread 2");
        HttpClient::builder()
    })
    .unwrap_err();
    match &e {
        ReactorThreadError::Panicked { thread: 2, message } => {
            assert!(message.contains("no client for thread 2"), "{message}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(started.elapsed() < BOUND);
}

#[test]
fn a_pool_of_zero_threads_is_refused() {
    let e = ReactorPool::new(0, |_| HttpClient::builder()).unwrap_err();
    assert!(matches!(e, ReactorThreadError::NoThreads), "{e}");
    assert_eq!(e.to_string(), "a reactor pool needs at least 1 thread");
}

#[test]
fn per_core_starts_one_reactor_per_available_core() {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let pool = ReactorPool::per_core(|_| HttpClient::builder()).unwrap();
    assert_eq!(pool.threads(), cores);
    pool.shutdown().unwrap();
}

/// Set in the child process of the next test.
const STARVED_CHILD: &str = "WEFT_TEST_DESCRIPTORS_STARVED";
/// Printed by the child once its checks passed (a child that ran no test prints nothing).
const STARVED_CHECKED: &str = "starved-pool-checked";

/// A reactor thread that cannot make its reactor (no descriptor left for its poller) fails
/// the start, naming the thread and carrying the I/O error. The descriptors run out in a
/// child process (this test binary again, its limit lowered by the shell), so no other test
/// loses any.
#[test]
fn a_reactor_that_cannot_be_made_fails_the_start_with_its_error() {
    if std::env::var_os(STARVED_CHILD).is_some() {
        return starved_child();
    }
    run_limited_child(
        "ulimit -n 64",
        "a_reactor_that_cannot_be_made_fails_the_start_with_its_error",
        STARVED_CHILD,
        STARVED_CHECKED,
    );
}

/// Runs test `name` again in a child process of this test binary, under the shell's `limit`
/// and with `env` set, and asserts that it ended well and printed `checked`.
fn run_limited_child(limit: &str, name: &str, env: &str, checked: &str) {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            r#"{limit} && exec "$0" --exact "$1" --nocapture --test-threads 1"#
        ))
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(env, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BOUND;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains(checked),
        "child {}:\n{stdout}\n{stderr}",
        out.status
    );
}

/// The child's half: takes every descriptor the lowered limit leaves, then starts a pool.
fn starved_child() {
    const EMFILE: i32 = 24;
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..64 {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the descriptor limit was not lowered");
    assert_eq!(refused.raw_os_error(), Some(EMFILE), "{refused}");
    let error =
        ReactorPool::new(2, |_| HttpClient::builder().agent_config(test_config())).unwrap_err();
    match &error {
        ReactorThreadError::Reactor { thread: 0, source } => {
            assert_eq!(source.raw_os_error(), Some(EMFILE), "{source}");
        }
        other => panic!("unexpected error: {other}"),
    }
    let text = error.to_string();
    assert!(text.starts_with("reactor thread 0 failed: "), "{text}");
    assert!(std::error::Error::source(&error).is_some());
    drop(held);
    println!("{STARVED_CHECKED}");
}

/// Set in the child process of the next test.
const CRAMPED_CHILD: &str = "WEFT_TEST_ADDRESS_SPACE_CRAMPED";
/// Printed by that child once its checks passed.
const CRAMPED_CHECKED: &str = "cramped-pool-checked";

/// A reactor thread the operating system refuses to start (no address space left for its
/// stack) fails the start with `Spawn`, naming the thread and carrying the I/O error; once
/// the space is back, a pool starts. The space runs out in a child process whose address
/// space the shell caps, so no other test is cramped.
#[test]
fn a_thread_that_cannot_be_started_fails_the_start_with_its_error() {
    if std::env::var_os(CRAMPED_CHILD).is_some() {
        return cramped_child();
    }
    run_limited_child(
        "ulimit -v 4194304",
        "a_thread_that_cannot_be_started_fails_the_start_with_its_error",
        CRAMPED_CHILD,
        CRAMPED_CHECKED,
    );
}

/// The child's half: reserves (without touching) the address space the cap leaves, down to
/// less than a thread's stack, then starts a pool.
fn cramped_child() {
    let mut ballast: Vec<Vec<u8>> = Vec::with_capacity(1 << 16);
    // Largest pieces first, so the count of pieces stays small (4 GiB in at most ~1,000 of
    // 4 MiB, then what is left in 64 KiB pieces: less than a 2 MiB stack remains).
    for piece in [4 << 20, 64 << 10] {
        while ballast.len() < ballast.capacity() {
            let mut v = Vec::new();
            if v.try_reserve_exact(piece).is_err() {
                break;
            }
            ballast.push(v);
        }
    }
    assert!(
        ballast.len() < ballast.capacity(),
        "the address space was not capped"
    );
    let error =
        ReactorPool::new(2, |_| HttpClient::builder().agent_config(test_config())).unwrap_err();
    match &error {
        ReactorThreadError::Spawn { thread: 0, source } => {
            // What `pthread_create` reports when it cannot map the thread's stack.
            const EAGAIN: i32 = 11;
            assert_eq!(source.raw_os_error(), Some(EAGAIN), "{source}");
        }
        other => panic!("unexpected error: {other}"),
    }
    let text = error.to_string();
    assert!(
        text.starts_with("cannot start reactor thread 0: "),
        "{text}"
    );
    assert!(std::error::Error::source(&error).is_some());
    drop(ballast);
    // The refusal was the address space's: with it back, the same pool starts.
    pool(2).shutdown().unwrap();
    println!("{CRAMPED_CHECKED}");
}
