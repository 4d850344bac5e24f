//! The reactor driven by a host loop that waits on its descriptor: an edge-triggered host (an
//! outer mio `Poll` with the descriptor registered through `SourceFd`) and a level-triggered one
//! (`poll(2)`). The host follows the contract in the reactor's docs: it waits at most
//! `Reactor::timeout()`, then calls `Reactor::dispatch()`. Every loop is bounded in wake-ups
//! and in time.
#![cfg(unix)]

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::event::{PollFd, PollFlags, Timespec};
use support::servers::Nginx;
use weft::futures::{AsyncRequest, Bridge, FetchFuture};
use weft::{FullResponse, HttpClient, Reactor};

/// Longest any drive may last before the test fails.
const LIMIT: Duration = Duration::from_secs(10);
/// Most host wake-ups any drive may take: a loop that spins fails on this.
const MAX_WAKEUPS: usize = 1_000;
const WEFT: Token = Token(7);

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An outer mio `Poll`: epoll, edge-triggered.
    Edge,
    /// `poll(2)`: level-triggered.
    Level,
}

const KINDS: [Kind; 2] = [Kind::Edge, Kind::Level];

/// The application's loop, with the reactor's descriptor in it.
struct Host {
    outer: Option<(Poll, Events)>,
    /// Waits that returned.
    wakeups: usize,
    /// Waits that returned with the reactor's descriptor readable.
    readable: usize,
}

impl Host {
    fn new(kind: Kind, reactor: &Reactor) -> Host {
        let outer = match kind {
            Kind::Edge => {
                let poll = Poll::new().unwrap();
                let fd = reactor.as_raw_fd();
                poll.registry()
                    .register(&mut SourceFd(&fd), WEFT, Interest::READABLE)
                    .unwrap();
                Some((poll, Events::with_capacity(16)))
            }
            Kind::Level => None,
        };
        Host {
            outer,
            wakeups: 0,
            readable: 0,
        }
    }

    /// One wait of the host: at most `reactor.timeout()`, and at most `cap`. Returns whether
    /// the reactor's descriptor was reported readable.
    fn wait(&mut self, reactor: &Reactor, cap: Duration) -> bool {
        let timeout = reactor.timeout().map_or(cap, |t| t.min(cap));
        let readable = match &mut self.outer {
            Some((poll, events)) => {
                poll.poll(events, Some(timeout)).unwrap();
                events.iter().any(|e| e.token() == WEFT && e.is_readable())
            }
            None => {
                let mut fds = [PollFd::new(reactor, PollFlags::IN)];
                let timeout = Timespec::try_from(timeout).unwrap();
                rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
                fds[0].revents().contains(PollFlags::IN)
            }
        };
        self.wakeups += 1;
        self.readable += usize::from(readable);
        readable
    }

    /// Waits and dispatches, as the contract says, until `done` or a limit; returns whether
    /// `done` held.
    fn drive(&mut self, reactor: &mut Reactor, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + LIMIT;
        while !done() {
            if Instant::now() >= deadline || self.wakeups >= MAX_WAKEUPS {
                return false;
            }
            self.wait(reactor, deadline.saturating_duration_since(Instant::now()));
            reactor.dispatch().unwrap();
        }
        true
    }
}

type Results = Rc<RefCell<Vec<Result<FullResponse, weft::Error>>>>;

/// Starts a GET of `url` on `client`, its outcome pushed onto `results`.
fn fetch(reactor: &mut Reactor, client: &HttpClient, url: &str, results: &Results) {
    let results = results.clone();
    client
        .get(url)
        .fetch(reactor.ctx(), move |_, r| results.borrow_mut().push(r));
}

/// A request to nginx completes, driven only by the host's wake-ups and `dispatch`.
#[test]
fn socket_readiness_wakes_the_host() {
    let nginx = Nginx::start();
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        let client = HttpClient::new(reactor.ctx());
        let results = Results::default();
        fetch(
            &mut reactor,
            &client,
            &nginx.http_url("/hello.txt"),
            &results,
        );
        assert!(
            host.drive(&mut reactor, || !results.borrow().is_empty()),
            "{kind:?}: no response after {} wake-ups",
            host.wakeups
        );
        let r = results.borrow_mut().pop().unwrap().unwrap();
        assert_eq!(
            (r.code, &r.body[..]),
            (200, &b"hello world\n"[..]),
            "{kind:?}"
        );
        assert!(host.readable >= 1, "{kind:?}: never readable");
        assert!(host.wakeups < 50, "{kind:?}: {} wake-ups", host.wakeups);
    }
}

