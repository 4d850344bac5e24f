//! `HttpClient`: the convenience layer users call (treq's and Tornado's shape) — request
//! builders with query, form, JSON and file bodies; whole-body responses with text and JSON
//! helpers; per-request timing and sizes; bounded concurrency over many URLs.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine;
use url::Url;

use crate::proto::Headers;
use crate::reactor::Ctx;

use super::agent::Agent;
use super::bounded::{Slot, run_bounded};
use super::error::{Cause, Error, Phase};
use super::full::FullResponse;
use super::producer::{BodyProducer, BytesProducer, ReadProducer};
use super::request::{HttpAgent, IntoUrl, Request, RequestHandle, Timeouts};
use super::response::Response;
use super::wrappers::conditional::ValidatorCache;
#[cfg(feature = "cookies")]
use super::wrappers::cookies::CookieJar;

/// A convenient HTTP client on a reactor: build a request, then stream or fetch the response.
/// Cheap to clone; clones share the connection pool, the cookie jar and the wrapper chain.
///
/// Made by [`HttpClient::builder`], which stacks treq's defaults (redirects, cookies,
/// content decoding) over an [`Agent`] in the one safe order, or by [`HttpClient::new`] with
/// those defaults as they are.
///
/// ```no_run
/// use weft::{HttpClient, Reactor};
///
/// let mut reactor = Reactor::new().unwrap();
/// let client = HttpClient::new(reactor.ctx());
/// client
///     .get("http://127.0.0.1:8080/search")
///     .query("q", "weft")
///     .header("Accept", "application/json")
///     .fetch(reactor.ctx(), |ctx, result| {
///         match result {
///             Ok(r) => println!("{} {}", r.code, r.text()),
///             Err(e) => eprintln!("{e}"),
///         }
///         ctx.stop();
///     });
/// reactor.run().unwrap();
/// ```
#[derive(Clone)]
pub struct HttpClient {
    chain: Rc<dyn HttpAgent>,
    parts: Rc<Parts>,
}

/// What an [`HttpClient`] keeps beside its chain.
pub(crate) struct Parts {
    /// The agent at the bottom of the chain, when the client made it.
    pub(crate) pool: Option<Agent>,
    /// Largest body `fetch` reads into memory.
    pub(crate) max_body: u64,
    /// Whether non-2xx statuses fail requests by default.
    pub(crate) error_for_status: bool,
    /// The cookie jar in the chain, if any.
    #[cfg(feature = "cookies")]
    pub(crate) cookies: Option<CookieJar>,
    /// The validator cache in the chain, if any.
    pub(crate) cache: Option<ValidatorCache>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("pool", &self.parts.pool)
            .field("max_body", &self.parts.max_body)
            .field("error_for_status", &self.parts.error_for_status)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The default cap on a body read into memory: 64 MiB.
    pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

    /// A client on this reactor with the builder's defaults: its own [`Agent`] with
    /// [`AgentConfig::default`](super::AgentConfig::default), redirects followed, cookies kept, bodies decoded. Same as
    /// `HttpClient::builder().build(ctx)`.
    pub fn new(ctx: &mut Ctx) -> Self {
        HttpClient::builder().build(ctx)
    }

    /// A client from its parts (the session builder makes them).
    pub(crate) fn from_parts(chain: Rc<dyn HttpAgent>, parts: Parts) -> Self {
        HttpClient {
            chain,
            parts: Rc::new(parts),
        }
    }

    /// The agent at the bottom of the chain (for its pool's [`Agent::stats`] and
    /// [`Agent::close_idle`]); `None` when the client was built over a caller's agent with
    /// [`ClientBuilder::wrap`](super::ClientBuilder::wrap).
    pub fn pool(&self) -> Option<Agent> {
        self.parts.pool
    }

    /// The cookie jar the client keeps cookies in, unless cookies are switched off.
    #[cfg(feature = "cookies")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cookies")))]
    pub fn cookie_jar(&self) -> Option<&CookieJar> {
        self.parts.cookies.as_ref()
    }

    /// The validator cache of conditional requests, when the client was built with one.
    pub fn validator_cache(&self) -> Option<&ValidatorCache> {
        self.parts.cache.as_ref()
    }

