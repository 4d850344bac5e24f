//! Routing a request URL: where its connection goes (directly, through a proxy, or through a
//! `CONNECT` tunnel), the pool key it shares a connection under, and how its head is written.
//! Worked out once per URL and kept in a small per-agent cache ([`Targets`]). A request over
//! a Unix socket goes to its path, with no proxy, and is pooled by path as well.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use url::Url;

use crate::client::error::Cause;
use crate::client::overrides;
use crate::client::proxy::proxy_authorization;
use crate::proto::socks::SocksError;
use crate::proto::{self, Headers, RequestError, RequestHead, TargetCheck};

use super::config::AgentConfig;
use super::table::Handle;

/// Where a pooled connection goes. Cloned for every request (queue, host table, request):
/// the names are shared, so a clone allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PoolKey {
    pub(super) https: bool,
    pub(super) host: Rc<str>,
    pub(super) port: u16,
    pub(super) tls: usize,
    /// The proxy the connection goes through, if any.
    pub(super) proxy: Option<(Rc<str>, u16)>,
    /// The Unix socket the connection goes to, if any: requests to different paths never
    /// share a connection.
    pub(super) unix: Option<Rc<Path>>,
    /// The proxy is a SOCKS5 one (its connections never serve an HTTP proxy's requests).
    pub(super) socks: bool,
}

/// Where a request URL goes and how it is written on the wire. It depends only on the URL
/// string and the agent's configuration, so it is worked out once per URL (see [`Targets`]).
#[derive(Debug)]
pub(super) struct Target {
    pub(super) url: Rc<Url>,
    /// The request target: origin-form, or absolute-form through a plain-http proxy.
    pub(super) target: String,
    pub(super) host_header: String,
    pub(super) route: Route,
    pub(super) key: PoolKey,
    /// The `Proxy-Authorization` value for a plain-http proxy with credentials.
    pub(super) proxy_auth: Option<String>,
    /// `target` and `host_header` checked as every request's head checks them (see
    /// [`prepare`]), once per URL.
    pub(super) check: TargetCheck,
    /// Whether the agent's `User-Agent`, if any, is a value it may send (the configuration
    /// does not change; checked here once rather than per request).
    pub(super) user_agent_ok: bool,
    /// The request line after the method and the `Host` field, encoded once
    /// ([`proto::encode_line`]): copied into each head whose caller gives no `Host`.
    pub(super) line: Box<[u8]>,
    /// The fields the agent adds to a request without fields of its own, encoded once
    /// ([`added_fields`], [`proto::encode_fields`]).
    pub(super) added_lines: Box<[u8]>,
    /// `GET`, then `line`, `added_lines` and the blank line in one piece: the whole head of
    /// a `GET` without fields of its own (and without a body), and after its first three
    /// bytes ([`Target::whole`]) that of any other method.
    pub(super) get_whole: Box<[u8]>,
    /// Where `key`'s entry was in the agent's host table when last looked up, so repeat
    /// requests skip hashing the key (see `AgentState::host_of`). A target belongs to the
    /// one agent whose [`Targets`] made it; the handle's generation tells a stale one.
    pub(super) host_at: Cell<Option<Handle>>,
}

impl Target {
    /// `line`, `added_lines` and the blank line in one piece: after the method, the whole
    /// head of a request without fields of its own and without a body.
    #[inline]
    pub(super) fn whole(&self) -> &[u8] {
        &self.get_whole[3..]
    }
}

/// Most URLs whose [`Target`] is kept; the table is emptied when full.
pub(super) const TARGETS_KEPT: usize = 64;

/// Parsed targets by URL string. Parsing a URL and building its host, target and pool key
/// took a dozen allocations per request; a client usually asks the same few URLs again and
/// again, so a hit makes all of that an `Rc` clone.
#[derive(Default)]
pub(super) struct Targets {
    pub(super) map: FxHashMap<Rc<str>, Rc<Target>>,
    /// The URL string answered last and its target: a client asking one URL again and
    /// again compares the string instead of hashing it and probing the table.
    last: Option<(Rc<str>, Rc<Target>)>,
}

impl Targets {
    /// The target of `url`, parsed on first use, over the Unix socket `unix` (a request's
    /// own) or else the agent's. A URL cached for another socket is parsed again. The same
    /// `Rc<str>` as the last one (a client sending many requests to one URL hands each the
    /// same string) is found by its address, any other equal string by its bytes.
    #[inline]
    pub(super) fn get(
        &mut self,
        config: &AgentConfig,
        url: &Rc<str>,
        unix: Option<&Rc<Path>>,
    ) -> Result<Rc<Target>, Cause> {
        let wanted = unix.map(|p| &**p).or(config.unix_socket.as_deref());
        if let Some((last, t)) = &self.last
            && (Rc::ptr_eq(last, url) || **last == **url)
            && t.route.unix.as_deref() == wanted
        {
            return Ok(t.clone());
        }
        self.get_other(config, url, unix, wanted)
    }

