//! HTTP Digest authentication (RFC 7616, and RFC 2069 when the challenge has no `qop`):
//! answering a challenge with MD5 or SHA-256, plain or `-sess`. Behind the `digest` feature.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest, Sha256};
use url::Url;

use super::{Challenge, Credentials};

/// The `Authorization` value answering the strongest Digest challenge among `challenges`
/// that can be answered, if any.
pub(super) fn answer(
    challenges: &[Challenge],
    creds: &Credentials,
    method: &str,
    url: &Url,
) -> Option<String> {
    let best = challenges
        .iter()
        .filter(|c| c.scheme.eq_ignore_ascii_case("digest"))
        .filter_map(DigestChallenge::parse)
        .max_by_key(|d| d.algorithm.strength())?;
    Some(best.authorization(creds, method, &request_target(url), &make_cnonce()))
}

fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A client nonce: unpredictable enough for RFC 7616 (time, a counter and an address,
/// hashed); it is not a secret.
fn make_cnonce() -> String {
    thread_local!(static COUNT: Cell<u64> = const { Cell::new(0) });
    let n = COUNT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let local = 0u8;
    let seed = format!("{t}:{n}:{:p}:{}", &local, std::process::id());
    hex(&Sha256::digest(seed.as_bytes()))[..32].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: Option<&str>) -> Option<Algorithm> {
        let Some(s) = s else {
            return Some(Algorithm::Md5);
        };
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 0,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

/// A Digest challenge we can answer (RFC 7616; RFC 2069 when it has no `qop`).
#[derive(Debug, Clone)]
pub(crate) struct DigestChallenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    /// `qop=auth` offered; `None` for the legacy RFC 2069 form.
    qop_auth: bool,
    userhash: bool,
}

impl DigestChallenge {
    fn parse(c: &Challenge) -> Option<DigestChallenge> {
        let qop_auth = match c.param("qop") {
            None => false,
            Some(q) => {
                if !q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    return None; // auth-int only: not supported.
                }
                true
            }
        };
        Some(DigestChallenge {
            realm: c.param("realm").unwrap_or("").to_string(),
            nonce: c.param("nonce")?.to_string(),
            opaque: c.param("opaque").map(str::to_string),
            algorithm: Algorithm::parse(c.param("algorithm"))?,
            qop_auth,
            userhash: c
                .param("userhash")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` value for one request (nonce count 1).
    fn authorization(&self, creds: &Credentials, method: &str, uri: &str, cnonce: &str) -> String {
        let alg = self.algorithm;
        let nc = "00000001";
        let mut ha1 = alg.hash(&format!("{}:{}:{}", creds.user, self.realm, creds.password));
        if alg.is_sess() {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let username = if self.userhash {
            alg.hash(&format!("{}:{}", creds.user, self.realm))
        } else {
            creds.user.clone()
        };
        let mut h = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{response}\"",
            quote(&username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            alg.name(),
        );
        if let Some(o) = &self.opaque {
            h.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        if self.qop_auth {
            h.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if self.userhash {
            h.push_str(", userhash=true");
        }
        h
    }
}

/// Escapes a quoted-string's content; CR, LF and other controls are dropped so that a
/// challenge can never inject a header line.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse_challenges;
    use super::*;

    /// The `Authorization` value for RFC 7616 §3.9.1's request, with `algorithm`.
    fn rfc7616_authorization(algorithm: &str) -> String {
        let c = &parse_challenges(&format!(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        ))[0];
        DigestChallenge::parse(c).unwrap().authorization(
            &Credentials::new("Mufasa", "Circle of Life"),
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
    }

    #[test]
    fn rfc7616_md5_example() {
        let h = rfc7616_authorization("MD5");
        assert!(
            h.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{h}"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        let h = rfc7616_authorization("SHA-256");
        assert!(
            h.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{h}"
        );
    }

    #[test]
    fn rfc2069_without_qop() {
        // RFC 2069 §2.4 example.
        let c = &parse_challenges(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )[0];
        let d = DigestChallenge::parse(c).unwrap();
        let h = d.authorization(
            &Credentials::new("Mufasa", "CircleOfLife"),
            "GET",
            "/dir/index.html",
            "unused",
        );
        assert!(
            h.contains("response=\"1949323746fe6a43ef61f9606e7febea\""),
            "{h}"
        );
        assert!(!h.contains("qop") && !h.contains("cnonce"), "{h}");
    }
}
