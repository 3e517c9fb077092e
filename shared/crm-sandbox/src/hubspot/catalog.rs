//! Object types and property definitions of a portal, and how seeded values are derived.
//!
//! A portal has the standard objects contacts (`0-1`), companies (`0-2`) and deals (`0-3`)
//! plus custom objects (`2-…`). Each property definition carries a [`Gen`] that says how the
//! value of record `i` is derived from `(seed, portal, object, i)`; properties added later
//! (through the API or a schema-change fault) have no generator, so seeded records have no
//! value for them, as in a real portal.

use crate::common::datagen;
use crate::common::rng::{SeededRng, derive_index, derive_seed, hash_str};
use serde::Serialize;

/// A HubSpot property type (`type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropType {
    /// `string`
    String,
    /// `number`
    Number,
    /// `date` (midnight UTC, ISO date on the wire)
    Date,
    /// `datetime`
    Datetime,
    /// `enumeration`
    Enumeration,
    /// `bool`
    Bool,
    /// `phone_number`
    PhoneNumber,
}

impl PropType {
    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "number" => Self::Number,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "enumeration" => Self::Enumeration,
            "bool" => Self::Bool,
            "phone_number" => Self::PhoneNumber,
            _ => return None,
        })
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Enumeration => "enumeration",
            Self::Bool => "bool",
            Self::PhoneNumber => "phone_number",
        }
    }

    /// The default `fieldType` for the type.
    #[must_use]
    pub fn default_field_type(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Number => "number",
            Self::Date | Self::Datetime => "date",
            Self::Enumeration => "select",
            Self::Bool => "booleancheckbox",
            Self::PhoneNumber => "phonenumber",
        }
    }
}

/// One option of an enumeration property.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropOption {
    /// Display label.
    pub label: String,
    /// Stored value.
    pub value: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Order in pickers.
    #[serde(default)]
    pub display_order: i64,
    /// Hidden from pickers.
    #[serde(default)]
    pub hidden: bool,
}

/// How seeded records get a value for a property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gen {
    /// No value (properties created after seeding).
    None,
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Unique, reversible e-mail: `first.last{index}@domain`.
    Email,
    /// Phone number.
    Phone,
    /// Company name.
    CompanyName,
    /// Company domain.
    Domain,
    /// `https://www.<domain>`.
    Website,
    /// City.
    City,
    /// State code.
    State,
    /// Country.
    Country,
    /// Postal code.
    Zip,
    /// Street address.
    Street,
    /// Job title.
    JobTitle,
    /// Deal name derived from company and a phrase.
    DealName,
    /// One of the property's options.
    Pick,
    /// Whole number in a range.
    Int(i64, i64),
    /// Money amount in a range, whole hundreds.
    Money(i64, i64),
    /// Number with two decimals in a range.
    Decimal(i64, i64),
    /// `true` with the given percentage.
    Bool(u8),
    /// Date within days around the genesis instant.
    Date(i64, i64),
    /// Datetime within days around the genesis instant.
    Datetime(i64, i64),
    /// A short phrase of n words.
    Phrase(u8),
    /// A sentence.
    Sentence,
    /// Unique, reversible code: `{prefix}-{index:06}`.
    Code(&'static str),
    /// Person e-mail not tied to uniqueness (e.g. an owner's address).
    PersonEmail,
    /// Same type-appropriate value as a newly retyped property would get.
    ByType,
}

/// A property definition (`/crm/v3/properties/{type}` item).
#[derive(Debug, Clone)]
pub struct PropertyDef {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Type.
    pub ptype: PropType,
    /// Field type (UI control).
    pub field_type: String,
    /// Property group.
    pub group_name: String,
    /// Description.
    pub description: String,
    /// Enumeration options.
    pub options: Vec<PropOption>,
    /// Display order (-1 for most HubSpot-defined ones).
    pub display_order: i64,
    /// HubSpot-defined rather than custom.
    pub hubspot_defined: bool,
    /// Values must be unique (usable as `idProperty`).
    pub has_unique_value: bool,
    /// Hidden in the UI.
    pub hidden: bool,
    /// Value set by HubSpot only; writes are ignored.
    pub read_only_value: bool,
    /// Shown on forms.
    pub form_field: bool,
    /// Creation instant, epoch ms.
    pub created_at_ms: i64,
    /// Last definition change, epoch ms.
    pub updated_at_ms: i64,
    /// Seeded value generator.
    pub generator: Gen,
}

/// The kind of an object type, which decides naming rules of its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `0-1`: uses `lastmodifieddate`.
    Contact,
    /// `0-2`
    Company,
    /// `0-3`
    Deal,
    /// `2-…`
    Custom,
}

