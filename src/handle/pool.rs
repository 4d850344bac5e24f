//! [`ReactorPool`]: one reactor thread per core, each with its own client, and requests
//! spread over them.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use rustc_hash::FxHasher;

use crate::client::ClientBuilder;
use crate::reactor::{Reactor, Remote};

use super::{SharedClient, SharedRequest};

/// Builds the client of one reactor thread, given the thread's index (`0..threads`). It runs
/// on that thread, since a [`ClientBuilder`] is not `Send`.
type Build = dyn Fn(usize) -> ClientBuilder + Send + Sync;

/// N threads, each running its own [`Reactor`] with its own client (its own
/// agent, connection pool, cookie jar and wrappers), and a handle that spreads requests over
/// them: the way to use every core of a machine.
///
/// [`ReactorPool::get`] and the other request methods pick the next reactor in turn (one
/// atomic counter); [`ReactorPool::client_for`] always picks the same reactor for the same
/// key (a host, a tenant), so that its requests reuse that reactor's pooled connections. The
/// picked [`SharedClient`] is used as usual, from any thread.
///
/// Nothing on the request path is shared by all reactors but that counter: a request takes
/// the lock of its own reactor's call queue (shared only with the threads that submit to that
/// reactor, held for one push), wakes that reactor (one `eventfd` write), and its answer
/// comes back through a slot of its own. What the reactors do not share either: connections,
/// idle pools and per-host limits are per reactor, so `max_active_per_host` applies to each
/// reactor separately, and a cookie set on one reactor is not seen by the others (build the
/// clients with cookies off, or shard by host with [`ReactorPool::client_for`]).
///
/// Dropping the pool (or [`ReactorPool::shutdown`]) stops every reactor and joins its thread.
/// Requests still in flight then fail with [`Cause::AgentClosed`](crate::Cause::AgentClosed),
/// and so does every later request through a [`SharedClient`] taken from the pool: nothing
/// waits on a reactor that is gone. A reactor thread that panics (in a
/// [`SharedClient::with_client`] callback) drops its reactor, so its requests fail the same
/// way; [`ReactorPool::shutdown`] reports the panic.
///
/// ```no_run
/// use weft::HttpClient;
/// use weft::handle::ReactorPool;
///
/// let pool = ReactorPool::per_core(|_thread| HttpClient::builder())?;
/// let workers: Vec<_> = (0..8)
///     .map(|i| {
///         let client = pool.client().clone();
///         std::thread::spawn(move || {
///             let r = client.get("http://127.0.0.1:8080/").fetch_blocking();
///             println!("{i}: {:?}", r.map(|r| r.code));
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// pool.shutdown().map_err(|mut errors| errors.remove(0))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReactorPool {
    clients: Vec<SharedClient>,
    workers: Vec<Worker>,
    next: AtomicUsize,
}

