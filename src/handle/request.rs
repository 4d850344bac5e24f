//! [`SharedRequest`]: a request described on any thread, and [`Fetch`], the future of its
//! response.

use std::fmt;
use std::future::Future;
use std::mem;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::client::{Error, FullResponse, Phase, RequestBuilder};

use super::oneshot::{Reply, Slot, gone};
use super::{HostMsg, SharedClient};

/// A request being described for a [`SharedClient`]: plain data (`Send`), built on any
/// thread, then run on the reactor thread by [`SharedRequest::fetch`] (a future) or
/// [`SharedRequest::fetch_blocking`].
///
/// Its methods are those of [`RequestBuilder`] with owned, thread-safe arguments (no
/// streamed bodies: a body is bytes); they are replayed in order on the reactor thread, so
/// they mean exactly what the builder's do.
pub struct SharedRequest {
    client: SharedClient,
    method: String,
    url: String,
    ops: Vec<Op>,
    /// A problem found while describing (unserializable JSON), reported when fetched.
    error: Option<Error>,
}

/// One call of a [`RequestBuilder`] method, to replay on the reactor thread.
pub(super) enum Op {
    Query(String, String),
    Header(String, Vec<u8>),
    Body(Vec<u8>),
    Form(Vec<(String, String)>),
    #[cfg(feature = "json")]
    Json(serde_json::Value),
    BasicAuth(String, Option<String>),
    BearerAuth(String),
    Timeout(Duration),
    ReadTimeout(Duration),
    QueueTimeout(Duration),
    ErrorForStatus(bool),
    MaxBody(u64),
    UnixSocket(PathBuf),
}

impl Op {
    pub(super) fn apply(self, b: RequestBuilder) -> RequestBuilder {
        match self {
            Op::Query(name, value) => b.query(&name, &value),
            Op::Header(name, value) => b.header(&name, value),
            Op::Body(bytes) => b.body(bytes),
            Op::Form(fields) => b.form(&fields),
            #[cfg(feature = "json")]
            Op::Json(value) => b.json(&value),
            Op::BasicAuth(user, password) => b.basic_auth(&user, password.as_deref()),
            Op::BearerAuth(token) => b.bearer_auth(&token),
            Op::Timeout(limit) => b.timeout(limit),
            Op::ReadTimeout(limit) => b.read_timeout(limit),
            Op::QueueTimeout(limit) => b.queue_timeout(limit),
            Op::ErrorForStatus(on) => b.error_for_status(on),
            Op::MaxBody(bytes) => b.max_body(bytes),
            Op::UnixSocket(path) => b.unix_socket(path),
        }
    }
}

/// A request on its way to the reactor thread.
pub(super) struct Job {
    pub(super) id: u64,
    pub(super) method: String,
    pub(super) url: String,
    pub(super) ops: Vec<Op>,
    pub(super) reply: Reply<FullResponse>,
}

