//! Following redirects (Twisted's `RedirectAgent` / `BrowserLikeRedirectAgent`).
//!
//! [`RedirectAgent`] wraps any [`HttpAgent`] and follows `301`, `302`, `303`, `307` and `308`
//! responses that carry a `Location`, up to a limit. The policy, in short:
//!
//! - **Targets**: only `http` and `https`; anything else (`file:`, `ftp:`, `data:`...) fails
//!   with [`Cause::RedirectNotAllowed`] and nothing is fetched. `https` to `http` is refused
//!   the same way unless [`RedirectConfig::allow_downgrade`].
//! - **Methods**: `303` turns every method but `HEAD` into `GET`; `301` and `302` turn only
//!   `POST` into `GET` (as browsers and curl do). A request turned into `GET` loses its body
//!   and its content fields (`Content-Type`, `Content-Length`, `Content-Encoding`...). `307` and
//!   `308` (and `301`/`302` of other methods) keep the method and the body, which must be
//!   replayable ([`BodyProducer::rewind`](crate::client::BodyProducer::rewind)): when it is not, the redirect response is handed to
//!   the caller as it is.
//! - **Credentials**: `Authorization`, `Cookie`, `Proxy-Authorization` (and a caller-set
//!   `Host`) are dropped as soon as a hop changes origin (scheme, host, port) and never come
//!   back, even if a later hop returns to the first origin. Userinfo in a `Location` is never
//!   kept. No `Referer` is added; a caller-set one is dropped on `https` to `http`.
//! - **Limits**: more than [`RedirectConfig::max_redirects`] hops fail with
//!   [`Cause::TooManyRedirects`], which is also how loops end (a loop is not detected earlier:
//!   revisiting a URL can be legitimate once a cookie changed). Intermediate bodies are
//!   never decoded: small ones are read and discarded so the connection can be reused,
//!   larger ones are dropped (the connection is closed).
//!
//! Errors raised by the policy use [`Phase::ResponseNeverReceived`]: earlier hops were sent
//! and may have been acted on, but no final response was received.

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use url::Url;

use crate::client::wrappers::replay::RequestParts;
use crate::proto::Headers;
use crate::reactor::Ctx;

use crate::client::error::{Cause, Error, Phase, Timeout};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback, method_name};
use crate::client::response::{PreviousResponse, Response};

/// Settings of a [`RedirectAgent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectConfig {
    /// Redirects followed at most (default 10); one more fails with
    /// [`Cause::TooManyRedirects`]. With 0, the first redirect fails.
    pub max_redirects: u32,
    /// Follow `https` to `http` redirects (default false: [`Cause::RedirectNotAllowed`]).
    pub allow_downgrade: bool,
    /// Intermediate bodies with a known length up to this many bytes are read and discarded
    /// so their connection returns to the pool (default 64 KiB); longer or unknown-length
    /// bodies are dropped, which closes their connection.
    pub max_discard_body: u64,
    /// Set each hop's `Referer` to the URL it was redirected from, without its userinfo and
    /// fragment (curl's `--referer ';auto'`; default false). None is sent on `https` to
    /// `http`.
    pub auto_referer: bool,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            max_redirects: 10,
            allow_downgrade: false,
            max_discard_body: 64 * 1024,
            auto_referer: false,
        }
    }
}

/// Header fields that carry credentials for one origin only.
const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Header fields describing a request body, dropped when the body is.
const CONTENT_FIELDS: [&str; 7] = [
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-location",
    "transfer-encoding",
    "expect",
];

