//! Validated identifiers. An id that exists as a value has passed [`parse`](TenantId::parse).

use std::fmt;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty.
    #[error("must not be empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`].
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    /// The id has a character outside `[A-Za-z0-9._:-]`.
    #[error("may contain only letters, digits, '.', '_', ':' and '-'")]
    BadCharacter,
}

/// The longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 128;

fn check(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as an id.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// One SaaS product using Syncline: its API callers, OAuth apps and manifests.
    ProjectId
);
id_type!(
    /// One customer of a project; owns connections, mappings, policies and events.
    TenantId
);

/// A new random, time-ordered resource id with a short type prefix, e.g. `conn_0190…`.
pub fn new_resource_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_ordinary_ids_and_rejects_bad_ones() {
        assert!(TenantId::parse("acme-corp_01").is_ok());
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
        assert_eq!(TenantId::parse("a b"), Err(IdError::BadCharacter));
        assert_eq!(TenantId::parse("x".repeat(129)), Err(IdError::TooLong));
    }

    #[test]
    fn resource_ids_carry_their_prefix_and_are_valid_ids() {
        let id = new_resource_id("conn");
        assert!(id.starts_with("conn_"));
        assert!(check(&id).is_ok());
    }
}
