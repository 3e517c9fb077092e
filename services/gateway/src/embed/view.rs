//! The page's view of a manifest, an installation and a plan, and the translation of the
//! page's draft back into `ObjectMapping`s. Pure functions: no I/O.
//!
//! The page edits *simple* mappings only: one model field to one CRM field, with an
//! optional picklist value map. A manifest default with several CRM fields or transforms is
//! *fixed*: shown, not editable, and saved as the manifest declares it while the object
//! stays on its default CRM object.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use syncline_mapping::manifest::{
    Access, DefaultMapping, DirectionWord, ManifestDoc, ProviderName, WriteGuard, default_mappings,
};
use syncline_proto::common::v1::Provider;
use syncline_proto::mapping::v1::transform::{Kind, PicklistMap};
use syncline_proto::mapping::v1::{
    FieldMapping, Installation, MappingDirection, MappingPlan, ObjectMapping, Transform,
};
use syncline_proto::schema::v1::Field;

/// The manifest's name for a connection's provider.
pub(crate) fn provider_name(provider: i32) -> Option<ProviderName> {
    match Provider::try_from(provider).ok()? {
        Provider::Salesforce => Some(ProviderName::Salesforce),
        Provider::Hubspot => Some(ProviderName::Hubspot),
        Provider::Unspecified => None,
    }
}

/// One model object as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ModelObject {
    pub key: String,
    pub label: String,
    pub description: String,
    pub reads: bool,
    pub writes: bool,
    pub enabled: bool,
    pub default_provider_object: String,
    pub provider_object: String,
    pub fields: Vec<ModelField>,
    /// Why this object keeps the installation from READY (schema drift broke its saved
    /// mappings, a newer manifest, nothing saved yet); empty when it is fine.
    pub issue: String,
}

/// One model field as the page shows it, with its current mapping.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ModelField {
    pub key: String,
    pub label: String,
    pub description: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
    pub customer_choice: bool,
    /// Never written to the CRM.
    pub read_only: bool,
    /// Allowed values of a picklist field.
    pub values: Vec<String>,
    /// CRM fields of a fixed manifest default (not editable on the page); empty otherwise.
    pub fixed: Vec<String>,
    /// The chosen CRM field; empty when unmapped.
    pub provider_field: String,
    /// Model value to CRM value.
    pub picklist: BTreeMap<String, String>,
}

/// The page's draft of one object's mappings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DraftObject {
    pub object: String,
    pub provider_object: String,
    #[serde(default)]
    pub fields: Vec<DraftField>,
}

/// The page's choice for one model field.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DraftField {
    pub model_field: String,
    pub provider_field: String,
    #[serde(default)]
    pub picklist: BTreeMap<String, String>,
}

fn label_or_key(label: &str, key: &str) -> String {
    if label.is_empty() {
        key.to_owned()
    } else {
        label.to_owned()
    }
}

/// The model objects of `doc` for `provider`, with the installation's choices and the
/// plan's (else the manifest's) current mappings.
pub(crate) fn model_objects(
    doc: &ManifestDoc,
    provider: ProviderName,
    installation: Option<&Installation>,
    plan: Option<&MappingPlan>,
) -> Vec<ModelObject> {
    let mut out = Vec::new();
    for (key, object) in doc.objects.iter() {
        let Some(default_object) = object.providers.get(&provider) else {
            continue;
        };
        let selection = installation.and_then(|i| i.objects.iter().find(|s| &s.object == key));
        let enabled = selection.map_or(object.enabled_by_default, |s| s.enabled);
        let chosen_object = selection
            .map(|s| s.provider_object.clone())
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| default_object.clone());
        // The installation says which CRM object; the plan's choices count only if they were
        // made for that object.
        let planned = plan
            .and_then(|p| p.objects.iter().find(|o| &o.object == key))
            .filter(|p| p.provider_object == chosen_object);
        let provider_object = chosen_object;
        let on_default = &provider_object == default_object;
        let mut fields = Vec::new();
        for (name, field) in object.fields.iter() {
            let default = field.map.get(&provider);
            let fixed = match default {
                Some(DefaultMapping::Full(full)) if on_default => full.fields.clone(),
                _ => Vec::new(),
            };
            let (provider_field, picklist) = if !fixed.is_empty() {
                (String::new(), BTreeMap::new())
            } else if let Some(planned) = planned {
                planned_choice(planned, name)
            } else {
                match default {
                    Some(DefaultMapping::Field(crm)) if on_default => {
                        (crm.clone(), BTreeMap::new())
                    }
                    _ => (String::new(), BTreeMap::new()),
                }
            };
            fields.push(ModelField {
                key: name.clone(),
                label: label_or_key(&field.label, name),
                description: field.description.clone(),
                ty: field.ty.clone(),
                required: field.required,
                customer_choice: field.customer_choice,
                read_only: field.write == WriteGuard::Never,
                values: field.values.clone(),
                fixed,
                provider_field,
                picklist,
            });
        }
        out.push(ModelObject {
            key: key.clone(),
            label: label_or_key(&object.label, key),
            description: object.description.clone(),
            reads: object.access.contains(&Access::Read)
                || object.access.contains(&Access::Subscribe),
            writes: object.access.contains(&Access::Write),
            enabled,
            default_provider_object: default_object.clone(),
            provider_object,
            fields,
            issue: selection.map(|s| s.issue.clone()).unwrap_or_default(),
        });
    }
    out
}

