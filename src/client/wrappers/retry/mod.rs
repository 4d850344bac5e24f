//! Retrying requests that failed in a transient way (an opt-in policy, as urllib3's `Retry`
//! or curl's `--retry`).
//!
//! [`RetryAgent`] wraps any [`HttpAgent`]. When an attempt fails with a connect failure or a
//! timeout before any response, or is answered with a status of
//! [`RetryPolicy::statuses`], it waits (exponential backoff with jitter, or what
//! `Retry-After` asks) on a reactor timer and sends the request again, within
//! [`RetryPolicy::max_retries`] and [`RetryPolicy::max_total`]. The rules:
//!
//! - **Methods**: once a request may have reached the server, only idempotent methods are
//!   sent again, unless [`RetryPolicy::all_methods`]. A request that never left (refused,
//!   DNS, connect timeout) is retried whatever its method.
//! - **Body**: a body that was (partly) sent must be replayable ([`BodyProducer::rewind`](crate::client::BodyProducer::rewind):
//!   bytes in memory, a file); otherwise no retry is made and the failure is handed over, its
//!   error saying why ([`Error::retry_refused`]).
//! - **Responses retried** are never decoded nor handed over: a small body of known length
//!   is read to its end and dropped so its connection can be reused; any other is dropped
//!   unread, which closes its connection (the agent never pools a connection whose response
//!   was not read to its end). Each appears in the final response's `history`; the
//!   retries are counted in `timing.retries` and their time in `timing.redirect`.
//! - **Giving up**: the last response is handed over as it is; the last error gets the
//!   retries made and the reason no more were made ([`Error::retries`]).
//! - **Cancelling** the handle during a wait cancels the timer and reports
//!   [`Cause::Cancelled`] at once.

mod after;
mod notice;
mod policy;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::client::wrappers::replay::RequestParts;
use crate::reactor::Ctx;

use crate::client::error::{Cause, Error, Phase, Timeout};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};
use crate::client::response::{PreviousResponse, Response};

pub use notice::{RetryHook, RetryNotice};
pub use policy::{Backoff, Jitter, RetryPolicy};
use policy::{Refusal, random};

/// Bodies of retried responses up to this many bytes (with a known length) are read so
/// their connection returns to the pool; longer ones are dropped with their connection.
const MAX_DISCARD_BODY: u64 = 64 * 1024;

/// An [`HttpAgent`] that retries transient failures by a [`RetryPolicy`] (see the module
/// documentation for the rules).
///
/// Beneath a [`RedirectAgent`](crate::client::RedirectAgent), as the session builder
/// stacks it, each hop of a redirect chain is retried on its own.
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, HttpAgent, Request, RetryAgent, RetryPolicy};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// let retrying = RetryAgent::new(agent, RetryPolicy::default());
/// retrying.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/flaky"),
///     Box::new(|ctx, result| {
///         match result {
///             Ok(r) => println!("{} after {} retries", r.code, r.timing.retries),
///             Err(e) => eprintln!("{e}"),
///         }
///         ctx.stop();
///     }));
/// reactor.run().unwrap();
/// ```
pub struct RetryAgent<A: HttpAgent> {
    inner: Rc<A>,
    policy: Rc<RetryPolicy>,
    hook: Option<RetryHook>,
}

impl<A: HttpAgent> RetryAgent<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, policy: RetryPolicy) -> Self {
        RetryAgent {
            inner: Rc::new(inner),
            policy: Rc::new(policy),
            hook: None,
        }
    }

    /// Calls `hook` before each retry, with what failed and the wait (curl's "Will retry in
    /// N seconds" line is made from it).
    pub fn on_retry(mut self, hook: RetryHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The wrapped agent.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<A: HttpAgent> HttpAgent for RetryAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        if self.policy.max_retries == 0 {
            return self.inner.request(ctx, request, on_response);
        }
        let started = Instant::now();
        // One deadline for every attempt: the total limit covers them together.
        let (url, parts) = RequestParts::capture(
            request,
            self.inner.default_total_timeout(),
            "request body taken by a later attempt",
        );
        let chain = Chain {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            hook: self.hook.clone(),
            handle: RequestHandle::new(),
            issued: Rc::new(Cell::new(0)),
            on_response,
            url,
            parts,
            retries: 0,
            reached: false,
            history: Vec::new(),
            started,
            attempt_started: started,
        };
        let handle = chain.handle.clone();
        issue(ctx, chain);
        handle
    }

    fn default_total_timeout(&self) -> Option<Duration> {
        self.inner.default_total_timeout()
    }
}

