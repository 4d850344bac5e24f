//! Calls from other threads: a locked queue drained by the loop, and a mio `Waker` to
//! interrupt its wait.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

use super::Ctx;
use super::error::ReactorGone;

type RemoteCall = Box<dyn FnOnce(&mut Ctx) + Send>;

pub(super) struct RemoteQueue {
    calls: VecDeque<RemoteCall>,
    /// Cleared when the reactor is dropped, so late calls fail instead of leaking.
    alive: bool,
}

/// A thread-safe handle that schedules calls onto the reactor's thread.
#[derive(Clone)]
pub struct Remote {
    queue: Arc<Mutex<RemoteQueue>>,
    waker: Arc<Waker>,
}

impl Remote {
    pub(super) fn new(waker: Arc<Waker>) -> Self {
        Remote {
            queue: Arc::new(Mutex::new(RemoteQueue {
                calls: VecDeque::new(),
                alive: true,
            })),
            waker,
        }
    }

    /// Runs `f` on the reactor thread at its next iteration; wakes the reactor if it sleeps.
    /// Returns an error if the reactor is gone.
    ///
    /// ```
    /// let mut reactor = weft::reactor::Reactor::new()?;
    /// let remote = reactor.remote();
    /// let worker = std::thread::spawn(move || remote.call(|ctx| ctx.stop()));
    /// reactor.run()?; // returns once the call has run
    /// worker.join().unwrap().unwrap();
    /// drop(reactor);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call(&self, f: impl FnOnce(&mut Ctx) + Send + 'static) -> Result<(), ReactorGone> {
        {
            let mut queue = self.lock();
            if !queue.alive {
                return Err(ReactorGone);
            }
            queue.calls.push_back(Box::new(f));
        }
        // A failed wake (the poll is being torn down) changes nothing for the caller.
        let _ = self.waker.wake();
        Ok(())
    }

    /// A panic in another thread while it held the lock leaves the queue consistent (pushes
    /// and takes are single operations), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, RemoteQueue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn has_calls(&self) -> bool {
        !self.lock().calls.is_empty()
    }

    pub(super) fn take_calls(&self) -> VecDeque<RemoteCall> {
        std::mem::take(&mut self.lock().calls)
    }

    /// Refuses further calls and drops the queued ones (the reactor is going away).
    pub(super) fn shut_down(&self) {
        let calls = {
            let mut queue = self.lock();
            queue.alive = false;
            std::mem::take(&mut queue.calls)
        };
        // Dropped outside the lock: a call's captures may run arbitrary drop code.
        drop(calls);
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}
