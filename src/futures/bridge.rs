//! The way from a future (which has no [`Ctx`](crate::Ctx) when polled) onto the reactor: the reactor's
//! queue of jobs from its own thread, run at its next turn.
//!
//! A job holds the client's `Rc`s, so it cannot travel through a [`Remote`](crate::reactor::Remote);
//! it does not need to: a bridge is made from the reactor and cannot leave its thread. Handing
//! a job over costs no lock and, when the host drives the reactor from an async task waiting
//! on [`Reactor::work_queued`], no system call.

use std::fmt;
use std::rc::Rc;

use crate::client::{Cause, Error, Phase};
use crate::reactor::{LocalJob, LocalQueue, Reactor};

/// Work for the reactor. Dropped unrun when the reactor is gone: whatever it owns then
/// reports the failure (see the guards in the futures).
pub(super) type Job = LocalJob;

/// The door through which this module's futures reach a reactor: made once from the reactor,
/// cloned into whatever issues requests. Cheap to clone; not `Send` (the futures it serves
/// run on the reactor's thread, like every callback).
///
/// The reactor must be driven meanwhile — by a host loop calling [`Reactor::dispatch`] (with
/// [`Reactor::work_queued`] among what it waits on) or [`Reactor::turn`], or by any loop of
/// the application — for the futures to make progress.
#[derive(Clone)]
pub struct Bridge {
    queue: Rc<LocalQueue>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge onto `reactor`; use it on the reactor's thread.
    pub fn new(reactor: &Reactor) -> Self {
        Bridge {
            queue: reactor.local_queue(),
        }
    }

    /// Runs `job` on the reactor at its next turn (and wakes whoever drives it). When the
    /// reactor is gone, `job` is dropped unrun, now or when the reactor drops it.
    pub(super) fn post(&self, job: Job) {
        self.queue.push(job);
    }
}

/// The error a future gets when the reactor went away with its request.
pub(super) fn reactor_gone() -> Error {
    Error::new(Phase::ResponseNeverReceived, Cause::AgentClosed)
}
