//! The `--dump json` object: one JSON object describing the whole exchange.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use weft::client::{BodyEnd, Error};
use weft::proto::{Headers, Version};

/// The response head as far as the dump needs it.
#[derive(Debug, Clone, Copy)]
pub struct DumpHead<'a> {
    /// Protocol version.
    pub version: Version,
    /// Status code.
    pub status: u16,
    /// Header fields in the order received.
    pub headers: &'a Headers,
    /// `Response::length`: the body length when defined in advance (Content-Length, or 0 for
    /// body-less responses).
    pub length: Option<u64>,
}

/// Whether the connection could carry another request after this response: HTTP/1.1 without
/// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`; the body must have ended
/// with [`BodyEnd::Done`] and been delimited by a length or chunked coding (never by the close).
pub fn keep_alive(head: &DumpHead<'_>, end: Option<&BodyEnd>) -> bool {
    let persistent = match head.version {
        Version::Http11 => !head.headers.has_token("connection", "close"),
        Version::Http10 => head.headers.has_token("connection", "keep-alive"),
    };
    let delimited = head.length.is_some() || is_chunked(head.headers);
    persistent && delimited && matches!(end, Some(BodyEnd::Done))
}

/// Whether the final transfer coding is `chunked`.
fn is_chunked(headers: &Headers) -> bool {
    headers
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
}

/// Header fields as `[[name, value], ...]`, values lossily decoded.
fn pairs(headers: Option<&Headers>) -> Value {
    Value::Array(
        headers
            .into_iter()
            .flat_map(|h| h.iter())
            .map(|(n, v)| json!([n, String::from_utf8_lossy(v)]))
            .collect(),
    )
}

