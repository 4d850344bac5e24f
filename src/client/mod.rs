//! The client layer: the Twisted-style [`Agent`], its connection pool, request body producers
//! and response body protocols.
//!
//! An [`Agent`] reports each response as soon as its head arrives; the body is streamed to a
//! [`BodyProtocol`] given to [`Response::deliver_body`], with pause, resume and stop, and ends
//! with a [`BodyEnd`]: done, potential data loss (close-delimited), or a failure. Errors name
//! the [`Phase`] that failed and carry the [`Cause`].

mod agent;
mod body;
mod bounded;
mod error;
mod full;
#[cfg(feature = "fuzzing")]
mod fuzz_decode;
#[cfg(feature = "fuzzing")]
mod fuzz_redirect;
mod http_client;
mod msg;
mod overrides;
mod producer;
mod proxy;
mod request;
mod response;
mod session;
mod timing;
mod transfer;
mod wrappers;

pub use agent::{Agent, AgentConfig, PoolStats};
pub use body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol};
pub use bounded::{Slot, run_bounded};
pub use error::{Cause, Error, Phase, Timeout, TimeoutKind};
pub use full::{FullResponse, Sizes};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz_decode::fuzz_decode;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz_redirect::fuzz_redirect;
pub use http_client::{HttpClient, RequestBuilder};
pub use msg::RequestId;
pub use overrides::{ConnectTo, OverrideSyntaxError, ResolveOverride};
pub use producer::{BodyProducer, BodySink, BytesProducer, Produce, ProducerHandle, ReadProducer};
pub use proxy::Proxies;
pub use request::{HttpAgent, IntoUrl, Request, RequestHandle, ResponseCallback, Timeouts};
pub use response::{PreviousResponse, Response, UpgradeError};
pub use session::ClientBuilder;
pub use timing::Timing;
pub use transfer::download::{
    DownloadOptions, Downloaded, Progress, download, partial_meta_path, partial_path,
};
pub use transfer::multipart::{Multipart, MultipartProducer, guess_content_type};
pub use transfer::resume::{ContentRange, RangeAnswer, ResumeFrom};
pub use wrappers::auth::{AuthAgent, AuthMode, Credentials};
pub use wrappers::conditional::{ConditionalAgent, ValidatorCache, Validators};
#[cfg(feature = "cookies")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookies")))]
pub use wrappers::cookies::{CookieAgent, CookieJar};
pub use wrappers::decode::{Coding, ContentDecoderAgent, DecodeConfig};
pub use wrappers::redirect::{RedirectAgent, RedirectConfig};
pub use wrappers::retry::{Backoff, Jitter, RetryAgent, RetryHook, RetryNotice, RetryPolicy};
