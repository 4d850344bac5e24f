//! A request body shared by the successive requests a wrapper makes for one caller's request
//! (redirect hops, authentication retries, retried attempts), so that each can send it again
//! after a rewind. Each request gets its own producer over the shared body; making the next
//! one kills the ones before, so an older request that is still being torn down never reads
//! on from the rewound start.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::client::producer::{BodyProducer, BodySink, Produce};

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
    fn a_body_that_cannot_rewind_is_sent_again_only_if_untouched() {
        let body = ReplayBody::new(Box::new(Once));
        let _hop = body.hop("taken");
        assert!(body.ready_again(), "never started: nothing to rewind");
        body.shared.started.set(true);
        assert!(!body.ready_again(), "started, and cannot rewind");
        assert!(!body.rewind());
    }
}
