//! Conditional GET (the Twisted book's `updatecheck`, as a feature): a [`ValidatorCache`]
//! remembers each URL's `ETag`, `Last-Modified` and body, and a [`ConditionalAgent`] sends
//! `If-None-Match` / `If-Modified-Since` so that an unchanged resource costs a `304`.
//!
//! This is not an HTTP cache: nothing is served without asking the server, `Cache-Control`
//! and `Vary` are not interpreted, and only `GET` is issued.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use url::Url;

use crate::proto::Headers;
use crate::reactor::Ctx;

use crate::client::body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use crate::client::error::{Cause, Error, Phase};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};

/// The validators of a cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Its `ETag`, sent back as `If-None-Match`.
    pub etag: Option<Vec<u8>>,
    /// Its `Last-Modified`, sent back as `If-Modified-Since`.
    pub last_modified: Option<Vec<u8>>,
}

struct Entry {
    etag: Option<Vec<u8>>,
    last_modified: Option<Vec<u8>>,
    body: Rc<Vec<u8>>,
}

struct CacheState {
    entries: HashMap<String, Entry>,
    /// Least recently used first.
    order: VecDeque<String>,
    total: usize,
    max_entry: usize,
    max_entries: usize,
    max_total: usize,
}

impl CacheState {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.total -= e.body.len();
            self.order.retain(|k| k != key);
        }
    }

    fn touch(&mut self, key: &str) {
        if let Some(pos) = self.order.iter().position(|k| k == key)
            && let Some(k) = self.order.remove(pos)
        {
            self.order.push_back(k);
        }
    }

    fn insert(&mut self, key: String, entry: Entry) {
        self.remove(&key);
        if entry.body.len() > self.max_entry || self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries
            || self.total + entry.body.len() > self.max_total
        {
            let Some(oldest) = self.order.front().cloned() else {
                return;
            };
            self.remove(&oldest);
        }
        self.total += entry.body.len();
        self.order.push_back(key.clone());
        self.entries.insert(key, entry);
    }
}

/// Validators and bodies by URL, shared by every clone. Bounded: an entry's body is at most
/// [`ValidatorCache::DEFAULT_MAX_ENTRY`] bytes (larger responses are not cached), at most
/// [`ValidatorCache::DEFAULT_MAX_ENTRIES`] entries and
/// [`ValidatorCache::DEFAULT_MAX_TOTAL`] bytes in all; the least recently used entries go
/// first. Only responses with an `ETag` or a `Last-Modified` field are kept.
///
/// ```
/// use weft::client::ValidatorCache;
/// let cache = ValidatorCache::with_limits(256 * 1024, 16, 1 << 20);
/// assert!(cache.is_empty());
/// ```
#[derive(Clone)]
pub struct ValidatorCache {
    state: Rc<RefCell<CacheState>>,
}

impl std::fmt::Debug for ValidatorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("ValidatorCache")
            .field("entries", &s.entries.len())
            .field("bytes", &s.total)
            .finish()
    }
}

impl Default for ValidatorCache {
    fn default() -> Self {
        ValidatorCache::new()
    }
}

impl ValidatorCache {
    /// Default cap on one entry's body: 1 MiB.
    pub const DEFAULT_MAX_ENTRY: usize = 1 << 20;
    /// Default cap on the number of entries: 64.
    pub const DEFAULT_MAX_ENTRIES: usize = 64;
    /// Default cap on all bodies together: 16 MiB.
    pub const DEFAULT_MAX_TOTAL: usize = 16 << 20;

    /// A cache with the default limits.
    pub fn new() -> Self {
        Self::with_limits(
            Self::DEFAULT_MAX_ENTRY,
            Self::DEFAULT_MAX_ENTRIES,
            Self::DEFAULT_MAX_TOTAL,
        )
    }

