//! A blocking client (Tornado's `HTTPClient`, ureq's shape): its own [`Reactor`] and
//! [`HttpClient`], turned on the calling thread until each call completes.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use crate::client::Cause;
use crate::client::{
    ClientBuilder, DownloadOptions, Downloaded, Error, FullResponse, HttpClient, Phase, PoolStats,
    Request, RequestBuilder, download,
};
use crate::reactor::{Reactor, TransportError};

/// A blocking HTTP client: each call runs the client's own reactor on the calling thread
/// until the response is complete, then returns. Its connection pool, cookie jar and wrappers
/// persist across calls; it is configured by the same [`ClientBuilder`] as [`HttpClient`]
/// (treq's defaults: redirects, cookies, decoding), and answers with the same
/// [`FullResponse`] and [`Error`] values.
///
/// Because it owns its reactor, it works on any thread, including one that is running the
/// callbacks of another reactor (the other reactor simply waits meanwhile). A `Client` is not
/// `Send`: create one per thread (its responses are `Send`). Idle pooled connections are not
/// serviced between calls; a connection the server closed meanwhile is noticed at the next
/// call. A call waits as long as the agent lets it:
/// [`AgentConfig::timeout`](crate::client::AgentConfig::timeout) bounds each call (300 s by
/// default).
///
/// ```no_run
/// use weft::blocking::Client;
/// let mut client = Client::new().unwrap();
/// let response = client.get("http://127.0.0.1:8080/hello.txt").unwrap();
/// println!("{} {}", response.code, response.text());
///
/// // The same request builder as on a reactor:
/// let created = client
///     .fetch(client.request("POST", "http://127.0.0.1:8080/post").form(&[("a", "1")]))
///     .unwrap();
/// println!("{} after {} redirects", created.code, created.history.len());
/// ```
///
/// Not `Send`:
///
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<weft::blocking::Client>();
/// ```
pub struct Client {
    reactor: Reactor,
    client: HttpClient,
}

impl ClientBuilder {
    /// Builds a blocking [`Client`] with these settings, on a reactor of its own.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use weft::blocking::Client;
    /// let mut client = Client::builder()
    ///     .redirects(false)
    ///     .timeout(Duration::from_secs(5))
    ///     .build_blocking()
    ///     .unwrap();
    /// let response = client.get("http://127.0.0.1:8080/redirect").unwrap();
    /// assert_eq!(response.code, 302);
    /// ```
    pub fn build_blocking(self) -> io::Result<Client> {
        let mut reactor = Reactor::new()?;
        let client = self.build(reactor.ctx());
        Ok(Client { reactor, client })
    }
}

impl Client {
    /// The default cap on a response body read into memory: 64 MiB.
    pub const DEFAULT_MAX_BODY: u64 = HttpClient::DEFAULT_MAX_BODY;

    /// A client with the builder's defaults (`Client::builder().build_blocking()`).
    pub fn new() -> io::Result<Client> {
        Client::builder().build_blocking()
    }

    /// The session builder; finish with [`ClientBuilder::build_blocking`].
    pub fn builder() -> ClientBuilder {
        HttpClient::builder()
    }

    /// A request to build (query, form, JSON, file bodies, timeouts, auth), then run with
    /// [`Client::fetch`].
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// `GET url`, read whole.
    pub fn get(&mut self, url: &str) -> Result<FullResponse, Error> {
        self.fetch(self.client.get(url))
    }

    /// Sends the request `builder` describes and reads the whole response (up to the
    /// builder's `max_body`).
    pub fn fetch(&mut self, builder: RequestBuilder) -> Result<FullResponse, Error> {
        self.fetch_into(builder, Vec::new())
    }

