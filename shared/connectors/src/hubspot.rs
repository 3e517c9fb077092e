//! HubSpot CRM v3: the standard objects plus the portal's custom objects from
//! `/crm/v3/schemas`, each described by `/crm/v3/properties/{object}`; record reads in
//! `hubspot/read.rs` (list backfill, keyset search increments, archived as deletes; cursor
//! [`HsCursor`]).

mod read;

pub use read::{DEFAULT_LOOK_BACK, HsCursor, HsPhase, modified_property};

use serde::Deserialize;

use crate::http;
use crate::schema::FieldType;
use crate::{
    ConnectorError, Credentials, FieldDescription, ObjectDescription, ObjectSummary, PicklistEntry,
    Provider, ProviderMetadata, SchemaDescriber,
};

/// The standard objects described on every portal: API name, singular and plural label.
pub const STANDARD_OBJECTS: &[(&str, &str, &str)] = &[
    ("companies", "Company", "Companies"),
    ("contacts", "Contact", "Contacts"),
    ("deals", "Deal", "Deals"),
    ("tickets", "Ticket", "Tickets"),
];

/// The HubSpot connector.
#[derive(Debug, Clone)]
pub struct HubSpotConnector {
    http: reqwest::Client,
    look_back: std::time::Duration,
    archived_every: std::time::Duration,
}

impl HubSpotConnector {
    /// A connector calling through `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            look_back: DEFAULT_LOOK_BACK,
            archived_every: std::time::Duration::ZERO,
        }
    }

    /// How far before the last modified time read each incremental sweep starts again
    /// (late writes of HubSpot's search index); default [`DEFAULT_LOOK_BACK`].
    #[must_use]
    pub fn with_look_back(mut self, look_back: std::time::Duration) -> Self {
        self.look_back = look_back;
        self
    }

    /// The shortest time between two scans of archived records (each reads every archived
    /// record of the object, 100 per call); runs in between end after the search sweep and
    /// their deletes come with the next scan. Default zero: every run scans.
    #[must_use]
    pub fn with_archived_scan_every(mut self, every: std::time::Duration) -> Self {
        self.archived_every = every;
        self
    }
}

impl ProviderMetadata for HubSpotConnector {
    fn provider(&self) -> Provider {
        Provider::HubSpot
    }
}

