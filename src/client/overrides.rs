//! Where a host's connections really go: curl's `--resolve` ([`ResolveOverride`]) and
//! `--connect-to` ([`ConnectTo`]), set in [`AgentConfig`](super::AgentConfig). Both change
//! only the TCP destination: the URL, the `Host` field and the TLS server name stay those
//! of the request's URL.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Connections to `host:port` go to these addresses instead of the resolver's (curl's
/// `--resolve HOST:PORT:ADDR[,ADDR...]`); several are raced as resolved ones are.
///
/// ```
/// use weft::client::ResolveOverride;
///
/// let r: ResolveOverride = "api.example.test:443:127.0.0.1,[::1]".parse().unwrap();
/// assert_eq!((r.host.as_str(), r.port, r.addrs.len()), ("api.example.test", 443, 2));
/// assert!("api.example.test:443".parse::<ResolveOverride>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The host name (compared without regard to case; an IPv6 literal without brackets).
    pub host: String,
    /// The port it applies to.
    pub port: u16,
    /// The addresses to connect to, in order (never empty when parsed).
    pub addrs: Vec<IpAddr>,
}

/// Connections for `host:port` go to `to_host:to_port` instead (curl's `--connect-to
/// HOST1:PORT1:HOST2:PORT2`). An empty `host` or `port` matches any; an empty `to_host` or
/// `to_port` keeps the request's own. `to_host` is resolved as usual (and
/// [`ResolveOverride`]s apply to it).
///
/// ```
/// use weft::client::ConnectTo;
///
/// let c: ConnectTo = "example.test:443:[::1]:8443".parse().unwrap();
/// assert_eq!(c.to_host.as_deref(), Some("::1"));
/// assert_eq!(c.to_port, Some(8443));
/// let any: ConnectTo = "::backend.test:".parse().unwrap();
/// assert_eq!((any.host, any.port, any.to_port), (None, None, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// The request host this applies to (`None`: any).
    pub host: Option<String>,
    /// The request port this applies to (`None`: any).
    pub port: Option<u16>,
    /// Where to connect instead (`None`: the request's host).
    pub to_host: Option<String>,
    /// The port to connect to (`None`: the request's port).
    pub to_port: Option<u16>,
}

/// A `--resolve` or `--connect-to` value that does not have the expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideSyntaxError(String);

impl fmt::Display for OverrideSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverrideSyntaxError {}

fn syntax(what: &str, value: &str, why: &str) -> OverrideSyntaxError {
    OverrideSyntaxError(format!("{what} {value:?}: {why}"))
}

/// Splits `HOST:rest` where HOST may be a bracketed IPv6 literal; returns the host without
/// brackets and the rest after the colon.
fn split_host(s: &str) -> Option<(&str, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, rest) = inner.split_once(']')?;
        return Some((host, rest.strip_prefix(':')?));
    }
    s.split_once(':')
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
}

impl FromStr for ResolveOverride {
    type Err = OverrideSyntaxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let what = "--resolve";
        let form = "expected HOST:PORT:ADDR[,ADDR...]";
        let (host, rest) = split_host(s).ok_or_else(|| syntax(what, s, form))?;
        let (port, list) = rest.split_once(':').ok_or_else(|| syntax(what, s, form))?;
        if !valid_host(host) {
            return Err(syntax(what, s, "bad host name"));
        }
        let port = port.parse().map_err(|_| syntax(what, s, "bad port"))?;
        let addrs = list
            .split(',')
            .map(|a| {
                let a = a.trim();
                let bare = a.strip_prefix('[').and_then(|a| a.strip_suffix(']'));
                bare.unwrap_or(a).parse::<IpAddr>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| syntax(what, s, "each ADDR must be an IP address"))?;
        Ok(ResolveOverride {
            host: host.to_ascii_lowercase(),
            port,
            addrs,
        })
    }
}

