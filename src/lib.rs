//! weft: an HTTP/1.1 client protocol engine over mio.
//!
//! Three layers, each depending only on the one below:
//!
//! 1. [`proto`]: the sans-IO protocol core (bytes in, events and bytes out);
//! 2. [`reactor`] and [`tls`]: the single-threaded event loop and its transports;
//! 3. [`client`]: the Twisted-style [`client::Agent`] with its connection pool, body producers
//!    and consumers.
//!
//! See `docs/architecture.md` for the picture and the callback contract.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blocking;
// The front door: what a first program needs, at the crate root.
pub use client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, Cause, ClientBuilder, Error, FullResponse,
    HttpAgent, HttpClient, Request, RequestBuilder, Response, ValidatorCache,
};
pub use proto::Headers;
pub use reactor::{Ctx, Reactor};

pub mod client;
pub mod proto;
pub mod reactor;
pub mod tls;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (`docs/guide.md`), compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
