//! The ids of an agent's requests and the messages their handles post to the agent.
//!
//! A leaf: it imports nothing else of the client layer, so that the body, producer, request
//! and response handles depend on it rather than on the agent that reads the messages.

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
