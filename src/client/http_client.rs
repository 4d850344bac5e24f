//! `HttpClient`: the convenience layer users call (treq's and Tornado's shape) — request
//! builders with query, form, JSON and file bodies; whole-body responses with text and JSON
//! helpers; per-request timing and sizes; bounded concurrency over many URLs.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use url::Url;

use crate::proto::{Headers, Version};
use crate::reactor::Ctx;

use super::agent::{Agent, AgentConfig};
use super::body::{BodyCtx, BodyEnd, BodyProtocol};
use super::error::{Cause, Error, Phase};
use super::producer::{BodyProducer, BytesProducer, ReadProducer};
use super::request::{HttpAgent, Request, RequestHandle, Timeouts, method_name};
use super::response::{PreviousResponse, Response};
use super::timing::Timing;

/// Settings of an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The underlying agent and pool.
    pub agent: AgentConfig,
    /// Largest body [`RequestBuilder::fetch`] reads into memory (default 64 MiB).
    pub max_body: u64,
    /// Treat non-2xx statuses as errors ([`Cause::HttpStatus`]), as Tornado's `raise_error`
    /// (default false; each request can override it).
    pub error_for_status: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            agent: AgentConfig::default(),
            max_body: 64 * 1024 * 1024,
            error_for_status: false,
        }
    }
}

/// A convenient HTTP client on a reactor: build a request, then stream or fetch the response.
/// Cheap to clone; clones share the connection pool.
///
/// ```no_run
/// use weft::client::{ClientConfig, HttpClient};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let client = HttpClient::new(reactor.ctx(), ClientConfig::default());
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
    agent: Rc<dyn HttpAgent>,
    config: Rc<ClientConfig>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with its own [`Agent`] on this reactor.
    pub fn new(ctx: &mut Ctx, config: ClientConfig) -> Self {
        let agent = Agent::new(ctx, config.agent.clone());
        HttpClient::with_agent(agent, config)
    }

    /// A client over any agent (a wrapped one, for example).
    pub fn with_agent(agent: impl HttpAgent, config: ClientConfig) -> Self {
        HttpClient {
            agent: Rc::new(agent),
            config: Rc::new(config),
        }
    }

    /// The agent requests go through.
    pub fn agent(&self) -> &dyn HttpAgent {
        &*self.agent
    }

    /// A request with any method.
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method: method_name(method),
            url: url.to_string(),
            query: Vec::new(),
            headers: Headers::new(),
            body: None,
            timeouts: Timeouts::default(),
            error_for_status: self.config.error_for_status,
            max_body: self.config.max_body,
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request("GET", url)
    }

    /// A `HEAD` request.
    pub fn head(&self, url: &str) -> RequestBuilder {
        self.request("HEAD", url)
    }

    /// A `POST` request.
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request("POST", url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: &str) -> RequestBuilder {
        self.request("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(&self, url: &str) -> RequestBuilder {
        self.request("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: &str) -> RequestBuilder {
        self.request("DELETE", url)
    }

    /// An `OPTIONS` request.
    pub fn options(&self, url: &str) -> RequestBuilder {
        self.request("OPTIONS", url)
    }

    /// Fetches every request with at most `max_in_flight` at once (the Twisted "semaphore"
    /// recipe as one call). `on_each` gets each result with its index in `requests`, in
    /// completion order; `on_done` runs once after the last. Requests are started lazily, so
    /// `requests` may be a long iterator.
    ///
    /// ```no_run
    /// use weft::client::{ClientConfig, HttpClient};
    /// use weft::reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let client = HttpClient::new(reactor.ctx(), ClientConfig::default());
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
        let batch = Rc::new(Batch {
            pending: RefCell::new(Box::new(requests.into_iter().enumerate())),
            in_flight: Cell::new(0),
            exhausted: Cell::new(false),
            on_each: RefCell::new(Box::new(on_each)),
            on_done: RefCell::new(Some(Box::new(on_done))),
        });
        for _ in 0..max_in_flight.max(1) {
            if !Batch::start_next(&batch, ctx) {
                break;
            }
        }
        // With nothing to fetch, `on_done` still runs from the loop, not from inside this call.
        ctx.call_later(Duration::ZERO, move |ctx| Batch::maybe_done(&batch, ctx));
    }
}

type EachCallback = Box<dyn FnMut(&mut Ctx, usize, Result<FullResponse, Error>)>;
type DoneCallback = Box<dyn FnOnce(&mut Ctx)>;

