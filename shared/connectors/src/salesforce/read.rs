//! Reading an sObject's records resumably (the [`RecordReader`] of Salesforce).
//!
//! One query shape serves backfill and increments:
//! `SELECT Id, SystemModstamp, IsDeleted, … FROM X WHERE SystemModstamp > :t OR
//! (SystemModstamp = :t AND Id > :id) ORDER BY SystemModstamp, Id` through `/queryAll`
//! (so soft-deleted rows come back with `IsDeleted = true`), `Sforce-Query-Options:
//! batchSize=N`, following `nextRecordsUrl`. The cursor keeps the `(SystemModstamp, Id)` of
//! the last record returned, so many records sharing one stamp across a page boundary are
//! all read (the id breaks the tie), and a refused or expired query locator
//! (`INVALID_QUERY_LOCATOR`) restarts the query from that mark without losing or skipping
//! a record.
//!
//! Hard deletes (records purged from the recycle bin, which `queryAll` no longer returns)
//! come from `/sobjects/X/deleted/?start=&end=`: once the query is done, the reader asks
//! for the deletes between the end of the last window it read (`latestDateCovered`) and
//! now (at least a minute back: Salesforce refuses shorter windows). The first window starts
//! five minutes before the backfill started, so deletes made during the backfill are seen. Salesforce keeps deletes for 15 days; a connection not read
//! for longer gets the last 15 days only (logged). A delete can be reported twice (by the
//! query as `IsDeleted` and by `/deleted`); the engine applies deletes idempotently.
//!
//! **Look-back.** `SystemModstamp` is stamped when a transaction writes, not when it commits,
//! so a long transaction's records can become visible with a stamp earlier than records
//! already read. Each incremental run therefore starts its query `look_back` (default
//! [`DEFAULT_LOOK_BACK`], five minutes) before the mark, with `SystemModstamp >= t` and no id
//! tie-breaker; records re-read this way come back unchanged and the engine dedupes them.
//!
//! The cursor is JSON (`{"phase":…,"mark":…,"next":…,"deletes_from":…}`), readable by
//! operators and opaque to the engine.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use prost_types::value::Kind;
use syncline_proto::common::v1::Record;

use super::{API_VERSION, SalesforceConnector, error_code};
use crate::http;
use crate::values::{JsonObject, parse_instant, rfc3339_ms, salesforce_usage, timestamp};
use crate::{
    ApiUsage, ConnectorError, Credentials, ReadCursor, ReadRequest, RecordPage, RecordReader,
};

/// The default look-back of incremental runs.
pub const DEFAULT_LOOK_BACK: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// How far before the backfill's start the first deletes window begins.
const DELETES_MARGIN: Duration = Duration::minutes(5);
/// How far back Salesforce keeps deletes (`/deleted` refuses older starts).
const DELETES_RETENTION: Duration = Duration::days(15);
/// The shortest deletes window Salesforce accepts.
const MIN_DELETES_WINDOW: Duration = Duration::minutes(1);

/// Whether the reader is still on its first pass over the object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The first pass (everything up to now).
    #[default]
    Backfill,
    /// Changes since the last pass.
    Incremental,
}

/// The last record returned: the high-water mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Its `SystemModstamp`, RFC 3339 with milliseconds.
    pub t: String,
    /// Its id; empty after a look-back rewind (the next query reads `SystemModstamp >= t`).
    pub id: String,
}

/// Where a Salesforce read stands; serialised as the [`ReadCursor`] text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfCursor {
    /// Backfill or increments.
    #[serde(default)]
    pub phase: Phase,
    /// The last record returned; `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
    /// The open query's `nextRecordsUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Records of the open query returned so far (for the estimate of what is left).
    #[serde(default)]
    pub consumed: i64,
    /// Deletes are read from here on (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes_from: Option<String>,
    /// The latest `SystemModstamp` returned (RFC 3339): the watermark the look-back is taken
    /// from. Never rewound, so idle runs do not drift backwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
    /// Salesforce refused `/deleted` for this object (not replicable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_deletes: bool,
    /// The next query starts a look-back before the mark (set when a run catches up; applied
    /// by the reader that runs the next query, with its own look-back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewind: bool,
}

