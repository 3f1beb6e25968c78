//! Response rate limiting for UDP: a guard against reflection and amplification attacks,
//! where a forged source address makes us send answers to a victim.
//!
//! This module owns the accounting: a token bucket per client network (IPv4 /24, IPv6 /56,
//! as BIND's RRL groups them), in a table of fixed size, so memory stays bounded whatever
//! the number of sources (networks that hash to the same slot share a bucket). Past the
//! rate, answers are dropped, but every `SLIP`-th is sent truncated (TC=1, no records, about
//! the query's own size) so that a real client behind the address retries over TCP, which a
//! forger cannot. TCP is never limited here. Time comes from the caller, so tests set it.

use std::net::IpAddr;
use std::time::Instant;

/// The number of buckets: 64 Ki of 16 octets, about a megabyte.
const BUCKETS: usize = 1 << 16;
/// One answer in this many over the limit goes out truncated instead of being dropped.
const SLIP: u32 = 2;

/// What to do with one UDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Send,
    /// Send a truncated answer (TC=1) in its place.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    network: u64,
    tokens: f32,
    /// Seconds since the limiter's start, when `tokens` was last brought up to date.
    updated_seconds: f32,
    over: u32,
}

/// The limiter; `responses_per_second_max` of 0 lets everything through.
#[derive(Debug)]
pub struct RateLimiter {
    responses_per_second_max: u32,
    start: Instant,
    buckets: Vec<Bucket>,
}

impl RateLimiter {
    pub fn new(responses_per_second_max: u32, start: Instant) -> RateLimiter {
        let buckets = if responses_per_second_max == 0 {
            Vec::new()
        } else {
            vec![
                Bucket {
                    network: u64::MAX,
                    tokens: 0.0,
                    updated_seconds: 0.0,
                    over: 0,
                };
                BUCKETS
            ]
        };
        RateLimiter {
            responses_per_second_max,
            start,
            buckets,
        }
    }

    /// Whether answers are limited at all (`responses_per_second_max` above 0).
    pub fn is_on(&self) -> bool {
        self.responses_per_second_max > 0
    }

    /// Accounts one answer to `source` at `now`.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> RateVerdict {
        if self.responses_per_second_max == 0 {
            return RateVerdict::Send;
        }
        let network = match source {
            IpAddr::V4(address) => u64::from(u32::from(address) >> 8),
            IpAddr::V6(address) => (u128::from(address) >> 72) as u64 | (1 << 63),
        };
        // A multiplicative hash spreads neighbouring networks over the table.
        let slot = (network.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as usize % BUCKETS;
        let rate = self.responses_per_second_max as f32;
        let now_seconds = now.saturating_duration_since(self.start).as_secs_f32();
        let bucket = &mut self.buckets[slot];
        if bucket.network != network {
            *bucket = Bucket {
                network,
                tokens: rate,
                updated_seconds: now_seconds,
                over: 0,
            };
        }
        // A second's worth of answers is the burst allowed.
        let elapsed = (now_seconds - bucket.updated_seconds).max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.updated_seconds = now_seconds;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.over = 0;
            return RateVerdict::Send;
        }
        bucket.over = bucket.over.wrapping_add(1);
        if bucket.over.is_multiple_of(SLIP) {
            RateVerdict::Slip
        } else {
            RateVerdict::Drop
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_from_one_network_is_limited_and_others_are_not() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, start);
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let verdicts: Vec<RateVerdict> = (0..100).map(|_| limiter.check(attacker, start)).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == RateVerdict::Send).count(),
            10
        );
        assert_eq!(
            verdicts.iter().filter(|v| **v == RateVerdict::Slip).count(),
            45
        );
        assert_eq!(
            limiter.check(neighbour, start),
            RateVerdict::Drop,
            "same /24"
        );
        assert_eq!(limiter.check(other, start), RateVerdict::Send);
        // Tokens come back with time.
        let later = start + Duration::from_millis(500);
        let sent = (0..100)
            .filter(|_| limiter.check(attacker, later) == RateVerdict::Send)
            .count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn zero_turns_it_off() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(0, start);
        let source: IpAddr = "2001:db8::1".parse().unwrap();
        assert!((0..10_000).all(|_| limiter.check(source, start) == RateVerdict::Send));
    }
}
