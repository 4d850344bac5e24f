//! Bounded concurrency: run many jobs on a reactor with at most K of them in flight (the
//! Twisted `DeferredSemaphore` recipe as one call). [`HttpClient::fetch_all`] is built on it;
//! use it directly when each job streams its body somewhere instead of collecting it.
//!
//! [`HttpClient::fetch_all`]: super::HttpClient::fetch_all

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::reactor::Ctx;

type StartFn<J> = Box<dyn FnMut(&mut Ctx, usize, J, Slot)>;
type DoneFn = Box<dyn FnOnce(&mut Ctx)>;

/// Runs `jobs` with at most `max_in_flight` of them started and not yet finished (at least
/// one, whatever `max_in_flight` says).
///
/// `start` gets each job with its index in `jobs` and a [`Slot`]; the job holds the slot
/// while it runs and gives it back with [`Slot::release`] when it ends, which starts the
/// next job. `on_done` runs once, after the last slot is released. Jobs are pulled lazily,
/// so `jobs` may be a long iterator; `on_done` never runs inside this call, even with no
/// jobs at all.
///
/// ```no_run
/// use weft::client::{run_bounded, Agent, AgentConfig, Error, HttpAgent, Request, Response};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// let urls: Vec<String> = (0..100).map(|i| format!("http://127.0.0.1:8080/{i}")).collect();
/// run_bounded(
///     reactor.ctx(),
///     urls,
///     4,
///     move |ctx, i, url, slot| {
///         let done = move |ctx: &mut _, result: Result<Response, Error>| {
///             println!("{i}: {:?}", result.map(|r| r.code));
///             // Dropping the response closes its connection; the job is over.
///             slot.release(ctx);
///         };
///         HttpAgent::request(&agent, ctx, Request::get(&url), Box::new(done));
///     },
///     |ctx| ctx.stop(),
/// );
/// reactor.run().unwrap();
/// ```
pub fn run_bounded<J: 'static>(
    ctx: &mut Ctx,
    jobs: impl IntoIterator<Item = J> + 'static,
    max_in_flight: usize,
    start: impl FnMut(&mut Ctx, usize, J, Slot) + 'static,
    on_done: impl FnOnce(&mut Ctx) + 'static,
) {
    let runner = Rc::new(Runner {
        pending: RefCell::new(Box::new(jobs.into_iter().enumerate())),
        start: RefCell::new(Box::new(start)),
        on_done: RefCell::new(Some(Box::new(on_done))),
        max_in_flight: max_in_flight.max(1),
        in_flight: Cell::new(0),
        exhausted: Cell::new(false),
        filling: Cell::new(false),
    });
    runner.fill(ctx);
    ctx.call_later(Duration::ZERO, move |ctx| runner.finish_if_done(ctx));
}

/// One of the places in flight of a [`run_bounded`] call, held by a running job.
///
/// Give it back with [`Slot::release`] when the job ends; a slot dropped without being
/// released stays taken, so its place is never reused and `on_done` never runs.
#[must_use = "a slot that is never released keeps its place taken and the run never ends"]
pub struct Slot {
    owner: Rc<dyn Release>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Slot {
    /// Ends the job that held this slot: starts the next pending job, or runs `on_done`
    /// after the last one. A job may release its slot from any callback, even from inside
    /// `start` (the next job then starts once that call returns).
    pub fn release(self, ctx: &mut Ctx) {
        self.owner.clone().release(ctx);
    }
}

/// What a [`Slot`] returns itself to (the runner of one call, whatever its job type).
trait Release {
    fn release(self: Rc<Self>, ctx: &mut Ctx);
}

/// The state of one [`run_bounded`] call.
struct Runner<J> {
    pending: RefCell<Box<dyn Iterator<Item = (usize, J)>>>,
    start: RefCell<StartFn<J>>,
    on_done: RefCell<Option<DoneFn>>,
    max_in_flight: usize,
    in_flight: Cell<usize>,
    /// The iterator returned `None` (it is not asked again: it may not be fused).
    exhausted: Cell<bool>,
    /// A `fill` loop is running: a release from inside `start` leaves the starting to it.
    filling: Cell<bool>,
}

impl<J: 'static> Runner<J> {
    /// Starts jobs until the limit is reached or none is left.
    fn fill(self: &Rc<Self>, ctx: &mut Ctx) {
        if self.filling.replace(true) {
            return;
        }
        while !self.exhausted.get() && self.in_flight.get() < self.max_in_flight {
            let next = self.pending.borrow_mut().next();
            let Some((index, job)) = next else {
                self.exhausted.set(true);
                break;
            };
            self.in_flight.set(self.in_flight.get() + 1);
            let slot = Slot {
                owner: self.clone(),
            };
            (self.start.borrow_mut())(ctx, index, job, slot);
        }
        self.filling.set(false);
    }

