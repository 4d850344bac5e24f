//! The client layer: the Twisted-style [`Agent`], its connection pool, request body producers
//! and response body protocols.
//!
//! An [`Agent`] reports each response as soon as its head arrives; the body is streamed to a
//! [`BodyProtocol`] given to [`Response::deliver_body`], with pause, resume and stop, and ends
//! with a [`BodyEnd`]: done, potential data loss (close-delimited), or a failure. Errors name
//! the [`Phase`] that failed and carry the [`Cause`].

mod agent;
mod auth;
mod body;
mod conditional;
mod cookies;
mod decode;
mod download;
mod error;
mod fuzz_client;
mod fuzz_decode;
mod fuzz_redirect;
mod http_client;
mod multipart;
mod producer;
mod proxy;
mod redirect;
mod request;
mod response;
mod timing;

pub use agent::{Agent, AgentConfig, PoolStats, RequestId};
pub use auth::{AuthAgent, AuthMode, Credentials};
pub use body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol, Collected};
pub use conditional::{ConditionalAgent, Fetched, Freshness, ValidatorCache, Validators};
pub use cookies::{CookieAgent, CookieJar};
pub use decode::{Coding, ContentDecoderAgent, DecodeConfig};
pub use download::{
    ContentRange, DownloadOptions, Downloaded, Progress, download, partial_meta_path, partial_path,
};
pub use error::{Cause, Error, Phase, TimeoutKind};
#[doc(hidden)]
pub use fuzz_client::fuzz_client;
#[doc(hidden)]
pub use fuzz_decode::fuzz_decode;
#[doc(hidden)]
pub use fuzz_redirect::fuzz_redirect;
pub use http_client::{ClientConfig, FullResponse, HttpClient, RequestBuilder, Sizes};
pub use multipart::{Multipart, MultipartProducer, guess_content_type};
pub use producer::{BodyProducer, BodySink, BytesProducer, Produce, ProducerHandle, ReadProducer};
pub use proxy::Proxies;
pub use redirect::{RedirectAgent, RedirectConfig};
pub use request::{HttpAgent, Request, RequestHandle, ResponseCallback, Timeouts};
pub use response::{PreviousResponse, Response};
pub use timing::Timing;