impl SchemaDescriber for HubSpotConnector {
    async fn list_objects(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<ObjectSummary>, ConnectorError> {
        let url = http::url(&credentials.instance_url, "/crm/v3/schemas");
        let response = http::send(self.http.get(url), credentials, error_code).await?;
        let wire: SchemasPage = http::json(response, "object schemas").await?;
        let mut objects: Vec<ObjectSummary> = STANDARD_OBJECTS
            .iter()
            .map(|(name, singular, plural)| ObjectSummary {
                name: (*name).to_owned(),
                label: (*singular).to_owned(),
                plural_label: (*plural).to_owned(),
                custom: false,
                createable: true,
                updateable: true,
                deletable: true,
                queryable: true,
                change_events_supported: true,
                required_fields: Vec::new(),
            })
            .collect();
        for schema in wire.results {
            if schema.archived || schema.meta_type.as_deref() == Some("HUBSPOT") {
                continue;
            }
            objects.push(ObjectSummary::try_from(schema)?);
        }
        Ok(objects)
    }

    async fn describe_object(
        &self,
        credentials: &Credentials,
        object: &ObjectSummary,
    ) -> Result<ObjectDescription, ConnectorError> {
        let url = http::url(
            &credentials.instance_url,
            &format!("/crm/v3/properties/{}", object.name),
        );
        let response = http::send(self.http.get(url), credentials, error_code).await?;
        let wire: PropertiesPage =
            http::json(response, &format!("properties of {}", object.name)).await?;
        describe(object, wire)
    }

    /// Describes each object (four at a time); a standard object the portal does not have
    /// (HubSpot answers 400/404 "unable to infer object type") is left out.
    async fn describe_objects(
        &self,
        credentials: &Credentials,
        objects: &[ObjectSummary],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        let described = http::bounded(objects.to_vec(), self.describe_concurrency(), |object| {
            let (this, credentials) = (self.clone(), credentials.clone());
            async move {
                match this.describe_object(&credentials, &object).await {
                    Ok(d) => Ok(Some(d)),
                    Err(ConnectorError::Refused {
                        status: 400 | 404, ..
                    }) if !object.custom => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        Ok(described.into_iter().flatten().collect())
    }
}

/// `object` with the properties of `wire`.
pub fn describe(
    object: &ObjectSummary,
    wire: PropertiesPage,
) -> Result<ObjectDescription, ConnectorError> {
    let mut fields = Vec::with_capacity(wire.results.len());
    for property in wire.results {
        if property.archived {
            continue;
        }
        let mut field = FieldDescription::try_from(property).map_err(|e| match e {
            ConnectorError::InvalidResponse { reason, .. } => {
                ConnectorError::invalid(format!("properties of {}", object.name), reason)
            }
            other => other,
        })?;
        if object.required_fields.contains(&field.name) {
            field.nillable = false;
        }
        fields.push(field);
    }
    Ok(ObjectDescription {
        object: object.clone(),
        fields,
    })
}

/// The code [`error_code`] gives a 429 of the daily policy (answered as
/// [`ConnectorError::QuotaExhausted`]).
pub(crate) const DAILY_LIMIT_CODE: &str = "RATE_LIMIT_DAILY";

/// The HubSpot error body: `{status, message, category, …}`; a 429 of the `DAILY` policy
/// reads as [`DAILY_LIMIT_CODE`].
pub(crate) fn error_code(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        category: String,
        #[serde(default, rename = "errorType")]
        error_type: String,
        #[serde(default)]
        message: String,
        #[serde(default, rename = "policyName")]
        policy_name: String,
    }
    match serde_json::from_slice::<Body>(body) {
        // The daily quota is used up (until midnight portal time), not a short burst.
        Ok(b) if b.error_type == "RATE_LIMIT" && b.policy_name == "DAILY" => {
            (DAILY_LIMIT_CODE.to_owned(), b.message)
        }
        Ok(b) => (
            if b.category.is_empty() {
                b.error_type
            } else {
                b.category
            },
            b.message,
        ),
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

/// `GET /crm/v3/schemas`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SchemasPage {
    /// The object schemas.
    #[serde(default)]
    pub results: Vec<ObjectSchemaWire>,
}

/// One object schema.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectSchemaWire {
    /// `2-…` for custom objects.
    pub object_type_id: String,
    /// Internal name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Properties required on create.
    #[serde(deserialize_with = "nullable")]
    pub required_properties: Vec<String>,
    /// `PORTAL_SPECIFIC` or `HUBSPOT`.
    pub meta_type: Option<String>,
    /// Archived.
    pub archived: bool,
}

/// Singular and plural labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Labels {
    /// Singular.
    #[serde(deserialize_with = "nullable")]
    pub singular: String,
    /// Plural.
    #[serde(deserialize_with = "nullable")]
    pub plural: String,
}

impl TryFrom<ObjectSchemaWire> for ObjectSummary {
    type Error = ConnectorError;

    fn try_from(wire: ObjectSchemaWire) -> Result<Self, Self::Error> {
        if wire.object_type_id.is_empty() {
            return Err(ConnectorError::invalid(
                "object schemas",
                format!("schema {:?} has no objectTypeId", wire.name),
            ));
        }
        let label = [wire.labels.singular, wire.name]
            .into_iter()
            .find(|l| !l.is_empty())
            .unwrap_or_else(|| wire.object_type_id.clone());
        Ok(Self {
            name: wire.object_type_id,
            label,
            plural_label: wire.labels.plural,
            custom: true,
            createable: true,
            updateable: true,
            deletable: true,
            queryable: true,
            change_events_supported: true,
            required_fields: wire.required_properties,
        })
    }
}

/// `GET /crm/v3/properties/{object}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PropertiesPage {
    /// The properties.
    #[serde(default)]
    pub results: Vec<Property>,
}

/// One property.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// Label.
    #[serde(deserialize_with = "nullable")]
    pub label: String,
    /// Data type (`string`, `number`, `date`, `datetime`, `enumeration`, `bool`, …).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Input control (`text`, `select`, `checkbox`, `calculation_*`, …).
    #[serde(deserialize_with = "nullable")]
    pub field_type: String,
    /// Description.
    #[serde(deserialize_with = "nullable")]
    pub description: String,
    /// Enumeration options.
    #[serde(deserialize_with = "nullable")]
    pub options: Vec<PropertyOption>,
    /// Computed by HubSpot.
    pub calculated: bool,
    /// Values are unique (usable as `idProperty`).
    pub has_unique_value: bool,
    /// Defined by HubSpot rather than the customer.
    pub hubspot_defined: Option<bool>,
    /// Edit restrictions.
    pub modification_metadata: Option<ModificationMetadata>,
    /// The object a reference property points at (`OWNER`).
    pub referenced_object_type: Option<String>,
    /// Archived.
    pub archived: bool,
}

/// What may be changed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModificationMetadata {
    /// Values cannot be written.
    pub read_only_value: bool,
}