/// One reactor thread, as the pool sees it.
struct Worker {
    remote: Remote,
    /// `None` once joined.
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl fmt::Debug for ReactorPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorPool")
            .field("threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl ReactorPool {
    /// Starts `threads` reactor threads (named `weft-reactor-I`); `build(i)` runs on thread
    /// `i` and returns the builder of its client. Returns once every client is built. If one
    /// thread cannot start, the others are stopped and joined, and the error says which
    /// thread failed and how.
    pub fn new(
        threads: usize,
        build: impl Fn(usize) -> ClientBuilder + Send + Sync + 'static,
    ) -> Result<Self, ReactorThreadError> {
        if threads == 0 {
            return Err(ReactorThreadError::NoThreads);
        }
        let build: Arc<Build> = Arc::new(build);
        let mut pool = ReactorPool {
            clients: Vec::with_capacity(threads),
            workers: Vec::with_capacity(threads),
            next: AtomicUsize::new(0),
        };
        for index in 0..threads {
            // On an error, `pool` is dropped, which stops and joins the threads started.
            let (client, worker) = start(index, build.clone())?;
            pool.clients.push(client);
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// One reactor thread per core the process may run on
    /// ([`std::thread::available_parallelism`]; one if that is unknown).
    pub fn per_core(
        build: impl Fn(usize) -> ClientBuilder + Send + Sync + 'static,
    ) -> Result<Self, ReactorThreadError> {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        ReactorPool::new(threads, build)
    }

    /// How many reactor threads the pool runs.
    pub fn threads(&self) -> usize {
        self.clients.len()
    }

    /// The client of the next reactor in turn.
    pub fn client(&self) -> &SharedClient {
        // Relaxed: the counter only spreads the load; no other memory depends on it.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
    }

    /// The client of the reactor that `key` maps to: the same key always picks the same
    /// reactor, so a host's requests share that reactor's pooled connections.
    pub fn client_for(&self, key: impl Hash) -> &SharedClient {
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        let i = (hasher.finish() % self.clients.len() as u64) as usize;
        &self.clients[i]
    }

    /// The client of reactor thread `index`, if there is one.
    pub fn client_at(&self, index: usize) -> Option<&SharedClient> {
        self.clients.get(index)
    }

    /// A request with any method, on the next reactor in turn.
    pub fn request(&self, method: &str, url: &str) -> SharedRequest {
        self.client().request(method, url)
    }

    /// A `GET` request, on the next reactor in turn.
    pub fn get(&self, url: &str) -> SharedRequest {
        self.client().get(url)
    }

    /// A `POST` request, on the next reactor in turn.
    pub fn post(&self, url: &str) -> SharedRequest {
        self.client().post(url)
    }

    /// Stops every reactor, joins every thread, and reports each thread that failed: its
    /// reactor's loop returned an I/O error, or it panicked. Requests still in flight fail
    /// with [`Cause::AgentClosed`](crate::Cause::AgentClosed).
    pub fn shutdown(mut self) -> Result<(), Vec<ReactorThreadError>> {
        let errors = self.stop_and_join();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn stop_and_join(&mut self) -> Vec<ReactorThreadError> {
        // The pool's handles go first: each asks its reactor to shut its agent down, before
        // the stop queued next.
        self.clients.clear();
        for worker in &self.workers {
            // A reactor already gone (its thread ended) has nothing to stop.
            let _ = worker.remote.call(|ctx| ctx.stop());
        }
        let me = thread::current().id();
        let mut errors = Vec::new();
        for (index, worker) in self.workers.iter_mut().enumerate() {
            let Some(handle) = worker.thread.take() else {
                continue;
            };
            // Dropped from one of its own reactor threads: that thread ends when its
            // callback returns; joining it here would wait on ourselves.
            if handle.thread().id() == me {
                continue;
            }
            if let Err(e) = joined(index, handle.join()) {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for ReactorPool {
    fn drop(&mut self) {
        for e in self.stop_and_join() {
            log::warn!("{e}");
        }
    }
}

/// Starts reactor thread `index` and waits until its client is built.
fn start(index: usize, build: Arc<Build>) -> Result<(SharedClient, Worker), ReactorThreadError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let thread = thread::Builder::new()
        .name(format!("weft-reactor-{index}"))
        .spawn(move || -> io::Result<()> {
            let mut reactor = match Reactor::new() {
                Ok(reactor) => reactor,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            let client = build(index).build_shared(reactor.ctx());
            if tx.send(Ok((client, reactor.remote()))).is_err() {
                return Ok(());
            }
            // The reactor is dropped when this returns, failing whatever is still pending.
            reactor.run()
        })
        .map_err(|source| ReactorThreadError::Spawn {
            thread: index,
            source,
        })?;
    match rx.recv() {
        Ok(Ok((client, remote))) => Ok((
            client,
            Worker {
                remote,
                thread: Some(thread),
            },
        )),
        Ok(Err(source)) => {
            let _ = thread.join();
            Err(ReactorThreadError::Reactor {
                thread: index,
                source,
            })
        }
        // The sender is gone without a word: `build` panicked.
        Err(mpsc::RecvError) => Err(match joined(index, thread.join()) {
            Err(e) => e,
            Ok(()) => ReactorThreadError::Panicked {
                thread: index,
                message: "the thread ended before its client was built".to_string(),
            },
        }),
    }
}

/// What a joined reactor thread left behind.
fn joined(index: usize, result: thread::Result<io::Result<()>>) -> Result<(), ReactorThreadError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ReactorThreadError::Reactor {
            thread: index,
            source,
        }),
        Err(payload) => Err(ReactorThreadError::Panicked {
            thread: index,
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not a string".to_string()
    }
}

/// Why a [`ReactorPool`] could not start, or what went wrong on one of its threads.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReactorThreadError {
    /// A pool of zero threads was asked for.
    NoThreads,
    /// The operating system refused to start thread `thread`.
    Spawn {
        /// Index of the thread.
        thread: usize,
        /// The error of `std::thread::Builder::spawn`.
        source: io::Error,
    },
    /// Thread `thread` could not create its reactor, or its reactor's loop failed.
    Reactor {
        /// Index of the thread.
        thread: usize,
        /// The reactor's I/O error.
        source: io::Error,
    },
    /// Thread `thread` panicked (in its client's builder, or on its reactor).
    Panicked {
        /// Index of the thread.
        thread: usize,
        /// The panic's message.
        message: String,
    },
}

impl fmt::Display for ReactorThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReactorThreadError::NoThreads => f.write_str("a reactor pool needs at least 1 thread"),
            ReactorThreadError::Spawn { thread, source } => {
                write!(f, "cannot start reactor thread {thread}: {source}")
            }
            ReactorThreadError::Reactor { thread, source } => {
                write!(f, "reactor thread {thread} failed: {source}")
            }
            ReactorThreadError::Panicked { thread, message } => {
                write!(f, "reactor thread {thread} panicked: {message}")
            }
        }
    }
}

impl StdError for ReactorThreadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ReactorThreadError::Spawn { source, .. }
            | ReactorThreadError::Reactor { source, .. } => Some(source),
            _ => None,
        }
    }
}
