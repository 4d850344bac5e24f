//! A one-value channel between the reactor thread and the thread that waits: the reactor side
//! fills it once, the waiting side is woken through its `Waker` (a future) or a condition
//! variable (a blocked thread).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::client::{Cause, Error, Phase};

/// The waiting half.
pub(super) struct Slot<T> {
    state: Mutex<State<T>>,
    filled: Condvar,
}

struct State<T> {
    value: Option<Result<T, Error>>,
    /// Set once filled, so a value taken by the waiter is not refilled by a late sender.
    done: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(State {
                value: None,
                done: false,
                waker: None,
            }),
            filled: Condvar::new(),
        })
    }

    /// A panic elsewhere while the lock was held leaves the state consistent (each change is
    /// one assignment), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the value (the first one wins) and wakes the waiter.
    fn fill(&self, value: Result<T, Error>) {
        let waker = {
            let mut state = self.lock();
            if state.done {
                return;
            }
            state.done = true;
            state.value = Some(value);
            state.waker.take()
        };
        self.filled.notify_all();
        // Woken outside the lock: the waker may poll at once on another thread.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the value has arrived (taken or not).
    pub(super) fn is_done(&self) -> bool {
        self.lock().done
    }

    /// The value if it has arrived; otherwise remembers `cx`'s waker.
    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut state = self.lock();
        if let Some(value) = state.value.take() {
            return Poll::Ready(value);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Blocks the calling thread until the value arrives.
    pub(super) fn wait(&self) -> Result<T, Error> {
        let mut state = self.lock();
        loop {
            if let Some(value) = state.value.take() {
                return value;
            }
            state = self.filled.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The filling half, moved to the reactor thread. Dropped without a value (the reactor went
/// away with the request pending, or never ran it), it fills the slot with
/// [`Cause::AgentClosed`], so no waiter hangs.
pub(super) struct Reply<T> {
    slot: Option<Arc<Slot<T>>>,
    /// The phase a drop reports: nothing was sent until the request was handed to the client.
    phase: Phase,
    url: String,
}

impl<T> Reply<T> {
    pub(super) fn new(slot: Arc<Slot<T>>, url: String) -> Self {
        Reply {
            slot: Some(slot),
            phase: Phase::RequestNotSent,
            url,
        }
    }

    /// Marks the request as handed to the client: a drop from now on cannot say whether the
    /// server saw it.
    pub(super) fn issued(&mut self) {
        self.phase = Phase::ResponseNeverReceived;
    }

    pub(super) fn send(mut self, value: Result<T, Error>) {
        if let Some(slot) = self.slot.take() {
            slot.fill(value);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.fill(Err(gone(self.phase, &self.url)));
        }
    }
}

/// The error of a request whose reactor is gone.
pub(super) fn gone(phase: Phase, url: &str) -> Error {
    Error::new(phase, Cause::AgentClosed).with_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_reply_fills_the_slot_with_an_error() {
        let slot = Slot::<u32>::new();
        let mut reply = Reply::new(slot.clone(), "http://example.test/".into());
        reply.issued();
        drop(reply);
        let e = slot.wait().unwrap_err();
        assert_eq!(e.cause(), &Cause::AgentClosed);
        assert_eq!(e.phase(), Phase::ResponseNeverReceived);
        assert_eq!(e.url(), Some("http://example.test/"));
    }

    #[test]
    fn a_sent_value_wakes_a_blocked_waiter() {
        let slot = Slot::<u32>::new();
        let reply = Reply::new(slot.clone(), String::new());
        let waiter = std::thread::spawn({
            let slot = slot.clone();
            move || slot.wait()
        });
        reply.send(Ok(7));
        assert_eq!(waiter.join().unwrap().unwrap(), 7);
        assert!(slot.is_done());
    }
}
