//! Cookies (Twisted's `CookieAgent`): a shared [`CookieJar`] and the [`CookieAgent`] wrapper
//! that sends and stores cookies on every hop.
//!
//! The RFC 6265 rules (domain and path matching, host-only cookies, `Max-Age` / `Expires`,
//! `Secure`, `HttpOnly`) come from the `cookie_store` crate. Two deliberate differences from
//! it: a `Secure` cookie is only ever sent over `https` (the crate, like browsers and curl,
//! also treats `localhost` and loopback addresses as secure), and the jar is bounded (see
//! [`CookieJar::MAX_COOKIES`]). As RFC 6265bis asks, a `Set-Cookie` with control characters
//! (other than HTAB) is ignored, and so is one whose name and value exceed 4096 bytes. A
//! `Domain=` attribute that is a public suffix (`Domain=com`, `Domain=co.uk`, the private
//! `Domain=github.io`; the Public Suffix List is compiled in through the `psl` crate) is refused
//! unless it is the request host itself, which makes the cookie host-only (RFC 6265 §5.3 step 5).
//! As RFC 6265bis asks, a `Secure` cookie is only taken from an `https` response, and the
//! `__Secure-` and `__Host-` name prefixes are enforced.

use std::cell::RefCell;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::rc::Rc;

use cookie_store::{CookieDomain, CookieExpiration, CookiePath, CookieStore, RawCookie};
use url::Url;

use crate::reactor::Ctx;

use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};

/// A cookie store shared by every agent (and clone) that holds it. Cheap to clone.
///
/// ```
/// use weft::client::CookieJar;
/// let jar = CookieJar::new();
/// jar.store_set_cookie("http://127.0.0.1/", "a=1; Path=/");
/// assert_eq!(jar.cookies_for("http://127.0.0.1/x"), vec![("a".to_string(), "1".to_string())]);
/// ```
#[derive(Clone, Default)]
pub struct CookieJar {
    store: Rc<RefCell<CookieStore>>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("cookies", &self.len())
            .finish()
    }
}

impl CookieJar {
    /// Most cookies held at once; further `Set-Cookie` fields that would add one are ignored
    /// (updates and deletions of held cookies still apply).
    pub const MAX_COOKIES: usize = 3000;
    /// Longest `Set-Cookie` value taken (bytes), as browsers cap a cookie at 4 KiB.
    pub const MAX_SET_COOKIE: usize = 8 * 1024;

    /// An empty jar.
    pub fn new() -> Self {
        CookieJar::default()
    }

    /// Number of unexpired cookies.
    pub fn len(&self) -> usize {
        self.store.borrow().iter_unexpired().count()
    }

    /// Whether the jar holds no unexpired cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cookie.
    pub fn clear(&self) {
        self.store.borrow_mut().clear();
    }

    /// The `(name, value)` pairs to send to `url`: cookies with longer paths first, then by
    /// name. Empty for an invalid URL.
    pub fn cookies_for(&self, url: &str) -> Vec<(String, String)> {
        match Url::parse(url) {
            Ok(u) => self.cookies_for_url(&u),
            Err(_) => Vec::new(),
        }
    }

    pub(crate) fn cookies_for_url(&self, url: &Url) -> Vec<(String, String)> {
        let https = url.scheme() == "https";
        let store = self.store.borrow();
        let mut found: Vec<_> = store
            .matches(url)
            .into_iter()
            .filter(|c| https || !c.secure().unwrap_or(false))
            .collect();
        // RFC 6265 5.4: longer paths first; then by name, as the store keeps no creation time.
        found.sort_by(|a, b| {
            let (pa, pb) = (String::from(&a.path), String::from(&b.path));
            pb.len().cmp(&pa.len()).then_with(|| a.name().cmp(b.name()))
        });
        found
            .into_iter()
            .map(|c| (c.name().to_string(), c.value().to_string()))
            .collect()
    }

