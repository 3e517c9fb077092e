//! The org's data model: objects, fields, and how each field's values are generated.
//!
//! Every org starts from the same catalogue: the standard objects a sync needs (User,
//! Account, Contact, Lead, Opportunity) and two custom objects (`Project__c` with 45 custom
//! fields of mixed types, `Invoice__c`), with `__c` fields and `__r` relationships. The
//! admin surface can add, remove and retype fields per org at run time.

use crate::common::rng::hash_str;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Salesforce field types (the `type` of a describe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Record id.
    Id,
    /// Short text.
    String,
    /// Long text.
    Textarea,
    /// E-mail address.
    Email,
    /// Phone number.
    Phone,
    /// URL.
    Url,
    /// Single-select picklist.
    Picklist,
    /// Multi-select picklist (values joined with `;`).
    Multipicklist,
    /// Checkbox.
    Boolean,
    /// Integer.
    Int,
    /// Floating-point number.
    Double,
    /// Money.
    Currency,
    /// Percentage.
    Percent,
    /// Calendar date.
    Date,
    /// Instant.
    Datetime,
    /// Lookup to another object.
    Reference,
    /// Compound address (read-only, built from its components).
    Address,
}

impl FieldType {
    /// The describe `soapType`.
    #[must_use]
    pub fn soap_type(self) -> &'static str {
        match self {
            Self::Id | Self::Reference => "tns:ID",
            Self::Boolean => "xsd:boolean",
            Self::Int => "xsd:int",
            Self::Double | Self::Currency | Self::Percent => "xsd:double",
            Self::Date => "xsd:date",
            Self::Datetime => "xsd:dateTime",
            Self::Address => "urn:address",
            _ => "xsd:string",
        }
    }

    /// `true` for the text-like types whose values are JSON strings.
    #[must_use]
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Self::Id
                | Self::String
                | Self::Textarea
                | Self::Email
                | Self::Phone
                | Self::Url
                | Self::Picklist
                | Self::Multipicklist
                | Self::Reference
        )
    }

    /// `true` for numeric types.
    #[must_use]
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Int | Self::Double | Self::Currency | Self::Percent
        )
    }

    /// Parses a describe type name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase())).ok()
    }
}

