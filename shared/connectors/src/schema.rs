//! Provider-neutral schema types. Names are the CRM's own (`Account`, `Deal_Risk_Score__c`,
//! HubSpot `2-1234567`), never flattened; the CRM's type is kept beside the normalised one.

pub use syncline_proto::schema::v1::FieldType;

/// An object as listed, before its fields are described.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectSummary {
    /// API name.
    pub name: String,
    /// Singular label.
    pub label: String,
    /// Plural label.
    pub plural_label: String,
    /// Defined by the customer.
    pub custom: bool,
    /// Records can be created.
    pub createable: bool,
    /// Records can be updated.
    pub updateable: bool,
    /// Records can be deleted.
    pub deletable: bool,
    /// Records can be read by (incremental) queries.
    pub queryable: bool,
    /// The CRM can push changes (Salesforce CDC, HubSpot webhooks).
    pub change_events_supported: bool,
    /// Fields the CRM requires on create, when it lists them at object level (HubSpot
    /// `requiredProperties`); such fields are not nillable.
    pub required_fields: Vec<String>,
}

/// One picklist value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PicklistEntry {
    /// Stored API value.
    pub value: String,
    /// Label shown in the CRM.
    pub label: String,
    /// Selectable.
    pub active: bool,
    /// The default for new records.
    pub default_value: bool,
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldDescription {
    /// API name.
    pub name: String,
    /// Label.
    pub label: String,
    /// The CRM's own type (`double`, `reference`, HubSpot `enumeration/select`).
    pub native_type: String,
    /// Syncline's classification of `native_type`.
    pub field_type: FieldType,
    /// Defined by the customer.
    pub custom: bool,
    /// Settable on create.
    pub createable: bool,
    /// Changeable on update.
    pub updateable: bool,
    /// Accepts null.
    pub nillable: bool,
    /// Values are unique.
    pub unique: bool,
    /// Usable as an external id for upserts.
    pub external_id: bool,
    /// Computed by the CRM.
    pub calculated: bool,
    /// Objects a reference may point at.
    pub reference_targets: Vec<String>,
    /// Relationship name of a reference (`Account`, `ParentWhizbang__r`).
    pub relationship_name: String,
    /// Picklist values.
    pub picklist_values: Vec<PicklistEntry>,
    /// Maximum text length; 0 if none.
    pub length: i32,
    /// Total digits; 0 if unknown.
    pub precision: i32,
    /// Digits after the point.
    pub scale: i32,
    /// The CRM's default for new records, as JSON.
    pub default_value: Option<serde_json::Value>,
    /// Help text.
    pub description: String,
}

/// An object with its fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectDescription {
    /// The object's attributes.
    pub object: ObjectSummary,
    /// Its fields, in the CRM's order.
    pub fields: Vec<FieldDescription>,
}
