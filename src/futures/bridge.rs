//! The way from a future (which has no [`Ctx`] when polled) onto the reactor: a queue of
//! jobs on the reactor's thread, drained by one [`Remote`] call.
//!
//! `Remote::call` takes only `Send` closures, while a job holds the client's `Rc`s. So the
//! jobs wait in a queue of the thread's own (a thread-local table, keyed by the bridge's
//! number), and the `Remote` call carries just that number; it runs on the reactor's thread,
//! which is the bridge's thread: a bridge is made from the reactor and cannot leave its
//! thread.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::{Cause, Error, Phase};
use crate::reactor::{Ctx, Reactor, Remote};

/// Work for the reactor. Dropped unrun when the reactor is gone: whatever it owns then
/// reports the failure (see the guards in the futures).
pub(super) type Job = Box<dyn FnOnce(&mut Ctx)>;

/// Bridges are numbered across threads so that a number is never reused.
static NEXT_BRIDGE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The queues of this thread's bridges.
    static QUEUES: RefCell<HashMap<u64, Weak<Queue>>> = RefCell::new(HashMap::new());
}

struct Queue {
    id: u64,
    jobs: RefCell<VecDeque<Job>>,
    /// Whether a `Remote` call to drain the queue is on its way (one serves many jobs).
    scheduled: Cell<bool>,
    /// Set once the reactor refused or dropped a call: later jobs are dropped at once.
    gone: Cell<bool>,
    remote: Remote,
}

impl Drop for Queue {
    fn drop(&mut self) {
        // `try_with`: the table may already be gone at thread exit.
        let _ = QUEUES.try_with(|q| q.try_borrow_mut().map(|mut q| q.remove(&self.id)));
    }
}

/// The door through which this module's futures reach a reactor: made once from the reactor,
/// cloned into whatever issues requests. Cheap to clone; not `Send` (the futures it serves
/// run on the reactor's thread, like every callback).
///
/// The reactor must be driven meanwhile — by [`Reactor::run`] in another task of the same
/// thread, by a host loop calling [`Reactor::turn`], or by any loop of the application — for
/// the futures to make progress.
#[derive(Clone)]
pub struct Bridge {
    queue: Rc<Queue>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("id", &self.queue.id)
            .field("queued", &self.queue.jobs.borrow().len())
            .field("gone", &self.queue.gone.get())
            .finish()
    }
}

impl Bridge {
    /// A bridge onto `reactor`; use it on the reactor's thread.
    pub fn new(reactor: &Reactor) -> Self {
        let id = NEXT_BRIDGE.fetch_add(1, Ordering::Relaxed);
        let queue = Rc::new(Queue {
            id,
            jobs: RefCell::new(VecDeque::new()),
            scheduled: Cell::new(false),
            gone: Cell::new(false),
            remote: reactor.remote(),
        });
        QUEUES.with(|q| q.borrow_mut().insert(id, Rc::downgrade(&queue)));
        Bridge { queue }
    }

    /// Runs `job` on the reactor at its next turn (and wakes it). When the reactor is gone,
    /// `job` is dropped unrun, now or when the reactor drops it.
    pub(super) fn post(&self, job: Job) {
        let queue = &self.queue;
        if queue.gone.get() {
            drop(job);
            return;
        }
        queue.jobs.borrow_mut().push_back(job);
        if queue.scheduled.replace(true) {
            return;
        }
        let drain = Drain { id: queue.id };
        if queue.remote.call(move |ctx| drain.run(ctx)).is_err() {
            // The closure (and its `Drain`) was dropped, which marked the queue gone and
            // dropped the jobs.
            debug_assert!(queue.gone.get());
        }
    }
}

/// The `Send` half of a bridge's `Remote` call: the queue's number. Dropped without running
/// (the reactor went away), it marks the queue gone and drops its jobs, so that their guards
/// report the failure instead of leaving futures pending forever.
struct Drain {
    id: u64,
}

impl Drain {
    fn run(self, ctx: &mut Ctx) {
        let Some(queue) = lookup(self.id) else {
            return;
        };
        std::mem::forget(self);
        queue.scheduled.set(false);
        // Jobs posted while these run wait for the next call (they may schedule it).
        let jobs = std::mem::take(&mut *queue.jobs.borrow_mut());
        for job in jobs {
            job(ctx);
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if let Some(queue) = lookup(self.id) {
            queue.gone.set(true);
            queue.scheduled.set(false);
            let jobs = std::mem::take(&mut *queue.jobs.borrow_mut());
            drop(jobs);
        }
    }
}

fn lookup(id: u64) -> Option<Rc<Queue>> {
    QUEUES
        .try_with(|q| q.borrow().get(&id).and_then(Weak::upgrade))
        .ok()
        .flatten()
}

/// The error a future gets when the reactor went away with its request.
pub(super) fn reactor_gone() -> Error {
    Error::new(Phase::ResponseNeverReceived, Cause::AgentClosed)
}
