//! CRM connectors: one module per provider behind one set of traits, registered in one place.
//!
//! - [`Provider`] is the closed list of CRM API families; [`Connector::for_provider`] picks the
//!   implementation with an exhaustive `match`, so adding a provider is one module plus one
//!   match arm.
//! - [`ProviderMetadata`] says what a provider is; per-capability traits (so far
//!   [`SchemaDescriber`]) carry the calls, each method defaulting to
//!   [`ConnectorError::Unsupported`].
//! - Each provider module keeps its wire types (serde structs matching the CRM's responses)
//!   and converts them with `TryFrom` into the neutral types of [`schema`].
//!
//! Calls go through a `reqwest::Client` the caller builds once
//! (`syncline_service_kit::crm_http::client`), with the access token and instance URL the
//! caller got from auth-vault ([`Credentials`]). A 401 is [`ConnectorError::Unauthorized`]
//! so the caller can report it once and retry; 429 and 5xx are retryable errors carrying
//! `Retry-After`.

pub mod error;
mod http;
pub mod hubspot;
pub mod limits;
pub mod read;
pub mod salesforce;
pub mod schema;
pub mod values;

use secrecy::SecretString;

pub use error::ConnectorError;
pub use limits::{
    Admission, Backoff, BreakerConfig, BreakerState, CircuitBreaker, QuotaBudget, QuotaDecision,
};
pub use read::{ApiUsage, ReadCursor, ReadRequest, RecordPage, RecordReader};
pub use schema::{FieldDescription, ObjectDescription, ObjectSummary, PicklistEntry};

/// The CRM API families Syncline speaks. Closed: every `match` on it is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Salesforce REST API.
    Salesforce,
    /// HubSpot CRM v3.
    HubSpot,
}

impl Provider {
    /// The provider of a `syncline.common.v1.Provider` value, if it names one.
    pub fn from_proto(value: i32) -> Option<Self> {
        use syncline_proto::common::v1::Provider as P;
        match P::try_from(value).ok()? {
            P::Salesforce => Some(Self::Salesforce),
            P::Hubspot => Some(Self::HubSpot),
            P::Unspecified => None,
        }
    }

    /// The `syncline.common.v1.Provider` value.
    pub fn to_proto(self) -> syncline_proto::common::v1::Provider {
        use syncline_proto::common::v1::Provider as P;
        match self {
            Self::Salesforce => P::Salesforce,
            Self::HubSpot => P::Hubspot,
        }
    }

    /// Lowercase name used in logs and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Salesforce => "salesforce",
            Self::HubSpot => "hubspot",
        }
    }
}

/// What one call needs to reach a connection's CRM: the instance's API base URL and an
/// access token (secret; never logged).
#[derive(Clone)]
pub struct Credentials {
    /// The API base URL, as auth-vault returns it (`https://acme.my.salesforce.com`).
    pub instance_url: String,
    /// The bearer token.
    pub access_token: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("instance_url", &self.instance_url)
            .field("access_token", &"[REDACTED]")
            .finish()
    }
}

/// What a provider is, independent of any capability.
pub trait ProviderMetadata {
    /// Which provider this is.
    fn provider(&self) -> Provider;
    /// How many describes may be in flight for one connection.
    fn describe_concurrency(&self) -> usize {
        4
    }
}

/// Reading a connection's schema: its objects and their fields.
#[allow(async_fn_in_trait)]
pub trait SchemaDescriber: ProviderMetadata {
    /// Every object of the connection (standard and custom), without fields.
    async fn list_objects(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<ObjectSummary>, ConnectorError> {
        let _ = credentials;
        Err(ConnectorError::unsupported(self.provider(), "list_objects"))
    }

    /// One object with its fields.
    async fn describe_object(
        &self,
        credentials: &Credentials,
        object: &ObjectSummary,
    ) -> Result<ObjectDescription, ConnectorError> {
        let _ = (credentials, object);
        Err(ConnectorError::unsupported(
            self.provider(),
            "describe_object",
        ))
    }

    /// Several objects with their fields, in the order given; providers batch and bound the
    /// concurrency as they can.
    async fn describe_objects(
        &self,
        credentials: &Credentials,
        objects: &[ObjectSummary],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        let mut out = Vec::with_capacity(objects.len());
        for object in objects {
            out.push(self.describe_object(credentials, object).await?);
        }
        Ok(out)
    }
}

/// One connector per provider; [`Connector::for_provider`] is the single registration point.
#[derive(Debug, Clone)]
pub enum Connector {
    /// Salesforce.
    Salesforce(salesforce::SalesforceConnector),
    /// HubSpot.
    HubSpot(hubspot::HubSpotConnector),
}

impl Connector {
    /// The connector of `provider`, calling CRMs with `http`.
    pub fn for_provider(provider: Provider, http: reqwest::Client) -> Self {
        match provider {
            Provider::Salesforce => Self::Salesforce(salesforce::SalesforceConnector::new(http)),
            Provider::HubSpot => Self::HubSpot(hubspot::HubSpotConnector::new(http)),
        }
    }

    /// Lists the objects, then describes them all (or only those named in `only`, when not
    /// empty); objects come back ordered by name.
    pub async fn describe_all(
        &self,
        credentials: &Credentials,
        only: &[String],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        let mut objects = self.list_objects(credentials).await?;
        if !only.is_empty() {
            objects.retain(|o| only.contains(&o.name));
        }
        let mut described = self.describe_objects(credentials, &objects).await?;
        described.sort_by(|a, b| a.object.name.cmp(&b.object.name));
        Ok(described)
    }
}

impl ProviderMetadata for Connector {
    fn provider(&self) -> Provider {
        match self {
            Self::Salesforce(c) => c.provider(),
            Self::HubSpot(c) => c.provider(),
        }
    }

    fn describe_concurrency(&self) -> usize {
        match self {
            Self::Salesforce(c) => c.describe_concurrency(),
            Self::HubSpot(c) => c.describe_concurrency(),
        }
    }
}

impl SchemaDescriber for Connector {
    async fn list_objects(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<ObjectSummary>, ConnectorError> {
        match self {
            Self::Salesforce(c) => c.list_objects(credentials).await,
            Self::HubSpot(c) => c.list_objects(credentials).await,
        }
    }

    async fn describe_object(
        &self,
        credentials: &Credentials,
        object: &ObjectSummary,
    ) -> Result<ObjectDescription, ConnectorError> {
        match self {
            Self::Salesforce(c) => c.describe_object(credentials, object).await,
            Self::HubSpot(c) => c.describe_object(credentials, object).await,
        }
    }

    async fn describe_objects(
        &self,
        credentials: &Credentials,
        objects: &[ObjectSummary],
    ) -> Result<Vec<ObjectDescription>, ConnectorError> {
        match self {
            Self::Salesforce(c) => c.describe_objects(credentials, objects).await,
            Self::HubSpot(c) => c.describe_objects(credentials, objects).await,
        }
    }
}

impl RecordReader for Connector {
    async fn read_page(
        &self,
        credentials: &Credentials,
        request: ReadRequest<'_>,
    ) -> Result<RecordPage, ConnectorError> {
        match self {
            Self::Salesforce(c) => c.read_page(credentials, request).await,
            Self::HubSpot(c) => c.read_page(credentials, request).await,
        }
    }
}
