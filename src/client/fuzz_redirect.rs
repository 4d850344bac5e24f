//! The shared body of the `redirect` fuzz target and of its corpus replay test: `Location`
//! resolution and the redirect policy, hop after hop, against the documented invariants.

use std::borrow::Cow;

use url::Url;

use crate::proto::Headers;

use super::Cause;
use super::wrappers::redirect::{Next, RedirectConfig, carry_headers, decide};

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND",
];
const CODES: [u16; 16] = [
    301, 302, 303, 307, 308, 300, 304, 305, 306, 309, 200, 404, 100, 204, 399, 308,
];
const CREDENTIALS: [&str; 4] = ["authorization", "cookie", "proxy-authorization", "host"];
const CONTENT: [&str; 4] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "expect",
];

/// Scheme, host and port (the default one when absent): the origin, computed without
/// `Url::origin`.
fn origin_of(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

/// Follows a scripted chain of redirect responses through the policy and checks its
/// invariants; panics when one is broken.
///
/// Byte 0 picks the settings (bit 0: `allow_downgrade`; bits 1-3: the request method among
/// GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, PROPFIND; bits 4-7: `max_redirects`). The
/// rest is split at `\n`: the first line is the request URL, each further line a response,
/// its first byte the status (low 4 bits, among 301, 302, 303, 307, 308 and non-redirect
/// codes) and how `Location` is sent (bits 4-5: once, twice the same, twice different, not at
/// all), the rest of the line the `Location` value.
///
/// Checked, at every hop: no panic; non-redirect codes are delivered; a followed URL is
/// `http` or `https` with a host, serializes to a string that parses back to itself, and
/// carries no userinfo it did not inherit from the same origin; `https` to `http` is followed
/// only when allowed; methods change as documented (303: all but HEAD become GET; 301/302:
/// POST becomes GET) and the body is kept exactly when the method is; credentials (and
/// `Host`) are gone after any origin change, content fields once the body was dropped,
/// `Referer` after a downgrade; other fields stay; no more than `max_redirects` hops.
#[doc(hidden)]
pub fn fuzz_redirect(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let config = RedirectConfig {
        allow_downgrade: flags & 1 != 0,
        max_redirects: u32::from(flags >> 4),
        ..RedirectConfig::default()
    };
    let mut method: Cow<'static, str> = METHODS[usize::from((flags >> 1) & 7)].into();
    let mut lines = rest.split(|&b| b == b'\n');
    let Some(first) = lines.next() else { return };
    let Ok(mut url) = Url::parse(&String::from_utf8_lossy(first)) else {
        // The agent hands a URL it cannot parse to the inner agent, which reports it.
        return;
    };
    let mut headers = Headers::new();
    for (name, value) in [
        ("Authorization", "Basic dTpw"),
        ("Cookie", "a=b"),
        ("Proxy-Authorization", "Basic cDpx"),
        ("Host", "example.test"),
        ("Referer", "https://example.test/"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "4"),
        ("Transfer-Encoding", "chunked"),
        ("Expect", "100-continue"),
        ("X-Keep", "1"),
    ] {
        headers.append(name, value.as_bytes());
    }
    let (mut crossed, mut dropped_body, mut downgraded) = (false, false, false);
    let mut followed = 0u32;
    for line in lines {
        let Some((&sel, location)) = line.split_first() else {
            continue;
        };
        let code = CODES[usize::from(sel & 15)];
        let mut response = Headers::new();
        response.append("Content-Length", b"0");
        match (sel >> 4) & 3 {
            0 => response.append("Location", location),
            1 => {
                response.append("Location", location);
                response.append("location", location);
            }
            2 => {
                response.append("Location", location);
                let mut other = location.to_vec();
                other.push(b'x');
                response.append("Location", &other);
            }
            _ => {}
        }
        let is_redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
        let next = decide(&config, &url, &method, followed, code, &response);
        let (to, new_method, keep_body) = match next {
            Ok(Next::Deliver) => {
                assert!(!is_redirect, "{code} delivered");
                return;
            }
            Err(cause) => {
                assert!(is_redirect, "{code} failed: {cause:?}");
                match cause {
                    Cause::TooManyRedirects(n) => {
                        assert_eq!(n, config.max_redirects);
                        assert!(followed >= n);
                    }
                    Cause::InvalidLocation(_) => {}
                    Cause::RedirectNotAllowed(_) => {
                        assert!((sel >> 4) & 3 < 2, "refused a conflicting Location");
                    }
                    other => panic!("unexpected cause {other:?}"),
                }
                return;
            }
            Ok(Next::Follow {
                url: to,
                method: m,
                keep_body,
            }) => (to, m, keep_body),
        };
        assert!(is_redirect, "{code} followed");
        assert!(followed < config.max_redirects, "followed past the limit");
        assert!(
            (sel >> 4) & 3 < 2,
            "followed a missing or conflicting Location"
        );
        assert!(matches!(to.scheme(), "http" | "https"), "followed to {to}");
        assert!(
            to.host_str().is_some_and(|h| !h.is_empty()),
            "no host: {to}"
        );
        let reparsed = Url::parse(to.as_str()).expect("a followed URL parses again");
        assert_eq!(reparsed.as_str(), to.as_str(), "followed URL not stable");
        let downgrade = url.scheme() == "https" && to.scheme() == "http";
        assert!(!downgrade || config.allow_downgrade, "downgrade to {to}");
        let same_origin = origin_of(&url) == origin_of(&to);
        if !to.username().is_empty() || to.password().is_some() {
            assert!(
                same_origin && to.username() == url.username() && to.password() == url.password(),
                "userinfo from a Location: {to}"
            );
        }
        if to.fragment().is_none() {
            assert!(url.fragment().is_none(), "fragment lost");
        }
        let to_get = match code {
            303 => method != "HEAD",
            301 | 302 => method == "POST",
            _ => false,
        };
        assert_eq!(new_method, if to_get { "GET" } else { &*method });
        assert_eq!(keep_body, !to_get);

        carry_headers(&mut headers, &url, &to, keep_body);
        crossed |= !same_origin;
        dropped_body |= !keep_body;
        downgraded |= downgrade;
        if crossed {
            for name in CREDENTIALS {
                assert!(!headers.contains(name), "{name} kept across origins");
            }
        } else {
            for name in CREDENTIALS {
                assert!(headers.contains(name), "{name} dropped on the same origin");
            }
        }
        for name in CONTENT {
            assert_eq!(headers.contains(name), !dropped_body, "{name}");
        }
        assert_eq!(headers.contains("referer"), !downgraded, "referer");
        assert!(headers.contains("x-keep"));

        url = to;
        method = new_method;
        followed += 1;
    }
}
