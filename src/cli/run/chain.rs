//! The agent chain of a run, built once from the options every transfer shares.

use std::io;
use std::rc::Rc;

use weft::client::{
    AgentConfig, AuthMode, CookieJar, Credentials, Error, Phase, Proxies, RedirectConfig,
    RetryHook, RetryNotice,
};
use weft::reactor::Ctx;
use weft::tls::TlsConnector;
use weft::{HttpAgent, HttpClient};

use super::super::exit::Outcome;
use super::super::plan::{AuthChoice, ChainPlan, ConnectTimeout, Plan, TlsChoice};

/// The TLS connector the plan asks for.
fn tls_connector(choice: &TlsChoice) -> Result<TlsConnector, Outcome> {
    match choice {
        TlsChoice::WebpkiRoots => Ok(TlsConnector::webpki_roots()),
        TlsChoice::Insecure => Ok(TlsConnector::danger_accept_invalid_certs()),
        TlsChoice::CaFile(path) => TlsConnector::with_root_pem_file(path)
            .map_err(|e| Outcome::CaCert(format!("cannot use CA file {}: {e}", path.display()))),
    }
}

/// The agent chain for the run's shared options (see the module docs for its order), and
/// the cookie jar it fills (to save with `-c`).
pub(super) fn build_agent(
    ctx: &mut Ctx,
    plan: &Plan,
) -> Result<(Rc<dyn HttpAgent>, Option<CookieJar>), Outcome> {
    let config = agent_config(plan)?;
    let jar = load_jar(&plan.chain)?;
    let client = session(config, &plan.chain, jar.clone()).build(ctx);
    Ok((client.agent().clone(), jar))
}

/// The innermost agent's settings: TLS, User-Agent, proxies, limits and pool caps.
fn agent_config(plan: &Plan) -> Result<AgentConfig, Outcome> {
    let chain = &plan.chain;
    let mut proxies = match &chain.proxy {
        Some(p) => Proxies::all(p)
            .map_err(|cause| Outcome::Request(Error::new(Phase::RequestNotSent, cause)))?,
        None => Proxies::from_env(),
    };
    if let Some(list) = &chain.noproxy {
        proxies = proxies.no_proxy(list);
    }
    let defaults = AgentConfig::default();
    let mut config = AgentConfig {
        tls: tls_connector(&plan.tls)?,
        user_agent: plan.user_agent.clone(),
        // As curl: no limit on the whole transfer nor on silences unless -m is given; with
        // --retry, -m limits each attempt (the retry policy applies it).
        timeout: plan.max_time.filter(|_| chain.retry.is_none()),
        read_timeout: None,
        proxies,
        unix_socket: chain.unix_socket.clone(),
        // -Z to one host opens as many connections as transfers allowed in flight, as curl.
        max_active_per_host: defaults.max_active_per_host.max(chain.parallel),
        max_active_total: defaults.max_active_total.max(chain.parallel),
        ..defaults
    };
    match plan.connect_timeout {
        ConnectTimeout::Default => {}
        ConnectTimeout::Unlimited => config.connect_timeout = None,
        ConnectTimeout::Limit(d) => config.connect_timeout = Some(d),
    }
    config.ip_family = chain.ip_family;
    if let Some(delay) = chain.happy_eyeballs_delay {
        config.happy_eyeballs_delay = delay;
    }
    config.resolve_overrides = chain.resolve.clone();
    config.connect_to = chain.connect_to.clone();
    Ok(config)
}

/// The cookie jar, when `-b FILE` or `-c` turns the cookie engine on: the last `-b` file,
/// or an empty jar.
fn load_jar(chain: &ChainPlan) -> Result<Option<CookieJar>, Outcome> {
    if chain.cookie_files.is_empty() && chain.cookie_jar.is_none() {
        return Ok(None);
    }
    let Some(path) = chain.cookie_files.last() else {
        return Ok(Some(CookieJar::new()));
    };
    match CookieJar::load(path) {
        Ok(j) => Ok(Some(j)),
        // A cookie file that does not exist yet is an empty jar, as in curl.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(CookieJar::new())),
        Err(e) => Err(Outcome::ReadInput(format!(
            "cannot read cookies from {}: {e}",
            path.display()
        ))),
    }
}

/// The session the flags ask for: the builder stacks the wrappers in its one safe order
/// (decoding innermost, authentication outermost, so credentials never follow a redirect to
/// another origin); unlike the library's defaults, curl decodes only with `--compressed`,
/// follows redirects only with `-L` and keeps cookies only with `-b` / `-c`. The
/// authentication wrapper is always there: it also takes credentials from a URL's userinfo.
fn session(config: AgentConfig, chain: &ChainPlan, jar: Option<CookieJar>) -> weft::ClientBuilder {
    let mut builder = HttpClient::builder()
        .agent_config(config)
        .decompress(chain.compressed)
        .redirects(false);
    builder = match jar {
        Some(jar) => builder.cookie_jar(jar),
        None => builder.cookies(false),
    };
    if let Some(max_redirects) = chain.follow {
        builder = builder.redirect_config(RedirectConfig {
            max_redirects,
            auto_referer: chain.auto_referer,
            ..RedirectConfig::default()
        });
    }
    if let Some(policy) = &chain.retry {
        builder = builder.retry(policy.clone());
        if !chain.silent {
            builder = builder.on_retry(RetryHook::new(|n| eprintln!("{}", retry_warning(n))));
        }
    }
    if let Some(a) = &chain.auth {
        let mode = match a.choice {
            AuthChoice::Basic => AuthMode::Basic,
            AuthChoice::Digest => AuthMode::Digest,
            AuthChoice::Any => AuthMode::Auto,
        };
        builder = builder.auth(Credentials::new(&a.user, &a.password), mode);
    }
    builder
}

/// curl's warning before a retry: `Warning: Problem : HTTP error. Will retry in 1 seconds. 3
/// retries left.`
fn retry_warning(n: &RetryNotice<'_>) -> String {
    let problem = match (n.status, n.error) {
        (Some(_), _) => "Problem : HTTP error",
        (None, Some(e)) if e.is_timeout() => "Problem : timeout",
        (None, Some(e)) if e.kind() == "connection_refused" => "Problem : connection refused",
        _ => "Problem (retrying all errors)",
    };
    // curl rounds the wait up to whole seconds (at least 1 when there is any wait).
    let secs = n.wait.as_millis().div_ceil(1000);
    // curl counts this retry among those left.
    let left = n.retries_left + 1;
    format!("Warning: {problem}. Will retry in {secs} seconds. {left} retries left.")
}
