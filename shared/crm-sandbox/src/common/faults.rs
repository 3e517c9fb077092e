//! Deterministic fault injection: latency, server errors and rate-limit refusals.
//!
//! A [`FaultInjector`] holds one org's (or portal's) fault configuration and hands out one
//! [`FaultDecision`] per request. Decision `n` is a pure function of `(seed, n)`, so a given
//! seed always yields the same sequence of faults, whatever the timing; tests can rely on
//! "with seed 7 and a 50 % error rate, requests 2 and 5 fail". Changing the configuration
//! restarts the sequence at `n = 0`.
//!
//! The provider decides what each outcome looks like on the wire (Salesforce: 503
//! `SERVER_UNAVAILABLE` and 403 `REQUEST_LIMIT_EXCEEDED`; HubSpot: 502 and 429 `RATE_LIMIT`;
//! a forced permanent refusal: see [`FaultOutcome::Refused`]).

use super::rng::{SeededRng, derive_index};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One org's fault configuration. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency in `0..=latency_jitter_ms`, drawn from the seeded sequence.
    pub latency_jitter_ms: u64,
    /// Probability in `[0, 1]` that a request fails with a server error (5xx).
    pub error_5xx_rate: f64,
    /// Probability in `[0, 1]` that a request is refused as rate limited (HubSpot 429,
    /// Salesforce 403 `REQUEST_LIMIT_EXCEEDED`).
    pub rate_limit_rate: f64,
    /// Seed of the decision sequence.
    pub seed: u64,
}

/// What the provider should do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultOutcome {
    /// Serve the request normally.
    Pass,
    /// Answer with the provider's server-error response.
    ServerError,
    /// Answer with the provider's rate-limit response.
    RateLimited,
    /// Refuse the call for good, as the real API does when the connected user may not see
    /// what it asks for (a 4xx a retry cannot fix): Salesforce 400 `INVALID_TYPE` naming a
    /// query's object (crm-reference `salesforce/error-invalid-type-unknown-object.json`),
    /// 404 `NOT_FOUND` for other calls (`salesforce/error-404-describe-not-found.json`);
    /// HubSpot 403 `MISSING_SCOPES` (`hubspot/error-403-missing-scopes.json`). Only forced
    /// ([`FaultInjector::force_next`]): the seeded sequence never draws it.
    Refused,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDecision {
    /// Position of this decision in the seeded sequence (forced outcomes do not advance it).
    pub sequence: u64,
    /// Latency to add before answering.
    pub delay: Duration,
    /// What to answer.
    pub outcome: FaultOutcome,
}

/// Hands out seeded fault decisions; cheap to call from many tasks at once.
#[derive(Debug, Default)]
pub struct FaultInjector {
    config: Mutex<FaultConfig>,
    counter: AtomicU64,
    forced: Mutex<VecDeque<FaultOutcome>>,
    injected: AtomicU64,
}

impl FaultInjector {
    /// An injector with the given configuration.
    #[must_use]
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config: Mutex::new(config),
            ..Self::default()
        }
    }

    /// Replaces the configuration and restarts the decision sequence.
    pub fn configure(&self, config: FaultConfig) {
        *lock(&self.config) = config;
        self.counter.store(0, Ordering::SeqCst);
    }

    /// The current configuration.
    #[must_use]
    pub fn config(&self) -> FaultConfig {
        lock(&self.config).clone()
    }

    /// Makes the next `count` requests answer `outcome`, before the seeded sequence resumes.
    pub fn force_next(&self, outcome: FaultOutcome, count: usize) {
        let mut q = lock(&self.forced);
        q.extend(std::iter::repeat_n(outcome, count));
    }

    /// How many faults (non-`Pass` outcomes) have been handed out so far.
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The decision for the next request.
    pub fn decide(&self) -> FaultDecision {
        let config = self.config();
        let forced = lock(&self.forced).pop_front();
        let decision = if let Some(outcome) = forced {
            FaultDecision {
                sequence: self.counter.load(Ordering::SeqCst),
                delay: Duration::from_millis(config.latency_ms),
                outcome,
            }
        } else {
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            decide_at(&config, n)
        };
        if decision.outcome != FaultOutcome::Pass {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }
}

/// Decision `n` of the sequence defined by `config`; a pure function.
#[must_use]
pub fn decide_at(config: &FaultConfig, n: u64) -> FaultDecision {
    let mut rng = SeededRng::new(derive_index(config.seed, n));
    let jitter = if config.latency_jitter_ms > 0 {
        rng.below(config.latency_jitter_ms + 1)
    } else {
        0
    };
    let roll = rng.unit();
    let e5 = config.error_5xx_rate.clamp(0.0, 1.0);
    let rl = config.rate_limit_rate.clamp(0.0, 1.0);
    let outcome = if roll < e5 {
        FaultOutcome::ServerError
    } else if roll < e5 + rl {
        FaultOutcome::RateLimited
    } else {
        FaultOutcome::Pass
    };
    FaultDecision {
        sequence: n,
        delay: Duration::from_millis(config.latency_ms.saturating_add(jitter)),
        outcome,
    }
}

/// Locks a mutex, recovering from poisoning (a panicking test must not wedge the sandbox).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let cfg = FaultConfig {
            error_5xx_rate: 0.3,
            rate_limit_rate: 0.2,
            latency_jitter_ms: 10,
            seed: 7,
            ..FaultConfig::default()
        };
        let a = FaultInjector::new(cfg.clone());
        let b = FaultInjector::new(cfg);
        let sa: Vec<_> = (0..200).map(|_| a.decide()).collect();
        let sb: Vec<_> = (0..200).map(|_| b.decide()).collect();
        assert_eq!(sa, sb);
        let errors = sa
            .iter()
            .filter(|d| d.outcome == FaultOutcome::ServerError)
            .count();
        assert!((30..90).contains(&errors), "{errors}");
        assert!(sa.iter().any(|d| d.outcome == FaultOutcome::RateLimited));
    }

    #[test]
    fn default_injects_nothing_and_forced_comes_first() {
        let inj = FaultInjector::default();
        inj.force_next(FaultOutcome::RateLimited, 2);
        assert_eq!(inj.decide().outcome, FaultOutcome::RateLimited);
        assert_eq!(inj.decide().outcome, FaultOutcome::RateLimited);
        for _ in 0..100 {
            assert_eq!(inj.decide().outcome, FaultOutcome::Pass);
        }
        assert_eq!(inj.injected(), 2);
    }
}