    /// The `Cookie` field value for `url`, if any cookie applies.
    pub fn header_for(&self, url: &Url) -> Option<String> {
        let pairs = self.cookies_for_url(url);
        if pairs.is_empty() {
            return None;
        }
        let parts: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        Some(parts.join("; "))
    }

    /// Stores one `Set-Cookie` field value received from `url`. Returns whether it was taken
    /// (stored, updated or deleting a held cookie).
    pub fn store_set_cookie(&self, url: &str, value: &str) -> bool {
        match Url::parse(url) {
            Ok(u) => self.store_from(&u, value),
            Err(_) => false,
        }
    }

    pub(crate) fn store_from(&self, url: &Url, value: &str) -> bool {
        if value.len() > Self::MAX_SET_COOKIE {
            return false;
        }
        // RFC 6265bis section 5.7: a set-cookie-string with a CTL other than HTAB is ignored
        // entirely (the cookie crate would keep such bytes in the value).
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return false;
        }
        let Ok(mut raw) = RawCookie::parse(value.to_string()) else {
            return false;
        };
        // RFC 6265bis section 5.7: name and value together are at most 4096 bytes.
        if raw.name().len() + raw.value().len() > 4096 {
            return false;
        }
        if !secure_enough(&raw, url) {
            return false;
        }
        // RFC 6265 section 5.3 step 5: a Domain attribute that is a public suffix would reach
        // every site under it (`Domain=co.uk`), so the cookie is ignored, unless the suffix is
        // the request host itself, where it becomes host-only.
        if let Some(domain) = raw.domain() {
            let domain = domain.trim_start_matches('.').to_ascii_lowercase();
            if domain.is_empty() {
                // RFC 6265 section 5.2.3: an empty Domain attribute is ignored, not the cookie.
                raw.unset_domain();
            } else if is_public_suffix(&domain) {
                let host = url.host_str().unwrap_or_default();
                if domain.trim_end_matches('.') != host.trim_end_matches('.') {
                    return false;
                }
                raw.unset_domain();
            }
        }
        let Ok(cookie) = cookie_store::Cookie::try_from_raw_cookie(&raw, url) else {
            return false;
        };
        let mut store = self.store.borrow_mut();
        let known = match cookie.domain.as_cow() {
            Some(d) => store.contains_any(&d, &cookie.path, cookie.name()),
            None => false,
        };
        if !known && store.iter_any().count() >= Self::MAX_COOKIES {
            return false;
        }
        store.insert(cookie.into_owned(), url).is_ok()
    }

    /// Loads a jar from a file written by [`CookieJar::save`] (JSON) or in curl's Netscape
    /// format ([`CookieJar::save_netscape`]); the format is told by the first non-blank byte
    /// (`[` for JSON). Expired cookies are skipped.
    ///
    /// ```no_run
    /// let jar = weft::client::CookieJar::load("cookies.txt").unwrap();
    /// # let _ = jar;
    /// ```
    pub fn load(path: impl AsRef<Path>) -> io::Result<CookieJar> {
        let text = fs::read_to_string(path)?;
        if text.trim_start().starts_with('[') {
            Self::from_json(&text)
        } else {
            Self::from_netscape(&text)
        }
    }

    /// Parses the JSON format of [`CookieJar::save`].
    pub fn from_json(text: &str) -> io::Result<CookieJar> {
        let cookies: Vec<cookie_store::Cookie<'static>> = serde_json::from_str(text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let store = CookieStore::from_cookies(cookies.into_iter().map(Ok::<_, io::Error>), false)?;
        Ok(CookieJar {
            store: Rc::new(RefCell::new(store)),
        })
    }

    /// Saves every unexpired cookie, session cookies included (as curl's `-c` does), as a
    /// JSON array in `cookie_store`'s serde format: one object per cookie with `raw_cookie`
    /// (the `Set-Cookie` string), `path` (`[path, from_path_attribute]`), `domain`
    /// (`{"HostOnly": host}` or `{"Suffix": domain}`) and `expires`
    /// (`{"AtUtc": RFC 3339 time}` or `"SessionEnd"`). The file is replaced.
    pub fn save(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let text = self.to_json()?;
        fs::write(path, text)
    }

    /// The JSON text [`CookieJar::save`] writes.
    pub fn to_json(&self) -> io::Result<String> {
        let store = self.store.borrow();
        let cookies: Vec<&cookie_store::Cookie<'static>> = store.iter_unexpired().collect();
        serde_json::to_string_pretty(&cookies).map_err(io::Error::other)
    }

    /// Saves every unexpired cookie in curl's Netscape cookie-file format: one line per
    /// cookie, tab-separated `domain`, `include-subdomains` (`TRUE`/`FALSE`), `path`,
    /// `secure` (`TRUE`/`FALSE`), `expires` (Unix seconds, 0 for a session cookie), `name`,
    /// `value`; `HttpOnly` cookies have their line prefixed by `#HttpOnly_`.
    pub fn save_netscape(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let mut out = BufWriter::new(fs::File::create(path)?);
        out.write_all(self.to_netscape().as_bytes())?;
        out.flush()
    }

    /// The text [`CookieJar::save_netscape`] writes.
    pub fn to_netscape(&self) -> String {
        let mut out = String::from("# Netscape HTTP Cookie File\n# Written by weft.\n\n");
        let store = self.store.borrow();
        for c in store.iter_unexpired() {
            let (domain, sub) = match &c.domain {
                CookieDomain::HostOnly(h) => (h.clone(), "FALSE"),
                CookieDomain::Suffix(d) => (format!(".{d}"), "TRUE"),
                _ => continue,
            };
            let expires = match &c.expires {
                CookieExpiration::AtUtc(t) => t.unix_timestamp().max(1),
                CookieExpiration::SessionEnd => 0,
            };
            let prefix = if c.http_only().unwrap_or(false) {
                "#HttpOnly_"
            } else {
                ""
            };
            let secure = if c.secure().unwrap_or(false) {
                "TRUE"
            } else {
                "FALSE"
            };
            out.push_str(&format!(
                "{prefix}{domain}\t{sub}\t{}\t{secure}\t{expires}\t{}\t{}\n",
                String::from(&c.path),
                c.name(),
                c.value()
            ));
        }
        out
    }

    /// Parses curl's Netscape cookie-file format (see [`CookieJar::save_netscape`]). Comment
    /// and blank lines are skipped; so are malformed lines and expired cookies.
    pub fn from_netscape(text: &str) -> io::Result<CookieJar> {
        let mut cookies = Vec::new();
        for line in text.lines() {
            if cookies.len() >= Self::MAX_COOKIES {
                break;
            }
            if let Some(c) = parse_netscape_line(line) {
                cookies.push(c);
            }
        }
        let store = CookieStore::from_cookies(cookies.into_iter().map(Ok::<_, io::Error>), false)?;
        Ok(CookieJar {
            store: Rc::new(RefCell::new(store)),
        })
    }
}

