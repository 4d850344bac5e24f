//! Micro-benchmark of the Agent: one keep-alive GET through the whole client path (request
//! id, routing cache, pool, head encoding, the reactor's write and read, the protocol core,
//! the response object, body delivery, the connection's return to the pool), against a peer
//! in the same thread on the other end of a socket pair handed over by the reactor's
//! `Connector` (no TCP, no network stack, no other process).
//!
//! Two figures, so that the Agent's own share shows: `agent_keepalive_exchange` (the whole
//! exchange) and `socketpair_round_trip` (the same bytes written and read through the same
//! kind of socket pair and one `epoll_wait`, with no HTTP at all): the difference is the
//! cost of the Agent and the reactor's bookkeeping per request.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use weft::client::{BodyCtx, BodyEnd, BodyProtocol, Request};
use weft::{Agent, AgentConfig, Ctx, HttpAgent, Reactor};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// An IP literal: the connect goes straight to the connector, no resolver thread.
const URL: &str = "http://127.0.0.1:8080/";

/// Counts finished bodies.
struct Done(Rc<Cell<u64>>);

impl BodyProtocol for Done {
    fn data_received(&mut self, _: &mut BodyCtx<'_>, data: &[u8]) {
        black_box(data);
    }
    fn connection_lost(&mut self, _: &mut Ctx, reason: BodyEnd) {
        assert!(matches!(reason, BodyEnd::Done), "{reason:?}");
        self.0.set(self.0.get() + 1);
    }
}

/// The server side: reads a request head, answers with `RESPONSE`.
struct Peer {
    sock: UnixStream,
    buf: Vec<u8>,
}

impl Peer {
    /// Answers every complete request head read so far; returns how many.
    fn serve(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("peer: {e}"),
            }
        }
        let mut answered = 0;
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            self.buf.drain(..end + 4);
            self.sock.write_all(RESPONSE).expect("peer write");
            answered += 1;
        }
        answered
    }
}

/// A reactor and an agent whose connections go to an in-process peer.
struct Rig {
    reactor: Reactor,
    agent: Agent,
    peer: Rc<RefCell<Option<Peer>>>,
    done: Rc<Cell<u64>>,
}

impl Rig {
    fn new() -> Rig {
        let mut reactor = Reactor::new().expect("reactor");
        let peer: Rc<RefCell<Option<Peer>>> = Rc::default();
        let slot = peer.clone();
        reactor.ctx().set_connector(move |_: SocketAddr| {
            let (ours, theirs) = UnixStream::pair().ok()?;
            theirs.set_nonblocking(true).ok()?;
            *slot.borrow_mut() = Some(Peer {
                sock: theirs,
                buf: Vec::new(),
            });
            Some(Ok(ours))
        });
        let agent = Agent::new(reactor.ctx(), AgentConfig::default());
        let mut rig = Rig {
            reactor,
            agent,
            peer,
            done: Rc::default(),
        };
        rig.exchange(); // connect once: every measured exchange reuses the connection
        rig
    }

    /// One GET, served and read to its end.
    fn exchange(&mut self) {
        let before = self.done.get();
        let done = self.done.clone();
        self.agent.request(
            self.reactor.ctx(),
            Request::get(URL),
            Box::new(move |ctx, result| {
                result.expect("response").deliver_body(ctx, Done(done));
            }),
        );
        for _ in 0..1_000 {
            if self.done.get() > before {
                return;
            }
            self.reactor
                .turn(Some(Duration::from_millis(10)))
                .expect("turn");
            if let Some(peer) = self.peer.borrow_mut().as_mut() {
                peer.serve();
            }
        }
        panic!("no response after 1,000 turns");
    }
}

fn agent(c: &mut Criterion) {
    let mut rig = Rig::new();
    c.bench_function("agent_keepalive_exchange", |b| b.iter(|| rig.exchange()));
    let opened = Rc::new(Cell::new(0));
    let seen = opened.clone();
    rig.agent.stats(rig.reactor.ctx(), move |_, s| {
        seen.set(s.connections_opened)
    });
    rig.reactor.turn(Some(Duration::ZERO)).expect("turn");
    assert_eq!(
        opened.get(),
        1,
        "every exchange reused the first connection"
    );

    // The floor under it: the same bytes through a socket pair and a poll, no HTTP.
    let (mut client, mut server) = UnixStream::pair().expect("pair");
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: weft\r\n\r\n";
    let mut poll = mio::Poll::new().expect("poll");
    let mut events = mio::Events::with_capacity(8);
    client.set_nonblocking(true).expect("nonblocking");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&client);
    poll.registry()
        .register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(0),
            mio::Interest::READABLE,
        )
        .expect("register");
    let mut buf = [0u8; 4096];
    c.bench_function("socketpair_round_trip", |b| {
        b.iter(|| {
            client.write_all(request).expect("write");
            let n = server.read(&mut buf).expect("server read");
            server.write_all(RESPONSE).expect("server write");
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .expect("poll");
            let m = client.read(&mut buf).expect("client read");
            black_box((n, m));
        })
    });
}

criterion_group!(benches, agent);
criterion_main!(benches);
