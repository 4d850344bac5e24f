//! weft: an HTTP/1.1 client protocol engine over mio.
//!
//! Four layers, each depending only on the ones below:
//!
//! 1. [`proto`]: the sans-IO protocol core (bytes in, events and bytes out);
//! 2. [`reactor`] and [`tls`]: the single-threaded event loop and its transports;
//! 3. [`client`]: the Twisted-style [`client::Agent`] with its connection pool, body producers
//!    and consumers;
//! 4. [`futures`]: the callbacks as futures and streams, for any executor, and [`handle`]: a
//!    `Send + Sync + Clone` [`SharedClient`] for requests from other threads.
//!
//! See `docs/architecture.md` for the picture and the callback contract.
//!
//! # Cargo features
//!
//! All on by default; an embedder can turn off what it does not use with
//! `default-features = false`:
//!
//! | Feature | What it brings |
//! |---|---|
//! | `gzip` | `Content-Encoding: gzip` and `deflate` decoding (flate2, pure Rust) |
//! | `brotli` | `Content-Encoding: br` decoding (brotli-decompressor) |
//! | `zstd` | `Content-Encoding: zstd` decoding (zstd, builds the C library) |
//! | `cookies` | `client::CookieAgent` and `client::CookieJar` (cookie_store, psl) |
//! | `json` | JSON request bodies and response parsing (serde, serde_json) |
//! | `digest` | HTTP Digest authentication (md-5, sha2); Basic is always there |
//! | `charset` | decoding text in the `Content-Type` charset (encoding_rs); else UTF-8 |
//! | `cli` | the `weft` command (clap, indicatif); implies every feature above |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blocking;
// The front door: what a first program needs, at the crate root.
pub use client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, Cause, ClientBuilder, Error, FullResponse,
    HttpAgent, HttpClient, Request, RequestBuilder, Response, ValidatorCache,
};
pub use handle::ReactorPool;
pub use handle::{SharedClient, SharedRequest};
pub use proto::Headers;
pub use reactor::{Ctx, Reactor};

pub mod client;
pub mod futures;
pub mod handle;
pub mod proto;
pub mod reactor;
pub mod tls;

/// The README's examples, compiled as doctests so they stay true (they use the default
/// features).
#[cfg(all(doctest, feature = "cookies", feature = "json", feature = "gzip"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (`docs/guide.md`), compiled as doctests so they stay true (they use
/// the default features).
#[cfg(all(doctest, feature = "cookies", feature = "json", feature = "gzip"))]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
