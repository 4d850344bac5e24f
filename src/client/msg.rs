//! The ids of an agent's requests, the messages their handles post to the agent, and the
//! queues of work waiting for it.
//!
//! A leaf: it imports nothing else of the client layer, so that the body, producer, request
//! and response handles depend on it rather than on the agent that reads the messages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one request of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    /// A fresh id, unique in the process.
    pub(crate) fn next() -> RequestId {
        RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed))
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
pub(crate) fn pop_trimmed<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let item = queue.pop_front();
    if queue.is_empty() && queue.capacity() > QUEUE_KEPT {
        queue.shrink_to(QUEUE_SHRUNK);
    }
    item
}

/// What an emptied large queue is shrunk to (kept non-zero: a shrink to nothing is a free).
const QUEUE_SHRUNK: usize = 16;
