//! OAuth: the signed single-use `state`, PKCE, and the providers' endpoints.

pub mod providers;
pub mod state;

pub use providers::{
    ClientCredentials, OAuthClient, ProviderError, ProviderKind, TokenGrant, TokenInfo,
};
pub use state::{Pkce, StateError, StateSigner};