/// An object type of a portal.
#[derive(Debug, Clone)]
pub struct ObjectTypeDef {
    /// `0-1`, `2-3456789`, …
    pub type_id: String,
    /// Schema `id` (`"1"` for contacts, the number after `2-` for custom objects).
    pub schema_id: String,
    /// `contacts`, or the custom schema name.
    pub name: String,
    /// Kind.
    pub kind: ObjectKind,
    /// Singular label.
    pub singular: String,
    /// Plural label.
    pub plural: String,
    /// `CONTACT` or `p{portalId}_{name}`.
    pub fully_qualified_name: String,
    /// Primary display property.
    pub primary_display_property: String,
    /// Required properties on create.
    pub required_properties: Vec<String>,
    /// Searchable properties (free-text `query`).
    pub searchable_properties: Vec<String>,
    /// Properties (ordered for listing).
    pub properties: Vec<PropertyDef>,
    /// Properties returned when a read names none.
    pub default_properties: Vec<String>,
    /// Schema creation instant, epoch ms.
    pub created_at_ms: i64,
    /// Schema change instant, epoch ms.
    pub updated_at_ms: i64,
}

impl ObjectTypeDef {
    /// The property holding the creation date.
    #[must_use]
    pub fn created_property(&self) -> &'static str {
        match self.kind {
            ObjectKind::Custom => "hs_createdate",
            _ => "createdate",
        }
    }

    /// The property holding the last-modified date (`lastmodifieddate` for contacts,
    /// `hs_lastmodifieddate` for everything else).
    #[must_use]
    pub fn modified_property(&self) -> &'static str {
        match self.kind {
            ObjectKind::Contact => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// The property definition with this name.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The singular upper-case word HubSpot uses in messages (`CONTACT`, `COMPANY`, …).
    #[must_use]
    pub fn message_word(&self) -> String {
        match self.kind {
            ObjectKind::Contact => "CONTACT".to_owned(),
            ObjectKind::Company => "COMPANY".to_owned(),
            ObjectKind::Deal => "DEAL".to_owned(),
            ObjectKind::Custom => self.fully_qualified_name.clone(),
        }
    }

    /// The singular lower-case subscription prefix (`contact`, `company`, `deal`, or `object`).
    #[must_use]
    pub fn subscription_prefix(&self) -> &'static str {
        match self.kind {
            ObjectKind::Contact => "contact",
            ObjectKind::Company => "company",
            ObjectKind::Deal => "deal",
            ObjectKind::Custom => "object",
        }
    }

    /// Whether `name` addresses this type (`contacts`, `contact`, `0-1`, `p_name`, fqn).
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        if name == self.type_id || name.eq_ignore_ascii_case(&self.name) {
            return true;
        }
        match self.kind {
            ObjectKind::Custom => {
                name.strip_prefix("p_") == Some(self.name.as_str())
                    || name == self.fully_qualified_name
            }
            _ => {
                let singular = self.name.trim_end_matches('s');
                let singular = if self.kind == ObjectKind::Company {
                    "company"
                } else {
                    singular
                };
                name.eq_ignore_ascii_case(singular)
            }
        }
    }
}

/// The instant seeded data is "as of": every seeded record was created and last modified
/// before it, so records changed through the API always sort after seeded ones.
pub const GENESIS_MS: i64 = 1_748_736_000_000; // 2025-06-01T00:00:00Z

const DAY_MS: i64 = 86_400_000;
/// Seeded records are spread over the three years before [`GENESIS_MS`].
const SPAN_MS: i64 = 3 * 365 * DAY_MS;

/// Everything needed to derive seeded records of one object type.
#[derive(Debug, Clone, Copy)]
pub struct SeedCtx {
    /// Seed of this object type in this portal.
    pub object_seed: u64,
    /// Number of seeded records.
    pub count: u64,
}

impl SeedCtx {
    /// The context of `type_id` in `portal_id`.
    #[must_use]
    pub fn new(seed: u64, portal_id: u64, type_id: &str, count: u64) -> Self {
        Self {
            object_seed: derive_seed(seed, &[&portal_id.to_string(), type_id]),
            count,
        }
    }

    fn rng(&self, key: &str, index: u64) -> SeededRng {
        SeededRng::new(derive_index(self.object_seed ^ hash_str(key), index))
    }

    /// Creation instant of seeded record `index` (ids grow with creation time).
    #[must_use]
    pub fn created_ms(&self, index: u64) -> i64 {
        let count = self.count.max(1) as i64;
        let step = (SPAN_MS / count).max(1);
        let jitter = self.rng("createdAt", index).below(step as u64) as i64;
        GENESIS_MS - SPAN_MS + (index as i64) * step + jitter
    }