/// One request across its attempts.
struct Chain<A: HttpAgent> {
    inner: Rc<A>,
    policy: Rc<RetryPolicy>,
    hook: Option<RetryHook>,
    handle: RequestHandle,
    /// Attempts issued so far, so a stale attempt does not take over the handle.
    issued: Rc<Cell<u32>>,
    on_response: ResponseCallback,
    url: Rc<str>,
    /// The request as every attempt sends it.
    parts: RequestParts,
    retries: u32,
    /// Whether an attempt may have reached the server.
    reached: bool,
    history: Vec<PreviousResponse>,
    started: Instant,
    attempt_started: Instant,
}

impl<A: HttpAgent> Chain<A> {
    /// Ends the request with a failure of the chain's own (cancelled, out of time).
    fn fail(self, ctx: &mut Ctx, cause: Cause) {
        let phase = if self.reached {
            Phase::ResponseNeverReceived
        } else {
            Phase::RequestNotSent
        };
        let error = Error::new(phase, cause).with_url(&self.url);
        self.give_up(ctx, error, None);
    }

    /// Hands `error` over, with the retries made and why no more were.
    fn give_up(self, ctx: &mut Ctx, error: Error, refused: Option<Refusal>) {
        let why = refused.and_then(|r| r.describe());
        let error = error.or_url(&self.url).with_retries(self.retries, why);
        (self.on_response)(ctx, Err(error));
    }

    /// Hands `response` over with the earlier attempts in its history and timing.
    fn deliver(mut self, ctx: &mut Ctx, mut response: Response) {
        if !self.history.is_empty() {
            self.history.append(&mut response.history);
            response.history = self.history;
        }
        let earlier = self.attempt_started.saturating_duration_since(self.started);
        response.timing.redirect = response.timing.redirect.saturating_add(earlier);
        response.timing.retries = response.timing.retries.saturating_add(self.retries);
        (self.on_response)(ctx, Ok(response))
    }

    /// The wait before the next retry, or why there is none. `reached`: the last attempt
    /// may have reached the server; `asked`: its `Retry-After`.
    /// Tells the hook, if any, of the retry about to wait `wait`.
    fn notify(&self, wait: Duration, status: Option<u16>, error: Option<&Error>) {
        if let Some(hook) = &self.hook {
            let url = crate::client::error::redact(&self.url);
            (hook.0)(&RetryNotice {
                retry: self.retries + 1,
                retries_left: self.policy.max_retries.saturating_sub(self.retries + 1),
                wait,
                status,
                error,
                url: &url,
            });
        }
    }

    fn judge(&mut self, reached: bool, asked: Option<Duration>) -> Result<Duration, Refusal> {
        let policy = &self.policy;
        if self.retries >= policy.max_retries {
            return Err(Refusal::MaxRetries(policy.max_retries));
        }
        if reached && !policy.retries_method(&self.parts.method) {
            return Err(Refusal::Method(self.parts.method.to_string()));
        }
        let wait = policy.wait(self.retries, asked, random());
        let end = self.started.elapsed().saturating_add(wait);
        if let Some(cap) = policy.max_total
            && end > cap
        {
            return Err(Refusal::MaxTotal(cap));
        }
        if self.parts.timeouts.total.is_some_and(|total| end >= total) {
            return Err(Refusal::Timeout);
        }
        // Last, as rewinding cannot be undone.
        if let Some(body) = &self.parts.body
            && !body.ready_again()
        {
            return Err(Refusal::BodyNotReplayable);
        }
        Ok(wait)
    }
}

