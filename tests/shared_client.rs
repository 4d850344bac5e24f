//! The thread-safe client handle: a reactor on its own thread, requests from other threads
//! (plain threads with futures or blocking waits, a tokio multi-thread runtime), one cookie
//! jar for all of them, cancellation by dropping a future, and a reactor that goes away while
//! requests wait.
#![cfg(all(feature = "cookies", feature = "json"))]

mod support;

use std::future::Future;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use support::scripted::test_config;
use support::servers::{Httpbin, Nginx};
use weft::client::{Cause, Phase, PoolStats};
use weft::reactor::Remote;
use weft::{ClientBuilder, HttpClient, Reactor, SharedClient, SharedRequest};

/// How long a waiter may take to see its reactor go away.
const BOUND: Duration = Duration::from_secs(5);

/// A reactor running on its own thread, with a shared client made there.
struct ReactorThread {
    client: SharedClient,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl ReactorThread {
    /// Starts the reactor; `builder` runs on its thread (a `ClientBuilder` is not `Send`).
    fn start(builder: impl FnOnce() -> ClientBuilder + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let client = builder().build_shared(reactor.ctx());
            tx.send((client, reactor.remote())).unwrap();
            reactor.run().unwrap();
            // The reactor is dropped here, with whatever is still pending.
        });
        let (client, remote) = rx.recv().unwrap();
        ReactorThread {
            client,
            remote,
            thread: Some(thread),
        }
    }

    fn with_test_config() -> Self {
        ReactorThread::start(|| HttpClient::builder().agent_config(test_config()))
    }

    /// Stops the reactor and waits until its thread has dropped it.
    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.remote.call(|ctx| ctx.stop()).unwrap();
            thread.join().unwrap();
        }
    }

    /// The client's pool statistics, read on the reactor thread.
    fn stats(&self) -> PoolStats {
        let (tx, rx) = mpsc::channel();
        self.client
            .with_client(move |ctx, client| {
                client.pool().unwrap().stats(ctx, move |_, stats| {
                    let _ = tx.send(stats);
                });
            })
            .unwrap();
        rx.recv_timeout(BOUND).unwrap()
    }
}

impl Drop for ReactorThread {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop_now();
        }
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking between polls; `None` after
/// `limit`.
fn block_on_for<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + limit;
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::park_timeout(left);
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    block_on_for(future, Duration::from_secs(30)).expect("future still pending after 30 s")
}

#[test]
fn the_handle_and_its_futures_cross_threads() {
    fn check<T: Send + Sync + Clone>() {}
    fn check_send<T: Send>() {}
    check::<SharedClient>();
    check_send::<SharedRequest>();
    check_send::<weft::handle::Fetch>();
}

#[test]
fn four_threads_share_one_cookie_jar() {
    let httpbin = Httpbin::start();
    let reactor = ReactorThread::with_test_config();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let client = reactor.client.clone();
            let barrier = barrier.clone();
            let set = httpbin.url(&format!("/cookies/set?t{i}=v{i}"));
            let get = httpbin.url("/cookies");
            thread::spawn(move || {
                // httpbin answers with a redirect to /cookies, followed on the reactor side.
                let set = client.get(&set);
                let r = if i % 2 == 0 {
                    block_on(set.fetch())
                } else {
                    set.fetch_blocking()
                }
                .unwrap();
                assert_eq!(r.code, 200);
                assert_eq!(r.history.len(), 1);
                barrier.wait();
                let r = block_on(client.get(&get).fetch()).unwrap();
                r.json::<serde_json::Value>().unwrap()
            })
        })
        .collect();
    let expected = serde_json::json!({
        "cookies": {"t0": "v0", "t1": "v1", "t2": "v2", "t3": "v3"}
    });
    for t in threads {
        assert_eq!(t.join().unwrap(), expected);
    }
    let (tx, rx) = mpsc::channel();
    reactor
        .client
        .with_client(move |_, client| {
            let jar = client.cookie_jar().unwrap();
            let _ = tx.send(jar.len());
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(BOUND).unwrap(), 4);
    reactor.stop();
}

#[test]
fn request_options_are_replayed_on_the_reactor() {
    let httpbin = Httpbin::start();
    let reactor = ReactorThread::with_test_config();
    let client = &reactor.client;

    let r = client
        .post(&httpbin.url("/post"))
        .query("q", "a b")
        .header("X-Test", "1")
        .json(&serde_json::json!({"n": 1}))
        .fetch_blocking()
        .unwrap();
    let json: serde_json::Value = r.json().unwrap();
    assert_eq!(json["args"]["q"], "a b");
    assert_eq!(json["headers"]["X-Test"], "1");
    assert_eq!(json["json"], serde_json::json!({"n": 1}));

    let r = block_on(
        client
            .get(&httpbin.url("/basic-auth/alice/s3cret"))
            .basic_auth("alice", Some("s3cret"))
            .fetch(),
    )
    .unwrap();
    assert_eq!(r.code, 200);

    let e = client
        .get(&httpbin.url("/status/404"))
        .error_for_status(true)
        .fetch_blocking()
        .unwrap_err();
    assert_eq!(e.cause(), &Cause::HttpStatus(404));

    let e = block_on(
        client
            .get(&httpbin.url("/bytes/2000"))
            .max_body(100)
            .fetch(),
    )
    .unwrap_err();
    assert_eq!(e.cause(), &Cause::BodyTooLarge(100));

    let e = client.get("ftp://127.0.0.1/").fetch_blocking().unwrap_err();
    assert!(matches!(e.cause(), Cause::UnsupportedScheme(_)), "{e}");
    reactor.stop();
}