/// How generated records get a value for a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Gen {
    /// The record id.
    Id,
    /// Always `false` (live records).
    IsDeleted,
    /// Creation instant.
    CreatedDate,
    /// Last modification instant.
    LastModifiedDate,
    /// System modification stamp.
    SystemModstamp,
    /// A user id (owner, creator, modifier).
    User,
    /// Person's given name.
    FirstName,
    /// Person's family name.
    LastName,
    /// Person's full name.
    FullName,
    /// Company name.
    Company,
    /// Person's e-mail at the company's domain.
    Email,
    /// Company website.
    Website,
    /// Phone number.
    Phone,
    /// Job title.
    Title,
    /// Department.
    Department,
    /// Street of the record's address.
    Street,
    /// City of the record's address.
    City,
    /// State of the record's address.
    State,
    /// Postal code of the record's address.
    PostalCode,
    /// Country of the record's address.
    Country,
    /// A value from the field's picklist.
    Picklist,
    /// One to three values from the field's picklist.
    Multipicklist,
    /// `true` with the given probability.
    Bool(f64),
    /// Integer in a range.
    Int(i64, i64),
    /// Number in a range.
    Number(f64, f64),
    /// Money in a range, rounded to hundreds.
    Money(f64, f64),
    /// Date within `days` days around the record's modification date (negative = before).
    DateNear(i64, i64),
    /// Instant within the record's lifetime.
    DatetimeInLife,
    /// A capitalised phrase of n words.
    Phrase(usize),
    /// A sentence.
    Sentence,
    /// Unique code `PREFIX-000123` from the index.
    Code(&'static str),
    /// Non-unique legacy code shared by pairs of records (drives upsert 300s).
    PairCode(&'static str),
    /// An opportunity- or project-style name built from the company.
    DealName,
    /// Id of a record of the referenced object.
    Reference,
    /// Compound address built from the fields with this prefix.
    Address(&'static str),
    /// Never set (fields added at run time, derived fields).
    Null,
}

/// A picklist entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PicklistValue {
    /// API value.
    pub value: String,
    /// Label.
    pub label: String,
    /// Whether this is the default.
    pub default: bool,
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// API name (`Name`, `Deal_Risk_Score__c`).
    pub name: String,
    /// Label.
    pub label: String,
    /// Type.
    pub ftype: FieldType,
    /// Length for text types.
    pub length: u32,
    /// Precision for numbers.
    pub precision: u32,
    /// Scale for numbers.
    pub scale: u32,
    /// May be null.
    pub nillable: bool,
    /// May be set on insert.
    pub createable: bool,
    /// May be set on update.
    pub updateable: bool,
    /// Custom field (`__c`).
    pub custom: bool,
    /// External id (upsert key).
    pub external_id: bool,
    /// Unique.
    pub unique: bool,
    /// The object's name field.
    pub name_field: bool,
    /// Must be given on insert.
    pub required: bool,
    /// Picklist values.
    pub picklist: Vec<PicklistValue>,
    /// Referenced objects.
    pub reference_to: Vec<String>,
    /// Relationship name (`Account`, `Project__r`).
    pub relationship_name: Option<String>,
    /// Value generator for seeded records.
    pub generator: Gen,
    /// Probability that a generated value is null.
    pub null_rate: f64,
    /// Stable hash of the name, seeds the field's values.
    pub hash: u64,
}

impl FieldDef {
    /// A field with defaults derived from its type.
    #[must_use]
    pub fn new(name: &str, label: &str, ftype: FieldType, generator: Gen) -> Self {
        let (length, precision, scale) = match ftype {
            FieldType::Id | FieldType::Reference => (18, 0, 0),
            FieldType::String | FieldType::Email | FieldType::Url | FieldType::Picklist => {
                (255, 0, 0)
            }
            FieldType::Phone => (40, 0, 0),
            FieldType::Textarea => (32_000, 0, 0),
            FieldType::Multipicklist => (4099, 0, 0),
            FieldType::Int => (0, 9, 0),
            FieldType::Double | FieldType::Percent => (0, 18, 2),
            FieldType::Currency => (0, 18, 2),
            _ => (0, 0, 0),
        };
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            ftype,
            length,
            precision,
            scale,
            nillable: !matches!(ftype, FieldType::Id | FieldType::Boolean),
            createable: true,
            updateable: true,
            custom: name.ends_with("__c"),
            external_id: false,
            unique: false,
            name_field: false,
            required: false,
            picklist: Vec::new(),
            reference_to: Vec::new(),
            relationship_name: None,
            generator,
            null_rate: 0.0,
            hash: hash_str(name),
        }
    }

    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self.nillable = false;
        self
    }

    fn nulls(mut self, rate: f64) -> Self {
        self.null_rate = rate;
        self
    }

    fn values(mut self, values: &[&str]) -> Self {
        self.picklist = values
            .iter()
            .enumerate()
            .map(|(i, v)| PicklistValue {
                value: (*v).to_owned(),
                label: (*v).to_owned(),
                default: i == 0 && self.required,
            })
            .collect();
        self
    }

    fn refers(mut self, object: &str, relationship: &str) -> Self {
        self.reference_to = vec![object.to_owned()];
        self.relationship_name = Some(relationship.to_owned());
        self
    }

    fn external(mut self, unique: bool) -> Self {
        self.external_id = true;
        self.unique = unique;
        self
    }

    fn name_field(mut self) -> Self {
        self.name_field = true;
        self
    }
}

/// One object (sObject type).
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Plural label.
    pub label_plural: String,
    /// Three-character id prefix.
    pub key_prefix: String,
    /// Custom object (`__c`).
    pub custom: bool,
    /// Fields in describe order.
    pub fields: Vec<FieldDef>,
    index: HashMap<String, usize>,
}

impl ObjectDef {
    fn new(name: &str, label: &str, plural: &str, prefix: &str, fields: Vec<FieldDef>) -> Self {
        let mut o = Self {
            name: name.to_owned(),
            label: label.to_owned(),
            label_plural: plural.to_owned(),
            key_prefix: prefix.to_owned(),
            custom: name.ends_with("__c"),
            fields,
            index: HashMap::new(),
        };
        o.reindex();
        o
    }

    /// Rebuilds the name index after the field list changed.
    pub fn reindex(&mut self) {
        self.index = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
    }

