//! Optional enum filters of list requests: UNSPECIFIED means "any", unknown values are
//! refused with a violation naming the field.

use syncline_domain::{ApiError, Violation};
use syncline_proto::common::v1::{ConnectionStatus, Provider};

/// The provider to filter on, if any.
pub fn provider(value: i32, field: &str, violations: &mut Vec<Violation>) -> Option<i32> {
    match Provider::try_from(value) {
        Ok(Provider::Unspecified) => None,
        Ok(provider) => Some(provider as i32),
        Err(_) => {
            violations.push(Violation::new(field, "INVALID_ENUM", "is not a provider"));
            None
        }
    }
}

/// The connection status to filter on, if any.
pub fn status(value: i32, field: &str, violations: &mut Vec<Violation>) -> Option<i32> {
    match ConnectionStatus::try_from(value) {
        Ok(ConnectionStatus::Unspecified) => None,
        Ok(status) => Some(status as i32),
        Err(_) => {
            violations.push(Violation::new(
                field,
                "INVALID_ENUM",
                "is not a connection status",
            ));
            None
        }
    }
}

/// `Ok` when nothing was refused, else INVALID_ARGUMENT with every violation.
pub fn finish(violations: Vec<Violation>) -> Result<(), ApiError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_means_any_and_known_values_filter() {
        let mut violations = Vec::new();
        assert_eq!(provider(0, "provider", &mut violations), None);
        assert_eq!(
            provider(Provider::Hubspot as i32, "provider", &mut violations),
            Some(Provider::Hubspot as i32)
        );
        assert_eq!(
            status(
                ConnectionStatus::NeedsReauth as i32,
                "status",
                &mut violations
            ),
            Some(ConnectionStatus::NeedsReauth as i32)
        );
        assert!(finish(violations).is_ok());
    }

    #[test]
    fn unknown_values_are_refused_naming_each_field() {
        let mut violations = Vec::new();
        provider(42, "provider", &mut violations);
        status(-1, "status", &mut violations);
        let error = finish(violations).unwrap_err();
        let fields: Vec<_> = error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["provider", "status"]);
    }
}
