"""Drives the Salesforce sandbox with the real simple-salesforce package (1.12.10).

Usage: python3 salesforce_client.py BASE_URL ACCESS_TOKEN CA_PEM_PATH

simple-salesforce forces https:// for every URL it builds, so the sandbox serves TLS with a
locally generated CA and this script trusts that CA through ``session.verify`` (the Rust
test also sets ``REQUESTS_CA_BUNDLE``, which requests lets override ``session.verify``).

Prints one ``key=value`` line per check; the Rust test asserts on them. Any unexpected
exception from the client library makes the script exit non-zero with the traceback on stderr.
"""

import datetime
import json
import sys

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)


def main() -> None:
    base_url, access_token, ca_path = sys.argv[1:4]
    session = requests.Session()
    session.verify = ca_path
    sf = Salesforce(instance_url=base_url, session_id=access_token, version="59.0", session=session)

    described = sf.describe()
    print(f"global_describe_max_batch={described['maxBatchSize']}")
    print(f"global_describe_has_project={any(o['name'] == 'Project__c' for o in described['sobjects'])}")
    project = sf.Project__c.describe()
    print(f"project_custom_fields={sum(1 for f in project['fields'] if f['custom'])}")

    first = sf.query("SELECT Id, Name, Budget__c FROM Project__c ORDER BY SystemModstamp")
    print(f"query_total={first['totalSize']}")
    print(f"query_done={first['done']}")
    print(f"query_first_page={len(first['records'])}")
    everything = sf.query_all("SELECT Id, Name, Budget__c FROM Project__c ORDER BY SystemModstamp")
    print(f"query_all_records={len(everything['records'])}")
    ids = [r["Id"] for r in everything["records"]]
    print(f"query_all_unique={len(set(ids))}")

    created = sf.Contact.create({"FirstName": "Siena", "LastName": "Dyer", "Email": "siena@example.com"})
    contact_id = created["id"]
    print(f"create_success={created['success']}")
    status = sf.Contact.update(contact_id, {"Title": "CTO"})
    print(f"update_status={status}")
    fetched = sf.Contact.get(contact_id)
    print(f"get_title={fetched['Title']}")
    print(f"get_type={fetched['attributes']['type']}")

    upserted = sf.Contact.upsert("External_Id__c/PY-1", {"LastName": "Upserted"})
    print(f"upsert_status={upserted}")
    by_ext = sf.Contact.get_by_custom_id("External_Id__c", "PY-1")
    print(f"get_by_custom_id={by_ext['LastName']}")

    print(f"delete_status={sf.Contact.delete(contact_id)}")
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(hours=1)
    end = now + datetime.timedelta(minutes=1)
    updated = sf.Contact.updated(start, end)
    print(f"updated_has_upserted={by_ext['Id'] in updated['ids']}")
    deleted = sf.Contact.deleted(start, end)
    print(f"deleted_ids={','.join(d['id'] for d in deleted['deletedRecords'])}")
    print(f"deleted_expected={contact_id}")

    collection = sf.restful(
        "composite/sobjects",
        method="POST",
        data=json.dumps({"allOrNone": True, "records": [
            {"attributes": {"type": "Contact"}, "LastName": "One"},
            {"attributes": {"type": "Contact"}, "LastName": "Two"},
        ]}),
    )
    print(f"collection_success={all(r['success'] for r in collection)}")

    usage = sf.api_usage.get("api-usage")
    print(f"api_usage_parsed={usage is not None and usage.used > 0 and usage.total > 0}")
    print(f"limits_daily_max={sf.limits()['DailyApiRequests']['Max']}")

    try:
        sf.query("SELECT Id FROM Contact WHERE")
        print("malformed=not raised")
    except SalesforceMalformedRequest as err:
        print(f"malformed={err.content[0]['errorCode']}")

    try:
        sf.Contact.get("003000000000000AAA")
        print("not_found=not raised")
    except SalesforceResourceNotFound as err:
        print(f"not_found={err.content[0]['errorCode']}")

    session.post(f"{base_url}/__admin/orgs/demo/sessions/expire").raise_for_status()
    try:
        sf.query("SELECT Id FROM Contact LIMIT 1")
        print("expired=not raised")
    except SalesforceExpiredSession as err:
        print(f"expired={err.content[0]['errorCode']}")


if __name__ == "__main__":
    main()