    /// A field by name, case-insensitively.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.fields[i])
    }

    /// The field used for `relationshipName` lookups, e.g. `Account` → `AccountId`.
    #[must_use]
    pub fn field_by_relationship(&self, rel: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(rel))
        })
    }
}

/// All objects of one org.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    objects: Vec<Arc<ObjectDef>>,
}

impl Schema {
    /// The objects in describe order.
    #[must_use]
    pub fn objects(&self) -> &[Arc<ObjectDef>] {
        &self.objects
    }

    /// An object by name, case-insensitively.
    #[must_use]
    pub fn object(&self, name: &str) -> Option<&Arc<ObjectDef>> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// An object by id prefix.
    #[must_use]
    pub fn object_by_prefix(&self, prefix: &str) -> Option<&Arc<ObjectDef>> {
        self.objects.iter().find(|o| o.key_prefix == prefix)
    }

    /// Replaces one object's definition (after a schema change).
    pub fn replace(&mut self, def: ObjectDef) {
        if let Some(slot) = self
            .objects
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(&def.name))
        {
            *slot = Arc::new(def);
        }
    }
}

fn system_fields() -> Vec<FieldDef> {
    use FieldType as T;
    vec![
        FieldDef::new("Id", "Record ID", T::Id, Gen::Id).read_only(),
        FieldDef::new("IsDeleted", "Deleted", T::Boolean, Gen::IsDeleted).read_only(),
    ]
}

fn audit_fields() -> Vec<FieldDef> {
    use FieldType as T;
    vec![
        FieldDef::new("OwnerId", "Owner ID", T::Reference, Gen::User)
            .refers("User", "Owner")
            .required(),
        FieldDef::new("CreatedDate", "Created Date", T::Datetime, Gen::CreatedDate).read_only(),
        FieldDef::new("CreatedById", "Created By ID", T::Reference, Gen::User)
            .refers("User", "CreatedBy")
            .read_only(),
        FieldDef::new(
            "LastModifiedDate",
            "Last Modified Date",
            T::Datetime,
            Gen::LastModifiedDate,
        )
        .read_only(),
        FieldDef::new(
            "LastModifiedById",
            "Last Modified By ID",
            T::Reference,
            Gen::User,
        )
        .refers("User", "LastModifiedBy")
        .read_only(),
        FieldDef::new(
            "SystemModstamp",
            "System Modstamp",
            T::Datetime,
            Gen::SystemModstamp,
        )
        .read_only(),
    ]
}

fn address_fields(prefix: &'static str, label: &str) -> Vec<FieldDef> {
    use FieldType as T;
    let n = |s: &str| format!("{prefix}{s}");
    vec![
        FieldDef::new(
            &n("Street"),
            &format!("{label} Street"),
            T::Textarea,
            Gen::Street,
        )
        .nulls(0.1),
        FieldDef::new(&n("City"), &format!("{label} City"), T::String, Gen::City).nulls(0.05),
        FieldDef::new(
            &n("State"),
            &format!("{label} State/Province"),
            T::String,
            Gen::State,
        )
        .nulls(0.05),
        FieldDef::new(
            &n("PostalCode"),
            &format!("{label} Zip/Postal Code"),
            T::String,
            Gen::PostalCode,
        )
        .nulls(0.1),
        FieldDef::new(
            &n("Country"),
            &format!("{label} Country"),
            T::String,
            Gen::Country,
        ),
        FieldDef::new(
            &n("Address"),
            &format!("{label} Address"),
            T::Address,
            Gen::Address(prefix),
        )
        .read_only(),
    ]
}

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Finance",
    "Healthcare",
    "Insurance",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Transportation",
];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

fn user() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("Username", "Username", T::String, Gen::Email).required(),
        FieldDef::new("FirstName", "First Name", T::String, Gen::FirstName),
        FieldDef::new("LastName", "Last Name", T::String, Gen::LastName).required(),
        FieldDef::new("Name", "Full Name", T::String, Gen::FullName)
            .read_only()
            .name_field(),
        FieldDef::new("Email", "Email", T::Email, Gen::Email).required(),
        FieldDef::new("IsActive", "Active", T::Boolean, Gen::Bool(0.95)),
        FieldDef::new("Title", "Title", T::String, Gen::Title),
    ]);
    f.extend(audit_fields().into_iter().filter(|f| f.name != "OwnerId"));
    ObjectDef::new("User", "User", "Users", "005", f)
}

