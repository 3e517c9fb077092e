//! Salesforce REST: global describe (`/services/data/vXX.X/sobjects/`), then sObject
//! describes batched 25 at a time through `/composite`, a few batches in flight; record reads
//! in `salesforce/read.rs` (SOQL on `SystemModstamp` with an id tie-breaker, `/deleted`;
//! cursor [`SfCursor`]).

mod read;

pub use read::{DEFAULT_LOOK_BACK, Mark, Phase, SfCursor, soql};

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::http::{self, classify};
use crate::schema::FieldType;
use crate::{
    ConnectorError, Credentials, FieldDescription, ObjectDescription, ObjectSummary, PicklistEntry,
    Provider, ProviderMetadata, SchemaDescriber,
};

/// The REST API version used for every call.
pub const API_VERSION: &str = "v62.0";
/// Subrequests per `/composite` call (Salesforce's limit).
pub const COMPOSITE_BATCH: usize = 25;

/// The Salesforce connector.
#[derive(Debug, Clone)]
pub struct SalesforceConnector {
    http: reqwest::Client,
    concurrency: usize,
    look_back: std::time::Duration,
}

impl SalesforceConnector {
    /// A connector calling through `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            concurrency: 4,
            look_back: DEFAULT_LOOK_BACK,
        }
    }

    /// How far before the last `SystemModstamp` read each incremental run queries again
    /// (records of long transactions commit with an earlier stamp); default
    /// [`DEFAULT_LOOK_BACK`].
    #[must_use]
    pub fn with_look_back(mut self, look_back: std::time::Duration) -> Self {
        self.look_back = look_back;
        self
    }

    /// Composite describe calls in flight at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    async fn describe_batch(
        &self,
        credentials: &Credentials,
        batch: &[ObjectSummary],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        let requests: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(i, o)| {
                serde_json::json!({
                    "method": "GET",
                    "url": describe_path(&o.name),
                    "referenceId": format!("d{i}"),
                })
            })
            .collect();
        let body = serde_json::json!({"allOrNone": false, "compositeRequest": requests});
        let url = http::url(
            &credentials.instance_url,
            &format!("/services/data/{API_VERSION}/composite"),
        );
        let response = http::send(self.http.post(url).json(&body), credentials, error_code).await?;
        let wire: CompositeResponse = http::json(response, "composite describe").await?;
        if wire.composite_response.len() != batch.len() {
            return Err(ConnectorError::invalid(
                "composite describe",
                format!(
                    "{} answers for {} subrequests",
                    wire.composite_response.len(),
                    batch.len()
                ),
            ));
        }
        wire.composite_response
            .into_iter()
            .zip(batch)
            .map(|(sub, object)| {
                let status = reqwest::StatusCode::from_u16(sub.http_status_code)
                    .map_err(|e| ConnectorError::invalid("composite describe", e))?;
                if !status.is_success() {
                    return Err(classify(
                        status,
                        None,
                        sub.body.get().as_bytes(),
                        error_code,
                    ));
                }
                let describe: SObjectDescribe =
                    serde_json::from_str(sub.body.get()).map_err(|e| {
                        ConnectorError::invalid(format!("sobject describe {}", object.name), e)
                    })?;
                let mut described = ObjectDescription::try_from(describe)?;
                described.object.change_events_supported = object.change_events_supported;
                Ok(described)
            })
            .collect()
    }
}

fn describe_path(name: &str) -> String {
    format!("/services/data/{API_VERSION}/sobjects/{name}/describe")
}

impl ProviderMetadata for SalesforceConnector {
    fn provider(&self) -> Provider {
        Provider::Salesforce
    }

    fn describe_concurrency(&self) -> usize {
        self.concurrency
    }
}

