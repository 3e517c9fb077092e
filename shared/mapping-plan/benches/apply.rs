//! Applies a compiled plan to records of 50 fields and prints records per second (the
//! median of several runs), on one thread.
//!
//! `cargo bench -p syncline-mapping-plan --bench apply`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use prost_types::Value;
use syncline_mapping_plan::CompiledPlan;
use syncline_mapping_plan::transform::{number, string};
use syncline_proto::common::v1::Record;
use syncline_proto::mapping::v1::transform as pb;
use syncline_proto::mapping::v1::{CompiledFieldRule, MappingPlan, ObjectPlan, Transform};
use syncline_proto::schema::v1::FieldType;

const FIELDS: usize = 50;
/// One batch, as a sync worker maps it right after reading a page from the CRM.
const BATCH: usize = 200;
/// Batches per run.
const BATCHES: usize = 500;
const RUNS: usize = 7;

fn t(kind: pb::Kind) -> Transform {
    Transform { kind: Some(kind) }
}

/// A realistic mix: mostly plain text copies, some coercions, a picklist map, a case change,
/// a date re-format and a number format (one transform-heavy field in five).
fn plan() -> MappingPlan {
    let inbound = (0..FIELDS)
        .map(|i| {
            let (ty, transforms) = match i % 10 {
                0 => (FieldType::Integer, vec![]),
                1 => (
                    FieldType::Picklist,
                    vec![t(pb::Kind::PicklistMap(pb::PicklistMap {
                        values: [("Hot", "hot"), ("Warm", "warm"), ("Cold", "cold")]
                            .map(|(a, b)| (a.to_owned(), b.to_owned()))
                            .into(),
                        unmapped: pb::UnmappedValue::PassThrough as i32,
                        default_value: String::new(),
                    }))],
                ),
                2 => (
                    FieldType::Date,
                    vec![t(pb::Kind::FormatDate(pb::FormatDate {
                        input_format: "%m/%d/%Y".into(),
                        ..Default::default()
                    }))],
                ),
                3 => (
                    FieldType::Decimal,
                    vec![t(pb::Kind::FormatNumber(pb::FormatNumber {
                        multiplier: 100.0,
                        decimal_places: Some(2),
                        ..Default::default()
                    }))],
                ),
                4 => (
                    FieldType::Email,
                    vec![t(pb::Kind::ChangeCase(pb::ChangeCase {
                        case: pb::Case::Lower as i32,
                    }))],
                ),
                _ => (FieldType::String, vec![]),
            };
            CompiledFieldRule {
                source_fields: vec![format!("Provider_Field_{i}__c")],
                target_field: format!("model_field_{i}"),
                target_type: ty as i32,
                transforms,
                ..CompiledFieldRule::default()
            }
        })
        .collect();
    MappingPlan {
        connection_id: "conn_bench".into(),
        plan_version: 1,
        objects: vec![ObjectPlan {
            object: "contact".into(),
            provider_object: "Contact".into(),
            inbound,
            ..ObjectPlan::default()
        }],
        ..MappingPlan::default()
    }
}

fn value(i: usize, n: usize) -> Value {
    match i % 10 {
        0 => number((n * 7 + i) as f64),
        1 => string(["Hot", "Warm", "Cold", "Other"][n % 4]),
        2 => string(format!(
            "{:02}/{:02}/20{:02}",
            n % 12 + 1,
            n % 28 + 1,
            n % 30
        )),
        3 => number(n as f64 / 1000.0),
        4 => string(format!("Person.{n}@Example.COM")),
        _ => string(format!("value {n} of field {i}")),
    }
}

fn records() -> Vec<Record> {
    (0..BATCH)
        .map(|n| Record {
            object: "Contact".into(),
            id: format!("003{n:015}"),
            // Plus 10 fields no rule reads, as a CRM record has.
            fields: (0..FIELDS + 10)
                .map(|i| (format!("Provider_Field_{i}__c"), value(i, n)))
                .collect(),
            ..Record::default()
        })
        .collect()
}

/// Nanoseconds this thread has run on a CPU (from /proc/thread-self/schedstat), so that
/// other work on a shared machine does not count; `None` where unavailable.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `work` and returns (records/s by wall clock, records/s by this thread's CPU time).
fn measure(records: f64, work: impl FnOnce()) -> (f64, f64) {
    let cpu = cpu_ns();
    let start = Instant::now();
    work();
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => wall,
    };
    (records / wall, records / cpu)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let plan = CompiledPlan::compile(&plan()).expect("the bench plan compiles");
    let object = plan.object("contact").expect("contact");
    let input = records();
    let check = object.apply_inbound(&input[0]);
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    assert_eq!(check.fields.len(), FIELDS);

    let mut mapped = Vec::new();
    let mut as_records = Vec::new();
    let total = (BATCH * BATCHES) as f64;
    for _ in 0..RUNS {
        mapped.push(measure(total, || {
            for _ in 0..BATCHES {
                for record in &input {
                    black_box(object.apply_inbound(black_box(record)));
                }
            }
        }));
        as_records.push(measure(total, || {
            for _ in 0..BATCHES {
                for record in &input {
                    black_box(object.apply_inbound(black_box(record)).into_record());
                }
            }
        }));
    }
    println!(
        "apply_inbound, {FIELDS} mapped fields (+10 unread), batches of {BATCH} records, {} records x {RUNS} runs, one thread",
        BATCH * BATCHES
    );
    for (label, runs) in [
        ("to MappedRecord", mapped),
        ("to syncline.common.v1.Record", as_records),
    ] {
        let wall = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.1).collect());
        println!(
            "  {label:<30} {cpu:>10.0} records/s per core (CPU time), {wall:>10.0} by wall clock (medians)"
        );
    }
}