fn account() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("Name", "Account Name", T::String, Gen::Company)
            .required()
            .name_field(),
        FieldDef::new("Type", "Account Type", T::Picklist, Gen::Picklist)
            .values(&[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ])
            .nulls(0.2),
        FieldDef::new("ParentId", "Parent Account ID", T::Reference, Gen::Null)
            .refers("Account", "Parent"),
        FieldDef::new("Industry", "Industry", T::Picklist, Gen::Picklist)
            .values(INDUSTRIES)
            .nulls(0.1),
        FieldDef::new(
            "AnnualRevenue",
            "Annual Revenue",
            T::Currency,
            Gen::Money(1e5, 5e8),
        )
        .nulls(0.3),
        FieldDef::new(
            "NumberOfEmployees",
            "Employees",
            T::Int,
            Gen::Int(1, 50_000),
        )
        .nulls(0.2),
        FieldDef::new("Phone", "Account Phone", T::Phone, Gen::Phone),
        FieldDef::new("Website", "Website", T::Url, Gen::Website).nulls(0.1),
        FieldDef::new(
            "AccountNumber",
            "Account Number",
            T::String,
            Gen::Code("AC"),
        ),
        FieldDef::new("Rating", "Account Rating", T::Picklist, Gen::Picklist)
            .values(&["Hot", "Warm", "Cold"])
            .nulls(0.4),
        FieldDef::new(
            "AccountSource",
            "Account Source",
            T::Picklist,
            Gen::Picklist,
        )
        .values(LEAD_SOURCES)
        .nulls(0.3),
        FieldDef::new(
            "Description",
            "Account Description",
            T::Textarea,
            Gen::Sentence,
        )
        .nulls(0.5),
    ]);
    f.extend(address_fields("Billing", "Billing"));
    f.extend([
        FieldDef::new(
            "CustomerPriority__c",
            "Customer Priority",
            T::Picklist,
            Gen::Picklist,
        )
        .values(&["High", "Low", "Medium"])
        .nulls(0.3),
        FieldDef::new("SLA__c", "SLA", T::Picklist, Gen::Picklist)
            .values(&["Gold", "Silver", "Platinum", "Bronze"])
            .nulls(0.3),
        FieldDef::new("Active__c", "Active", T::Picklist, Gen::Picklist).values(&["Yes", "No"]),
        FieldDef::new(
            "NumberofLocations__c",
            "Number of Locations",
            T::Double,
            Gen::Number(1.0, 250.0),
        )
        .nulls(0.2),
        FieldDef::new(
            "UpsellOpportunity__c",
            "Upsell Opportunity",
            T::Picklist,
            Gen::Picklist,
        )
        .values(&["Maybe", "No", "Yes"]),
        FieldDef::new(
            "SLAExpirationDate__c",
            "SLA Expiration Date",
            T::Date,
            Gen::DateNear(30, 720),
        )
        .nulls(0.3),
        FieldDef::new("External_Id__c", "External Id", T::String, Gen::Code("ACC")).external(true),
    ]);
    f.extend(audit_fields());
    ObjectDef::new("Account", "Account", "Accounts", "001", f)
}