fn issue<A: HttpAgent>(ctx: &mut Ctx, mut chain: Chain<A>) {
    if chain.handle.is_cancelled() {
        return chain.fail(ctx, Cause::Cancelled);
    }
    let mut timeouts = if chain.retries == 0 {
        chain.parts.timeouts
    } else {
        let Some(timeouts) = chain.parts.timeouts.for_hop(chain.started) else {
            let cause = Timeout::total_spent(chain.parts.timeouts.total, chain.started);
            return chain.fail(ctx, cause);
        };
        timeouts
    };
    if let Some(limit) = chain.policy.attempt_timeout {
        timeouts.total = Some(timeouts.total.map_or(limit, |t| t.min(limit)));
    }
    let request = chain.parts.request(chain.url.clone(), timeouts);
    chain.attempt_started = Instant::now();
    let seq = chain.issued.get() + 1;
    chain.issued.set(seq);
    let (inner, handle, issued) = (
        chain.inner.clone(),
        chain.handle.clone(),
        chain.issued.clone(),
    );
    let attempt = inner.request(
        ctx,
        request,
        Box::new(move |ctx, r| on_attempt(ctx, chain, r)),
    );
    if issued.get() == seq {
        handle.follow(&attempt);
    }
}

fn on_attempt<A: HttpAgent>(ctx: &mut Ctx, mut chain: Chain<A>, result: Result<Response, Error>) {
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.is_cancelled() || chain.handle.is_cancelled() {
                return chain.give_up(ctx, e, None);
            }
            if !chain.policy.retries_error(&e) {
                return chain.give_up(ctx, e, Some(Refusal::NotRetryable));
            }
            let reached = e.phase() != Phase::RequestNotSent;
            chain.reached |= reached;
            return match chain.judge(reached, None) {
                Ok(wait) => {
                    log::debug!(
                        "retry {} in {} ms after: {e}",
                        chain.retries + 1,
                        wait.as_millis()
                    );
                    chain.notify(wait, None, Some(&e));
                    wait_then_issue(ctx, chain, wait)
                }
                Err(refusal) => chain.give_up(ctx, e, Some(refusal)),
            };
        }
    };
    chain.reached = true;
    if chain.handle.is_cancelled() {
        drop(response);
        return chain.fail(ctx, Cause::Cancelled);
    }
    if !chain.policy.statuses.contains(&response.code) {
        return chain.deliver(ctx, response);
    }
    let asked = after::retry_after(&response.headers, SystemTime::now());
    let wait = match chain.judge(true, asked) {
        Ok(wait) => wait,
        // The last response is the answer.
        Err(_) => return chain.deliver(ctx, response),
    };
    log::debug!(
        "retry {} in {} ms after status {} - {}",
        chain.retries + 1,
        wait.as_millis(),
        response.code,
        crate::client::error::redact(&chain.url),
    );
    chain.notify(wait, Some(response.code), None);
    chain.history.append(&mut response.history);
    chain.history.push(PreviousResponse {
        code: response.code,
        url: (*response.url).clone(),
        headers: response.headers.clone(),
    });
    // Read a small body to its end so its connection can be reused; never decode it.
    match response.length {
        Some(n) if n <= MAX_DISCARD_BODY => {
            response.filters.clear();
            let started = Instant::now();
            response.collect(ctx, MAX_DISCARD_BODY, move |ctx, _| {
                let wait = wait.saturating_sub(started.elapsed());
                wait_then_issue(ctx, chain, wait)
            });
        }
        _ => {
            drop(response);
            wait_then_issue(ctx, chain, wait);
        }
    }
}

/// Waits `wait` on a reactor timer, then sends the next attempt. A cancel during the wait
/// cancels the timer and ends the request on the next turn.
fn wait_then_issue<A: HttpAgent>(ctx: &mut Ctx, mut chain: Chain<A>, wait: Duration) {
    // Cancelled while a retried body was being read: no wait.
    if chain.handle.is_cancelled() {
        return chain.fail(ctx, Cause::Cancelled);
    }
    chain.retries += 1;
    let handle = chain.handle.clone();
    // The timer and the cancel hook share the chain; whichever runs first takes it. The
    // hook holds it weakly, so a reactor dropped during the wait frees it.
    let slot = Rc::new(RefCell::new(Some(chain)));
    let weak = Rc::downgrade(&slot);
    let timer = ctx.call_later(wait, move |ctx| resume(ctx, &slot));
    handle.on_cancel(move |ctx| {
        let Some(slot) = weak.upgrade() else {
            return;
        };
        ctx.cancel_timer(timer);
        ctx.call_later(Duration::ZERO, move |ctx| resume(ctx, &slot));
    });
}

fn resume<A: HttpAgent>(ctx: &mut Ctx, slot: &RefCell<Option<Chain<A>>>) {
    let Some(chain) = slot.borrow_mut().take() else {
        return;
    };
    chain.handle.clear_on_cancel();
    issue(ctx, chain);
}