#[test]
fn many_requests_from_four_threads_against_nginx() {
    let nginx = Nginx::start();
    let reactor = ReactorThread::start(|| {
        let mut config = test_config();
        config.max_idle_per_host = 4;
        HttpClient::builder().agent_config(config)
    });
    let url = nginx.http_url("/hello.txt");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let client = reactor.client.clone();
            let url = url.clone();
            thread::spawn(move || {
                for n in 0..50 {
                    let request = client.get(&url);
                    let r = if (i + n) % 2 == 0 {
                        block_on(request.fetch())
                    } else {
                        request.fetch_blocking()
                    }
                    .unwrap();
                    assert_eq!((r.code, &r.body[..]), (200, &b"hello world\n"[..]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(nginx.wait_access_log(200).len(), 200);
    let stats = reactor.stats();
    assert_eq!((stats.active, stats.requests), (0, 0), "{stats:?}");
    // Four requests at most at once, and room for four idle connections: the pool reused
    // its connections.
    assert!(stats.connections_opened <= 8, "{stats:?}");
    reactor.stop();
}

#[test]
fn a_tokio_multi_thread_runtime_runs_100_requests_from_8_tasks() {
    let nginx = Nginx::start();
    let reactor = ReactorThread::with_test_config();
    let url = nginx.http_url("/hello.txt");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let ok = runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let client = reactor.client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    // 100 requests over 8 tasks: 13 for the first four, 12 for the others.
                    for _ in 0..(100 / 8 + usize::from(task < 100 % 8)) {
                        let r = client.get(&url).fetch().await.unwrap();
                        assert_eq!(r.body, b"hello world\n");
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        ok
    });
    assert_eq!(ok, 100);
    assert_eq!(nginx.wait_access_log(100).len(), 100);
    reactor.stop();
}

/// A server that takes one connection, reads one request head, reports it, then reports
/// whether the client closed the connection (within [`BOUND`]).
fn silent_server() -> (SocketAddr, mpsc::Receiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        read_head(&mut conn);
        let _ = tx.send("request");
        conn.set_read_timeout(Some(BOUND)).unwrap();
        let mut buf = [0; 512];
        let outcome = loop {
            match conn.read(&mut buf) {
                Ok(0) => break "closed",
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break "closed",
                Err(_) => break "still open",
            }
        };
        let _ = tx.send(outcome);
    });
    (addr, rx)
}

fn read_head(conn: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "request head cut short");
        head.push(byte[0]);
    }
}

#[test]
fn dropping_a_future_cancels_its_request() {
    let (addr, server) = silent_server();
    let reactor = ReactorThread::with_test_config();
    let future = reactor.client.get(&format!("http://{addr}/slow")).fetch();
    // Polled once in a while until the server has the request, then dropped.
    let mut future = Box::pin(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let pending = future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending();
    assert!(pending);
    assert_eq!(server.recv_timeout(BOUND), Ok("request"));
    assert_eq!(reactor.stats().active, 1);
    drop(future);
    assert_eq!(server.recv_timeout(BOUND * 2), Ok("closed"));
    let stats = reactor.stats();
    assert_eq!(
        (stats.active, stats.idle, stats.requests),
        (0, 0, 0),
        "{stats:?}"
    );
    reactor.stop();
}

/// A server that accepts every connection, reads its request head and never answers; it
/// reports each request.
fn black_hole() -> (SocketAddr, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                read_head(&mut conn);
                let _ = tx.send(());
                // Held open until the client goes.
                let _ = conn.read(&mut [0; 64]);
            });
        }
    });
    (addr, rx)
}

#[test]
fn a_dropped_reactor_fails_every_pending_request() {
    let (addr, server) = black_hole();
    let mut reactor = ReactorThread::start(|| {
        let mut config = test_config();
        config.timeout = None;
        HttpClient::builder().agent_config(config)
    });
    let url = format!("http://{addr}/never");
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let request = reactor.client.get(&url);
            thread::spawn(move || {
                let start = Instant::now();
                let result = if i % 2 == 0 {
                    block_on_for(request.fetch(), BOUND * 4).expect("future never woken")
                } else {
                    request.fetch_blocking()
                };
                (result, start.elapsed())
            })
        })
        .collect();
    // At least one request is on the wire; the others are on the wire or queued.
    server.recv_timeout(BOUND).unwrap();
    thread::sleep(Duration::from_millis(100));

    let stopped = Instant::now();
    reactor.stop_now();
    for w in waiters {
        let (result, _) = w.join().unwrap();
        let e = result.unwrap_err();
        assert_eq!(e.cause(), &Cause::AgentClosed, "{e}");
        assert_eq!(e.url(), Some(url.as_str()));
    }
    assert!(stopped.elapsed() < BOUND, "{:?}", stopped.elapsed());

    // Later requests fail at once, both ways.
    let e = reactor.client.get(&url).fetch_blocking().unwrap_err();
    assert_eq!(
        (e.phase(), e.cause()),
        (Phase::RequestNotSent, &Cause::AgentClosed)
    );
    let e = block_on_for(reactor.client.get(&url).fetch(), BOUND)
        .expect("a request on a gone reactor must not wait")
        .unwrap_err();
    assert_eq!(
        (e.phase(), e.cause()),
        (Phase::RequestNotSent, &Cause::AgentClosed)
    );
}

#[test]
fn a_blocking_wait_on_the_reactor_thread_panics_instead_of_hanging() {
    let reactor = ReactorThread::with_test_config();
    let client = reactor.client.clone();
    let (tx, rx) = mpsc::channel();
    reactor
        .client
        .with_client(move |_, _| {
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                client.get("http://127.0.0.1:1/").fetch_blocking()
            }));
            let _ = tx.send(waited.is_err());
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(BOUND), Ok(true));
    reactor.stop();
}
