//! A token bucket per tenant, so one noisy tenant cannot starve the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-tenant token buckets.
#[derive(Debug)]
pub struct TenantRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets idle this long are forgotten, bounding memory to active tenants.
const IDLE: Duration = Duration::from_secs(300);

impl TenantRateLimiter {
    /// `per_second` sustained, `burst` at once, per tenant.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; `Err(wait)` says how long until one is free.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < IDLE);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Takes one token for `key` now.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_burst_is_limited_and_others_are_not() {
        let limiter = TenantRateLimiter::new(1, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("noisy", now).is_ok());
        }
        let wait = limiter.check_at("noisy", now).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check_at("quiet", now).is_ok());
    }

    #[test]
    fn tokens_refill_with_time() {
        let limiter = TenantRateLimiter::new(10, 1);
        let now = Instant::now();
        assert!(limiter.check_at("t", now).is_ok());
        assert!(limiter.check_at("t", now).is_err());
        assert!(
            limiter
                .check_at("t", now + Duration::from_millis(100))
                .is_ok()
        );
    }
}
