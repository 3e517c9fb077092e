//! Query, describe and write behaviour of the data API.

use super::{Sf, TestResult, small, spawn, spawn_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn limit_header_on_every_data_response_and_versions_without_auth() -> TestResult {
    let sf = spawn().await?;
    let r = sf.send(sf.http.get(sf.url("/services/data/"))).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v["version"] == "59.0"))
    );
    let a = sf.get("/services/data/v59.0/sobjects").await?;
    let b = sf
        .get("/services/data/v59.0/sobjects/Nope__c/describe")
        .await?;
    assert_eq!(a.headers["sforce-limit-info"], "api-usage=1/100000");
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert_eq!(b.headers["sforce-limit-info"], "api-usage=2/100000");
    Ok(())
}

#[tokio::test]
async fn query_pages_follow_next_records_url_with_batch_size() -> TestResult {
    let sf = spawn_with(small(&[("Project__c", 1050)])).await?;
    let first = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/query"))
                .query(&[("q", "SELECT Id, Name, Budget__c, SystemModstamp FROM Project__c ORDER BY SystemModstamp ASC")])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["totalSize"], 1050);
    assert_eq!(first.body["done"], false);
    assert_eq!(first.body["records"].as_array().map(Vec::len), Some(200));
    let mut next = first.body["nextRecordsUrl"].as_str().map(str::to_owned);
    assert!(next.as_deref().is_some_and(|u| u.starts_with("/services/data/v59.0/query/01g") && u.ends_with("-200")));
    let mut seen: Vec<String> = first.body["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["SystemModstamp"].as_str().map(str::to_owned))
        .collect();
    let mut pages = 1;
    while let Some(u) = next {
        let page = sf.get(&u).await?;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body["totalSize"], 1050);
        seen.extend(
            page.body["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["SystemModstamp"].as_str().map(str::to_owned)),
        );
        next = page.body["nextRecordsUrl"].as_str().map(str::to_owned);
        if next.is_none() {
            assert_eq!(page.body["done"], true);
        }
        pages += 1;
    }
    assert_eq!(pages, 6);
    assert_eq!(seen.len(), 1050);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "ordered by SystemModstamp"
    );
    let stale = sf
        .get("/services/data/v59.0/query/01gak0000000zzzAAA-200")
        .await?;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert_eq!(stale.body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
    Ok(())
}