impl SfCursor {
    /// Reads a saved cursor; the start cursor is the default.
    pub fn parse(cursor: &ReadCursor) -> Result<Self, ConnectorError> {
        if cursor.is_start() {
            return Ok(Self::default());
        }
        serde_json::from_str(cursor.as_str())
            .map_err(|e| ConnectorError::invalid("salesforce read cursor", e))
    }

    /// The cursor's text.
    pub fn to_cursor(&self) -> ReadCursor {
        ReadCursor(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The SOQL of one query from `mark` on.
pub fn soql(
    object: &str,
    fields: &[String],
    mark: Option<&Mark>,
) -> Result<String, ConnectorError> {
    check_name("object", object)?;
    let mut select: Vec<&str> = vec!["Id", "SystemModstamp", "IsDeleted"];
    for field in fields {
        check_name("field", field)?;
        if !select.iter().any(|s| s.eq_ignore_ascii_case(field)) {
            select.push(field);
        }
    }
    let mut q = format!("SELECT {} FROM {object}", select.join(", "));
    if let Some(mark) = mark {
        let t = parse_instant(&mark.t)
            .ok_or_else(|| ConnectorError::invalid("salesforce read cursor", "bad mark time"))?;
        // SOQL compares date-times to the second (milliseconds are ignored for equality).
        // Stamps are whole seconds in practice, and then the id breaks ties exactly; a stamp
        // with milliseconds cannot be ordered against the id reliably, so its whole second
        // is read again instead (duplicates, never a loss).
        let whole = t.timestamp_subsec_millis() == 0;
        let t = t.to_rfc3339_opts(SecondsFormat::Secs, true);
        if mark.id.is_empty() || !whole {
            q.push_str(&format!(" WHERE SystemModstamp >= {t}"));
        } else {
            check_id(&mark.id)?;
            q.push_str(&format!(
                " WHERE SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > '{}')",
                mark.id
            ));
        }
    }
    q.push_str(" ORDER BY SystemModstamp ASC, Id ASC");
    Ok(q)
}

fn refused(code: &str, message: String) -> ConnectorError {
    ConnectorError::Refused {
        status: 400,
        code: code.to_owned(),
        message,
    }
}

/// Object and field names go into SOQL verbatim: letters, digits, `_` and `.` only.
fn check_name(what: &str, name: &str) -> Result<(), ConnectorError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(refused(
            "INVALID_FIELD",
            format!("{what} name {name:?} is not a salesforce api name"),
        ))
    }
}

fn check_id(id: &str) -> Result<(), ConnectorError> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ConnectorError::invalid(
            "salesforce read cursor",
            "bad mark id",
        ))
    }
}

/// One `/query` or `/queryAll` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    total_size: i64,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<JsonObject>,
}

/// `/sobjects/X/deleted/` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedPage {
    #[serde(default)]
    deleted_records: Vec<DeletedRecord>,
    #[serde(default)]
    latest_date_covered: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedRecord {
    id: String,
    #[serde(default)]
    deleted_date: Option<String>,
}

/// `attributes` removed, recursively (relationship fields come back nested).
fn strip_attributes(value: &mut prost_types::Value) {
    match &mut value.kind {
        Some(Kind::StructValue(object)) => {
            object.fields.remove("attributes");
            object.fields.values_mut().for_each(strip_attributes);
        }
        Some(Kind::ListValue(list)) => list.values.iter_mut().for_each(strip_attributes),
        _ => {}
    }
}

