//! The login throttle: counts failed logins per key (a client IP address, an account
//! address) and says whether the next attempt waits, and when a key is locked.
//!
//! Sans-I/O: the clock is a parameter (`now_unix`), nothing here sleeps, stores or logs.
//! `Authenticator` (in `lib.rs`) waits, records locks in the directory and counts them.
//! Memory is bounded: at most `KEYS_MAX` keys are tracked; when full, the keys whose last
//! failure is oldest are forgotten first.

use std::collections::HashMap;

use tme_core::config::LoginConfig;

/// How many keys (addresses and accounts with recent failures) are tracked at most.
pub const KEYS_MAX: usize = 100_000;

/// What a key's history says about the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try at once.
    Allow,
    /// Wait this long before answering a failure (the attempt itself goes ahead).
    DelayFailure { delay_ms: u64 },
    /// Refuse without checking the password, until this time.
    Locked { until_unix: i64 },
}

#[derive(Debug, Clone, Default)]
struct History {
    /// Failures in the window, oldest first (bounded by the lock threshold).
    failures_unix: Vec<i64>,
    locked_until_unix: Option<i64>,
}

/// Failure counts and locks by key.
#[derive(Debug)]
pub struct Throttle {
    config: LoginConfig,
    keys: HashMap<String, History>,
}

/// A lock a failure just set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLock {
    pub key: String,
    pub failures: u32,
    pub locked_until_unix: i64,
}

impl Throttle {
    pub fn new(config: LoginConfig) -> Throttle {
        Throttle {
            config,
            keys: HashMap::new(),
        }
    }

    fn threshold(&self, key: &str) -> u32 {
        if key.starts_with("ip:") {
            self.config.failures_per_ip_max
        } else {
            self.config.failures_per_account_max
        }
    }

    fn recent_failures(&self, history: &History, now_unix: i64) -> u32 {
        let window_start = now_unix
            .saturating_sub(i64::try_from(self.config.failure_window_seconds).unwrap_or(i64::MAX));
        let recent = history
            .failures_unix
            .iter()
            .filter(|&&at| at > window_start)
            .count();
        u32::try_from(recent).unwrap_or(u32::MAX)
    }

    /// The verdict for an attempt on every key in `keys` (the strictest wins).
    pub fn check(&self, keys: &[&str], now_unix: i64) -> Verdict {
        let mut verdict = Verdict::Allow;
        for key in keys {
            let Some(history) = self.keys.get(*key) else {
                continue;
            };
            if let Some(until_unix) = history.locked_until_unix
                && until_unix > now_unix
            {
                return Verdict::Locked { until_unix };
            }
            let failures = self.recent_failures(history, now_unix);
            if failures >= self.config.failures_before_delay {
                let over = u64::from(failures - self.config.failures_before_delay) + 1;
                let delay_ms = over
                    .saturating_mul(self.config.delay_ms_per_failure)
                    .min(self.config.delay_ms_max);
                verdict = match verdict {
                    Verdict::DelayFailure { delay_ms: other } if other >= delay_ms => verdict,
                    _ => Verdict::DelayFailure { delay_ms },
                };
            }
        }
        verdict
    }

    /// Counts a failure on each key; returns the locks this failure set.
    pub fn record_failure(&mut self, keys: &[&str], now_unix: i64) -> Vec<NewLock> {
        if self.keys.len() + keys.len() > KEYS_MAX {
            self.forget_oldest(now_unix);
        }
        let mut locks = Vec::new();
        for key in keys {
            let threshold = self.threshold(key);
            let window_start = now_unix.saturating_sub(
                i64::try_from(self.config.failure_window_seconds).unwrap_or(i64::MAX),
            );
            let lock_seconds = i64::try_from(self.config.lock_seconds).unwrap_or(i64::MAX);
            let history = self.keys.entry((*key).to_owned()).or_default();
            history.failures_unix.retain(|&at| at > window_start);
            history.failures_unix.push(now_unix);
            let failures = u32::try_from(history.failures_unix.len()).unwrap_or(u32::MAX);
            if failures >= threshold {
                let until_unix = now_unix.saturating_add(lock_seconds);
                history.locked_until_unix = Some(until_unix);
                // A lock starts a fresh count: when it ends, the key gets its full allowance.
                history.failures_unix.clear();
                locks.push(NewLock {
                    key: (*key).to_owned(),
                    failures,
                    locked_until_unix: until_unix,
                });
            }
        }
        locks
    }

    /// A successful login forgets the account's failures (not the client address's: an
    /// attacker who owns one account must not reset the count of the address it guesses from).
    pub fn record_success(&mut self, account_key: &str) {
        self.keys.remove(account_key);
    }