    /// Last-modified instant of seeded record `index`, between creation and genesis.
    #[must_use]
    pub fn updated_ms(&self, index: u64) -> i64 {
        let created = self.created_ms(index);
        let room = (GENESIS_MS - created).max(1) as u64;
        let mut r = self.rng("updatedAt", index);
        // A third of the records were never touched after creation.
        if r.below(3) == 0 {
            return created;
        }
        created + r.below(room) as i64
    }

    fn first(&self, i: u64) -> &'static str {
        datagen::first_name(&mut self.rng("firstname", i))
    }

    fn last(&self, i: u64) -> &'static str {
        datagen::last_name(&mut self.rng("lastname", i))
    }

    fn company(&self, i: u64) -> String {
        datagen::company(&mut self.rng("company", i))
    }

    fn city(&self, i: u64) -> datagen::City {
        datagen::city(&mut self.rng("city", i))
    }

    /// The seeded value of `prop` for record `index`, `None` when the record has none.
    #[must_use]
    pub fn value(&self, prop: &PropertyDef, index: u64) -> Option<String> {
        let mut r = self.rng(&prop.name, index);
        let generator = if prop.generator == Gen::ByType {
            by_type(prop.ptype)
        } else {
            prop.generator
        };
        let v = match generator {
            Gen::None | Gen::ByType => return None,
            Gen::FirstName => self.first(index).to_owned(),
            Gen::LastName => self.last(index).to_owned(),
            Gen::Email => {
                let local = datagen::email(self.first(index), self.last(index), "x");
                let local = local.trim_end_matches("@x");
                format!(
                    "{local}{index}@{}",
                    datagen::domain_for(&self.company(index))
                )
            }
            Gen::PersonEmail => {
                let f = datagen::first_name(&mut r);
                let l = datagen::last_name(&mut r);
                datagen::email(f, l, "example.com")
            }
            Gen::Phone => datagen::phone(&mut r, &self.city(index)),
            Gen::CompanyName => self.company(index),
            Gen::Domain => datagen::domain_for(&self.company(index)),
            Gen::Website => format!("https://www.{}", datagen::domain_for(&self.company(index))),
            Gen::City => self.city(index).city.to_owned(),
            Gen::State => self.city(index).state.to_owned(),
            Gen::Country => self.city(index).country.to_owned(),
            Gen::Zip => datagen::postal_code(&mut r, &self.city(index)),
            Gen::Street => datagen::street(&mut r),
            Gen::JobTitle => datagen::title(&mut r).to_owned(),
            Gen::DealName => format!("{} - {}", self.company(index), datagen::phrase(&mut r, 2)),
            Gen::Pick => {
                if prop.options.is_empty() {
                    return None;
                }
                r.pick(&prop.options).value.clone()
            }
            Gen::Int(lo, hi) => r.range_i64(lo, hi).to_string(),
            Gen::Money(lo, hi) => format!("{}", datagen::amount(&mut r, lo as f64, hi as f64)),
            Gen::Decimal(lo, hi) => {
                let cents = r.range_i64(lo * 100, hi * 100);
                format!("{}.{:02}", cents / 100, (cents % 100).abs())
            }
            Gen::Bool(pct) => (r.below(100) < u64::from(pct)).to_string(),
            Gen::Date(from, to) => {
                let d = GENESIS_MS + r.range_i64(from, to) * DAY_MS;
                iso_date(d - d.rem_euclid(DAY_MS))
            }
            Gen::Datetime(from, to) => iso_ms(GENESIS_MS + r.range_i64(from * DAY_MS, to * DAY_MS)),
            Gen::Phrase(n) => datagen::phrase(&mut r, usize::from(n)),
            Gen::Sentence => datagen::sentence(&mut r),
            Gen::Code(prefix) => format!("{prefix}-{index:06}"),
        };
        Some(v)
    }

    /// The seeded record index whose unique `prop` has `value`, if any (used for uniqueness
    /// checks and upserts by `idProperty` without scanning).
    #[must_use]
    pub fn reverse_unique(&self, prop: &PropertyDef, value: &str) -> Option<u64> {
        let index = match prop.generator {
            Gen::Email => {
                let local = value.split('@').next()?;
                let digits: String = local
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let digits: String = digits.chars().rev().collect();
                digits.parse::<u64>().ok()?
            }
            Gen::Code(prefix) => value
                .strip_prefix(prefix)?
                .strip_prefix('-')?
                .parse::<u64>()
                .ok()?,
            _ => return None,
        };
        if index >= self.count {
            return None;
        }
        let seeded = self.value(prop, index)?;
        seeded.eq_ignore_ascii_case(value).then_some(index)
    }
}

