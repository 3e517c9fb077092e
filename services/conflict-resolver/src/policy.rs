//! Validating and applying policy updates.

use std::collections::HashSet;

use syncline_domain::{ApiError, Violation};
use syncline_proto::conflict::v1::{Policy, Side, Strategy};

/// The policy of a tenant that never set one.
pub fn default_policy() -> Policy {
    Policy {
        default_strategy: Strategy::LastWriteWins as i32,
        ..Policy::default()
    }
}

const UPDATABLE: [&str; 3] = [
    "default_strategy",
    "default_system_of_record",
    "field_rules",
];

/// Applies the fields named by `mask` (all updatable fields when empty) from `update` onto
/// `current`, then validates the result.
pub fn apply_update(
    mut current: Policy,
    update: Policy,
    mask: &[String],
) -> Result<Policy, ApiError> {
    let paths: Vec<&str> = if mask.is_empty() {
        UPDATABLE.to_vec()
    } else {
        mask.iter().map(String::as_str).collect()
    };
    let unknown: Vec<Violation> = paths
        .iter()
        .filter(|p| !UPDATABLE.contains(p))
        .map(|p| {
            Violation::new(
                "update_mask",
                "UNKNOWN_FIELD",
                format!("`{p}` is not an updatable field of policy"),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(unknown));
    }
    for path in paths {
        match path {
            "default_strategy" => current.default_strategy = update.default_strategy,
            "default_system_of_record" => {
                current.default_system_of_record = update.default_system_of_record;
            }
            _ => current.field_rules.clone_from(&update.field_rules),
        }
    }
    validate(&current)?;
    current.update_time = None;
    Ok(current)
}

fn validate(policy: &Policy) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    check_strategy(
        policy.default_strategy,
        policy.default_system_of_record,
        "policy.default_strategy",
        "policy.default_system_of_record",
        &mut violations,
    );
    let mut seen = HashSet::new();
    for (i, rule) in policy.field_rules.iter().enumerate() {
        let at = format!("policy.field_rules[{i}]");
        if rule.object.is_empty() {
            violations.push(Violation::required(format!("{at}.object")));
        }
        if !seen.insert((rule.object.as_str(), rule.field.as_str())) {
            violations.push(Violation::new(
                at.clone(),
                "DUPLICATE_RULE",
                format!("repeats the rule for {}.{}", rule.object, rule.field),
            ));
        }
        check_strategy(
            rule.strategy,
            rule.system_of_record,
            &format!("{at}.strategy"),
            &format!("{at}.system_of_record"),
            &mut violations,
        );
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
    }
}

fn check_strategy(
    strategy: i32,
    side: i32,
    strategy_field: &str,
    side_field: &str,
    violations: &mut Vec<Violation>,
) {
    match Strategy::try_from(strategy) {
        Ok(Strategy::Unspecified) | Err(_) => {
            violations.push(Violation::new(
                strategy_field,
                "INVALID_ENUM",
                "must be a strategy other than STRATEGY_UNSPECIFIED",
            ));
        }
        Ok(Strategy::SystemOfRecord) => {
            if !matches!(Side::try_from(side), Ok(Side::Ours | Side::Theirs)) {
                violations.push(Violation::new(
                    side_field,
                    "REQUIRED",
                    "is required for STRATEGY_SYSTEM_OF_RECORD",
                ));
            }
        }
        Ok(Strategy::LastWriteWins | Strategy::FieldLevelMerge | Strategy::ManualReview) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_proto::conflict::v1::FieldRule;

    #[test]
    fn a_masked_update_changes_only_the_named_fields() {
        let update = Policy {
            default_strategy: Strategy::ManualReview as i32,
            field_rules: vec![FieldRule {
                object: "contact".into(),
                ..FieldRule::default()
            }],
            ..Policy::default()
        };
        let updated = apply_update(default_policy(), update, &["default_strategy".into()]).unwrap();
        assert_eq!(updated.default_strategy, Strategy::ManualReview as i32);
        assert!(updated.field_rules.is_empty());
    }

    #[test]
    fn system_of_record_needs_a_side_and_the_violation_names_the_field() {
        let update = Policy {
            default_strategy: Strategy::SystemOfRecord as i32,
            ..Policy::default()
        };
        let error = apply_update(default_policy(), update, &[]).unwrap_err();
        assert_eq!(
            error.violations()[0].field,
            "policy.default_system_of_record"
        );
    }

    #[test]
    fn unknown_mask_paths_are_refused() {
        let error =
            apply_update(default_policy(), Policy::default(), &["colour".into()]).unwrap_err();
        assert_eq!(error.violations()[0].field, "update_mask");
    }
}