/// An [`HttpAgent`] that follows redirects: 301/302/303 turn a `POST` into a bodyless `GET`,
/// 307/308 keep the method and a rewindable body, credentials are dropped when the origin
/// changes, `https` to `http` is refused unless allowed (the policy page, docs/http-support.md,
/// lists every rule with its test).
///
/// The final [`Response`] has the final `url`, one [`PreviousResponse`] per hop followed in
/// `history` (after any history the inner agent reported for that hop), and the time spent on
/// earlier hops in `timing.redirect`. The [`RequestHandle`] cancels whichever hop is in
/// flight, and no hop follows a cancellation.
///
/// Cookie jars belong inside (`RedirectAgent<CookieAgent<Agent>>`), so that every hop gets
/// the cookies of its own URL.
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, HttpAgent, RedirectAgent, RedirectConfig, Request};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// let redirects = RedirectAgent::new(agent, RedirectConfig::default());
/// redirects.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/old"),
///     Box::new(|ctx, result| {
///         match result {
///             Ok(response) => println!("{} {} after {} redirects",
///                 response.code, response.url, response.history.len()),
///             Err(e) => eprintln!("{e}"),
///         }
///         ctx.stop();
///     }));
/// reactor.run().unwrap();
/// ```
pub struct RedirectAgent<A: HttpAgent> {
    inner: Rc<A>,
    config: Rc<RedirectConfig>,
}

impl<A: HttpAgent> RedirectAgent<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, config: RedirectConfig) -> Self {
        RedirectAgent {
            inner: Rc::new(inner),
            config: Rc::new(config),
        }
    }

    /// The wrapped agent.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The settings.
    pub fn config(&self) -> &RedirectConfig {
        &self.config
    }
}

impl<A: HttpAgent> HttpAgent for RedirectAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let Ok(url) = Url::parse(&request.url) else {
            // The inner agent reports the bad URL.
            return self.inner.request(ctx, request, on_response);
        };
        let started = Instant::now();
        let (_, parts) = RequestParts::capture(
            request,
            self.inner.default_total_timeout(),
            "request body taken by a later redirect hop",
        );
        let chain = Chain {
            inner: self.inner.clone(),
            config: self.config.clone(),
            handle: RequestHandle::new(),
            issued: Rc::new(Cell::new(0)),
            on_response,
            url,
            parts,
            followed: 0,
            retries: 0,
            history: Vec::new(),
            started,
            hop_started: started,
        };
        let handle = chain.handle.clone();
        issue(ctx, chain);
        handle
    }

    fn default_total_timeout(&self) -> Option<std::time::Duration> {
        self.inner.default_total_timeout()
    }
}

/// One request being followed across hops.
struct Chain<A: HttpAgent> {
    inner: Rc<A>,
    config: Rc<RedirectConfig>,
    handle: RequestHandle,
    /// Hops issued so far, so a stale hop does not take over the handle.
    issued: Rc<Cell<u32>>,
    on_response: ResponseCallback,
    url: Url,
    /// The request as the next hop sends it: each hop gets the read and queue limits of the
    /// caller's timeouts, and what remains of the total.
    parts: RequestParts,
    followed: u32,
    /// Retries a retry policy beneath made on earlier hops.
    retries: u32,
    history: Vec<PreviousResponse>,
    started: Instant,
    hop_started: Instant,
}

impl<A: HttpAgent> Chain<A> {
    fn fail(self, ctx: &mut Ctx, cause: Cause) {
        let error = Error::new(Phase::ResponseNeverReceived, cause).with_url(self.url.as_str());
        (self.on_response)(ctx, Err(error));
    }

    /// Hands `response` to the caller with the chain's history and timing.
    fn deliver(mut self, ctx: &mut Ctx, mut response: Response) {
        self.history.append(&mut response.history);
        response.history = self.history;
        let earlier = self.hop_started.saturating_duration_since(self.started);
        response.timing.redirect = response.timing.redirect.saturating_add(earlier);
        response.timing.retries = response.timing.retries.saturating_add(self.retries);
        (self.on_response)(ctx, Ok(response));
    }
}

