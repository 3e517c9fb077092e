//! HubSpot's rate limits: a rolling 10-second burst limit per app and portal, a daily quota
//! per portal (reset at midnight portal time), and the search endpoints' own per-second
//! limit. Every API response carries the `X-HubSpot-RateLimit-*` headers.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

/// Limits of one portal. The defaults are HubSpot's Free/Starter tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimits {
    /// Requests per rolling 10 s per app (`X-HubSpot-RateLimit-Max`).
    pub ten_second_max: u64,
    /// Requests per day per portal (`X-HubSpot-RateLimit-Daily`).
    pub daily_max: u64,
    /// Search requests per second per portal.
    pub search_per_second: u64,
    /// Portal time zone offset from UTC in minutes (the daily quota resets at its midnight).
    pub utc_offset_minutes: i64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            ten_second_max: 100,
            daily_max: 250_000,
            search_per_second: 5,
            utc_offset_minutes: -240,
        }
    }
}

/// The header values of one admitted request.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// `X-HubSpot-RateLimit-Max`.
    pub max: u64,
    /// `X-HubSpot-RateLimit-Remaining`.
    pub remaining: u64,
    /// `X-HubSpot-RateLimit-Daily`.
    pub daily: u64,
    /// `X-HubSpot-RateLimit-Daily-Remaining`.
    pub daily_remaining: u64,
}

/// A refusal: which policy and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// `TEN_SECONDLY_ROLLING`, `SECONDLY` or `DAILY`.
    pub policy: &'static str,
    /// `Retry-After` seconds.
    pub retry_after_secs: u64,
    /// Header values to send with the 429.
    pub quota: Quota,
}

/// 100 buckets of 100 ms: a rolling window with bounded memory whatever the request rate.
#[derive(Debug, Clone)]
struct Window {
    buckets: Vec<u64>,
    bucket_ms: u64,
    last_tick: u64,
}

impl Window {
    fn new(buckets: usize, bucket_ms: u64) -> Self {
        Self {
            buckets: vec![0; buckets],
            bucket_ms,
            last_tick: 0,
        }
    }

    fn advance(&mut self, now_ms: u64) {
        let tick = now_ms / self.bucket_ms;
        let n = self.buckets.len() as u64;
        if tick > self.last_tick {
            let clear = (tick - self.last_tick).min(n);
            for k in 1..=clear {
                let i = ((self.last_tick + k) % n) as usize;
                self.buckets[i] = 0;
            }
            self.last_tick = tick;
        }
    }

    fn used(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn add(&mut self, count: u64) {
        let i = (self.last_tick % self.buckets.len() as u64) as usize;
        self.buckets[i] += count;
    }

    /// Milliseconds until at least one request leaves the window.
    fn wait_ms(&self, now_ms: u64) -> u64 {
        let n = self.buckets.len() as u64;
        for k in 1..=n {
            let tick = self.last_tick + k;
            if self.buckets[(tick % n) as usize] > 0 {
                return (tick * self.bucket_ms).saturating_sub(now_ms);
            }
        }
        self.bucket_ms * n
    }
}

/// Rate-limit state of one portal.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    origin: Instant,
    burst: HashMap<String, Window>,
    search: Window,
    day: i64,
    daily_used: u64,
}