impl SchemaDescriber for SalesforceConnector {
    async fn list_objects(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<ObjectSummary>, ConnectorError> {
        let url = http::url(
            &credentials.instance_url,
            &format!("/services/data/{API_VERSION}/sobjects/"),
        );
        let response = http::send(self.http.get(url), credentials, error_code).await?;
        let wire: GlobalDescribe = http::json(response, "global describe").await?;
        objects_of(wire)
    }

    async fn describe_object(
        &self,
        credentials: &Credentials,
        object: &ObjectSummary,
    ) -> Result<ObjectDescription, ConnectorError> {
        let url = http::url(&credentials.instance_url, &describe_path(&object.name));
        let response = http::send(self.http.get(url), credentials, error_code).await?;
        let wire: SObjectDescribe =
            http::json(response, &format!("sobject describe {}", object.name)).await?;
        let mut described = ObjectDescription::try_from(wire)?;
        described.object.change_events_supported = object.change_events_supported;
        Ok(described)
    }

    async fn describe_objects(
        &self,
        credentials: &Credentials,
        objects: &[ObjectSummary],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        let batches: Vec<Vec<ObjectSummary>> =
            objects.chunks(COMPOSITE_BATCH).map(<[_]>::to_vec).collect();
        let described = http::bounded(batches, self.concurrency, |batch| {
            let (this, credentials) = (self.clone(), credentials.clone());
            async move { this.describe_batch(&credentials, &batch).await }
        })
        .await?;
        Ok(described.into_iter().flatten().collect())
    }
}

/// The objects of a global describe, with `change_events_supported` set when the org lists
/// the object's change event (`AccountChangeEvent`, `Invoice__ChangeEvent`). Change events
/// themselves and hidden objects are left out.
pub fn objects_of(wire: GlobalDescribe) -> Result<Vec<ObjectSummary>, ConnectorError> {
    let names: HashSet<String> = wire.sobjects.iter().map(|o| o.name.clone()).collect();
    let mut out = Vec::with_capacity(wire.sobjects.len());
    for listing in wire.sobjects {
        if listing.deprecated_and_hidden || listing.name.ends_with("ChangeEvent") {
            continue;
        }
        let event = match listing.name.strip_suffix("__c") {
            Some(stem) => format!("{stem}__ChangeEvent"),
            None => format!("{}ChangeEvent", listing.name),
        };
        let mut summary = ObjectSummary::try_from(listing)?;
        summary.change_events_supported = names.contains(&event);
        out.push(summary);
    }
    Ok(out)
}

/// The Salesforce error body: `[{"message","errorCode"}]`.
pub(crate) fn error_code(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Vec<Item>>(body) {
        Ok(items) => items
            .into_iter()
            .next()
            .map(|i| (i.error_code, i.message))
            .unwrap_or_default(),
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ),
    }
}

/// `null` reads as the type's default.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `GET /sobjects/` (global describe).
#[derive(Debug, Clone, Deserialize)]
pub struct GlobalDescribe {
    /// The objects.
    pub sobjects: Vec<SObjectListing>,
}

/// One object of the global describe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SObjectListing {
    /// API name.
    pub name: String,
    /// Label.
    #[serde(deserialize_with = "nullable")]
    pub label: String,
    /// Plural label.
    #[serde(deserialize_with = "nullable")]
    pub label_plural: String,
    /// Custom object.
    pub custom: bool,
    /// Createable.
    pub createable: bool,
    /// Updateable.
    pub updateable: bool,
    /// Deletable.
    pub deletable: bool,
    /// Queryable.
    pub queryable: bool,
    /// Hidden.
    pub deprecated_and_hidden: bool,
}

impl TryFrom<SObjectListing> for ObjectSummary {
    type Error = ConnectorError;