fn contact() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("AccountId", "Account ID", T::Reference, Gen::Reference)
            .refers("Account", "Account")
            .nulls(0.05),
        FieldDef::new("FirstName", "First Name", T::String, Gen::FirstName),
        FieldDef::new("LastName", "Last Name", T::String, Gen::LastName).required(),
        FieldDef::new("Name", "Full Name", T::String, Gen::FullName)
            .read_only()
            .name_field(),
        FieldDef::new("Email", "Email", T::Email, Gen::Email).nulls(0.05),
        FieldDef::new("Phone", "Business Phone", T::Phone, Gen::Phone).nulls(0.1),
        FieldDef::new("MobilePhone", "Mobile Phone", T::Phone, Gen::Phone).nulls(0.4),
        FieldDef::new("Title", "Title", T::String, Gen::Title).nulls(0.2),
        FieldDef::new("Department", "Department", T::String, Gen::Department).nulls(0.3),
        FieldDef::new(
            "AssistantName",
            "Assistant's Name",
            T::String,
            Gen::FullName,
        )
        .nulls(0.8),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist, Gen::Picklist)
            .values(LEAD_SOURCES)
            .nulls(0.3),
        FieldDef::new(
            "Birthdate",
            "Birthdate",
            T::Date,
            Gen::DateNear(-25_000, -7_000),
        )
        .nulls(0.6),
        FieldDef::new(
            "HasOptedOutOfEmail",
            "Email Opt Out",
            T::Boolean,
            Gen::Bool(0.1),
        ),
        FieldDef::new(
            "Description",
            "Contact Description",
            T::Textarea,
            Gen::Sentence,
        )
        .nulls(0.7),
    ]);
    f.extend(address_fields("Mailing", "Mailing"));
    f.extend([
        FieldDef::new("External_Id__c", "External Id", T::String, Gen::Code("CON")).external(true),
        FieldDef::new("Legacy_Id__c", "Legacy Id", T::String, Gen::PairCode("LEG")).external(false),
        FieldDef::new("Languages__c", "Languages", T::String, Gen::Phrase(1)).nulls(0.5),
        FieldDef::new("Level__c", "Level", T::Picklist, Gen::Picklist)
            .values(&["Primary", "Secondary", "Tertiary"])
            .nulls(0.3),
    ]);
    f.extend(audit_fields());
    ObjectDef::new("Contact", "Contact", "Contacts", "003", f)
}

fn lead() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("FirstName", "First Name", T::String, Gen::FirstName),
        FieldDef::new("LastName", "Last Name", T::String, Gen::LastName).required(),
        FieldDef::new("Name", "Full Name", T::String, Gen::FullName)
            .read_only()
            .name_field(),
        FieldDef::new("Company", "Company", T::String, Gen::Company).required(),
        FieldDef::new("Title", "Title", T::String, Gen::Title).nulls(0.3),
        FieldDef::new("Email", "Email", T::Email, Gen::Email).nulls(0.1),
        FieldDef::new("Phone", "Phone", T::Phone, Gen::Phone).nulls(0.2),
        FieldDef::new("Status", "Lead Status", T::Picklist, Gen::Picklist)
            .required()
            .values(&[
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ]),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist, Gen::Picklist)
            .values(LEAD_SOURCES)
            .nulls(0.2),
        FieldDef::new("Industry", "Industry", T::Picklist, Gen::Picklist)
            .values(INDUSTRIES)
            .nulls(0.3),
        FieldDef::new("Rating", "Rating", T::Picklist, Gen::Picklist)
            .values(&["Hot", "Warm", "Cold"])
            .nulls(0.3),
        FieldDef::new(
            "AnnualRevenue",
            "Annual Revenue",
            T::Currency,
            Gen::Money(1e5, 1e8),
        )
        .nulls(0.5),
        FieldDef::new(
            "NumberOfEmployees",
            "Employees",
            T::Int,
            Gen::Int(1, 10_000),
        )
        .nulls(0.4),
        FieldDef::new("IsConverted", "Converted", T::Boolean, Gen::Bool(0.1)),
        FieldDef::new("CleanStatus", "Clean Status", T::Picklist, Gen::Picklist).values(&[
            "Pending",
            "Matched",
            "Different",
            "Acknowledged",
            "NotFound",
            "Inactive",
        ]),
    ]);
    f.extend(address_fields("", "Lead"));
    f.push(
        FieldDef::new(
            "External_Id__c",
            "External Id",
            T::String,
            Gen::Code("LEAD"),
        )
        .external(true),
    );
    f.extend(audit_fields());
    ObjectDef::new("Lead", "Lead", "Leads", "00Q", f)
}

