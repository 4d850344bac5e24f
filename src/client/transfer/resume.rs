//! Continuing a partial transfer: the `Range` and `If-Range` a resume sends, and what the
//! server's answer means for the partial file (RFC 9110 sections 13.1.5, 14.2 and 14.4).
//!
//! [`download`](super::download::download) resumes its `.weft-part` file with these rules; a
//! caller that keeps its own partial file (curl's `-C`, which appends to the output file
//! itself) uses them the same way: [`ResumeFrom::apply`] before sending, then
//! [`ResumeFrom::answer`] on the response head.

use crate::proto::Headers;

use crate::client::response::Response;

/// Where a resumed transfer starts, and the validator that guards it.
///
/// ```
/// use weft::client::{RangeAnswer, ResumeFrom};
/// use weft::proto::Headers;
///
/// let resume = ResumeFrom { offset: 3, validator: Some("\"v1\"".into()) };
/// let mut headers = Headers::new();
/// resume.apply(&mut headers);
/// assert_eq!(headers.get_str("range"), Some("bytes=3-"));
/// assert_eq!(headers.get_str("if-range"), Some("\"v1\""));
///
/// let mut answer = Headers::new();
/// answer.append("Content-Range", b"bytes 3-10/11");
/// assert_eq!(resume.answer_to(206, &answer, Some(8)), RangeAnswer::Append { total: Some(11) });
/// assert_eq!(resume.answer_to(200, &Headers::new(), Some(11)), RangeAnswer::Restart);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeFrom {
    /// Bytes already held: the request asks for the rest, from this offset.
    pub offset: u64,
    /// An ETag or Last-Modified value from the response that started the partial file, sent
    /// as `If-Range` so that a changed resource comes whole instead of as a range. `None`
    /// sends `Range` alone, as curl does.
    pub validator: Option<String>,
}

/// What the response to a resumed request means for the partial file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// A 206 carrying the rest, from the offset to the end: append it. `total` is the size
    /// of the whole resource when the server told it.
    Append {
        /// Size of the whole resource (the partial file plus this body), when known.
        total: Option<u64>,
    },
    /// A 200: the server sent the whole resource (it ignored the range, or `If-Range` found
    /// it changed); write it from the start.
    Restart,
    /// A 416 whose `Content-Range` total is the offset: the partial file is already whole.
    Complete,
    /// A 206 or 416 that contradicts the partial file: appending would corrupt it.
    Mismatch {
        /// What does not fit, for messages.
        reason: String,
        /// The resource is shorter than the partial file, so no later resume can succeed.
        too_long: bool,
    },
    /// Any other status (an error page, a 416 without a total): not an answer to the range.
    Status(u16),
}

impl ResumeFrom {
    /// Sets `Range: bytes=<offset>-` and, with a validator, `If-Range` (a caller's own
    /// `If-Range` is removed when there is none: it would not match this partial file).
    pub fn apply(&self, headers: &mut Headers) {
        headers.set("Range", format!("bytes={}-", self.offset).as_bytes());
        match &self.validator {
            Some(v) => headers.set("If-Range", v.as_bytes()),
            None => headers.remove("If-Range"),
        }
    }

    /// What `response` (the answer to a request sent with [`ResumeFrom::apply`]) means.
    pub fn answer(&self, response: &Response) -> RangeAnswer {
        self.answer_to(response.code, &response.headers, response.length)
    }

    /// [`ResumeFrom::answer`] from a status, header fields and declared body length.
    ///
    /// A 206 continues the file only when its `Content-Range` starts at the offset and ends
    /// where its own total and the body's length say it does.
    pub fn answer_to(&self, status: u16, headers: &Headers, length: Option<u64>) -> RangeAnswer {
        let n = self.offset;
        let content_range = headers
            .get_str("content-range")
            .and_then(ContentRange::parse);
        match status {
            200 => RangeAnswer::Restart,
            206 => {
                let total_claim = content_range.and_then(|c| c.total);
                let fits = |(a, b): (u64, u64)| {
                    let end = b.checked_add(1);
                    a == n
                        && total_claim.is_none_or(|t| end == Some(t))
                        && length.is_none_or(|len| end == n.checked_add(len))
                };
                match content_range.and_then(|c| c.range) {
                    Some(range) if fits(range) => RangeAnswer::Append {
                        total: total_claim.or(range.1.checked_add(1)),
                    },
                    _ => {
                        let got = headers.get_str("content-range").unwrap_or("none");
                        let reason = format!(
                            "server answered the resume from byte {n} with Content-Range {got:?}"
                        );
                        RangeAnswer::Mismatch {
                            reason,
                            too_long: false,
                        }
                    }
                }
            }
            416 => match content_range.and_then(|c| c.total) {
                Some(total) if total == n => RangeAnswer::Complete,
                Some(total) => RangeAnswer::Mismatch {
                    reason: format!(
                        "cannot resume: the partial file has {n} bytes but the resource has {total}"
                    ),
                    too_long: total < n,
                },
                None => RangeAnswer::Status(status),
            },
            _ => RangeAnswer::Status(status),
        }
    }
}