fn by_type(t: PropType) -> Gen {
    match t {
        PropType::String => Gen::Phrase(3),
        PropType::Number => Gen::Int(0, 10_000),
        PropType::Date => Gen::Date(-700, 200),
        PropType::Datetime => Gen::Datetime(-700, 0),
        PropType::Enumeration => Gen::Pick,
        PropType::Bool => Gen::Bool(50),
        PropType::PhoneNumber => Gen::Phone,
    }
}

/// Formats epoch ms like HubSpot: `2025-11-03T23:36:13.632Z`.
#[must_use]
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Formats epoch ms as a date (`2025-11-03`).
#[must_use]
pub fn iso_date(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Parses a date-time filter/update value: RFC 3339, a bare date, or epoch milliseconds.
#[must_use]
pub fn parse_instant_ms(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

fn opts(values: &[(&str, &str)]) -> Vec<PropOption> {
    values
        .iter()
        .enumerate()
        .map(|(i, (value, label))| PropOption {
            label: (*label).to_owned(),
            value: (*value).to_owned(),
            description: String::new(),
            display_order: i as i64,
            hidden: false,
        })
        .collect()
}

fn bool_opts() -> Vec<PropOption> {
    opts(&[("true", "Yes"), ("false", "No")])
}

struct P {
    name: &'static str,
    label: &'static str,
    ptype: PropType,
    field_type: &'static str,
    group: &'static str,
    generator: Gen,
    options: Vec<PropOption>,
}

fn p(
    name: &'static str,
    label: &'static str,
    ptype: PropType,
    group: &'static str,
    generator: Gen,
) -> P {
    P {
        name,
        label,
        ptype,
        field_type: ptype.default_field_type(),
        group,
        generator,
        options: Vec::new(),
    }
}

fn pe(name: &'static str, label: &'static str, group: &'static str, options: Vec<PropOption>) -> P {
    P {
        name,
        label,
        ptype: PropType::Enumeration,
        field_type: "select",
        group,
        generator: Gen::Pick,
        options,
    }
}

const CREATED_AT: i64 = 1_593_532_657_277; // 2020-06-30T15:57:37.277Z, like HubSpot's own

fn build(
    props: Vec<P>,
    hubspot_defined: bool,
    unique: &[&str],
    read_only: &[&str],
) -> Vec<PropertyDef> {
    props
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let options = if p.ptype == PropType::Bool && p.options.is_empty() {
                bool_opts()
            } else {
                p.options
            };
            let ro = read_only.contains(&p.name);
            PropertyDef {
                name: p.name.to_owned(),
                label: p.label.to_owned(),
                ptype: p.ptype,
                field_type: if ro && p.ptype == PropType::Datetime {
                    "date".to_owned()
                } else {
                    p.field_type.to_owned()
                },
                group_name: p.group.to_owned(),
                description: String::new(),
                options,
                display_order: if hubspot_defined { -1 } else { i as i64 },
                hubspot_defined,
                has_unique_value: unique.contains(&p.name),
                hidden: false,
                read_only_value: ro,
                form_field: !ro && hubspot_defined,
                created_at_ms: CREATED_AT + i as i64 * 61,
                updated_at_ms: CREATED_AT + i as i64 * 61,
                generator: p.generator,
            }
        })
        .collect()
}

fn system_props(kind: ObjectKind) -> Vec<P> {
    use PropType::{Datetime, Number};
    let (created, modified) = match kind {
        ObjectKind::Contact => ("createdate", "lastmodifieddate"),
        ObjectKind::Custom => ("hs_createdate", "hs_lastmodifieddate"),
        _ => ("createdate", "hs_lastmodifieddate"),
    };
    vec![
        p(created, "Create Date", Datetime, "system", Gen::None),
        p(
            modified,
            "Last Modified Date",
            Datetime,
            "system",
            Gen::None,
        ),
        p("hs_object_id", "Record ID", Number, "system", Gen::None),
    ]
}

const SYSTEM_READ_ONLY: &[&str] = &[
    "createdate",
    "hs_createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_object_id",
];

fn lifecycle() -> Vec<PropOption> {
    opts(&[
        ("subscriber", "Subscriber"),
        ("lead", "Lead"),
        ("marketingqualifiedlead", "Marketing Qualified Lead"),
        ("salesqualifiedlead", "Sales Qualified Lead"),
        ("opportunity", "Opportunity"),
        ("customer", "Customer"),
        ("evangelist", "Evangelist"),
        ("other", "Other"),
    ])
}