/// While a response is 300 ms away the host sleeps: a handful of wake-ups, not a spin.
#[test]
fn waiting_for_a_slow_response_does_not_spin() {
    let nginx = Nginx::start();
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        let client = HttpClient::new(reactor.ctx());
        let results = Results::default();
        let started = Instant::now();
        fetch(
            &mut reactor,
            &client,
            &nginx.http_url("/slow?s=0.3"),
            &results,
        );
        assert!(host.drive(&mut reactor, || !results.borrow().is_empty()));
        let r = results.borrow_mut().pop().unwrap().unwrap();
        assert_eq!((r.code, &r.body[..]), (200, &b"slow\n"[..]), "{kind:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(host.wakeups < 30, "{kind:?}: {} wake-ups", host.wakeups);
    }
}

/// Many requests at once: an edge-triggered host that lost a readiness edge would hang here.
#[test]
fn fifty_concurrent_requests_complete_under_either_host() {
    let nginx = Nginx::start();
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        let client = HttpClient::new(reactor.ctx());
        let results = Results::default();
        for i in 0..50 {
            let path = if i % 5 == 0 { "/big.bin" } else { "/hello.txt" };
            fetch(&mut reactor, &client, &nginx.http_url(path), &results);
        }
        assert!(
            host.drive(&mut reactor, || results.borrow().len() == 50),
            "{kind:?}: {} of 50 after {} wake-ups",
            results.borrow().len(),
            host.wakeups
        );
        for r in results.borrow_mut().drain(..) {
            assert_eq!(r.unwrap().code, 200, "{kind:?}");
        }
    }
}

/// Timers are not descriptors: a host that bounds its wait by `timeout()` (the next deadline)
/// fires the timer on time, after a few wake-ups.
#[test]
fn a_due_timer_fires_when_the_host_honours_the_deadline() {
    let delay = Duration::from_millis(150);
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        let fired = Rc::new(Cell::new(None));
        let f = fired.clone();
        let started = Instant::now();
        reactor
            .ctx()
            .call_later(delay, move |_| f.set(Some(Instant::now())));
        let deadline = reactor.next_deadline().unwrap();
        let wait = reactor.timeout().unwrap();
        assert!(wait <= delay && wait > delay / 2, "{wait:?}");
        assert!(host.drive(&mut reactor, || fired.get().is_some()));
        let at = fired.get().unwrap();
        assert!(at >= deadline, "{kind:?}: fired early");
        let late = at - deadline;
        assert!(late < Duration::from_millis(100), "{kind:?}: {late:?} late");
        assert!(started.elapsed() >= delay);
        // One wait for the deadline, plus a few if the host's clock rounds it down.
        assert!(host.wakeups <= 5, "{kind:?}: {} wake-ups", host.wakeups);
        assert_eq!(reactor.timeout(), None, "nothing left to wait for");
    }
}

/// A call from another thread makes the descriptor readable; `dispatch` runs it; after that
/// the descriptor is quiet again.
#[test]
fn a_remote_call_from_another_thread_wakes_the_host() {
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        assert_eq!(reactor.timeout(), None, "{kind:?}: an idle reactor sleeps");
        let remote = reactor.remote();
        let started = Instant::now();
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            remote.call(|ctx| ctx.stop()).unwrap();
        });
        let readable = host.wait(&reactor, LIMIT);
        let waited = started.elapsed();
        assert!(
            readable,
            "{kind:?}: woke after {waited:?} without readiness"
        );
        assert!(waited >= Duration::from_millis(90), "{kind:?}: {waited:?}");
        assert!(waited < LIMIT / 2, "{kind:?}: {waited:?}");
        worker.join().unwrap();
        if let Kind::Level = kind {
            // Level-triggered: still readable until the reactor handles it.
            assert!(host.wait(&reactor, Duration::ZERO), "{kind:?}");
        }
        assert!(!reactor.is_stopped());
        assert!(reactor.dispatch().unwrap() >= 1, "{kind:?}");
        assert!(reactor.is_stopped(), "{kind:?}: the call did not run");
        // Drained: neither kind of host sees the descriptor readable now.
        assert!(
            !host.wait(&reactor, Duration::ZERO),
            "{kind:?}: still readable"
        );
        assert_eq!(reactor.dispatch().unwrap(), 0, "{kind:?}: nothing left");
    }
}