    /// [`Client::fetch`] reading the body into `buffer`'s allocation (its contents are
    /// cleared): hand back an earlier response's `body` to reuse its memory when downloading
    /// large bodies one after another
    /// ([`RequestBuilder::fetch_into`](crate::client::RequestBuilder::fetch_into)).
    ///
    /// ```no_run
    /// use weft::blocking::Client;
    /// let mut client = Client::new().unwrap();
    /// let mut body = Vec::new();
    /// for _ in 0..10 {
    ///     let builder = client.request("GET", "http://127.0.0.1:8080/big.bin");
    ///     let r = client.fetch_into(builder, body).unwrap();
    ///     println!("{} bytes", r.body.len());
    ///     body = r.body;
    /// }
    /// ```
    pub fn fetch_into(
        &mut self,
        builder: RequestBuilder,
        buffer: Vec<u8>,
    ) -> Result<FullResponse, Error> {
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        self.prepare()?;
        builder.fetch_into(self.reactor.ctx(), buffer, move |_ctx, result| {
            *out.borrow_mut() = Some(result);
        });
        self.wait(&slot)
    }

    /// Sends a [`Request`] made beforehand and reads the whole response, with the client's
    /// defaults (body cap, `error_for_status`).
    ///
    /// ```no_run
    /// use weft::blocking::Client;
    /// use weft::client::Request;
    /// let mut client = Client::new().unwrap();
    /// let req = Request::new("POST", "http://127.0.0.1:8080/post")
    ///     .header("Content-Type", "application/json")
    ///     .body_bytes(r#"{"a":1}"#);
    /// let response = client.send(req).unwrap();
    /// assert_eq!(response.code, 200);
    /// ```
    pub fn send(&mut self, request: Request) -> Result<FullResponse, Error> {
        self.fetch(self.client.send_request(request))
    }

    /// The client underneath (its cookie jar, validator cache, chain).
    pub fn http_client(&self) -> &HttpClient {
        &self.client
    }

    /// Downloads the response to `request` into the file `path` (see
    /// [`crate::client::download`] for the partial file, resume and failure rules).
    ///
    /// ```no_run
    /// use weft::blocking::Client;
    /// use weft::client::{DownloadOptions, Request};
    /// let mut client = Client::new().unwrap();
    /// let done = client.download(Request::get("http://127.0.0.1:8080/big.bin"), "big.bin",
    ///     DownloadOptions::default()).unwrap();
    /// println!("{} bytes", done.bytes);
    /// ```
    pub fn download(
        &mut self,
        request: Request,
        path: impl Into<PathBuf>,
        options: DownloadOptions,
    ) -> Result<Downloaded, Error> {
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        self.prepare()?;
        download(
            self.reactor.ctx(),
            self.client.agent(),
            request,
            path,
            options,
            move |_ctx, result| *out.borrow_mut() = Some(result),
        );
        self.wait(&slot)
    }

    /// The pool's counts.
    pub fn stats(&mut self) -> Result<PoolStats, Error> {
        let Some(pool) = self.client.pool() else {
            return Ok(PoolStats::default());
        };
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        pool.stats(self.reactor.ctx(), move |_ctx, stats| {
            *out.borrow_mut() = Some(Ok(stats));
        });
        self.wait(&slot)
    }

    /// Closes every idle pooled connection.
    pub fn close_idle(&mut self) -> Result<(), Error> {
        if let Some(pool) = self.client.pool() {
            pool.close_idle(self.reactor.ctx());
        }
        self.turn(Some(std::time::Duration::ZERO))
    }

    /// Takes in what happened since the last call (a pooled connection the server closed),
    /// without waiting, so the next request does not pick a dead connection.
    fn prepare(&mut self) -> Result<(), Error> {
        self.turn(Some(std::time::Duration::ZERO))
    }

    /// Turns the reactor until `slot` is filled; each turn sleeps until readiness or the
    /// next timer.
    fn wait<T>(&mut self, slot: &Rc<RefCell<Option<Result<T, Error>>>>) -> Result<T, Error> {
        loop {
            if let Some(result) = slot.borrow_mut().take() {
                return result;
            }
            self.turn(None)?;
        }
    }

    fn turn(&mut self, timeout: Option<std::time::Duration>) -> Result<(), Error> {
        self.reactor.turn(timeout).map_err(|e| {
            Error::new(
                Phase::RequestNotSent,
                Cause::Transport(TransportError::Io(e.kind(), e.to_string())),
            )
        })
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}