/// One enumeration option.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PropertyOption {
    /// Label.
    #[serde(deserialize_with = "nullable")]
    pub label: String,
    /// Stored value.
    #[serde(deserialize_with = "nullable")]
    pub value: String,
    /// Hidden from forms (inactive).
    pub hidden: bool,
}

impl TryFrom<Property> for FieldDescription {
    type Error = ConnectorError;

    fn try_from(wire: Property) -> Result<Self, Self::Error> {
        if wire.name.is_empty() {
            return Err(ConnectorError::invalid(
                "property",
                "a property has no name",
            ));
        }
        if wire.data_type.is_empty() {
            return Err(ConnectorError::invalid(
                "property",
                format!("property {} has no type", wire.name),
            ));
        }
        let field_type = normalise(
            &wire.name,
            &wire.data_type,
            &wire.field_type,
            wire.referenced_object_type.is_some(),
        );
        let picklist_values =
            if matches!(field_type, FieldType::Picklist | FieldType::MultiPicklist) {
                wire.options
                    .into_iter()
                    .map(|o| PicklistEntry {
                        label: if o.label.is_empty() {
                            o.value.clone()
                        } else {
                            o.label
                        },
                        value: o.value,
                        active: !o.hidden,
                        default_value: false,
                    })
                    .collect()
            } else {
                Vec::new()
            };
        let read_only = wire
            .modification_metadata
            .as_ref()
            .is_some_and(|m| m.read_only_value)
            || wire.calculated;
        Ok(Self {
            label: if wire.label.is_empty() {
                wire.name.clone()
            } else {
                wire.label
            },
            native_type: wire.data_type,
            field_type,
            custom: !wire.hubspot_defined.unwrap_or(false),
            createable: !read_only,
            updateable: !read_only,
            nillable: true,
            unique: wire.has_unique_value,
            external_id: wire.has_unique_value,
            calculated: wire.calculated,
            reference_targets: wire.referenced_object_type.into_iter().collect(),
            relationship_name: String::new(),
            picklist_values,
            length: 0,
            precision: 0,
            scale: 0,
            default_value: None,
            description: wire.description,
            name: wire.name,
        })
    }
}

/// Syncline's type for a HubSpot property from its name, `type` and `fieldType`; total
/// (unknown combinations are OTHER).
pub fn normalise(name: &str, data_type: &str, field_type: &str, referenced: bool) -> FieldType {
    if name == "hs_object_id" {
        return FieldType::Id;
    }
    if referenced {
        return FieldType::Reference;
    }
    match (data_type, field_type) {
        ("bool", _) | ("enumeration", "booleancheckbox") => FieldType::Boolean,
        ("enumeration", "checkbox") => FieldType::MultiPicklist,
        ("enumeration", _) => FieldType::Picklist,
        ("number", _) => FieldType::Decimal,
        ("date", _) => FieldType::Date,
        ("datetime", _) => FieldType::Datetime,
        ("phone_number", _) | ("string", "phonenumber") => FieldType::Phone,
        ("string", "textarea" | "html") => FieldType::TextArea,
        ("string", "file") => FieldType::Url,
        ("string", _) if name == "email" || name.ends_with("_email") => FieldType::Email,
        ("string", _) => FieldType::String,
        ("object_coordinates", _) => FieldType::Compound,
        _ => FieldType::Other,
    }
}
