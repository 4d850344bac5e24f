//! What a wrapper keeps of the caller's request to make its successive requests from
//! (redirect hops, authentication retries, retried attempts): the [`RequestParts`], and in
//! them the body shared by every request, so that each can send it again after a rewind.
//! Each request gets its own producer over the shared body; making the next one kills the
//! ones before, so an older request that is still being torn down never reads on from the
//! rewound start.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::client::producer::{BodyProducer, BodySink, Produce};
use crate::client::request::{Request, Timeouts};
use crate::proto::Headers;

/// The caller's request taken apart, all but its URL (each wrapper keeps that in the form it
/// needs): the wrapper edits these parts between requests and builds each request from them
/// with [`RequestParts::request`].
pub(crate) struct RequestParts {
    pub(crate) method: Cow<'static, str>,
    pub(crate) headers: Headers,
    pub(crate) body: Option<ReplayBody>,
    /// The caller's timeouts, with the inner agent's default total: one deadline covers
    /// every request made from these parts.
    pub(crate) timeouts: Timeouts,
    /// The caller's Unix socket, kept by every request (as curl's `--unix-socket`).
    pub(crate) unix_socket: Option<Rc<Path>>,
    /// Why an earlier request's body fails once a later request took it over.
    taken: &'static str,
}

impl RequestParts {
    /// Takes `request` apart; returns its URL with the parts. `default_total`: the inner
    /// agent's total timeout, for a caller that set none; `taken`: what an earlier request's
    /// body says when asked for more after a later request took it over.
    pub(crate) fn capture(
        request: Request,
        default_total: Option<Duration>,
        taken: &'static str,
    ) -> (Rc<str>, RequestParts) {
        let parts = RequestParts {
            method: request.method,
            headers: request.headers,
            body: request.body.map(ReplayBody::new),
            timeouts: request.timeouts.with_default_total(default_total),
            unix_socket: request.unix_socket,
            taken,
        };
        (request.url, parts)
    }

    /// The next request, to `url` with `timeouts` (the share of [`Self::timeouts`] left
    /// for it); it takes the body over from the requests before.
    pub(crate) fn request(&self, url: Rc<str>, timeouts: Timeouts) -> Request {
        Request {
            method: self.method.clone(),
            url,
            headers: self.headers.clone(),
            body: self.body.as_ref().map(|b| b.hop(self.taken)),
            timeouts,
            unix_socket: self.unix_socket.clone(),
        }
    }
}

/// The caller's body, shared by every hop.
pub(crate) struct ReplayBody {
    shared: Rc<Shared>,
}

struct Shared {
    producer: RefCell<Box<dyn BodyProducer>>,
    /// Which hop's producer is live.
    live: Cell<u32>,
    /// Whether the live hop started producing (so a further hop needs a rewind).
    started: Cell<bool>,
}

impl ReplayBody {
    pub(crate) fn new(producer: Box<dyn BodyProducer>) -> Self {
        ReplayBody {
            shared: Rc::new(Shared {
                producer: RefCell::new(producer),
                live: Cell::new(0),
                started: Cell::new(false),
            }),
        }
    }

    /// A producer for the next hop; earlier hops' producers go dead, and fail with
    /// `dead` (what took the body over) if they are asked for more.
    pub(crate) fn hop(&self, dead: &'static str) -> Box<dyn BodyProducer> {
        let generation = self.shared.live.get() + 1;
        self.shared.live.set(generation);
        Box::new(HopBody {
            shared: self.shared.clone(),
            generation,
            dead,
        })
    }

    /// Rewinds the body for another hop; the hop that used it goes dead first. `false`: the
    /// body cannot be sent again.
    pub(crate) fn rewind(&self) -> bool {
        self.shared.live.set(self.shared.live.get() + 1);
        let rewound = self
            .shared
            .producer
            .try_borrow_mut()
            .is_ok_and(|mut p| p.rewind());
        if rewound {
            self.shared.started.set(false);
        }
        rewound
    }

    /// Whether the body can be sent again: untouched so far, or rewound now.
    pub(crate) fn ready_again(&self) -> bool {
        !self.shared.started.get() || self.rewind()
    }
}

/// One hop's view of the shared body.
struct HopBody {
    shared: Rc<Shared>,
    generation: u32,
    dead: &'static str,
}

impl HopBody {
    fn live(&self) -> bool {
        self.shared.live.get() == self.generation
    }

