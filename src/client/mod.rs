//! The client layer: the Twisted-style [`Agent`], its connection pool, request body producers
//! and response body protocols.
//!
//! An [`Agent`] reports each response as soon as its head arrives; the body is streamed to a
//! [`BodyProtocol`] given to [`Response::deliver_body`], with pause, resume and stop, and ends
//! with a [`BodyEnd`]: done, potential data loss (close-delimited), or a failure. Errors name
//! the [`Phase`] that failed and carry the [`Cause`].

mod agent;
mod body;
mod decode;
mod error;
mod multipart;
mod producer;
mod request;
mod response;
mod timing;

pub use agent::{Agent, AgentConfig, PoolStats, RequestId};
pub use body::{BodyCtx, BodyEnd, BodyHandle, BodyProtocol, Collected};
pub use decode::{Coding, ContentDecoderAgent, DecodeConfig};
pub use error::{Cause, Error, Phase, TimeoutKind};
pub use multipart::{Multipart, MultipartProducer, guess_content_type};
pub use producer::{BodyProducer, BodySink, BytesProducer, Produce, ProducerHandle, ReadProducer};
pub use request::{HttpAgent, Request, RequestHandle, ResponseCallback};
pub use response::{PreviousResponse, Response};
pub use timing::Timing;
