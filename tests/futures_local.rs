//! The futures layer under tokio on one thread: a current-thread runtime, a `LocalSet`, and
//! the reactor driven by a local task. Awaited requests against nginx; cancellation by
//! dropping a future; a body stream's backpressure; a reactor dropped under pending futures.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::task::LocalSet;
use weft::client::{Cause, PoolStats};
use weft::futures::{AsyncRequest, AsyncResponse, BodyStream, Bridge, STREAM_BUFFER};
use weft::{HttpClient, Reactor};

use support::servers::Nginx;

/// A reactor shared by the test and the task that drives it (`None` once dropped).
type Shared = Rc<RefCell<Option<Reactor>>>;

/// Runs `test` in a `LocalSet` on a current-thread runtime, with a reactor driven by a local
/// task (`turn` with a 1 ms bound, then yield to the other tasks).
fn local<F, Fut>(test: F)
where
    F: FnOnce(Shared, HttpClient, Bridge) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut reactor = Reactor::new().unwrap();
    let client = HttpClient::new(reactor.ctx());
    let bridge = Bridge::new(&reactor);
    let shared: Shared = Rc::new(RefCell::new(Some(reactor)));
    let set = LocalSet::new();
    let driven = shared.clone();
    set.spawn_local(async move {
        loop {
            match driven.borrow_mut().as_mut() {
                Some(reactor) => reactor.turn(Some(Duration::from_millis(1))).unwrap(),
                None => return,
            }
            tokio::task::yield_now().await;
        }
    });
    let body = test(shared.clone(), client, bridge);
    runtime.block_on(set.run_until(async {
        tokio::time::timeout(Duration::from_secs(30), body)
            .await
            .expect("test timed out")
    }));
    drop(shared.borrow_mut().take());
}

/// The agent's pool counts, asked on the reactor.
async fn pool_stats(reactor: &Shared, client: &HttpClient) -> PoolStats {
    let got: Rc<Cell<Option<PoolStats>>> = Rc::default();
    let put = got.clone();
    let agent = client.pool().unwrap();
    agent.stats(reactor.borrow_mut().as_mut().unwrap().ctx(), move |_, s| {
        put.set(Some(s))
    });
    loop {
        if let Some(stats) = got.take() {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The next item of a stream.
async fn next(stream: &mut BodyStream) -> Option<Result<Vec<u8>, weft::Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Waits (yielding to the reactor) until `done` holds; panics after 5 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited too long: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn two_hundred_concurrent_awaited_requests_succeed() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/hello.txt");
    local(|reactor, client, bridge| async move {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let request = client.get(&url).fetch_async(&bridge);
                tokio::task::spawn_local(request)
            })
            .collect();
        for task in tasks {
            let response = task.await.unwrap().expect("request failed");
            assert_eq!(response.code, 200);
            assert_eq!(response.body, b"hello world\n");
        }
        // A streamed body, awaited chunk by chunk.
        let response = client
            .get(nginx.http_url("/big.bin"))
            .send_async(&bridge)
            .await
            .unwrap();
        let mut body = response.into_stream(&bridge);
        let mut got = Vec::new();
        while let Some(chunk) = next(&mut body).await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(got == support::servers::big_body(), "streamed body differs");
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!((stats.active, stats.queued, stats.requests), (0, 0, 0));
        assert!(
            stats.idle > 0,
            "keep-alive connections went back to the pool"
        );
    });
}

#[test]
fn fetch_into_async_reads_into_the_buffer_handed_in_and_clears_it() {
    let nginx = Nginx::start();
    local(|_reactor, client, bridge| async move {
        let stale = vec![b'x'; support::servers::big_body_len() + 1000];
        let (ptr, cap) = (stale.as_ptr(), stale.capacity());
        let r = client
            .get(nginx.http_url("/big.bin"))
            .fetch_into_async(&bridge, stale)
            .await
            .unwrap();
        assert!(r.body == support::servers::big_body(), "body differs");
        assert_eq!((r.body.as_ptr(), r.body.capacity()), (ptr, cap));
        // Handed back for a short body: the same memory, the old bytes gone.
        let r = client
            .get(nginx.http_url("/hello.txt"))
            .fetch_into_async(&bridge, r.body)
            .await
            .unwrap();
        assert_eq!(r.body, b"hello world\n");
        assert_eq!(r.body.as_ptr(), ptr);
    });
}

