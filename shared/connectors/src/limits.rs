//! Keeping within a provider's limits: retry backoff, a per-connection circuit breaker, and
//! a per-tenant share of the daily API quota.
//!
//! Everything here is pure: time comes in as a parameter (`now`) and randomness as a draw
//! (`unit`, uniform in `[0, 1)`), so callers decide how to sleep and tests never do. The
//! sync engine holds one [`CircuitBreaker`] per connection, asks [`QuotaBudget::decide`]
//! with the [`ApiUsage`] of the last page before reading the next, and on a retryable error
//! waits [`Backoff::delay`] (or the breaker's retry time, whichever is later).

use std::time::Duration;

use chrono::{DateTime, Days, FixedOffset, TimeDelta, Timelike, Utc};

use crate::{ApiUsage, ConnectorError, Provider};

/// Exponential backoff with full jitter: retry `n` (1-based) waits a uniform draw from
/// `[0, min(cap, base · 2^(n-1))]`, and never less than the provider's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5 * 60),
        }
    }
}

impl Backoff {
    /// The ceiling of retry `attempt` (1-based): `min(cap, base · 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << shift.min(31))
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// How long to wait before retry `attempt` (1-based); `unit` is a uniform draw in
    /// `[0, 1)` (for example `rand::random::<f64>()`), `retry_after` the provider's ask.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = self.ceiling(attempt).mul_f64(unit);
        retry_after.map_or(jittered, |r| jittered.max(r))
    }

    /// [`Backoff::delay`] with the `Retry-After` the error carries.
    pub fn delay_for(&self, attempt: u32, error: &ConnectorError, unit: f64) -> Duration {
        self.delay(attempt, error.retry_after(), unit)
    }
}

/// When a [`CircuitBreaker`] opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive retryable failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe; doubles each time a probe fails.
    pub cool_down: Duration,
    /// The longest cool-down.
    pub max_cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(15 * 60),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive retryable failures so far.
    Closed {
        /// Consecutive retryable failures.
        failures: u32,
    },
    /// No calls until `until`.
    Open {
        /// End of the cool-down.
        until: DateTime<Utc>,
    },
    /// One probe call is out (since `since`); others wait for its outcome.
    HalfOpen {
        /// When the probe was let through.
        since: DateTime<Utc>,
    },
}

/// What the breaker says about a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call.
    Allow,
    /// Call: this is the probe after a cool-down; report its outcome.
    Probe,
    /// Do not call before `retry_at`.
    Reject {
        /// When to ask again.
        retry_at: DateTime<Utc>,
    },
}

/// A per-connection circuit breaker: closed → open after `failure_threshold` consecutive
/// retryable failures → half-open (one probe) after the cool-down → closed on the probe's
/// success, open again (cool-down doubled, up to the maximum) on its failure. Failures a
/// retry will not fix (a refusal, a revoked token) neither count nor reset the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Probes failed in a row (for the doubling of the cool-down).
    reopened: u32,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
            reopened: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    fn cool_down(&self) -> Duration {
        let factor = 1u32 << self.reopened.min(16);
        self.config
            .cool_down
            .checked_mul(factor)
            .map_or(self.config.max_cool_down, |d| {
                d.min(self.config.max_cool_down)
            })
    }

    /// Whether a call may go at `now`.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Allow,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                Admission::Probe
            }
            BreakerState::Open { until } => Admission::Reject { retry_at: until },
            BreakerState::HalfOpen { since } => {
                // A probe that never reported (its caller died) frees the slot after a
                // cool-down.
                let expires = since + delta(self.cool_down());
                if now >= expires {
                    self.state = BreakerState::HalfOpen { since: now };
                    Admission::Probe
                } else {
                    Admission::Reject { retry_at: expires }
                }
            }
        }
    }

    /// A call succeeded.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
        self.reopened = 0;
    }

    /// A call failed with `error` at `now`.
    pub fn on_error(&mut self, error: &ConnectorError, now: DateTime<Utc>) {
        if error.is_retryable() {
            self.on_failure(now);
        }
    }

    /// A call failed in a way a retry may fix, at `now`.
    pub fn on_failure(&mut self, now: DateTime<Utc>) {
        match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                self.state = if failures >= self.config.failure_threshold.max(1) {
                    BreakerState::Open {
                        until: now + delta(self.cool_down()),
                    }
                } else {
                    BreakerState::Closed { failures }
                };
            }
            BreakerState::HalfOpen { .. } => {
                self.reopened = self.reopened.saturating_add(1);
                self.state = BreakerState::Open {
                    until: now + delta(self.cool_down()),
                };
            }
            // A late answer of a call let through before the breaker opened.
            BreakerState::Open { .. } => {}
        }
    }
}