fn standard(kind: ObjectKind) -> Vec<PropertyDef> {
    use PropType::{Datetime, Number, PhoneNumber, String as S};
    let mut hs: Vec<P> = match kind {
        ObjectKind::Contact => vec![
            p(
                "firstname",
                "First Name",
                S,
                "contactinformation",
                Gen::FirstName,
            ),
            p(
                "lastname",
                "Last Name",
                S,
                "contactinformation",
                Gen::LastName,
            ),
            p("email", "Email", S, "contactinformation", Gen::Email),
            p(
                "phone",
                "Phone Number",
                PhoneNumber,
                "contactinformation",
                Gen::Phone,
            ),
            p(
                "company",
                "Company Name",
                S,
                "contactinformation",
                Gen::CompanyName,
            ),
            p(
                "website",
                "Website URL",
                S,
                "contactinformation",
                Gen::Website,
            ),
            p(
                "jobtitle",
                "Job Title",
                S,
                "contactinformation",
                Gen::JobTitle,
            ),
            p(
                "address",
                "Street Address",
                S,
                "contactinformation",
                Gen::Street,
            ),
            p("city", "City", S, "contactinformation", Gen::City),
            p("state", "State/Region", S, "contactinformation", Gen::State),
            p("zip", "Postal Code", S, "contactinformation", Gen::Zip),
            p(
                "country",
                "Country/Region",
                S,
                "contactinformation",
                Gen::Country,
            ),
            pe(
                "lifecyclestage",
                "Lifecycle Stage",
                "contactinformation",
                lifecycle(),
            ),
            pe(
                "hs_lead_status",
                "Lead Status",
                "sales_properties",
                opts(&[
                    ("NEW", "New"),
                    ("OPEN", "Open"),
                    ("IN_PROGRESS", "In Progress"),
                    ("OPEN_DEAL", "Open Deal"),
                    ("UNQUALIFIED", "Unqualified"),
                    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                    ("CONNECTED", "Connected"),
                    ("BAD_TIMING", "Bad Timing"),
                ]),
            ),
        ],
        ObjectKind::Company => vec![
            p(
                "name",
                "Company name",
                S,
                "companyinformation",
                Gen::CompanyName,
            ),
            p(
                "domain",
                "Company Domain Name",
                S,
                "companyinformation",
                Gen::Domain,
            ),
            p(
                "website",
                "Website URL",
                S,
                "companyinformation",
                Gen::Website,
            ),
            p(
                "phone",
                "Phone Number",
                PhoneNumber,
                "companyinformation",
                Gen::Phone,
            ),
            p("city", "City", S, "companyinformation", Gen::City),
            p("state", "State/Region", S, "companyinformation", Gen::State),
            p(
                "country",
                "Country/Region",
                S,
                "companyinformation",
                Gen::Country,
            ),
            pe(
                "industry",
                "Industry",
                "companyinformation",
                opts(&[
                    ("COMPUTER_SOFTWARE", "Computer Software"),
                    ("FINANCIAL_SERVICES", "Financial Services"),
                    ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
                    ("RETAIL", "Retail"),
                    ("LOGISTICS_AND_SUPPLY_CHAIN", "Logistics and Supply Chain"),
                    ("MANUFACTURING", "Manufacturing"),
                    ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
                ]),
            ),
            p(
                "numberofemployees",
                "Number of Employees",
                Number,
                "companyinformation",
                Gen::Int(1, 20_000),
            ),
            p(
                "annualrevenue",
                "Annual Revenue",
                Number,
                "companyinformation",
                Gen::Money(50_000, 500_000_000),
            ),
            pe(
                "lifecyclestage",
                "Lifecycle Stage",
                "companyinformation",
                lifecycle(),
            ),
        ],
        ObjectKind::Deal => vec![
            p("dealname", "Deal Name", S, "dealinformation", Gen::DealName),
            p(
                "amount",
                "Amount",
                Number,
                "dealinformation",
                Gen::Money(1_000, 250_000),
            ),
            pe(
                "dealstage",
                "Deal Stage",
                "dealinformation",
                opts(&[
                    ("appointmentscheduled", "Appointment Scheduled"),
                    ("qualifiedtobuy", "Qualified To Buy"),
                    ("presentationscheduled", "Presentation Scheduled"),
                    ("decisionmakerboughtin", "Decision Maker Bought-In"),
                    ("contractsent", "Contract Sent"),
                    ("closedwon", "Closed Won"),
                    ("closedlost", "Closed Lost"),
                ]),
            ),
            pe(
                "pipeline",
                "Pipeline",
                "dealinformation",
                opts(&[("default", "Sales Pipeline")]),
            ),
            p(
                "closedate",
                "Close Date",
                Datetime,
                "dealinformation",
                Gen::Datetime(-600, 180),
            ),
            pe(
                "dealtype",
                "Deal Type",
                "dealinformation",
                opts(&[
                    ("newbusiness", "New Business"),
                    ("existingbusiness", "Existing Business"),
                ]),
            ),
            pe(
                "hs_priority",
                "Priority",
                "dealinformation",
                opts(&[("low", "Low"), ("medium", "Medium"), ("high", "High")]),
            ),
            p(
                "description",
                "Deal Description",
                S,
                "dealinformation",
                Gen::Sentence,
            ),
        ],
        ObjectKind::Custom => Vec::new(),
    };
    hs.extend(system_props(kind));
    let mut defs = build(hs, true, &["email", "domain"], SYSTEM_READ_ONLY);
    // Domains repeat across seeded companies, so only e-mail is really unique.
    for d in &mut defs {
        if d.name == "domain" {
            d.has_unique_value = false;
        }
    }
    // A few integration-created custom properties, as real portals have.
    let custom = vec![
        p(
            "external_crm_id",
            "External CRM ID",
            S,
            "integrationcreatedproperties",
            Gen::Code("EXT"),
        ),
        pe(
            "customer_tier",
            "Customer tier",
            "integrationcreatedproperties",
            opts(&[
                ("bronze", "Bronze"),
                ("silver", "Silver"),
                ("gold", "Gold"),
                ("platinum", "Platinum"),
            ]),
        ),
        p(
            "health_score",
            "Health score",
            PropType::Number,
            "integrationcreatedproperties",
            Gen::Int(0, 100),
        ),
        p(
            "is_strategic",
            "Strategic account",
            PropType::Bool,
            "integrationcreatedproperties",
            Gen::Bool(20),
        ),
        p(
            "renewal_date",
            "Renewal date",
            PropType::Date,
            "integrationcreatedproperties",
            Gen::Date(-30, 400),
        ),
    ];
    defs.extend(build(custom, false, &["external_crm_id"], &[]));
    defs
}

