//! Work handed to the reactor from its own thread by code that holds no [`Ctx`] (a future
//! being polled by the host's executor): a queue run at the next turn, and a wake-up for
//! whoever drives the reactor.
//!
//! A [`Remote`](super::Remote) would do the job, but it pays for being usable from any thread:
//! a lock, and a write to the poll's waker, which costs the host a wake-up through the
//! descriptor and one more dispatch. On the reactor's own thread neither is needed: the queue
//! is thread-local, and a host that drives the reactor from an async task waits on
//! [`Reactor::work_queued`](super::Reactor::work_queued), whose waker is woken directly. A host
//! that waits on nothing but the descriptor gets the waker's write, as before.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::Ctx;

/// A job for the reactor's thread.
pub(crate) type LocalJob = Box<dyn FnOnce(&mut Ctx)>;

/// The queue, shared (on the reactor's thread) by the reactor and every poster.
pub(crate) struct LocalQueue {
    jobs: RefCell<VecDeque<LocalJob>>,
    /// Cleared when the reactor is dropped: later jobs are dropped at once.
    alive: Cell<bool>,
    /// The task waiting in [`WorkQueued`], if any: woken instead of the descriptor.
    driver: RefCell<Option<Waker>>,
    /// Makes the descriptor readable when no task waits.
    poll_waker: Arc<mio::Waker>,
}

impl LocalQueue {
    pub(super) fn new(poll_waker: Arc<mio::Waker>) -> Rc<Self> {
        Rc::new(LocalQueue {
            jobs: RefCell::new(VecDeque::new()),
            alive: Cell::new(true),
            driver: RefCell::new(None),
            poll_waker,
        })
    }

    /// Queues `job` for the next turn and wakes the driver. When the reactor is gone, `job` is
    /// dropped at once (whatever it owns reports the failure).
    pub(crate) fn push(&self, job: LocalJob) {
        if !self.alive.get() {
            return;
        }
        let was_empty = {
            let mut jobs = self.jobs.borrow_mut();
            jobs.push_back(job);
            jobs.len() == 1
        };
        // One wake-up serves every job queued before the next turn.
        if was_empty {
            let driver = self.driver.borrow_mut().take();
            match driver {
                Some(waker) => waker.wake(),
                // A failed wake (the poll is being torn down) loses nothing: the job waits.
                None => drop(self.poll_waker.wake()),
            }
        }
    }

    pub(super) fn has_jobs(&self) -> bool {
        !self.jobs.borrow().is_empty()
    }

    /// The queued jobs; those queued while they run wait for the next turn.
    pub(super) fn take(&self) -> VecDeque<LocalJob> {
        std::mem::take(&mut *self.jobs.borrow_mut())
    }

    /// Refuses further jobs and drops the queued ones (the reactor is going away): whatever
    /// they own reports the failure.
    pub(super) fn shut_down(&self) {
        self.alive.set(false);
        self.driver.borrow_mut().take();
        // Dropped outside the borrow: a job's captures may queue more (refused now).
        drop(self.take());
    }
}

/// The future of [`Reactor::work_queued`](super::Reactor::work_queued).
#[must_use = "futures do nothing unless polled"]
pub struct WorkQueued<'a> {
    pub(super) queue: &'a LocalQueue,
}

impl Future for WorkQueued<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.queue.has_jobs() {
            return Poll::Ready(());
        }
        let mut driver = self.queue.driver.borrow_mut();
        match &mut *driver {
            Some(waker) => waker.clone_from(cx.waker()),
            None => *driver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for WorkQueued<'_> {
    /// A future no longer waiting must not swallow the wake-up: the descriptor takes it back.
    fn drop(&mut self) {
        self.queue.driver.borrow_mut().take();
    }
}

impl std::fmt::Debug for WorkQueued<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueued")
            .field("queued", &self.queue.has_jobs())
            .finish()
    }
}
