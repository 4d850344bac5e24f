//! The settings of an agent and its pool.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::overrides::{ConnectTo, ResolveOverride};
use crate::client::proxy::Proxies;
use crate::proto;
use crate::reactor::{DEFAULT_ATTEMPT_DELAY, IpFamily};
use crate::tls::TlsConnector;

/// Settings of an [`Agent`](super::Agent) and its connection pool.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Keep connections open for reuse (default). When false every request carries
    /// `Connection: close` and gets its own connection, as Twisted's non-persistent mode.
    pub persistent: bool,
    /// Idle connections kept per host (default 2, as in Twisted).
    pub max_idle_per_host: usize,
    /// Connections in use per host at once (default 6); further requests wait in FIFO order.
    pub max_active_per_host: usize,
    /// Connections in use in total at once (default 256); further requests wait.
    pub max_active_total: usize,
    /// How long an idle connection is kept (default 240 s); a shorter `Keep-Alive: timeout=`
    /// from the server wins.
    pub idle_timeout: Duration,
    /// Limit on DNS + TCP connect + TLS handshake (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// Limit on a whole request, from submission to the end of its body, every redirect and
    /// authentication hop included when a wrapper makes them (default 300 s; set
    /// `None` for transfers that may legitimately take longer, such as large downloads on a
    /// slow link — the read timeout still catches a stalled server).
    pub timeout: Option<Duration>,
    /// Limit on the time a request waits for a free connection (default none).
    pub queue_timeout: Option<Duration>,
    /// Limit on a silence while a request is active: no byte received or sent for this long
    /// (default 60 s). A paused body does not count as silence.
    pub read_timeout: Option<Duration>,
    /// How long to wait for `100 Continue` before sending the body anyway (default 1 s).
    pub continue_timeout: Duration,
    /// TLS settings for `https` URLs (default: verify against the webpki roots).
    pub tls: TlsConnector,
    /// Parser limits of the protocol core.
    pub limits: proto::Config,
    /// `User-Agent` sent when the request has none (default `weft/<version>`).
    pub user_agent: Option<String>,
    /// Proxies (default none; [`Proxies::from_env`] reads them as curl does).
    pub proxies: Proxies,
    /// Connect every request to the Unix domain socket at this path instead of the URL's host
    /// and port (curl's `--unix-socket`; the Docker API's use). The URL still gives `Host`,
    /// the request target and, for `https`, the name TLS checks. Proxies do not apply.
    /// A request's own [`Request::unix_socket`](crate::client::Request::unix_socket) wins.
    /// Default none.
    pub unix_socket: Option<PathBuf>,
    /// Happy Eyeballs (RFC 8305) connection-attempt delay: how long one address's connect
    /// may go on before the next address is tried beside it (default 250 ms; curl's
    /// `--happy-eyeballs-timeout-ms`). The connect timeout covers the whole race.
    pub happy_eyeballs_delay: Duration,
    /// The address families connections may use (default both; curl's `-4` / `-6`).
    pub ip_family: IpFamily,
    /// Fixed addresses for some `host:port` pairs instead of the resolver's (curl's
    /// `--resolve`); the first entry that matches applies.
    pub resolve_overrides: Vec<ResolveOverride>,
    /// Other destinations for some `host:port` pairs (curl's `--connect-to`); the first
    /// entry that matches applies. Connections are pooled under the request's own host and
    /// port, which with a given configuration always lead to the same destination.
    pub connect_to: Vec<ConnectTo>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            persistent: true,
            max_idle_per_host: 2,
            max_active_per_host: 6,
            max_active_total: 256,
            idle_timeout: Duration::from_secs(240),
            connect_timeout: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(300)),
            queue_timeout: None,
            read_timeout: Some(Duration::from_secs(60)),
            continue_timeout: Duration::from_secs(1),
            tls: TlsConnector::webpki_roots(),
            limits: proto::Config::default(),
            user_agent: Some(concat!("weft/", env!("CARGO_PKG_VERSION")).to_string()),
            proxies: Proxies::none(),
            unix_socket: None,
            happy_eyeballs_delay: DEFAULT_ATTEMPT_DELAY,
            ip_family: IpFamily::Any,
            resolve_overrides: Vec::new(),
            connect_to: Vec::new(),
        }
    }
}
