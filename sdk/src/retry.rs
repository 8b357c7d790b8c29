//! Retry policy: which failures are transient, and exponential backoff with full jitter that
//! honours `Retry-After` in full (a retry sooner than the server asked is refused again, and
//! against a player's own rate limit it only spends the attempt).

use rand::Rng;
use std::time::Duration;

/// How retries are spaced and how many are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Backoff base: the cap of the first retry's delay.
    pub base_delay: Duration,
    /// Largest backoff delay between attempts; a longer `Retry-After` is still waited for (the
    /// call's deadline bounds it: a wait past the deadline is not started).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Whether an HTTP status is worth retrying: throttling and gateway/unavailable errors.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): full jitter, uniform in
    /// `0..=min(max_delay, base_delay * 2^(retry-1))`, or the server's `Retry-After` when it
    /// asks for longer (not capped: the caller checks the wait against its deadline).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(20));
        let cap = exp.min(self.max_delay);
        let jittered = if cap.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(rand::rng().random_range(0..=cap.as_micros() as u64))
        };
        match retry_after {
            Some(ra) => ra.max(jittered),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
        };
        for _ in 0..200 {
            assert!(p.delay(1, None) <= Duration::from_millis(10));
            assert!(p.delay(3, None) <= Duration::from_millis(40));
            assert!(p.delay(30, None) <= Duration::from_millis(80));
        }
        // Retry-After is waited for in full, past max_delay.
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        let long = RetryPolicy {
            max_delay: Duration::from_secs(10),
            ..p
        };
        assert!(long.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
    }

    #[test]
    fn transient_statuses_and_retry_after() {
        for s in [429, 502, 503, 504] {
            assert!(is_transient_status(s));
        }
        for s in [400, 401, 403, 404, 413, 422, 500] {
            assert!(!is_transient_status(s));
        }
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