fn opportunity() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("AccountId", "Account ID", T::Reference, Gen::Reference)
            .refers("Account", "Account")
            .nulls(0.05),
        FieldDef::new("Name", "Name", T::String, Gen::DealName)
            .required()
            .name_field(),
        FieldDef::new(
            "Amount",
            "Amount",
            T::Currency,
            Gen::Money(1_000.0, 500_000.0),
        )
        .nulls(0.1),
        FieldDef::new("StageName", "Stage", T::Picklist, Gen::Picklist)
            .required()
            .values(&[
                "Prospecting",
                "Qualification",
                "Needs Analysis",
                "Value Proposition",
                "Id. Decision Makers",
                "Perception Analysis",
                "Proposal/Price Quote",
                "Negotiation/Review",
                "Closed Won",
                "Closed Lost",
            ]),
        FieldDef::new("CloseDate", "Close Date", T::Date, Gen::DateNear(-120, 180)).required(),
        FieldDef::new(
            "Probability",
            "Probability (%)",
            T::Percent,
            Gen::Int(0, 100),
        ),
        FieldDef::new("Type", "Opportunity Type", T::Picklist, Gen::Picklist)
            .values(&[
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ])
            .nulls(0.2),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist, Gen::Picklist)
            .values(LEAD_SOURCES)
            .nulls(0.3),
        FieldDef::new("NextStep", "Next Step", T::String, Gen::Phrase(3)).nulls(0.4),
        FieldDef::new("Description", "Description", T::Textarea, Gen::Sentence).nulls(0.6),
        FieldDef::new(
            "ForecastCategoryName",
            "Forecast Category",
            T::Picklist,
            Gen::Picklist,
        )
        .values(&["Omitted", "Pipeline", "Best Case", "Commit", "Closed"]),
        FieldDef::new("External_Id__c", "External Id", T::String, Gen::Code("OPP")).external(true),
        FieldDef::new(
            "Deal_Risk_Score__c",
            "Deal Risk Score",
            T::Double,
            Gen::Number(0.0, 100.0),
        )
        .nulls(0.2),
    ]);
    f.extend(audit_fields());
    ObjectDef::new("Opportunity", "Opportunity", "Opportunities", "006", f)
}