    /// The agent requests go through.
    pub fn agent(&self) -> &Rc<dyn HttpAgent> {
        &self.chain
    }

    /// The cap on a body read into memory that requests start with.
    pub fn max_body(&self) -> u64 {
        self.parts.max_body
    }

    /// A request with any method.
    pub fn request(&self, method: &str, url: impl IntoUrl) -> RequestBuilder {
        self.send_request(Request::new(method, url))
    }

    /// A builder for a [`Request`] made beforehand, with this client's defaults (body cap,
    /// `error_for_status`): finish it with `send` or `fetch` like any other.
    pub fn send_request(&self, request: Request) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method: request.method,
            url: request.url,
            query: Vec::new(),
            headers: request.headers,
            body: request.body,
            timeouts: request.timeouts,
            unix_socket: request.unix_socket,
            error_for_status: self.parts.error_for_status,
            max_body: self.parts.max_body,
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("GET", url)
    }

    /// A `HEAD` request.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("HEAD", url)
    }

    /// A `POST` request.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("POST", url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("DELETE", url)
    }

    /// An `OPTIONS` request.
    pub fn options(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request("OPTIONS", url)
    }

    /// Fetches every request with at most `max_in_flight` at once (the Twisted "semaphore"
    /// recipe as one call, built on [`run_bounded`]). `on_each` gets each result with its
    /// index in `requests`, in completion order; `on_done` runs once after the last.
    /// Requests are started lazily, so `requests` may be a long iterator.
    ///
    /// ```no_run
    /// use weft::{HttpClient, Reactor};
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let client = HttpClient::new(reactor.ctx());
    /// let urls: Vec<String> = (0..10_000).map(|i| format!("http://127.0.0.1:8080/{i}")).collect();
    /// let c = client.clone();
    /// client.fetch_all(
    ///     reactor.ctx(),
    ///     urls.into_iter().map(move |u| c.get(&u)),
    ///     50,
    ///     |_, i, result| println!("{i}: {:?}", result.map(|r| r.code)),
    ///     |ctx| ctx.stop(),
    /// );
    /// reactor.run().unwrap();
    /// ```
    pub fn fetch_all(
        &self,
        ctx: &mut Ctx,
        requests: impl IntoIterator<Item = RequestBuilder> + 'static,
        max_in_flight: usize,
        on_each: impl FnMut(&mut Ctx, usize, Result<FullResponse, Error>) + 'static,
        on_done: impl FnOnce(&mut Ctx) + 'static,
    ) {
        let on_each = Rc::new(RefCell::new(on_each));
        let start = move |ctx: &mut Ctx, index, request: RequestBuilder, slot: Slot| {
            let on_each = on_each.clone();
            request.fetch(ctx, move |ctx, result| {
                (on_each.borrow_mut())(ctx, index, result);
                slot.release(ctx);
            });
        };
        run_bounded(ctx, requests, max_in_flight, start, on_done);
    }
}

/// A request being built; finish with [`RequestBuilder::send`] (stream the body) or
/// [`RequestBuilder::fetch`] (read it into memory).
pub struct RequestBuilder {
    client: HttpClient,
    method: Cow<'static, str>,
    url: Rc<str>,
    query: Vec<(String, String)>,
    headers: Headers,
    body: Option<Box<dyn BodyProducer>>,
    timeouts: Timeouts,
    unix_socket: Option<Rc<Path>>,
    error_for_status: bool,
    max_body: u64,
    /// A problem found while building (unreadable file, unserializable JSON), reported when
    /// the request is sent.
    error: Option<Error>,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl RequestBuilder {
    /// Appends a query parameter (percent-encoded).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(name, value.as_ref());
        self
    }

    /// Asks the server to switch the connection to `protocol`: adds `Connection: upgrade`
    /// and `Upgrade: protocol` (see [`Request::upgrade`]). `send` hands the `101` response to
    /// the callback, error-for-status or not, for [`Response::upgrade`].
    pub fn upgrade(self, protocol: &str) -> Self {
        self.header("Connection", "upgrade")
            .header("Upgrade", protocol)
    }