    /// Lifts a lock (an operator removed it from the directory).
    pub fn unlock(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Keys locked now, with their end.
    pub fn locks(&self, now_unix: i64) -> Vec<(String, i64)> {
        let mut locks: Vec<(String, i64)> = self
            .keys
            .iter()
            .filter_map(|(key, history)| {
                history
                    .locked_until_unix
                    .filter(|&until| until > now_unix)
                    .map(|until| (key.clone(), until))
            })
            .collect();
        locks.sort();
        locks
    }

    fn forget_oldest(&mut self, now_unix: i64) {
        // First what has expired; then, if still full, the half with the oldest activity.
        let window_start = now_unix
            .saturating_sub(i64::try_from(self.config.failure_window_seconds).unwrap_or(i64::MAX));
        self.keys.retain(|_, history| {
            history
                .locked_until_unix
                .is_some_and(|until| until > now_unix)
                || history.failures_unix.iter().any(|&at| at > window_start)
        });
        if self.keys.len() >= KEYS_MAX / 2 {
            let mut last_seen: Vec<(i64, String)> = self
                .keys
                .iter()
                .map(|(key, history)| {
                    let last = history.failures_unix.last().copied().unwrap_or(i64::MIN);
                    (
                        last.max(history.locked_until_unix.unwrap_or(i64::MIN)),
                        key.clone(),
                    )
                })
                .collect();
            last_seen.sort();
            for (_, key) in last_seen.into_iter().take(self.keys.len() / 2) {
                self.keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoginConfig {
        LoginConfig {
            failures_before_delay: 2,
            delay_ms_per_failure: 100,
            delay_ms_max: 250,
            failures_per_account_max: 4,
            failures_per_ip_max: 6,
            failure_window_seconds: 60,
            lock_seconds: 300,
        }
    }

    #[test]
    fn failures_slow_down_then_lock() {
        let mut throttle = Throttle::new(config());
        let keys = ["ip:192.0.2.1", "account:a@example.org"];
        assert_eq!(throttle.check(&keys, 1000), Verdict::Allow);
        assert!(throttle.record_failure(&keys, 1000).is_empty());
        assert_eq!(throttle.check(&keys, 1000), Verdict::Allow);
        assert!(throttle.record_failure(&keys, 1001).is_empty());
        assert_eq!(
            throttle.check(&keys, 1001),
            Verdict::DelayFailure { delay_ms: 100 }
        );
        assert!(throttle.record_failure(&keys, 1002).is_empty());
        assert_eq!(
            throttle.check(&keys, 1002),
            Verdict::DelayFailure { delay_ms: 200 }
        );
        let locks = throttle.record_failure(&keys, 1003);
        assert_eq!(
            locks,
            vec![NewLock {
                key: "account:a@example.org".to_owned(),
                failures: 4,
                locked_until_unix: 1303
            }]
        );
        assert_eq!(
            throttle.check(&keys, 1003),
            Verdict::Locked { until_unix: 1303 }
        );
        // Another account from the same address is only slowed (the address has 4 of 6).
        assert_eq!(
            throttle.check(&["ip:192.0.2.1", "account:b@example.org"], 1004),
            Verdict::DelayFailure { delay_ms: 250 }
        );
        assert_eq!(throttle.locks(1004).len(), 1);
        // The lock ends; the count starts again.
        assert_eq!(
            throttle.check(&["account:a@example.org"], 1303),
            Verdict::Allow
        );
    }

    #[test]
    fn old_failures_are_forgotten_and_success_resets_the_account() {
        let mut throttle = Throttle::new(config());
        let keys = ["ip:192.0.2.1", "account:a@example.org"];
        throttle.record_failure(&keys, 1000);
        throttle.record_failure(&keys, 1001);
        assert_ne!(throttle.check(&keys, 1002), Verdict::Allow);
        assert_eq!(
            throttle.check(&keys, 1062),
            Verdict::Allow,
            "past the window"
        );
        throttle.record_failure(&keys, 2000);
        throttle.record_failure(&keys, 2001);
        throttle.record_success("account:a@example.org");
        assert_eq!(
            throttle.check(&["account:a@example.org"], 2002),
            Verdict::Allow
        );
        assert_ne!(throttle.check(&["ip:192.0.2.1"], 2002), Verdict::Allow);
    }

    #[test]
    fn memory_is_bounded() {
        let mut throttle = Throttle::new(config());
        for number in 0..(KEYS_MAX as i64 + 10) {
            throttle.record_failure(&[&format!("account:{number}@example.org")], number);
        }
        assert!(throttle.keys.len() <= KEYS_MAX, "{}", throttle.keys.len());
    }
}