    fn with<R>(&self, dead: R, f: impl FnOnce(&mut dyn BodyProducer) -> R) -> R {
        if !self.live() {
            return dead;
        }
        match self.shared.producer.try_borrow_mut() {
            Ok(mut p) => f(p.as_mut()),
            Err(_) => dead,
        }
    }

    fn produce(&mut self, f: impl FnOnce(&mut dyn BodyProducer) -> Produce) -> Produce {
        if self.live() {
            self.shared.started.set(true);
        }
        self.with(Produce::Failed(self.dead.into()), f)
    }
}

impl BodyProducer for HopBody {
    fn length(&self) -> Option<u64> {
        self.shared
            .producer
            .try_borrow()
            .ok()
            .and_then(|p| p.length())
    }

    fn start_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        self.produce(|p| p.start_producing(sink))
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        self.produce(|p| p.resume_producing(sink))
    }

    fn pause_producing(&mut self) {
        self.with((), |p| p.pause_producing());
    }

    fn stop_producing(&mut self) {
        self.with((), |p| p.stop_producing());
    }

    fn rewind(&mut self) -> bool {
        self.with(false, |p| p.rewind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::producer::BytesProducer;

    /// A body that can be sent once only.
    struct Once;

    impl BodyProducer for Once {
        fn length(&self) -> Option<u64> {
            Some(3)
        }
        fn resume_producing(&mut self, _: &mut BodySink<'_>) -> Produce {
            Produce::Done
        }
    }

    #[test]
    fn a_new_hop_kills_the_ones_before() {
        let body = ReplayBody::new(Box::new(BytesProducer::new("abc")));
        let mut first = body.hop("taken");
        assert!(first.rewind(), "the live hop reaches the body");
        let mut second = body.hop("taken");
        assert!(!first.rewind(), "an older hop is dead");
        assert!(second.rewind());
        assert_eq!((first.length(), second.length()), (Some(3), Some(3)));
        assert!(body.rewind());
        assert!(
            !second.rewind(),
            "a rewind for another hop kills the live one"
        );
    }

    #[test]
    fn parts_make_each_request_alike_and_hand_the_body_on() {
        use std::time::Duration;
        let mut caller = crate::client::Request::new("PURGE", "http://127.0.0.1/a")
            .body(BytesProducer::new("abc"))
            .timeouts(Timeouts {
                read: Some(Duration::from_secs(3)),
                ..Timeouts::default()
            });
        caller.headers.set("X-Kept", b"1".as_slice());
        caller.unix_socket = Some(Rc::from(Path::new("/tmp/weft-parts.sock")));
        let (url, parts) = RequestParts::capture(caller, Some(Duration::from_secs(9)), "taken");
        assert_eq!(&*url, "http://127.0.0.1/a");
        let expected = Timeouts {
            total: Some(Duration::from_secs(9)),
            read: Some(Duration::from_secs(3)),
            ..Timeouts::default()
        };
        assert_eq!(
            parts.timeouts, expected,
            "the inner agent's total fills the gap"
        );
        let mut first = parts.request(url.clone(), parts.timeouts);
        let mut second = parts.request("http://127.0.0.1/b".into(), Timeouts::default());
        for r in [&first, &second] {
            assert_eq!(r.method, "PURGE");
            assert_eq!(r.headers.get("x-kept"), Some(b"1".as_slice()));
            assert_eq!(
                r.unix_socket.as_deref(),
                Some(Path::new("/tmp/weft-parts.sock"))
            );
        }
        assert_eq!(
            (first.timeouts, &*second.url),
            (expected, "http://127.0.0.1/b")
        );
        let first_body = first.body.as_mut().expect("a body");
        assert!(!first_body.rewind(), "the later request took the body over");
        assert!(second.body.as_mut().expect("a body").rewind());

        let caller = crate::client::Request::get("http://127.0.0.1/").timeouts(Timeouts {
            total: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        });
        let (_, parts) = RequestParts::capture(caller, Some(Duration::from_secs(9)), "taken");
        assert_eq!(
            parts.timeouts.total,
            Some(Duration::from_secs(1)),
            "the caller's wins"
        );
        assert!(parts.request(url, parts.timeouts).body.is_none());
    }

    #[test]
    fn a_body_that_cannot_rewind_is_sent_again_only_if_untouched() {
        let body = ReplayBody::new(Box::new(Once));
        let _hop = body.hop("taken");
        assert!(body.ready_again(), "never started: nothing to rewind");
        body.shared.started.set(true);
        assert!(!body.ready_again(), "started, and cannot rewind");
        assert!(!body.rewind());
    }
}