fn issue<A: HttpAgent>(ctx: &mut Ctx, mut chain: Chain<A>) {
    if chain.handle.is_cancelled() {
        return chain.fail(ctx, Cause::Cancelled);
    }
    let Some(timeouts) = chain.parts.timeouts.for_hop(chain.started) else {
        let cause = Timeout::total_spent(chain.parts.timeouts.total, chain.started);
        return chain.fail(ctx, cause);
    };
    let request = chain.parts.request(chain.url.as_str().into(), timeouts);
    if chain.followed > 0 {
        chain.hop_started = Instant::now();
    }
    let seq = chain.issued.get() + 1;
    chain.issued.set(seq);
    let (inner, handle, issued) = (
        chain.inner.clone(),
        chain.handle.clone(),
        chain.issued.clone(),
    );
    let hop = inner.request(ctx, request, Box::new(move |ctx, r| on_hop(ctx, chain, r)));
    if issued.get() == seq {
        handle.follow(&hop);
    }
}

/// What to do with a redirect response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Not a redirect we follow: hand it over.
    Deliver,
    /// Follow it to this URL with this method, keeping the body or not.
    Follow {
        url: Url,
        method: Cow<'static, str>,
        keep_body: bool,
    },
}

fn on_hop<A: HttpAgent>(ctx: &mut Ctx, mut chain: Chain<A>, result: Result<Response, Error>) {
    let mut response = match result {
        Ok(r) => r,
        Err(e) => return (chain.on_response)(ctx, Err(e)),
    };
    if chain.handle.is_cancelled() {
        drop(response);
        return chain.fail(ctx, Cause::Cancelled);
    }
    let decision = decide(
        &chain.config,
        &chain.url,
        &chain.parts.method,
        chain.followed,
        response.code,
        &response.headers,
    );
    let (url, method, keep_body) = match decision {
        Err(cause) => return chain.fail(ctx, cause),
        Ok(Next::Deliver) => return chain.deliver(ctx, response),
        Ok(Next::Follow {
            url,
            method,
            keep_body,
        }) => (url, method, keep_body),
    };
    if keep_body {
        if let Some(body) = &chain.parts.body
            && !body.rewind()
        {
            // Cannot send the body again: the caller gets the redirect itself.
            return chain.deliver(ctx, response);
        }
    } else {
        chain.parts.body = None;
    }
    if chain.config.auto_referer {
        set_referer(&mut chain.parts.headers, &chain.url);
    }
    carry_headers(&mut chain.parts.headers, &chain.url, &url, keep_body);
    log::debug!(
        "redirect {} ({} of at most {}): {} -> {method} {}",
        response.code,
        chain.followed + 1,
        chain.config.max_redirects,
        crate::client::error::redact(chain.url.as_str()),
        crate::client::error::redact(url.as_str()),
    );
    chain.followed += 1;
    chain.retries = chain.retries.saturating_add(response.timing.retries);
    chain.history.append(&mut response.history);
    chain.history.push(PreviousResponse {
        code: response.code,
        url: (*response.url).clone(),
        headers: response.headers.clone(),
    });
    chain.url = url;
    chain.parts.method = method;

    // Read a small body to its end so its connection can be reused; never decode it.
    let cap = chain.config.max_discard_body;
    match response.length {
        Some(n) if n <= cap => {
            response.filters.clear();
            response.collect(ctx, cap, move |ctx, _| issue(ctx, chain));
        }
        _ => {
            drop(response);
            issue(ctx, chain);
        }
    }
}