    fn finish_if_done(&self, ctx: &mut Ctx) {
        if self.exhausted.get() && self.in_flight.get() == 0 && !self.filling.get() {
            let done = self.on_done.borrow_mut().take();
            if let Some(done) = done {
                done(ctx);
            }
        }
    }
}

impl<J: 'static> Release for Runner<J> {
    fn release(self: Rc<Self>, ctx: &mut Ctx) {
        self.in_flight.set(self.in_flight.get() - 1);
        self.fill(ctx);
        self.finish_if_done(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;

    /// Runs `count` jobs, job `i` lasting `delay(i)` ms (`None`: released inside `start`);
    /// returns the order they ended in and the most seen in flight at once.
    fn run(count: usize, max: usize, delay: fn(usize) -> Option<u64>) -> (Vec<usize>, usize) {
        let mut reactor = Reactor::new().unwrap();
        let ended = Rc::new(RefCell::new(Vec::new()));
        let (now, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let done = Rc::new(Cell::new(0));
        let (e, n, p, d) = (ended.clone(), now.clone(), peak.clone(), done.clone());
        let start = move |ctx: &mut Ctx, i: usize, job: usize, slot: Slot| {
            assert_eq!(i, job, "the index is the job's position");
            n.set(n.get() + 1);
            p.set(p.get().max(n.get()));
            let (e, n) = (e.clone(), n.clone());
            let end = move |ctx: &mut Ctx| {
                e.borrow_mut().push(i);
                n.set(n.get() - 1);
                slot.release(ctx);
            };
            match delay(i) {
                None => end(ctx),
                Some(ms) => {
                    ctx.call_later(Duration::from_millis(ms), end);
                }
            }
        };
        run_bounded(reactor.ctx(), 0..count, max, start, move |ctx| {
            d.set(d.get() + 1);
            ctx.stop();
        });
        assert_eq!(done.get(), 0, "on_done never runs inside the call");
        reactor.run().unwrap();
        assert_eq!(done.get(), 1);
        assert_eq!(now.get(), 0);
        let ended = ended.borrow().clone();
        (ended, peak.get())
    }

    #[test]
    fn at_most_the_limit_runs_and_every_job_ends() {
        // Later jobs are shorter, so they overtake earlier ones as slots free up.
        let (ended, peak) = run(9, 3, |i| Some(30 - 3 * i as u64));
        assert_eq!(peak, 3);
        let mut sorted = ended.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..9).collect::<Vec<_>>());
        assert_ne!(ended, sorted, "completion order, not submission order");
    }

    #[test]
    fn releases_inside_start_and_a_zero_limit_still_run_everything() {
        let (ended, peak) = run(5, 2, |_| None);
        assert_eq!((ended, peak), ((0..5).collect(), 1));
        let (ended, peak) = run(4, 0, |i| (i % 2 == 0).then_some(1));
        assert_eq!((ended.len(), peak), (4, 1));
    }

    #[test]
    fn no_jobs_still_ends_from_the_loop() {
        let (ended, peak) = run(0, 4, |_| None);
        assert_eq!((ended.len(), peak), (0, 0));
    }
}
