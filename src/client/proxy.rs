//! Proxies: which requests go through one, and how (through an HTTP proxy, absolute-form
//! requests for `http` and a `CONNECT` tunnel for `https`; through a SOCKS5 proxy, a tunnel
//! for both).

use base64::Engine;
use url::Url;

use super::error::Cause;

/// Which proxy, if any, each request goes through.
///
/// ```
/// use weft::client::Proxies;
/// let p = Proxies::all("http://127.0.0.1:3128").unwrap().no_proxy("localhost, .internal");
/// let via = |u: &str| p.proxy_for(&url::Url::parse(u).unwrap()).map(|p| p.to_string());
/// assert_eq!(via("http://example.test/").as_deref(), Some("http://127.0.0.1:3128/"));
/// assert_eq!(via("https://db.internal/"), None);
/// assert_eq!(via("http://localhost:8080/"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// Proxy for `http` URLs (`http://`, `socks5://` or `socks5h://`).
    pub http: Option<Url>,
    /// Proxy for `https` URLs (reached with `CONNECT`, or a SOCKS5 tunnel).
    pub https: Option<Url>,
    /// Hosts reached directly: names matching a suffix (`example.test` also covers
    /// `a.example.test`; a leading dot is allowed), IP literals, or `*` for every host.
    pub no_proxy: Vec<String>,
}

impl Proxies {
    /// No proxy at all.
    pub fn none() -> Self {
        Proxies::default()
    }

    /// One proxy for both `http` and `https` URLs: an `http://` URL (userinfo in it becomes
    /// `Proxy-Authorization: Basic`), or a `socks5://` (the client resolves names) or
    /// `socks5h://` (the proxy resolves names) URL, whose percent-decoded userinfo is sent
    /// as the RFC 1929 username and password. A SOCKS URL without a port means 1080; a
    /// value without a scheme is an `http://` proxy.
    pub fn all(proxy: &str) -> Result<Self, Cause> {
        let url = parse_proxy(proxy)?;
        Ok(Proxies {
            http: Some(url.clone()),
            https: Some(url),
            no_proxy: Vec::new(),
        })
    }

    /// Adds hosts to reach directly, as a comma-separated list (the `NO_PROXY` syntax).
    pub fn no_proxy(mut self, list: &str) -> Self {
        self.no_proxy.extend(
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
        );
        self
    }

    /// Proxies from the environment, as curl reads them: `http_proxy` (lower case only: the
    /// upper-case form can be set by a web server's client under CGI), `HTTPS_PROXY` or
    /// `https_proxy`, `ALL_PROXY` or `all_proxy` as the fallback for both, and `NO_PROXY` or
    /// `no_proxy`. Unparsable values are ignored.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Proxies::from_env`] over any lookup (for tests and embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
        };
        let parse = |v: Option<String>| v.and_then(|v| parse_proxy(&v).ok());
        let all = parse(first(&["ALL_PROXY", "all_proxy"]));
        let proxies = Proxies {
            http: parse(first(&["http_proxy"])).or_else(|| all.clone()),
            https: parse(first(&["HTTPS_PROXY", "https_proxy"])).or(all),
            no_proxy: Vec::new(),
        };
        match first(&["NO_PROXY", "no_proxy"]) {
            Some(list) => proxies.no_proxy(&list),
            None => proxies,
        }
    }

    /// The proxy for `url`, if it should use one.
    pub fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let bypass = self.no_proxy.iter().any(|entry| {
            let entry = entry.trim_start_matches('.');
            entry == "*"
                || host == entry
                || (host.len() > entry.len()
                    && host.ends_with(entry)
                    && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
        });
        (!bypass).then_some(proxy)
    }
}

/// The port of a SOCKS proxy URL that gives none.
const SOCKS_PORT: u16 = 1080;

