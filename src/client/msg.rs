//! The ids of an agent's requests, the messages their handles post to the agent, and the
//! queues of work waiting for it.
//!
//! A leaf: it imports nothing else of the client layer, so that the body, producer, request
//! and response handles depend on it rather than on the agent that reads the messages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one request of an agent.
///
/// An agent's ids name the slot of the request in the agent's table and a generation (the
/// high bits), so the agent finds a request by an array lookup rather than a hash; an id kept
/// past its request's end finds nothing, even once a newer request has its slot. Ids sort in
/// the order the requests were submitted to their agent (see `RequestIds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Generations wrap below this, so that an id fits under a timer tag's kind bits (2^61).
const GENERATIONS: u32 = 1 << 29;

impl RequestId {
    /// An id for a request no agent will see (its agent is gone).
    pub(crate) fn next_unused() -> RequestId {
        RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed))
    }

    /// The id of the request in `slot` at `generation` (never 0).
    pub(crate) fn at(slot: u32, generation: u32) -> RequestId {
        RequestId(u64::from(generation) << 32 | u64::from(slot))
    }

    /// The request's slot in its agent's table and its generation.
    pub(crate) fn slot(self) -> (usize, u32) {
        (
            (self.0 & u64::from(u32::MAX)) as usize,
            (self.0 >> 32) as u32,
        )
    }
}

/// Gives out an agent's request ids: the slot given back last first, else the next unused
/// one, each with a fresh generation (one counter for the agent, so ids also sort by
/// submission, until the counter wraps every 2^29 requests).
#[derive(Default)]
pub(crate) struct RequestIds {
    /// Slots given back, reused last in first out.
    free: Vec<u32>,
    /// Slots ever given out since the table was last empty.
    slots: u32,
    generation: u32,
}

impl RequestIds {
    /// A fresh id.
    pub(crate) fn take(&mut self) -> RequestId {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        // 1 to GENERATIONS - 1, round and round (0 is never a live generation).
        self.generation = if self.generation >= GENERATIONS - 1 {
            1
        } else {
            self.generation + 1
        };
        RequestId::at(slot, self.generation)
    }

    /// Gives `id`'s slot back, once its request is forgotten (each id once).
    pub(crate) fn give_back(&mut self, id: RequestId) {
        let (slot, _) = id.slot();
        self.free.push(slot as u32);
        if self.free.len() == self.slots as usize {
            // Every slot is free: start again from slot 0, so the table's index stays as
            // small as the requests in flight, and a burst's list goes back.
            self.slots = 0;
            self.free.clear();
            if self.free.capacity() > QUEUE_KEPT {
                // Shrunk, not freed: see `pop_trimmed`.
                self.free.shrink_to(QUEUE_SHRUNK);
            }
        }
    }
}

/// What a handle asks of the agent about one of its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Stop the request (from a request handle or a body handle).
    Cancel(RequestId),
    /// Deliver nothing more of the body until `ResumeBody`.
    PauseBody(RequestId),
    /// Deliver the body again.
    ResumeBody(RequestId),
    /// Call the request's producer again.
    ResumeProducer(RequestId),
}

/// Posted for each body protocol a response hands to its agent; carries nothing, so boxing it
/// allocates nothing.
pub(crate) struct NextBody;

/// Posted for each protocol a `101 Switching Protocols` response hands to its agent
/// ([`Response::upgrade`](super::Response::upgrade)); carries nothing, as [`NextBody`].
pub(crate) struct NextUpgrade;

/// Queued items above which an emptied queue gives its memory back.
const QUEUE_KEPT: usize = 1024;

/// Takes the oldest item of a queue of work posted to an agent (requests, body protocols);
/// gives back the queue's memory once a burst (10,000 requests submitted at once: some 200
/// bytes a slot) has drained, as the agent does for its request table. Queues of up to
/// [`QUEUE_KEPT`] keep theirs, so that a steady load does not reallocate them.
///
/// Shrunk in place rather than freed: glibc raises its mmap threshold (and its trim
/// threshold, to twice that) to the size of any large block freed, after which the next
/// burst's allocations land in the main heap, whose holes it never returns. Freeing a
/// 4 MiB queue made a pool of 10,000 idle connections keep some 8 MiB of such holes.
#[inline]
pub(crate) fn pop_trimmed<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let item = queue.pop_front();
    if queue.is_empty() && queue.capacity() > QUEUE_KEPT {
        queue.shrink_to(QUEUE_SHRUNK);
    }
    item
}

/// What an emptied large queue is shrunk to (kept non-zero: a shrink to nothing is a free).
const QUEUE_SHRUNK: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reuse_free_slots_with_a_new_generation() {
        let mut ids = RequestIds::default();
        let a = ids.take();
        let b = ids.take();
        assert_eq!((a.slot().0, b.slot().0), (0, 1));
        ids.give_back(a);
        let c = ids.take();
        // The same slot, but not the same id: a handle kept from `a` names nothing now.
        assert_eq!(c.slot().0, 0);
        assert_ne!(c, a);
        // Submission order.
        assert!(a < b && b < c);
        ids.give_back(b);
        ids.give_back(c);
        assert_eq!(
            ids.take().slot().0,
            0,
            "an emptied table starts again at slot 0"
        );
    }

    #[test]
    fn generations_wrap_below_the_timer_tag_bits_and_are_never_zero() {
        let mut ids = RequestIds {
            generation: GENERATIONS - 2,
            ..RequestIds::default()
        };
        for _ in 0..4 {
            let id = ids.take();
            assert!(id.0 < 1 << 61, "{id:?}");
            assert_ne!(id.slot().1, 0);
            ids.give_back(id);
        }
    }

    #[test]
    fn a_burst_of_ids_gives_its_memory_back() {
        let mut ids = RequestIds::default();
        let taken: Vec<RequestId> = (0..10_000).map(|_| ids.take()).collect();
        for id in taken {
            ids.give_back(id);
        }
        assert!(ids.free.capacity() <= QUEUE_KEPT, "{}", ids.free.capacity());
        assert_eq!(ids.take().slot().0, 0);
    }
}
