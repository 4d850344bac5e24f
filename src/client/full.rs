//! [`FullResponse`]: a response read to its end, the one whole-body type of the client layer
//! ([`Response::collect`], [`RequestBuilder::fetch`](super::RequestBuilder::fetch),
//! [`HttpClient::fetch_all`](super::HttpClient::fetch_all) and the blocking client all give
//! it), with text and JSON helpers.

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use url::Url;

use crate::proto::{Headers, Version};
use crate::reactor::Ctx;

use super::body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
use super::error::{Cause, Error, Phase};
use super::response::{PreviousResponse, Response};
use super::timing::Timing;

/// Body sizes of a response read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Body bytes as received (after de-chunking, before content decoding).
    pub body_wire: u64,
    /// Body bytes after content decoding (what [`FullResponse::body`] holds).
    pub body_decoded: u64,
}

/// A response read to its end: its head, its whole body, trailers, timing and history.
///
/// It owns all its data (no reference to the reactor), so it can be kept, cloned or sent to
/// another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullResponse {
    /// Protocol version.
    pub version: Version,
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub phrase: Cow<'static, str>,
    /// Header fields, in the order received.
    pub headers: Headers,
    /// Trailer fields of a chunked body (empty otherwise).
    pub trailers: Headers,
    /// The body (after content decoding, when a decoding wrapper is in the chain).
    pub body: Vec<u8>,
    /// The URL of this response (the last one, after redirects).
    pub url: Url,
    /// When each phase ended.
    pub timing: Timing,
    /// From submission to the end of the body (curl's `time_total`).
    pub total: Duration,
    /// False when the body was delimited by the connection closing, so a truncation could not
    /// be detected ([`BodyEnd::PotentialDataLoss`]).
    pub complete: bool,
    /// Earlier responses that led here (redirects, authentication challenges), oldest first.
    pub history: Vec<PreviousResponse>,
    /// Body sizes.
    pub sizes: Sizes,
}

