//! The body of a webhook delivery: a Standard Webhooks envelope around one `Change` or one
//! lifecycle `Event` in the protobuf JSON mapping (lowerCamelCase names, `uint64` as a string, enums by name,
//! timestamps in RFC 3339).
//!
//! ```json
//! {"type": "change.updated", "timestamp": "2026-11-27T04:00:00.000Z",
//!  "data": {"sequence": "42", "connectionId": "…", "object": "contact", …}}
//! ```

use prost_types::value::Kind;
use serde_json::{Map, Value, json};
use syncline_proto::common::v1::{
    ErrorReason, Event, EventType, Provider, Record, RecordOperation,
};
use syncline_proto::sync::v1::Change;

use super::outbox::Payload;

/// The envelope `type` of a change.
pub fn event_type(change: &Change) -> &'static str {
    match RecordOperation::try_from(change.operation) {
        Ok(RecordOperation::Create) => "change.created",
        Ok(RecordOperation::Update) => "change.updated",
        Ok(RecordOperation::Delete) => "change.deleted",
        Ok(RecordOperation::Unspecified) | Err(_) => "change",
    }
}

fn rfc3339(ts: &prost_types::Timestamp) -> Value {
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    chrono::DateTime::from_timestamp(ts.seconds, nanos)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn value(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), self::value(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(self::value).collect()),
    }
}

fn record(record: &Record) -> Value {
    let mut fields: Vec<(&String, &prost_types::Value)> = record.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Map::new();
    out.insert("object".into(), json!(record.object));
    out.insert("id".into(), json!(record.id));
    out.insert(
        "fields".into(),
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.clone(), value(v)))
                .collect(),
        ),
    );
    if let Some(ts) = &record.system_modstamp {
        out.insert("systemModstamp".into(), rfc3339(ts));
    }
    out.insert("deleted".into(), json!(record.deleted));
    Value::Object(out)
}

/// The change in the protobuf JSON mapping.
pub fn change_json(change: &Change) -> Value {
    let operation = RecordOperation::try_from(change.operation)
        .unwrap_or(RecordOperation::Unspecified)
        .as_str_name();
    let mut out = Map::new();
    out.insert("sequence".into(), json!(change.sequence.to_string()));
    out.insert("connectionId".into(), json!(change.connection_id));
    out.insert("object".into(), json!(change.object));
    out.insert("operation".into(), json!(operation));
    if let Some(r) = &change.record {
        out.insert("record".into(), record(r));
    }
    if let Some(r) = &change.provider_record {
        out.insert("providerRecord".into(), record(r));
    }
    if let Some(ts) = &change.publish_time {
        out.insert("publishTime".into(), rfc3339(ts));
    }
    if !change.sync_run_id.is_empty() {
        out.insert("syncRunId".into(), json!(change.sync_run_id));
    }
    if !change.changed_fields.is_empty() {
        out.insert("changedFields".into(), json!(change.changed_fields));
    }
    Value::Object(out)
}

/// The envelope `type` of a lifecycle event: `connection.needs_reauth`, `sync_run.failed`, …
pub fn lifecycle_type(event: &Event) -> &'static str {
    match EventType::try_from(event.r#type) {
        Ok(EventType::ConnectionAuthorized) => "connection.authorized",
        Ok(EventType::ConnectionNeedsReauth) => "connection.needs_reauth",
        Ok(EventType::ConnectionRecovered) => "connection.recovered",
        Ok(EventType::ConnectionDegraded) => "connection.degraded",
        Ok(EventType::ConnectionDeleted) => "connection.deleted",
        Ok(EventType::SyncRunStarted) => "sync_run.started",
        Ok(EventType::SyncRunSucceeded) => "sync_run.succeeded",
        Ok(EventType::SyncRunFailed) => "sync_run.failed",
        Ok(EventType::SchemaDriftDetected) => "schema.drift_detected",
        Ok(EventType::ConflictQueued) => "conflict.queued",
        Ok(EventType::ConflictDecided) => "conflict.decided",
        Ok(EventType::DeadLettersAdded) => "dead_letters.added",
        Ok(EventType::Unspecified) | Err(_) => "lifecycle",
    }
}

