//! The session builder: one place that stacks the wrapper agents over an [`Agent`] in the one
//! safe order, with treq's defaults switched on.
//!
//! From the bottom up: the [`Agent`] (pool and connections), content decoding, conditional
//! requests (so the cache holds decoded bodies), cookies (each hop's `Set-Cookie` is taken and
//! each hop gets its own `Cookie`), retries when asked for, redirects, and authentication
//! outermost (the credentials ride on the first request, and the redirect wrapper beneath
//! drops them on a hop to another origin).
//!
//! Retries sit just beneath redirects: each hop of a redirect chain is retried on its own
//! (a flaky redirect target is retried, and a retried `503` is never mistaken for the end of
//! the chain), while every attempt still goes through cookies (it sends the jar's current
//! cookies and stores those of a retried response, as a browser does), conditional requests
//! and decoding (a retried body is dropped raw, never decoded).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::reactor::{Ctx, IpFamily};
use crate::tls::TlsConnector;

use super::agent::{Agent, AgentConfig};
use super::http_client::{HttpClient, Parts};
use super::overrides::{ConnectTo, ResolveOverride};
use super::proxy::Proxies;
use super::request::HttpAgent;
use super::wrappers::auth::{AuthAgent, AuthMode, Credentials};
use super::wrappers::conditional::{ConditionalAgent, ValidatorCache};
#[cfg(feature = "cookies")]
use super::wrappers::cookies::{CookieAgent, CookieJar};
use super::wrappers::decode::{ContentDecoderAgent, DecodeConfig};
use super::wrappers::redirect::{RedirectAgent, RedirectConfig};
use super::wrappers::retry::{RetryAgent, RetryHook, RetryPolicy};

impl HttpClient {
    /// A builder with treq's defaults on: redirects followed (up to 10, never https to http),
    /// cookies kept in a new jar (with the `cookies` feature), bodies decoded (the codecs
    /// built in: gzip, deflate, br, zstd by default), and credentials taken from a URL's
    /// userinfo. Each is switchable.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use weft::{HttpClient, Reactor};
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let client = HttpClient::builder()
    ///     .timeout(Duration::from_secs(10))
    ///     .max_redirects(3)
    ///     .user_agent("my-app/1.0")
    ///     .build(reactor.ctx());
    /// client.get("http://127.0.0.1:8080/").fetch(reactor.ctx(), |ctx, r| {
    ///     println!("{:?}", r.map(|r| r.code));
    ///     ctx.stop();
    /// });
    /// reactor.run().unwrap();
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Builds an [`HttpClient`] (with [`ClientBuilder::build`]) or a blocking
/// [`Client`](crate::blocking::Client) (with [`ClientBuilder::build_blocking`]): the agent's
/// settings and which wrappers to stack. Made by [`HttpClient::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) agent: AgentConfig,
    pub(crate) max_body: u64,
    error_for_status: bool,
    redirects: Option<RedirectConfig>,
    #[cfg(feature = "cookies")]
    cookies: Option<CookieJar>,
    decode: Option<DecodeConfig>,
    auth: Option<(Option<Credentials>, AuthMode)>,
    conditional: Option<ValidatorCache>,
    retry: Option<RetryPolicy>,
    retry_hook: Option<RetryHook>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            agent: AgentConfig::default(),
            max_body: HttpClient::DEFAULT_MAX_BODY,
            error_for_status: false,
            redirects: Some(RedirectConfig::default()),
            #[cfg(feature = "cookies")]
            cookies: Some(CookieJar::new()),
            decode: Some(DecodeConfig::default()),
            // Without credentials of its own, the wrapper only uses a URL's userinfo.
            auth: Some((None, AuthMode::Basic)),
            conditional: None,
            retry: None,
            retry_hook: None,
        }
    }
}

impl ClientBuilder {
    /// The settings of the agent at the bottom (pool, timeouts, TLS, proxies, limits),
    /// replacing every agent setting made before.
    pub fn agent_config(mut self, config: AgentConfig) -> Self {
        self.agent = config;
        self
    }

