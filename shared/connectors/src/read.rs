//! Reading one object's records page by page, resumable from a saved cursor.
//!
//! Contract between a connector and the sync engine:
//! - the engine calls [`RecordReader::read_page`] with the cursor it saved last (or
//!   [`ReadCursor::start`] for a first read) and saves the returned cursor *in the same
//!   transaction* as the page's records; a crash between two calls therefore replays at most
//!   one page, which the engine dedupes;
//! - a cursor is opaque to the engine (text it stores and shows operators); the connector
//!   encodes in it whether it is backfilling or reading increments, its high-water mark
//!   (modified time plus id as tie-breaker), any provider continuation and the window of
//!   deletes already read;
//! - `caught_up` says the object has nothing more to read right now: the engine ends the run
//!   for that object and the next run continues incrementally from the same cursor;
//! - every page reports the provider's published usage ([`ApiUsage`]) so the engine can keep
//!   within rate limits and the tenant's daily budget.

use serde::{Deserialize, Serialize};
use syncline_proto::common::v1::Record;

use crate::{ConnectorError, Credentials, ProviderMetadata};

/// Where a read of one object stands. Opaque outside the connector that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReadCursor(pub String);

impl ReadCursor {
    /// The cursor of an object never read: the next page starts a backfill.
    pub fn start() -> Self {
        Self::default()
    }

    /// Whether this is the start cursor.
    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }

    /// The cursor's text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page to read.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest<'a> {
    /// The CRM's object name (`Account`, `Territory__c`, `contacts`, `2-1234567`).
    pub object: &'a str,
    /// The CRM field names to read (those the tenant's mapping reads); the id and the
    /// modified-time field are always read.
    pub fields: &'a [String],
    /// Where the previous page left off.
    pub cursor: &'a ReadCursor,
    /// Records wanted per page; the provider may return fewer (or, for Salesforce, up to
    /// its own batch size).
    pub page_size: u32,
}

/// What one call to [`RecordReader::read_page`] returned.
#[derive(Debug, Clone, Default)]
pub struct RecordPage {
    /// Provider records (CRM field names), deletes with `deleted = true`, in the order the
    /// cursor advances.
    pub records: Vec<Record>,
    /// The cursor to save with these records.
    pub cursor: ReadCursor,
    /// Nothing more to read now; the next call (in a later run) reads increments.
    pub caught_up: bool,
    /// The provider's estimate of the records left in this phase, when it gives one.
    pub estimated_total: Option<i64>,
    /// Calls made to the provider for this page.
    pub provider_calls: u32,
    /// Usage the provider reported on its last answer.
    pub usage: ApiUsage,
}

/// Usage figures a provider publishes on its answers (`Sforce-Limit-Info: api-usage=N/M`,
/// `X-HubSpot-RateLimit-*`). `None` where the provider did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiUsage {
    /// Calls made in the provider's daily (24-hour) quota period.
    pub daily_used: Option<u64>,
    /// The daily quota.
    pub daily_limit: Option<u64>,
    /// Calls left in the current short window (HubSpot's ten seconds).
    pub window_remaining: Option<u64>,
    /// The short window's limit.
    pub window_limit: Option<u64>,
    /// The short window's length in milliseconds.
    pub window_ms: Option<u64>,
}

/// Reading records of one object, resumably.
#[allow(async_fn_in_trait)]
pub trait RecordReader: ProviderMetadata {
    /// Reads the page after `request.cursor`.
    async fn read_page(
        &self,
        credentials: &Credentials,
        request: ReadRequest<'_>,
    ) -> Result<RecordPage, ConnectorError> {
        let _ = (credentials, request);
        Err(ConnectorError::unsupported(self.provider(), "read_page"))
    }
}
