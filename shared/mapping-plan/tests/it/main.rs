//! Properties of compiled plans: invertible transforms round-trip, unmapped fields are
//! never written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use prost_types::Value;
use prost_types::value::Kind;
use syncline_mapping_plan::CompiledPlan;
use syncline_mapping_plan::transform::{self, Step, compile, list, number, string};
use syncline_proto::common::v1::Record;
use syncline_proto::mapping::v1::transform as pb;
use syncline_proto::mapping::v1::{
    CompiledFieldRule, MappingPlan, ObjectPlan, Transform, WriteGuard,
};
use syncline_proto::schema::v1::FieldType;

fn step(kind: pb::Kind) -> Step {
    compile(&Transform { kind: Some(kind) }).unwrap()
}

fn text(v: &Value) -> String {
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn date(input: &str, output: &str, zone: &str) -> Step {
    step(pb::Kind::FormatDate(pb::FormatDate {
        input_format: input.into(),
        output_format: output.into(),
        time_zone: zone.into(),
    }))
}

fn rule(source: &str, target: &str, transforms: Vec<Transform>) -> CompiledFieldRule {
    CompiledFieldRule {
        source_fields: vec![source.into()],
        target_field: target.into(),
        target_type: FieldType::Unspecified as i32,
        transforms,
        ..CompiledFieldRule::default()
    }
}

fn record(object: &str, fields: impl IntoIterator<Item = (String, Value)>) -> Record {
    Record {
        object: object.into(),
        id: "1".into(),
        fields: fields.into_iter().collect(),
        ..Record::default()
    }
}

/// A scalar JSON-like value.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(transform::null()),
        any::<bool>().prop_map(transform::boolean),
        (-1e9f64..1e9).prop_map(number),
        ".{0,12}".prop_map(string),
    ]
}