/// `dispatch` never blocks, even with nothing ready and a timer far away.
#[test]
fn dispatch_with_nothing_ready_returns_at_once() {
    let mut reactor = Reactor::new().unwrap();
    reactor.ctx().call_later(Duration::from_secs(60), |_| {});
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(reactor.dispatch().unwrap(), 0);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(reactor.timeout().unwrap() > Duration::from_secs(50));
}

/// Counts the connections made and the bytes received on them.
struct Tally(Rc<Cell<(usize, usize)>>);

impl weft::reactor::Protocol for Tally {
    fn connection_made(&mut self, _: &mut weft::Ctx, _: weft::reactor::ConnId) {
        let (made, bytes) = self.0.get();
        self.0.set((made + 1, bytes));
    }
    fn data_received(&mut self, _: &mut weft::Ctx, _: weft::reactor::ConnId, data: &[u8]) {
        let (made, bytes) = self.0.get();
        self.0.set((made, bytes + data.len()));
    }
}

/// More sockets ready at once than one round takes from the descriptor (256): a single
/// `dispatch` runs rounds until one comes back short, so every socket is read.
#[test]
fn dispatch_reads_more_ready_sockets_than_one_round_holds() {
    use std::io::Write;
    const CONNS: usize = 300;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut reactor = Reactor::new().unwrap();
    let tally = Rc::new(Cell::new((0, 0)));
    let mut servers = Vec::new();
    let deadline = Instant::now() + LIMIT;
    listener.set_nonblocking(true).unwrap();
    // In batches of 50: the listener's backlog (128) must not overflow.
    for batch in 1..=CONNS / 50 {
        for _ in 0..50 {
            let options = weft::reactor::ConnectOptions::default();
            let proto = Box::new(Tally(tally.clone()));
            reactor.ctx().connect_tcp("127.0.0.1", port, options, proto);
        }
        while (servers.len() < batch * 50 || tally.get().0 < batch * 50)
            && Instant::now() < deadline
        {
            reactor.turn(Some(Duration::from_millis(5))).unwrap();
            while let Ok((sock, _)) = listener.accept() {
                servers.push(sock);
            }
        }
    }
    assert_eq!((servers.len(), tally.get().0), (CONNS, CONNS));
    for sock in &mut servers {
        sock.write_all(b"x").unwrap();
    }
    // Loopback delivers at once; give the kernel a moment all the same.
    std::thread::sleep(Duration::from_millis(100));
    let handled = reactor.dispatch().unwrap();
    assert_eq!(
        tally.get().1,
        CONNS,
        "every ready socket read by one dispatch"
    );
    assert!(handled >= CONNS, "{handled} events handled");
    assert_eq!(reactor.timeout(), None, "nothing left queued");
}

/// Re-arms a zero-delay timer `left` more times: work that never lets a round come back empty.
fn chain(ctx: &mut weft::Ctx, left: u32, count: Rc<Cell<u32>>) {
    count.set(count.get() + 1);
    if left > 0 {
        ctx.call_later(Duration::ZERO, move |ctx| chain(ctx, left - 1, count));
    }
}

/// `dispatch` stops after its round limit when work keeps coming (fairness to the host), and
/// then `timeout()` is zero so that the host comes straight back; the work still completes.
#[test]
fn dispatch_yields_after_its_round_limit_and_timeout_says_come_back() {
    for kind in KINDS {
        let mut reactor = Reactor::new().unwrap();
        let mut host = Host::new(kind, &reactor);
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        reactor
            .ctx()
            .call_later(Duration::ZERO, move |ctx| chain(ctx, 99, c));
        let handled = reactor.dispatch().unwrap();
        // One timer per round (a zero-delay timer set by a timer waits for the next round),
        // 16 rounds.
        assert_eq!((handled, count.get()), (16, 16), "{kind:?}");
        assert_eq!(reactor.timeout(), Some(Duration::ZERO), "{kind:?}");
        assert!(host.drive(&mut reactor, || count.get() == 100), "{kind:?}");
        // Every wait was a zero one: no sleeping while work was queued.
        assert!(host.wakeups <= 100, "{kind:?}: {} wake-ups", host.wakeups);
        reactor.dispatch().unwrap();
        assert_eq!(reactor.timeout(), None, "{kind:?}");
    }
}