#[test]
fn fetch_into_async_refuses_a_declared_length_past_the_cap_whatever_the_buffer() {
    let (url, _got_request, _closed) =
        answering_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n0123456789");
    local(|_reactor, client, bridge| async move {
        let start = Instant::now();
        let e = client
            .get(&url)
            .max_body(1000)
            .fetch_into_async(&bridge, Vec::with_capacity(10_000))
            .await
            .unwrap_err();
        assert_eq!(e.cause(), &Cause::BodyTooLarge(1000), "{e}");
        assert_eq!(e.url(), Some(url.as_str()));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    });
}

/// A server that reads one request head, never answers, and reports when the client closed
/// the connection (`true`) or 10 s passed (`false`).
fn silent_server() -> (String, Arc<AtomicBool>, mpsc::Receiver<bool>) {
    answering_server(b"")
}

/// Like [`silent_server`], but writes `answer` once the request head is in (and then keeps
/// the connection open).
fn answering_server(answer: &'static [u8]) -> (String, Arc<AtomicBool>, mpsc::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let got_request = Arc::new(AtomicBool::new(false));
    let flag = got_request.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return tx.send(true).unwrap(),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(_) => return tx.send(false).unwrap(),
            }
            if !flag.load(Ordering::SeqCst) && head.windows(4).any(|w| w == b"\r\n\r\n") {
                conn.write_all(answer).unwrap();
                flag.store(true, Ordering::SeqCst);
            }
        }
    });
    (url, got_request, rx)
}

#[test]
fn a_dropped_future_cancels_its_request() {
    let (url, got_request, closed) = silent_server();
    local(|reactor, client, bridge| async move {
        let mut future = Box::pin(client.get(&url).send_async(&bridge));
        let start = Instant::now();
        while !got_request.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(5), "no request");
            tokio::select! {
                _ = &mut future => panic!("the silent server answered"),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!((stats.active, stats.requests), (1, 1));
        drop(future);
        until("the cancel", || closed.try_recv().is_ok_and(|c| c)).await;
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!(
            (stats.active, stats.idle, stats.queued, stats.requests),
            (0, 0, 0, 0),
            "nothing left in the pool: {stats:?}"
        );
    });
}

#[test]
fn a_future_dropped_with_its_response_in_closes_the_connection() {
    // The head, and only part of the body.
    let (url, got_request, closed) =
        answering_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome");
    local(|reactor, client, bridge| async move {
        let mut future = Box::pin(client.get(&url).send_async(&bridge));
        assert!(futures_poll(&mut future).is_none());
        until("the request", || got_request.load(Ordering::SeqCst)).await;
        // Time for the head to reach the future, which is not polled again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(future);
        until("the close", || closed.try_recv().is_ok_and(|c| c)).await;
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!(
            (stats.active, stats.idle, stats.requests),
            (0, 0, 0),
            "the connection is not kept: {stats:?}"
        );
    });
}

#[test]
fn a_truncated_body_ends_its_stream_with_the_error() {
    let (url, _got_request, _closed) = answering_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nsome",
    );
    local(|_reactor, client, bridge| async move {
        let response = client
            .get(&url)
            .read_timeout(Duration::from_millis(200))
            .send_async(&bridge)
            .await
            .unwrap();
        let mut body = response.into_stream(&bridge);
        assert_eq!(next(&mut body).await.unwrap().unwrap(), b"some");
        let e = next(&mut body).await.unwrap().unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(next(&mut body).await.is_none());
    });
}