/// The 44 custom properties every seeded custom object has (mixed types).
fn custom_object_props(primary: &'static str, primary_label: &'static str) -> Vec<PropertyDef> {
    use PropType::{Bool, Date, Datetime, Number, PhoneNumber, String as S};
    let g = "custom_properties";
    let status = opts(&[
        ("planned", "Planned"),
        ("active", "Active"),
        ("on_hold", "On hold"),
        ("completed", "Completed"),
        ("cancelled", "Cancelled"),
    ]);
    let region = opts(&[
        ("na", "North America"),
        ("emea", "EMEA"),
        ("apac", "APAC"),
        ("latam", "LATAM"),
    ]);
    let priority = opts(&[
        ("low", "Low"),
        ("medium", "Medium"),
        ("high", "High"),
        ("critical", "Critical"),
    ]);
    let currency = opts(&[
        ("USD", "US Dollar"),
        ("EUR", "Euro"),
        ("GBP", "Pound Sterling"),
        ("JPY", "Yen"),
    ]);
    let cycle = opts(&[
        ("monthly", "Monthly"),
        ("quarterly", "Quarterly"),
        ("annual", "Annual"),
    ]);
    let terms = opts(&[
        ("net15", "Net 15"),
        ("net30", "Net 30"),
        ("net60", "Net 60"),
    ]);
    let plan = opts(&[
        ("basic", "Basic"),
        ("standard", "Standard"),
        ("premium", "Premium"),
    ]);
    let risk = opts(&[
        ("low", "Low"),
        ("moderate", "Moderate"),
        ("elevated", "Elevated"),
        ("high", "High"),
    ]);
    let source = opts(&[
        ("web", "Website"),
        ("referral", "Referral"),
        ("event", "Event"),
        ("partner", "Partner"),
        ("outbound", "Outbound"),
    ]);
    let category = opts(&[
        ("hardware", "Hardware"),
        ("software", "Software"),
        ("services", "Services"),
        ("training", "Training"),
    ]);
    let mut categories = pe("categories", "Categories", g, category.clone());
    categories.field_type = "checkbox";
    let mut radio = pe(
        "satisfaction",
        "Satisfaction",
        g,
        opts(&[("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5")]),
    );
    radio.field_type = "radio";
    let mut notes = p("notes", "Notes", S, g, Gen::Sentence);
    notes.field_type = "textarea";
    let props = vec![
        p(primary, primary_label, S, g, Gen::DealName),
        p("external_id", "External ID", S, g, Gen::Code("EXT")),
        pe("status", "Status", g, status),
        pe("region", "Region", g, region),
        pe("priority", "Priority", g, priority),
        p(
            "contract_value",
            "Contract value",
            Number,
            g,
            Gen::Money(500, 500_000),
        ),
        pe("currency", "Currency", g, currency),
        p("start_date", "Start date", Date, g, Gen::Date(-900, 0)),
        p("end_date", "End date", Date, g, Gen::Date(0, 900)),
        p("renewal_date", "Renewal date", Date, g, Gen::Date(-30, 400)),
        p(
            "last_reviewed_at",
            "Last reviewed at",
            Datetime,
            g,
            Gen::Datetime(-365, 0),
        ),
        p("is_active", "Active", Bool, g, Gen::Bool(70)),
        p(
            "onboarding_complete",
            "Onboarding complete",
            Bool,
            g,
            Gen::Bool(55),
        ),
        p("escalated", "Escalated", Bool, g, Gen::Bool(8)),
        p("health_score", "Health score", Number, g, Gen::Int(0, 100)),
        p("nps_score", "NPS score", Number, g, Gen::Int(-100, 100)),
        p("seats", "Seats", Number, g, Gen::Int(1, 5_000)),
        p(
            "usage_hours",
            "Usage hours",
            Number,
            g,
            Gen::Decimal(0, 20_000),
        ),
        p(
            "discount_percent",
            "Discount %",
            Number,
            g,
            Gen::Decimal(0, 40),
        ),
        p(
            "churn_probability",
            "Churn probability",
            Number,
            g,
            Gen::Decimal(0, 1),
        ),
        pe("billing_cycle", "Billing cycle", g, cycle),
        pe("payment_terms", "Payment terms", g, terms),
        pe("support_plan", "Support plan", g, plan),
        pe("risk_level", "Risk level", g, risk),
        pe("lead_source", "Lead source", g, source),
        categories,
        radio,
        p(
            "account_manager_email",
            "Account manager e-mail",
            S,
            g,
            Gen::PersonEmail,
        ),
        p("contact_phone", "Contact phone", PhoneNumber, g, Gen::Phone),
        p("customer_name", "Customer name", S, g, Gen::CompanyName),
        p("customer_domain", "Customer domain", S, g, Gen::Domain),
        p("website_url", "Website URL", S, g, Gen::Website),
        p("city", "City", S, g, Gen::City),
        p("state", "State", S, g, Gen::State),
        p("country", "Country", S, g, Gen::Country),
        p("postal_code", "Postal code", S, g, Gen::Zip),
        p("street_address", "Street address", S, g, Gen::Street),
        p("sponsor_title", "Sponsor title", S, g, Gen::JobTitle),
        p("summary", "Summary", S, g, Gen::Phrase(4)),
        notes,
        p("sla_hours", "SLA hours", Number, g, Gen::Int(1, 72)),
        p("approved", "Approved", Bool, g, Gen::Bool(60)),
        p(
            "approval_date",
            "Approval date",
            Date,
            g,
            Gen::Date(-600, 0),
        ),
        p("budget", "Budget", Number, g, Gen::Money(1_000, 2_000_000)),
    ];
    let mut all = props;
    all.extend(system_props(ObjectKind::Custom));
    build(all, false, &["external_id"], SYSTEM_READ_ONLY)
}