/// Applies the policy to a response to `method` on `current`, after `followed` redirects:
/// deliver it, follow it, or fail. Pure: the caller rewinds the body and edits the headers
/// ([`carry_headers`]).
pub(crate) fn decide(
    config: &RedirectConfig,
    current: &Url,
    method: &str,
    followed: u32,
    code: u16,
    headers: &Headers,
) -> Result<Next, Cause> {
    if !matches!(code, 301 | 302 | 303 | 307 | 308) {
        return Ok(Next::Deliver);
    }
    let location = location(headers)?;
    let mut url = current
        .join(&location)
        .map_err(|_| Cause::InvalidLocation(location.clone()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Cause::RedirectNotAllowed(url.to_string()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Cause::InvalidLocation(location));
    }
    if current.scheme() == "https" && url.scheme() == "http" && !config.allow_downgrade {
        return Err(Cause::RedirectNotAllowed(url.to_string()));
    }
    // Userinfo is kept only when inherited unchanged from the current URL (a relative
    // Location); a Location never brings its own.
    let inherited = url.origin() == current.origin()
        && url.username() == current.username()
        && url.password() == current.password();
    if !inherited {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    // RFC 9110 §10.2.2: a Location without a fragment inherits the request's.
    if url.fragment().is_none() && current.fragment().is_some() {
        url.set_fragment(current.fragment());
    }
    let to_get = match code {
        303 => method != "HEAD",
        301 | 302 => method == "POST",
        _ => false,
    };
    let method = if to_get {
        "GET".into()
    } else {
        method_name(method)
    };
    if followed >= config.max_redirects {
        return Err(Cause::TooManyRedirects(config.max_redirects));
    }
    Ok(Next::Follow {
        url,
        method,
        keep_body: !to_get,
    })
}

/// Edits the request's header fields for the hop from `from` to `to`: content fields go
/// with the body, credentials (and a caller-set `Host`) on an origin change, `Referer` on
/// `https` to `http`.
pub(crate) fn carry_headers(headers: &mut Headers, from: &Url, to: &Url, keep_body: bool) {
    if !keep_body {
        for name in CONTENT_FIELDS {
            headers.remove(name);
        }
    }
    if from.origin() != to.origin() {
        for name in CREDENTIALS {
            headers.remove(name);
        }
        headers.remove("host");
    }
    if from.scheme() == "https" && to.scheme() == "http" {
        headers.remove("referer");
    }
}

/// Sets `Referer` to `from` without its userinfo and fragment (`carry_headers` then drops it
/// on `https` to `http`).
fn set_referer(headers: &mut Headers, from: &Url) {
    let mut referer = from.clone();
    let _ = referer.set_username("");
    let _ = referer.set_password(None);
    referer.set_fragment(None);
    headers.remove("referer");
    headers.append("Referer", referer.as_str().as_bytes());
}

/// The single `Location` value (duplicates that agree count as one).
fn location(headers: &Headers) -> Result<String, Cause> {
    let mut values = headers.get_all("location");
    let Some(first) = values.next() else {
        return Err(Cause::InvalidLocation(String::new()));
    };
    let lossy = || String::from_utf8_lossy(first).into_owned();
    if values.any(|v| v != first) {
        return Err(Cause::InvalidLocation(lossy()));
    }
    let text = std::str::from_utf8(first).map_err(|_| Cause::InvalidLocation(lossy()))?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    // The url crate silently drops tabs and newlines inside; refuse them instead.
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_control()) {
        return Err(Cause::InvalidLocation(lossy()));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn auto_referer_is_the_previous_url_without_userinfo_or_fragment() {
        let mut headers: Headers = [("Referer", b"http://caller.test/".as_slice())]
            .into_iter()
            .collect();
        let from = url("http://u:secret@127.0.0.1:8080/a/b?q=1#frag");
        set_referer(&mut headers, &from);
        carry_headers(&mut headers, &from, &url("http://127.0.0.1:8080/c"), false);
        let sent: Vec<_> = headers.get_all("referer").collect();
        assert_eq!(sent, [b"http://127.0.0.1:8080/a/b?q=1".as_slice()]);
        // Never on https to http, even when the downgrade is allowed.
        let from = url("https://127.0.0.1/secret-page");
        set_referer(&mut headers, &from);
        carry_headers(&mut headers, &from, &url("http://127.0.0.1/"), false);
        assert!(headers.get("referer").is_none());
    }
}
