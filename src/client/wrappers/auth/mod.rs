//! HTTP authentication (curl's `-u`, `--basic`, `--digest`, `--anyauth`): the [`AuthAgent`]
//! wrapper answers a `401` challenge with Basic or Digest (RFC 7617, RFC 7616) and retries
//! once. Basic is always there; Digest comes with the `digest` cargo feature.

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use url::Url;

use crate::client::wrappers::replay::RequestParts;
use crate::reactor::Ctx;

use crate::client::error::{Cause, Error, Phase, Timeout};
use crate::client::request::{HttpAgent, Request, RequestHandle, ResponseCallback};
use crate::client::response::{PreviousResponse, Response};

#[cfg(feature = "digest")]
mod digest;

/// The most of a `401` body read (and dropped) before the retry, so its connection can be
/// pooled; a longer body closes the connection instead.
const MAX_CHALLENGE_BODY: u64 = 64 * 1024;

/// A user name and password.
///
/// ```
/// use weft::client::Credentials;
/// let c = Credentials::new("alice", "s3cret");
/// assert_eq!(c.user, "alice");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(user: &str, password: &str) -> Self {
        Credentials {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// The percent-decoded userinfo of `url` (`http://user:pass@host/`), if it has a user name.
    pub fn from_url(url: &Url) -> Option<Credentials> {
        if url.username().is_empty() {
            return None;
        }
        let decode = |s: &str| {
            percent_encoding_decode(s)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| s.to_string())
        };
        Some(Credentials {
            user: decode(url.username()),
            password: decode(url.password().unwrap_or("")),
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn percent_encoding_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// When and how credentials are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMode {
    /// `Authorization: Basic` on the first request, without waiting for a challenge
    /// (curl's `-u`). No retry.
    Basic,
    /// Nothing at first; on a `401` with a Digest challenge, retry once with Digest
    /// (curl's `--digest`). A Basic-only challenge is handed to the caller.
    #[cfg(feature = "digest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "digest")))]
    Digest,
    /// Nothing at first; on a `401`, retry once with the strongest scheme offered: Digest
    /// (with the `digest` feature), else Basic (curl's `--anyauth`).
    Auto,
}

/// Adds credentials to requests (Twisted's webcat3 flow, automated).
///
/// Credentials come from the URL's userinfo when it has one (percent-decoded, and removed
/// from the URL passed on), else from the ones given here; without either the request passes
/// through untouched, as does a request that already has an `Authorization` field.
///
/// In `AuthMode::Digest` and [`AuthMode::Auto`], a `401` from the request's own origin with
/// a challenge it can answer is read (up to 64 KiB, then dropped) and the request is sent
/// again once, with its body rewound ([`BodyProducer::rewind`](crate::client::BodyProducer::rewind)); a body that cannot be rewound
/// gets the `401` handed to the caller. The retry's response carries the `401` in its
/// [`Response::history`]. A second `401` is handed over as is.
///
/// ```no_run
/// use weft::client::{Agent, AgentConfig, AuthAgent, AuthMode, Credentials, HttpAgent, Request};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = AuthAgent::new(Agent::new(reactor.ctx(), AgentConfig::default()),
///     Some(Credentials::new("u", "p")), AuthMode::Auto);
/// agent.request(reactor.ctx(), Request::get("http://127.0.0.1:8080/digest-auth/auth/u/p"),
///     Box::new(|ctx, result| {
///         println!("{:?}", result.map(|r| r.code));
///         ctx.stop();
///     }));
/// reactor.run().unwrap();
/// ```
pub struct AuthAgent<A: HttpAgent> {
    inner: Rc<A>,
    credentials: Option<Credentials>,
    mode: AuthMode,
}

impl<A: HttpAgent> fmt::Debug for AuthAgent<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthAgent")
            .field("credentials", &self.credentials)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<A: HttpAgent> AuthAgent<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, credentials: Option<Credentials>, mode: AuthMode) -> Self {
        AuthAgent {
            inner: Rc::new(inner),
            credentials,
            mode,
        }
    }
}