/// A waker that counts its wake-ups.
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with `waker`.
fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Option<F::Output> {
    match Pin::new(future).poll(&mut Context::from_waker(waker)) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// What the hand-over tests need: a reactor, a host of `kind` around it, a client, a bridge,
/// and a future fetching nginx's `/hello.txt` (not yet polled).
fn futures_setup(
    kind: Kind,
    nginx: &Nginx,
) -> (Reactor, Host, Pin<Box<FetchFuture>>, Arc<Counting>) {
    let mut reactor = Reactor::new().unwrap();
    let host = Host::new(kind, &reactor);
    let client = HttpClient::new(reactor.ctx());
    let bridge = Bridge::new(&reactor);
    let request = Box::pin(
        client
            .get(nginx.http_url("/hello.txt"))
            .fetch_async(&bridge),
    );
    (
        reactor,
        host,
        request,
        Arc::new(Counting(AtomicUsize::new(0))),
    )
}

/// Drives `reactor` through `host` until `future` is ready.
fn drive_to_end<F: Future + Unpin>(
    host: &mut Host,
    reactor: &mut Reactor,
    future: &mut F,
) -> F::Output {
    let mut out = None;
    let done = || {
        if out.is_none() {
            out = poll_once(future, Waker::noop());
        }
        out.is_some()
    };
    assert!(
        host.drive(reactor, done),
        "not ready after {} wake-ups",
        host.wakeups
    );
    out.unwrap()
}

/// A future handing a request over to the reactor wakes the task waiting in `work_queued`,
/// not the descriptor (no system call); `run_queued` issues the request without polling,
/// and the host's loop completes it.
#[test]
fn handed_over_work_wakes_the_waiting_task_not_the_descriptor() {
    let nginx = Nginx::start();
    for kind in KINDS {
        let (mut reactor, mut host, mut request, counting) = futures_setup(kind, &nginx);
        let driver = Waker::from(counting.clone());
        let mut queued = reactor.work_queued();
        assert!(poll_once(&mut queued, &driver).is_none(), "{kind:?}");
        assert!(poll_once(&mut request, Waker::noop()).is_none(), "{kind:?}");
        assert_eq!(counting.0.load(Ordering::SeqCst), 1, "{kind:?}: not woken");
        assert!(poll_once(&mut queued, &driver).is_some(), "{kind:?}");
        drop(queued);
        assert!(
            !host.wait(&reactor, Duration::ZERO),
            "{kind:?}: descriptor woken"
        );

        assert_eq!(reactor.run_queued(), 1, "{kind:?}");
        assert_eq!(reactor.run_queued(), 0, "{kind:?}: ran twice");
        let page = drive_to_end(&mut host, &mut reactor, &mut request).unwrap();
        assert_eq!((page.code, &page.body[..]), (200, &b"hello world\n"[..]));
        assert_eq!(
            counting.0.load(Ordering::SeqCst),
            1,
            "{kind:?}: woken again"
        );
    }
}

/// With no task waiting in `work_queued` (none was, or its future was dropped), handed-over
/// work makes the descriptor readable, so a host that waits on nothing else still wakes.
#[test]
fn handed_over_work_makes_the_descriptor_readable_when_no_task_waits() {
    let nginx = Nginx::start();
    for dropped_waiter in [false, true] {
        for kind in KINDS {
            let (mut reactor, mut host, mut request, counting) = futures_setup(kind, &nginx);
            if dropped_waiter {
                let mut queued = reactor.work_queued();
                assert!(poll_once(&mut queued, &Waker::from(counting.clone())).is_none());
            }
            assert!(poll_once(&mut request, Waker::noop()).is_none());
            assert_eq!(counting.0.load(Ordering::SeqCst), 0, "{kind:?}");
            assert_eq!(reactor.timeout(), Some(Duration::ZERO), "{kind:?}");
            assert!(
                host.wait(&reactor, Duration::ZERO),
                "{kind:?} (waiter dropped: {dropped_waiter}): descriptor not readable"
            );
            let page = drive_to_end(&mut host, &mut reactor, &mut request).unwrap();
            assert_eq!(page.code, 200, "{kind:?}");
        }
    }
}
