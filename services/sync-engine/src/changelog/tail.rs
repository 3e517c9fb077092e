//! The newest changes of the tenants being streamed, kept in memory once committed.
//!
//! A `StreamChanges` reader that keeps up asks for the changes just appended; reading them
//! back from the database costs a query, a copy per row and the database's own reads of what
//! it has just written. This process's appends leave their stored bytes here instead (only
//! for tenants with a live reader in this process, at most [`MAX_BYTES_PER_TENANT`] each,
//! oldest dropped first, all dropped when the tenant's last stream ends), and a page is
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

/// The kept changes of every streamed tenant of this process.
#[derive(Debug, Default)]
pub struct Tail {
    tenants: Mutex<HashMap<(String, String), Entries>>,
}

impl Tail {
    /// Keeps `committed` (consecutive sequences, as one append commits them) after the
    /// tenant's entries; when they do not follow on, the older entries are dropped.
    pub(crate) fn keep(&self, tenant: &TenantContext, committed: Vec<StoredChange>) {
        let Some(first) = committed.first().map(|e| e.sequence) else {
            return;
        };
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let kept = tenants.entry(key(tenant)).or_default();
        if kept
            .entries
            .back()
            .is_some_and(|last| last.sequence + 1 != first)
        {
            kept.entries.clear();
            kept.bytes = 0;
        }
        for entry in committed {
            kept.bytes += size(&entry);
            kept.entries.push_back(entry);
        }
        while kept.bytes > MAX_BYTES_PER_TENANT {
            let Some(oldest) = kept.entries.pop_front() else {
                break;
            };
            kept.bytes -= size(&oldest);
        }
    }

    /// Drops the tenant's entries (nobody streams it here any more).
    pub(crate) fn forget(&self, tenant: &TenantContext) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(tenant));
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
        let kept = &tenants.get(&key(tenant))?.entries;
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
