"""The hub API through HTTP: bad input, auth and roles, aggregate nodes, queries, consent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from contactsync.hub import tokens, workspaces
from contactsync.hub.workspaces import NodeKind
from contactsync.store import workspaces as ws_store
from tests.conftest import Hub


@pytest.fixture
def client(hub: Hub, live_server: str) -> Iterator[httpx.Client]:
    """HTTP against the real server (uvicorn on loopback)."""
    with httpx.Client(base_url=live_server, headers=hub.headers, timeout=30) as c:
        yield c


def url(hub: Hub, path: str = "/customers") -> str:
    return f"/hub/v1/workspaces/{hub.workspace_id}{path}"


def create(client: httpx.Client, hub: Hub, **body: Any) -> dict[str, Any]:
    response = client.post(url(hub), json={"nodeId": hub.node_id, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def count(hub: Hub) -> int:
    with hub.db.read() as conn:
        return ws_store.count_customers(conn, [hub.node_id])


def q(attribute: str, operator: str, value: Any = None) -> str:
    cond = {"type": "atomic", "attribute": attribute, "operator": operator, "value": value}
    return orjson.dumps({"name": "q", "query": {"type": "simple", "are": {"condition": cond}}}).decode()


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({"base": {"contacts": {"email": "not an email"}}}, "E201", "base.contacts.email"),
        ({"extended": {"loyalty": 3}}, "E202", "extended.loyalty"),
        ({"base": {"nickname": "x"}}, "E202", "base.nickname"),
        ({"base": {"firstName": 42}}, "E203", "base.firstName"),
        ({"base": {"dob": "yesterday"}}, "E203", "base.dob"),
        ({"base": {"address": {"geo": {"lat": "north"}}}}, "E203", "base.address.geo.lat"),
        ({"base": {"firstName": "x" * 70_000}}, "E204", "base"),
        ({"externalId": "e", "extra": "y" * 70_000}, "E204", "extra"),
        ({"base": {"subscriptions": [{"name": "no id"}]}}, "E206", "base.subscriptions.0"),
    ],
)
def test_bad_customer_is_refused_with_a_path_and_nothing_is_written(
    client: httpx.Client, hub: Hub, body: dict[str, Any], code: str, path: str
) -> None:
    response = client.post(url(hub), json={"nodeId": hub.node_id, **body})
    assert response.status_code == 400
    error = response.json()
    assert set(error) >= {"message", "logref", "data", "errors"}
    assert error["code"] == code
    assert error["errors"][0]["path"] == path
    assert count(hub) == 0


def test_malformed_query_is_a_400_with_the_query_path(client: httpx.Client, hub: Hub) -> None:
    response = client.get(url(hub), params={"nodeId": hub.node_id, "query": "{not json"})
    assert response.status_code == 400 and response.json()["code"] == "E205"
    bad_op = q("base.firstName", "LIKE", "x")
    response = client.get(url(hub), params={"nodeId": hub.node_id, "query": bad_op})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "query.are.condition.operator"


def test_bad_patch_leaves_the_customer_unchanged(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, base={"firstName": "Ada", "contacts": {"email": "ada@example.com"}})
    response = client.patch(url(hub, f"/customers/{c['id']}"), json={"base": {"firstName": 7}})
    assert response.status_code == 400
    assert client.get(url(hub, f"/customers/{c['id']}")).json()["base"]["firstName"] == "Ada"


def test_authentication_and_roles(client: httpx.Client, hub: Hub) -> None:
    assert (
        client.get(url(hub), params={"nodeId": hub.node_id}, headers={"Authorization": ""}).status_code == 401
    )
    bad = client.get(url(hub), params={"nodeId": hub.node_id}, headers={"Authorization": "Bearer cs_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "E110"
    user_token, _ = tokens.create_token(hub.db, hub.workspace_id, "user", "u")
    as_user = {"Authorization": f"Bearer {user_token}"}
    assert client.get(url(hub), params={"nodeId": hub.node_id}, headers=as_user).status_code == 200
    policy = client.put(
        url(hub, "/configuration/unique-customer-matching-policy"),
        headers=as_user,
        json={"properties": ["externalId"]},
    )
    assert policy.status_code == 403 and policy.json()["code"] == "E111"
    tokens.revoke_token(hub.db, hub.workspace_id, name="u")
    assert client.get(url(hub), params={"nodeId": hub.node_id}, headers=as_user).status_code == 401
    other = workspaces.create_workspace(hub.db, "other")
    other_token, _ = tokens.create_token(hub.db, other.id, "admin", "o")
    foreign = client.get(
        url(hub), params={"nodeId": hub.node_id}, headers={"Authorization": f"Bearer {other_token}"}
    )
    assert foreign.status_code == 403


def test_source_token_bound_to_a_node(client: httpx.Client, hub: Hub) -> None:
    other = workspaces.create_node(hub.db, hub.workspace_id, "other")
    token, _ = tokens.create_token(hub.db, hub.workspace_id, "source", "src", node_id=hub.node_id)
    headers = {"Authorization": f"Bearer {token}"}
    ok = client.post(url(hub), headers=headers, json={"nodeId": hub.node_id, "externalId": "a"})
    assert ok.status_code == 201
    refused = client.post(url(hub), headers=headers, json={"nodeId": other.id, "externalId": "b"})
    assert refused.status_code == 403


def test_aggregate_node_is_a_read_only_union(client: httpx.Client, hub: Hub) -> None:
    second = workspaces.create_node(hub.db, hub.workspace_id, "second")
    union = workspaces.create_node(
        hub.db, hub.workspace_id, "all", kind=NodeKind.AGGREGATE, members=[hub.node_id, second.id]
    )
    create(client, hub, base={"contacts": {"email": "a@example.com"}})
    client.post(url(hub), json={"nodeId": second.id, "base": {"contacts": {"email": "b@example.com"}}})
    listed = client.get(url(hub), params={"nodeId": union.id}).json()
    assert sorted(c["base"]["contacts"]["email"] for c in listed["elements"]) == [
        "a@example.com",
        "b@example.com",
    ]
    refused = client.post(
        url(hub), json={"nodeId": union.id, "base": {"contacts": {"email": "c@example.com"}}}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "E101"


def test_queries_sort_fields_and_paging(client: httpx.Client, hub: Hub) -> None:
    for i, (first, city, tag) in enumerate(
        [("Ada", "Milano", "vip"), ("Bea", "Roma", None), ("Cy", "Milano", None)]
    ):
        body: dict[str, Any] = {
            "base": {"firstName": first, "contacts": {"email": f"{first}@x.it"}, "address": {"city": city}},
            "externalId": f"e{i}",
        }
        if tag:
            body["tags"] = {"manual": [tag], "auto": []}
        create(client, hub, **body)

    def names(**params: Any) -> list[str]:
        r = client.get(url(hub), params={"nodeId": hub.node_id, **params})
        assert r.status_code == 200, r.text
        return [c["base"].get("firstName") for c in r.json()["elements"]]

    assert names(query=q("base.address.city", "EQUALS", "Milano")) == ["Ada", "Cy"]
    assert names(query=q("tags.manual", "EQUALS", "vip")) == ["Ada"]
    assert names(query=q("base.firstName", "IN", ["Bea", "Cy"]), sort="base.firstName,desc") == ["Cy", "Bea"]
    assert names(query=q("base.contacts.email", "EQUALS", "ADA@X.IT")) == ["Ada"]
    assert names(query=q("registeredAt", "GTE", "2000-01-01T00:00:00Z")) == ["Ada", "Bea", "Cy"]
    assert names(externalId="e1") == ["Bea"]
    combined = {
        "name": "q",
        "query": {
            "type": "combined",
            "conjunction": "EXCEPT",
            "queries": [
                {
                    "type": "simple",
                    "are": {
                        "condition": {
                            "type": "atomic",
                            "attribute": "base.address.city",
                            "operator": "EQUALS",
                            "value": "Milano",
                        }
                    },
                },
                {
                    "type": "simple",
                    "are": {
                        "condition": {
                            "type": "atomic",
                            "attribute": "tags.manual",
                            "operator": "EQUALS",
                            "value": "vip",
                        }
                    },
                },
            ],
        },
    }
    assert names(query=orjson.dumps(combined).decode()) == ["Cy"]
    page = client.get(
        url(hub), params={"nodeId": hub.node_id, "size": 2, "page": 1, "fields": "base.firstName"}
    ).json()
    assert page["page"] == {
        "size": 2,
        "totalElements": 3,
        "totalUnfilteredElements": 3,
        "totalPages": 2,
        "number": 1,
    }
    assert page["elements"] == [{"id": page["elements"][0]["id"], "base": {"firstName": "Cy"}}]


def test_api_subscriptions_follow_the_consent_rules(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, base={"contacts": {"email": "s@example.com"}})
    subs = url(hub, f"/customers/{c['id']}/subscriptions")
    assert client.post(subs, json={"id": "news", "subscribed": True}).json()["status"] == "subscribed"
    assert client.put(f"{subs}/news", json={"subscribed": False}).json()["status"] == "unsubscribed"
    again = client.put(f"{subs}/news", json={"subscribed": True}).json()
    assert (again["status"], again["subscribed"], again["reason"]) == ("pending", False, "REOPTIN_REQUIRED")
    proof = {"type": "DOUBLE_OPT_IN", "date": "2999-01-01T00:00:00Z", "ip": "203.0.113.9"}
    confirmed = client.put(f"{subs}/news", json={"subscribed": True, "consentEvidence": proof}).json()
    assert (confirmed["status"], confirmed["reason"]) == ("subscribed", "NEWER_OPT_IN")
    ledger = client.get(url(hub, f"/customers/{c['id']}/consent-ledger")).json()["elements"]
    assert [e["status"] for e in ledger] == ["subscribed", "unsubscribed", "pending", "subscribed"]
    assert ledger[-1]["ip"] == "203.0.113.9"
    # the ledger outlives the customer
    client.delete(url(hub, f"/customers/{c['id']}"))
    assert len(client.get(url(hub, f"/customers/{c['id']}/consent-ledger")).json()["elements"]) == 4


def test_updates_feed_reports_every_write_in_order(client: httpx.Client, hub: Hub) -> None:
    start = client.get(url(hub, "/updates/last-offset")).json()["lastOffset"]
    c = create(client, hub, base={"firstName": "A", "contacts": {"email": "u@example.com"}})
    client.patch(url(hub, f"/customers/{c['id']}"), json={"base": {"firstName": "B"}})
    client.patch(url(hub, f"/customers/{c['id']}"), json={"base": {"firstName": "B"}})  # no change: no entry
    client.delete(url(hub, f"/customers/{c['id']}"))
    feed = client.get(url(hub, "/updates"), params={"offset": start, "size": 10}).json()
    assert [u["operation"] for u in feed["updates"]] == ["CREATE", "UPDATE", "DELETE"]
    assert feed["updates"][-1]["entity"]["data"]["base"]["firstName"] == "B"
    assert feed["nextOffset"] == client.get(url(hub, "/updates/last-offset")).json()["lastOffset"]
    after = client.get(url(hub, "/updates"), params={"offset": feed["nextOffset"]}).json()
    assert after == {"nextOffset": feed["nextOffset"], "updates": []}


def test_merge_and_no_check_policies(client: httpx.Client, hub: Hub) -> None:
    path = url(hub, "/configuration/unique-customer-matching-policy")
    assert client.get(path).json()["customerUniquenessPolicy"] == "BLOCK"
    client.put(path, json={"properties": ["base.contacts.email"], "customerUniquenessPolicy": "MERGE"})
    first = create(client, hub, base={"firstName": "A", "contacts": {"email": "m@example.com"}})
    merged = client.post(
        url(hub),
        json={"nodeId": hub.node_id, "base": {"lastName": "Z", "contacts": {"email": "M@example.com"}}},
    )
    assert merged.status_code == 200 and merged.json()["id"] == first["id"]
    assert merged.json()["base"]["firstName"] == "A" and merged.json()["base"]["lastName"] == "Z"
    client.put(path, json={"properties": ["base.contacts.email"], "customerUniquenessPolicy": "NO_CHECK"})
    assert (
        client.post(
            url(hub), json={"nodeId": hub.node_id, "base": {"contacts": {"email": "m@example.com"}}}
        ).status_code
        == 201
    )
    # back to BLOCK is refused: two customers now share the key
    refused = client.put(
        path, json={"properties": ["base.contacts.email"], "customerUniquenessPolicy": "BLOCK"}
    )
    assert refused.status_code == 409


def test_events_by_customer_and_by_external_id(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, externalId="crm-9", base={"contacts": {"email": "e@example.com"}})
    ev = url(hub, "/events")
    assert (
        client.post(
            ev, json={"type": "viewedPage", "context": "WEB", "properties": {}, "customerId": c["id"]}
        ).status_code
        == 202
    )
    brought = {"type": "EXTERNAL_ID", "value": "crm-9", "nodeId": hub.node_id}
    assert (
        client.post(
            ev,
            json={
                "type": "campaignOpened",
                "context": "DIGITAL_CAMPAIGN",
                "properties": {},
                "bringBackProperties": brought,
            },
        ).status_code
        == 202
    )
    bad = client.post(
        ev, json={"type": "teleported", "context": "WEB", "properties": {}, "customerId": c["id"]}
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "type"
    listed = client.get(ev, params={"customerId": c["id"]}).json()
    assert sorted(e["type"] for e in listed["elements"]) == ["campaignOpened", "viewedPage"]
    assert {e["mode"] for e in listed["elements"]} == {"ACTIVE", "PASSIVE"}


def test_openapi_is_served(client: httpx.Client) -> None:
    spec = client.get("/hub/v1/openapi.json").json()
    assert "/workspaces/{wid}/customers" in spec["paths"]
    assert "/workspaces/{wid}/updates" in spec["paths"]
