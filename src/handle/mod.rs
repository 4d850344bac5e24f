//! A client for other threads: [`SharedClient`] is a `Send + Sync + Clone` handle on an
//! [`HttpClient`] that lives on the reactor thread. Requests are described on any thread
//! ([`SharedRequest`], plain data), carried to the reactor through its [`Remote`], fetched
//! there by the client's wrapper chain (one cookie jar, one redirect policy, one pool for
//! every thread), and answered through a [`Fetch`] future or a blocking wait.
//!
//! The layering stays one way: this module sits on the client layer, which knows nothing of
//! it. The reactor side is a handler of the reactor (its host), found by id: what crosses
//! threads is ids, the request description and the result.
//!
//! [`ReactorPool`] runs one such reactor per core, each with its own client, and spreads
//! requests over them.

mod oneshot;
mod pool;
mod request;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, ThreadId};

use rustc_hash::FxHashMap;

use crate::client::{ClientBuilder, HttpClient, RequestHandle};
use crate::reactor::{Ctx, HandlerId, Protocol, ReactorGone, Remote};

pub use pool::{ReactorPool, ReactorThreadError};
use request::Job;
pub use request::{Fetch, SharedRequest};

/// A thread-safe handle on an [`HttpClient`] that lives on a reactor's thread: cheap to
/// clone, `Send + Sync`, usable from any thread (a tokio multi-thread runtime, a worker pool,
/// plain threads).
///
/// Each request is described here ([`SharedClient::get`] and the other methods return a
/// [`SharedRequest`]), then run on the reactor thread by the client's wrapper chain, which
/// was set up there: cookies set by a response to one thread are sent with the requests of
/// every other, redirects and authentication follow one policy, connections are pooled
/// together. [`SharedRequest::fetch`] returns a future (`std::task` only: any executor
/// drives it); [`SharedRequest::fetch_blocking`] waits on the calling thread.
///
/// The reactor must be running ([`Reactor::run`](crate::Reactor::run) on its thread, or turned
/// by a host loop) for requests to progress. If the reactor is dropped, every pending request
/// fails with [`Cause::AgentClosed`](crate::Cause::AgentClosed), and so does every later one,
/// at once: nothing waits forever on a reactor that is gone. A reactor stopped but kept alive
/// simply holds its requests until it turns again.
///
/// ```no_run
/// use weft::{HttpClient, Reactor, SharedClient};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let reactor_thread = std::thread::spawn(move || {
///     let mut reactor = Reactor::new().unwrap();
///     tx.send((HttpClient::builder().build_shared(reactor.ctx()), reactor.remote()))
///         .unwrap();
///     reactor.run().unwrap();
/// });
/// let (client, remote): (SharedClient, _) = rx.recv().unwrap();
///
/// let workers: Vec<_> = (0..4)
///     .map(|i| {
///         let client = client.clone();
///         std::thread::spawn(move || {
///             let r = client
///                 .get("http://127.0.0.1:8080/get")
///                 .query("worker", &i.to_string())
///                 .fetch_blocking();
///             println!("{i}: {:?}", r.map(|r| r.code));
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// remote.call(|ctx| ctx.stop()).unwrap();
/// reactor_thread.join().unwrap();
/// ```
#[derive(Clone)]
pub struct SharedClient {
    inner: Arc<Inner>,
}

struct Inner {
    remote: Remote,
    /// The [`Host`] handler that holds the client on the reactor thread.
    host: HandlerId,
    /// The reactor's thread, where a blocking wait would never end.
    reactor_thread: ThreadId,
    next_id: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every future holds the handle, so no request of this client is waiting any more.
        let host = self.host;
        let _ = self
            .remote
            .call(move |ctx| Envelope::post(ctx, host, HostMsg::Close));
    }
}

impl fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClient")
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Builds the client on this reactor (call it on the reactor's thread) and returns a
    /// [`SharedClient`] handle on it for other threads. The client has its own agent; when
    /// the last handle (and the last of its futures) is gone, the agent is shut down and its
    /// connections closed.
    pub fn build_shared(self, ctx: &mut Ctx) -> SharedClient {
        let client = self.build(ctx);
        SharedClient::install(ctx, client, true)
    }
}

impl SharedClient {
    /// A handle on a client with the builder's defaults
    /// (`HttpClient::builder().build_shared(ctx)`).
    pub fn new(ctx: &mut Ctx) -> Self {
        HttpClient::builder().build_shared(ctx)
    }

    /// A handle on `client`, which keeps serving the reactor thread too (sharing its pool,
    /// cookie jar and wrappers with every thread). Call it on the reactor's thread. Its agent
    /// is left running when the handles are gone.
    pub fn from_client(ctx: &mut Ctx, client: HttpClient) -> Self {
        SharedClient::install(ctx, client, false)
    }