impl fmt::Debug for SharedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The steps are not shown: they may hold credentials.
        f.debug_struct("SharedRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("steps", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl SharedRequest {
    pub(super) fn new(client: SharedClient, method: &str, url: &str) -> Self {
        SharedRequest {
            client,
            method: method.to_string(),
            url: url.to_string(),
            ops: Vec::new(),
            error: None,
        }
    }

    fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Appends a query parameter (percent-encoded); see [`RequestBuilder::query`].
    pub fn query(self, name: &str, value: &str) -> Self {
        self.op(Op::Query(name.to_string(), value.to_string()))
    }

    /// Adds a header field; see [`RequestBuilder::header`].
    pub fn header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.op(Op::Header(name.to_string(), value.as_ref().to_vec()))
    }

    /// The body, from bytes.
    pub fn body(self, data: impl Into<Vec<u8>>) -> Self {
        self.op(Op::Body(data.into()))
    }

    /// An `application/x-www-form-urlencoded` body; see [`RequestBuilder::form`].
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        let fields = fields
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        self.op(Op::Form(fields))
    }

    /// A JSON body (`application/json`); see [`RequestBuilder::json`].
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json(mut self, value: &impl serde::Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => self.op(Op::Json(value)),
            Err(e) => {
                self.error = Some(Error::new(
                    Phase::RequestNotSent,
                    crate::client::Cause::Producer(format!("cannot encode JSON: {e}")),
                ));
                self
            }
        }
    }

    /// Sends `Authorization: Basic`; see [`RequestBuilder::basic_auth`].
    pub fn basic_auth(self, user: &str, password: Option<&str>) -> Self {
        self.op(Op::BasicAuth(
            user.to_string(),
            password.map(str::to_string),
        ))
    }

    /// Sends `Authorization: Bearer`; see [`RequestBuilder::bearer_auth`].
    pub fn bearer_auth(self, token: &str) -> Self {
        self.op(Op::BearerAuth(token.to_string()))
    }

    /// Limit on the whole request; see [`RequestBuilder::timeout`].
    pub fn timeout(self, limit: Duration) -> Self {
        self.op(Op::Timeout(limit))
    }

    /// Limit on a silence while the request is active.
    pub fn read_timeout(self, limit: Duration) -> Self {
        self.op(Op::ReadTimeout(limit))
    }

    /// Limit on the wait for a free connection.
    pub fn queue_timeout(self, limit: Duration) -> Self {
        self.op(Op::QueueTimeout(limit))
    }

    /// Whether a non-2xx status fails the request with
    /// [`Cause::HttpStatus`](crate::Cause::HttpStatus) (default: the client's setting).
    pub fn error_for_status(self, on: bool) -> Self {
        self.op(Op::ErrorForStatus(on))
    }

    /// Largest body read into memory (default: the client's setting).
    pub fn max_body(self, bytes: u64) -> Self {
        self.op(Op::MaxBody(bytes))
    }

    /// Sends the request over the Unix domain socket at `path`; see
    /// [`RequestBuilder::unix_socket`].
    pub fn unix_socket(self, path: impl Into<PathBuf>) -> Self {
        self.op(Op::UnixSocket(path.into()))
    }

    /// The response, read whole, as a future. Nothing happens until it is first polled; then
    /// the request is handed to the reactor thread, and the future is woken when the answer
    /// comes back. Dropping the future before then cancels the request (a response in flight
    /// has its connection closed). If the reactor is gone, or goes away meanwhile, the future
    /// ends with [`Cause::AgentClosed`](crate::Cause::AgentClosed).
    ///
    /// Do not block the reactor's own thread on this future: the reactor could not run.
    pub fn fetch(self) -> Fetch {
        Fetch {
            state: State::Start(self),
        }
    }

    /// The response, read whole, waiting on the calling thread (a plain thread, a worker
    /// pool). Fails with [`Cause::AgentClosed`](crate::Cause::AgentClosed) if the reactor is
    /// gone or goes away meanwhile.
    ///
    /// # Panics
    ///
    /// On the reactor's own thread, which would wait forever.
    pub fn fetch_blocking(self) -> Result<FullResponse, Error> {
        assert!(
            !self.client.on_reactor_thread(),
            "SharedRequest::fetch_blocking called on the reactor's thread: it would never return"
        );
        let (_, _, slot) = self.dispatch()?;
        slot.wait()
    }

    /// Hands the request to the reactor thread.
    fn dispatch(self) -> Result<(SharedClient, u64, Arc<Slot<FullResponse>>), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let client = self.client;
        let id = client.next_id();
        let slot = Slot::new();
        let url = self.url.clone();
        let job = Job {
            id,
            method: self.method,
            url: self.url,
            ops: self.ops,
            reply: Reply::new(slot.clone(), url.clone()),
        };
        match client.to_host(HostMsg::Fetch(job)) {
            Ok(()) => Ok((client, id, slot)),
            Err(_gone) => Err(gone(Phase::RequestNotSent, &url)),
        }
    }
}

/// The future of a [`SharedRequest`]'s response: `Send`, driven by any executor. See
/// [`SharedRequest::fetch`].
#[must_use = "a request starts when its future is first polled, and is cancelled when it is dropped"]
pub struct Fetch {
    state: State,
}

enum State {
    Start(SharedRequest),
    Waiting {
        client: SharedClient,
        id: u64,
        slot: Arc<Slot<FullResponse>>,
    },
    Done,
}

impl fmt::Debug for Fetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start(_) => "not started",
            State::Waiting { .. } => "waiting",
            State::Done => "done",
        };
        f.debug_struct("Fetch").field("state", &state).finish()
    }
}

impl Future for Fetch {
    type Output = Result<FullResponse, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if matches!(this.state, State::Start(_)) {
            let State::Start(request) = mem::replace(&mut this.state, State::Done) else {
                unreachable!("checked above");
            };
            match request.dispatch() {
                Ok((client, id, slot)) => this.state = State::Waiting { client, id, slot },
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let State::Waiting { slot, .. } = &this.state else {
            panic!("Fetch polled after it completed");
        };
        let poll = slot.poll(cx);
        if poll.is_ready() {
            this.state = State::Done;
        }
        poll
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if let State::Waiting { client, id, slot } = &self.state
            && !slot.is_done()
        {
            // A reactor that is gone has nothing left to cancel.
            let _ = client.to_host(HostMsg::Cancel(*id));
        }
    }
}
