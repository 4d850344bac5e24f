//! Helpers of the reactor and TLS tests that drive the reactor without an Agent:
//! [`LoggingProtocol`], which logs every event into a [`Log`] and runs optional closures,
//! [`Echo`], and the loop that turns the reactor until a condition holds.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use weft::reactor::{ConnId, Ctx, Disconnect, Protocol, Reactor, TransportError};

pub use super::scripted::turn_for;

/// What a [`LoggingProtocol`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Made(ConnId),
    Data(ConnId, Vec<u8>),
    Lost(ConnId, Disconnect),
    Failed(ConnId, TransportError),
    Drained(ConnId),
    TlsStarted(ConnId),
    Timer(u64),
    Msg(String),
}

/// A shared event log (tests are single-threaded: the reactor runs on the test thread).
pub type Log = Rc<RefCell<Vec<Ev>>>;

pub fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

type OnConn = Box<dyn FnMut(&mut Ctx, ConnId)>;
type OnData = Box<dyn FnMut(&mut Ctx, ConnId, &[u8])>;

/// A protocol that logs every event and runs optional closures.
pub struct LoggingProtocol {
    pub log: Log,
    pub on_made: Option<OnConn>,
    pub on_data: Option<OnData>,
    pub on_drained: Option<OnConn>,
    /// Log data events (turn off for bulk transfers).
    pub log_data: bool,
}

impl LoggingProtocol {
    pub fn new(log: &Log) -> Self {
        LoggingProtocol {
            log: log.clone(),
            on_made: None,
            on_data: None,
            on_drained: None,
            log_data: true,
        }
    }

    pub fn made(mut self, f: impl FnMut(&mut Ctx, ConnId) + 'static) -> Self {
        self.on_made = Some(Box::new(f));
        self
    }

    pub fn data(mut self, f: impl FnMut(&mut Ctx, ConnId, &[u8]) + 'static) -> Self {
        self.on_data = Some(Box::new(f));
        self
    }

    pub fn drained(mut self, f: impl FnMut(&mut Ctx, ConnId) + 'static) -> Self {
        self.on_drained = Some(Box::new(f));
        self
    }

    pub fn quiet(mut self) -> Self {
        self.log_data = false;
        self
    }

    pub fn boxed(self) -> Box<dyn Protocol> {
        Box::new(self)
    }
}

impl Protocol for LoggingProtocol {
    fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
        self.log.borrow_mut().push(Ev::Made(conn));
        if let Some(f) = self.on_made.as_mut() {
            f(ctx, conn);
        }
    }

    fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        if self.log_data {
            self.log.borrow_mut().push(Ev::Data(conn, data.to_vec()));
        }
        if let Some(f) = self.on_data.as_mut() {
            f(ctx, conn, data);
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx, conn: ConnId, reason: Disconnect) {
        self.log.borrow_mut().push(Ev::Lost(conn, reason));
    }

    fn connection_failed(&mut self, _ctx: &mut Ctx, conn: ConnId, error: TransportError) {
        self.log.borrow_mut().push(Ev::Failed(conn, error));
    }

    fn write_drained(&mut self, ctx: &mut Ctx, conn: ConnId) {
        self.log.borrow_mut().push(Ev::Drained(conn));
        if let Some(f) = self.on_drained.as_mut() {
            f(ctx, conn);
        }
    }

    fn tls_started(&mut self, _ctx: &mut Ctx, conn: ConnId) {
        self.log.borrow_mut().push(Ev::TlsStarted(conn));
    }

    fn timer_fired(&mut self, _ctx: &mut Ctx, tag: u64) {
        self.log.borrow_mut().push(Ev::Timer(tag));
    }

    fn message(&mut self, _ctx: &mut Ctx, msg: Box<dyn std::any::Any>) {
        let text = match msg.downcast::<String>() {
            Ok(s) => *s,
            Err(_) => "<other>".to_string(),
        };
        self.log.borrow_mut().push(Ev::Msg(text));
    }
}

/// Echoes every byte back.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        ctx.write(conn, data);
    }
}

/// Turns the reactor (10 ms at most per turn) until `done` or `limit` passes; returns `done`.
/// [`super::scripted::turn_until`] is this loop, failing the test on timeout.
pub fn turn_until(
    reactor: &mut Reactor,
    limit: Duration,
    mut done: impl FnMut(&mut Reactor) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(reactor) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
}

/// The concatenated data bytes in a log.
pub fn data_of(log: &Log) -> Vec<u8> {
    log.borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Data(_, d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Events that are not data.
pub fn non_data(log: &Log) -> Vec<Ev> {
    log.borrow()
        .iter()
        .filter(|e| !matches!(e, Ev::Data(..)))
        .cloned()
        .collect()
}

/// How many ending events (`Lost` or `Failed`) the log holds.
pub fn endings(log: &Log) -> usize {
    log.borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Lost(..) | Ev::Failed(..)))
        .count()
}
