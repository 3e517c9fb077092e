//! The newest changes of the tenants being streamed, kept in memory once committed.
//!
//! A `StreamChanges` reader that keeps up asks for the changes just appended; reading them
//! back from the database costs a query, a copy per row and the database's own reads of what
//! it has just written. This process's appends leave their stored bytes here instead (only
//! for tenants with a live reader in this process, at most [`MAX_BYTES_PER_TENANT`] each and
//! [`MAX_BYTES`] for all of them, oldest dropped first, all dropped when the tenant's last
//! stream ends), and a page is
//! served from here when every sequence it covers is
//! here. Anything else — a reader further behind, appends by other processes sharing a
//! PostgreSQL database, a gap after a restart — is read from the database as before: the
//! entries of a tenant are always consecutive sequences, and a page is served from memory
//! only when they cover it whole.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use syncline_domain::TenantContext;

use super::encoded::EncodedChange;
use super::{ChangeFilter, StoredChange, tenant_key as key};

/// Bytes of changes kept per streamed tenant.
pub const MAX_BYTES_PER_TENANT: usize = 4 << 20;

/// Bytes of changes kept for all streamed tenants of the process together: hundreds of
/// tenants streamed at once share this, the tenants keeping the most giving up their oldest
/// first (their readers then read the database, as any reader behind does).
pub const MAX_BYTES: usize = 64 << 20;

fn size(change: &StoredChange) -> usize {
    change.change.len() + change.provider_record.as_ref().map_or(0, Vec::len) + 64
}

fn matches(change: &StoredChange, filter: &ChangeFilter) -> bool {
    (filter.connection_ids.is_empty() || filter.connection_ids.contains(&change.connection_id))
        && (filter.objects.is_empty() || filter.objects.contains(&change.object))
}

/// Consecutive committed changes of one tenant, oldest first.
#[derive(Debug, Default)]
struct Entries {
    entries: VecDeque<StoredChange>,
    bytes: usize,
}

impl Entries {
    /// Drops the oldest entries until at most `bytes` are kept; returns the bytes dropped.
    fn shrink_to(&mut self, bytes: usize) -> usize {
        let before = self.bytes;
        while self.bytes > bytes {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= size(&oldest);
        }
        before - self.bytes
    }
}

/// Every streamed tenant's entries and their bytes together.
#[derive(Debug, Default)]
struct Tenants {
    kept: HashMap<(String, String), Entries>,
    bytes: usize,
}

impl Tenants {
    /// Takes the oldest entries of the tenants keeping the most until `limit` holds: the
    /// biggest comes down to the next biggest, then both, and so on.
    fn shrink_to(&mut self, limit: usize) {
        if self.bytes <= limit {
            return;
        }
        while self.bytes > limit {
            let excess = self.bytes - limit;
            let (first, second) = self.kept.values().fold((0, 0), |(first, second), e| {
                if e.bytes > first {
                    (e.bytes, first)
                } else {
                    (first, second.max(e.bytes))
                }
            });
            let Some(biggest) = self
                .kept
                .values_mut()
                .find(|e| e.bytes == first && first > 0)
            else {
                return;
            };
            // Down to the next biggest, or one entry less when they are level.
            let target = first.saturating_sub(excess).max(second);
            let target = if target == first { first - 1 } else { target };
            self.bytes -= biggest.shrink_to(target);
        }
        self.kept.retain(|_, entries| !entries.entries.is_empty());
    }
}

/// The kept changes of every streamed tenant of this process.
#[derive(Debug)]
pub struct Tail {
    tenants: Mutex<Tenants>,
    per_tenant: usize,
    total: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self::with_limits(MAX_BYTES_PER_TENANT, MAX_BYTES)
    }
}

impl Tail {
    /// A tail keeping at most `per_tenant` bytes of each tenant and `total` of all.
    pub(crate) fn with_limits(per_tenant: usize, total: usize) -> Self {
        Self {
            tenants: Mutex::default(),
            per_tenant,
            total,
        }
    }

    /// Keeps `committed` (consecutive sequences, as one append commits them) after the
    /// tenant's entries; when they do not follow on, the older entries are dropped.
    pub(crate) fn keep(&self, tenant: &TenantContext, committed: Vec<StoredChange>) {
        let Some(first) = committed.first().map(|e| e.sequence) else {
            return;
        };
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let tenants = &mut *tenants;
        let kept = tenants.kept.entry(key(tenant)).or_default();
        let before = kept.bytes;
        if kept
            .entries
            .back()
            .is_some_and(|last| last.sequence + 1 != first)
        {
            kept.shrink_to(0);
        }
        for entry in committed {
            kept.bytes += size(&entry);
            kept.entries.push_back(entry);
        }
        kept.shrink_to(self.per_tenant);
        tenants.bytes = tenants.bytes - before + kept.bytes;
        tenants.shrink_to(self.total);
    }

    /// Drops the tenant's entries (nobody streams it here any more).
    pub(crate) fn forget(&self, tenant: &TenantContext) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = tenants.kept.remove(&key(tenant)) {
            tenants.bytes -= kept.bytes;
        }
    }

    /// What [`super::ChangeLog::page_encoded`] would read, when every sequence in
    /// `after + 1 ..= through` is kept; `None` sends the reader to the database.
    pub(crate) fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Option<Vec<EncodedChange>> {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let kept = &tenants.kept.get(&key(tenant))?.entries;
        let first = kept.front()?.sequence;
        let last = kept.back()?.sequence;
        if after.checked_add(1)? < first || last < through {
            return None;
        }
        let start = usize::try_from(after + 1 - first).ok()?;
        Some(
            kept.iter()
                .skip(start)
                .take_while(|entry| entry.sequence <= through)
                .filter(|entry| matches(entry, filter))
                .take(limit)
                .map(|entry| {
                    EncodedChange::with_provider_record(
                        entry.sequence,
                        &entry.change,
                        entry
                            .provider_record
                            .as_deref()
                            .filter(|_| filter.include_provider_record),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