    /// The body, from bytes.
    pub fn body(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Box::new(BytesProducer::new(data)));
        self
    }

    /// The body, from any producer (streamed).
    pub fn producer(mut self, producer: impl BodyProducer) -> Self {
        self.body = Some(Box::new(producer));
        self
    }

    /// The body, streamed from a file (with its length as Content-Length).
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        match ReadProducer::file(path.as_ref()) {
            Ok(p) => self.body = Some(Box::new(p)),
            Err(e) => {
                let msg = format!("{}: {e}", path.as_ref().display());
                self.error = Some(Error::new(Phase::RequestNotSent, Cause::File(msg)));
            }
        }
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, fields: &[(K, V)]) -> Self {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            ser.append_pair(k.as_ref(), v.as_ref());
        }
        self.set_content_type(b"application/x-www-form-urlencoded");
        self.body(ser.finish())
    }

    /// A JSON body (`application/json`).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json(mut self, value: &impl serde::Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.set_content_type(b"application/json");
                self.body(bytes)
            }
            Err(e) => {
                self.error = Some(Error::new(
                    Phase::RequestNotSent,
                    Cause::Producer(format!("cannot encode JSON: {e}")),
                ));
                self
            }
        }
    }

    fn set_content_type(&mut self, value: &[u8]) {
        if !self.headers.contains("content-type") {
            self.headers.append("Content-Type", value);
        }
    }

    /// Sends `Authorization: Basic` with these credentials (RFC 7617), replacing any
    /// `Authorization` field set before. Like every credential field, it is not carried to
    /// another origin by a redirect.
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        let pair = format!("{user}:{}", password.unwrap_or(""));
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        self.headers.set("Authorization", value.as_bytes());
        self
    }

    /// Sends `Authorization: Bearer <token>` (RFC 6750), replacing any `Authorization` field
    /// set before. A token with CR, LF or NUL makes the request fail before anything is sent.
    pub fn bearer_auth(mut self, token: &str) -> Self {
        self.headers
            .set("Authorization", format!("Bearer {token}").as_bytes());
        self
    }

    /// Limit on the whole request, from submission to the end of the body.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeouts.total = Some(limit);
        self
    }

    /// Limit on a silence while the request is active.
    pub fn read_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.read = Some(limit);
        self
    }

    /// Limit on the wait for a free connection.
    pub fn queue_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.queue = Some(limit);
        self
    }

    /// Sends the request over the Unix domain socket at `path` instead of to the URL's host
    /// and port (curl's `--unix-socket`); the URL still gives `Host` and the target, and no
    /// proxy applies. Pooled by path: requests to one path share connections.
    ///
    /// ```no_run
    /// use weft::{HttpClient, Reactor};
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let client = HttpClient::new(reactor.ctx());
    /// client
    ///     .get("http://localhost/v1.43/version")
    ///     .unix_socket("/run/docker.sock")
    ///     .fetch(reactor.ctx(), |ctx, r| {
    ///         println!("{:?}", r.map(|r| r.text()));
    ///         ctx.stop();
    ///     });
    /// reactor.run().unwrap();
    /// ```
    pub fn unix_socket(mut self, path: impl AsRef<Path>) -> Self {
        self.unix_socket = Some(path.as_ref().into());
        self
    }

    /// Whether a non-2xx status fails the request with [`Cause::HttpStatus`].
    pub fn error_for_status(mut self, on: bool) -> Self {
        self.error_for_status = on;
        self
    }

    /// Largest body [`RequestBuilder::fetch`] reads into memory.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The [`Request`] this builder describes.
    pub fn build(self) -> Result<Request, Error> {
        self.into_parts().map(|(req, _)| req)
    }

    fn into_parts(mut self) -> Result<(Request, Options), Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut url = self.url;
        if !self.query.is_empty() {
            let mut parsed = Url::parse(&url).map_err(|e| {
                Error::new(Phase::RequestNotSent, Cause::InvalidUrl(e.to_string())).with_url(&url)
            })?;
            parsed.query_pairs_mut().extend_pairs(&self.query);
            url = String::from(parsed).into();
        }
        let request = Request {
            method: self.method,
            url,
            headers: self.headers,
            body: self.body,
            timeouts: self.timeouts,
            unix_socket: self.unix_socket,
        };
        let options = Options {
            client: self.client,
            error_for_status: self.error_for_status,
            max_body: self.max_body,
        };
        Ok((request, options))
    }

    /// Sends the request; `on_response` gets the response head (stream its body with
    /// [`Response::deliver_body`]) or the error.
    pub fn send(
        self,
        ctx: &mut Ctx,
        on_response: impl FnOnce(&mut Ctx, Result<Response, Error>) + 'static,
    ) -> RequestHandle {
        let (request, options) = match self.into_parts() {
            Ok(parts) => parts,
            Err(e) => return fail_soon(ctx, e, on_response),
        };
        let check = options.error_for_status;
        options.client.chain.request(
            ctx,
            request,
            Box::new(move |ctx, result| match result {
                // A 101 answers an upgrade request (the core refuses any other): it is the
                // success such a request asked for.
                Ok(r) if check && !(200..300).contains(&r.code) && r.code != 101 => {
                    let e = Error::new(Phase::ResponseFailed, Cause::HttpStatus(r.code))
                        .with_url(r.url.as_str());
                    drop(r);
                    on_response(ctx, Err(e));
                }
                other => on_response(ctx, other),
            }),
        )
    }

    /// Sends the request and reads the whole body into memory (up to the client's
    /// `max_body`); `done` gets the [`FullResponse`] or the error.
    pub fn fetch(
        self,
        ctx: &mut Ctx,
        done: impl FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static,
    ) -> RequestHandle {
        self.fetch_into(ctx, Vec::new(), done)
    }

    /// [`RequestBuilder::fetch`] reading the body into `buffer`'s allocation (its contents
    /// are cleared): hand back an earlier response's `body` to reuse its memory when
    /// downloading large bodies one after another ([`Response::collect_into`]).
    ///
    /// ```no_run
    /// use weft::client::HttpClient;
    /// use weft::reactor::{Ctx, Reactor};
    ///
    /// fn next(ctx: &mut Ctx, client: HttpClient, left: u32, buffer: Vec<u8>) {
    ///     let c = client.clone();
    ///     client
    ///         .get("http://127.0.0.1:8080/big.bin")
    ///         .fetch_into(ctx, buffer, move |ctx, result| match result {
    ///             Ok(r) if left > 1 => next(ctx, c, left - 1, r.body),
    ///             Ok(r) => { println!("{} bytes", r.body.len()); ctx.stop() }
    ///             Err(e) => { eprintln!("{e}"); ctx.stop() }
    ///         });
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let client = HttpClient::new(reactor.ctx());
    /// next(reactor.ctx(), client, 10, Vec::new());
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fetch_into(
        self,
        ctx: &mut Ctx,
        buffer: Vec<u8>,
        done: impl FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static,
    ) -> RequestHandle {
        let (request, options) = match self.into_parts() {
            Ok(parts) => parts,
            Err(e) => return fail_soon(ctx, e, done),
        };
        let Options {
            client,
            error_for_status,
            max_body,
        } = options;
        client.chain.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let response = match result {
                    Ok(r) => r,
                    Err(e) => return done(ctx, Err(e)),
                };
                if error_for_status && !(200..300).contains(&response.code) {
                    let e = Error::new(Phase::ResponseFailed, Cause::HttpStatus(response.code))
                        .with_url(response.url.as_str());
                    return done(ctx, Err(e));
                }
                response.collect_into(ctx, max_body, buffer, done);
            }),
        )
    }
}

struct Options {
    client: HttpClient,
    error_for_status: bool,
    max_body: u64,
}

/// Reports a request that failed before it could be issued, on the next turn (callbacks never
/// run inside the call that registers them).
fn fail_soon<T: 'static>(
    ctx: &mut Ctx,
    error: Error,
    cb: impl FnOnce(&mut Ctx, Result<T, Error>) + 'static,
) -> RequestHandle {
    ctx.call_later(Duration::ZERO, move |ctx| cb(ctx, Err(error)));
    RequestHandle::new()
}