    /// [`Self::get`] for a URL other than the last one: out of line, so that asking the
    /// same URL again costs a compare where it is called.
    #[inline(never)]
    fn get_other(
        &mut self,
        config: &AgentConfig,
        url: &Rc<str>,
        unix: Option<&Rc<Path>>,
        wanted: Option<&Path>,
    ) -> Result<Rc<Target>, Cause> {
        // The caller's string becomes the last one, so that handing it again is a match of
        // addresses.
        if let Some(t) = self.map.get(&**url)
            && t.route.unix.as_deref() == wanted
        {
            let t = t.clone();
            self.last = Some((url.clone(), t.clone()));
            return Ok(t);
        }
        let unix = unix.cloned().or_else(|| wanted.map(Rc::from));
        let target = Rc::new(resolve(config, url, unix)?);
        if self.map.len() >= TARGETS_KEPT {
            // Clearing rather than evicting one by one: a client going through many distinct
            // URLs gains nothing from the table anyway.
            self.map.clear();
        }
        self.map.insert(url.clone(), target.clone());
        self.last = Some((url.clone(), target.clone()));
        Ok(target)
    }
}

/// Where a request's connection goes, and what happens on it before the request.
#[derive(Clone, Debug)]
pub(super) struct Route {
    pub(super) host: String,
    pub(super) port: u16,
    /// TLS from the start (https without a proxy).
    pub(super) tls: bool,
    /// https through a proxy: `CONNECT` first, then TLS inside the tunnel.
    pub(super) tunnel: Option<Rc<Tunnel>>,
    /// Connect to this Unix socket instead of `host:port` (`host` is then the name TLS
    /// checks).
    pub(super) unix: Option<Rc<Path>>,
    /// Addresses to connect to instead of resolving `host` (`--resolve`; empty: resolve).
    pub(super) addrs: Vec<std::net::SocketAddr>,
    /// The TLS server name when it is not `host` (`--connect-to`).
    pub(super) server_name: Option<String>,
}

#[derive(Debug)]
pub(super) struct Tunnel {
    /// `host:port` of the origin, the target of `CONNECT`.
    pub(super) authority: String,
    /// The origin host, for SNI and certificate checks.
    pub(super) server_name: String,
    /// Fields sent with `CONNECT` (`Proxy-Authorization`).
    pub(super) headers: Headers,
    /// A SOCKS5 proxy opens the tunnel instead of `CONNECT`.
    pub(super) socks: Option<SocksRoute>,
}

/// How to ask a SOCKS5 proxy for the tunnel.
#[derive(Debug)]
pub(super) struct SocksRoute {
    /// The proxy URL without credentials, for errors.
    pub(super) proxy: String,
    /// The origin host (no brackets) and port.
    pub(super) host: String,
    pub(super) port: u16,
    /// `socks5h://`: the proxy resolves the name; `socks5://`: the client does.
    pub(super) remote_dns: bool,
    /// Username and password (RFC 1929), percent-decoded from the proxy URL.
    pub(super) credentials: Option<(Vec<u8>, Vec<u8>)>,
    /// TLS with the origin inside the tunnel (https).
    pub(super) tls: bool,
}

