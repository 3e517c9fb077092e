//! Changes as stored, served without decoding them.
//!
//! The `change` column holds each change's protobuf encoding (sequence and publish time set,
//! provider record left out) and `provider_record` the encoding of the provider record. A
//! `StreamChangesResponse` is `repeated Change changes = 1; uint64 head_sequence = 2;`, so a
//! response can be written from those bytes as they are: each change is field 1 holding the
//! stored bytes, with the provider record appended as field 6 when the reader asked for it
//! (protobuf parsers accept fields in any order). [`EncodedChanges`] is that message; it
//! decodes like any other, so a client may read it as a `StreamChangesResponse`.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use syncline_proto::sync::v1::StreamChangesResponse;

/// `Change.provider_record`'s field number.
const PROVIDER_RECORD: u32 = 6;

/// One change of the log as stored: its sequence and its `Change` encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedChange {
    pub sequence: u64,
    pub bytes: Vec<u8>,
}

impl EncodedChange {
    /// The change as read from a row: `change`, then the `provider_record` column appended
    /// when the reader `wants_provider_record`. Rows written before migration 6 carry the
    /// provider record inside `change` and none in the column: it is kept when wanted and
    /// dropped otherwise.
    pub fn from_row(
        sequence: u64,
        change: Vec<u8>,
        provider_record: Option<&[u8]>,
        wants_provider_record: bool,
    ) -> Result<Self, prost::DecodeError> {
        let bytes = match (wants_provider_record, provider_record) {
            (false, _) => without_field(change, PROVIDER_RECORD)?,
            (true, None) => change,
            (true, Some(record)) => {
                let mut bytes = without_field(change, PROVIDER_RECORD)?;
                append_provider_record(&mut bytes, record);
                bytes
            }
        };
        Ok(Self { sequence, bytes })
    }
}

impl EncodedChange {
    /// A change stored by this version (its provider record, if any, in the column and
    /// never inside `change`), with `provider_record` appended when given.
    pub fn with_provider_record(
        sequence: u64,
        change: &[u8],
        provider_record: Option<&[u8]>,
    ) -> Self {
        let mut bytes =
            Vec::with_capacity(change.len() + provider_record.map_or(0, |r| r.len() + 6));
        bytes.extend_from_slice(change);
        if let Some(record) = provider_record {
            append_provider_record(&mut bytes, record);
        }
        Self { sequence, bytes }
    }
}

/// Appends `record` to a `Change` encoding as its `provider_record` field.
fn append_provider_record(bytes: &mut Vec<u8>, record: &[u8]) {
    bytes.reserve(record.len() + 6);
    encoding::encode_key(PROVIDER_RECORD, WireType::LengthDelimited, bytes);
    encoding::encode_varint(record.len() as u64, bytes);
    bytes.extend_from_slice(record);
}

/// `bytes`, a protobuf message, without its top-level occurrences of field `field`. The
/// bytes are returned as they are when the field is absent (the usual case: no copy).
pub fn without_field(bytes: Vec<u8>, field: u32) -> Result<Vec<u8>, prost::DecodeError> {
    let mut kept: Option<Vec<u8>> = None;
    let mut rest = bytes.as_slice();
    let mut start = 0;
    while rest.has_remaining() {
        let before = rest.len();
        let (tag, wire_type) = encoding::decode_key(&mut rest)?;
        encoding::skip_field(wire_type, tag, &mut rest, DecodeContext::default())?;
        let end = start + (before - rest.len());
        match (&mut kept, tag == field) {
            (None, true) => {
                let mut copy = Vec::with_capacity(bytes.len());
                copy.extend_from_slice(&bytes[..start]);
                kept = Some(copy);
            }
            (Some(copy), false) => copy.extend_from_slice(&bytes[start..end]),
            (None, false) | (Some(_), true) => {}
        }
        start = end;
    }
    Ok(kept.unwrap_or(bytes))
}

/// A `StreamChangesResponse` whose changes are already encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedChanges {
    /// Each change's `Change` encoding, in sequence order.
    pub changes: Vec<Vec<u8>>,
    /// `head_sequence`.
    pub head_sequence: u64,
}