proptest! {
    #[test]
    fn bijective_picklist_maps_round_trip(
        pairs in proptest::collection::btree_map("[A-Za-z ]{1,8}", "[a-z_]{1,8}", 1..8),
        pick in any::<proptest::sample::Index>(),
    ) {
        // Keep only a bijection: drop pairs whose target repeats.
        let mut inverse = BTreeMap::new();
        for (k, v) in &pairs {
            inverse.entry(v.clone()).or_insert_with(|| k.clone());
        }
        let forward: HashMap<String, String> =
            inverse.iter().map(|(v, k)| (k.clone(), v.clone())).collect();
        let backward: HashMap<String, String> = inverse.clone().into_iter().collect();
        let there = step(pb::Kind::PicklistMap(pb::PicklistMap {
            values: forward.clone(),
            unmapped: pb::UnmappedValue::Reject as i32,
            default_value: String::new(),
        }));
        let back = step(pb::Kind::PicklistMap(pb::PicklistMap {
            values: backward,
            unmapped: pb::UnmappedValue::Reject as i32,
            default_value: String::new(),
        }));
        let keys: Vec<&String> = forward.keys().collect();
        let original = keys[pick.index(keys.len())].clone();
        let mapped = there.apply(string(original.clone())).unwrap();
        prop_assert_eq!(text(&back.apply(mapped).unwrap()), original);
    }

    #[test]
    fn case_changes_round_trip_where_invertible(word in "[a-z]{0,12}( [a-z]{1,12}){0,3}") {
        let upper = step(pb::Kind::ChangeCase(pb::ChangeCase { case: pb::Case::Upper as i32 }));
        let lower = step(pb::Kind::ChangeCase(pb::ChangeCase { case: pb::Case::Lower as i32 }));
        let title = step(pb::Kind::ChangeCase(pb::ChangeCase { case: pb::Case::Title as i32 }));
        let up = upper.apply(string(word.clone())).unwrap();
        prop_assert_eq!(text(&lower.apply(up).unwrap()), word.clone());
        let titled = title.apply(string(word.clone())).unwrap();
        prop_assert_eq!(text(&lower.apply(titled).unwrap()), word);
    }

    #[test]
    fn dates_round_trip_through_a_pattern(days in 0i64..80_000, secs in 0u32..86_400, offset_h in -12i32..=12) {
        let day = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Days::new(days as u64);
        let iso = day.format("%Y-%m-%d").to_string();
        let to_us = date("", "%m/%d/%Y", "");
        let from_us = date("%m/%d/%Y", "", "");
        let us = to_us.apply(string(iso.clone())).unwrap();
        prop_assert_eq!(text(&from_us.apply(us).unwrap()), iso);

        let zone = format!("{}{:02}:00", if offset_h < 0 { '-' } else { '+' }, offset_h.abs());
        let instant = day.and_hms_opt(secs / 3600, (secs / 60) % 60, secs % 60).unwrap().and_utc();
        let rfc = instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let local = date("", "%Y-%m-%d %H:%M:%S %z", &zone).apply(string(rfc.clone())).unwrap();
        let back = date("%Y-%m-%d %H:%M:%S %z", "", "").apply(local).unwrap();
        prop_assert_eq!(text(&back), rfc);
    }

    #[test]
    fn salesforce_datetimes_become_the_same_instant_in_rfc_3339(
        secs in 0i64..4_000_000_000, millis in 0u32..1000, offset_min in -720i32..=840,
    ) {
        let instant = chrono::DateTime::from_timestamp(secs, millis * 1_000_000).unwrap();
        let zone = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
        // Salesforce's shape: milliseconds and a basic-format offset (`+0000`).
        let written = instant.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
        let got = text(&transform::coerce(string(written.clone()), FieldType::Datetime).unwrap());
        let read = chrono::DateTime::parse_from_rfc3339(&got).unwrap();
        prop_assert_eq!(read, instant, "{} -> {}", written, got);
        prop_assert!(got.ends_with('Z'), "{got}");
        // RFC 3339 text is kept exactly as sent.
        let rfc = instant.with_timezone(&zone).to_rfc3339();
        prop_assert_eq!(text(&transform::coerce(string(rfc.clone()), FieldType::Datetime).unwrap()), rfc);
    }

    #[test]
    fn numeric_date_patterns_read_and_write_like_chrono(
        days in 0i64..3_000_000,
        pattern in prop_oneof![Just("%m/%d/%Y"), Just("%d.%m.%Y"), Just("%Y%m%d"), Just("%Y-%m-%d"), Just("%d %m %Y")],
        junk in "[0-9/. -]{0,12}",
    ) {
        let day = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Days::new(days as u64);
        let written = day.format(pattern).to_string();
        let read = date(pattern, "", "").apply(string(written.clone())).unwrap();
        prop_assert_eq!(text(&read), day.format("%Y-%m-%d").to_string());
        let iso = day.format("%Y-%m-%d").to_string();
        let out = date("", pattern, "").apply(string(iso)).unwrap();
        prop_assert_eq!(text(&out), written);
        // Whatever the fast reader refuses, chrono's parser still decides.
        let expected = chrono::NaiveDate::parse_from_str(&junk, pattern).ok();
        let got = date(pattern, "", "").apply(string(junk.clone()));
        match expected {
            Some(d) if !junk.is_empty() => prop_assert_eq!(text(&got.unwrap()), d.format("%Y-%m-%d").to_string()),
            _ => prop_assert!(junk.is_empty() || got.is_err(), "{junk:?} -> {got:?}"),
        }
    }

    #[test]
    fn percent_scaling_round_trips_at_its_precision(cents in -10_000_000i64..10_000_000) {
        let fraction = cents as f64 / 10_000.0; // e.g. 0.1234 = 12.34 %
        let to_percent = step(pb::Kind::FormatNumber(pb::FormatNumber {
            multiplier: 100.0, decimal_places: Some(2), rounding: 0, as_string: true,
        }));
        let to_fraction = step(pb::Kind::FormatNumber(pb::FormatNumber {
            multiplier: 0.01, decimal_places: Some(4), rounding: 0, as_string: false,
        }));
        let percent = to_percent.apply(number(fraction)).unwrap();
        let back = to_fraction.apply(percent).unwrap();
        prop_assert_eq!(back, number(fraction));
    }

    #[test]
    fn split_inverts_concatenate(parts in proptest::collection::vec("[^|]{0,8}", 1..6), sep in "[|]{1,2}") {
        let join = step(pb::Kind::Concatenate(pb::Concatenate { separator: sep.clone(), skip_empty: false }));
        let joined = join.apply(list(parts.iter().cloned().map(string).collect())).unwrap();
        for (i, part) in parts.iter().enumerate() {
            // A separator of `||` could also occur across two `|`-free parts only if a part
            // were empty next to another `|`: parts hold no `|`, so the split is exact.
            let split = step(pb::Kind::Split(pb::Split { separator: sep.clone(), index: i as i32 }));
            prop_assert_eq!(text(&split.apply(joined.clone()).unwrap()), part.clone());
        }
    }

    #[test]
    fn unmapped_fields_are_never_written(
        mapped in proptest::collection::btree_map("[a-z]{1,6}", scalar(), 0..6),
        extra in proptest::collection::btree_map("[A-Z_]{1,10}", scalar(), 0..10),
    ) {
        let rules: Vec<CompiledFieldRule> = mapped
            .keys()
            .map(|k| rule(k, &format!("m_{k}"), vec![]))
            .collect();
        let plan = CompiledPlan::compile(&MappingPlan {
            objects: vec![ObjectPlan {
                object: "contact".into(),
                provider_object: "Contact".into(),
                inbound: rules,
                ..ObjectPlan::default()
            }],
            ..MappingPlan::default()
        })
        .unwrap();
        let with_extra = record(
            "Contact",
            mapped.clone().into_iter().chain(extra.clone()),
        );
        let without = record("Contact", mapped.clone());
        let out = plan.apply_inbound(&with_extra).unwrap();
        for (name, _) in &out.fields {
            prop_assert!(name.starts_with("m_"), "wrote unmapped field {name}");
            prop_assert!(mapped.contains_key(&name[2..]));
        }
        prop_assert_eq!(&out, &plan.apply_inbound(&without).unwrap());
        // Moving values out of an owned record maps the same.
        let object = plan.object("contact").unwrap();
        prop_assert_eq!(&out, &object.apply_inbound_owned(with_extra));
    }

    #[test]
    fn owned_and_borrowed_application_agree_with_shared_and_multi_source_rules(
        first in scalar(), last in scalar(), keep_last in any::<bool>(),
    ) {
        let join = Transform {
            kind: Some(pb::Kind::Concatenate(pb::Concatenate { separator: " ".into(), skip_empty: true })),
        };
        let plan = CompiledPlan::compile(&MappingPlan {
            objects: vec![ObjectPlan {
                object: "contact".into(),
                provider_object: "Contact".into(),
                inbound: vec![
                    rule("First", "first", vec![]),
                    CompiledFieldRule {
                        source_fields: vec!["First".into(), "Last".into()],
                        ..rule("x", "full", vec![join])
                    },
                    rule("Last", "last", vec![]),
                ],
                ..ObjectPlan::default()
            }],
            ..MappingPlan::default()
        })
        .unwrap();
        let mut fields = vec![("First".to_owned(), first)];
        if keep_last {
            fields.push(("Last".to_owned(), last));
        }
        let input = record("Contact", fields);
        let object = plan.object("contact").unwrap();
        prop_assert_eq!(object.apply_inbound(&input), object.apply_inbound_owned(input));
    }

    #[test]
    fn invertible_plans_round_trip_whole_records(
        email in "[a-z]{1,8}@[a-z]{1,8}\\.com",
        status in prop_oneof![Just("Open"), Just("Closed")],
        day in 0u64..40_000,
    ) {
        let picklist = |pairs: &[(&str, &str)]| Transform {
            kind: Some(pb::Kind::PicklistMap(pb::PicklistMap {
                values: pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
                unmapped: pb::UnmappedValue::Reject as i32,
                default_value: String::new(),
            })),
        };
        let date_t = |i: &str, o: &str| Transform {
            kind: Some(pb::Kind::FormatDate(pb::FormatDate {
                input_format: i.into(), output_format: o.into(), time_zone: String::new(),
            })),
        };
        let plan = CompiledPlan::compile(&MappingPlan {
            objects: vec![ObjectPlan {
                object: "ticket".into(),
                provider_object: "Case".into(),
                inbound: vec![
                    rule("Email", "email", vec![]),
                    rule("Status", "status", vec![picklist(&[("Open", "open"), ("Closed", "closed")])]),
                    rule("Due", "due", vec![date_t("%d/%m/%Y", "")]),
                ],
                outbound: vec![
                    rule("email", "Email", vec![]),
                    rule("status", "Status", vec![picklist(&[("open", "Open"), ("closed", "Closed")])]),
                    rule("due", "Due", vec![date_t("", "%d/%m/%Y")]),
                ],
                ..ObjectPlan::default()
            }],
            ..MappingPlan::default()
        })
        .unwrap();
        let due = (chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Days::new(day))
            .format("%d/%m/%Y")
            .to_string();
        let provider = record("Case", [
            ("Email".to_owned(), string(email)),
            ("Status".to_owned(), string(status)),
            ("Due".to_owned(), string(due)),
        ]);
        let model = plan.apply_inbound(&provider).unwrap();
        prop_assert!(model.errors.is_empty());
        // What a sync stores (encoded from the rule-ordered parts) is the record itself.
        let stored = model.record_parts().encode_to_vec();
        prop_assert_eq!(
            <Record as prost::Message>::decode(stored.as_slice()).unwrap(),
            model.clone().into_record()
        );
        let back = plan.apply_outbound(&model.into_record()).unwrap().into_record();
        prop_assert_eq!(back.fields, provider.fields);
    }
}