/// Parses and checks a request URL and works out its route (to the Unix socket `unix`, if
/// given).
pub(super) fn resolve(
    config: &AgentConfig,
    url: &str,
    unix: Option<Rc<Path>>,
) -> Result<Target, Cause> {
    // WHATWG parsing silently drops TAB, CR and LF anywhere in the input: a URL with raw
    // control bytes is refused instead, so that what would be sent is what the caller wrote.
    if url.bytes().any(|b| b.is_ascii_control()) {
        return Err(Cause::InvalidUrl("control character".to_owned()));
    }
    // The messages leave the URL out: the error names it, without its credentials.
    let url = Url::parse(url).map_err(|e| Cause::InvalidUrl(e.to_string()))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(Cause::UnsupportedScheme(other.to_string())),
    };
    let (connect_host, port) = host_and_port(&url)?;
    let host_str = url.host_str().unwrap_or_default();
    let host_header = match url.port() {
        Some(p) => format!("{host_str}:{p}"),
        None => host_str.to_string(),
    };
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    // A Unix socket is a local endpoint: no proxy stands between.
    let proxy = match unix {
        Some(_) => None,
        None => config.proxies.proxy_for(&url),
    };
    // `--connect-to`: the TCP destination (or the tunnel's target); names stay the URL's.
    let (dest_host, dest_port) = overrides::connect_to(&config.connect_to, &connect_host, port)
        .unwrap_or_else(|| (connect_host.clone(), port));
    let mut key = PoolKey {
        https,
        host: connect_host.to_ascii_lowercase().into(),
        port,
        tls: if https { config.tls.pool_id() } else { 0 },
        proxy: None,
        unix: unix.clone(),
        socks: false,
    };
    let mut proxy_auth = None;
    let route = match proxy {
        None => Route {
            addrs: overrides::resolved(&config.resolve_overrides, &dest_host, dest_port),
            server_name: (https && dest_host != connect_host).then(|| connect_host.clone()),
            host: dest_host,
            port: dest_port,
            tls: https,
            tunnel: None,
            unix,
        },
        Some(proxy) if is_socks(proxy) => {
            // `--connect-to` changes where the proxy connects; TLS still checks the URL's host.
            let socks = socks_route(proxy, &dest_host, dest_port, https)?;
            let (proxy_host, proxy_port) = host_and_port(proxy)?;
            key.proxy = Some((proxy_host.to_ascii_lowercase().into(), proxy_port));
            key.socks = true;
            Route {
                addrs: overrides::resolved(&config.resolve_overrides, &proxy_host, proxy_port),
                server_name: None,
                unix: None,
                host: proxy_host,
                port: proxy_port,
                tls: false,
                tunnel: Some(Rc::new(Tunnel {
                    authority: format!("{host_str}:{port}"),
                    server_name: connect_host.clone(),
                    headers: Headers::new(),
                    socks: Some(socks),
                })),
            }
        }
        Some(proxy) => {
            let (proxy_host, proxy_port) = host_and_port(proxy)?;
            let auth = proxy_authorization(proxy);
            key.proxy = Some((proxy_host.to_ascii_lowercase().into(), proxy_port));
            let tunnel = if https {
                let mut connect_headers = Headers::new();
                if let Some(auth) = &auth {
                    connect_headers.append("Proxy-Authorization", auth.as_bytes());
                }
                let authority = if (&dest_host, dest_port) == (&connect_host, port) {
                    format!("{host_str}:{port}")
                } else if dest_host.contains(':') {
                    format!("[{dest_host}]:{dest_port}")
                } else {
                    format!("{dest_host}:{dest_port}")
                };
                Some(Rc::new(Tunnel {
                    authority,
                    server_name: connect_host.clone(),
                    headers: connect_headers,
                    socks: None,
                }))
            } else {
                // Plain http goes to the proxy in absolute form; one pooled connection to the
                // proxy serves every origin.
                target = absolute_target(&url);
                key.host = "".into();
                key.port = 0;
                proxy_auth = auth;
                None
            };
            Route {
                addrs: overrides::resolved(&config.resolve_overrides, &proxy_host, proxy_port),
                server_name: None,
                host: proxy_host,
                port: proxy_port,
                tls: false,
                tunnel,
                unix: None,
            }
        }
    };
    let added_lines: Box<[u8]> =
        proto::encode_fields(added_for(config, proxy_auth.as_deref(), &Headers::new()).as_slice())
            .into();
    let line: Box<[u8]> = proto::encode_line(&target, &host_header).into();
    let get_whole = [&b"GET"[..], &line[..], &added_lines[..], b"\r\n"]
        .concat()
        .into();
    Ok(Target {
        url: Rc::new(url),
        check: TargetCheck::new(&target, &host_header),
        line,
        added_lines,
        get_whole,
        user_agent_ok: config
            .user_agent
            .as_ref()
            .is_none_or(|ua| proto::is_valid_value(ua.as_bytes())),
        target,
        host_header,
        route,
        key,
        proxy_auth,
        host_at: Cell::new(None),
    })
}

/// Most fields the agent adds to a request's own.
const ADDED_MAX: usize = 3;

/// The fields the agent adds after a request's own: `User-Agent` unless given,
/// `Connection: close` when not persistent, proxy credentials. Kept apart from the request's
/// `Headers` and written after them with the head (copying both into one list cost more than
/// writing the head), so a request sent without fields allocates nothing for them.
pub(super) struct Added<'a> {
    fields: [(&'static str, &'a [u8]); ADDED_MAX],
    len: usize,
}

