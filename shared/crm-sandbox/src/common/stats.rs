//! Per-org (per-portal) counters that tests read through the admin surfaces.
//!
//! Auth-vault tests assert things like "exactly one refresh happened at the sandbox", so
//! every token grant, refresh and failed grant is counted here, as is every API call.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters for one org; cheap to bump from many tasks.
#[derive(Debug, Default)]
pub struct OrgStats {
    code_grants: AtomicU64,
    refresh_grants: AtomicU64,
    other_grants: AtomicU64,
    failed_grants: AtomicU64,
    revocations: AtomicU64,
    api_calls: AtomicU64,
    injected_faults: AtomicU64,
}

/// A point-in-time copy of [`OrgStats`], as served by the admin surfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Successful authorization-code exchanges.
    pub code_grants: u64,
    /// Successful refresh-token grants.
    pub refresh_grants: u64,
    /// Successful grants of other types (password, client credentials).
    pub other_grants: u64,
    /// Token requests that were refused (`invalid_grant`, bad client, …).
    pub failed_grants: u64,
    /// Token revocations.
    pub revocations: u64,
    /// Authenticated API calls (including those answered with an injected fault).
    pub api_calls: u64,
    /// API calls answered with an injected fault.
    pub injected_faults: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// An authorization code was exchanged.
    CodeGrant,
    /// A refresh token was exchanged.
    RefreshGrant,
    /// Another grant type succeeded.
    OtherGrant,
    /// A token request failed.
    FailedGrant,
    /// A token was revoked.
    Revocation,
    /// An authenticated API call arrived.
    ApiCall,
    /// A fault was injected.
    InjectedFault,
}

impl OrgStats {
    /// Adds one to a counter.
    pub fn bump(&self, kind: StatKind) {
        let c = match kind {
            StatKind::CodeGrant => &self.code_grants,
            StatKind::RefreshGrant => &self.refresh_grants,
            StatKind::OtherGrant => &self.other_grants,
            StatKind::FailedGrant => &self.failed_grants,
            StatKind::Revocation => &self.revocations,
            StatKind::ApiCall => &self.api_calls,
            StatKind::InjectedFault => &self.injected_faults,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            code_grants: self.code_grants.load(Ordering::Relaxed),
            refresh_grants: self.refresh_grants.load(Ordering::Relaxed),
            other_grants: self.other_grants.load(Ordering::Relaxed),
            failed_grants: self.failed_grants.load(Ordering::Relaxed),
            revocations: self.revocations.load(Ordering::Relaxed),
            api_calls: self.api_calls.load(Ordering::Relaxed),
            injected_faults: self.injected_faults.load(Ordering::Relaxed),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for c in [
            &self.code_grants,
            &self.refresh_grants,
            &self.other_grants,
            &self.failed_grants,
            &self.revocations,
            &self.api_calls,
            &self.injected_faults,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