impl EncodedChanges {
    /// The message decoded, as a client reads it.
    pub fn to_response(&self) -> Result<StreamChangesResponse, prost::DecodeError> {
        <StreamChangesResponse as prost::Message>::decode(
            prost::Message::encode_to_vec(self).as_slice(),
        )
    }
}

impl prost::Message for EncodedChanges {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for change in &self.changes {
            encoding::bytes::encode(1, change, buf);
        }
        if self.head_sequence != 0 {
            encoding::uint64::encode(2, &self.head_sequence, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => {
                let mut change = Vec::new();
                encoding::bytes::merge(wire_type, &mut change, buf, ctx)?;
                self.changes.push(change);
                Ok(())
            }
            2 => encoding::uint64::merge(wire_type, &mut self.head_sequence, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::bytes::encoded_len_repeated(1, &self.changes)
            + if self.head_sequence != 0 {
                encoding::uint64::encoded_len(2, &self.head_sequence)
            } else {
                0
            }
    }

    fn clear(&mut self) {
        self.changes.clear();
        self.head_sequence = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use syncline_proto::common::v1::Record;
    use syncline_proto::sync::v1::Change;

    fn record(id: String, name: String) -> Record {
        Record {
            id,
            object: "Contact".into(),
            fields: [("Name".to_owned(), prost_types::Value::from(name))].into(),
            ..Record::default()
        }
    }

    fn change() -> impl Strategy<Value = Change> {
        (
            1u64..u64::MAX,
            "[a-z0-9_]{0,12}",
            "[a-z0-9]{0,8}",
            "[a-z0-9 ]{0,20}",
            proptest::option::of(("[a-z0-9]{0,8}", "[a-z ]{0,12}")),
            proptest::collection::vec("[a-z_]{1,10}", 0..4),
        )
            .prop_map(
                |(sequence, connection, id, name, provider, changed)| Change {
                    sequence,
                    connection_id: connection,
                    object: "contact".into(),
                    operation: 1,
                    record: Some(record(id, name)),
                    provider_record: provider.map(|(id, name)| record(id, name)),
                    sync_run_id: "run_1".into(),
                    changed_fields: changed,
                    ..Change::default()
                },
            )
    }

    proptest! {
        #[test]
        fn a_stored_change_reads_back_with_or_without_its_provider_record(
            change in change(),
            column in proptest::option::of(("[a-z0-9]{1,8}", "[a-z ]{0,12}")),
        ) {
            use prost::Message;
            let stored = change.encode_to_vec();
            let column = column.map(|(id, name)| record(id, name));
            let column_bytes = column.as_ref().map(Message::encode_to_vec);

            let without = EncodedChange::from_row(change.sequence, stored.clone(), column_bytes.as_deref(), false).unwrap();
            let read = Change::decode(without.bytes.as_slice()).unwrap();
            prop_assert_eq!(&read, &Change { provider_record: None, ..change.clone() });

            let with = EncodedChange::from_row(change.sequence, stored, column_bytes.as_deref(), true).unwrap();
            let read = Change::decode(with.bytes.as_slice()).unwrap();
            // The column wins; a row without one keeps what `change` itself carried.
            let expected = column.or(change.provider_record.clone());
            prop_assert_eq!(read, Change { provider_record: expected, ..change });
        }

        #[test]
        fn a_response_written_from_stored_changes_decodes_as_stream_changes_response(
            changes in proptest::collection::vec(change(), 0..5),
            head in any::<u64>(),
        ) {
            use prost::Message;
            let encoded = EncodedChanges {
                changes: changes.iter().map(Message::encode_to_vec).collect(),
                head_sequence: head,
            };
            let bytes = encoded.encode_to_vec();
            prop_assert_eq!(bytes.len(), encoded.encoded_len());
            let expected = StreamChangesResponse { changes, head_sequence: head };
            prop_assert_eq!(&encoded.to_response().unwrap(), &expected);
            prop_assert_eq!(<EncodedChanges as Message>::decode(bytes.as_slice()).unwrap(), encoded);
        }

        #[test]
        fn stripping_a_field_from_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = without_field(bytes, PROVIDER_RECORD);
        }
    }
}