impl FullResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The body as text, decoded with the charset of `Content-Type` (UTF-8 when none is
    /// given or it is unknown; always UTF-8 without the `charset` feature); invalid sequences
    /// become U+FFFD, as in browsers.
    pub fn text(&self) -> String {
        decode_text(self.headers.get_str("content-type"), &self.body)
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// `body` as text in the charset named by the media type `content_type`, else UTF-8.
#[cfg(feature = "charset")]
fn decode_text(content_type: Option<&str>, body: &[u8]) -> String {
    let label = content_type.and_then(charset_of).unwrap_or("utf-8");
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// `body` as UTF-8 text: without the `charset` feature, other charsets are not known.
#[cfg(not(feature = "charset"))]
fn decode_text(_content_type: Option<&str>, body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The `charset` parameter of a media type.
#[cfg(feature = "charset")]
fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

impl Response {
    /// Reads the whole body into memory and gives the [`FullResponse`] to `done`, failing with
    /// [`Cause::BodyTooLarge`] past `max_bytes` (the connection is then closed, not pooled).
    ///
    /// Room for a body of declared length is reserved once (never past `max_bytes`), so a
    /// large body is not copied again at every doubling; a body whose declared length is
    /// already past `max_bytes` fails at once, before anything is allocated or read.
    /// [`FullResponse::total`] counts from the request's submission, assuming `collect` is
    /// called as the head arrives (in the response callback).
    pub fn collect(
        self,
        ctx: &mut Ctx,
        max_bytes: u64,
        done: impl FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static,
    ) {
        self.collect_into(ctx, max_bytes, Vec::new(), done);
    }

    /// [`Response::collect`] into `buffer`: its contents are cleared and its allocation holds
    /// the body when it is large enough (grown once otherwise).
    ///
    /// Give back the body of an earlier [`FullResponse`] when downloading large bodies one
    /// after another: the memory is then reused as it is, instead of fresh pages that the
    /// kernel must map and zero for each body, and unmap after it (most of the cost of
    /// collecting a large body; see `docs/performance.md`). On failure the buffer is dropped.
    pub fn collect_into(
        mut self,
        ctx: &mut Ctx,
        max_bytes: u64,
        buffer: Vec<u8>,
        done: impl FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static,
    ) {
        // Without filters (content decoding) the bytes `Gather` gets are the wire's: it counts
        // them itself, sparing the counting filter's allocations.
        let wire = (!self.filters.is_empty()).then(|| {
            let wire = Rc::new(Cell::new(0u64));
            let w = wire.clone();
            self.map_body_raw(move |inner| {
                Box::new(CountBytes {
                    inner,
                    count: w.clone(),
                })
            });
            wire
        });
        // Without filters the declared length is the length collected: past the cap, the
        // body fails at once (stopped in `body_started`) instead of after `max_bytes` read.
        let declared_too_large =
            self.filters.is_empty() && self.length.is_some_and(|len| len > max_bytes);
        let capacity = if declared_too_large {
            0
        } else {
            self.body_capacity(max_bytes)
        };
        let full = FullResponse {
            version: self.version,
            code: self.code,
            phrase: std::mem::take(&mut self.phrase),
            headers: std::mem::take(&mut self.headers),
            trailers: Headers::new(),
            body: reserved(buffer, capacity),
            url: (*self.url).clone(),
            timing: self.timing,
            total: Duration::ZERO,
            complete: false,
            history: std::mem::take(&mut self.history),
            sizes: Sizes::default(),
        };
        let before_head = self.timing.redirect + self.timing.head;
        self.deliver_body(
            ctx,
            Gather {
                full: Some(full),
                max: max_bytes,
                head_at: Instant::now(),
                before_head,
                wire,
                received: 0,
                done: Some(done),
                overflow: declared_too_large,
            },
        );
    }
}

/// `buffer` emptied, with room for `capacity` bytes, or with only the room it had when the
/// allocator refuses more (a declared length within a generous cap may still be more than the
/// machine can give: the body then grows as its bytes actually arrive, and fails at the cap as
/// always).
fn reserved(mut buffer: Vec<u8>, capacity: usize) -> Vec<u8> {
    buffer.clear();
    let _ = buffer.try_reserve_exact(capacity);
    buffer
}

/// Counts body bytes as the agent hands them over, before any decoding filter.
struct CountBytes {
    inner: Box<dyn BodyProtocol>,
    count: Rc<Cell<u64>>,
}

impl BodyProtocol for CountBytes {
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        self.inner.body_started(ctx, handle);
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        self.count.set(self.count.get() + data.len() as u64);
        self.inner.data_received(body, data);
    }

    fn trailers_received(&mut self, body: &mut BodyCtx<'_>, trailers: &Headers) {
        self.inner.trailers_received(body, trailers);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        self.inner.connection_lost(ctx, reason);
    }
}

/// Reads a body into a [`FullResponse`], then calls `done` (kept inline: `Gather` is boxed
/// as a body protocol anyway, so boxing the callback too would be one more allocation).
struct Gather<F> {
    full: Option<FullResponse>,
    max: u64,
    /// When the head was handed over, and how long the exchange took before that.
    head_at: Instant,
    before_head: Duration,
    /// Counts the body bytes as received when filters sit before `Gather`.
    wire: Option<Rc<Cell<u64>>>,
    /// Body bytes given to `Gather`.
    received: u64,
    done: Option<F>,
    overflow: bool,
}

impl<F: FnOnce(&mut Ctx, Result<FullResponse, Error>) + 'static> BodyProtocol for Gather<F> {
    fn body_started(&mut self, ctx: &mut Ctx, handle: BodyHandle) {
        if self.overflow {
            handle.stop(ctx);
        }
    }

    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        self.received += data.len() as u64;
        let Some(full) = self.full.as_mut() else {
            return;
        };
        if self.overflow {
            body.stop();
            return;
        }
        if full.body.len() as u64 + data.len() as u64 > self.max {
            self.overflow = true;
            body.stop();
            return;
        }
        full.body.extend_from_slice(data);
    }

    fn trailers_received(&mut self, _body: &mut BodyCtx<'_>, trailers: &Headers) {
        if let Some(full) = self.full.as_mut() {
            full.trailers = trailers.clone();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let (Some(done), Some(mut full)) = (self.done.take(), self.full.take()) else {
            return;
        };
        full.total = self.before_head + self.head_at.elapsed();
        full.sizes = Sizes {
            body_wire: self.wire.as_ref().map_or(self.received, |w| w.get()),
            body_decoded: full.body.len() as u64,
        };
        let result = match reason {
            _ if self.overflow => {
                let error = Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(self.max));
                // The agent's end of the stopped body names the URL; a body that ended before
                // the stop took effect is named by the response's.
                Err(match &reason {
                    BodyEnd::Failed(stopped) => error.with_url_of(stopped),
                    _ => error.with_url(full.url.as_str()),
                })
            }
            BodyEnd::Done | BodyEnd::PotentialDataLoss => {
                full.complete = reason.is_done();
                Ok(full)
            }
            BodyEnd::Failed(e) => Err(e),
        };
        done(ctx, result);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "charset")]
    #[test]
    fn charset_parameter_is_found() {
        use super::charset_of;
        assert_eq!(
            charset_of("text/html; charset=ISO-8859-1"),
            Some("ISO-8859-1")
        );
        assert_eq!(charset_of("text/html;Charset=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset_of("text/html"), None);
    }

    #[test]
    fn full_response_is_send() {
        fn send<T: Send + Sync>() {}
        send::<super::FullResponse>();
    }
}
