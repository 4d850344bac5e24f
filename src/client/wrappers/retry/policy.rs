//! The retry policy: what is retried, how long to wait, and when to give up. Pure: the
//! agent in `mod.rs` applies its verdicts.

use std::time::Duration;

use crate::client::error::{Cause, Error, Phase, TimeoutKind};
use crate::reactor::TransportError;

/// Methods that may be sent twice with the effect of once (RFC 9110 §9.2.2).
const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];

/// How a [`RetryAgent`](super::RetryAgent) retries a request that failed or got a
/// transient error status.
///
/// By default: up to 3 retries, of idempotent methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`,
/// `PUT`, `DELETE`); on connect failures (refused, DNS, connect timeout), on a read timeout
/// before any response, and on `408`, `429`, `500`, `502`, `503` and `504`; waiting an
/// exponential backoff with jitter (1 s, 2 s, 4 s... at most 30 s, [`Jitter::Equal`]), or
/// what `Retry-After` asks when that is longer (at most 60 s); never past 120 s from the
/// first attempt. A request that never left (a connect failure) is retried whatever its
/// method: the server cannot have seen it.
///
/// ```
/// use std::time::Duration;
/// use weft::client::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy {
///     max_retries: 5,
///     max_total: Some(Duration::from_secs(30)),
///     backoff: Backoff::Fixed(Duration::from_millis(500)),
///     ..RetryPolicy::default()
/// };
/// assert!(policy.statuses.contains(&503));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries at most, after the first attempt (default 3). 0 never retries.
    pub max_retries: u32,
    /// Retry every method, `POST` and `PATCH` included (default false: only idempotent
    /// methods are retried once the request may have reached the server).
    pub all_methods: bool,
    /// Statuses retried (default 408, 429, 500, 502, 503, 504); the last such response is
    /// handed over as it is when the policy gives up.
    pub statuses: Vec<u16>,
    /// Retry on a refused connection (default true; curl wants `--retry-connrefused`).
    pub connection_refused: bool,
    /// Retry on every failure before a response head, not only on connect failures and
    /// timeouts: resets, protocol errors, TLS failures (curl's `--retry-all-errors`). Local
    /// errors (a bad URL or request, a cancel) are never retried. Default false.
    pub all_errors: bool,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// Whether `Retry-After` (seconds or an HTTP-date) is honoured when it asks for a longer
    /// wait than the backoff (default true).
    pub honour_retry_after: bool,
    /// Longest wait taken from `Retry-After` (default 60 s): a longer one is cut to this.
    pub max_retry_after: Duration,
    /// No retry whose wait would end later than this after the first attempt started
    /// (default 120 s; curl's `--retry-max-time`); `None` for no cap. An attempt under way
    /// is not cut short: the request's own timeouts do that.
    pub max_total: Option<Duration>,
    /// A limit on each attempt, from its start to the end of its body (curl's `-m` with
    /// `--retry`): an attempt that runs out of it before its response head is retried. Each
    /// attempt still gets no more than what remains of the request's own total timeout.
    /// Default `None`: only the request's total timeout applies, to every attempt together.
    pub attempt_timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            all_methods: false,
            statuses: vec![408, 429, 500, 502, 503, 504],
            connection_refused: true,
            all_errors: false,
            backoff: Backoff::default(),
            honour_retry_after: true,
            max_retry_after: Duration::from_secs(60),
            max_total: Some(Duration::from_secs(120)),
            attempt_timeout: None,
        }
    }
}

/// The wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same wait before every retry (curl's `--retry-delay`).
    Fixed(Duration),
    /// `base` before the first retry, doubling for each one after, at most `max`, with
    /// `jitter` applied.
    Exponential {
        /// The first wait (before jitter).
        base: Duration,
        /// The longest wait (before jitter).
        max: Duration,
        /// How the wait is spread out.
        jitter: Jitter,
    },
}

impl Default for Backoff {
    /// 1 s doubling to at most 30 s, with equal jitter.
    fn default() -> Self {
        Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: Jitter::Equal,
        }
    }
}

/// Random spread of an exponential backoff, so that clients failing together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The exact wait.
    None,
    /// Anywhere from zero to the wait.
    Full,
    /// Half the wait, plus anywhere up to the other half.
    Equal,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first), with `random` (uniform over
    /// `u64`) picking the jitter.
    pub(crate) fn delay(&self, retry: u32, random: u64) -> Duration {
        let (base, max, jitter) = match *self {
            Backoff::Fixed(d) => return d,
            Backoff::Exponential { base, max, jitter } => (base, max, jitter),
        };
        let wait = base
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(max);
        // Top 53 bits: a uniform fraction in [0, 1).
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        match jitter {
            Jitter::None => wait,
            Jitter::Full => scale(wait, fraction),
            Jitter::Equal => wait / 2 + scale(wait / 2, fraction),
        }
    }
}