/// State of one [`HttpClient::fetch_all`] call.
struct Batch {
    pending: RefCell<Box<dyn Iterator<Item = (usize, RequestBuilder)>>>,
    in_flight: Cell<usize>,
    exhausted: Cell<bool>,
    on_each: RefCell<EachCallback>,
    on_done: RefCell<Option<DoneCallback>>,
}

impl Batch {
    /// Starts the next request, if any; returns whether one was started.
    fn start_next(batch: &Rc<Batch>, ctx: &mut Ctx) -> bool {
        let next = batch.pending.borrow_mut().next();
        let Some((index, request)) = next else {
            batch.exhausted.set(true);
            return false;
        };
        batch.in_flight.set(batch.in_flight.get() + 1);
        let b = batch.clone();
        request.fetch(ctx, move |ctx, result| {
            b.in_flight.set(b.in_flight.get() - 1);
            (b.on_each.borrow_mut())(ctx, index, result);
            Batch::start_next(&b, ctx);
            Batch::maybe_done(&b, ctx);
        });
        true
    }

    fn maybe_done(batch: &Rc<Batch>, ctx: &mut Ctx) {
        if batch.exhausted.get() && batch.in_flight.get() == 0 {
            let done = batch.on_done.borrow_mut().take();
            if let Some(done) = done {
                done(ctx);
            }
        }
    }
}