#[test]
fn times_of_day_are_read_with_and_without_utc_s_z() {
    for sent in ["13:30:00", "13:30:00.000", "13:30:00.000Z", "08:05:09.250Z"] {
        let kept = transform::coerce(string(sent), FieldType::Time).unwrap();
        assert_eq!(text(&kept), sent, "a time is kept as sent");
        let at = transform::coerce(string(sent), FieldType::Datetime);
        assert!(at.is_err(), "a time alone is no datetime: {sent} -> {at:?}");
    }
    assert!(transform::coerce(string("25:00:00Z"), FieldType::Time).is_err());
}

#[test]
fn a_failing_field_is_reported_and_left_out() {
    let plan = CompiledPlan::compile(&MappingPlan {
        objects: vec![ObjectPlan {
            object: "deal".into(),
            provider_object: "Opportunity".into(),
            inbound: vec![
                CompiledFieldRule {
                    target_type: FieldType::Integer as i32,
                    ..rule("Amount", "amount", vec![])
                },
                rule("Name", "name", vec![]),
            ],
            ..ObjectPlan::default()
        }],
        ..MappingPlan::default()
    })
    .unwrap();
    let out = plan
        .apply_inbound(&record(
            "Opportunity",
            [
                ("Amount".to_owned(), string("12.5")),
                ("Name".to_owned(), string("Big")),
            ],
        ))
        .unwrap();
    assert_eq!(out.get("name"), Some(&string("Big")));
    assert!(out.get("amount").is_none());
    assert_eq!(out.errors.len(), 1);
    assert_eq!(&*out.errors[0].field, "amount");
    assert!(out.errors[0].message.contains("whole number"));
}