#[tokio::test]
async fn where_on_dates_and_ids_with_and_or_order_by_and_limit() -> TestResult {
    let sf = spawn_with(small(&[("Account", 300)])).await?;
    let all = sf
        .query("SELECT Id, Name, SystemModstamp FROM Account ORDER BY SystemModstamp ASC")
        .await?;
    let recs = all.body["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(recs.len(), 300);
    let mid = recs[150]["SystemModstamp"]
        .as_str()
        .unwrap_or_default()
        .replace(".000+0000", "Z");
    let after = sf
        .query(&format!(
            "SELECT Id FROM Account WHERE SystemModstamp >= {mid} ORDER BY SystemModstamp ASC"
        ))
        .await?;
    let n = after.body["totalSize"].as_u64().unwrap_or(0);
    assert!((140..=150).contains(&n), "{n}");
    let id10 = recs[10]["Id"].as_str().unwrap_or_default();
    let id20 = recs[20]["Id"].as_str().unwrap_or_default();
    let or = sf.query(&format!("SELECT Id FROM Account WHERE (Id = '{id10}' OR Id = '{id20}') AND SystemModstamp < {mid}")).await?;
    assert_eq!(or.body["totalSize"], 2);
    let by_id = sf
        .query(&format!(
            "SELECT Id FROM Account WHERE Id > '{id10}' ORDER BY Id DESC LIMIT 5"
        ))
        .await?;
    assert_eq!(by_id.body["totalSize"], 5);
    let ids: Vec<&str> = by_id.body["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Id"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let count = sf
        .query("SELECT COUNT() FROM Account WHERE Name LIKE 'A%'")
        .await?;
    assert!(
        count.body["totalSize"]
            .as_u64()
            .is_some_and(|n| n > 0 && n < 300)
    );
    let mixed = sf
        .query("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'")
        .await?;
    assert_eq!(mixed.body[0]["errorCode"], "MALFORMED_QUERY");
    let bad = sf.query("SELECT Id, Nmae FROM Account").await?;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body[0]["errorCode"], "INVALID_FIELD");
    assert!(
        bad.body[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No such column 'Nmae' on entity 'Account'")
                && m.contains("ERROR at Row:1:Column:12"))
    );
    let quoted = sf
        .query("SELECT Id FROM Account WHERE CreatedDate > '2024-01-01'")
        .await?;
    assert_eq!(quoted.body[0]["errorCode"], "INVALID_FIELD");
    let parent = sf
        .query("SELECT Id, Account.Name FROM Contact LIMIT 3")
        .await?;
    assert!(
        parent.body["records"][0]["Account"]["attributes"]["type"] == "Account"
            || parent.body["records"][0]["Account"].is_null()
    );
    Ok(())
}

#[tokio::test]
async fn writes_stamp_records_and_are_logged() -> TestResult {
    let sf = spawn_with(small(&[("Contact", 50)])).await?;
    let created = sf
        .json(
            Method::POST,
            "/services/data/v59.0/sobjects/Contact",
            &json!({"FirstName": "Siena", "LastName": "Dyer", "Email": "siena@example.com"}),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("003"));
    let rec = sf
        .get(&format!("/services/data/v59.0/sobjects/Contact/{id}"))
        .await?;
    assert_eq!(rec.body["LastName"], "Dyer");
    assert_eq!(rec.body["CreatedDate"], rec.body["SystemModstamp"]);

    // Change an untouched generated record: its stamps move to now.
    let gen_id = sf.sf.admin().record_id("demo", "Contact", 7)?;
    let before = sf
        .get(&format!("/services/data/v59.0/sobjects/Contact/{gen_id}"))
        .await?;
    let upd = sf
        .json(
            Method::PATCH,
            &format!("/services/data/v59.0/sobjects/Contact/{gen_id}"),
            &json!({"Title": "CTO"}),
        )
        .await?;
    assert_eq!(upd.status, StatusCode::NO_CONTENT);
    let after = sf
        .get(&format!("/services/data/v59.0/sobjects/Contact/{gen_id}"))
        .await?;
    assert_eq!(after.body["Title"], "CTO");
    assert_eq!(after.body["LastName"], before.body["LastName"]);
    assert!(after.body["SystemModstamp"].as_str() > before.body["SystemModstamp"].as_str());
    assert_eq!(after.body["LastModifiedDate"], after.body["SystemModstamp"]);
    assert_eq!(after.body["CreatedDate"], before.body["CreatedDate"]);

    let ro = sf
        .json(
            Method::PATCH,
            &format!("/services/data/v59.0/sobjects/Contact/{gen_id}"),
            &json!({"CreatedDate": "2020-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!(ro.body[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    let missing = sf
        .json(
            Method::POST,
            "/services/data/v59.0/sobjects/Contact",
            &json!({"FirstName": "X"}),
        )
        .await?;
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    let unknown = sf
        .json(
            Method::POST,
            "/services/data/v59.0/sobjects/Contact",
            &json!({"LastName": "X", "Foo": 1}),
        )
        .await?;
    assert_eq!(
        unknown.body[0]["message"],
        "No such column 'Foo' on sobject of type Contact"
    );

    let del = sf
        .send(
            sf.http
                .delete(sf.url(&format!("/services/data/v59.0/sobjects/Contact/{id}")))
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let again = sf
        .send(
            sf.http
                .delete(sf.url(&format!("/services/data/v59.0/sobjects/Contact/{id}")))
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(again.body[0]["errorCode"], "ENTITY_IS_DELETED");
    let q = sf.query("SELECT Id FROM Contact").await?;
    assert_eq!(q.body["totalSize"], 50);
    let qa = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/queryAll"))
                .query(&[(
                    "q",
                    "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
                )])
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(qa.body["totalSize"], 1);

    let changes = sf.sf.admin().changes("demo", 0)?;
    let kinds: Vec<String> = changes
        .iter()
        .map(|c| format!("{:?}", c.change_type))
        .collect();
    assert_eq!(kinds, ["Create", "Update", "Delete"]);
    assert!(changes[1].changed_fields.contains(&"Title".to_owned()));
    assert!(
        changes[1]
            .changed_fields
            .contains(&"LastModifiedDate".to_owned())
    );

    // /updated and /deleted see the changes.
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::minutes(2))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let up = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/sobjects/Contact/updated/"))
                .query(&[("start", &start), ("end", &end)])
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(up.status, StatusCode::OK);
    assert!(
        up.body["ids"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == gen_id.as_str())),
        "{}",
        up.body
    );
    let dl = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/sobjects/Contact/deleted/"))
                .query(&[("start", &start), ("end", &end)])
                .bearer_auth(&sf.token),
        )
        .await?;
    assert_eq!(dl.body["deletedRecords"][0]["id"], id.as_str());
    Ok(())
}

#[tokio::test]
async fn upsert_by_external_id_201_200_300_404() -> TestResult {
    let sf = spawn_with(small(&[("Contact", 20)])).await?;
    let base = "/services/data/v59.0/sobjects/Contact";
    let created = sf
        .json(
            Method::PATCH,
            &format!("{base}/External_Id__c/NEW-1"),
            &json!({"LastName": "New"}),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["created"], true);
    let updated = sf
        .json(
            Method::PATCH,
            &format!("{base}/External_Id__c/CON-000003"),
            &json!({"Title": "VP"}),
        )
        .await?;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["created"], false);
    let old = sf
        .json(
            Method::PATCH,
            "/services/data/v40.0/sobjects/Contact/External_Id__c/CON-000004",
            &json!({"Title": "VP"}),
        )
        .await?;
    assert_eq!(old.status, StatusCode::NO_CONTENT);
    let multi = sf
        .json(
            Method::PATCH,
            &format!("{base}/Legacy_Id__c/LEG-000001"),
            &json!({"Title": "VP"}),
        )
        .await?;
    assert_eq!(multi.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(multi.body.as_array().map(Vec::len), Some(2));
    let bad = sf
        .json(Method::PATCH, &format!("{base}/Namez/x"), &json!({}))
        .await?;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert_eq!(
        bad.body[0]["message"],
        "Provided external ID field does not exist or is not accessible: Namez"
    );
    let only = sf
        .send(
            sf.http
                .patch(sf.url(&format!("{base}/External_Id__c/NOPE")))
                .query(&[("updateOnly", "true")])
                .bearer_auth(&sf.token)
                .json(&json!({"LastName": "x"})),
        )
        .await?;
    assert_eq!(only.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn collections_all_or_none_rolls_back() -> TestResult {
    let sf = spawn_with(small(&[("Contact", 5)])).await?;
    let url = "/services/data/v59.0/composite/sobjects";
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "FirstName": "A"},
        {"attributes": {"type": "Contact"}, "LastName": "B"}
    ]});
    let r = sf.json(Method::POST, url, &body).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body[0]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        r.body[1]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        sf.query("SELECT COUNT() FROM Contact").await?.body["totalSize"],
        5
    );
    let mut loose = body.clone();
    loose["allOrNone"] = Value::Bool(false);
    let r = sf.json(Method::POST, url, &loose).await?;
    assert_eq!(r.body[0]["success"], false);
    assert_eq!(r.body[1]["success"], true);
    assert_eq!(
        sf.query("SELECT COUNT() FROM Contact").await?.body["totalSize"],
        6
    );
    let empty = sf.json(Method::POST, url, &json!({"records": []})).await?;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("L{i}")}))
        .collect();
    let too_many = sf
        .json(Method::POST, url, &json!({"records": many}))
        .await?;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    let no_ids = sf
        .json(
            Method::PATCH,
            url,
            &json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "x"}]}),
        )
        .await?;
    assert_eq!(
        no_ids.body[0]["errors"][0]["statusCode"],
        "MISSING_ARGUMENT"
    );
    Ok(())
}

