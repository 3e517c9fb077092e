#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const EXAMPLE: &str = include_str!("../../../../docs/examples/manifest.yaml");

fn codes(v: &Validation) -> Vec<&'static str> {
    v.errors.iter().map(|e| e.code).collect()
}

#[test]
fn the_documented_example_is_valid() {
    let v = validate(EXAMPLE);
    assert!(v.is_valid(), "{:#?}", v.errors);
    let doc = v.doc.unwrap();
    assert_eq!(
        doc.objects.keys().next().map(String::as_str),
        Some("contact")
    );
}

#[test]
fn syntax_and_type_errors_carry_serde_norways_position() {
    let v = validate("format: 1\nname: x\nobjects:\n  contact:\n    acess: [read]\n");
    assert_eq!(codes(&v), ["unknown_key"]);
    let e = &v.errors[0];
    assert_eq!((e.line, e.column), (5, 5), "{e:?}");
    assert_eq!(e.path, "objects.contact");
    assert!(e.message.contains("acess"), "{}", e.message);
    assert!(
        e.located()
            .starts_with("5:5: objects.contact: unknown field")
    );

    let v = validate("format: 1\nname: \"unterminated\n");
    assert_eq!(codes(&v), ["yaml_syntax"]);
    assert!(v.errors[0].line >= 2, "{:?}", v.errors[0]);

    let v = validate("format: one\n");
    assert_eq!(codes(&v), ["invalid_type"]);
    assert_eq!(v.errors[0].line, 1);
}

#[test]
fn semantic_errors_are_all_reported_at_their_key() {
    let source = "\
format: 1
name: crm
objects:
  contact:
    access: [read]
    providers: { salesforce: Contact }
    schedule: 5x
    fields:
      email:
        type: emial
        required: true
      status:
        type: string
        values: [a, b]
        map:
          hubspot: hs_status
      name:
        type: string
        write: never
        map:
          salesforce:
            fields: [FirstName, LastName]
            inbound:
              - case: shout
";
    let v = validate(source);
    let found: Vec<(&str, usize, usize)> = v
        .errors
        .iter()
        .map(|e| (e.code, e.line, e.column))
        .collect();
    assert_eq!(
        found,
        [
            ("invalid_schedule", 7, 5),
            ("invalid_type", 10, 9),
            ("unmapped_required", 9, 7),
            ("invalid_values", 14, 9),
            ("unknown_provider", 16, 11),
            ("invalid_transform", 23, 13),
            ("invalid_transform", 24, 15),
        ],
        "{:#?}",
        v.errors
    );
    assert!(v.errors[6].message.contains("shout"));
}

#[test]
fn duplicate_objects_and_write_guards_are_refused() {
    let dup = "format: 1\nname: x\nobjects:\n  a:\n    access: [read]\n    fields: { f: { type: string } }\n  a:\n    access: [read]\n    fields: { f: { type: string } }\n";
    let v = validate(dup);
    assert_eq!(codes(&v), ["duplicate_key"], "{:?}", v.errors);
    assert_eq!(v.errors[0].line, 7);

    let guarded = "format: 1\nname: x\nobjects:\n  a:\n    access: [read, write]\n    providers: { salesforce: Lead }\n    fields:\n      score:\n        type: integer\n        write: never\n        map:\n          salesforce: { fields: [Score__c], direction: both }\n";
    let v = validate(guarded);
    assert_eq!(codes(&v), ["write_guard"], "{:?}", v.errors);
    assert_eq!((v.errors[0].line, v.errors[0].column), (12, 45));
}