#[test]
fn malformed_rules_fail_compilation_naming_the_rule() {
    let bad = |rule: CompiledFieldRule| {
        CompiledPlan::compile(&MappingPlan {
            objects: vec![ObjectPlan {
                object: "contact".into(),
                inbound: vec![rule],
                ..ObjectPlan::default()
            }],
            ..MappingPlan::default()
        })
        .unwrap_err()
    };
    let several = bad(CompiledFieldRule {
        source_fields: vec!["FirstName".into(), "LastName".into()],
        ..rule("x", "name", vec![])
    });
    assert!(several.message.contains("concatenate"), "{several}");
    let split = bad(rule(
        "Name",
        "first",
        vec![Transform {
            kind: Some(pb::Kind::Split(pb::Split {
                separator: String::new(),
                index: 0,
            })),
        }],
    ));
    assert_eq!(split.target_field, "first");
    assert!(split.to_string().contains("separator"));
}

#[test]
fn default_fills_a_missing_source_and_absent_fields_are_skipped() {
    let plan = CompiledPlan::compile(&MappingPlan {
        objects: vec![ObjectPlan {
            object: "contact".into(),
            provider_object: "Contact".into(),
            inbound: vec![
                rule(
                    "LeadSource",
                    "source",
                    vec![Transform {
                        kind: Some(pb::Kind::DefaultValue(pb::DefaultValue {
                            value: Some(string("web")),
                        })),
                    }],
                ),
                rule("Phone", "phone", vec![]),
            ],
            ..ObjectPlan::default()
        }],
        ..MappingPlan::default()
    })
    .unwrap();
    let out = plan.apply_inbound(&record("Contact", [])).unwrap();
    assert_eq!(out.fields.len(), 1);
    assert_eq!(out.get("source"), Some(&string("web")));
}

/// A contact plan whose outbound rules carry each write guard: `email` if empty,
/// `source` on create, `name` always.
fn guarded_plan() -> CompiledPlan {
    let guarded = |source: &str, target: &str, guard: WriteGuard| CompiledFieldRule {
        write_guard: guard as i32,
        ..rule(source, target, vec![])
    };
    CompiledPlan::compile(&MappingPlan {
        objects: vec![ObjectPlan {
            object: "contact".into(),
            provider_object: "Contact".into(),
            outbound: vec![
                guarded("email", "Email", WriteGuard::IfEmpty),
                guarded("source", "LeadSource", WriteGuard::OnCreate),
                guarded("name", "LastName", WriteGuard::Always),
            ],
            ..ObjectPlan::default()
        }],
        ..MappingPlan::default()
    })
    .unwrap()
}