impl<A: HttpAgent> HttpAgent for AuthAgent<A> {
    fn request(
        &self,
        ctx: &mut Ctx,
        mut request: Request,
        on_response: ResponseCallback,
    ) -> RequestHandle {
        let Ok(mut url) = Url::parse(&request.url) else {
            return self.inner.request(ctx, request, on_response);
        };
        let creds = Credentials::from_url(&url).or_else(|| self.credentials.clone());
        if !url.username().is_empty() || url.password().is_some() {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            request.url = url.as_str().into();
        }
        let Some(creds) = creds else {
            return self.inner.request(ctx, request, on_response);
        };
        if request.headers.contains("authorization") {
            return self.inner.request(ctx, request, on_response);
        }
        if self.mode == AuthMode::Basic {
            request
                .headers
                .set("Authorization", basic_header(&creds).as_bytes());
            return self.inner.request(ctx, request, on_response);
        }

        // Keep what the retry needs (one deadline covers the first try and the retry), and
        // send the first try from it.
        let (first_url, parts) = RequestParts::capture(
            request,
            self.inner.default_total_timeout(),
            "request superseded",
        );
        let first = parts.request(first_url, parts.timeouts);
        let retry = Retry {
            inner: self.inner.clone(),
            url,
            parts,
            creds,
            mode: self.mode,
            handle: RequestHandle::new(),
            started: Instant::now(),
        };
        let handle = retry.handle.clone();
        let hop = self.inner.request(
            ctx,
            first,
            Box::new(move |ctx, result| retry.first_response(ctx, result, on_response)),
        );
        handle.follow(&hop);
        handle
    }

    fn default_total_timeout(&self) -> Option<std::time::Duration> {
        self.inner.default_total_timeout()
    }
}

/// What the retry needs, carried by the first hop's callback.
struct Retry<A: HttpAgent> {
    inner: Rc<A>,
    url: Url,
    /// The request as the first try sent it; the retry gets what remains of the total
    /// timeout, and goes where the first try went (its Unix socket too).
    parts: RequestParts,
    creds: Credentials,
    mode: AuthMode,
    handle: RequestHandle,
    started: Instant,
}

impl<A: HttpAgent> Retry<A> {
    fn first_response(
        self,
        ctx: &mut Ctx,
        result: Result<Response, Error>,
        on_response: ResponseCallback,
    ) {
        let resp = match result {
            Ok(r) if r.code == 401 => r,
            other => return on_response(ctx, other),
        };
        // Credentials go only to the origin the request started with.
        if resp.url.origin() != self.url.origin() || self.handle.is_cancelled() {
            return on_response(ctx, Ok(resp));
        }
        let Some(authorization) = self.answer(&resp) else {
            return on_response(ctx, Ok(resp));
        };
        if let Some(b) = &self.parts.body
            && !b.rewind()
        {
            return on_response(ctx, Ok(resp));
        }
        let mut previous = resp.history.clone();
        previous.push(PreviousResponse {
            code: resp.code,
            url: (*resp.url).clone(),
            headers: resp.headers.clone(),
        });
        // Read the small 401 body so the connection can be pooled, then retry.
        resp.collect(ctx, MAX_CHALLENGE_BODY, move |ctx, _| {
            self.send_retry(ctx, authorization, previous, on_response)
        });
    }

    fn send_retry(
        self,
        ctx: &mut Ctx,
        authorization: String,
        previous: Vec<PreviousResponse>,
        on_response: ResponseCallback,
    ) {
        if self.handle.is_cancelled() {
            return on_response(
                ctx,
                Err(Error::new(Phase::RequestNotSent, Cause::Cancelled).with_url(self.url.as_str())),
            );
        }
        let Some(timeouts) = self.parts.timeouts.for_hop(self.started) else {
            let cause = Timeout::total_spent(self.parts.timeouts.total, self.started);
            let error = Error::new(Phase::RequestNotSent, cause).with_url(self.url.as_str());
            return on_response(ctx, Err(error));
        };
        let mut request = self.parts.request(self.url.as_str().into(), timeouts);
        request
            .headers
            .set("Authorization", authorization.as_bytes());
        let earlier = self.started.elapsed();
        let hop = self.inner.request(
            ctx,
            request,
            Box::new(move |ctx, result| {
                let result = result.map(|mut r| {
                    let mut history = previous;
                    history.append(&mut r.history);
                    r.history = history;
                    r.timing.redirect += earlier;
                    r
                });
                on_response(ctx, result)
            }),
        );
        self.handle.follow(&hop);
    }

    /// The `Authorization` value answering the response's challenges, if one can be answered.
    fn answer(&self, resp: &Response) -> Option<String> {
        let mut challenges = Vec::new();
        for v in resp.headers.get_all("www-authenticate") {
            challenges.extend(parse_challenges(&String::from_utf8_lossy(v)));
        }
        #[cfg(feature = "digest")]
        if let Some(authorization) =
            digest::answer(&challenges, &self.creds, &self.parts.method, &self.url)
        {
            return Some(authorization);
        }
        let basic = challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"));
        (self.mode == AuthMode::Auto && basic).then(|| basic_header(&self.creds))
    }
}