#[tokio::test]
async fn data_is_deterministic_per_seed_and_independent_per_org() -> TestResult {
    let a = spawn_with(small(&[("Account", 20)])).await?;
    let b = spawn_with(small(&[("Account", 20)])).await?;
    let qa = a
        .query("SELECT Id, Name, Phone, AnnualRevenue, BillingCity FROM Account")
        .await?;
    let qb = b
        .query("SELECT Id, Name, Phone, AnnualRevenue, BillingCity FROM Account")
        .await?;
    assert_eq!(qa.body, qb.body);
    let other =
        a.sf.admin()
            .create_org(syncline_crm_sandbox::salesforce::OrgConfig {
                name: "acme".into(),
                counts: vec![("Account".into(), 20)],
                ..Default::default()
            })?;
    assert_ne!(other.org_id, a.sf.admin().orgs()[0].org_id);
    let t = a.sf.admin().issue_tokens("acme", None)?;
    let other_q = a
        .send(
            a.http
                .get(a.url("/services/data/v59.0/query"))
                .query(&[("q", "SELECT Name FROM Account")])
                .bearer_auth(&t.access_token),
        )
        .await?;
    assert_ne!(other_q.body["records"], qa.body["records"]);
    Ok(())
}

#[tokio::test]
async fn custom_objects_have_forty_plus_custom_fields_and_relationships() -> TestResult {
    let sf: Sf = spawn().await?;
    let d = sf
        .get("/services/data/v59.0/sobjects/Project__c/describe")
        .await?;
    let fields = d.body["fields"].as_array().cloned().unwrap_or_default();
    assert!(fields.iter().filter(|f| f["custom"] == true).count() >= 40);
    let acct = fields
        .iter()
        .find(|f| f["name"] == "Account__c")
        .cloned()
        .unwrap_or_default();
    assert_eq!(acct["relationshipName"], "Account__r");
    assert_eq!(acct["referenceTo"], json!(["Account"]));
    let types: std::collections::BTreeSet<String> = fields
        .iter()
        .filter_map(|f| f["type"].as_str().map(str::to_owned))
        .collect();
    for t in [
        "string",
        "picklist",
        "multipicklist",
        "currency",
        "percent",
        "double",
        "int",
        "date",
        "datetime",
        "boolean",
        "reference",
        "email",
        "phone",
        "url",
        "textarea",
    ] {
        assert!(types.contains(t), "{t}");
    }
    Ok(())
}

