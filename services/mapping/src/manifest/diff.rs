//! What changed between two manifest versions: object by object, field by field, and as a
//! unified text diff.

use serde::Serialize;
use syncline_proto::mapping::v1::{ManifestChange, ManifestChangeKind};

use super::model::{ManifestDoc, ObjectSpec};

fn yaml<T: Serialize>(node: &T) -> String {
    serde_norway::to_string(node).unwrap_or_default()
}

fn change(
    kind: ManifestChangeKind,
    path: String,
    object: &str,
    field: &str,
    before: String,
    after: String,
) -> ManifestChange {
    ManifestChange {
        kind: kind as i32,
        path,
        object: object.to_owned(),
        field: field.to_owned(),
        before,
        after,
    }
}

/// An object without its fields, to compare and show its own attributes.
fn attributes(object: &ObjectSpec) -> ObjectSpec {
    ObjectSpec {
        fields: super::model::OrderedMap(Vec::new()),
        ..object.clone()
    }
}

/// The changes from `old` to `new` (objects in the newer manifest's order, removed ones
/// after) and a unified diff of the two sources labelled `old_label` and `new_label`.
pub fn diff(
    old_source: &str,
    old: &ManifestDoc,
    new_source: &str,
    new: &ManifestDoc,
    old_label: &str,
    new_label: &str,
) -> (Vec<ManifestChange>, String) {
    use ManifestChangeKind as K;
    let mut changes = Vec::new();
    for (key, before, after) in [
        ("format", old.format.to_string(), new.format.to_string()),
        ("name", old.name.clone(), new.name.clone()),
        (
            "description",
            old.description.clone(),
            new.description.clone(),
        ),
    ] {
        if before != after {
            changes.push(change(K::Modified, key.into(), "", "", before, after));
        }
    }
    for (key, object) in new.objects.iter() {
        let Some(previous) = old.objects.get(key) else {
            changes.push(change(
                K::Added,
                format!("objects.{key}"),
                key,
                "",
                String::new(),
                yaml(object),
            ));
            continue;
        };
        let (a, b) = (attributes(previous), attributes(object));
        if a != b {
            changes.push(change(
                K::Modified,
                format!("objects.{key}"),
                key,
                "",
                yaml(&a),
                yaml(&b),
            ));
        }
        for (name, field) in object.fields.iter() {
            let path = format!("objects.{key}.fields.{name}");
            match previous.fields.get(name) {
                None => changes.push(change(
                    K::Added,
                    path,
                    key,
                    name,
                    String::new(),
                    yaml(field),
                )),
                Some(was) if was != field => {
                    changes.push(change(K::Modified, path, key, name, yaml(was), yaml(field)));
                }
                Some(_) => {}
            }
        }
        for (name, field) in previous.fields.iter() {
            if object.fields.get(name).is_none() {
                changes.push(change(
                    K::Removed,
                    format!("objects.{key}.fields.{name}"),
                    key,
                    name,
                    yaml(field),
                    String::new(),
                ));
            }
        }
    }
    for (key, object) in old.objects.iter() {
        if new.objects.get(key).is_none() {
            changes.push(change(
                K::Removed,
                format!("objects.{key}"),
                key,
                "",
                yaml(object),
                String::new(),
            ));
        }
    }
    let unified = similar::TextDiff::from_lines(old_source, new_source)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string();
    (changes, unified)
}
