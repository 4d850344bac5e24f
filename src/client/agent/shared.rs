//! What the [`Agent`](super::Agent) handles share with the agent's state: the configuration,
//! the URL cache, the queue of submitted requests, and the registry that finds an agent's
//! shared half from its id.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use rustc_hash::{FxBuildHasher, FxHashMap};

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
/// it. One submitted from inside the agent's read with nothing else queued is taken when the
/// read returns instead (see [`Shared::held`]): the order is the same, and the message and
/// its delivery are saved. What responses hand back (body protocols, abandoned bodies, header storage) waits in
/// the [`AgentInbox`] the same way.
pub(super) struct Shared {
    pub(super) config: AgentConfig,
    /// Parsed request URLs: a handle resolves a URL as it submits the request.
    pub(super) targets: RefCell<Targets>,
    pub(super) requests: RefCell<VecDeque<NewRequest>>,
    /// Set while the agent reads a connection (and so runs the callbacks that most often
    /// submit the next request): a request submitted then with nothing else queued on the
    /// reactor is taken by the agent when the read returns, with no message posted.
    pub(super) held: Cell<bool>,
    /// Requests at the front of `requests` submitted under `held` without a message.
    pub(super) unposted: Cell<usize>,
    /// The ids of the requests submitted and not yet forgotten by the agent: each names the
    /// request's slot in the agent's table.
    pub(super) ids: RefCell<RequestIds>,
    /// Shared with every response of the agent.
    pub(super) inbox: Rc<AgentInbox>,
    pub(super) handles: HandlePool,
}

impl Shared {
    /// An agent's shared state, with nothing submitted yet.
    pub(super) fn new(config: AgentConfig) -> Rc<Shared> {
        Rc::new(Shared {
            config,
            targets: RefCell::default(),
            requests: RefCell::default(),
            held: Cell::new(false),
            unposted: Cell::new(0),
            ids: RefCell::default(),
            inbox: Rc::default(),
            handles: HandlePool::default(),
        })
    }
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
    /// Made by a `const` initialiser: each access skips the check for a lazy first use.
    pub(super) static AGENTS: RefCell<Agents> = const { RefCell::new(Agents::new()) };
}

/// The registry behind [`AGENTS`].
#[derive(Default)]
pub(super) struct Agents {
    /// The agent found last: a thread mostly submits to one agent, whose lookup then costs a
    /// compare rather than a hash and a probe.
    last: Option<(u64, Rc<Shared>)>,
    all: FxHashMap<u64, Rc<Shared>>,
}

impl Agents {
    /// An empty registry (`const`, for [`AGENTS`]).
    pub(super) const fn new() -> Self {
        Agents {
            last: None,
            all: FxHashMap::with_hasher(FxBuildHasher),
        }
    }

    pub(super) fn insert(&mut self, id: u64, shared: Rc<Shared>) {
        self.all.insert(id, shared);
    }

    /// The shared half of agent `id`, while its state lives.
    #[inline]
    pub(super) fn get(&mut self, id: u64) -> Option<Rc<Shared>> {
        if let Some((last, shared)) = &self.last
            && *last == id
        {
            return Some(shared.clone());
        }
        let shared = self.all.get(&id)?.clone();
        self.last = Some((id, shared.clone()));
        Some(shared)
    }

    /// Forgets agent `id` (its state is dropped): later lookups find nothing.
    pub(super) fn remove(&mut self, id: u64) {
        if self.last.as_ref().is_some_and(|(last, _)| *last == id) {
            self.last = None;
        }
        self.all.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Rc<Shared> {
        Shared::new(AgentConfig::default())
    }

    #[test]
    fn an_agent_forgotten_is_not_found_even_when_it_was_found_last() {
        let (a, b) = (shared(), shared());
        let mut agents = Agents::default();
        agents.insert(1, a.clone());
        agents.insert(2, b.clone());
        for _ in 0..2 {
            assert!(agents.get(1).is_some_and(|s| Rc::ptr_eq(&s, &a)));
            assert!(agents.get(2).is_some_and(|s| Rc::ptr_eq(&s, &b)));
        }
        assert!(agents.get(3).is_none());
        // Found last, then forgotten: the registry lets go of it.
        agents.remove(2);
        assert!(agents.get(2).is_none());
        assert_eq!(Rc::strong_count(&b), 1);
        assert!(agents.get(1).is_some());
        agents.remove(1);
        assert!(agents.get(1).is_none());
        assert_eq!(Rc::strong_count(&a), 1);
    }
}
