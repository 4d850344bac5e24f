//! Text renderings: a response head in curl's `-i` layout, and the `-v` lines.

use weft::proto::{Headers, Version};

use super::plan::{BodySource, Plan};

/// The status line without its line ending: `HTTP/1.1 200 OK` (no trailing space when the
/// reason phrase is empty).
pub fn status_line(version: Version, code: u16, phrase: &str) -> String {
    if phrase.is_empty() {
        format!("{version} {code}")
    } else {
        format!("{version} {code} {phrase}")
    }
}

/// The usual reason phrase of a status a redirect or challenge hop may have (the library
/// keeps no phrase for earlier hops); empty for others.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        401 => "Unauthorized",
        407 => "Proxy Authentication Required",
        _ => "",
    }
}

/// A response head as `curl -i` writes it: the status line, each field as received
/// (`Name: value`, value bytes untouched), each line ending in CRLF, then an empty line.
pub fn head_bytes(version: Version, code: u16, phrase: &str, headers: &Headers) -> Vec<u8> {
    let mut out = status_line(version, code, phrase).into_bytes();
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The `-v` lines of a response head: `< ` before the status line and each field (values
/// lossily decoded), then a lone `<`.
pub fn verbose_response(version: Version, code: u16, phrase: &str, headers: &Headers) -> String {
    let mut out = format!("< {}\n", status_line(version, code, phrase));
    for (name, value) in headers.iter() {
        out.push_str(&format!("< {name}: {}\n", String::from_utf8_lossy(value)));
    }
    out.push_str("<\n");
    out
}

/// The `-v` lines of the request as it will be sent, as far as the command knows it: request
/// line, Host, the command's and user's fields, User-Agent and body framing (the library adds
/// these last ones). `body_length` is the length of a body of known size. Returns a single
/// `* ` note when the URL cannot be parsed (the library reports the error).
pub fn verbose_request(plan: &Plan, body_length: Option<u64>) -> String {
    let url = match url::Url::parse(&plan.url) {
        Ok(u) => u,
        Err(_) => return format!("* Requesting {} {}\n", plan.method, plan.url),
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().map(|p| p.to_string());
    let mut out = format!(
        "* Requesting {} {} ({}:{})\n",
        plan.method,
        url,
        host,
        port.as_deref().unwrap_or("?")
    );
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    out.push_str(&format!("> {} {} HTTP/1.1\n", plan.method, target));
    let user_host = plan
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"));
    if !user_host {
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        out.push_str(&format!("> Host: {host_header}\n"));
    }
    for (name, value) in &plan.headers {
        out.push_str(&format!("> {name}: {value}\n"));
    }
    if let Some(ua) = &plan.user_agent {
        out.push_str(&format!("> User-Agent: {ua}\n"));
    }
    match (&plan.body, body_length) {
        (BodySource::None, _) => {
            if ["POST", "PUT", "PATCH"].contains(&plan.method.as_str()) {
                out.push_str("> Content-Length: 0\n");
            }
        }
        (_, Some(n)) => out.push_str(&format!("> Content-Length: {n}\n")),
        (_, None) => out.push_str("> Transfer-Encoding: chunked\n"),
    }
    out.push_str(">\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{args, plan};
    use super::*;

    fn headers(fields: &[(&str, &[u8])]) -> Headers {
        fields.iter().copied().collect()
    }

    #[test]
    fn curl_include_layout() {
        let h = headers(&[
            ("Content-Type", b"text/plain"),
            ("set-cookie", b"a=1"),
            ("Set-Cookie", b"b=2"),
            ("X-Bin", b"\xff\x01"),
        ]);
        let out = head_bytes(Version::Http11, 200, "OK", &h);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nset-cookie: a=1\r\n\
              Set-Cookie: b=2\r\nX-Bin: \xff\x01\r\n\r\n"
                .to_vec()
        );
        let out = head_bytes(Version::Http10, 404, "", &Headers::new());
        assert_eq!(out, b"HTTP/1.0 404\r\n\r\n".to_vec());
    }

    #[test]
    fn verbose_response_lines() {
        let h = headers(&[("Content-Length", b"3"), ("X", b"\xffy")]);
        assert_eq!(
            verbose_response(Version::Http11, 201, "Created", &h),
            "< HTTP/1.1 201 Created\n< Content-Length: 3\n< X: \u{fffd}y\n<\n"
        );
    }

    fn plan_of(argv: &[&str]) -> Plan {
        let a = args::parse(std::iter::once("weft").chain(argv.iter().copied())).unwrap();
        plan::build(&a, &mut |_| Ok(Vec::new())).unwrap()
    }

    #[test]
    fn verbose_request_lines() {
        let p = plan_of(&["-H", "X-A: 1", "-d", "abc", "127.0.0.1:8080/p?q=1#frag"]);
        assert_eq!(
            verbose_request(&p, Some(3)),
            format!(
                "* Requesting POST http://127.0.0.1:8080/p?q=1#frag (127.0.0.1:8080)\n\
                 > POST /p?q=1 HTTP/1.1\n> Host: 127.0.0.1:8080\n> Accept: */*\n> X-A: 1\n\
                 > Content-Type: application/x-www-form-urlencoded\n\
                 > User-Agent: {}\n> Content-Length: 3\n>\n",
                plan::DEFAULT_USER_AGENT
            )
        );
        let p = plan_of(&["-H", "Host: other", "-A", "ua", "http://127.0.0.1/"]);
        assert_eq!(
            verbose_request(&p, None),
            "* Requesting GET http://127.0.0.1/ (127.0.0.1:80)\n> GET / HTTP/1.1\n\
             > Accept: */*\n> Host: other\n> User-Agent: ua\n>\n"
        );
        let p = plan_of(&["--data-binary", "@-", "-X", "PUT", "http://127.0.0.1/"]);
        assert!(verbose_request(&p, None).contains("> Transfer-Encoding: chunked\n"));
        let p = plan_of(&["-X", "POST", "http://127.0.0.1/"]);
        assert!(verbose_request(&p, None).contains("> Content-Length: 0\n"));
        let p = plan_of(&["http://[bad"]);
        assert_eq!(verbose_request(&p, None), "* Requesting GET http://[bad\n");
    }
}
