//! Drives a request through any `HttpAgent` (a wrapper) and records its outcome, like
//! `scripted::issue` does for a bare Agent.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{HttpAgent, PreviousResponse, Request, RequestHandle};
use weft::reactor::Reactor;

use super::scripted::{Outcome, Recorder, Slot, finished, turn_until};

/// An outcome plus the response's history.
#[derive(Debug, Clone, Default)]
pub struct Wrapped {
    pub out: Outcome,
    pub history: Vec<PreviousResponse>,
}

/// Issues `req` through `agent`; the body is streamed into the slot.
pub fn issue_via(
    reactor: &mut Reactor,
    agent: &impl HttpAgent,
    req: Request,
) -> (Slot, Rc<RefCell<Vec<PreviousResponse>>>, RequestHandle) {
    let slot: Slot = Rc::new(RefCell::new(Outcome::default()));
    let hist = Rc::new(RefCell::new(Vec::new()));
    let (s, h) = (slot.clone(), hist.clone());
    let handle = agent.request(
        reactor.ctx(),
        req,
        Box::new(move |ctx, r| match r {
            Ok(resp) => {
                {
                    let mut o = s.borrow_mut();
                    o.status = Some(resp.code);
                    o.headers = resp.headers.clone();
                    o.timing = Some(resp.timing);
                }
                *h.borrow_mut() = resp.history.clone();
                resp.deliver_body(ctx, Recorder { out: s.clone() });
            }
            Err(e) => s.borrow_mut().result = Some(Err(e)),
        }),
    );
    (slot, hist, handle)
}

/// Runs `req` through `agent` to the end of its body (15 s at most).
pub fn run_via(reactor: &mut Reactor, agent: &impl HttpAgent, req: Request) -> Wrapped {
    let (slot, hist, _) = issue_via(reactor, agent, req);
    turn_until(reactor, Duration::from_secs(15), || finished(&slot));
    for _ in 0..3 {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let out = slot.borrow().clone();
    let history = hist.borrow().clone();
    Wrapped { out, history }
}

/// The request heads a scripted server saw, as text.
pub fn heads(requests: &[(usize, Vec<u8>)]) -> Vec<String> {
    requests
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// The value of header `name` in a raw request, if present (case-insensitive).
pub fn header_of(raw: &str, name: &str) -> Option<String> {
    raw.split("\r\n\r\n").next()?.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