fn picklist_of(transforms: &[Transform]) -> Option<&PicklistMap> {
    transforms.iter().find_map(|t| match &t.kind {
        Some(Kind::PicklistMap(map)) => Some(map),
        _ => None,
    })
}

/// The simple mapping of `model` in a compiled object plan: its CRM field and picklist map.
fn planned_choice(
    planned: &syncline_proto::mapping::v1::ObjectPlan,
    model: &str,
) -> (String, BTreeMap<String, String>) {
    if let Some(rule) = planned
        .outbound
        .iter()
        .find(|r| r.source_fields.len() == 1 && r.source_fields[0] == model)
    {
        let picklist = picklist_of(&rule.transforms)
            .map(|m| m.values.clone().into_iter().collect())
            .unwrap_or_default();
        return (rule.target_field.clone(), picklist);
    }
    if let Some(rule) = planned
        .inbound
        .iter()
        .find(|r| r.target_field == model && r.source_fields.len() == 1)
    {
        let picklist = picklist_of(&rule.transforms)
            .map(|m| {
                m.values
                    .iter()
                    .map(|(crm, model)| (model.clone(), crm.clone()))
                    .collect()
            })
            .unwrap_or_default();
        return (rule.source_fields[0].clone(), picklist);
    }
    (String::new(), BTreeMap::new())
}

/// Which problem a draft has before it reaches the mapping service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DraftProblem {
    pub object: String,
    pub model_field: String,
    pub message: String,
}

/// The `ObjectMapping`s of a draft, and for each the model field behind every mapping
/// index (to put the mapping service's violations next to the right field).
pub(crate) struct Built {
    pub objects: Vec<ObjectMapping>,
    pub model_fields: Vec<Vec<String>>,
}