/// RFC 6265bis sections 5.7 and 4.1.3: a `Secure` cookie is only taken from an `https`
/// response (a plain-http server must not overwrite the cookies of the secure site), and the
/// `__Secure-` and `__Host-` name prefixes hold what they promise: `Secure`, from `https`, and
/// for `__Host-` also host-only with `Path=/`.
fn secure_enough(raw: &RawCookie<'_>, url: &Url) -> bool {
    let from_https = url.scheme() == "https";
    let secure = raw.secure() == Some(true);
    if secure && !from_https {
        return false;
    }
    let name = raw.name().as_bytes();
    let has_prefix = |prefix: &[u8]| {
        name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    if has_prefix(b"__Secure-") && !secure {
        return false;
    }
    if has_prefix(b"__Host-") && !(secure && raw.domain().is_none() && raw.path() == Some("/")) {
        return false;
    }
    true
}

/// Whether `domain` (lowercase, no leading dot) is a public suffix: an ICANN or private entry
/// of the Public Suffix List compiled into the `psl` crate, or a single label, which the list's
/// default `*` rule makes one.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes())
        .is_some_and(|s| s.trim().as_bytes() == domain.trim_end_matches('.').as_bytes())
}

fn parse_netscape_line(line: &str) -> Option<cookie_store::Cookie<'static>> {
    let line = line.trim_end_matches('\r');
    let (http_only, line) = match line.strip_prefix("#HttpOnly_") {
        Some(rest) => (true, rest),
        None if line.starts_with('#') || line.trim().is_empty() => return None,
        None => (false, line),
    };
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 7 {
        return None;
    }
    let host = f[0].trim_start_matches('.').to_ascii_lowercase();
    let include_sub = f[1].eq_ignore_ascii_case("TRUE");
    let secure = f[3].eq_ignore_ascii_case("TRUE");
    let expires: i64 = f[4].parse().ok()?;
    let url = Url::parse(&format!("https://{host}/")).ok()?;
    let mut raw = RawCookie::new(f[5].to_string(), f[6].to_string());
    raw.set_secure(secure.then_some(true));
    raw.set_http_only(http_only.then_some(true));
    let mut cookie = cookie_store::Cookie::try_from_raw_cookie(&raw, &url).ok()?;
    let host = url.host_str()?.to_string();
    cookie.domain = if include_sub {
        CookieDomain::Suffix(host)
    } else {
        CookieDomain::HostOnly(host)
    };
    cookie.path = CookiePath::parse(f[2])?;
    cookie.expires = if expires == 0 {
        CookieExpiration::SessionEnd
    } else {
        CookieExpiration::from(time::OffsetDateTime::from_unix_timestamp(expires).ok()?)
    };
    Some(cookie.into_owned())
}