impl FromStr for ConnectTo {
    type Err = OverrideSyntaxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let what = "--connect-to";
        let form = "expected HOST1:PORT1:HOST2:PORT2 (any part may be empty)";
        let bad = || syntax(what, s, form);
        let (host, rest) = split_host(s).ok_or_else(bad)?;
        let (port, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (to_host, to_port) = split_host(rest).ok_or_else(bad)?;
        let host_part = |h: &str| match h {
            "" => Ok(None),
            h if valid_host(h) => Ok(Some(h.to_ascii_lowercase())),
            _ => Err(syntax(what, s, "bad host name")),
        };
        let port_part = |p: &str| match p {
            "" => Ok(None),
            p => p.parse().map(Some).map_err(|_| syntax(what, s, "bad port")),
        };
        Ok(ConnectTo {
            host: host_part(host)?,
            port: port_part(port)?,
            to_host: host_part(to_host)?,
            to_port: port_part(to_port)?,
        })
    }
}

/// Where a connection for `host:port` goes: the first [`ConnectTo`] that matches, else
/// `None` (the host and port themselves).
pub(crate) fn connect_to(list: &[ConnectTo], host: &str, port: u16) -> Option<(String, u16)> {
    let rule = list.iter().find(|c| {
        c.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && c.port.is_none_or(|p| p == port)
    })?;
    Some((
        rule.to_host.clone().unwrap_or_else(|| host.to_string()),
        rule.to_port.unwrap_or(port),
    ))
}

/// The addresses of the first [`ResolveOverride`] for `host:port` (empty: resolve as usual).
pub(crate) fn resolved(list: &[ResolveOverride], host: &str, port: u16) -> Vec<SocketAddr> {
    list.iter()
        .find(|r| r.port == port && r.host.eq_ignore_ascii_case(host))
        .map(|r| {
            r.addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_parse_as_curl_writes_them() {
        let r: ResolveOverride = "Made.Up.Test:80:127.0.0.2, 127.0.0.1,[::1]"
            .parse()
            .unwrap();
        assert_eq!(r.host, "made.up.test");
        assert_eq!(r.port, 80);
        assert_eq!(r.addrs.len(), 3);
        let r: ResolveOverride = "[::1]:8080:::1".parse().unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 8080));
        for bad in [
            "",
            "host",
            "host:80",
            "host:port:127.0.0.1",
            "host:70000:127.0.0.1",
            "host:80:",
            "host:80:not-an-ip",
            "host:80:127.0.0.1,",
            ":80:127.0.0.1",
            "ho st:80:127.0.0.1",
            "[::1:80:127.0.0.1",
        ] {
            let e = bad.parse::<ResolveOverride>().unwrap_err();
            assert!(e.to_string().starts_with("--resolve"), "{bad}: {e}");
        }
    }

    #[test]
    fn connect_to_entries_parse_with_empty_parts() {
        let c: ConnectTo = "a.test:80:b.test:8080".parse().unwrap();
        assert_eq!(
            c,
            ConnectTo {
                host: Some("a.test".into()),
                port: Some(80),
                to_host: Some("b.test".into()),
                to_port: Some(8080),
            }
        );
        let c: ConnectTo = ":::".parse().unwrap();
        assert_eq!(
            (c.host, c.port, c.to_host, c.to_port),
            (None, None, None, None)
        );
        for bad in [
            "",
            "a:80",
            "a:80:b",
            "a:x:b:80",
            "a:80:b:99999",
            "a b:80:c:1",
        ] {
            assert!(bad.parse::<ConnectTo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let rules: Vec<ConnectTo> = ["a.test:80:b.test:81", "::c.test:", "a.test:80:x:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            connect_to(&rules, "A.TEST", 80),
            Some(("b.test".into(), 81))
        );
        assert_eq!(
            connect_to(&rules, "z.test", 443),
            Some(("c.test".into(), 443))
        );
        assert_eq!(connect_to(&rules[..1], "a.test", 443), None);
        let resolve: Vec<ResolveOverride> = vec!["a.test:80:127.0.0.2".parse().unwrap()];
        assert_eq!(
            resolved(&resolve, "A.test", 80),
            [SocketAddr::from(([127, 0, 0, 2], 80))]
        );
        assert!(resolved(&resolve, "a.test", 81).is_empty());
    }
}