    fn try_from(wire: SObjectListing) -> Result<Self, Self::Error> {
        if wire.name.is_empty() {
            return Err(ConnectorError::invalid(
                "global describe",
                "an object has no name",
            ));
        }
        Ok(Self {
            label: if wire.label.is_empty() {
                wire.name.clone()
            } else {
                wire.label
            },
            name: wire.name,
            plural_label: wire.label_plural,
            custom: wire.custom,
            createable: wire.createable,
            updateable: wire.updateable,
            deletable: wire.deletable,
            queryable: wire.queryable,
            change_events_supported: false,
            required_fields: Vec::new(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeResponse {
    composite_response: Vec<CompositeSubresponse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeSubresponse {
    /// Kept raw: parsed straight into the describe (or error) type, without a `Value` tree.
    body: Box<serde_json::value::RawValue>,
    http_status_code: u16,
}

/// `GET /sobjects/{Name}/describe`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SObjectDescribe {
    /// The object's flags (same keys as the global describe).
    #[serde(flatten)]
    pub listing: SObjectListing,
    /// The fields.
    #[serde(deserialize_with = "nullable")]
    pub fields: Vec<SfField>,
}

impl TryFrom<SObjectDescribe> for ObjectDescription {
    type Error = ConnectorError;

    fn try_from(wire: SObjectDescribe) -> Result<Self, Self::Error> {
        let object = ObjectSummary::try_from(wire.listing)?;
        let mut seen = HashSet::new();
        let mut fields = Vec::with_capacity(wire.fields.len());
        for field in wire.fields {
            let field = FieldDescription::try_from(field).map_err(|e| match e {
                ConnectorError::InvalidResponse { reason, .. } => {
                    ConnectorError::invalid(format!("sobject describe {}", object.name), reason)
                }
                other => other,
            })?;
            if !seen.insert(field.name.to_ascii_lowercase()) {
                return Err(ConnectorError::invalid(
                    format!("sobject describe {}", object.name),
                    format!("field {} is listed twice", field.name),
                ));
            }
            fields.push(field);
        }
        Ok(Self { object, fields })
    }
}

/// One field of an sObject describe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SfField {
    /// API name.
    pub name: String,
    /// Label.
    #[serde(deserialize_with = "nullable")]
    pub label: String,
    /// Describe type (`string`, `double`, `reference`, …).
    #[serde(rename = "type")]
    pub field_type: String,
    /// Custom field.
    pub custom: bool,
    /// Createable.
    pub createable: bool,
    /// Updateable.
    pub updateable: bool,
    /// Nillable.
    pub nillable: bool,
    /// Unique.
    pub unique: bool,
    /// External id.
    pub external_id: bool,
    /// Formula or roll-up.
    pub calculated: bool,
    /// Referenced objects.
    #[serde(deserialize_with = "nullable")]
    pub reference_to: Vec<String>,
    /// Relationship name.
    #[serde(deserialize_with = "nullable")]
    pub relationship_name: String,
    /// Picklist values.
    #[serde(deserialize_with = "nullable")]
    pub picklist_values: Vec<SfPicklistValue>,
    /// Text length.
    #[serde(deserialize_with = "nullable")]
    pub length: i64,
    /// Digits.
    #[serde(deserialize_with = "nullable")]
    pub precision: i64,
    /// Scale.
    #[serde(deserialize_with = "nullable")]
    pub scale: i64,
    /// Default value.
    pub default_value: Option<Value>,
    /// Help text.
    #[serde(deserialize_with = "nullable")]
    pub inline_help_text: String,
}

/// One picklist value of a describe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SfPicklistValue {
    /// Active.
    pub active: bool,
    /// Default.
    pub default_value: bool,
    /// Label.
    #[serde(deserialize_with = "nullable")]
    pub label: String,
    /// API value.
    pub value: String,
}

fn int(what: &str, value: i64) -> Result<i32, ConnectorError> {
    i32::try_from(value).map_err(|_| {
        ConnectorError::invalid("field describe", format!("{what} {value} is out of range"))
    })
}

impl TryFrom<SfField> for FieldDescription {
    type Error = ConnectorError;

    fn try_from(wire: SfField) -> Result<Self, Self::Error> {
        if wire.name.is_empty() {
            return Err(ConnectorError::invalid(
                "field describe",
                "a field has no name",
            ));
        }
        if wire.field_type.is_empty() {
            return Err(ConnectorError::invalid(
                "field describe",
                format!("field {} has no type", wire.name),
            ));
        }
        let picklist_values = wire
            .picklist_values
            .into_iter()
            .map(|p| {
                if p.value.is_empty() {
                    return Err(ConnectorError::invalid(
                        "field describe",
                        format!("field {} has an empty picklist value", wire.name),
                    ));
                }
                Ok(PicklistEntry {
                    label: if p.label.is_empty() {
                        p.value.clone()
                    } else {
                        p.label
                    },
                    value: p.value,
                    active: p.active,
                    default_value: p.default_value,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            field_type: normalise(&wire.field_type),
            label: if wire.label.is_empty() {
                wire.name.clone()
            } else {
                wire.label
            },
            native_type: wire.field_type,
            custom: wire.custom,
            createable: wire.createable,
            updateable: wire.updateable,
            nillable: wire.nillable,
            unique: wire.unique,
            external_id: wire.external_id,
            calculated: wire.calculated,
            reference_targets: wire.reference_to,
            relationship_name: wire.relationship_name,
            picklist_values,
            length: int("length", wire.length)?,
            precision: int("precision", wire.precision)?,
            scale: int("scale", wire.scale)?,
            default_value: wire.default_value.filter(|v| !v.is_null()),
            description: wire.inline_help_text,
            name: wire.name,
        })
    }
}

/// Syncline's type for a Salesforce describe type; total (unknown types are OTHER).
pub fn normalise(native: &str) -> FieldType {
    match native.to_ascii_lowercase().as_str() {
        "id" => FieldType::Id,
        "string" | "encryptedstring" | "combobox" => FieldType::String,
        "textarea" => FieldType::TextArea,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        "int" | "long" => FieldType::Integer,
        "double" => FieldType::Decimal,
        "currency" => FieldType::Currency,
        "percent" => FieldType::Percent,
        "boolean" => FieldType::Boolean,
        "date" => FieldType::Date,
        "datetime" => FieldType::Datetime,
        "time" => FieldType::Time,
        "picklist" => FieldType::Picklist,
        "multipicklist" => FieldType::MultiPicklist,
        "reference" => FieldType::Reference,
        "address" | "location" => FieldType::Compound,
        "base64" => FieldType::Binary,
        _ => FieldType::Other,
    }
}