#[test]
fn hostile_documents_are_refused_with_a_clear_error() {
    let big = format!(
        "format: 1\nname: x\ndescription: \"{}\"\n",
        "a".repeat(MAX_BYTES)
    );
    assert_eq!(codes(&validate(&big)), ["too_large"]);
    let mut bomb = String::from("[&a [x, x, x, x, x, x, x, x, x, x]");
    for (previous, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        bomb.push_str(&format!(
            ", &{name} [{}]",
            vec![format!("*{previous}"); 10].join(", ")
        ));
    }
    bomb.push(']');
    let bomb = format!(
        "format: 1\nname: x\nobjects:\n  c:\n    access: [read]\n    providers: {{ salesforce: C }}\n    fields:\n      f:\n        type: string\n        map:\n          salesforce:\n            fields: [F]\n            inbound:\n              - default: {bomb}\n"
    );
    let v = validate(&bomb);
    assert_eq!(codes(&v), ["alias_limit"]);
    let first_alias =
        bomb.find("*a").unwrap() - bomb[..bomb.find("*a").unwrap()].rfind('\n').unwrap();
    assert_eq!((v.errors[0].line, v.errors[0].column), (14, first_alias));
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let v = validate(&format!("format: 1\nname: {deep}\n"));
    assert!(!v.is_valid());
    assert_eq!(codes(&validate("   \n")), ["empty"]);
    assert!(!validate("format: 1\n---\nformat: 1\n").is_valid());
}

#[test]
fn diffs_name_objects_and_fields() {
    let old = validate(EXAMPLE).doc.unwrap();
    let changed_source = EXAMPLE
        .replace("schedule: 15m", "schedule: 30m")
        .replace("      phone:\n", "      mobile:\n");
    let v = validate(&changed_source);
    assert!(v.is_valid(), "{:#?}", v.errors);
    let new = v.doc.unwrap();
    let (changes, unified) = diff(EXAMPLE, &old, &changed_source, &new, "v1", "v2");
    let summary: Vec<(i32, &str)> = changes.iter().map(|c| (c.kind, c.path.as_str())).collect();
    use syncline_proto::mapping::v1::ManifestChangeKind as K;
    assert!(
        summary.contains(&(K::Modified as i32, "objects.contact")),
        "{summary:?}"
    );
    assert!(summary.contains(&(K::Added as i32, "objects.contact.fields.mobile")));
    assert!(summary.contains(&(K::Removed as i32, "objects.contact.fields.phone")));
    let modified = changes
        .iter()
        .find(|c| c.path == "objects.contact")
        .unwrap();
    assert!(modified.before.contains("15m") && modified.after.contains("30m"));
    assert!(unified.contains("-    schedule: 15m") && unified.contains("+    schedule: 30m"));
    assert!(unified.starts_with("--- v1\n+++ v2\n"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn never_panics_and_locates(source: &str) {
        let v = validate(source);
        for e in &v.errors {
            assert!(!e.message.is_empty());
            // Errors are located whenever the input is not refused as a whole.
            if !matches!(e.code, "too_large" | "empty") {
                assert!(e.line > 0, "unlocated {e:?} for {source:?}");
            }
        }
        if v.is_valid() {
            assert!(v.doc.is_some());
        }
    }

    proptest! {
        // MANIFEST_FUZZ_CASES=100000 fuzzes longer.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("MANIFEST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
        ))]

        #[test]
        fn arbitrary_text_never_panics(source in "\\PC{0,400}") {
            never_panics_and_locates(&source);
        }

        #[test]
        fn yaml_like_text_never_panics(source in "([a-z_]{1,8}: ?(\\[|\\{|&a|\\*a|!t|-|'|\"|[0-9a-z]{0,5})?\n {0,6}){0,30}") {
            never_panics_and_locates(&source);
        }

        #[test]
        fn mutated_manifests_never_panic(
            cut in 0usize..4000,
            len in 0usize..40,
            insert in "(\\PC|[:\\-\\[\\]{}&*!|>'\"#\n ]){0,12}",
        ) {
            let bytes = EXAMPLE.as_bytes();
            let start = cut.min(bytes.len());
            let end = (start + len).min(bytes.len());
            let mut mutated = String::from_utf8_lossy(&bytes[..start]).into_owned();
            mutated.push_str(&insert);
            mutated.push_str(&String::from_utf8_lossy(&bytes[end..]));
            never_panics_and_locates(&mutated);
        }
    }
}
