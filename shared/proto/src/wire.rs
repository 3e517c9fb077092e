//! `syncline.common.v1.Record` written straight to protobuf bytes, for the hot path of a sync
//! (every record read is encoded once as the provider record and once mapped).
//!
//! prost encodes a `map<string, Value>` generically: each entry's length is computed again
//! at every level (the record's length, the entry's, the value's) and every key and value is
//! compared with its default first. Here each value's length is computed once per pass and
//! the fields may come from any iterator, so a mapped record is encoded from its rule-ordered
//! fields without first building the `BTreeMap` of a `Record`. The bytes decode to the same
//! `Record`; for a `Record`'s own map (sorted) they are the bytes prost writes.

use prost::Message;
use prost::encoding::{self, WireType};
use prost_types::{Timestamp, Value};

use crate::common::v1::Record;

/// The parts of a record, borrowed; `fields` is iterated twice (lengths, then bytes).
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a, F> {
    /// `Record.object`.
    pub object: &'a str,
    /// `Record.id`.
    pub id: &'a str,
    /// `Record.fields`' entries, in the order they are written. A key given twice decodes
    /// to its last value, as in any protobuf map.
    pub fields: F,
    /// `Record.system_modstamp`.
    pub system_modstamp: Option<&'a Timestamp>,
    /// `Record.deleted`.
    pub deleted: bool,
}

impl<'a, F> RecordParts<'a, F>
where
    F: Iterator<Item = (&'a str, &'a Value)> + Clone,
{
    /// The length of the encoded record.
    pub fn encoded_len(&self) -> usize {
        let mut len = string_len(1, self.object) + string_len(2, self.id);
        for (key, value) in self.fields.clone() {
            len += delimited_len(3, entry_len(key, value.encoded_len()));
        }
        if let Some(stamp) = self.system_modstamp {
            len += delimited_len(4, stamp.encoded_len());
        }
        if self.deleted {
            len += 2;
        }
        len
    }

    /// Appends the record's encoding (without a length prefix) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        if !self.object.is_empty() {
            encode_str(1, self.object, buf);
        }
        if !self.id.is_empty() {
            encode_str(2, self.id, buf);
        }
        for (key, value) in self.fields.clone() {
            let value_len = value.encoded_len();
            encoding::encode_key(3, WireType::LengthDelimited, buf);
            encoding::encode_varint(entry_len(key, value_len) as u64, buf);
            if !key.is_empty() {
                encode_str(1, key, buf);
            }
            if value.kind.is_some() {
                encoding::encode_key(2, WireType::LengthDelimited, buf);
                encoding::encode_varint(value_len as u64, buf);
                value.encode_raw(buf);
            }
        }
        if let Some(stamp) = self.system_modstamp {
            encoding::message::encode(4, stamp, buf);
        }
        if self.deleted {
            encoding::bool::encode(5, &true, buf);
        }
    }

    /// The record's encoding, in a buffer of exactly its length.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf
    }
}

/// `record` encoded: the bytes `record.encode_to_vec()` gives, computed in fewer passes.
pub fn encode_record(record: &Record) -> Vec<u8> {
    RecordParts {
        object: &record.object,
        id: &record.id,
        fields: record.fields.iter().map(|(k, v)| (k.as_str(), v)),
        system_modstamp: record.system_modstamp.as_ref(),
        deleted: record.deleted,
    }
    .encode_to_vec()
}

fn encode_str(tag: u32, value: &str, buf: &mut Vec<u8>) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value.as_bytes());
}

/// A map entry's length: the key unless empty, the value unless it has no kind (prost's
/// defaults, left out as prost leaves them out).
fn entry_len(key: &str, value_len: usize) -> usize {
    let key = if key.is_empty() {
        0
    } else {
        delimited_len(1, key.len())
    };
    let value = if value_len == 0 {
        0
    } else {
        delimited_len(2, value_len)
    };
    key + value
}

/// A non-empty string field's length (0 when empty: proto3 leaves it out).
fn string_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        delimited_len(tag, value.len())
    }
}

/// A length-delimited field of `len` bytes, with its key and length prefix.
fn delimited_len(tag: u32, len: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests;