impl<'a> Added<'a> {
    /// The fields, in the order they are written.
    pub(super) fn as_slice(&self) -> &[(&'static str, &'a [u8])] {
        &self.fields[..self.len]
    }

    fn push(&mut self, name: &'static str, value: &'a [u8]) {
        self.fields[self.len] = (name, value);
        self.len += 1;
    }
}

/// The fields the agent adds to a request with fields `headers` (see [`Added`]).
pub(super) fn added_fields<'a>(
    config: &'a AgentConfig,
    target: &'a Target,
    headers: &Headers,
) -> Added<'a> {
    added_for(config, target.proxy_auth.as_deref(), headers)
}

/// [`added_fields`] for a target whose `Proxy-Authorization` value is `proxy_auth`.
fn added_for<'a>(
    config: &'a AgentConfig,
    proxy_auth: Option<&'a str>,
    headers: &Headers,
) -> Added<'a> {
    let mut added = Added {
        fields: [("", &[]); ADDED_MAX],
        len: 0,
    };
    // A request without fields, the common case, has none to look through.
    let own = !headers.is_empty();
    if let Some(ua) = &config.user_agent
        && !(own && headers.contains("user-agent"))
    {
        added.push("User-Agent", ua.as_bytes());
    }
    let close_given = own && headers.has_token("connection", "close");
    if !config.persistent && !close_given {
        added.push("Connection", b"close");
    }
    if let Some(auth) = proxy_auth
        && !(own && headers.contains("proxy-authorization"))
    {
        added.push("Proxy-Authorization", auth.as_bytes());
    }
    added
}

/// Checks a request before any connection is opened: its method and own fields, the target
/// and `Host` (checked once per URL, [`Target::check`]), and the `User-Agent` the agent would
/// add (the other added fields are ours and valid), so that nothing has to be copied for the
/// check; the head is built once, when it is written.
#[inline]
pub(super) fn prepare(
    config: &AgentConfig,
    target: &Target,
    method: &str,
    headers: &Headers,
) -> Result<(), Cause> {
    let head = RequestHead {
        method,
        target: &target.target,
        host: &target.host_header,
        headers,
    };
    proto::validate_with(&head, target.check).map_err(Cause::InvalidRequest)?;
    if !target.user_agent_ok && config.user_agent.is_some() && !headers.contains("user-agent") {
        return Err(Cause::InvalidRequest(RequestError::InvalidHeaderValue(
            "User-Agent".to_owned(),
        )));
    }
    Ok(())
}

/// Whether `proxy` is a SOCKS5 proxy URL.
fn is_socks(proxy: &Url) -> bool {
    matches!(proxy.scheme(), "socks5" | "socks5h")
}

/// The SOCKS5 part of a route to `host:port`. A name too long for the protocol is refused
/// here, before any connection is opened.
fn socks_route(proxy: &Url, host: &str, port: u16, tls: bool) -> Result<SocksRoute, Cause> {
    let shown = proxy_without_credentials(proxy);
    let remote_dns = proxy.scheme() == "socks5h";
    if host.len() > 255 && host.parse::<std::net::IpAddr>().is_err() {
        return Err(Cause::Socks {
            proxy: shown,
            error: SocksError::NameTooLong(host.len()),
        });
    }
    let credentials = (!proxy.username().is_empty()).then(|| {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
        (
            decode(proxy.username()),
            decode(proxy.password().unwrap_or("")),
        )
    });
    if let Some((user, pass)) = &credentials
        && user.len().max(pass.len()) > 255
    {
        return Err(Cause::Socks {
            proxy: shown,
            error: SocksError::CredentialsTooLong(user.len().max(pass.len())),
        });
    }
    Ok(SocksRoute {
        proxy: shown,
        host: host.to_owned(),
        port,
        remote_dns,
        credentials,
        tls,
    })
}

/// A proxy URL as errors show it: scheme, host and port.
pub(super) fn proxy_without_credentials(proxy: &Url) -> String {
    match (proxy.host_str(), proxy.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", proxy.scheme()),
        (Some(h), None) => format!("{}://{h}", proxy.scheme()),
        _ => proxy.scheme().to_owned(),
    }
}

/// The host to connect to (IPv6 without brackets) and the port of a URL.
pub(super) fn host_and_port(url: &Url) -> Result<(String, u16), Cause> {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Domain(d)) => d.to_string(),
        None => return Err(Cause::InvalidUrl("no host".to_owned())),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Cause::InvalidUrl("no port".to_owned()))?;
    Ok((host, port))
}

/// The absolute-form target for a proxy: the URL without userinfo or fragment.
pub(super) fn absolute_target(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.into()
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