    /// A cache with these limits (bytes per entry, entries, bytes in all).
    pub fn with_limits(max_entry: usize, max_entries: usize, max_total: usize) -> Self {
        ValidatorCache {
            state: Rc::new(RefCell::new(CacheState {
                entries: HashMap::new(),
                order: VecDeque::new(),
                total: 0,
                max_entry,
                max_entries,
                max_total,
            })),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.state.borrow().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of body held.
    pub fn bytes(&self) -> usize {
        self.state.borrow().total
    }

    /// Whether `url` has an entry.
    pub fn contains(&self, url: &str) -> bool {
        key(url).is_some_and(|k| self.state.borrow().entries.contains_key(&k))
    }

    /// The validators held for `url`.
    pub fn validators(&self, url: &str) -> Option<Validators> {
        let k = key(url)?;
        let s = self.state.borrow();
        let e = s.entries.get(&k)?;
        Some(Validators {
            etag: e.etag.clone(),
            last_modified: e.last_modified.clone(),
        })
    }

    /// Forgets `url`.
    pub fn remove(&self, url: &str) {
        if let Some(k) = key(url) {
            self.state.borrow_mut().remove(&k);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut s = self.state.borrow_mut();
        s.entries.clear();
        s.order.clear();
        s.total = 0;
    }
}

/// The cache key: the parsed URL without its fragment.
fn key(url: &str) -> Option<String> {
    let mut u = Url::parse(url).ok()?;
    u.set_fragment(None);
    Some(u.into())
}

/// Sends conditional GETs through an inner agent, with the validators kept in a
/// [`ValidatorCache`] (the session builder's [`conditional`](crate::ClientBuilder::conditional)
/// stacks it).
///
/// A `GET` of a URL the cache holds gets `If-None-Match` / `If-Modified-Since` (unless the
/// request has its own). A `200` with an `ETag` or `Last-Modified` is cached as its body
/// streams through (bodies past the cache's entry cap pass through uncached); a `304` to a
/// request the wrapper made conditional is answered with the cached body, its code left at
/// `304` so the caller can tell; a `200`, `404` or `410` without validators, or a successful
/// unsafe request (`POST`, `PUT`, `DELETE`, `PATCH`), forgets the URL (RFC 9111 section 4.4).
///
/// ```no_run
/// use weft::{HttpClient, Reactor, ValidatorCache};
///
/// let mut reactor = Reactor::new().unwrap();
/// let client = HttpClient::builder().conditional(ValidatorCache::new()).build(reactor.ctx());
/// client.get("http://127.0.0.1:8080/feed.xml").fetch(reactor.ctx(), |ctx, r| {
///     match r {
///         Ok(r) if r.code == 304 => println!("no change ({} cached bytes)", r.body.len()),
///         Ok(r) => println!("{}: {} new bytes", r.code, r.body.len()),
///         Err(e) => eprintln!("{e}"),
///     }
///     ctx.stop();
/// });
/// reactor.run().unwrap();
/// ```
#[derive(Debug)]
pub struct ConditionalAgent<A: HttpAgent> {
    inner: A,
    cache: ValidatorCache,
}

impl<A: HttpAgent> ConditionalAgent<A> {
    /// Wraps `inner`, keeping validators in `cache`.
    pub fn new(inner: A, cache: ValidatorCache) -> Self {
        ConditionalAgent { inner, cache }
    }

    /// The cache.
    pub fn cache(&self) -> &ValidatorCache {
        &self.cache
    }
}

impl<A: HttpAgent> HttpAgent for ConditionalAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        mut request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let k = key(&request.url);
        if !matches!(&*request.method, "GET" | "HEAD") {
            // An unsafe method that succeeds invalidates what is cached for its URL.
            let unsafe_method = !matches!(&*request.method, "OPTIONS" | "TRACE");
            let cache = self.cache.clone();
            return self.inner.request(
                ctx,
                request,
                Box::new(move |ctx, result| {
                    if let (Ok(r), Some(k), true) = (&result, &k, unsafe_method)
                        && r.code < 400
                    {
                        cache.state.borrow_mut().remove(k);
                    }
                    on_response(ctx, result);
                }),
            );
        }
        let is_get = request.method == "GET";
        let cached = k.as_ref().and_then(|k| {
            let mut s = self.cache.state.borrow_mut();
            s.touch(k);
            s.entries
                .get(k)
                .map(|e| (e.etag.clone(), e.last_modified.clone(), e.body.clone()))
        });
        let mut cached_body = None;
        if let Some((etag, last_modified, body)) = cached {
            let own = request.headers.contains("if-none-match")
                || request.headers.contains("if-modified-since");
            if !own {
                if let Some(v) = etag {
                    request.headers.set("If-None-Match", &v);
                }
                if let Some(v) = last_modified {
                    request.headers.set("If-Modified-Since", &v);
                }
                cached_body = Some(body);
            }
        }
        let cache = self.cache.clone();
        self.inner.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let mut resp = match result {
                    Ok(r) => r,
                    Err(e) => return on_response(ctx, Err(e)),
                };
                let Some(k) = k else {
                    return on_response(ctx, Ok(resp));
                };
                let etag = resp.headers.get("etag").map(<[u8]>::to_vec);
                let last_modified = resp.headers.get("last-modified").map(<[u8]>::to_vec);
                if resp.code == 304 {
                    if let Some(e) = cache.state.borrow_mut().entries.get_mut(&k) {
                        // A 304 may carry updated validators (RFC 9111 section 4.3.4).
                        if etag.is_some() {
                            e.etag = etag;
                        }
                        if last_modified.is_some() {
                            e.last_modified = last_modified;
                        }
                    }
                    if let Some(body) = cached_body.filter(|_| is_get) {
                        resp.length = Some(body.len() as u64);
                        resp.map_body(move |inner| {
                            Box::new(Replay {
                                inner,
                                body: body.clone(),
                                handle: None,
                            })
                        });
                    }
                } else if resp.code == 200 && is_get && (etag.is_some() || last_modified.is_some())
                {
                    let max = cache.state.borrow().max_entry;
                    let keep = Rc::new(RefCell::new(Some(Capture {
                        cache: cache.clone(),
                        key: k,
                        etag,
                        last_modified,
                        body: Vec::new(),
                        max,
                    })));
                    resp.map_body(move |inner| {
                        Box::new(Tee {
                            inner,
                            capture: keep.borrow_mut().take(),
                        })
                    });
                } else if matches!(resp.code, 200 | 404 | 410) {
                    cache.state.borrow_mut().remove(&k);
                }
                on_response(ctx, Ok(resp));
            }),
        )
    }

    fn default_total_timeout(&self) -> Option<std::time::Duration> {
        self.inner.default_total_timeout()
    }
}