fn model_contact() -> Record {
    record(
        "contact",
        [
            ("email".to_owned(), string("new@example.com")),
            ("source".to_owned(), string("web")),
            ("name".to_owned(), string("Lovelace")),
        ],
    )
}

#[test]
fn write_guards_apply_on_create_and_on_update() {
    let plan = guarded_plan();
    let created = plan.apply_outbound_guarded(&model_contact(), None).unwrap();
    assert_eq!(
        created.fields.len(),
        3,
        "a create writes every guarded field"
    );
    assert!(created.skipped.is_empty());

    let existing = record(
        "Contact",
        [
            ("Email".to_owned(), string("old@example.com")),
            ("LeadSource".to_owned(), transform::null()),
        ],
    );
    let updated = plan
        .apply_outbound_guarded(&model_contact(), Some(&existing))
        .unwrap();
    assert_eq!(updated.get("LastName"), Some(&string("Lovelace")));
    assert!(updated.get("Email").is_none(), "if_empty keeps a value");
    assert!(
        updated.get("LeadSource").is_none(),
        "on_create never updates"
    );
    let skipped: Vec<&str> = updated.skipped.iter().map(|s| &**s).collect();
    assert_eq!(skipped, ["Email", "LeadSource"]);

    let empty = record("Contact", [("Email".to_owned(), string(""))]);
    let filled = plan
        .apply_outbound_guarded(&model_contact(), Some(&empty))
        .unwrap();
    assert_eq!(filled.get("Email"), Some(&string("new@example.com")));

    let must_read: Vec<&str> = plan
        .object("contact")
        .unwrap()
        .rules(syncline_mapping_plan::Direction::Outbound)
        .if_empty_targets()
        .collect();
    assert_eq!(must_read, ["Email"], "what a worker reads before an update");

    // The unguarded apply (previews, plans without guards) writes everything.
    let unguarded = plan.apply_outbound(&model_contact()).unwrap();
    assert_eq!(unguarded.fields.len(), 3);
    let owned = plan
        .object("contact")
        .unwrap()
        .apply_outbound_guarded_owned(model_contact(), Some(&existing));
    assert_eq!(owned.fields, updated.fields);
}

/// A CRM value as it may be found: absent, null, empty or not.
fn crm_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(transform::null())),
        Just(Some(string(""))),
        scalar().prop_map(Some),
        Just(Some(list(vec![]))),
        proptest::collection::vec(scalar(), 1..3).prop_map(|v| Some(list(v))),
    ]
}

fn is_empty(value: Option<&Value>) -> bool {
    match value.and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => true,
        Some(Kind::StringValue(s)) => s.is_empty(),
        Some(Kind::ListValue(l)) => l.values.is_empty(),
        Some(_) => false,
    }
}