#[test]
fn a_future_dropped_before_its_first_poll_sends_nothing() {
    let (url, got_request, _closed) = silent_server();
    local(|reactor, client, bridge| async move {
        drop(client.get(&url).send_async(&bridge));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!got_request.load(Ordering::SeqCst));
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!((stats.connections_opened, stats.requests), (0, 0));
    });
}

/// A server that answers one request with `len` bytes of body (Content-Length), written in
/// 16 KiB blocking writes; `written` counts what the kernel took, and the receiver gets
/// `true` once all is written, `false` if a write failed (the client closed).
fn big_server(len: u64) -> (String, Arc<AtomicU64>, mpsc::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        conn.write_all(head.as_bytes()).unwrap();
        let block = [b'x'; 16 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if conn.write_all(&block[..n]).is_err() {
                return tx.send(false).unwrap();
            }
            left -= n as u64;
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = conn.shutdown(Shutdown::Write);
        tx.send(true).unwrap();
    });
    (url, written, rx)
}

#[test]
fn an_unpolled_body_stream_pauses_the_socket_and_resumes_when_polled() {
    const LEN: u64 = 64 << 20;
    let (url, written, _end) = big_server(LEN);
    local(|_reactor, client, bridge| async move {
        let response = client.get(&url).send_async(&bridge).await.unwrap();
        assert_eq!(response.length, Some(LEN));
        let mut body = response.into_stream(&bridge);
        let mut received = next(&mut body).await.unwrap().unwrap().len() as u64;
        // Not polled for a while: the server's writes stop once the socket buffers are
        // full, and the stream holds a bounded amount.
        let mut last = written.load(Ordering::SeqCst);
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = written.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the server kept writing"
            );
            last = now;
        }
        assert!(
            last < LEN / 2,
            "the server wrote {last} of {LEN} bytes unread"
        );
        let held = body.buffered();
        assert!(
            held <= STREAM_BUFFER + 256 * 1024,
            "the stream holds {held} bytes"
        );
        // Polled again: everything arrives.
        while let Some(chunk) = next(&mut body).await {
            received += chunk.unwrap().len() as u64;
        }
        assert_eq!(received, LEN);
        assert_eq!(written.load(Ordering::SeqCst), LEN);
    });
}

#[test]
fn a_dropped_body_stream_stops_the_body() {
    const LEN: u64 = 64 << 20;
    let (url, written, end) = big_server(LEN);
    local(|reactor, client, bridge| async move {
        let response = client.get(&url).send_async(&bridge).await.unwrap();
        let mut body = response.into_stream(&bridge);
        next(&mut body).await.unwrap().unwrap();
        drop(body);
        // The server's writes fail once the client closed.
        until("the connection closed", || end.try_recv() == Ok(false)).await;
        assert!(written.load(Ordering::SeqCst) < LEN);
        let stats = pool_stats(&reactor, &client).await;
        assert_eq!((stats.active, stats.idle, stats.requests), (0, 0, 0));
    });
}

#[test]
fn a_dropped_reactor_wakes_pending_futures_with_an_error() {
    let (url, got_request, _closed) = silent_server();
    local(|reactor, client, bridge| async move {
        // One request in flight, one issued but not yet taken by the reactor.
        let in_flight = tokio::task::spawn_local(client.get(&url).fetch_async(&bridge));
        until("the request", || got_request.load(Ordering::SeqCst)).await;
        let mut queued = Box::pin(client.get(&url).send_async(&bridge));
        assert!(
            futures_poll(&mut queued).is_none(),
            "a request cannot be answered before the reactor turns"
        );
        drop(reactor.borrow_mut().take());
        let e = in_flight.await.unwrap().unwrap_err();
        assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
        let e = queued.await.unwrap_err();
        assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
        // Later requests fail at once.
        let e = client.get(&url).fetch_async(&bridge).await.unwrap_err();
        assert!(matches!(e.cause(), Cause::AgentClosed), "{e}");
    });
}

/// Polls a future once with a no-op waker.
fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match Pin::new(future).poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}
