//! How the reactor reads: a narrow first read after each write, wide reads for a streaming
//! body, and a peer's close reported while paused still seen after resuming. The peer is a
//! plain thread on 127.0.0.1.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use support::reactor::*;
use weft::reactor::{ConnectOptions, Disconnect, Reactor};

const LIMIT: Duration = Duration::from_secs(10);
/// The first read after a write takes at most this much.
const NARROW: usize = 16 * 1024;
/// No read takes more than this (the shared buffer).
const WIDE: usize = 256 * 1024;
const BODY: usize = 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// A peer that answers each one-byte request with `BODY` bytes, `answers` times, then waits
/// for the client to close.
fn bulk_peer(answers: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        let mut byte = [0u8; 1];
        for seed in 0..answers {
            sock.read_exact(&mut byte).unwrap();
            sock.write_all(&pattern(BODY, seed as u8)).unwrap();
        }
        // Until the client closes (bounded by the read timeout).
        let _ = sock.read(&mut byte);
    });
    (port, peer)
}

#[test]
fn a_body_is_read_wide_after_a_narrow_first_read_and_a_write_narrows_again() {
    let (port, peer) = bulk_peer(2);
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    // Sizes of the pieces, per answer.
    let pieces: Rc<RefCell<Vec<Vec<usize>>>> = Rc::new(RefCell::new(vec![Vec::new()]));
    let got: Rc<RefCell<Vec<u8>>> = Rc::new(RefCell::new(Vec::new()));
    let (p, g) = (pieces.clone(), got.clone());
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .quiet()
            .made(|ctx, conn| ctx.write(conn, b"1"))
            .data(move |ctx, conn, data| {
                let mut p = p.borrow_mut();
                p.last_mut().unwrap().push(data.len());
                g.borrow_mut().extend_from_slice(data);
                // Paused after the first piece: the peer fills the kernel's buffer meanwhile.
                if p.last().unwrap().len() == 1 {
                    ctx.pause_reading(conn);
                }
                if g.borrow().len() == BODY && p.len() == 1 {
                    p.push(Vec::new());
                    ctx.write(conn, b"2");
                }
            })
            .boxed(),
    );
    for answer in 0..2 {
        assert!(turn_until(&mut reactor, LIMIT, |_| pieces.borrow()[answer]
            .len()
            == 1));
        turn_for(&mut reactor, Duration::from_millis(200));
        reactor.ctx().resume_reading(conn);
        let want = (answer + 1) * BODY;
        assert!(turn_until(&mut reactor, LIMIT, |_| got.borrow().len() >= want));
    }
    let pieces = pieces.borrow();
    for (answer, sizes) in pieces.iter().enumerate() {
        assert!(
            sizes[0] <= NARROW,
            "answer {answer}: first read {}",
            sizes[0]
        );
        let widest = sizes.iter().copied().max().unwrap();
        assert!(widest <= WIDE, "answer {answer}: a read of {widest}");
        assert!(
            widest > NARROW,
            "answer {answer}: no wide read in {sizes:?}"
        );
    }
    let mut want = pattern(BODY, 0);
    want.extend_from_slice(&pattern(BODY, 1));
    assert!(*got.borrow() == want, "the bytes arrive whole and in order");
    reactor.ctx().lose_connection(conn);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    peer.join().unwrap();
}

/// The peer's close arrives while the connection is paused (its readiness event is spent
/// then); after resuming, the bytes before it and the close itself are still delivered.
fn close_while_paused_is_seen_after_resume(tail: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let tail_bytes = pattern(tail, 7);
    let peer_tail = tail_bytes.clone();
    let peer = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.write_all(b"a").unwrap();
        // Until the client has the first byte and paused.
        let mut byte = [0u8; 1];
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        sock.read_exact(&mut byte).unwrap();
        sock.write_all(&peer_tail).unwrap();
        sock.shutdown(Shutdown::Write).unwrap();
        sent_tx.send(()).unwrap();
        let _ = sock.read(&mut byte);
    });
    let mut reactor = Reactor::new().unwrap();
    let client_log = log();
    let conn = reactor.ctx().connect_tcp(
        "127.0.0.1",
        port,
        ConnectOptions::default(),
        LoggingProtocol::new(&client_log)
            .data(|ctx, conn, data| {
                if data == b"a" {
                    ctx.pause_reading(conn);
                    ctx.write(conn, b"k");
                }
            })
            .boxed(),
    );
    assert!(turn_until(&mut reactor, LIMIT, |_| data_of(&client_log) == b"a"));
    sent_rx.recv_timeout(LIMIT).unwrap();
    // The close's readiness event comes and goes while paused.
    turn_for(&mut reactor, Duration::from_millis(200));
    assert_eq!(data_of(&client_log), b"a");
    reactor.ctx().resume_reading(conn);
    assert!(turn_until(&mut reactor, LIMIT, |_| endings(&client_log) == 1));
    let mut want = b"a".to_vec();
    want.extend_from_slice(&tail_bytes);
    assert!(data_of(&client_log) == want, "every byte before the close");
    let lost: Vec<Ev> = non_data(&client_log)
        .into_iter()
        .filter(|e| matches!(e, Ev::Lost(..)))
        .collect();
    assert_eq!(lost, vec![Ev::Lost(conn, Disconnect::PeerClosed)]);
    peer.join().unwrap();
}

#[test]
fn a_close_while_paused_is_seen_after_resume() {
    close_while_paused_is_seen_after_resume(3);
}

#[test]
fn a_close_after_more_than_a_narrow_read_while_paused_is_seen_after_resume() {
    // Small enough to sit in the kernel's receive buffer while paused.
    close_while_paused_is_seen_after_resume(NARROW * 5 / 2);
}