/// A query row as a record; its mark.
fn record_of(object: &str, mut row: JsonObject) -> Result<(Record, Mark), ConnectorError> {
    row.0.remove("attributes");
    let id = row
        .text("Id")
        .map(str::to_owned)
        .ok_or_else(|| ConnectorError::invalid(format!("query of {object}"), "a row has no Id"))?;
    let stamp = row
        .text("SystemModstamp")
        .and_then(parse_instant)
        .ok_or_else(|| {
            ConnectorError::invalid(format!("query of {object}"), "a row has no SystemModstamp")
        })?;
    let deleted = matches!(
        row.0.get("IsDeleted").and_then(|v| v.kind.as_ref()),
        Some(Kind::BoolValue(true))
    );
    row.0.values_mut().for_each(strip_attributes);
    let record = Record {
        object: object.to_owned(),
        id: id.clone(),
        fields: row.0,
        system_modstamp: Some(timestamp(stamp)),
        deleted,
    };
    Ok((
        record,
        Mark {
            t: rfc3339_ms(stamp),
            id,
        },
    ))
}

impl SalesforceConnector {
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        credentials: &Credentials,
        request: reqwest::RequestBuilder,
        what: &str,
        usage: &mut ApiUsage,
    ) -> Result<T, ConnectorError> {
        let response = http::send(request, credentials, error_code).await?;
        *usage = salesforce_usage(response.headers());
        http::json(response, what).await
    }

    /// Runs the query from the cursor's mark, or follows its locator.
    async fn query_page(
        &self,
        credentials: &Credentials,
        request: &ReadRequest<'_>,
        cursor: &mut SfCursor,
        usage: &mut ApiUsage,
        calls: &mut u32,
    ) -> Result<QueryPage, ConnectorError> {
        let batch = request.page_size.clamp(200, 2000);
        let what = format!("query of {}", request.object);
        if let Some(next) = cursor.next.clone() {
            let url = http::url(&credentials.instance_url, &next);
            *calls += 1;
            match self
                .get_json::<QueryPage>(credentials, self.http.get(url), &what, usage)
                .await
            {
                Ok(page) => return Ok(page),
                Err(ConnectorError::Refused { code, .. }) if code == "INVALID_QUERY_LOCATOR" => {
                    tracing::info!(
                        object = request.object,
                        "query locator refused; querying again from the mark"
                    );
                    cursor.next = None;
                    cursor.consumed = 0;
                }
                Err(e) => return Err(e),
            }
        }
        if std::mem::take(&mut cursor.rewind)
            && !self.look_back.is_zero()
            && let Some(t) = cursor
                .high
                .as_deref()
                .or(cursor.mark.as_ref().map(|m| m.t.as_str()))
                .and_then(parse_instant)
        {
            cursor.high = Some(rfc3339_ms(t));
            let back = Duration::from_std(self.look_back).unwrap_or(Duration::zero());
            cursor.mark = Some(Mark {
                t: rfc3339_ms(t - back),
                id: String::new(),
            });
        }
        let q = soql(request.object, request.fields, cursor.mark.as_ref())?;
        let url = http::url(
            &credentials.instance_url,
            &format!("/services/data/{API_VERSION}/queryAll"),
        );
        *calls += 1;
        let page: QueryPage = self
            .get_json(
                credentials,
                self.http
                    .get(url)
                    .query(&[("q", q.as_str())])
                    .header("Sforce-Query-Options", format!("batchSize={batch}")),
                &what,
                usage,
            )
            .await?;
        cursor.consumed = 0;
        Ok(page)
    }

    /// The hard deletes since the cursor's deletes window (at least a minute back, the
    /// shortest window Salesforce accepts).
    async fn deletes(
        &self,
        credentials: &Credentials,
        object: &str,
        cursor: &mut SfCursor,
        now: DateTime<Utc>,
        usage: &mut ApiUsage,
    ) -> Result<Vec<Record>, ConnectorError> {
        let oldest = now - DELETES_RETENTION + Duration::minutes(10);
        let mut start = cursor
            .deletes_from
            .as_deref()
            .and_then(parse_instant)
            .unwrap_or(now - DELETES_MARGIN);
        if start < oldest {
            tracing::warn!(
                object,
                "deletes not read for more than 15 days; older hard deletes cannot be seen"
            );
            start = oldest;
        }
        // Salesforce refuses windows under a minute: reach back instead (re-reporting a
        // delete is harmless; waiting would delay it to a later run).
        start = start.min(now - MIN_DELETES_WINDOW - Duration::seconds(1));
        let url = http::url(
            &credentials.instance_url,
            &format!("/services/data/{API_VERSION}/sobjects/{object}/deleted/"),
        );
        let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let wire: DeletedPage = self
            .get_json(
                credentials,
                self.http
                    .get(url)
                    .query(&[("start", secs(start)), ("end", secs(now))]),
                &format!("deletes of {object}"),
                usage,
            )
            .await?;
        let covered = wire
            .latest_date_covered
            .as_deref()
            .and_then(parse_instant)
            .map_or(now, |t| t.min(now))
            .max(start);
        cursor.deletes_from = Some(rfc3339_ms(covered));
        Ok(wire
            .deleted_records
            .into_iter()
            .map(|d| Record {
                object: object.to_owned(),
                id: d.id,
                fields: Default::default(),
                system_modstamp: d
                    .deleted_date
                    .as_deref()
                    .and_then(parse_instant)
                    .map(timestamp),
                deleted: true,
            })
            .collect())
    }
}

