//! Per-request timing, as curl's `time_info`: when each phase ended, from submission.

use std::time::Duration;

/// When each phase of a request ended, measured from the moment it was submitted.
///
/// Connection phases (`dns`, `connect`, `tls`) are `None` on a reused connection, and `tls`
/// is `None` for plain HTTP.
///
/// The Agent's marks come from the reactor's clock, read once per loop turn when the poll
/// returns ([`Ctx::now`](crate::reactor::Ctx::now)): a phase is dated by the turn that saw
/// it, so phases passed within one turn (a request submitted and sent on a pooled
/// connection, the first byte and the head in one read) read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Time spent waiting for a free connection (curl's `time_queue`).
    pub queued: Duration,
    /// Name resolution done (curl's `time_namelookup`).
    pub dns: Option<Duration>,
    /// TCP connection established (curl's `time_connect`).
    pub connect: Option<Duration>,
    /// TLS handshake done (curl's `time_appconnect`).
    pub tls: Option<Duration>,
    /// Request head handed to the connection (curl's `time_pretransfer`).
    pub request_sent: Duration,
    /// First response byte received (curl's `time_starttransfer`).
    pub first_byte: Duration,
    /// Response head parsed.
    pub head: Duration,
    /// Time spent on earlier hops (redirects, authentication retries) before this request
    /// (curl's `time_redirect`); the other fields count from this request's own start.
    pub redirect: Duration,
    /// Whether the request went on a pooled connection.
    pub reused: bool,
    /// Attempts a retry policy ([`RetryPolicy`](super::RetryPolicy)) gave up on before
    /// this response, over every hop; the time they took, waits included, is in
    /// `redirect`.
    pub retries: u32,
}