/// Builds the dump. `head` is `None` when no response arrived; `end` is how the body ended
/// (`None` when it never started); `error` is a failure known besides `end` (the request's
/// error, or one the command raised such as `--max-filesize`); a [`BodyEnd::Failed`] error is
/// used when `error` is `None`.
pub fn build(
    head: Option<&DumpHead<'_>>,
    trailers: Option<&Headers>,
    body: &[u8],
    end: Option<&BodyEnd>,
    error: Option<&Error>,
) -> String {
    let error = error.or(match end {
        Some(BodyEnd::Failed(e)) => Some(e),
        _ => None,
    });
    let complete = error.is_none() && matches!(end, Some(BodyEnd::Done));
    let keep_alive = error.is_none() && head.is_some_and(|h| keep_alive(h, end));
    let value = json!({
        "status": head.map(|h| h.status),
        "version": head.map(|h| h.version.to_string()),
        "headers": pairs(head.map(|h| h.headers)),
        "trailers": pairs(trailers),
        "body_b64": STANDARD.encode(body),
        "complete": complete,
        "keep_alive": keep_alive,
        "error": error.map(|e| json!({"kind": e.kind(), "message": e.to_string()})),
    });
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::exit::tests::timeout;
    use super::*;
    use weft::client::{Cause, Phase, TimeoutKind};

    fn headers(fields: &[(&str, &[u8])]) -> Headers {
        fields.iter().copied().collect()
    }

    fn parse(s: &str) -> Value {
        assert!(!s.contains('\n'), "one line");
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn complete_exchange() {
        let h = headers(&[("Content-Length", b"5"), ("X-B", b"\xffz"), ("x-b", b"2")]);
        let head = DumpHead {
            version: Version::Http11,
            status: 200,
            headers: &h,
            length: Some(5),
        };
        let v = parse(&build(
            Some(&head),
            None,
            b"hello",
            Some(&BodyEnd::Done),
            None,
        ));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 8);
        assert_eq!(v["status"], 200);
        assert_eq!(v["version"], "HTTP/1.1");
        assert_eq!(
            v["headers"],
            json!([["Content-Length", "5"], ["X-B", "\u{fffd}z"], ["x-b", "2"]])
        );
        assert_eq!(v["trailers"], json!([]));
        assert_eq!(v["body_b64"], "aGVsbG8=");
        assert_eq!(v["complete"], true);
        assert_eq!(v["keep_alive"], true);
        assert_eq!(v["error"], Value::Null);
    }

    #[test]
    fn chunked_with_trailers() {
        let h = headers(&[("Transfer-Encoding", b"gzip, chunked")]);
        let t = headers(&[("X-Checksum", b"abc")]);
        let head = DumpHead {
            version: Version::Http11,
            status: 201,
            headers: &h,
            length: None,
        };
        let v = parse(&build(
            Some(&head),
            Some(&t),
            b"\x00\xff",
            Some(&BodyEnd::Done),
            None,
        ));
        assert_eq!(v["trailers"], json!([["X-Checksum", "abc"]]));
        assert_eq!(v["body_b64"], "AP8=");
        assert_eq!(v["complete"], true);
        assert_eq!(v["keep_alive"], true);
    }

    #[test]
    fn close_delimited_is_incomplete_and_not_reusable() {
        let h = headers(&[]);
        let head = DumpHead {
            version: Version::Http11,
            status: 200,
            headers: &h,
            length: None,
        };
        let v = parse(&build(
            Some(&head),
            None,
            b"abc",
            Some(&BodyEnd::PotentialDataLoss),
            None,
        ));
        assert_eq!(v["complete"], false);
        assert_eq!(v["keep_alive"], false);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["body_b64"], "YWJj");
    }

    #[test]
    fn connection_header_and_version() {
        let close = headers(&[("Connection", b"Close"), ("Content-Length", b"0")]);
        let ka = headers(&[("Connection", b"keep-alive"), ("Content-Length", b"0")]);
        let none = headers(&[("Content-Length", b"0")]);
        let cases = [
            (Version::Http11, &close, false),
            (Version::Http11, &none, true),
            (Version::Http10, &none, false),
            (Version::Http10, &ka, true),
        ];
        for (version, h, want) in cases {
            let head = DumpHead {
                version,
                status: 204,
                headers: h,
                length: Some(0),
            };
            let v = parse(&build(Some(&head), None, b"", Some(&BodyEnd::Done), None));
            assert_eq!(v["keep_alive"], want, "{version} {h:?}");
            assert_eq!(v["version"], version.to_string());
            assert_eq!(v["body_b64"], "");
        }
    }

    #[test]
    fn failure_before_the_response() {
        let e = Error::new(Phase::RequestNotSent, timeout(TimeoutKind::Connect));
        let v = parse(&build(None, None, b"", None, Some(&e)));
        assert_eq!(v["status"], Value::Null);
        assert_eq!(v["version"], Value::Null);
        assert_eq!(v["headers"], json!([]));
        assert_eq!(v["trailers"], json!([]));
        assert_eq!(v["body_b64"], "");
        assert_eq!(v["complete"], false);
        assert_eq!(v["keep_alive"], false);
        assert_eq!(
            v["error"],
            json!({
                "kind": "timeout",
                "message": "request not sent: connect timed out after 1001 ms (connect limit \
                            1000 ms, 0 bytes received)"
            })
        );
    }

    #[test]
    fn failure_in_the_body() {
        let h = headers(&[("Content-Length", b"10")]);
        let head = DumpHead {
            version: Version::Http11,
            status: 200,
            headers: &h,
            length: Some(10),
        };
        let e = Error::new(Phase::ResponseFailed, timeout(TimeoutKind::Total));
        let end = BodyEnd::Failed(e);
        let v = parse(&build(Some(&head), None, b"part", Some(&end), None));
        assert_eq!(v["status"], 200);
        assert_eq!(v["complete"], false);
        assert_eq!(v["keep_alive"], false);
        assert_eq!(v["body_b64"], "cGFydA==");
        assert_eq!(v["error"]["kind"], "timeout");
        assert_eq!(
            v["error"]["message"],
            "response failed: request timed out after 1001 ms (total limit 1000 ms, 0 bytes \
             received)"
        );

        // An error raised by the command wins over the body's own end.
        let big = Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(3));
        let cancelled = BodyEnd::Failed(Error::new(Phase::ResponseFailed, Cause::Cancelled));
        let v = parse(&build(
            Some(&head),
            None,
            b"abc",
            Some(&cancelled),
            Some(&big),
        ));
        assert_eq!(v["error"]["kind"], "body_too_large");
        assert_eq!(
            v["error"]["message"],
            "response failed: response body larger than 3 bytes"
        );
        // Even with a Done end, an error makes it incomplete.
        let v = parse(&build(
            Some(&head),
            None,
            b"abc",
            Some(&BodyEnd::Done),
            Some(&big),
        ));
        assert_eq!(v["complete"], false);
        assert_eq!(v["keep_alive"], false);
    }
}
