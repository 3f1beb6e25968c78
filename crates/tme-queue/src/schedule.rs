//! When to try a message again, and when to give up: pure arithmetic on seconds.
//!
//! After the n-th failed attempt the wait is `retry_first_seconds × 2^(n−1)`, at most
//! `retry_max_seconds` (RFC 5321 §4.5.4.1: retry at least 30 minutes apart on the whole,
//! give up after 4–5 days). A message past its lifetime fails; one undelivered for
//! `delay_notice_seconds` earns its sender one delay notice.

use tme_core::config::QueueConfig;

/// The retry rules of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub retry_first_seconds: i64,
    pub retry_max_seconds: i64,
    pub lifetime_seconds: i64,
    pub delay_notice_seconds: i64,
}

impl Schedule {
    pub fn from_config(config: &QueueConfig) -> Schedule {
        let seconds = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        Schedule {
            retry_first_seconds: seconds(config.retry_first_seconds),
            retry_max_seconds: seconds(config.retry_max_seconds),
            lifetime_seconds: seconds(config.message_lifetime_seconds),
            delay_notice_seconds: seconds(config.delay_notice_seconds),
        }
    }

    /// The wait after `failed_attempts` failed attempts (1 after the first).
    pub fn backoff_seconds(&self, failed_attempts: u32) -> i64 {
        let doublings = failed_attempts.saturating_sub(1).min(30);
        self.retry_first_seconds
            .saturating_mul(1_i64 << doublings)
            .min(self.retry_max_seconds)
            .max(1)
    }

    /// When to try again after `failed_attempts` failures at `now_unix`; never past the
    /// expiry, so that the last attempt comes when the lifetime ends.
    pub fn next_attempt_unix(&self, failed_attempts: u32, now_unix: i64, expires_unix: i64) -> i64 {
        now_unix
            .saturating_add(self.backoff_seconds(failed_attempts))
            .min(expires_unix.max(now_unix))
    }

    /// Whether a message created at `created_unix` has waited long enough for a delay notice.
    pub fn delay_notice_due(&self, created_unix: i64, now_unix: i64) -> bool {
        now_unix.saturating_sub(created_unix) >= self.delay_notice_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::from_config(&QueueConfig::default())
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let waits: Vec<i64> = (1..=6).map(|n| schedule().backoff_seconds(n)).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(schedule().backoff_seconds(u32::MAX), 3600);
    }

    #[test]
    fn the_last_attempt_comes_at_expiry() {
        let schedule = schedule();
        assert_eq!(schedule.next_attempt_unix(1, 1_000, 100_000), 1_300);
        assert_eq!(schedule.next_attempt_unix(9, 99_000, 100_000), 100_000);
        assert_eq!(schedule.next_attempt_unix(9, 200_000, 100_000), 200_000);
    }

    #[test]
    fn delay_notice_after_four_hours() {
        assert!(!schedule().delay_notice_due(0, 4 * 3600 - 1));
        assert!(schedule().delay_notice_due(0, 4 * 3600));
    }
}