/// `wait` times `fraction` (in [0, 1)), never more than `wait` (float rounding near
/// `Duration::MAX` would otherwise overflow).
fn scale(wait: Duration, fraction: f64) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * fraction)
        .unwrap_or(wait)
        .min(wait)
}

/// The longest wait before a retry, whatever the backoff says: a timer must stay
/// representable.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Why no (further) retry was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The failure is not one the policy retries.
    NotRetryable,
    /// The retries allowed are spent.
    MaxRetries(u32),
    /// The method may not be repeated (and the request may have reached the server).
    Method(String),
    /// The body was (partly) sent and cannot be sent again.
    BodyNotReplayable,
    /// The wait would end past the policy's total cap.
    MaxTotal(Duration),
    /// The wait would end past the request's own total timeout.
    Timeout,
}

impl Refusal {
    /// The reason, for an error message; `None` when the failure was never retryable.
    pub(crate) fn describe(&self) -> Option<String> {
        Some(match self {
            Refusal::NotRetryable => return None,
            Refusal::MaxRetries(n) => format!("{n} retries allowed"),
            Refusal::Method(m) => format!("{m} is not idempotent"),
            Refusal::BodyNotReplayable => "the request body cannot be sent again".into(),
            Refusal::MaxTotal(cap) => format!(
                "the wait would pass the {} ms retry time limit",
                cap.as_millis()
            ),
            Refusal::Timeout => "the wait would pass the request's total timeout".into(),
        })
    }
}

impl RetryPolicy {
    /// Whether `error` is a failure this policy retries, leaving aside the method and the
    /// body: connect failures and read timeouts before a response head, or (with
    /// `all_errors`) any failure that is not local.
    pub(crate) fn retries_error(&self, error: &Error) -> bool {
        match error.cause() {
            Cause::Transport(TransportError::ConnectionRefused) => {
                self.connection_refused || self.all_errors
            }
            Cause::Transport(TransportError::Dns(_) | TransportError::ConnectTimeout) => true,
            Cause::Timeout(t) => match t.kind {
                TimeoutKind::Connect => true,
                TimeoutKind::Read => error.phase() != Phase::ResponseFailed,
                // The attempt's own limit ran out, not the request's.
                TimeoutKind::Total => {
                    self.attempt_timeout == Some(t.limit) && error.phase() != Phase::ResponseFailed
                }
                // A wait for a connection would only queue again behind the same requests.
                TimeoutKind::Queue => false,
            },
            Cause::InvalidUrl(_)
            | Cause::UnsupportedScheme(_)
            | Cause::InvalidRequest(_)
            | Cause::Cancelled
            | Cause::AgentClosed
            | Cause::File(_)
            | Cause::BodyAlreadyDelivered => false,
            _ => self.all_errors && error.phase() != Phase::ResponseFailed,
        }
    }

    /// Whether `method` may be retried once the request may have reached the server.
    pub(crate) fn retries_method(&self, method: &str) -> bool {
        self.all_methods || IDEMPOTENT.contains(&method)
    }

    /// The wait before retry number `retry` (0 for the first): the backoff, or what
    /// `Retry-After` asked for when longer, cut to `max_retry_after`; never over a day.
    pub(crate) fn wait(&self, retry: u32, asked: Option<Duration>, random: u64) -> Duration {
        let backoff = self.backoff.delay(retry, random);
        let wait = match asked.filter(|_| self.honour_retry_after) {
            Some(asked) => backoff.max(asked.min(self.max_retry_after)),
            None => backoff,
        };
        wait.min(MAX_WAIT)
    }
}

