//! Futures over the callback API, for any executor: `.await` a request, stream a body.
//!
//! A thin layer on the [client layer](crate::client) (which knows nothing of it): each future
//! posts its work to the reactor through a [`Bridge`] and is woken by the request's callback,
//! through the `std::task` waker it was polled with. No runtime is involved; the futures run
//! under tokio (a current-thread runtime with a `LocalSet`), smol, a hand-written `block_on`,
//! or any executor that polls them **on the reactor's thread** (they are not `Send`, like the
//! client they come from) while the reactor is driven — by a task of the same thread that
//! waits on the reactor's descriptor and on [`Reactor::work_queued`](crate::Reactor::work_queued)
//! (see `examples/embed_tokio.rs`), by [`Reactor::turn`](crate::Reactor::turn) between polls,
//! or by the host loop.
//!
//! - [`AsyncRequest::send_async`], [`AsyncRequest::fetch_async`] and
//!   [`AsyncRequest::fetch_into_async`] are
//!   [`RequestBuilder::send`](crate::RequestBuilder::send),
//!   [`RequestBuilder::fetch`](crate::RequestBuilder::fetch) and
//!   [`RequestBuilder::fetch_into`](crate::RequestBuilder::fetch_into) as futures. A request is issued
//!   when its future is first polled (so a future never polled sends nothing), at the
//!   reactor's next turn; dropping the future before it is ready cancels the request.
//! - [`AsyncResponse::into_stream`] turns a response's body into a [`BodyStream`] of chunks
//!   whose backpressure is the body's pause and resume.
//! - When the reactor is dropped with requests pending, their futures (and streams) wake
//!   with an error ([`Cause::AgentClosed`](crate::client::Cause::AgentClosed)), never hang.
//!
//! ```no_run
//! use weft::futures::{AsyncRequest, AsyncResponse, Bridge};
//! use weft::{HttpClient, Reactor};
//!
//! async fn two(client: HttpClient, bridge: Bridge) -> Result<(), weft::Error> {
//!     let page = client.get("http://127.0.0.1:8080/").fetch_async(&bridge).await?;
//!     println!("{} ({} bytes)", page.code, page.body.len());
//!
//!     let response = client.get("http://127.0.0.1:8080/big").send_async(&bridge).await?;
//!     let mut body = response.into_stream(&bridge);
//!     let mut total = 0;
//!     while let Some(chunk) = std::future::poll_fn(|cx| {
//!         futures_core::Stream::poll_next(std::pin::Pin::new(&mut body), cx)
//!     })
//!     .await
//!     {
//!         total += chunk?.len();
//!     }
//!     println!("{total} bytes streamed");
//!     Ok(())
//! }
//!
//! let mut reactor = Reactor::new().unwrap();
//! let client = HttpClient::new(reactor.ctx());
//! let bridge = Bridge::new(&reactor);
//! let task = two(client, bridge);
//! // Poll `task` with any executor on this thread while the reactor turns.
//! # drop(task);
//! ```

mod bridge;
mod request;
mod stream;

pub use bridge::Bridge;
pub use request::{FetchFuture, ResponseFuture};
pub use stream::{BodyStream, STREAM_BUFFER};

use crate::client::{RequestBuilder, Response};

/// Future-returning forms of [`RequestBuilder::send`], [`RequestBuilder::fetch`] and
/// [`RequestBuilder::fetch_into`].
pub trait AsyncRequest {
    /// Sends the request; the future gives the response head (stream its body with
    /// [`AsyncResponse::into_stream`], or with [`Response::deliver_body`] on the reactor).
    /// Issued when first polled; dropping the future cancels the request.
    fn send_async(self, bridge: &Bridge) -> ResponseFuture;

    /// Sends the request and reads the whole body into memory (up to the builder's
    /// `max_body`). Issued when first polled; dropping the future cancels the request.
    fn fetch_async(self, bridge: &Bridge) -> FetchFuture;

    /// [`AsyncRequest::fetch_async`] reading the body into `buffer`'s allocation (its
    /// contents are cleared), as [`RequestBuilder::fetch_into`] does: hand back an earlier
    /// response's `body` to reuse its memory when downloading large bodies one after another.
    fn fetch_into_async(self, bridge: &Bridge, buffer: Vec<u8>) -> FetchFuture;
}

impl AsyncRequest for RequestBuilder {
    fn send_async(self, bridge: &Bridge) -> ResponseFuture {
        ResponseFuture::new(bridge, self)
    }

    fn fetch_async(self, bridge: &Bridge) -> FetchFuture {
        FetchFuture::new(bridge, self, Vec::new())
    }

    fn fetch_into_async(self, bridge: &Bridge, buffer: Vec<u8>) -> FetchFuture {
        FetchFuture::new(bridge, self, buffer)
    }
}

/// A response's body as an async stream.
pub trait AsyncResponse {
    /// The body as a [`BodyStream`] of chunks; delivery starts when the stream is first
    /// polled.
    fn into_stream(self, bridge: &Bridge) -> BodyStream;
}

impl AsyncResponse for Response {
    fn into_stream(self, bridge: &Bridge) -> BodyStream {
        BodyStream::new(bridge, self)
    }
}
