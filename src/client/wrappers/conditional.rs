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

use crate::client::error::Error;
use crate::client::request::{HttpAgent, Request, RequestHandle};

/// Whether the resource changed since it was cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The server sent a full response (any status but 304): the body is the new one.
    Changed,
    /// The server answered `304 Not Modified`: the body is the cached one (empty when the
    /// cache held no body for this URL, e.g. when the caller sent its own validators).
    Unchanged,
}

/// The result of [`ConditionalAgent::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Changed or not.
    pub freshness: Freshness,
    /// The status code the server sent (304 when unchanged).
    pub code: u16,
    /// The header fields the server sent (those of the 304 when unchanged).
    pub headers: Headers,
    /// The URL fetched.
    pub url: Url,
    /// The body: the new one, or the cached one when unchanged.
    pub body: Vec<u8>,
}

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

/// Issues conditional GETs through an inner agent and a [`ValidatorCache`].
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, ConditionalAgent, Freshness, ValidatorCache};
/// use weft::proto::Headers;
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = ConditionalAgent::new(Agent::new(reactor.ctx(), AgentConfig::default()),
///     ValidatorCache::new());
/// agent.fetch(reactor.ctx(), "http://127.0.0.1:8080/feed.xml", Headers::new(), |ctx, r| {
///     match r {
///         Ok(f) if f.freshness == Freshness::Unchanged => println!("no change"),
///         Ok(f) => println!("{}: {} new bytes", f.code, f.body.len()),
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
    max_body: u64,
}

impl<A: HttpAgent> ConditionalAgent<A> {
    /// Default cap on a fetched body: 16 MiB ([`crate::client::Cause::BodyTooLarge`] past it).
    pub const DEFAULT_MAX_BODY: u64 = 16 << 20;

    /// Wraps `inner`, keeping validators in `cache`.
    pub fn new(inner: A, cache: ValidatorCache) -> Self {
        ConditionalAgent {
            inner,
            cache,
            max_body: Self::DEFAULT_MAX_BODY,
        }
    }

    /// Sets the cap on a fetched body.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The cache.
    pub fn cache(&self) -> &ValidatorCache {
        &self.cache
    }

    /// GETs `url`, with `If-None-Match` / `If-Modified-Since` from the cache unless `headers`
    /// has them, reads the body, and calls `on_done` once. A `200` with validators is cached;
    /// a `304` gives back the cached body as [`Freshness::Unchanged`].
    pub fn fetch(
        &self,
        ctx: &mut Ctx,
        url: &str,
        headers: Headers,
        on_done: impl FnOnce(&mut Ctx, Result<Fetched, Error>) + 'static,
    ) -> RequestHandle {
        let mut request = Request::get(url);
        request.headers = headers;
        let k = key(url);
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
        let max = self.max_body;
        self.inner.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let resp = match result {
                    Ok(r) => r,
                    Err(e) => return on_done(ctx, Err(e)),
                };
                let code = resp.code;
                let headers = resp.headers.clone();
                let url = (*resp.url).clone();
                resp.collect(ctx, max, move |ctx, body| {
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => return on_done(ctx, Err(e)),
                    };
                    let etag = headers.get("etag").map(<[u8]>::to_vec);
                    let last_modified = headers.get("last-modified").map(<[u8]>::to_vec);
                    if code == 304 {
                        if let Some(k) = &k {
                            let mut s = cache.state.borrow_mut();
                            if let Some(e) = s.entries.get_mut(k) {
                                // A 304 may carry updated validators (RFC 9111 section 4.3.4).
                                if etag.is_some() {
                                    e.etag = etag;
                                }
                                if last_modified.is_some() {
                                    e.last_modified = last_modified;
                                }
                            }
                        }
                        let body = cached_body.map(|b| (*b).clone()).unwrap_or_default();
                        let fetched = Fetched {
                            freshness: Freshness::Unchanged,
                            code,
                            headers,
                            url,
                            body,
                        };
                        return on_done(ctx, Ok(fetched));
                    }
                    if let Some(k) = k {
                        let cacheable = code == 200
                            && body.complete
                            && (etag.is_some() || last_modified.is_some());
                        let mut s = cache.state.borrow_mut();
                        if cacheable {
                            let entry = Entry {
                                etag,
                                last_modified,
                                body: Rc::new(body.body.clone()),
                            };
                            s.insert(k, entry);
                        } else if code == 200 || code == 404 || code == 410 {
                            s.remove(&k);
                        }
                    }
                    on_done(
                        ctx,
                        Ok(Fetched {
                            freshness: Freshness::Changed,
                            code,
                            headers,
                            url,
                            body: body.body,
                        }),
                    );
                });
            }),
        )
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