    /// Limit on each request as a whole, every redirect and authentication hop together
    /// ([`AgentConfig::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.agent.timeout = Some(limit);
        self
    }

    /// Limit on setting up a connection: resolving, connecting, TLS
    /// ([`AgentConfig::connect_timeout`]).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.agent.connect_timeout = Some(limit);
        self
    }

    /// Limit on a silence while a request is active ([`AgentConfig::read_timeout`]).
    pub fn read_timeout(mut self, limit: Duration) -> Self {
        self.agent.read_timeout = Some(limit);
        self
    }

    /// The `User-Agent` sent with every request.
    pub fn user_agent(mut self, value: &str) -> Self {
        self.agent.user_agent = Some(value.to_string());
        self
    }

    /// The proxies requests go through ([`Proxies::from_env`] reads the usual variables).
    pub fn proxies(mut self, proxies: Proxies) -> Self {
        self.agent.proxies = proxies;
        self
    }

    /// Sends every request over the Unix domain socket at `path` instead of to the URL's
    /// host and port, as curl's `--unix-socket` ([`AgentConfig::unix_socket`]): the URL gives
    /// `Host`, and proxies do not apply.
    ///
    /// ```no_run
    /// use weft::{HttpClient, Reactor};
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let docker = HttpClient::builder()
    ///     .unix_socket("/run/docker.sock")
    ///     .build(reactor.ctx());
    /// docker.get("http://localhost/v1.43/containers/json").fetch(reactor.ctx(), |ctx, r| {
    ///     println!("{:?}", r.map(|r| r.text()));
    ///     ctx.stop();
    /// });
    /// reactor.run().unwrap();
    /// ```
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent.unix_socket = Some(path.into());
        self
    }

    /// The TLS settings (roots, client certificate, verification).
    pub fn tls(mut self, tls: TlsConnector) -> Self {
        self.agent.tls = tls;
        self
    }

    /// The Happy Eyeballs connection-attempt delay ([`AgentConfig::happy_eyeballs_delay`]).
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.agent.happy_eyeballs_delay = delay;
        self
    }

    /// The address families to connect to ([`AgentConfig::ip_family`]).
    pub fn ip_family(mut self, family: IpFamily) -> Self {
        self.agent.ip_family = family;
        self
    }

    /// Adds fixed addresses for a `host:port` (curl's `--resolve`;
    /// [`AgentConfig::resolve_overrides`]).
    pub fn resolve(mut self, entry: ResolveOverride) -> Self {
        self.agent.resolve_overrides.push(entry);
        self
    }

    /// Adds another destination for a `host:port` (curl's `--connect-to`;
    /// [`AgentConfig::connect_to`]).
    pub fn connect_to(mut self, entry: ConnectTo) -> Self {
        self.agent.connect_to.push(entry);
        self
    }

    /// Largest body `fetch` reads into memory (default 64 MiB); a larger one fails with
    /// [`Cause::BodyTooLarge`](super::Cause::BodyTooLarge).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// Whether non-2xx statuses fail requests with
    /// [`Cause::HttpStatus`](super::Cause::HttpStatus) (Tornado's `raise_error`; default
    /// false; each request can override it).
    pub fn error_for_status(mut self, on: bool) -> Self {
        self.error_for_status = on;
        self
    }

    /// Whether redirects are followed (default: yes, with [`RedirectConfig::default`]).
    pub fn redirects(mut self, on: bool) -> Self {
        self.redirects = on.then(|| self.redirects.take().unwrap_or_default());
        self
    }

    /// Follows redirects with this policy.
    pub fn redirect_config(mut self, config: RedirectConfig) -> Self {
        self.redirects = Some(config);
        self
    }

    /// Follows at most `max` redirects (curl's `--max-redirs`).
    pub fn max_redirects(mut self, max: u32) -> Self {
        let config = self.redirects.take().unwrap_or_default();
        self.redirects = Some(RedirectConfig {
            max_redirects: max,
            ..config
        });
        self
    }

    /// Whether cookies are kept (default: yes, in a jar of the client's own).
    #[cfg(feature = "cookies")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cookies")))]
    pub fn cookies(mut self, on: bool) -> Self {
        self.cookies = on.then(|| self.cookies.take().unwrap_or_default());
        self
    }

    /// Keeps cookies in `jar` (shared with its clones: load it first, save it after).
    #[cfg(feature = "cookies")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cookies")))]
    pub fn cookie_jar(mut self, jar: CookieJar) -> Self {
        self.cookies = Some(jar);
        self
    }

    /// Whether response bodies are decoded (default: yes; `Accept-Encoding` is sent).
    pub fn decompress(mut self, on: bool) -> Self {
        self.decode = on.then(|| self.decode.take().unwrap_or_default());
        self
    }

    /// Decodes bodies with these settings (codings offered, caps).
    pub fn decode_config(mut self, config: DecodeConfig) -> Self {
        self.decode = Some(config);
        self
    }

    /// Authenticates every request with `credentials` in `mode` (Basic up front, or Digest /
    /// the strongest offered after a `401`). A URL's own userinfo still wins.
    pub fn auth(mut self, credentials: Credentials, mode: AuthMode) -> Self {
        self.auth = Some((Some(credentials), mode));
        self
    }

    /// Whether a URL's userinfo (`http://user:pass@host/`) is sent as Basic credentials
    /// (default: yes). Switching it off also drops credentials given to
    /// [`ClientBuilder::auth`].
    pub fn url_credentials(mut self, on: bool) -> Self {
        self.auth = on.then(|| self.auth.take().unwrap_or((None, AuthMode::Basic)));
        self
    }

    /// Sends conditional GETs with the validators kept in `cache`: an unchanged resource
    /// costs a `304`, answered with the cached body.
    pub fn conditional(mut self, cache: ValidatorCache) -> Self {
        self.conditional = Some(cache);
        self
    }

    /// Retries transient failures by `policy` (default: no retries): connect failures,
    /// timeouts before a response, `408`/`429`/`500`/`502`/`503`/`504`, with backoff and
    /// `Retry-After` honoured. Each hop of a redirect chain is retried on its own.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use weft::client::RetryPolicy;
    /// use weft::{HttpClient, Reactor};
    ///
    /// let mut reactor = Reactor::new().unwrap();
    /// let client = HttpClient::builder()
    ///     .retry(RetryPolicy {
    ///         max_retries: 5,
    ///         max_total: Some(Duration::from_secs(30)),
    ///         ..RetryPolicy::default()
    ///     })
    ///     .build(reactor.ctx());
    /// # let _ = client;
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Calls `hook` before each retry of the [`ClientBuilder::retry`] policy, with what
    /// failed, the wait and the retries left (the `weft` command prints curl's "Will retry in
    /// N seconds" from it).
    ///
    /// ```
    /// use weft::client::{RetryHook, RetryPolicy};
    /// use weft::HttpClient;
    ///
    /// let builder = HttpClient::builder()
    ///     .retry(RetryPolicy::default())
    ///     .on_retry(RetryHook::new(|n| {
    ///         eprintln!("retry {} in {:?} ({} left): {}", n.retry, n.wait, n.retries_left, n.url)
    ///     }));
    /// # let _ = builder;
    /// ```
    pub fn on_retry(mut self, hook: RetryHook) -> Self {
        self.retry_hook = Some(hook);
        self
    }

    /// Builds the client, with its own [`Agent`] on this reactor.
    pub fn build(self, ctx: &mut Ctx) -> HttpClient {
        let agent = Agent::new(ctx, self.agent.clone());
        self.stack(agent, Some(agent))
    }

    /// Builds the client over `inner` instead of an agent of its own (an agent of the
    /// caller's, or a chain of its own wrappers): the builder's wrappers go on top. The
    /// agent settings of the builder are not used.
    pub fn wrap(self, inner: impl HttpAgent) -> HttpClient {
        self.stack(inner, None)
    }

    fn stack(self, inner: impl HttpAgent, pool: Option<Agent>) -> HttpClient {
        let mut chain: Rc<dyn HttpAgent> = Rc::new(inner);
        if let Some(config) = self.decode {
            chain = Rc::new(ContentDecoderAgent::new(chain, config));
        }
        if let Some(cache) = &self.conditional {
            chain = Rc::new(ConditionalAgent::new(chain, cache.clone()));
        }
        #[cfg(feature = "cookies")]
        if let Some(jar) = &self.cookies {
            chain = Rc::new(CookieAgent::new(chain, jar.clone()));
        }
        if let Some(policy) = self.retry {
            let mut agent = RetryAgent::new(chain, policy);
            if let Some(hook) = self.retry_hook {
                agent = agent.on_retry(hook);
            }
            chain = Rc::new(agent);
        }
        if let Some(config) = self.redirects {
            chain = Rc::new(RedirectAgent::new(chain, config));
        }
        if let Some((credentials, mode)) = self.auth {
            chain = Rc::new(AuthAgent::new(chain, credentials, mode));
        }
        let parts = Parts {
            pool,
            max_body: self.max_body,
            error_for_status: self.error_for_status,
            #[cfg(feature = "cookies")]
            cookies: self.cookies,
            cache: self.conditional,
        };
        HttpClient::from_parts(chain, parts)
    }
}