/// A `Content-Range: bytes a-b/total` (or `bytes */total`) value (RFC 9110 section 14.4).
///
/// ```
/// use weft::client::ContentRange;
/// let cr = ContentRange::parse("bytes 10-19/20").unwrap();
/// assert_eq!((cr.range, cr.total), (Some((10, 19)), Some(20)));
/// assert_eq!(ContentRange::parse("bytes 5-1/9"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First and last byte positions (inclusive); `None` for `*` (an unsatisfied range).
    pub range: Option<(u64, u64)>,
    /// The complete length; `None` for `*` (unknown).
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parses a field value; `None` when it is not a valid `bytes` range.
    pub fn parse(v: &str) -> Option<ContentRange> {
        let rest = v.trim().strip_prefix("bytes ")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        let range = match range.trim() {
            "*" => None,
            r => {
                let (a, b) = r.split_once('-')?;
                let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                Some((a, b))
            }
        };
        Some(ContentRange { range, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        let cr = ContentRange::parse;
        assert_eq!(
            cr("bytes 10-19/20"),
            Some(ContentRange {
                range: Some((10, 19)),
                total: Some(20)
            })
        );
        assert_eq!(
            cr("bytes */42"),
            Some(ContentRange {
                range: None,
                total: Some(42)
            })
        );
        assert_eq!(
            cr("bytes 0-4/*"),
            Some(ContentRange {
                range: Some((0, 4)),
                total: None
            })
        );
        for bad in [
            "",
            "bytes",
            "bytes 5-1/9",
            "items 0-1/2",
            "bytes a-b/c",
            "bytes 1-2",
        ] {
            assert_eq!(cr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn answers_to_a_resume_from_byte_3() {
        let resume = ResumeFrom {
            offset: 3,
            validator: None,
        };
        let answer = |status, range: Option<&str>, length| {
            let mut h = Headers::new();
            if let Some(r) = range {
                h.append("Content-Range", r.as_bytes());
            }
            resume.answer_to(status, &h, length)
        };
        let mismatch = |a: RangeAnswer| match a {
            RangeAnswer::Mismatch { reason, too_long } => (reason, too_long),
            other => panic!("{other:?}"),
        };
        let append = |total| RangeAnswer::Append { total };
        let cases = [
            (206, Some("bytes 3-10/11"), Some(8), append(Some(11))),
            (206, Some("bytes 3-10/*"), None, append(Some(11))),
            (200, None, Some(11), RangeAnswer::Restart),
            (416, Some("bytes */3"), Some(0), RangeAnswer::Complete),
            (416, None, Some(0), RangeAnswer::Status(416)),
            (
                404,
                Some("bytes 3-10/11"),
                Some(8),
                RangeAnswer::Status(404),
            ),
        ];
        for (status, range, length, want) in cases {
            assert_eq!(answer(status, range, length), want, "{status} {range:?}");
        }
        for (range, length) in [
            (None, Some(8)),
            (Some("bytes 2-10/11"), Some(9)),
            (Some("bytes 3-10/12"), Some(8)),
            (Some("bytes 3-10/11"), Some(7)),
            (Some("bytes */11"), None),
        ] {
            let (reason, too_long) = mismatch(answer(206, range, length));
            assert!(reason.contains("resume from byte 3"), "{reason}");
            assert!(!too_long);
        }
        assert_eq!(
            mismatch(answer(416, Some("bytes */9"), None)),
            (
                "cannot resume: the partial file has 3 bytes but the resource has 9".into(),
                false
            )
        );
        assert!(mismatch(answer(416, Some("bytes */2"), None)).1);
    }

    #[test]
    fn apply_sets_range_and_if_range() {
        let mut h = Headers::new();
        h.append("If-Range", b"\"stale\"");
        h.append("Range", b"bytes=0-1");
        let bare = ResumeFrom {
            offset: 7,
            validator: None,
        };
        bare.apply(&mut h);
        assert_eq!(h.get_str("range"), Some("bytes=7-"));
        assert_eq!(h.get_str("if-range"), None);
        let guarded = ResumeFrom {
            validator: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
            ..bare
        };
        guarded.apply(&mut h);
        assert_eq!(h.get_str("if-range"), Some("Tue, 01 Dec 2026 10:00:00 GMT"));
        assert_eq!(h.get_all("range").count(), 1);
    }
}
