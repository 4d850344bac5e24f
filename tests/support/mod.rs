//! The shared harnesses of the integration tests, all on 127.0.0.1. Every test binary declares
//! `mod support;` and uses the parts it needs (so `dead_code` and `unused_imports`, for the
//! re-exports, are allowed here: no binary uses all of it).
//!
//! - [`scripted`]: [`scripted::ScriptedServer`], a server that plays a script of steps per
//!   connection (write whole, split or slowly, half-close, reset, drop TLS without
//!   `close_notify`), plain or TLS; and the request drivers that record each outcome
//!   ([`scripted::issue`], [`scripted::run_one`], [`scripted::run_sequential`], and
//!   [`scripted::run_via`] for wrapper agents). The Agent, client-layer, CLI and hostile-server
//!   tests use it.
//! - [`servers`]: launchers for real servers we did not write (nginx over HTTP and HTTPS,
//!   httpbin, tinyproxy), the CA made at test time ([`servers::TestCa`]), tiny rustls servers
//!   for the reactor's TLS tests ([`servers::tls`]), [`servers::TestDir`], raw blocking
//!   requests.
//! - [`faults`]: fault injection for `faults.rs`, `tls_failures.rs` and `torture.rs`:
//!   [`faults::RawServer`], a server run by a closure per connection (resets, half-closes,
//!   stalls, TLS), and one-call request runners with short limits.
//! - [`baseline`]: leak checks: [`baseline::Baseline`] (reactor counts and open descriptors
//!   back to where they were), [`baseline::assert_nothing_pooled`], and
//!   [`baseline::RssProbe`] (memory growth across a capped transfer).
//! - [`proto`]: the protocol-core driver: feeds a response whole, byte by byte and at random
//!   split points, alone or as a keep-alive pair, and checks that every mode agrees
//!   (`proto_framing.rs`, `hostile.rs`).
//! - [`reactor`]: for tests of the reactor without an Agent: [`reactor::LoggingProtocol`],
//!   which logs every event, [`reactor::Echo`], and the loop that turns the reactor until a
//!   condition holds.
#![allow(dead_code, unused_imports)]

pub mod baseline;
pub mod blackhole;
pub mod faults;
pub mod proto;
pub mod reactor;
pub mod scripted;
pub mod servers;