impl RateLimiter {
    /// A limiter with these limits.
    #[must_use]
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            origin: Instant::now(),
            burst: HashMap::new(),
            search: Window::new(10, 100),
            day: 0,
            daily_used: 0,
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Replaces the limits (counters are kept).
    pub fn set_limits(&mut self, limits: RateLimits) {
        self.limits = limits;
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn roll_day(&mut self) {
        let local = chrono::Utc::now().timestamp() + self.limits.utc_offset_minutes * 60;
        let day = local.div_euclid(86_400);
        if day != self.day {
            self.day = day;
            self.daily_used = 0;
        }
    }

    fn seconds_to_midnight(&self) -> u64 {
        let local = chrono::Utc::now().timestamp() + self.limits.utc_offset_minutes * 60;
        (86_400 - local.rem_euclid(86_400)) as u64
    }

    /// Admits or refuses one request of `app_key`; `search` requests also count against the
    /// per-second search limit.
    pub fn admit(&mut self, app_key: &str, search: bool) -> Result<Quota, Refusal> {
        self.roll_day();
        let now = self.now_ms();
        let limits = self.limits;
        let window = self
            .burst
            .entry(app_key.to_owned())
            .or_insert_with(|| Window::new(100, 100));
        window.advance(now);
        let used = window.used();
        let daily_remaining = limits.daily_max.saturating_sub(self.daily_used);
        let quota = |remaining: u64, daily_remaining: u64| Quota {
            max: limits.ten_second_max,
            remaining,
            daily: limits.daily_max,
            daily_remaining,
        };
        if daily_remaining == 0 {
            let q = quota(limits.ten_second_max.saturating_sub(used), 0);
            return Err(Refusal {
                policy: "DAILY",
                retry_after_secs: self.seconds_to_midnight(),
                quota: q,
            });
        }
        if used >= limits.ten_second_max {
            let wait = window.wait_ms(now);
            return Err(Refusal {
                policy: "TEN_SECONDLY_ROLLING",
                retry_after_secs: wait.div_ceil(1000).max(1),
                quota: quota(0, daily_remaining),
            });
        }
        if search {
            self.search.advance(now);
            if self.search.used() >= limits.search_per_second {
                let wait = self.search.wait_ms(now);
                return Err(Refusal {
                    policy: "SECONDLY",
                    retry_after_secs: wait.div_ceil(1000).max(1),
                    quota: quota(limits.ten_second_max.saturating_sub(used), daily_remaining),
                });
            }
            self.search.add(1);
        }
        let window = self
            .burst
            .entry(app_key.to_owned())
            .or_insert_with(|| Window::new(100, 100));
        window.add(1);
        self.daily_used += 1;
        Ok(quota(
            limits.ten_second_max.saturating_sub(used + 1),
            daily_remaining - 1,
        ))
    }

    /// Uses up the daily quota (a fault: every call is refused with `DAILY` until midnight).
    pub fn exhaust_daily(&mut self) {
        self.roll_day();
        self.daily_used = self.limits.daily_max;
    }

    /// Uses up the 10-second window of every app (and of `app_key`, even if unseen).
    pub fn exhaust_burst(&mut self, app_key: &str) {
        let now = self.now_ms();
        let max = self.limits.ten_second_max;
        self.burst
            .entry(app_key.to_owned())
            .or_insert_with(|| Window::new(100, 100));
        for w in self.burst.values_mut() {
            w.advance(now);
            let used = w.used();
            w.add(max.saturating_sub(used));
        }
    }

    /// Clears all counters.
    pub fn reset(&mut self) {
        self.burst.clear();
        self.search = Window::new(10, 100);
        self.daily_used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_limit_refuses_past_max_and_counts_down() {
        let mut rl = RateLimiter::new(RateLimits {
            ten_second_max: 3,
            ..RateLimits::default()
        });
        assert_eq!(rl.admit("a", false).unwrap().remaining, 2);
        assert_eq!(rl.admit("a", false).unwrap().remaining, 1);
        assert_eq!(rl.admit("a", false).unwrap().remaining, 0);
        let r = rl.admit("a", false).unwrap_err();
        assert_eq!(r.policy, "TEN_SECONDLY_ROLLING");
        assert!((1..=10).contains(&r.retry_after_secs));
        // Another app has its own window.
        assert!(rl.admit("b", false).is_ok());
    }

    #[test]
    fn daily_exhaustion_refuses_everything() {
        let mut rl = RateLimiter::new(RateLimits::default());
        rl.exhaust_daily();
        assert_eq!(rl.admit("a", false).unwrap_err().policy, "DAILY");
    }

    #[test]
    fn search_has_its_own_per_second_limit() {
        let mut rl = RateLimiter::new(RateLimits {
            search_per_second: 2,
            ..RateLimits::default()
        });
        assert!(rl.admit("a", true).is_ok());
        assert!(rl.admit("a", true).is_ok());
        assert_eq!(rl.admit("a", true).unwrap_err().policy, "SECONDLY");
        assert!(rl.admit("a", false).is_ok());
    }
}
