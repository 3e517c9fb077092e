//! Validating webhook endpoints, applying updates and minting signing secrets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use syncline_domain::{ApiError, Violation};
use syncline_proto::common::v1::EventType;
use syncline_proto::sync::v1::{WebhookEndpoint, WebhookTopic};

/// The longest description accepted.
const MAX_DESCRIPTION_LEN: usize = 1024;

/// The longest URL accepted.
const MAX_URL_LEN: usize = 2048;

const UPDATABLE: [&str; 7] = [
    "url",
    "description",
    "topics",
    "connection_ids",
    "objects",
    "event_types",
    "disabled",
];

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The endpoint to create from a request: the input fields of `input` under `id`, checked.
pub fn for_create(id: String, input: WebhookEndpoint) -> Result<WebhookEndpoint, ApiError> {
    let endpoint = WebhookEndpoint {
        id,
        url: input.url,
        description: input.description,
        topics: input.topics,
        connection_ids: input.connection_ids,
        objects: input.objects,
        event_types: input.event_types,
        disabled: input.disabled,
        create_time: None,
        update_time: None,
    };
    validate(&endpoint)?;
    Ok(endpoint)
}

/// Applies the fields named by `mask` (all updatable fields when empty) from `update` onto
/// `current`, then validates the result.
pub fn apply_update(
    mut current: WebhookEndpoint,
    update: WebhookEndpoint,
    mask: &[String],
) -> Result<WebhookEndpoint, ApiError> {
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
                format!("`{p}` is not an updatable field of webhook_endpoint"),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(unknown));
    }
    for path in paths {
        match path {
            "url" => current.url.clone_from(&update.url),
            "description" => current.description.clone_from(&update.description),
            "topics" => current.topics.clone_from(&update.topics),
            "connection_ids" => current.connection_ids.clone_from(&update.connection_ids),
            "objects" => current.objects.clone_from(&update.objects),
            "event_types" => current.event_types.clone_from(&update.event_types),
            _ => current.disabled = update.disabled,
        }
    }
    validate(&current)?;
    current.create_time = None;
    current.update_time = None;
    Ok(current)
}