fn parse_proxy(value: &str) -> Result<Url, Cause> {
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| Cause::Proxy(format!("invalid proxy URL {value:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "socks5" | "socks5h") {
        return Err(Cause::Proxy(format!(
            "unsupported proxy scheme {:?} (http://, socks5:// and socks5h:// proxies)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Cause::Proxy(format!("proxy URL {value:?} has no host")));
    }
    if url.port().is_none() && url.scheme() != "http" {
        // The url crate knows no default port for SOCKS; 1080 is the registered one.
        let _ = url.set_port(Some(SOCKS_PORT));
    }
    Ok(url)
}

/// `Proxy-Authorization` for a proxy URL with userinfo.
pub(crate) fn proxy_authorization(proxy: &Url) -> Option<String> {
    if proxy.username().is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let creds = format!(
        "{}:{}",
        decode(proxy.username()),
        decode(proxy.password().unwrap_or(""))
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Proxies {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::from_lookup(move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn environment_is_read_like_curl() {
        let p = env(&[
            ("HTTP_PROXY", "http://evil:1"),
            ("https_proxy", "proxy:3128"),
        ]);
        assert_eq!(p.http, None, "upper-case HTTP_PROXY is ignored");
        assert_eq!(p.https.unwrap().as_str(), "http://proxy:3128/");
        let p = env(&[
            ("ALL_PROXY", "http://all:1"),
            ("NO_PROXY", "a.test, .b.test"),
        ]);
        assert_eq!(p.http.as_ref().unwrap().as_str(), "http://all:1/");
        assert_eq!(p.no_proxy, ["a.test", ".b.test"]);
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(p.proxy_for(&u("http://x.a.test/")).is_none());
        assert!(p.proxy_for(&u("http://c.b.test/")).is_none());
        assert!(p.proxy_for(&u("http://nota.test/")).is_some());
        assert!(
            p.proxy_for(&u("http://xa.test/")).is_some(),
            "suffix only at a dot"
        );
    }

    #[test]
    fn bad_proxies_are_refused() {
        assert!(Proxies::all("socks4://x:1").is_err());
        assert!(Proxies::all("https://x:1").is_err());
        assert!(Proxies::all("http://").is_err());
        assert!(Proxies::all("socks5://").is_err());
        assert!(Proxies::all("socks5h://:1").is_err());
    }

    #[test]
    fn socks_proxies_are_accepted_like_curl() {
        let p = Proxies::all("socks5h://u%40x:p%3A@127.0.0.1").unwrap();
        let https = p.https.as_ref().unwrap();
        assert_eq!(https.scheme(), "socks5h");
        assert_eq!(https.port(), Some(1080), "the default SOCKS port");
        assert_eq!(https.username(), "u%40x");
        assert_eq!(p.http, p.https);
        let p = Proxies::all("socks5://[::1]:9050").unwrap();
        assert_eq!(p.http.unwrap().port(), Some(9050));
        // ALL_PROXY covers both schemes; a scheme's own variable wins; NO_PROXY bypasses.
        let p = env(&[
            ("all_proxy", "socks5h://127.0.0.1:1081"),
            ("https_proxy", "http://127.0.0.1:3128"),
            ("no_proxy", "localhost,.direct.test,10.0.0.1"),
        ]);
        let u = |s: &str| Url::parse(s).unwrap();
        let via = |s: &str| p.proxy_for(&u(s)).map(|p| p.to_string());
        assert_eq!(
            via("http://origin.test/").as_deref(),
            Some("socks5h://127.0.0.1:1081")
        );
        assert_eq!(
            via("https://origin.test/").as_deref(),
            Some("http://127.0.0.1:3128/")
        );
        assert_eq!(via("http://a.direct.test/"), None);
        assert_eq!(via("https://localhost/"), None);
        assert_eq!(via("http://10.0.0.1:8080/"), None);
        let p = env(&[("ALL_PROXY", "socks5://127.0.0.1:1")]);
        assert_eq!(p.https.unwrap().scheme(), "socks5");
        // An unusable value is ignored, as the other variables are.
        assert_eq!(
            env(&[("ALL_PROXY", "socks4://127.0.0.1:1")]),
            Proxies::none()
        );
    }

    #[test]
    fn credentials_become_basic_auth() {
        let u = Url::parse("http://us%40er:p%3Ass@proxy:1").unwrap();
        assert_eq!(
            proxy_authorization(&u).unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("us@er:p:ss")
            )
        );
        assert_eq!(
            proxy_authorization(&Url::parse("http://proxy:1").unwrap()),
            None
        );
    }
}