/// A body on its way into the cache.
struct Capture {
    cache: ValidatorCache,
    key: String,
    etag: Option<Vec<u8>>,
    last_modified: Option<Vec<u8>>,
    body: Vec<u8>,
    max: usize,
}

/// Passes a `200`'s body through and keeps a copy; a body that ends whole (and fits the
/// cache's entry cap) is cached.
struct Tee {
    inner: Box<dyn BodyProtocol>,
    capture: Option<Capture>,
}

impl BodyProtocol for Tee {
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        self.inner.body_started(ctx, handle);
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        if let Some(c) = &mut self.capture {
            if c.body.len() + data.len() > c.max {
                // Too big to cache: stop copying (a stale entry goes).
                c.cache.state.borrow_mut().remove(&c.key);
                self.capture = None;
            } else {
                c.body.extend_from_slice(data);
            }
        }
        self.inner.data_received(body, data);
    }

    fn trailers_received(&mut self, body: &mut BodyCtx<'_>, trailers: &Headers) {
        self.inner.trailers_received(body, trailers);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        if let (Some(c), true) = (self.capture.take(), reason.is_done()) {
            let entry = Entry {
                etag: c.etag,
                last_modified: c.last_modified,
                body: Rc::new(c.body),
            };
            c.cache.state.borrow_mut().insert(c.key, entry);
        }
        self.inner.connection_lost(ctx, reason);
    }
}

/// Gives the cached body in place of a `304`'s empty one.
struct Replay {
    inner: Box<dyn BodyProtocol>,
    body: Rc<Vec<u8>>,
    handle: Option<BodyHandle>,
}

impl BodyProtocol for Replay {
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        self.handle = Some(handle);
        self.inner.body_started(ctx, handle);
    }

    fn data_received(&mut self, _body: &mut BodyCtx<'_>, _data: &[u8]) {
        // A 304 has no body (the protocol core delivers none).
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let (BodyEnd::Done, Some(handle), false) = (&reason, self.handle, self.body.is_empty())
        else {
            return self.inner.connection_lost(ctx, reason);
        };
        let mut body = BodyCtx::new(ctx, handle.agent, handle.request);
        self.inner.data_received(&mut body, &self.body);
        let reason = if body.stopped {
            BodyEnd::Failed(Error::new(Phase::ResponseFailed, Cause::Cancelled))
        } else {
            BodyEnd::Done
        };
        self.inner.connection_lost(ctx, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            etag: Some(b"\"x\"".to_vec()),
            last_modified: None,
            body: Rc::new(vec![0; n]),
        }
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let c = ValidatorCache::with_limits(100, 3, 250);
        {
            let mut s = c.state.borrow_mut();
            s.insert("http://a/1".into(), entry(100));
            s.insert("http://a/2".into(), entry(100));
            s.insert("http://a/big".into(), entry(101));
        }
        assert_eq!(c.len(), 2);
        assert!(!c.contains("http://a/big"));
        // A third 100-byte entry passes the byte cap: the oldest goes.
        c.state.borrow_mut().insert("http://a/3".into(), entry(100));
        assert_eq!(c.len(), 2);
        assert!(!c.contains("http://a/1") && c.contains("http://a/3"));
        assert_eq!(c.bytes(), 200);
        for i in 0..10 {
            c.state
                .borrow_mut()
                .insert(format!("http://a/s{i}"), entry(1));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.bytes(), 3);
    }
}