fn project() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.push(
        FieldDef::new("Name", "Project Name", T::String, Gen::DealName)
            .name_field()
            .nulls(0.0),
    );
    let pick = |name: &str, label: &str, vals: &[&str], nulls: f64| {
        FieldDef::new(name, label, T::Picklist, Gen::Picklist)
            .values(vals)
            .nulls(nulls)
    };
    f.extend([
        FieldDef::new("Account__c", "Account", T::Reference, Gen::Reference)
            .refers("Account", "Account__r")
            .nulls(0.05),
        FieldDef::new(
            "Primary_Contact__c",
            "Primary Contact",
            T::Reference,
            Gen::Reference,
        )
        .refers("Contact", "Primary_Contact__r")
        .nulls(0.2),
        FieldDef::new(
            "Project_Code__c",
            "Project Code",
            T::String,
            Gen::Code("PRJ"),
        )
        .external(true),
        pick(
            "Status__c",
            "Status",
            &[
                "Planned",
                "In Progress",
                "On Hold",
                "Completed",
                "Cancelled",
            ],
            0.0,
        ),
        pick(
            "Priority__c",
            "Priority",
            &["Low", "Medium", "High", "Critical"],
            0.1,
        ),
        pick(
            "Phase__c",
            "Phase",
            &[
                "Discovery",
                "Design",
                "Build",
                "Test",
                "Rollout",
                "Hypercare",
            ],
            0.1,
        ),
        pick(
            "Region__c",
            "Region",
            &["AMER", "EMEA", "APAC", "LATAM"],
            0.05,
        ),
        pick(
            "Delivery_Model__c",
            "Delivery Model",
            &["Onsite", "Remote", "Hybrid"],
            0.2,
        ),
        pick("Health__c", "Health", &["Green", "Amber", "Red"], 0.1),
        FieldDef::new("Tags__c", "Tags", T::Multipicklist, Gen::Multipicklist)
            .values(&[
                "migration",
                "integration",
                "analytics",
                "security",
                "training",
                "support",
            ])
            .nulls(0.3),
        FieldDef::new(
            "Budget__c",
            "Budget",
            T::Currency,
            Gen::Money(5_000.0, 2_000_000.0),
        )
        .nulls(0.1),
        FieldDef::new(
            "Actual_Cost__c",
            "Actual Cost",
            T::Currency,
            Gen::Money(0.0, 1_500_000.0),
        )
        .nulls(0.3),
        FieldDef::new(
            "Forecast_Revenue__c",
            "Forecast Revenue",
            T::Currency,
            Gen::Money(10_000.0, 3_000_000.0),
        )
        .nulls(0.2),
        FieldDef::new("Margin__c", "Margin", T::Percent, Gen::Number(-20.0, 60.0)).nulls(0.3),
        FieldDef::new("Completion__c", "Completion", T::Percent, Gen::Int(0, 100)),
        FieldDef::new(
            "Deal_Risk_Score__c",
            "Deal Risk Score",
            T::Double,
            Gen::Number(0.0, 100.0),
        )
        .nulls(0.2),
        FieldDef::new(
            "Hours_Estimated__c",
            "Hours Estimated",
            T::Double,
            Gen::Number(10.0, 20_000.0),
        ),
        FieldDef::new(
            "Hours_Logged__c",
            "Hours Logged",
            T::Double,
            Gen::Number(0.0, 15_000.0),
        )
        .nulls(0.2),
        FieldDef::new("Team_Size__c", "Team Size", T::Int, Gen::Int(1, 60)),
        FieldDef::new("Milestones__c", "Milestones", T::Int, Gen::Int(1, 24)).nulls(0.2),
        FieldDef::new("Open_Issues__c", "Open Issues", T::Int, Gen::Int(0, 120)).nulls(0.3),
        FieldDef::new(
            "Satisfaction__c",
            "Satisfaction",
            T::Double,
            Gen::Number(1.0, 5.0),
        )
        .nulls(0.5),
        FieldDef::new(
            "Start_Date__c",
            "Start Date",
            T::Date,
            Gen::DateNear(-400, 30),
        ),
        FieldDef::new("End_Date__c", "End Date", T::Date, Gen::DateNear(30, 600)).nulls(0.2),
        FieldDef::new(
            "Go_Live_Date__c",
            "Go-Live Date",
            T::Date,
            Gen::DateNear(0, 400),
        )
        .nulls(0.4),
        FieldDef::new(
            "Last_Review__c",
            "Last Review",
            T::Datetime,
            Gen::DatetimeInLife,
        )
        .nulls(0.3),
        FieldDef::new(
            "Kickoff_Meeting__c",
            "Kickoff Meeting",
            T::Datetime,
            Gen::DatetimeInLife,
        )
        .nulls(0.2),
        FieldDef::new("Is_Billable__c", "Billable", T::Boolean, Gen::Bool(0.8)),
        FieldDef::new("Is_Strategic__c", "Strategic", T::Boolean, Gen::Bool(0.2)),
        FieldDef::new(
            "Requires_Travel__c",
            "Requires Travel",
            T::Boolean,
            Gen::Bool(0.3),
        ),
        FieldDef::new(
            "Has_Subcontractors__c",
            "Has Subcontractors",
            T::Boolean,
            Gen::Bool(0.25),
        ),
        FieldDef::new("Sponsor_Name__c", "Sponsor Name", T::String, Gen::FullName).nulls(0.1),
        FieldDef::new("Sponsor_Email__c", "Sponsor Email", T::Email, Gen::Email).nulls(0.1),
        FieldDef::new("Sponsor_Phone__c", "Sponsor Phone", T::Phone, Gen::Phone).nulls(0.3),
        FieldDef::new("Sponsor_Title__c", "Sponsor Title", T::String, Gen::Title).nulls(0.2),
        FieldDef::new(
            "Client_Company__c",
            "Client Company",
            T::String,
            Gen::Company,
        ),
        FieldDef::new("Project_Site__c", "Project Site", T::Url, Gen::Website).nulls(0.4),
        FieldDef::new("Site_Street__c", "Site Street", T::String, Gen::Street).nulls(0.2),
        FieldDef::new("Site_City__c", "Site City", T::String, Gen::City),
        FieldDef::new("Site_State__c", "Site State", T::String, Gen::State).nulls(0.1),
        FieldDef::new(
            "Site_Postal_Code__c",
            "Site Postal Code",
            T::String,
            Gen::PostalCode,
        )
        .nulls(0.1),
        FieldDef::new("Site_Country__c", "Site Country", T::String, Gen::Country),
        FieldDef::new("Summary__c", "Summary", T::Textarea, Gen::Sentence).nulls(0.1),
        FieldDef::new("Next_Steps__c", "Next Steps", T::String, Gen::Phrase(4)).nulls(0.3),
        FieldDef::new("Risks__c", "Risks", T::Textarea, Gen::Sentence).nulls(0.5),
        FieldDef::new(
            "Legacy_Ref__c",
            "Legacy Reference",
            T::String,
            Gen::PairCode("OLD"),
        )
        .external(false),
    ]);
    f.extend(audit_fields());
    ObjectDef::new("Project__c", "Project", "Projects", "a01", f)
}

