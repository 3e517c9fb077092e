use std::collections::BTreeMap;

use proptest::prelude::*;
use prost_types::value::Kind;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ ]{0,16}"
}

fn record() -> impl Strategy<Value = Record> {
    (
        text(),
        text(),
        prop::collection::btree_map(text(), text(), 0..8),
        any::<bool>(),
        prop::option::of(0_i64..4_000_000_000),
    )
        .prop_map(|(object, id, fields, deleted, stamp)| Record {
            object,
            id,
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        Value {
                            kind: Some(Kind::StringValue(v)),
                        },
                    )
                })
                .collect(),
            system_modstamp: stamp.map(|seconds| Timestamp { seconds, nanos: 0 }),
            deleted,
        })
}

fn operation() -> impl Strategy<Value = RecordOperation> {
    prop_oneof![
        Just(RecordOperation::Create),
        Just(RecordOperation::Update),
        Just(RecordOperation::Delete),
    ]
}

fn decode(bytes: &[u8]) -> Change {
    Change::decode(bytes).expect("the stored bytes decode as a Change")
}

proptest! {
    /// A change given to an append is stored as itself, with the append's sequence and publish
    /// time, its provider record in the column.
    #[test]
    fn an_appended_change_is_stored_with_its_sequence_and_publish_time(
        connection_id in "[a-z0-9_]{1,12}",
        object in "[a-z]{1,8}",
        operation in operation(),
        record in prop::option::of(record()),
        provider in prop::option::of(record()),
        sync_run_id in "[a-z0-9_]{0,8}",
        changed_fields in prop::collection::vec("[a-z_]{1,8}", 0..3),
        given_sequence in any::<u64>(),
        sequence in 1_u64..u64::MAX,
        seconds in 0_i64..4_000_000_000,
    ) {
        let change = Change {
            sequence: given_sequence,
            connection_id,
            object,
            operation: operation as i32,
            record,
            provider_record: provider.clone(),
            publish_time: Some(Timestamp { seconds: 1, nanos: 0 }),
            sync_run_id,
            changed_fields,
        };
        let prepared = PreparedChange::from_change(change.clone());
        prop_assert_eq!(&prepared.connection_id, &change.connection_id);
        prop_assert_eq!(&prepared.object, &change.object);
        let publish_time = Timestamp { seconds, nanos: 7 };
        let stored = prepared.into_stored(sequence, &publish_time);
        prop_assert_eq!(stored.sequence, sequence);
        prop_assert_eq!(decode(&stored.change), Change {
            sequence,
            publish_time: Some(publish_time),
            provider_record: None,
            ..change
        });
        let column = stored.provider_record.as_deref().map(|b| Record::decode(b).unwrap());
        prop_assert_eq!(column, provider);
    }

    /// A sync's change, encoded from the record's parts in any field order, decodes to the
    /// change built from the record.
    #[test]
    fn a_mapped_change_decodes_to_the_change_built_from_its_record(
        record in record(),
        provider in record(),
        reversed in any::<bool>(),
        operation in operation(),
        sequence in 1_u64..u64::MAX,
    ) {
        let mut fields: Vec<(&str, &Value)> =
            record.fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        if reversed {
            fields.reverse();
        }
        let parts = RecordParts {
            object: &record.object,
            id: &record.id,
            fields: fields.iter().copied(),
            system_modstamp: record.system_modstamp.as_ref(),
            deleted: record.deleted,
        };
        let mut prepared = PreparedChange::mapped("conn_1", "contact", "run_1", &parts, Some(&provider));
        prepared.operation = operation;
        let publish_time = Timestamp { seconds: 1_700_000_000, nanos: 0 };
        let stored = prepared.into_stored(sequence, &publish_time);
        prop_assert_eq!(decode(&stored.change), Change {
            sequence,
            connection_id: "conn_1".into(),
            object: "contact".into(),
            operation: operation as i32,
            record: Some(Record {
                fields: record.fields.clone().into_iter().collect::<BTreeMap<_, _>>(),
                ..record.clone()
            }),
            provider_record: None,
            publish_time: Some(publish_time),
            sync_run_id: "run_1".into(),
            changed_fields: Vec::new(),
        });
        prop_assert_eq!(
            Record::decode(stored.provider_record.as_deref().unwrap()).unwrap(),
            provider
        );
    }
}