/// What the quota budget says about the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Within the budget.
    Go,
    /// Over the budget: pause the sync (not fail it) and resume at `until`.
    Pause {
        /// When to read again.
        until: DateTime<Utc>,
    },
}

/// A tenant's share of the provider's daily API quota.
///
/// The share is compared with the *org's or portal's* total usage as the provider reports it
/// (other integrations' calls count too), so Syncline stops at `share · limit` whoever made
/// the calls and leaves the rest to the customer. How the quota recovers differs:
/// - **Salesforce** counts calls over a rolling 24 hours. Not knowing when the counted calls
///   were made, the budget assumes they were spread evenly and pauses until enough of them
///   have aged out: `24 h · (used − allowed + 1) / used`, at least [`QuotaBudget::min_pause`]
///   and at most 24 hours. The next page reports the real usage and the decision is made
///   again.
/// - **HubSpot** resets the daily quota at midnight in the portal's time zone. With the
///   portal's UTC offset known (account details `utcOffset`), the pause ends at that
///   midnight; without it, at the next full hour (some time zone's midnight; the check
///   repeats hourly until the reset is seen).
///
/// Usage without daily figures (HubSpot omits them for OAuth apps) is always `Go`: the
/// short-window limit is then what guards the portal ([`QuotaBudget::window_wait`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaBudget {
    /// Fraction of the daily quota the tenant's syncs may use, in `(0, 1]`.
    pub share: f64,
    /// The shortest pause.
    pub min_pause: Duration,
    /// Calls to keep in the short window (HubSpot's ten seconds) for other callers.
    pub window_reserve: u64,
}

impl Default for QuotaBudget {
    fn default() -> Self {
        Self {
            share: 0.5,
            min_pause: Duration::from_secs(5 * 60),
            window_reserve: 0,
        }
    }
}

impl QuotaBudget {
    /// Calls allowed per day under `limit`.
    pub fn allowed(&self, limit: u64) -> u64 {
        let share = if self.share.is_finite() {
            self.share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (limit as f64 * share).floor() as u64
    }

    /// Whether to make the next call, given the usage reported last. `portal_offset` is a
    /// HubSpot portal's UTC offset, when known.
    pub fn decide(
        &self,
        provider: Provider,
        usage: &ApiUsage,
        now: DateTime<Utc>,
        portal_offset: Option<FixedOffset>,
    ) -> QuotaDecision {
        let (Some(used), Some(limit)) = (usage.daily_used, usage.daily_limit) else {
            return QuotaDecision::Go;
        };
        let allowed = self.allowed(limit);
        if used < allowed {
            return QuotaDecision::Go;
        }
        QuotaDecision::Pause {
            until: self.reset(provider, used, allowed, now, portal_offset),
        }
    }

    /// When to read again after the provider refused a call for the quota
    /// ([`ConnectorError::QuotaExhausted`]), given the last usage seen.
    pub fn after_exhausted(
        &self,
        provider: Provider,
        usage: &ApiUsage,
        now: DateTime<Utc>,
        portal_offset: Option<FixedOffset>,
    ) -> DateTime<Utc> {
        let limit = usage.daily_limit.unwrap_or(1).max(1);
        let used = usage.daily_used.unwrap_or(limit).max(limit);
        self.reset(provider, used, self.allowed(limit), now, portal_offset)
    }

    fn reset(
        &self,
        provider: Provider,
        used: u64,
        allowed: u64,
        now: DateTime<Utc>,
        portal_offset: Option<FixedOffset>,
    ) -> DateTime<Utc> {
        let min = now + delta(self.min_pause);
        let until = match provider {
            Provider::Salesforce => {
                let excess = used.saturating_sub(allowed).saturating_add(1) as f64;
                let fraction = (excess / used.max(1) as f64).clamp(0.0, 1.0);
                now + delta(Duration::from_secs(86_400).mul_f64(fraction))
            }
            Provider::HubSpot => match portal_offset {
                Some(offset) => next_midnight(now, offset),
                None => next_hour(now),
            },
        };
        until
            .max(min)
            .min(now + TimeDelta::days(1).max(delta(self.min_pause)))
    }

    /// How long to wait before the next call for the short window (HubSpot's ten seconds):
    /// the window's length when no more than [`QuotaBudget::window_reserve`] calls are left
    /// in it, else nothing.
    pub fn window_wait(&self, usage: &ApiUsage) -> Option<Duration> {
        let remaining = usage.window_remaining?;
        (remaining <= self.window_reserve)
            .then(|| Duration::from_millis(usage.window_ms.unwrap_or(10_000)))
    }
}

/// The next midnight at `offset` after `now`.
fn next_midnight(now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let local = now.with_timezone(&offset).date_naive();
    local
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(offset).single())
        .map_or(now + TimeDelta::days(1), |t| t.with_timezone(&Utc))
}