proptest! {
    #[test]
    fn a_guarded_field_is_never_written_over_a_non_empty_existing_value(
        email in crm_value(),
        source in crm_value(),
        name in crm_value(),
        incoming in proptest::collection::vec(scalar(), 3),
        exists in any::<bool>(),
    ) {
        let plan = guarded_plan();
        let model = record(
            "contact",
            ["email", "source", "name"]
                .iter()
                .zip(incoming)
                .map(|(k, v)| ((*k).to_owned(), v)),
        );
        let existing = record(
            "Contact",
            [("Email", email), ("LeadSource", source), ("LastName", name)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
        );
        let out = plan
            .apply_outbound_guarded(&model, exists.then_some(&existing))
            .unwrap();
        if exists {
            prop_assert!(out.get("LeadSource").is_none(), "on_create wrote on an update");
            if !is_empty(existing.fields.get("Email")) {
                prop_assert!(out.get("Email").is_none(), "if_empty overwrote {:?}", existing.fields.get("Email"));
            } else {
                prop_assert!(out.get("Email").is_some());
            }
        } else {
            prop_assert_eq!(out.fields.len(), 3, "a create writes every field");
        }
        // `always` writes whatever exists; nothing is both written and skipped.
        prop_assert!(out.get("LastName").is_some());
        for skipped in &out.skipped {
            prop_assert!(out.get(skipped).is_none());
        }
    }
}

#[test]
fn a_plan_drift_broke_does_not_compile() {
    let broken = MappingPlan {
        objects: vec![ObjectPlan {
            object: "project".into(),
            provider_object: "Project__c".into(),
            inbound: vec![rule("Deal_Risk_Score__c", "risk", vec![])],
            ..ObjectPlan::default()
        }],
        drift_violations: vec![syncline_proto::mapping::v1::FieldMappingViolation {
            object: "project".into(),
            mapping_index: -1,
            provider_field: "Deal_Risk_Score__c".into(),
            ..Default::default()
        }],
        ..MappingPlan::default()
    };
    let error = CompiledPlan::compile(&broken).unwrap_err();
    assert!(
        error.to_string().contains("project.Deal_Risk_Score__c"),
        "{error}"
    );
    let fine = MappingPlan {
        drift_violations: Vec::new(),
        ..broken
    };
    assert!(CompiledPlan::compile(&fine).is_ok());
}

#[test]
fn compile_without_broken_leaves_out_only_the_rules_drift_broke() {
    let record = |fields: &[(&str, &str)]| Record {
        object: "Project__c".into(),
        id: "a01".into(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), string(*v)))
            .collect(),
        ..Record::default()
    };
    let plan = MappingPlan {
        objects: vec![ObjectPlan {
            object: "project".into(),
            provider_object: "Project__c".into(),
            inbound: vec![
                rule("Name", "name", vec![]),
                rule("Deal_Risk_Score__c", "risk", vec![]),
            ],
            outbound: vec![
                rule("name", "Name", vec![]),
                rule("risk", "Deal_Risk_Score__c", vec![]),
            ],
            ..ObjectPlan::default()
        }],
        drift_violations: vec![syncline_proto::mapping::v1::FieldMappingViolation {
            object: "project".into(),
            mapping_index: -1,
            model_field: "risk".into(),
            provider_field: "Deal_Risk_Score__c".into(),
            kind: syncline_proto::mapping::v1::ViolationKind::ProviderFieldUnknown as i32,
            message: "inbound: `Deal_Risk_Score__c` is gone".into(),
        }],
        ..MappingPlan::default()
    };
    assert!(
        CompiledPlan::compile(&plan).is_err(),
        "compile still refuses it"
    );
    let (compiled, broken) = CompiledPlan::compile_without_broken(&plan).unwrap();
    let left_out: Vec<(syncline_mapping_plan::Direction, Vec<String>)> = broken
        .iter()
        .map(|b| (b.direction, b.provider_fields.clone()))
        .collect();
    assert_eq!(
        left_out,
        vec![
            (
                syncline_mapping_plan::Direction::Inbound,
                vec!["Deal_Risk_Score__c".to_owned()]
            ),
            (
                syncline_mapping_plan::Direction::Outbound,
                vec!["Deal_Risk_Score__c".to_owned()]
            ),
        ]
    );
    assert!(broken.iter().all(|b| b.broken_field == "Deal_Risk_Score__c"
        && b.kind == syncline_proto::mapping::v1::ViolationKind::ProviderFieldUnknown));
    let object = compiled.object("project").unwrap();
    assert_eq!(
        object
            .rules(syncline_mapping_plan::Direction::Inbound)
            .source_fields(),
        ["Name".to_owned()]
    );
    let mapped = object.apply_inbound(&record(&[("Name", "Apollo"), ("Deal_Risk_Score__c", "9")]));
    assert_eq!(mapped.fields.len(), 1);
    assert_eq!(text(mapped.get("name").unwrap()), "Apollo");
    assert!(mapped.errors.is_empty());

    // Without violations nothing is left out.
    let fine = MappingPlan {
        drift_violations: Vec::new(),
        ..plan.clone()
    };
    let (compiled, broken) = CompiledPlan::compile_without_broken(&fine).unwrap();
    assert!(broken.is_empty());
    assert_eq!(
        compiled
            .object("project")
            .unwrap()
            .rules(syncline_mapping_plan::Direction::Inbound)
            .source_fields(),
        ["Name".to_owned(), "Deal_Risk_Score__c".to_owned()]
    );

    // The CRM object itself gone: every rule of the object is left out.
    let gone = MappingPlan {
        drift_violations: vec![syncline_proto::mapping::v1::FieldMappingViolation {
            object: "project".into(),
            mapping_index: -1,
            ..Default::default()
        }],
        ..plan
    };
    let (compiled, broken) = CompiledPlan::compile_without_broken(&gone).unwrap();
    assert_eq!(broken.len(), 4);
    assert!(
        compiled
            .object("project")
            .unwrap()
            .rules(syncline_mapping_plan::Direction::Inbound)
            .source_fields()
            .is_empty()
    );
}
