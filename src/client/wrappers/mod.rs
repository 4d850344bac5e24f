//! The wrapper agents: each takes an inner [`HttpAgent`](crate::client::HttpAgent) and adds
//! one behaviour on top (redirects, cookies, authentication, content decoding, conditional
//! requests, retries). They compose in any order; the session builder stacks them in the one
//! safe order (authentication outside redirects, so credentials never follow a redirect to
//! another origin).

pub(crate) mod auth;
pub(crate) mod conditional;
#[cfg(feature = "cookies")]
pub(crate) mod cookies;
pub(crate) mod decode;
pub(crate) mod redirect;
pub(crate) mod replay; // the request body shared by a wrapper's successive requests
pub(crate) mod retry;