impl RecordReader for SalesforceConnector {
    async fn read_page(
        &self,
        credentials: &Credentials,
        request: ReadRequest<'_>,
    ) -> Result<RecordPage, ConnectorError> {
        let mut cursor = SfCursor::parse(request.cursor)?;
        let now = Utc::now();
        if cursor.deletes_from.is_none() {
            cursor.deletes_from = Some(rfc3339_ms(now - DELETES_MARGIN));
        }
        let mut usage = ApiUsage::default();
        let mut calls = 0;
        let page = self
            .query_page(credentials, &request, &mut cursor, &mut usage, &mut calls)
            .await?;
        let mut records = Vec::with_capacity(page.records.len());
        let mut high = cursor.high.as_deref().and_then(parse_instant);
        for row in page.records {
            let (record, mark) = record_of(request.object, row)?;
            if let Some(t) = parse_instant(&mark.t) {
                high = Some(high.map_or(t, |h| h.max(t)));
            }
            records.push(record);
            cursor.mark = Some(mark);
        }
        cursor.high = high.map(rfc3339_ms);
        cursor.consumed += records.len() as i64;
        let done = page.done || page.next_records_url.is_none();
        cursor.next = if done { None } else { page.next_records_url };
        let estimated_total = Some((page.total_size - cursor.consumed).max(0));
        let mut caught_up = false;
        if done {
            if !cursor.no_deletes {
                calls += 1;
                match self
                    .deletes(credentials, request.object, &mut cursor, now, &mut usage)
                    .await
                {
                    Ok(deletes) => records.extend(deletes),
                    // Objects that are not replicable (and some system objects) refuse
                    // `/deleted`: their hard deletes cannot be read; soft deletes still come
                    // through `queryAll`. Remembered in the cursor so it is asked once.
                    Err(ConnectorError::Refused {
                        status: 400 | 403 | 404,
                        code,
                        ..
                    }) if code != "INVALID_REPLICATION_DATE" => {
                        tracing::warn!(
                            object = request.object,
                            code = code.as_str(),
                            "the object's deletes cannot be read; hard deletes will be missed"
                        );
                        cursor.no_deletes = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            cursor.phase = Phase::Incremental;
            cursor.rewind = true;
            caught_up = true;
        }
        Ok(RecordPage {
            records,
            cursor: cursor.to_cursor(),
            caught_up,
            estimated_total,
            provider_calls: calls,
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(path: &str) -> String {
        let file = format!(
            "{}/../../../shared/crm-reference/salesforce/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&file).unwrap()
    }

    #[test]
    fn recorded_query_and_deleted_answers_parse() {
        let page: QueryPage =
            serde_json::from_str(&fixture("query-page1-with-nextRecordsUrl.json")).unwrap();
        assert!(!page.done);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v26.0/query/01gD")
        );
        let deleted: DeletedPage = serde_json::from_str(&fixture("sobject-deleted.json")).unwrap();
        assert_eq!(deleted.deleted_records[0].id, "a00D0000008pQRAIA2");
        assert!(
            deleted.deleted_records[0]
                .deleted_date
                .as_deref()
                .and_then(parse_instant)
                .is_some()
        );
        assert!(
            deleted
                .latest_date_covered
                .as_deref()
                .and_then(parse_instant)
                .is_some()
        );
        // A row: attributes dropped (also nested), IsDeleted read, the mark taken.
        let row: JsonObject = serde_json::from_value(serde_json::json!({
            "attributes": {"type": "Contact", "url": "/x"},
            "Id": "003ak000003dQCGAA2",
            "SystemModstamp": "2024-04-09T20:19:25.000+0000",
            "IsDeleted": true,
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme"},
        }))
        .unwrap();
        let (record, mark) = record_of("Contact", row).unwrap();
        assert!(record.deleted);
        assert!(!record.fields.contains_key("attributes"));
        let prost_types::value::Kind::StructValue(account) =
            record.fields["Account"].kind.clone().unwrap()
        else {
            panic!("nested")
        };
        assert!(!account.fields.contains_key("attributes"));
        assert_eq!(mark.t, "2024-04-09T20:19:25.000Z");
    }

    #[test]
    fn soql_breaks_ties_on_id() {
        let mark = Mark {
            t: "2024-04-09T20:19:25.000+0000".into(),
            id: "001000000000001AAA".into(),
        };
        let q = soql("Account", &["Name".into(), "id".into()], Some(&mark)).unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account WHERE \
             SystemModstamp > 2024-04-09T20:19:25Z OR (SystemModstamp = \
             2024-04-09T20:19:25Z AND Id > '001000000000001AAA') ORDER BY SystemModstamp \
             ASC, Id ASC"
        );
    }

    #[test]
    fn a_rewound_mark_reads_from_its_stamp_inclusive() {
        let mark = Mark {
            t: "2024-04-09T20:14:25.000Z".into(),
            id: String::new(),
        };
        let q = soql("Account", &[], Some(&mark)).unwrap();
        assert!(q.contains("WHERE SystemModstamp >= 2024-04-09T20:14:25Z ORDER BY"));
        // A stamp with milliseconds: its whole second again, not the id tie-breaker.
        let mark = Mark {
            t: "2024-04-09T20:14:25.250Z".into(),
            id: "001000000000001AAA".into(),
        };
        let q = soql("Account", &[], Some(&mark)).unwrap();
        assert!(q.contains("WHERE SystemModstamp >= 2024-04-09T20:14:25Z ORDER BY"));
    }

    #[test]
    fn names_that_could_change_the_query_are_refused() {
        for bad in ["Name FROM User", "x'", "", "a,b"] {
            assert!(soql("Account", &[bad.to_owned()], None).is_err(), "{bad}");
        }
        assert!(soql("Account; DELETE", &[], None).is_err());
    }

    #[test]
    fn cursor_round_trips() {
        let c = SfCursor {
            phase: Phase::Incremental,
            mark: Some(Mark {
                t: "2024-04-09T20:19:25.000Z".into(),
                id: "001".into(),
            }),
            next: Some("/services/data/v62.0/query/01g-200".into()),
            consumed: 200,
            deletes_from: Some("2024-04-09T20:00:00.000Z".into()),
            high: Some("2024-04-09T20:19:25.000Z".into()),
            no_deletes: false,
            rewind: true,
        };
        assert_eq!(SfCursor::parse(&c.to_cursor()).unwrap(), c);
        assert_eq!(
            SfCursor::parse(&ReadCursor::start()).unwrap(),
            SfCursor::default()
        );
        assert!(SfCursor::parse(&ReadCursor("{".into())).is_err());
    }
}