fn invoice() -> ObjectDef {
    use FieldType as T;
    let mut f = system_fields();
    f.extend([
        FieldDef::new("Name", "Invoice Number", T::String, Gen::Code("INV"))
            .name_field()
            .read_only(),
        FieldDef::new("Project__c", "Project", T::Reference, Gen::Reference)
            .refers("Project__c", "Project__r")
            .required(),
        FieldDef::new(
            "Amount__c",
            "Amount",
            T::Currency,
            Gen::Money(500.0, 250_000.0),
        )
        .required(),
        FieldDef::new("Status__c", "Status", T::Picklist, Gen::Picklist)
            .values(&["Draft", "Sent", "Paid", "Overdue", "Void"]),
        FieldDef::new(
            "Issue_Date__c",
            "Issue Date",
            T::Date,
            Gen::DateNear(-60, 0),
        ),
        FieldDef::new("Due_Date__c", "Due Date", T::Date, Gen::DateNear(0, 60)),
        FieldDef::new("Paid__c", "Paid", T::Boolean, Gen::Bool(0.6)),
        FieldDef::new(
            "Tax_Rate__c",
            "Tax Rate",
            T::Percent,
            Gen::Number(0.0, 25.0),
        )
        .nulls(0.2),
        FieldDef::new("Line_Items__c", "Line Items", T::Int, Gen::Int(1, 40)),
        FieldDef::new(
            "Currency_Code__c",
            "Currency Code",
            T::Picklist,
            Gen::Picklist,
        )
        .values(&["USD", "EUR", "GBP", "CAD", "AUD"]),
        FieldDef::new("Billing_Email__c", "Billing Email", T::Email, Gen::Email).nulls(0.1),
        FieldDef::new("Notes__c", "Notes", T::Textarea, Gen::Sentence).nulls(0.6),
        FieldDef::new(
            "External_Id__c",
            "External Id",
            T::String,
            Gen::Code("INVX"),
        )
        .external(true),
    ]);
    f.extend(audit_fields());
    ObjectDef::new("Invoice__c", "Invoice", "Invoices", "a02", f)
}

/// The catalogue every org starts with.
#[must_use]
pub fn default_schema() -> Schema {
    Schema {
        objects: [
            user(),
            account(),
            contact(),
            lead(),
            opportunity(),
            project(),
            invoice(),
        ]
        .into_iter()
        .map(Arc::new)
        .collect(),
    }
}

/// Default record counts per object (overridable per org).
#[must_use]
pub fn default_counts() -> Vec<(String, u64)> {
    [
        ("User", 5),
        ("Account", 200),
        ("Contact", 600),
        ("Lead", 300),
        ("Opportunity", 300),
        ("Project__c", 1000),
        ("Invoice__c", 500),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect()
}

/// A field added at run time through the admin surface: existing records read `null`.
#[must_use]
pub fn runtime_field(
    name: &str,
    label: &str,
    ftype: FieldType,
    picklist: &[String],
    reference_to: Option<&str>,
) -> FieldDef {
    let mut f = FieldDef::new(name, label, ftype, Gen::Null);
    f.picklist = picklist
        .iter()
        .map(|v| PicklistValue {
            value: v.clone(),
            label: v.clone(),
            default: false,
        })
        .collect();
    if let Some(target) = reference_to {
        f.reference_to = vec![target.to_owned()];
        f.relationship_name = Some(
            name.strip_suffix("__c")
                .map_or_else(|| name.to_owned(), |s| format!("{s}__r")),
        );
    }
    if ftype == FieldType::Boolean {
        f.nillable = false;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_what_the_issue_asks_for() {
        let s = default_schema();
        for name in [
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            "Project__c",
            "Invoice__c",
        ] {
            assert!(s.object(name).is_some(), "{name}");
        }
        let p = s
            .object("project__c")
            .map(|o| o.fields.iter().filter(|f| f.custom).count());
        assert!(p.unwrap_or(0) >= 40, "{p:?}");
        let inv = s.object("Invoice__c");
        let rel = inv
            .and_then(|o| o.field("Project__c"))
            .and_then(|f| f.relationship_name.clone());
        assert_eq!(rel.as_deref(), Some("Project__r"));
    }
}