/// Checks an endpoint as it would be stored; violations name fields under `webhook_endpoint`.
pub fn validate(endpoint: &WebhookEndpoint) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    check_url(&endpoint.url, &mut violations);
    if endpoint.description.chars().count() > MAX_DESCRIPTION_LEN {
        violations.push(Violation::new(
            "webhook_endpoint.description",
            "TOO_LONG",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if endpoint.topics.is_empty() {
        violations.push(Violation::new(
            "webhook_endpoint.topics",
            "REQUIRED",
            "must name at least one topic",
        ));
    }
    for (i, topic) in endpoint.topics.iter().enumerate() {
        if matches!(
            WebhookTopic::try_from(*topic),
            Ok(WebhookTopic::Unspecified) | Err(_)
        ) {
            violations.push(Violation::new(
                format!("webhook_endpoint.topics[{i}]"),
                "INVALID_ENUM",
                "must be a topic other than WEBHOOK_TOPIC_UNSPECIFIED",
            ));
        }
    }
    for (i, event_type) in endpoint.event_types.iter().enumerate() {
        if matches!(
            EventType::try_from(*event_type),
            Ok(EventType::Unspecified) | Err(_)
        ) {
            violations.push(Violation::new(
                format!("webhook_endpoint.event_types[{i}]"),
                "INVALID_ENUM",
                "must be an event type other than EVENT_TYPE_UNSPECIFIED",
            ));
        }
    }
    for (name, values) in [
        ("connection_ids", &endpoint.connection_ids),
        ("objects", &endpoint.objects),
    ] {
        for (i, value) in values.iter().enumerate() {
            if value.is_empty() {
                violations.push(Violation::new(
                    format!("webhook_endpoint.{name}[{i}]"),
                    "EMPTY",
                    "must not be empty",
                ));
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(violations))
    }
}

fn check_url(value: &str, violations: &mut Vec<Violation>) {
    const FIELD: &str = "webhook_endpoint.url";
    if value.is_empty() {
        violations.push(Violation::required(FIELD));
        return;
    }
    if value.len() > MAX_URL_LEN {
        violations.push(Violation::new(
            FIELD,
            "TOO_LONG",
            format!("must be at most {MAX_URL_LEN} characters"),
        ));
        return;
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(_) => violations.push(Violation::new(
            FIELD,
            "INVALID_URL",
            "must be an http or https url with a host",
        )),
        Err(_) => violations.push(Violation::new(FIELD, "INVALID_URL", "is not a valid url")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint {
            url: "https://hooks.example.com/syncline".into(),
            topics: vec![WebhookTopic::Changes as i32],
            ..WebhookEndpoint::default()
        }
    }

    fn fields(error: &ApiError) -> Vec<&str> {
        error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect()
    }

    #[test]
    fn signing_secrets_are_prefixed_32_random_bytes() {
        let secret = new_signing_secret();
        let encoded = secret.strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        assert_ne!(secret, new_signing_secret());
    }

    #[test]
    fn create_keeps_input_fields_and_drops_output_only_ones() {
        let input = WebhookEndpoint {
            id: "whk_chosen_by_caller".into(),
            create_time: Some(prost_types::Timestamp::default()),
            description: "orders".into(),
            ..endpoint()
        };
        let created = for_create("whk_1".into(), input).unwrap();
        assert_eq!(created.id, "whk_1");
        assert_eq!(created.description, "orders");
        assert!(created.create_time.is_none());
    }

    #[test]
    fn url_is_required_and_must_be_http_or_https() {
        for url in ["", "ftp://example.com/x", "not a url", "https://"] {
            let error = validate(&WebhookEndpoint {
                url: url.into(),
                ..endpoint()
            })
            .unwrap_err();
            assert_eq!(fields(&error), ["webhook_endpoint.url"], "{url}");
        }
        assert!(
            validate(&WebhookEndpoint {
                url: "http://localhost:8080/hook".into(),
                ..endpoint()
            })
            .is_ok()
        );
    }

    #[test]
    fn topics_need_one_known_value() {
        let error = validate(&WebhookEndpoint {
            topics: vec![],
            ..endpoint()
        })
        .unwrap_err();
        assert_eq!(fields(&error), ["webhook_endpoint.topics"]);
        let error = validate(&WebhookEndpoint {
            topics: vec![0, 99],
            ..endpoint()
        })
        .unwrap_err();
        assert_eq!(
            fields(&error),
            ["webhook_endpoint.topics[0]", "webhook_endpoint.topics[1]"]
        );
    }

    #[test]
    fn a_masked_update_changes_only_the_named_fields() {
        let update = WebhookEndpoint {
            url: "https://other.example.com/".into(),
            description: "new".into(),
            disabled: true,
            topics: vec![],
            ..WebhookEndpoint::default()
        };
        let updated = apply_update(
            endpoint(),
            update,
            &["description".into(), "disabled".into()],
        )
        .unwrap();
        assert_eq!(updated.url, endpoint().url);
        assert_eq!(updated.description, "new");
        assert!(updated.disabled);
        assert_eq!(updated.topics, endpoint().topics);
    }

    #[test]
    fn an_empty_mask_replaces_every_updatable_field_and_is_validated() {
        let error = apply_update(endpoint(), WebhookEndpoint::default(), &[]).unwrap_err();
        assert_eq!(
            fields(&error),
            ["webhook_endpoint.url", "webhook_endpoint.topics"]
        );
    }

    #[test]
    fn unknown_mask_paths_are_refused_naming_update_mask() {
        let error = apply_update(endpoint(), endpoint(), &["id".into()]).unwrap_err();
        assert_eq!(fields(&error), ["update_mask"]);
        let error = apply_update(endpoint(), endpoint(), &["signing_secret".into()]).unwrap_err();
        assert_eq!(fields(&error), ["update_mask"]);
    }
}