/// The event in the protobuf JSON mapping (default values left out).
pub fn event_json(event: &Event) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(event.id));
    out.insert("sequence".into(), json!(event.sequence.to_string()));
    let kind = EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified);
    out.insert("type".into(), json!(kind.as_str_name()));
    if let Some(ts) = &event.occur_time {
        out.insert("occurTime".into(), rfc3339(ts));
    }
    if !event.connection_id.is_empty() {
        out.insert("connectionId".into(), json!(event.connection_id));
    }
    if let Ok(provider) = Provider::try_from(event.provider)
        && provider != Provider::Unspecified
    {
        out.insert("provider".into(), json!(provider.as_str_name()));
    }
    if !event.sync_run_id.is_empty() {
        out.insert("syncRunId".into(), json!(event.sync_run_id));
    }
    if !event.object.is_empty() {
        out.insert("object".into(), json!(event.object));
    }
    if let Ok(reason) = ErrorReason::try_from(event.reason)
        && reason != ErrorReason::Unspecified
    {
        out.insert("reason".into(), json!(reason.as_str_name()));
    }
    if !event.message.is_empty() {
        out.insert("message".into(), json!(event.message));
    }
    if !event.attributes.is_empty() {
        let mut attributes: Vec<(&String, &String)> = event.attributes.iter().collect();
        attributes.sort();
        out.insert(
            "attributes".into(),
            Value::Object(
                attributes
                    .into_iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
        );
    }
    if !event.trace_id.is_empty() {
        out.insert("traceId".into(), json!(event.trace_id));
    }
    Value::Object(out)
}

/// The bytes POSTed for `change`: the same on every attempt and replay.
pub fn body(change: &Change) -> Result<Vec<u8>, serde_json::Error> {
    let timestamp = change
        .publish_time
        .as_ref()
        .map(rfc3339)
        .unwrap_or(Value::Null);
    serde_json::to_vec(&json!({
        "type": event_type(change),
        "timestamp": timestamp,
        "data": change_json(change),
    }))
}

/// The bytes POSTed for a lifecycle event (its `timestamp` is when it occurred): the same on
/// every attempt and replay.
pub fn event_body(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let timestamp = event
        .occur_time
        .as_ref()
        .map(rfc3339)
        .unwrap_or(Value::Null);
    serde_json::to_vec(&json!({
        "type": lifecycle_type(event),
        "timestamp": timestamp,
        "data": event_json(event),
    }))
}

/// The bytes POSTed for a delivery's payload.
pub fn payload_body(payload: &Payload) -> Result<Vec<u8>, serde_json::Error> {
    match payload {
        Payload::Change(change) => body(change),
        Payload::Event(event) => event_body(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_renders_in_the_protobuf_json_mapping() {
        let change = Change {
            sequence: 42,
            connection_id: "conn_1".into(),
            object: "contact".into(),
            operation: RecordOperation::Update as i32,
            record: Some(Record {
                object: "contact".into(),
                id: "003A".into(),
                fields: [(
                    "email".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::StringValue("a@example.com".into())),
                    },
                )]
                .into(),
                ..Record::default()
            }),
            publish_time: Some(prost_types::Timestamp {
                seconds: 1_614_265_330,
                nanos: 5_000_000,
            }),
            ..Change::default()
        };
        let body: Value = serde_json::from_slice(&body(&change).unwrap()).unwrap();
        assert_eq!(body["type"], "change.updated");
        assert_eq!(body["timestamp"], "2021-02-25T15:02:10.005Z");
        assert_eq!(body["data"]["sequence"], "42");
        assert_eq!(body["data"]["operation"], "RECORD_OPERATION_UPDATE");
        assert_eq!(body["data"]["record"]["fields"]["email"], "a@example.com");
        assert!(body["data"].get("providerRecord").is_none());
    }

    #[test]
    fn a_lifecycle_event_renders_in_the_protobuf_json_mapping() {
        let event = Event {
            id: "evt_1".into(),
            sequence: 7,
            r#type: EventType::ConnectionNeedsReauth as i32,
            occur_time: Some(prost_types::Timestamp {
                seconds: 1_614_265_330,
                nanos: 0,
            }),
            connection_id: "conn_1".into(),
            provider: Provider::Salesforce as i32,
            reason: ErrorReason::NeedsReauth as i32,
            message: "the refresh token was revoked".into(),
            ..Event::default()
        };
        let body: Value = serde_json::from_slice(&event_body(&event).unwrap()).unwrap();
        assert_eq!(body["type"], "connection.needs_reauth");
        assert_eq!(body["timestamp"], "2021-02-25T15:02:10.000Z");
        assert_eq!(body["data"]["id"], "evt_1");
        assert_eq!(body["data"]["sequence"], "7");
        assert_eq!(body["data"]["type"], "EVENT_TYPE_CONNECTION_NEEDS_REAUTH");
        assert_eq!(body["data"]["provider"], "PROVIDER_SALESFORCE");
        assert_eq!(body["data"]["reason"], "ERROR_REASON_NEEDS_REAUTH");
        assert!(body["data"].get("syncRunId").is_none());
    }
}
