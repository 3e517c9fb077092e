"""Drives the HubSpot sandbox with the real hubspot-api-client package (12.0.0).

Usage: python3 hubspot_client.py BASE_URL ACCESS_TOKEN REFRESH_TOKEN CLIENT_ID CLIENT_SECRET

Prints one `key=value` line per check; the Rust test asserts on them. Any exception from the
client library makes the script exit non-zero with the traceback on stderr.
"""

import sys

import hubspot
from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId


def main() -> None:
    base_url, access_token, refresh_token, client_id, client_secret = sys.argv[1:6]
    client = hubspot.Client.create(access_token=access_token, host=base_url)

    page = client.crm.contacts.basic_api.get_page(limit=5, properties=["email", "firstname"])
    print(f"page_size={len(page.results)}")
    print(f"page_next={page.paging.next.after}")
    print(f"page_first_email={page.results[0].properties['email']}")

    everything = client.crm.contacts.get_all()
    print(f"get_all={len(everything)}")

    created = client.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"email": "python.client@example.com", "firstname": "Py"}
        )
    )
    print(f"created_id={created.id}")
    updated = client.crm.contacts.basic_api.update(
        contact_id=created.id,
        simple_public_object_input=SimplePublicObjectInput(properties={"lastname": "Client"}),
    )
    print(f"updated_modified_changed={updated.properties['lastmodifieddate'] >= created.properties['lastmodifieddate']}")

    search = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="python.client@example.com")])
            ],
            properties=["email", "lastname"],
            limit=10,
        )
    )
    print(f"search_total={search.total}")
    print(f"search_lastname={search.results[0].properties['lastname']}")

    batch = client.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="1"), SimplePublicObjectId(id="2")], properties=["email"], properties_with_history=[]
        )
    )
    print(f"batch_read={len(batch.results)}")

    props = client.crm.properties.core_api.get_all(object_type="contacts")
    print(f"contact_properties={len(props.results)}")

    schemas = client.crm.schemas.core_api.get_all()
    custom = schemas.results[0]
    print(f"custom_type_id={custom.object_type_id}")
    print(f"custom_properties={len(custom.properties)}")

    records = client.crm.objects.basic_api.get_page(object_type=custom.object_type_id, limit=3, properties=["external_id"])
    print(f"custom_first_external_id={records.results[0].properties['external_id']}")

    tokens = client.oauth.tokens_api.create(
        grant_type="refresh_token",
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
    )
    print(f"refresh_expires_in={tokens.expires_in}")
    fresh = hubspot.Client.create(access_token=tokens.access_token, host=base_url)
    print(f"fresh_token_works={len(fresh.crm.companies.basic_api.get_page(limit=1).results) == 1}")

    try:
        client.oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token="bogus", client_id=client_id, client_secret=client_secret
        )
        print("bad_refresh_status=none")
    except hubspot.oauth.ApiException as e:
        print(f"bad_refresh_status={e.status}")


if __name__ == "__main__":
    main()
