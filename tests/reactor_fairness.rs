//! Fairness between connections: a connection with more queued than the reactor delivers
//! per readiness event (1 MiB) yields after about that much, and another ready connection is
//! served before it reads on. The peers are threads on Unix sockets; the bulk peer's send
//! buffer is set large (a Unix stream queues what its sender's buffer holds), so the whole
//! burst waits in the kernel before the reactor turns.

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::SockRef;
use support::reactor::{Ev, LoggingProtocol, endings, log, non_data, turn_for, turn_until};
use support::servers::TestDir;
use weft::reactor::{ConnectOptions, Reactor};

const LIMIT: Duration = Duration::from_secs(10);
/// What the reactor delivers per readiness event before it yields (checked between reads).
const CAP: usize = 1024 * 1024;
/// The most one read takes (the reactor's shared buffer).
const WIDE: usize = 256 * 1024;
/// Queued on the bulk connection at once: well over the cap, and few enough reads (at most
/// 256 KiB each) that the reads-per-event limit (32) alone would not make it yield.
const BURST: usize = 3 * 1024 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A peer on a socket: once told, it queues the bytes it is given without blocking and says
/// how many the kernel took; then it waits for the client to close.
struct Peer {
    path: PathBuf,
    go: Sender<Vec<u8>>,
    sent: Receiver<io::Result<usize>>,
    thread: JoinHandle<()>,
}

/// Starts a [`Peer`] on socket `name` in `dir`.
fn peer(dir: &TestDir, name: &str) -> Peer {
    let path = dir.join(name);
    let listener = UnixListener::bind(&path).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<Vec<u8>>();
    let (sent_tx, sent_rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        // Capped by net.core.wmem_max (then doubled by the kernel).
        SockRef::from(&sock)
            .set_send_buffer_size(4 * 1024 * 1024)
            .unwrap();
        let Ok(bytes) = go_rx.recv_timeout(LIMIT) else {
            return;
        };
        // Without blocking: a buffer too small for the burst fails the test, not hangs it.
        sock.set_nonblocking(true).unwrap();
        let mut sent = 0;
        let result = loop {
            if sent == bytes.len() {
                break Ok(sent);
            }
            match sock.write(&bytes[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(sent),
                Err(e) => break Err(e),
            }
        };
        let _ = sent_tx.send(result);
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        // Until the client closes (bounded by the read timeout).
        let _ = sock.read(&mut [0u8; 1]);
    });
    Peer {
        path,
        go: go_tx,
        sent: sent_rx,
        thread: handle,
    }
}

/// Sends `bytes` through `peer` and fails the test unless the kernel queued them all.
fn queue(peer: &Peer, bytes: Vec<u8>, what: &str) {
    let len = bytes.len();
    peer.go.send(bytes).unwrap();
    let queued = peer.sent.recv_timeout(LIMIT).unwrap().unwrap();
    assert_eq!(
        queued, len,
        "{what}: the kernel queued {queued} of {len} bytes; the bulk peer needs a send buffer \
         of 4 MiB (net.core.wmem_max >= 4194304; scripts/install-test-deps sets it)"
    );
}

#[test]
fn a_connection_with_more_than_the_cap_queued_lets_another_be_served_between_its_reads() {
    let dir = TestDir::new("fairness");
    let bulk_peer = peer(&dir, "bulk.sock");
    let small_peer = peer(&dir, "small.sock");
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    // Each delivery in order: which connection, and how many bytes.
    let deliveries: Rc<RefCell<Vec<(&'static str, usize)>>> = Rc::default();
    let bulk_bytes: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (d, b) = (deliveries.clone(), bulk_bytes.clone());
    let bulk = reactor.ctx().connect_unix(
        &bulk_peer.path,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .quiet()
            .data(move |_, _, data| {
                d.borrow_mut().push(("bulk", data.len()));
                b.borrow_mut().extend_from_slice(data);
            })
            .boxed(),
    );
    let d = deliveries.clone();
    let small = reactor.ctx().connect_unix(
        &small_peer.path,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .quiet()
            .data(move |_, _, data| d.borrow_mut().push(("small", data.len())))
            .boxed(),
    );
    let made = |_: &mut Reactor| {
        let events = non_data(&client_log);
        events.iter().filter(|e| matches!(e, Ev::Made(_))).count() == 2
    };
    assert!(turn_until(&mut reactor, LIMIT, made));
    // Let both connections settle (connect events spent) before anything is queued.
    turn_for(&mut reactor, Duration::from_millis(50));

    // Both are readable when the reactor next polls, the bulk one first.
    queue(&bulk_peer, pattern(BURST), "bulk");
    queue(&small_peer, b"small".to_vec(), "small");
    let all_read = |_: &mut Reactor| {
        bulk_bytes.borrow().len() == BURST
            && deliveries.borrow().iter().any(|(who, _)| *who == "small")
    };
    assert!(turn_until(&mut reactor, LIMIT, all_read));

    let deliveries = deliveries.borrow();
    let small_at = deliveries
        .iter()
        .position(|(who, _)| *who == "small")
        .unwrap();
    let before: usize = deliveries[..small_at].iter().map(|(_, n)| n).sum();
    assert!(
        (CAP..CAP + WIDE).contains(&before),
        "bulk bytes delivered before the other connection was served: {before} \
         (deliveries {deliveries:?})"
    );
    assert!(
        deliveries[small_at + 1..]
            .iter()
            .any(|(who, _)| *who == "bulk"),
        "the bulk connection reads on after the other was served: {deliveries:?}"
    );
    assert!(
        *bulk_bytes.borrow() == pattern(BURST),
        "the bulk bytes arrive whole and in order"
    );

    reactor.ctx().lose_connection(bulk);
    reactor.ctx().lose_connection(small);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 2));
    bulk_peer.thread.join().unwrap();
    small_peer.thread.join().unwrap();
}