/// A standard object type of a portal.
#[must_use]
pub fn standard_type(kind: ObjectKind) -> ObjectTypeDef {
    let (type_id, schema_id, name, singular, plural, fqn, primary, defaults): (
        _,
        _,
        _,
        _,
        _,
        _,
        _,
        &[&str],
    ) = match kind {
        ObjectKind::Contact => (
            "0-1",
            "1",
            "contacts",
            "Contact",
            "Contacts",
            "CONTACT",
            "firstname",
            &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
        ),
        ObjectKind::Company => (
            "0-2",
            "2",
            "companies",
            "Company",
            "Companies",
            "COMPANY",
            "name",
            &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
        ),
        _ => (
            "0-3",
            "3",
            "deals",
            "Deal",
            "Deals",
            "DEAL",
            "dealname",
            &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
        ),
    };
    let searchable: &[&str] = match kind {
        ObjectKind::Contact => &["firstname", "lastname", "email", "phone", "company"],
        ObjectKind::Company => &["name", "domain", "website", "phone"],
        _ => &["dealname"],
    };
    ObjectTypeDef {
        type_id: type_id.to_owned(),
        schema_id: schema_id.to_owned(),
        name: name.to_owned(),
        kind,
        singular: singular.to_owned(),
        plural: plural.to_owned(),
        fully_qualified_name: fqn.to_owned(),
        primary_display_property: primary.to_owned(),
        required_properties: Vec::new(),
        searchable_properties: searchable.iter().map(|s| (*s).to_owned()).collect(),
        properties: standard(kind),
        default_properties: defaults.iter().map(|s| (*s).to_owned()).collect(),
        created_at_ms: 0,
        updated_at_ms: 1_741_198_357_434,
    }
}

