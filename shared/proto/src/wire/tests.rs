use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};

use super::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(None),
        Just(Some(Kind::NullValue(0))),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |n| !n.is_nan())
            .prop_map(|n| Some(Kind::NumberValue(n))),
        ".{0,40}".prop_map(|s| Some(Kind::StringValue(s))),
        ".{200,400}".prop_map(|s| Some(Kind::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
    ]
    .prop_map(|kind| Value { kind });
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| Some(Kind::ListValue(ListValue { values }))),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|fields| Some(Kind::StructValue(Struct { fields }))),
        ]
        .prop_map(|kind| Value { kind })
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        ".{0,20}",
        ".{0,20}",
        prop::collection::btree_map(".{0,30}", value(), 0..40),
        prop::option::of((any::<i64>(), any::<i32>())),
        any::<bool>(),
    )
        .prop_map(|(object, id, fields, stamp, deleted)| Record {
            object,
            id,
            fields,
            system_modstamp: stamp.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
            deleted,
        })
}

proptest! {
    /// A `Record`'s map is sorted, so the bytes are exactly prost's.
    #[test]
    fn a_record_encodes_to_the_bytes_prost_writes(record in record()) {
        let bytes = encode_record(&record);
        prop_assert_eq!(&bytes, &record.encode_to_vec());
        prop_assert_eq!(bytes.len(), record.encoded_len());
    }

    /// Fields in any order (a mapped record's rule order), a key twice included, decode to
    /// the record whose map holds each key's last value.
    #[test]
    fn fields_in_any_order_decode_to_the_same_record(
        record in record(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..50),
    ) {
        let entries: Vec<(&String, &Value)> = record.fields.iter().collect();
        let mut written: Vec<(&str, &Value)> =
            entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // Shuffled by swaps, and some entries written again earlier (the later write wins).
        for index in &order {
            if !written.is_empty() {
                let i = index.index(written.len());
                written.swap(0, i);
            }
        }
        let mut repeated = written.clone();
        if let Some(&(key, _)) = written.first() {
            repeated.insert(0, (key, &Value { kind: Some(Kind::BoolValue(true)) }));
        }
        let parts = RecordParts {
            object: &record.object,
            id: &record.id,
            fields: repeated.iter().copied(),
            system_modstamp: record.system_modstamp.as_ref(),
            deleted: record.deleted,
        };
        let bytes = parts.encode_to_vec();
        prop_assert_eq!(bytes.len(), parts.encoded_len());
        let expected = Record {
            fields: written.iter().map(|(k, v)| ((*k).to_owned(), (*v).clone())).collect::<BTreeMap<_, _>>(),
            ..record.clone()
        };
        prop_assert_eq!(Record::decode(bytes.as_slice()).unwrap(), expected);
    }
}