    fn install(ctx: &mut Ctx, client: HttpClient, owns_pool: bool) -> Self {
        let host = ctx.add_handler(Box::new(Host {
            client,
            owns_pool,
            in_flight: FxHashMap::default(),
        }));
        SharedClient {
            inner: Arc::new(Inner {
                remote: ctx.remote(),
                host,
                reactor_thread: thread::current().id(),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// A request with any method.
    pub fn request(&self, method: &str, url: &str) -> SharedRequest {
        SharedRequest::new(self.clone(), method, url)
    }

    /// A `GET` request.
    pub fn get(&self, url: &str) -> SharedRequest {
        self.request("GET", url)
    }

    /// A `HEAD` request.
    pub fn head(&self, url: &str) -> SharedRequest {
        self.request("HEAD", url)
    }

    /// A `POST` request.
    pub fn post(&self, url: &str) -> SharedRequest {
        self.request("POST", url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: &str) -> SharedRequest {
        self.request("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(&self, url: &str) -> SharedRequest {
        self.request("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: &str) -> SharedRequest {
        self.request("DELETE", url)
    }

    /// An `OPTIONS` request.
    pub fn options(&self, url: &str) -> SharedRequest {
        self.request("OPTIONS", url)
    }

    /// Runs `f` with the client on the reactor thread, at the reactor's next iteration: to
    /// read its cookie jar or pool statistics, or to use what only the reactor side offers
    /// (streamed bodies, downloads). Fails if the reactor is gone.
    pub fn with_client(
        &self,
        f: impl FnOnce(&mut Ctx, &HttpClient) + Send + 'static,
    ) -> Result<(), ReactorGone> {
        self.to_host(HostMsg::With(Box::new(f)))
    }

    /// Delivers `msg` to the host handler on the reactor thread.
    fn to_host(&self, msg: HostMsg) -> Result<(), ReactorGone> {
        let host = self.inner.host;
        // Boxed on the reactor side: a `Box<dyn Any>` is not `Send`.
        self.inner
            .remote
            .call(move |ctx| Envelope::post(ctx, host, msg))
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn on_reactor_thread(&self) -> bool {
        thread::current().id() == self.inner.reactor_thread
    }
}

type WithClient = Box<dyn FnOnce(&mut Ctx, &HttpClient) + Send>;

/// A message to the [`Host`], with the host's own id (which it needs to post to itself and
/// to go away).
struct Envelope {
    host: HandlerId,
    msg: HostMsg,
}

impl Envelope {
    /// Posts `msg` to the host `host` (the one way messages reach it).
    fn post(ctx: &mut Ctx, host: HandlerId, msg: HostMsg) {
        ctx.post(host, Box::new(Envelope { host, msg }));
    }
}

/// What the handles ask of the [`Host`].
enum HostMsg {
    Fetch(Job),
    /// A future was dropped before its answer: cancel its request (by the handle's id).
    Cancel(u64),
    /// A request answered: forget its handle.
    Done(u64),
    With(WithClient),
    /// The last handle is gone.
    Close,
}

/// The reactor side of a [`SharedClient`]: the client, and the requests in flight by id so
/// that a dropped future can cancel its own. Dropped with the reactor, which drops every
/// pending request's reply with it (so its waiter gets an error).
struct Host {
    client: HttpClient,
    owns_pool: bool,
    in_flight: FxHashMap<u64, RequestHandle>,
}

impl Host {
    fn fetch(&mut self, ctx: &mut Ctx, job: Job, me: HandlerId) {
        let Job {
            id,
            method,
            url,
            ops,
            mut reply,
        } = job;
        // The builder's own methods, replayed: the description means what they mean.
        let mut builder = self.client.request(&method, &url);
        for op in ops {
            builder = op.apply(builder);
        }
        reply.issued();
        let handle = builder.fetch(ctx, move |ctx, result| {
            Envelope::post(ctx, me, HostMsg::Done(id));
            reply.send(result);
        });
        self.in_flight.insert(id, handle);
    }
}

impl Protocol for Host {
    fn data_received(&mut self, _: &mut Ctx, _: crate::reactor::ConnId, _: &[u8]) {}

    fn message(&mut self, ctx: &mut Ctx, msg: Box<dyn Any>) {
        let Ok(envelope) = msg.downcast::<Envelope>() else {
            debug_assert!(false, "a SharedClient host got a message of another type");
            return;
        };
        let Envelope { host: me, msg } = *envelope;
        match msg {
            HostMsg::Fetch(job) => self.fetch(ctx, job, me),
            HostMsg::Cancel(id) => {
                if let Some(handle) = self.in_flight.remove(&id) {
                    handle.cancel(ctx);
                }
            }
            HostMsg::Done(id) => {
                self.in_flight.remove(&id);
            }
            HostMsg::With(f) => f(ctx, &self.client),
            HostMsg::Close => {
                if self.owns_pool
                    && let Some(agent) = self.client.pool()
                {
                    agent.shutdown(ctx);
                }
                // Requests still in flight (their futures dropped) end with the agent.
                ctx.remove_handler(me);
            }
        }
    }
}
