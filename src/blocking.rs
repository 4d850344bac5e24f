//! A blocking client (Tornado's `HTTPClient`): its own [`Reactor`] and [`Agent`], turned on
//! the calling thread until each call completes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use url::Url;

use crate::client::{
    Agent, AgentConfig, Cause, DownloadOptions, Downloaded, Error, HttpAgent, Phase, PoolStats,
    PreviousResponse, Request, Timing, download,
};
use crate::proto::{Headers, Version};
use crate::reactor::{Reactor, TransportError};

/// A response read whole by the blocking [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingResponse {
    /// Protocol version of the response.
    pub version: Version,
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub phrase: Cow<'static, str>,
    /// Header fields, in the order received.
    pub headers: Headers,
    /// Trailer fields of a chunked body (empty otherwise).
    pub trailers: Headers,
    /// The URL requested.
    pub url: Url,
    /// The body.
    pub body: Vec<u8>,
    /// False when the body was delimited by the connection closing, so a truncation could
    /// not be detected.
    pub complete: bool,
    /// When each phase of the request ended.
    pub timing: Timing,
    /// Earlier responses that led here (redirects, authentication challenges), oldest first.
    pub history: Vec<PreviousResponse>,
}

/// A blocking HTTP client: each call runs the client's own reactor on the calling thread
/// until the response is complete, then returns. Its connection pool persists across calls.
///
/// Because it owns its reactor, it works on any thread, including one that is running the
/// callbacks of another reactor (the other reactor simply waits meanwhile). A `Client` is not
/// `Send`: create one per thread. Errors are the same [`Error`] values as the callback API.
/// Idle pooled connections are not serviced between calls; a connection the server closed
/// meanwhile is noticed at the next call. A call waits as long as the agent lets it:
/// [`AgentConfig::timeout`] bounds each call (300 s by default).
///
/// ```no_run
/// use weft::blocking::Client;
/// let mut client = Client::with_defaults().unwrap();
/// let response = client.get("http://127.0.0.1:8080/hello.txt").unwrap();
/// println!("{} {} bytes", response.code, response.body.len());
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
    agent: Agent,
    /// What requests go through: the agent itself, or the wrappers around it.
    chain: Rc<dyn HttpAgent>,
    max_body: u64,
}

impl Client {
    /// The default cap on a response body read into memory: 64 MiB.
    pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

    /// A client with these agent settings.
    pub fn new(config: AgentConfig) -> io::Result<Client> {
        Client::with_wrappers(config, |agent| agent)
    }

    /// A client whose requests go through the wrappers `wrap` builds around its agent
    /// (redirects, cookies, authentication, decoding...), with the same options and errors
    /// as on a reactor.
    ///
    /// ```no_run
    /// # #[cfg(feature = "cookies")] {
    /// use weft::blocking::Client;
    /// use weft::client::{AgentConfig, CookieAgent, CookieJar, RedirectAgent, RedirectConfig};
    /// let mut client = Client::with_wrappers(AgentConfig::default(), |agent| {
    ///     RedirectAgent::new(CookieAgent::new(agent, CookieJar::new()), RedirectConfig::default())
    /// })
    /// .unwrap();
    /// let response = client.get("http://127.0.0.1:8080/redirect").unwrap();
    /// println!("{} after {} hops", response.code, response.history.len());
    /// # }
    /// ```
    pub fn with_wrappers<A: HttpAgent>(
        config: AgentConfig,
        wrap: impl FnOnce(Agent) -> A,
    ) -> io::Result<Client> {
        let mut reactor = Reactor::new()?;
        let agent = Agent::new(reactor.ctx(), config);
        Ok(Client {
            reactor,
            agent,
            chain: Rc::new(wrap(agent)),
            max_body: Client::DEFAULT_MAX_BODY,
        })
    }

    /// A client with [`AgentConfig::default`].
    pub fn with_defaults() -> io::Result<Client> {
        Client::new(AgentConfig::default())
    }

    /// Sets the largest body [`Client::request`] reads into memory; a larger one fails with
    /// [`Cause::BodyTooLarge`] (and its connection is closed).
    pub fn set_max_body(&mut self, max: u64) {
        self.max_body = max;
    }

    /// The cap on bodies read into memory.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// `GET url`.
    pub fn get(&mut self, url: &str) -> Result<BlockingResponse, Error> {
        self.request(Request::get(url))
    }

    /// Sends `request` and reads the whole response.
    ///
    /// ```no_run
    /// use weft::blocking::Client;
    /// use weft::client::Request;
    /// let mut client = Client::with_defaults().unwrap();
    /// let req = Request::new("POST", "http://127.0.0.1:8080/post")
    ///     .header("Content-Type", "application/json")
    ///     .body_bytes(r#"{"a":1}"#);
    /// let response = client.request(req).unwrap();
    /// assert_eq!(response.code, 200);
    /// ```
    pub fn request(&mut self, request: Request) -> Result<BlockingResponse, Error> {
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        let max = self.max_body;
        self.prepare()?;
        self.chain.request(
            self.reactor.ctx(),
            request,
            Box::new(move |ctx, result| match result {
                Err(e) => *out.borrow_mut() = Some(Err(e)),
                Ok(response) => {
                    let mut head = BlockingResponse {
                        version: response.version,
                        code: response.code,
                        phrase: response.phrase.clone(),
                        headers: response.headers.clone(),
                        trailers: Headers::new(),
                        url: (*response.url).clone(),
                        body: Vec::new(),
                        complete: false,
                        timing: response.timing,
                        history: response.history.clone(),
                    };
                    response.collect(ctx, max, move |_ctx, body| {
                        *out.borrow_mut() = Some(body.map(|b| {
                            head.body = b.body;
                            head.trailers = b.trailers;
                            head.complete = b.complete;
                            head
                        }));
                    });
                }
            }),
        );
        self.wait(&slot)
    }

    /// Downloads the response to `request` into the file `path` (see
    /// [`crate::client::download`] for the partial file, resume and failure rules).
    ///
    /// ```no_run
    /// use weft::blocking::Client;
    /// use weft::client::{DownloadOptions, Request};
    /// let mut client = Client::with_defaults().unwrap();
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
            &self.chain,
            request,
            path,
            options,
            move |_ctx, result| *out.borrow_mut() = Some(result),
        );
        self.wait(&slot)
    }

    /// The pool's counts.
    pub fn stats(&mut self) -> Result<PoolStats, Error> {
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        self.agent.stats(self.reactor.ctx(), move |_ctx, stats| {
            *out.borrow_mut() = Some(Ok(stats));
        });
        self.wait(&slot)
    }

    /// Closes every idle pooled connection.
    pub fn close_idle(&mut self) -> Result<(), Error> {
        self.agent.close_idle(self.reactor.ctx());
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
            .field("agent", &self.agent)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}
