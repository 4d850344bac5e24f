//! What the [`Agent`](super::Agent) handles share with the agent's state: the configuration,
//! the URL cache, the queue of submitted requests, and the registry that finds an agent's
//! shared half from its id.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::client::error::Error;
use crate::client::msg::{RequestId, RequestIds};
use crate::client::producer::BodyProducer;
use crate::client::request::{HandlePool, ResponseCallback, Timeouts};
use crate::client::response::AgentInbox;
use crate::proto::Headers;

use super::config::AgentConfig;
use super::route::{Target, Targets};

/// What the [`Agent`](super::Agent) handles share with the agent's state.
///
/// Requests wait in a queue here instead of travelling in boxed messages, which cost two
/// allocations per request; each queued request has one zero-sized message posted for it, so
/// the reactor still decides when (and in which order with other messages) the agent takes
/// it. What responses hand back (body protocols, abandoned bodies, header storage) waits in
/// the [`AgentInbox`] the same way.
pub(super) struct Shared {
    pub(super) config: AgentConfig,
    /// Parsed request URLs: a handle resolves a URL as it submits the request.
    pub(super) targets: RefCell<Targets>,
    pub(super) requests: RefCell<VecDeque<NewRequest>>,
    /// The ids of the requests submitted and not yet forgotten by the agent: each names the
    /// request's slot in the agent's table.
    pub(super) ids: RefCell<RequestIds>,
    /// Shared with every response of the agent.
    pub(super) inbox: Rc<AgentInbox>,
    pub(super) handles: HandlePool,
}

/// Posted for each request put in [`Shared::requests`]; carries nothing (no allocation).
pub(super) struct NextRequest;

/// A request as the caller gave it, apart from its URL.
pub(super) struct Parts {
    pub(super) method: Cow<'static, str>,
    pub(super) headers: Headers,
    pub(super) producer: Option<Box<dyn BodyProducer>>,
    pub(super) timeouts: Timeouts,
}

/// A request queued for the agent in [`Shared::requests`].
pub(super) struct NewRequest {
    pub(super) id: RequestId,
    /// Resolved when the request was submitted; an error is reported from the agent, as
    /// for any request it refuses (boxed: rare, and large).
    pub(super) target: Result<Rc<Target>, Box<Error>>,
    pub(super) parts: Parts,
    pub(super) on_response: ResponseCallback,
}

thread_local! {
    /// The shared half of every agent on this thread, by agent id. Looked up rather than held
    /// by the handle, so that `Agent` stays a `Copy + Send` id (requests may be issued from
    /// another thread through a `Remote`). An entry lives as long as its agent's state.
    pub(super) static AGENTS: RefCell<FxHashMap<u64, Rc<Shared>>> = RefCell::default();
}