/// The next full hour after `now`.
fn next_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    let past = TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()))
        + TimeDelta::nanoseconds(i64::from(now.nanosecond()));
    now - past + TimeDelta::hours(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_honours_retry_after() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(3), Duration::from_secs(4));
        assert_eq!(b.ceiling(5), Duration::from_secs(10));
        assert_eq!(b.ceiling(200), Duration::from_secs(10));
        assert_eq!(b.delay(3, None, 0.5), Duration::from_secs(2));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(7)), 0.9),
            Duration::from_secs(7)
        );
        let error = ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(b.delay_for(1, &error, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_then_probes_once() {
        let config = BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(100),
        };
        let mut b = CircuitBreaker::new(config);
        let t0 = at("2026-01-01T00:00:00Z");
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.admit(t0), Admission::Allow, "a success resets the count");
        // Refusals do not count.
        b.on_error(
            &ConnectorError::Refused {
                status: 400,
                code: "X".into(),
                message: String::new(),
            },
            t0,
        );
        assert_eq!(b.admit(t0), Admission::Allow);
        b.on_failure(t0);
        let open_until = t0 + TimeDelta::seconds(30);
        assert_eq!(
            b.admit(t0),
            Admission::Reject {
                retry_at: open_until
            }
        );
        let t1 = open_until;
        assert_eq!(b.admit(t1), Admission::Probe);
        assert!(
            matches!(b.admit(t1), Admission::Reject { .. }),
            "one probe at a time"
        );
        // The probe fails: open again for twice as long.
        b.on_failure(t1);
        assert_eq!(
            b.admit(t1),
            Admission::Reject {
                retry_at: t1 + TimeDelta::seconds(60)
            }
        );
        let t2 = t1 + TimeDelta::seconds(60);
        assert_eq!(b.admit(t2), Admission::Probe);
        b.on_failure(t2);
        assert_eq!(
            b.admit(t2),
            Admission::Reject {
                retry_at: t2 + TimeDelta::seconds(100)
            },
            "capped"
        );
        let t3 = t2 + TimeDelta::seconds(100);
        assert_eq!(b.admit(t3), Admission::Probe);
        b.on_success();
        assert_eq!(b.admit(t3), Admission::Allow);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_probe_that_never_reports_frees_the_slot_after_a_cool_down() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        });
        let t0 = at("2026-01-01T00:00:00Z");
        b.on_failure(t0);
        let t1 = t0 + TimeDelta::seconds(30);
        assert_eq!(b.admit(t1), Admission::Probe);
        assert_eq!(b.admit(t1 + TimeDelta::seconds(30)), Admission::Probe);
    }

    fn usage(used: u64, limit: u64) -> ApiUsage {
        ApiUsage {
            daily_used: Some(used),
            daily_limit: Some(limit),
            ..ApiUsage::default()
        }
    }

    #[test]
    fn quota_goes_under_the_share_and_pauses_over_it() {
        let budget = QuotaBudget::default();
        let now = at("2026-03-10T15:30:00Z");
        assert_eq!(
            budget.decide(Provider::Salesforce, &usage(49_999, 100_000), now, None),
            QuotaDecision::Go
        );
        assert_eq!(
            budget.decide(Provider::Salesforce, &ApiUsage::default(), now, None),
            QuotaDecision::Go
        );
        // Salesforce, rolling 24 h: 60,000 used of an allowed 50,000 → a sixth of a day.
        let QuotaDecision::Pause { until } =
            budget.decide(Provider::Salesforce, &usage(60_000, 100_000), now, None)
        else {
            panic!("over the share")
        };
        let hours = (until - now).num_minutes() as f64 / 60.0;
        assert!((3.9..=4.1).contains(&hours), "{hours}");
        // HubSpot: midnight in the portal's zone (UTC-5 → 05:00 UTC next day).
        let offset = FixedOffset::west_opt(5 * 3600).unwrap();
        assert_eq!(
            budget.decide(
                Provider::HubSpot,
                &usage(200_000, 250_000),
                now,
                Some(offset)
            ),
            QuotaDecision::Pause {
                until: at("2026-03-11T05:00:00Z")
            }
        );
        // Zone unknown: the next full hour.
        assert_eq!(
            budget.decide(Provider::HubSpot, &usage(200_000, 250_000), now, None),
            QuotaDecision::Pause {
                until: at("2026-03-10T16:00:00Z")
            }
        );
        // A refusal for the quota pauses too.
        assert!(
            budget.after_exhausted(Provider::Salesforce, &ApiUsage::default(), now, None) > now
        );
    }

    #[test]
    fn short_window_waits_when_nothing_is_left() {
        let budget = QuotaBudget {
            window_reserve: 2,
            ..QuotaBudget::default()
        };
        let mut u = ApiUsage {
            window_remaining: Some(2),
            window_ms: Some(10_000),
            ..ApiUsage::default()
        };
        assert_eq!(budget.window_wait(&u), Some(Duration::from_secs(10)));
        u.window_remaining = Some(3);
        assert_eq!(budget.window_wait(&u), None);
    }

    proptest! {
        #[test]
        fn backoff_stays_within_its_envelope(
            attempt in 0u32..100, unit in 0.0f64..1.0, retry in proptest::option::of(0u64..1000),
        ) {
            let b = Backoff::default();
            let retry_after = retry.map(Duration::from_secs);
            let d = b.delay(attempt, retry_after, unit);
            prop_assert!(d <= b.cap.max(retry_after.unwrap_or_default()));
            prop_assert!(d >= retry_after.unwrap_or_default());
            prop_assert!(b.ceiling(attempt) <= b.ceiling(attempt + 1));
        }

        #[test]
        fn an_open_breaker_never_lets_a_call_through_before_its_time(
            events in proptest::collection::vec((0u8..3, 0i64..120), 1..60),
        ) {
            let config = BreakerConfig {
                failure_threshold: 3,
                cool_down: Duration::from_secs(20),
                max_cool_down: Duration::from_secs(80),
            };
            let mut b = CircuitBreaker::new(config);
            let mut now = at("2026-01-01T00:00:00Z");
            for (kind, step) in events {
                now += TimeDelta::seconds(step);
                let before = b.state();
                let admission = b.admit(now);
                match (before, admission) {
                    (BreakerState::Open { until }, Admission::Probe) => prop_assert!(now >= until),
                    (BreakerState::Open { .. }, Admission::Allow) => prop_assert!(false, "open let a call through"),
                    (BreakerState::Closed { .. }, a) => prop_assert_eq!(a, Admission::Allow),
                    _ => {}
                }
                if let Admission::Reject { retry_at } = admission {
                    prop_assert!(retry_at > now);
                    continue;
                }
                if admission == Admission::Probe {
                    let second = b.admit(now);
                    prop_assert!(matches!(second, Admission::Reject { .. }), "one probe at a time");
                }
                match kind {
                    0 => b.on_success(),
                    _ => b.on_failure(now),
                }
            }
        }

        #[test]
        fn quota_pauses_end_in_the_future_within_a_day(
            used in 0u64..2_000_000, limit in 1u64..1_000_000, share in 0.01f64..1.0,
            secs in 0i64..100_000_000, offset_min in -720i32..840, hubspot: bool, known: bool,
        ) {
            let budget = QuotaBudget { share, ..QuotaBudget::default() };
            let now = DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap();
            let provider = if hubspot { Provider::HubSpot } else { Provider::Salesforce };
            let offset = known.then(|| FixedOffset::east_opt(offset_min * 60).unwrap());
            match budget.decide(provider, &usage(used, limit), now, offset) {
                QuotaDecision::Go => prop_assert!(used < budget.allowed(limit)),
                QuotaDecision::Pause { until } => {
                    prop_assert!(used >= budget.allowed(limit));
                    prop_assert!(until >= now + TimeDelta::minutes(5));
                    prop_assert!(until <= now + TimeDelta::days(1));
                }
            }
        }
    }
}
