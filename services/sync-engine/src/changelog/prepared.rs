//! Changes encoded before they are appended.
//!
//! A sync worker encodes each change while it reads the next page, outside the page's
//! transaction, straight from the mapped record (no `Record` map is built) and the provider
//! record. What only the append knows — the operation (after the record-state lookup), the
//! sequence and the publish time — is written in front of those bytes when the change is
//! stored; protobuf parsers accept fields in any order, so the stored bytes decode as one
//! `Change`.

use prost::Message;
use prost::encoding::{self, WireType};
use prost_types::{Timestamp, Value};
use syncline_proto::common::v1::{Record, RecordOperation};
use syncline_proto::sync::v1::Change;
use syncline_proto::wire::{self, RecordParts};

use super::StoredChange;

/// `Change` field numbers written here.
mod field {
    pub const SEQUENCE: u32 = 1;
    pub const CONNECTION_ID: u32 = 2;
    pub const OBJECT: u32 = 3;
    pub const OPERATION: u32 = 4;
    pub const RECORD: u32 = 5;
    pub const PUBLISH_TIME: u32 = 7;
    pub const SYNC_RUN_ID: u32 = 8;
}

/// A change ready to append: its columns, its operation and the rest of its encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedChange {
    /// `Change.connection_id`, also a column of the log.
    pub connection_id: String,
    /// `Change.object`, also a column of the log.
    pub object: String,
    /// What happened to the record; must be set before the append.
    pub operation: RecordOperation,
    /// The `Change` encoding without sequence, operation, publish time and provider record.
    body: Vec<u8>,
    /// The provider record's encoding, stored in a column of its own.
    provider_record: Option<Vec<u8>>,
}

impl PreparedChange {
    /// A change a sync run `sync_run_id` publishes: `record` (mapped) and the record it was
    /// read as; its operation is decided at commit.
    pub fn mapped<'a, F>(
        connection_id: &str,
        object: &str,
        sync_run_id: &str,
        record: &RecordParts<'a, F>,
        provider_record: Option<&Record>,
    ) -> Self
    where
        F: Iterator<Item = (&'a str, &'a Value)> + Clone,
    {
        let record_len = record.encoded_len();
        let mut body = Vec::with_capacity(
            record_len + connection_id.len() + object.len() + sync_run_id.len() + 16,
        );
        put_str(field::CONNECTION_ID, connection_id, &mut body);
        put_str(field::OBJECT, object, &mut body);
        encoding::encode_key(field::RECORD, WireType::LengthDelimited, &mut body);
        encoding::encode_varint(record_len as u64, &mut body);
        record.encode(&mut body);
        put_str(field::SYNC_RUN_ID, sync_run_id, &mut body);
        Self {
            connection_id: connection_id.to_owned(),
            object: object.to_owned(),
            operation: RecordOperation::Unspecified,
            body,
            provider_record: provider_record.map(wire::encode_record),
        }
    }

    /// `change` as given to an append; its sequence and publish time are ignored.
    pub fn from_change(mut change: Change) -> Self {
        let provider_record = change
            .provider_record
            .take()
            .map(|record| wire::encode_record(&record));
        let operation =
            RecordOperation::try_from(change.operation).unwrap_or(RecordOperation::Unspecified);
        change.sequence = 0;
        change.operation = 0;
        change.publish_time = None;
        Self {
            body: change.encode_to_vec(),
            connection_id: change.connection_id,
            object: change.object,
            operation,
            provider_record,
        }
    }

    /// The change as the append stores it, with `sequence` and `publish_time` set in its
    /// encoding (its provider record kept apart, for its column).
    pub(crate) fn into_stored(self, sequence: u64, publish_time: &Timestamp) -> StoredChange {
        let mut change = Vec::with_capacity(self.body.len() + 32);
        if sequence != 0 {
            encoding::uint64::encode(field::SEQUENCE, &sequence, &mut change);
        }
        if self.operation != RecordOperation::Unspecified {
            encoding::int32::encode(field::OPERATION, &(self.operation as i32), &mut change);
        }
        encoding::message::encode(field::PUBLISH_TIME, publish_time, &mut change);
        change.extend_from_slice(&self.body);
        StoredChange {
            sequence,
            connection_id: self.connection_id,
            object: self.object,
            change,
            provider_record: self.provider_record,
        }
    }
}

fn put_str(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(value.len() as u64, buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests;