/// A request being built; finish with [`RequestBuilder::send`] (stream the body) or
/// [`RequestBuilder::fetch`] (read it into memory).
pub struct RequestBuilder {
    client: HttpClient,
    method: Cow<'static, str>,
    url: String,
    query: Vec<(String, String)>,
    headers: Headers,
    body: Option<Box<dyn BodyProducer>>,
    timeouts: Timeouts,
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
                Error::new(
                    Phase::RequestNotSent,
                    Cause::InvalidUrl(format!("{url}: {e}")),
                )
            })?;
            parsed.query_pairs_mut().extend_pairs(&self.query);
            url = parsed.into();
        }
        let request = Request {
            method: self.method,
            url,
            headers: self.headers,
            body: self.body,
            timeouts: self.timeouts,
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
        options.client.agent.request(
            ctx,
            request,
            Box::new(move |ctx, result| match result {
                Ok(r) if check && !(200..300).contains(&r.code) => {
                    let code = r.code;
                    drop(r);
                    let e = Error::new(Phase::ResponseFailed, Cause::HttpStatus(code));
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
        let (request, options) = match self.into_parts() {
            Ok(parts) => parts,
            Err(e) => return fail_soon(ctx, e, done),
        };
        let started = Instant::now();
        let Options {
            client,
            error_for_status,
            max_body,
        } = options;
        client.agent.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let mut response = match result {
                    Ok(r) => r,
                    Err(e) => return done(ctx, Err(e)),
                };
                if error_for_status && !(200..300).contains(&response.code) {
                    let e = Error::new(Phase::ResponseFailed, Cause::HttpStatus(response.code));
                    return done(ctx, Err(e));
                }
                // Without filters (content decoding) the bytes `Gather` gets are the wire's:
                // it counts them itself, sparing the counting filter's four allocations.
                let wire = (!response.filters.is_empty()).then(|| {
                    let wire = Rc::new(Cell::new(0u64));
                    let w = wire.clone();
                    response.map_body_raw(move |inner| {
                        Box::new(CountBytes {
                            inner,
                            count: w.clone(),
                        })
                    });
                    wire
                });
                let full = FullResponse {
                    version: response.version,
                    code: response.code,
                    phrase: std::mem::take(&mut response.phrase),
                    headers: std::mem::take(&mut response.headers),
                    trailers: Headers::new(),
                    body: Vec::with_capacity(response.body_capacity(max_body)),
                    url: response.url.clone(),
                    timing: response.timing,
                    total: Duration::ZERO,
                    complete: false,
                    history: std::mem::take(&mut response.history),
                    sizes: Sizes::default(),
                };
                response.deliver_body(
                    ctx,
                    Gather {
                        full: Some(full),
                        max: max_body,
                        started,
                        wire,
                        received: 0,
                        done: Some(done),
                        overflow: false,
                    },
                );
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

/// Body sizes of a fetched response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Body bytes as received (after de-chunking, before content decoding).
    pub body_wire: u64,
    /// Body bytes after content decoding (what [`FullResponse::body`] holds).
    pub body_decoded: u64,
}

/// A response read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullResponse {
    /// Protocol version.
    pub version: Version,
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub phrase: Cow<'static, str>,
    /// Header fields.
    pub headers: Headers,
    /// Trailer fields (chunked bodies).
    pub trailers: Headers,
    /// The body.
    pub body: Vec<u8>,
    /// The final URL (after redirects).
    pub url: Rc<Url>,
    /// When each phase ended.
    pub timing: Timing,
    /// From submission to the end of the body (curl's `time_total`).
    pub total: Duration,
    /// False when the body was close-delimited (possible data loss).
    pub complete: bool,
    /// Earlier responses (redirects, challenges).
    pub history: Vec<PreviousResponse>,
    /// Body sizes.
    pub sizes: Sizes,
}

impl FullResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The body as text, decoded with the charset of `Content-Type` (UTF-8 when none is
    /// given or it is unknown; always UTF-8 without the `charset` feature); invalid sequences
    /// become U+FFFD, as in browsers.
    pub fn text(&self) -> String {
        decode_text(self.headers.get_str("content-type"), &self.body)
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// `body` as text in the charset named by the media type `content_type`, else UTF-8.
#[cfg(feature = "charset")]
fn decode_text(content_type: Option<&str>, body: &[u8]) -> String {
    let label = content_type.and_then(charset_of).unwrap_or("utf-8");
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// `body` as UTF-8 text: without the `charset` feature, other charsets are not known.
#[cfg(not(feature = "charset"))]
fn decode_text(_content_type: Option<&str>, body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The `charset` parameter of a media type.
#[cfg(feature = "charset")]
fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Counts body bytes as the agent hands them over, before any decoding filter.
struct CountBytes {
    inner: Box<dyn BodyProtocol>,
    count: Rc<Cell<u64>>,
}

impl BodyProtocol for CountBytes {
    fn body_started(&mut self, ctx: &mut Ctx, handle: super::body::BodyHandle) {
        self.inner.body_started(ctx, handle);
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        self.count.set(self.count.get() + data.len() as u64);
        self.inner.data_received(body, data);
    }

    fn trailers_received(&mut self, body: &mut BodyCtx<'_>, trailers: &Headers) {
        self.inner.trailers_received(body, trailers);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        self.inner.connection_lost(ctx, reason);
    }
}

/// Reads a body into a [`FullResponse`], then calls `done` (kept inline: `Gather` is boxed
/// as a body protocol anyway, so boxing the callback too would be one more allocation).
struct Gather<F> {
    full: Option<FullResponse>,
    max: u64,
    started: Instant,
    /// Counts the body bytes as received when filters sit before `Gather`.
    wire: Option<Rc<Cell<u64>>>,
    /// Body bytes given to `Gather`.
    received: u64,
    done: Option<F>,
    overflow: bool,
}

impl<F: FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static> BodyProtocol for Gather<F> {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        self.received += data.len() as u64;
        let Some(full) = self.full.as_mut() else {
            return;
        };
        if full.body.len() as u64 + data.len() as u64 > self.max {
            self.overflow = true;
            body.stop();
            return;
        }
        full.body.extend_from_slice(data);
    }

    fn trailers_received(&mut self, _body: &mut BodyCtx<'_>, trailers: &Headers) {
        if let Some(full) = self.full.as_mut() {
            full.trailers = trailers.clone();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let (Some(done), Some(mut full)) = (self.done.take(), self.full.take()) else {
            return;
        };
        full.total = self.started.elapsed();
        full.sizes = Sizes {
            body_wire: self.wire.as_ref().map_or(self.received, |w| w.get()),
            body_decoded: full.body.len() as u64,
        };
        let result = match reason {
            _ if self.overflow => Err(Error::new(
                Phase::ResponseFailed,
                Cause::BodyTooLarge(self.max),
            )),
            BodyEnd::Done | BodyEnd::PotentialDataLoss => {
                full.complete = reason.is_done();
                Ok(full)
            }
            BodyEnd::Failed(e) => Err(e),
        };
        done(ctx, result);
    }
}

#[cfg(all(test, feature = "charset"))]
mod tests {
    use super::charset_of;

    #[test]
    fn charset_parameter_is_found() {
        assert_eq!(
            charset_of("text/html; charset=ISO-8859-1"),
            Some("ISO-8859-1")
        );
        assert_eq!(charset_of("text/html;Charset=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset_of("text/html"), None);
    }
}