#[tokio::test]
async fn upserts_on_a_million_record_org_use_direct_lookups() -> TestResult {
    let sf = spawn_with(small(&[("Project__c", 1_000_000)])).await?;
    let t = std::time::Instant::now();
    let r = sf
        .json(
            Method::PATCH,
            "/services/data/v59.0/composite/sobjects/Project__c/Project_Code__c",
            &json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Project__c"}, "Project_Code__c": "PRJ-999999", "Status__c": "On Hold"},
                {"attributes": {"type": "Project__c"}, "Project_Code__c": "PRJ-NEW-1", "Name": "Fresh"}
            ]}),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body[0]["created"].clone(), r.body[1]["created"].clone()),
        (json!(false), json!(true))
    );
    let id = sf.sf.admin().record_id("demo", "Project__c", 999_999)?;
    assert_eq!(r.body[0]["id"], id.as_str());
    let single = sf
        .json(
            Method::PATCH,
            "/services/data/v59.0/sobjects/Project__c/Project_Code__c/prj-000042",
            &json!({"Status__c": "Completed"}),
        )
        .await?;
    assert_eq!(single.status, StatusCode::OK);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "no full scans: {:?}",
        t.elapsed()
    );
    let q = sf
        .query(&format!(
            "SELECT Status__c FROM Project__c WHERE Id = '{id}'"
        ))
        .await?;
    assert_eq!(q.body["records"][0]["Status__c"], "On Hold");
    Ok(())
}

#[tokio::test]
async fn purged_records_leave_query_all_but_stay_in_deleted() -> TestResult {
    let sf = spawn_with(small(&[("Account", 5)])).await?;
    let admin = sf.sf.admin();
    let (soft, hard) = (
        admin.record_id("demo", "Account", 1)?,
        admin.record_id("demo", "Account", 2)?,
    );
    admin.delete_record("demo", "Account", &soft)?;
    admin.delete_record("demo", "Account", &hard)?;
    // Only a deleted record can be purged.
    assert!(admin.purge_record("demo", "Account", &hard).is_ok());
    let live = admin.record_id("demo", "Account", 3)?;
    assert!(admin.purge_record("demo", "Account", &live).is_err());
    let ids = |r: &super::Reply| -> Vec<String> {
        r.body["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v["Id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = sf
        .get(&format!(
            "/services/data/v59.0/queryAll?q={}",
            "SELECT Id FROM Account WHERE IsDeleted = true"
        ))
        .await?;
    assert_eq!(ids(&all), std::slice::from_ref(&soft));
    let one = sf
        .get(&format!("/services/data/v59.0/sobjects/Account/{hard}"))
        .await?;
    assert_eq!(one.status, StatusCode::NOT_FOUND);
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let end = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let dl = sf
        .send(
            sf.http
                .get(sf.url("/services/data/v59.0/sobjects/Account/deleted/"))
                .query(&[("start", &start), ("end", &end)])
                .bearer_auth(&sf.token),
        )
        .await?;
    let mut deleted: Vec<&str> = dl.body["deletedRecords"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["id"].as_str()).collect())
        .unwrap_or_default();
    deleted.sort_unstable();
    let mut expected = [soft.as_str(), hard.as_str()];
    expected.sort_unstable();
    assert_eq!(deleted, expected);
    Ok(())
}

#[tokio::test]
async fn a_late_commit_keeps_its_earlier_stamp() -> TestResult {
    let sf = spawn_with(small(&[("Account", 5)])).await?;
    let id = sf.sf.admin().record_id("demo", "Account", 2)?;
    let stamp = chrono::Utc::now().timestamp() - 3600;
    let r = sf
        .send(
            sf.http
                .post(sf.url(&format!("/__admin/orgs/demo/records/Account/{id}/late")))
                .json(&json!({"stamp": stamp, "fields": {"Name": "Late Co"}})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rec = sf
        .get(&format!("/services/data/v59.0/sobjects/Account/{id}"))
        .await?;
    assert_eq!(rec.body["Name"], "Late Co");
    let modstamp = rec.body["SystemModstamp"].as_str().unwrap_or_default();
    let parsed = chrono::DateTime::parse_from_str(modstamp, "%Y-%m-%dT%H:%M:%S%.f%z")?;
    assert_eq!(parsed.timestamp(), stamp);
    Ok(())
}