/// Sends the jar's cookies with every request and stores the `Set-Cookie` fields of every
/// response head (Twisted's `CookieAgent`). Wrap it in a redirect-following agent
/// (`RedirectAgent(CookieAgent(agent))`) so that each hop's cookies are stored and sent.
///
/// A request that already has a `Cookie` field is sent as is.
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, CookieAgent, CookieJar, HttpAgent, Request};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let jar = CookieJar::new();
/// let agent = CookieAgent::new(Agent::new(reactor.ctx(), AgentConfig::default()), jar.clone());
/// agent.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/login"),
///     Box::new(|ctx, _result| ctx.stop()));
/// reactor.run().unwrap();
/// println!("{:?}", jar.cookies_for("http://127.0.0.1:8080/"));
/// ```
#[derive(Debug, Clone)]
pub struct CookieAgent<A: HttpAgent> {
    inner: A,
    jar: CookieJar,
}

impl<A: HttpAgent> CookieAgent<A> {
    /// Wraps `inner`, using `jar`.
    pub fn new(inner: A, jar: CookieJar) -> Self {
        CookieAgent { inner, jar }
    }

    /// The jar.
    pub fn jar(&self) -> &CookieJar {
        &self.jar
    }

    /// The wrapped agent.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: HttpAgent> HttpAgent for CookieAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        mut request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let Ok(url) = Url::parse(&request.url) else {
            // The inner agent reports the bad URL.
            return self.inner.request(ctx, request, on_response);
        };
        if !request.headers.contains("cookie")
            && let Some(v) = self.jar.header_for(&url)
        {
            request.headers.set("Cookie", v.as_bytes());
        }
        let jar = self.jar.clone();
        self.inner.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                if let Ok(resp) = &result {
                    for v in resp.headers.get_all("set-cookie") {
                        if let Ok(s) = std::str::from_utf8(v) {
                            jar.store_from(&resp.url, s);
                        }
                    }
                }
                on_response(ctx, result);
            }),
        )
    }

    fn default_total_timeout(&self) -> Option<std::time::Duration> {
        self.inner.default_total_timeout()
    }
}
