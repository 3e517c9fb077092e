//! The record readers against the sandboxes: backfill then increments, ties across pages,
//! deletes, the HubSpot search cap and look-back, and resuming from every cursor.

pub mod hubspot;
pub mod limits;
pub mod salesforce;

use std::collections::{BTreeMap, BTreeSet};

use syncline_connectors::{
    Connector, ConnectorError, Credentials, ReadCursor, ReadRequest, RecordPage, RecordReader,
};
use syncline_proto::common::v1::Record;

/// A record's id, modified time (seconds, nanos) and deleted flag.
type Version = (String, Option<(i64, i32)>, bool);

/// Pages read until caught up, with the cursor saved after each page.
pub struct Drained {
    pub records: Vec<Record>,
    /// The cursor after each page, in order (the last is the caught-up cursor).
    pub cursors: Vec<ReadCursor>,
    pub pages: Vec<RecordPage>,
}

impl Drained {
    pub fn cursor(&self) -> ReadCursor {
        self.cursors.last().cloned().unwrap_or_default()
    }

    /// Ids of the live (not deleted) records read.
    pub fn live_ids(&self) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| !r.deleted)
            .map(|r| r.id.clone())
            .collect()
    }

    /// Ids read as deleted.
    pub fn deleted_ids(&self) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| r.deleted)
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every id read.
    pub fn ids(&self) -> BTreeSet<String> {
        self.records.iter().map(|r| r.id.clone()).collect()
    }

    /// Ids of the records read that are new or changed since `earlier`: a re-read of a
    /// record with the same modified time and deleted flag is not a change (the engine
    /// dedupes those).
    pub fn changed_since(&self, earlier: &[Record]) -> BTreeSet<String> {
        let known: BTreeSet<Version> = earlier
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.system_modstamp.map(|t| (t.seconds, t.nanos)),
                    r.deleted,
                )
            })
            .collect();
        self.records
            .iter()
            .filter(|r| {
                !known.contains(&(
                    r.id.clone(),
                    r.system_modstamp.map(|t| (t.seconds, t.nanos)),
                    r.deleted,
                ))
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// How many times each id was read.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in &self.records {
            *out.entry(r.id.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// Reads from `cursor` until a page says caught up (at most `max_pages`).
pub async fn drain(
    connector: &Connector,
    credentials: &Credentials,
    object: &str,
    fields: &[String],
    cursor: &ReadCursor,
    page_size: u32,
) -> Result<Drained, ConnectorError> {
    let mut out = Drained {
        records: Vec::new(),
        cursors: Vec::new(),
        pages: Vec::new(),
    };
    let mut cursor = cursor.clone();
    for _ in 0..10_000 {
        let page = connector
            .read_page(
                credentials,
                ReadRequest {
                    object,
                    fields,
                    cursor: &cursor,
                    page_size,
                },
            )
            .await?;
        cursor = page.cursor.clone();
        out.records.extend(page.records.iter().cloned());
        out.cursors.push(cursor.clone());
        let done = page.caught_up;
        out.pages.push(page);
        if done {
            return Ok(out);
        }
    }
    panic!("no caught-up page after 10,000 pages");
}