/// Translates the page's draft into mappings. `crm_fields` holds the discovered fields of
/// each draft object's CRM object (writability narrows directions); directions otherwise
/// follow the object's access, the field's write guard and the manifest default's
/// direction. Picklist maps go outbound as given (model → CRM) and inbound inverted (the
/// first model value wins when several share a CRM value); values they do not list pass
/// through.
pub(crate) fn build(
    doc: &ManifestDoc,
    provider: ProviderName,
    drafts: &[DraftObject],
    crm_fields: &HashMap<String, Vec<Field>>,
) -> Result<Built, Vec<DraftProblem>> {
    let defaults = default_mappings(doc, provider);
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    let mut model_fields = Vec::new();
    for draft in drafts {
        let problem = |field: &str, message: &str| DraftProblem {
            object: draft.object.clone(),
            model_field: field.to_owned(),
            message: message.to_owned(),
        };
        let Some(object) = doc.objects.get(&draft.object) else {
            problems.push(problem("", "this object is not in the integration"));
            continue;
        };
        let default_object = object.providers.get(&provider).cloned().unwrap_or_default();
        if draft.provider_object.is_empty() {
            problems.push(problem("", "choose a CRM object"));
            continue;
        }
        let on_default = draft.provider_object == default_object;
        let reads =
            object.access.contains(&Access::Read) || object.access.contains(&Access::Subscribe);
        let writes = object.access.contains(&Access::Write);
        let fields_of = crm_fields.get(&draft.provider_object);
        let mut mappings = Vec::new();
        let mut names = Vec::new();
        for (name, spec) in object.fields.iter() {
            let fixed = matches!(spec.map.get(&provider), Some(DefaultMapping::Full(_)));
            if fixed && on_default {
                if let Some(mapping) = defaults
                    .iter()
                    .find(|o| o.object == draft.object)
                    .and_then(|o| o.fields.iter().find(|f| f.model_fields == [name.clone()]))
                {
                    mappings.push(mapping.clone());
                    names.push(name.clone());
                }
                continue;
            }
            let Some(choice) = draft
                .fields
                .iter()
                .find(|f| &f.model_field == name && !f.provider_field.is_empty())
            else {
                continue;
            };
            let declared = match spec.map.get(&provider) {
                Some(DefaultMapping::Full(full)) => full.direction.unwrap_or(DirectionWord::Both),
                _ => DirectionWord::Both,
            };
            let crm_writable = fields_of
                .and_then(|fields| fields.iter().find(|f| f.name == choice.provider_field))
                .is_none_or(|f| f.createable || f.updateable);
            let inbound = reads && declared != DirectionWord::Outbound;
            let outbound = writes
                && spec.write != WriteGuard::Never
                && declared != DirectionWord::Inbound
                && crm_writable;
            let direction = match (inbound, outbound) {
                (true, true) => MappingDirection::Both,
                (true, false) => MappingDirection::Inbound,
                (false, true) => MappingDirection::Outbound,
                (false, false) => {
                    problems.push(problem(
                        name,
                        "this CRM field can be neither read nor written by the integration",
                    ));
                    continue;
                }
            };
            let picklist: BTreeMap<&String, &String> = choice
                .picklist
                .iter()
                .filter(|(model, crm)| !model.is_empty() && !crm.is_empty())
                .collect();
            let mut inbound_transforms = Vec::new();
            let mut outbound_transforms = Vec::new();
            if !picklist.is_empty() {
                if let Some(unknown) = picklist.keys().find(|v| !spec.values.contains(v)) {
                    problems.push(problem(
                        name,
                        &format!("`{unknown}` is not one of this field's values"),
                    ));
                    continue;
                }
                if outbound {
                    outbound_transforms.push(Transform {
                        kind: Some(Kind::PicklistMap(PicklistMap {
                            values: picklist
                                .iter()
                                .map(|(m, c)| ((*m).clone(), (*c).clone()))
                                .collect(),
                            ..PicklistMap::default()
                        })),
                    });
                }
                if inbound {
                    let mut inverse = std::collections::HashMap::new();
                    for value in &spec.values {
                        if let Some(crm) = picklist.get(value) {
                            inverse
                                .entry((*crm).clone())
                                .or_insert_with(|| value.clone());
                        }
                    }
                    inbound_transforms.push(Transform {
                        kind: Some(Kind::PicklistMap(PicklistMap {
                            values: inverse,
                            ..PicklistMap::default()
                        })),
                    });
                }
            }
            mappings.push(FieldMapping {
                model_fields: vec![name.clone()],
                provider_fields: vec![choice.provider_field.clone()],
                direction: direction as i32,
                inbound_transforms,
                outbound_transforms,
            });
            names.push(name.clone());
        }
        for choice in &draft.fields {
            if object.fields.get(&choice.model_field).is_none() {
                problems.push(problem(
                    &choice.model_field,
                    "this field is not in the integration",
                ));
            }
        }
        objects.push(ObjectMapping {
            object: draft.object.clone(),
            provider_object: draft.provider_object.clone(),
            fields: mappings,
        });
        model_fields.push(names);
    }
    if problems.is_empty() {
        Ok(Built {
            objects,
            model_fields,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
format: 1
name: t
objects:
  contact:
    label: Contact
    access: [read, write]
    providers: { salesforce: Contact }
    fields:
      email: { type: email, required: true, map: { salesforce: Email } }
      full_name:
        type: string
        write: never
        map:
          salesforce:
            fields: [FirstName, LastName]
            inbound: [ { concatenate: { separator: " " } } ]
      tier: { type: picklist, values: [gold, silver, bronze], customer_choice: true }
"#;

    fn doc() -> ManifestDoc {
        syncline_mapping::manifest::validate(MANIFEST)
            .doc
            .expect("the test manifest parses")
    }

    fn crm(name: &str, writable: bool) -> Field {
        Field {
            name: name.into(),
            createable: writable,
            updateable: writable,
            ..Field::default()
        }
    }

    #[test]
    fn defaults_show_as_choices_and_full_mappings_as_fixed() {
        let objects = model_objects(&doc(), ProviderName::Salesforce, None, None);
        assert_eq!(objects.len(), 1);
        let contact = &objects[0];
        assert_eq!(contact.provider_object, "Contact");
        let by = |k: &str| contact.fields.iter().find(|f| f.key == k).unwrap();
        assert_eq!(by("email").provider_field, "Email");
        assert_eq!(by("full_name").fixed, ["FirstName", "LastName"]);
        assert!(by("full_name").read_only);
        assert_eq!(by("tier").provider_field, "");
        assert_eq!(by("tier").values, ["gold", "silver", "bronze"]);
    }

    #[test]
    fn an_objects_issue_comes_from_the_installation() {
        use syncline_proto::mapping::v1::ObjectSelection;
        let installation = Installation {
            objects: vec![ObjectSelection {
                object: "contact".into(),
                enabled: true,
                issue: "schema drift broke the saved mappings: `Languages__c`".into(),
                ..ObjectSelection::default()
            }],
            ..Installation::default()
        };
        let objects = model_objects(&doc(), ProviderName::Salesforce, Some(&installation), None);
        assert!(objects[0].issue.contains("Languages__c"));
        let fresh = model_objects(&doc(), ProviderName::Salesforce, None, None);
        assert!(fresh.iter().all(|o| o.issue.is_empty()));
    }

    #[test]
    fn a_custom_crm_object_drops_the_defaults_and_the_plan_made_for_another() {
        use syncline_proto::mapping::v1::{CompiledFieldRule, ObjectPlan, ObjectSelection};
        let installation = Installation {
            objects: vec![ObjectSelection {
                object: "contact".into(),
                enabled: true,
                provider_object: "Member__c".into(),
                ..ObjectSelection::default()
            }],
            ..Installation::default()
        };
        let plan = MappingPlan {
            objects: vec![ObjectPlan {
                object: "contact".into(),
                provider_object: "Contact".into(),
                inbound: vec![CompiledFieldRule {
                    source_fields: vec!["Email".into()],
                    target_field: "email".into(),
                    ..CompiledFieldRule::default()
                }],
                ..ObjectPlan::default()
            }],
            ..MappingPlan::default()
        };
        let objects = model_objects(
            &doc(),
            ProviderName::Salesforce,
            Some(&installation),
            Some(&plan),
        );
        let contact = &objects[0];
        assert_eq!(contact.provider_object, "Member__c");
        assert_eq!(contact.default_provider_object, "Contact");
        assert!(
            contact
                .fields
                .iter()
                .all(|f| f.fixed.is_empty() && f.provider_field.is_empty())
        );

        let draft = DraftObject {
            object: "contact".into(),
            provider_object: "Member__c".into(),
            fields: vec![DraftField {
                model_field: "email".into(),
                provider_field: "Mail__c".into(),
                picklist: BTreeMap::new(),
            }],
        };
        let built = build(&doc(), ProviderName::Salesforce, &[draft], &HashMap::new())
            .unwrap_or_else(|_| panic!("the draft builds"));
        // No FirstName + LastName default on a custom object.
        assert_eq!(built.model_fields, [vec!["email"]]);
    }

    #[test]
    fn a_draft_builds_directions_picklists_and_keeps_fixed_defaults() {
        let draft = DraftObject {
            object: "contact".into(),
            provider_object: "Contact".into(),
            fields: vec![
                DraftField {
                    model_field: "email".into(),
                    provider_field: "Email".into(),
                    picklist: BTreeMap::new(),
                },
                DraftField {
                    model_field: "tier".into(),
                    provider_field: "Level__c".into(),
                    picklist: [
                        ("gold", "Primary"),
                        ("silver", "Secondary"),
                        ("bronze", "Secondary"),
                    ]
                    .into_iter()
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .collect(),
                },
            ],
        };
        let crm_fields = HashMap::from([(
            "Contact".to_owned(),
            vec![crm("Email", false), crm("Level__c", true)],
        )]);
        let built = build(&doc(), ProviderName::Salesforce, &[draft], &crm_fields)
            .unwrap_or_else(|_| panic!("the draft builds"));
        assert_eq!(built.model_fields, [vec!["email", "full_name", "tier"]]);
        let fields = &built.objects[0].fields;
        // Email is read only in the CRM here: inbound only.
        assert_eq!(fields[0].direction, MappingDirection::Inbound as i32);
        assert_eq!(fields[1].provider_fields, ["FirstName", "LastName"]);
        assert_eq!(fields[2].direction, MappingDirection::Both as i32);
        let Some(Kind::PicklistMap(out)) = &fields[2].outbound_transforms[0].kind else {
            panic!("outbound picklist map");
        };
        assert_eq!(out.values["bronze"], "Secondary");
        let Some(Kind::PicklistMap(inb)) = &fields[2].inbound_transforms[0].kind else {
            panic!("inbound picklist map");
        };
        // silver comes first in the manifest: it wins the shared CRM value.
        assert_eq!(inb.values["Secondary"], "silver");
        assert_eq!(inb.values["Primary"], "gold");
    }

    #[test]
    fn unknown_fields_and_values_are_refused_by_name() {
        let draft = DraftObject {
            object: "contact".into(),
            provider_object: "Contact".into(),
            fields: vec![
                DraftField {
                    model_field: "tier".into(),
                    provider_field: "Level__c".into(),
                    picklist: BTreeMap::from([("platinum".to_owned(), "Primary".to_owned())]),
                },
                DraftField {
                    model_field: "shoe_size".into(),
                    provider_field: "Shoe__c".into(),
                    picklist: BTreeMap::new(),
                },
            ],
        };
        let Err(problems) = build(&doc(), ProviderName::Salesforce, &[draft], &HashMap::new())
        else {
            panic!("the draft is refused");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.model_field.as_str()).collect();
        assert_eq!(fields, ["tier", "shoe_size"]);
    }
}