/// A random `u64` for jitter, from the standard library's randomly keyed hasher.
pub(crate) fn random() -> u64 {
    use std::hash::BuildHasher;
    std::hash::RandomState::new().hash_one(std::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::Timeout;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn exponential_backoff_doubles_up_to_its_cap_within_its_jitter() {
        let exact = Backoff::Exponential {
            base: S,
            max: 30 * S,
            jitter: Jitter::None,
        };
        let waits: Vec<_> = (0..7).map(|n| exact.delay(n, 0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        // No overflow, however many retries.
        assert_eq!(exact.delay(u32::MAX, u64::MAX), 30 * S);
        let huge = Backoff::Exponential {
            base: Duration::MAX,
            max: Duration::MAX,
            jitter: Jitter::Full,
        };
        assert!(huge.delay(40, u64::MAX) <= Duration::MAX);
        for jitter in [Jitter::Full, Jitter::Equal] {
            let b = Backoff::Exponential {
                base: S,
                max: 30 * S,
                jitter,
            };
            for retry in 0..10 {
                let cap = exact.delay(retry, 0);
                let floor = if jitter == Jitter::Equal {
                    cap / 2
                } else {
                    Duration::ZERO
                };
                let (mut lo, mut hi) = (cap, Duration::ZERO);
                for i in 0..200u64 {
                    let random = if i < 2 {
                        [0, u64::MAX][i as usize]
                    } else {
                        random()
                    };
                    let d = b.delay(retry, random);
                    assert!(d >= floor && d <= cap, "{jitter:?} {retry}: {d:?}");
                    (lo, hi) = (lo.min(d), hi.max(d));
                }
                // The spread is used, not one value.
                assert!(
                    hi - lo > (cap - floor) / 2,
                    "{jitter:?} {retry}: {lo:?}..{hi:?}"
                );
            }
        }
        assert_eq!(Backoff::Fixed(3 * S).delay(9, 12345), 3 * S);
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_capped() {
        let p = RetryPolicy {
            backoff: Backoff::Fixed(2 * S),
            ..RetryPolicy::default()
        };
        assert_eq!(p.wait(0, None, 0), 2 * S);
        assert_eq!(p.wait(0, Some(S), 0), 2 * S);
        assert_eq!(p.wait(0, Some(5 * S), 0), 5 * S);
        assert_eq!(p.wait(0, Some(Duration::MAX), 0), 60 * S);
        let slow = RetryPolicy {
            backoff: Backoff::Fixed(Duration::MAX),
            max_retry_after: Duration::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(slow.wait(0, Some(Duration::MAX), 0), MAX_WAIT);
        let deaf = RetryPolicy {
            honour_retry_after: false,
            ..p
        };
        assert_eq!(deaf.wait(0, Some(5 * S), 0), 2 * S);
    }

    #[test]
    fn which_failures_are_retried() {
        let p = RetryPolicy::default();
        let e = |phase, cause| Error::new(phase, cause);
        let timeout = |kind| {
            Cause::Timeout(Timeout {
                kind,
                limit: S,
                elapsed: S,
                received: 0,
            })
        };
        let refused = Cause::Transport(TransportError::ConnectionRefused);
        let reset = Cause::Transport(TransportError::ConnectionReset);
        use Phase::*;
        assert!(p.retries_error(&e(RequestNotSent, refused.clone())));
        assert!(p.retries_error(&e(RequestNotSent, timeout(TimeoutKind::Connect))));
        assert!(p.retries_error(&e(ResponseNeverReceived, timeout(TimeoutKind::Read))));
        assert!(!p.retries_error(&e(ResponseFailed, timeout(TimeoutKind::Read))));
        assert!(!p.retries_error(&e(ResponseNeverReceived, timeout(TimeoutKind::Total))));
        // A total timeout is retried when it is the attempt's own limit.
        let per_attempt = RetryPolicy {
            attempt_timeout: Some(S),
            ..RetryPolicy::default()
        };
        let total = timeout(TimeoutKind::Total);
        assert!(per_attempt.retries_error(&e(ResponseNeverReceived, total.clone())));
        assert!(!per_attempt.retries_error(&e(ResponseFailed, total)));
        let shorter = Cause::Timeout(Timeout {
            kind: TimeoutKind::Total,
            limit: S / 2,
            elapsed: S,
            received: 0,
        });
        assert!(!per_attempt.retries_error(&e(ResponseNeverReceived, shorter)));
        assert!(!p.retries_error(&e(RequestNotSent, timeout(TimeoutKind::Queue))));
        assert!(!p.retries_error(&e(ResponseNeverReceived, reset.clone())));
        let all = RetryPolicy {
            all_errors: true,
            connection_refused: false,
            ..RetryPolicy::default()
        };
        assert!(all.retries_error(&e(ResponseNeverReceived, reset)));
        assert!(all.retries_error(&e(RequestNotSent, refused.clone())));
        assert!(!all.retries_error(&e(RequestNotSent, Cause::Cancelled)));
        assert!(!all.retries_error(&e(RequestNotSent, Cause::InvalidUrl("x".into()))));
        let no_refused = RetryPolicy {
            connection_refused: false,
            ..RetryPolicy::default()
        };
        assert!(!no_refused.retries_error(&e(RequestNotSent, refused)));
        assert!(p.retries_method("GET") && p.retries_method("DELETE"));
        assert!(!p.retries_method("POST") && !p.retries_method("PATCH"));
        assert!(!p.retries_method("get"));
        let any = RetryPolicy {
            all_methods: true,
            ..RetryPolicy::default()
        };
        assert!(any.retries_method("POST"));
    }
}
