//! What a retry policy tells its caller before each retry: curl's "Will retry in N seconds"
//! line, a progress display, a metric.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::client::error::Error;

/// A retry about to be made, handed to the hook of [`ClientBuilder::on_retry`]
/// (or [`RetryAgent::on_retry`](super::RetryAgent::on_retry)) before the wait starts.
///
/// [`ClientBuilder::on_retry`]: crate::client::ClientBuilder::on_retry
#[derive(Debug)]
pub struct RetryNotice<'a> {
    /// Which retry this is (1 for the first).
    pub retry: u32,
    /// Retries the policy still allows after this one.
    pub retries_left: u32,
    /// The wait before it (backoff, or what `Retry-After` asked).
    pub wait: Duration,
    /// What failed: the status of a response the policy retries...
    pub status: Option<u16>,
    /// ...or the error of the attempt.
    pub error: Option<&'a Error>,
    /// The request's URL, without user name or password.
    pub url: &'a str,
}

/// The hook a [`RetryNotice`] goes to; cheap to clone, and `Send + Sync` so that a builder
/// holding one can be moved to the reactor's thread.
#[derive(Clone)]
pub struct RetryHook(pub(crate) Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>);

impl RetryHook {
    /// A hook calling `f`.
    pub fn new(f: impl Fn(&RetryNotice<'_>) + Send + Sync + 'static) -> Self {
        RetryHook(Arc::new(f))
    }
}

impl fmt::Debug for RetryHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryHook")
    }
}