fn basic_header(c: &Credentials) -> String {
    format!(
        "Basic {}",
        BASE64.encode(format!("{}:{}", c.user, c.password))
    )
}

/// One challenge of a `WWW-Authenticate` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of the parameter `name` (case-insensitive).
    #[cfg(any(feature = "digest", test))]
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses a `WWW-Authenticate` value: challenges (`scheme param=value, param="quoted"`)
/// separated by commas. Anything unparsable ends the parse; what came before is kept.
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let b = value.as_bytes();
    let mut out: Vec<Challenge> = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        &value[s..*i]
    };
    while i < b.len() && out.len() < 16 {
        while i < b.len() && (b[i] == b',' || b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let scheme = token(&mut i);
        if scheme.is_empty() {
            break;
        }
        let mut ch = Challenge {
            scheme: scheme.to_string(),
            params: Vec::new(),
        };
        loop {
            skip_ws(&mut i);
            let start = i;
            let name = token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() || i >= b.len() || b[i] != b'=' {
                // Not a parameter: the next challenge starts here (or a token68 we skip).
                i = start;
                if !name.is_empty() && i < b.len() && (b.get(i + name.len()) == Some(&b'=')) {
                    // token68 such as `abc==`: skip it.
                    while i < b.len() && b[i] != b',' {
                        i += 1;
                    }
                }
                break;
            }
            i += 1;
            skip_ws(&mut i);
            let val = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                while i < b.len() {
                    match b[i] {
                        b'\\' if i + 1 < b.len() => {
                            // A quoted-pair escapes one character, which may take several
                            // bytes: stepping over one byte would land inside it.
                            let c = value[i + 1..].chars().next().unwrap_or('\\');
                            v.push(c);
                            i += 1 + c.len_utf8();
                        }
                        b'"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        _ => {
                            // Keep multi-byte UTF-8 intact.
                            let ch_len = value[i..].chars().next().map_or(1, char::len_utf8);
                            v.push_str(&value[i..i + ch_len]);
                            i += ch_len;
                        }
                    }
                }
                if !closed {
                    out.push(ch);
                    return out;
                }
                v
            } else {
                let t = token(&mut i);
                if t.is_empty() {
                    // token68 with trailing '=' (e.g. `Negotiate abc=`): skip to the next comma.
                    while i < b.len() && b[i] != b',' {
                        i += 1;
                    }
                }
                t.to_string()
            };
            if ch.params.len() < 32 {
                ch.params.push((name.to_ascii_lowercase(), val));
            }
            skip_ws(&mut i);
            if i < b.len() && b[i] == b',' {
                i += 1;
            } else {
                break;
            }
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_challenges() {
        let c = parse_challenges(
            r#"Digest realm="a, b", qop="auth,auth-int", nonce="n\"1", Basic realm=x, Negotiate abc=="#,
        );
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "Digest");
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[0].param("nonce"), Some("n\"1"));
        assert_eq!(c[1].scheme, "Basic");
        assert_eq!(c[1].param("realm"), Some("x"));
        assert_eq!(c[2].scheme, "Negotiate");
    }

    #[test]
    fn parser_survives_junk() {
        for s in [
            "",
            ",,,",
            "Digest realm=\"",
            "=",
            "Basic ===",
            "Digest a=b=c",
            "é\"\\",
            // A backslash before a multi-byte character (found by the client fuzz target:
            // it panicked on a char boundary).
            "Digest realm=\"\\\u{fffd}\u{fffd}x\", nonce=\"n\"",
        ] {
            let _ = parse_challenges(s);
        }
    }

    #[test]
    fn quoted_pair_escapes_a_whole_character() {
        let c = parse_challenges("Digest realm=\"a\\\u{e9}b\\\"\u{20ac}\", nonce=\"n\"");
        assert_eq!(c[0].param("realm"), Some("a\u{e9}b\"\u{20ac}"));
        assert_eq!(c[0].param("nonce"), Some("n"));
    }

    #[test]
    fn userinfo_is_percent_decoded() {
        let u = Url::parse("http://us%40er:p%3Ass@127.0.0.1/").unwrap();
        assert_eq!(
            Credentials::from_url(&u),
            Some(Credentials::new("us@er", "p:ss"))
        );
    }
}