/// The seeded custom object types of a portal: `projects` and `subscriptions`, each with
/// 44 custom properties. Their type ids (`2-…`) are derived from the seed and portal.
#[must_use]
pub fn seeded_custom_types(seed: u64, portal_id: u64) -> Vec<ObjectTypeDef> {
    [
        (
            "projects",
            "Project",
            "Projects",
            "project_name",
            "Project name",
        ),
        (
            "subscriptions",
            "Subscription",
            "Subscriptions",
            "subscription_name",
            "Subscription name",
        ),
    ]
    .iter()
    .map(|(name, singular, plural, primary, primary_label)| {
        let n = 1_000_000 + derive_seed(seed, &[&portal_id.to_string(), name]) % 9_000_000;
        custom_type(
            portal_id,
            n,
            name,
            singular,
            plural,
            custom_object_props(primary, primary_label),
            primary,
        )
    })
    .collect()
}

/// A custom object type with the given properties (system properties must be included).
#[must_use]
pub fn custom_type(
    portal_id: u64,
    number: u64,
    name: &str,
    singular: &str,
    plural: &str,
    properties: Vec<PropertyDef>,
    primary: &str,
) -> ObjectTypeDef {
    ObjectTypeDef {
        type_id: format!("2-{number}"),
        schema_id: number.to_string(),
        name: name.to_owned(),
        kind: ObjectKind::Custom,
        singular: singular.to_owned(),
        plural: plural.to_owned(),
        fully_qualified_name: format!("p{portal_id}_{name}"),
        primary_display_property: primary.to_owned(),
        required_properties: vec![primary.to_owned()],
        searchable_properties: vec![primary.to_owned()],
        properties,
        default_properties: vec![
            "hs_createdate".to_owned(),
            "hs_lastmodifieddate".to_owned(),
            "hs_object_id".to_owned(),
        ],
        created_at_ms: GENESIS_MS - SPAN_MS,
        updated_at_ms: GENESIS_MS - SPAN_MS,
    }
}

/// The system properties of a custom object, for schemas created through the API.
#[must_use]
pub fn custom_system_properties() -> Vec<PropertyDef> {
    build(
        system_props(ObjectKind::Custom),
        false,
        &[],
        SYSTEM_READ_ONLY,
    )
}

/// A property created after seeding (API or schema-change fault); seeded records have no value.
#[must_use]
pub fn new_property(
    name: &str,
    label: &str,
    ptype: PropType,
    field_type: Option<&str>,
    group: &str,
    options: Vec<PropOption>,
    now_ms: i64,
) -> PropertyDef {
    PropertyDef {
        name: name.to_owned(),
        label: label.to_owned(),
        ptype,
        field_type: field_type.unwrap_or(ptype.default_field_type()).to_owned(),
        group_name: group.to_owned(),
        description: String::new(),
        options: if ptype == PropType::Bool && options.is_empty() {
            bool_opts()
        } else {
            options
        },
        display_order: -1,
        hubspot_defined: false,
        has_unique_value: false,
        hidden: false,
        read_only_value: false,
        form_field: true,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        generator: Gen::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_objects_have_forty_plus_custom_properties() {
        for t in seeded_custom_types(7, 123) {
            assert!(t.type_id.starts_with("2-"));
            assert!(t.properties.iter().filter(|p| !p.hubspot_defined).count() >= 40);
        }
    }

    #[test]
    fn unique_values_reverse_to_their_index() {
        let t = standard_type(ObjectKind::Contact);
        let ctx = SeedCtx::new(1, 99, "0-1", 1000);
        let email = t.property("email").unwrap();
        for i in [0, 1, 17, 999] {
            let v = ctx.value(email, i).unwrap();
            assert_eq!(ctx.reverse_unique(email, &v), Some(i), "{v}");
        }
        assert_eq!(ctx.reverse_unique(email, "nobody@example.com"), None);
    }

    #[test]
    fn seeded_times_are_before_genesis_and_ordered() {
        let ctx = SeedCtx::new(1, 99, "0-1", 10_000);
        for i in 0..1000 {
            let c = ctx.created_ms(i);
            let u = ctx.updated_ms(i);
            assert!(c <= u && u <= GENESIS_MS);
            assert!(ctx.created_ms(i + 1) > c);
        }
    }
}
