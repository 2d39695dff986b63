"""The hub API through HTTP: bad input, auth and roles, node-bound tokens, aggregate nodes,
queries, consent, events, the updates feed and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from contactsync.errors import CATALOGUE
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
    refused = client.put(f"{subs}/news", json={"subscribed": True})
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["hint"]) == ("E301", CATALOGUE["E301"].action)
    again = refused.json()["data"]["subscription"]
    assert (again["status"], again["subscribed"], again["reason"]) == ("pending", False, "REOPTIN_REQUIRED")
    assert client.get(f"{subs}/news").json()["status"] == "pending"
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


def test_subscription_item_without_a_status_keeps_the_stored_one(client: httpx.Client, hub: Hub) -> None:
    news = {"id": "news", "name": "News", "subscribed": True}
    c = create(client, hub, base={"contacts": {"email": "k@example.com"}, "subscriptions": [news]})
    renamed = client.patch(
        url(hub, f"/customers/{c['id']}"),
        json={"base": {"subscriptions": [{"id": "news", "name": "Weekly"}]}},
    )
    assert renamed.status_code == 200, renamed.text
    (sub,) = renamed.json()["base"]["subscriptions"]
    assert (sub["name"], sub["status"], sub["reason"]) == ("Weekly", "subscribed", "NEW")
    subs = url(hub, f"/customers/{c['id']}/subscriptions")
    put = client.put(f"{subs}/news", json={"name": "Daily"})
    assert (put.status_code, put.json()["name"], put.json()["status"]) == (200, "Daily", "subscribed")
    ledger = client.get(url(hub, f"/customers/{c['id']}/consent-ledger")).json()["elements"]
    assert [e["status"] for e in ledger] == ["subscribed"]


def test_new_subscription_without_a_status_is_refused(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, base={"contacts": {"email": "n@example.com"}})
    patched = client.patch(
        url(hub, f"/customers/{c['id']}"),
        json={"base": {"subscriptions": [{"id": "news", "subscribed": True}, {"id": "promo", "name": "P"}]}},
    )
    assert patched.status_code == 400 and patched.json()["code"] == "E206"
    assert patched.json()["errors"][0]["path"] == "base.subscriptions.1.subscribed"
    put = client.put(url(hub, f"/customers/{c['id']}/subscriptions/promo"), json={"name": "P"})
    assert put.status_code == 400 and put.json()["errors"][0] == {
        "path": "subscribed",
        "message": "new subscription promo needs `subscribed` (true or false) or `status`",
        "code": "E206",
        "data": None,
    }
    assert client.get(url(hub, f"/customers/{c['id']}")).json()["base"]["subscriptions"] == []


def test_node_bound_token_reaches_no_other_node(client: httpx.Client, hub: Hub) -> None:
    other = workspaces.create_node(hub.db, hub.workspace_id, "other")
    mine = create(client, hub, base={"contacts": {"email": "mine@example.com"}})
    theirs = client.post(
        url(hub), json={"nodeId": other.id, "base": {"contacts": {"email": "t@example.com"}}}
    )
    theirs_id = theirs.json()["id"]
    event = {"type": "viewedPage", "context": "WEB", "properties": {}}
    ev = url(hub, "/events")
    mine_event = client.post(ev, json={**event, "customerId": mine["id"]}).json()["id"]
    their_event = client.post(ev, json={**event, "customerId": theirs_id}).json()["id"]
    token, _ = tokens.create_token(hub.db, hub.workspace_id, "source", "src", node_id=hub.node_id)
    bound = {"Authorization": f"Bearer {token}"}

    def status(method: str, path: str, **kwargs: Any) -> int:
        response = client.request(method, path, headers=bound, **kwargs)
        if response.status_code == 403:
            assert response.json()["code"] == "E111"
        return response.status_code

    assert status("GET", url(hub, f"/customers/{theirs_id}/consent-ledger")) == 403
    assert status("GET", url(hub, f"/customers/{mine['id']}/consent-ledger")) == 200
    assert status("GET", f"{ev}/{their_event}") == 403
    assert status("PUT", f"{ev}/{their_event}", json={**event, "customerId": theirs_id}) == 403
    assert status("DELETE", f"{ev}/{their_event}") == 403
    assert status("POST", ev, json={**event, "customerId": theirs_id}) == 403
    brought = {"type": "SESSION_ID", "value": "s-1", "nodeId": other.id}
    assert status("POST", ev, json={**event, "bringBackProperties": brought}) == 403
    assert status("GET", ev, params={"nodeId": other.id}) == 403
    assert status("GET", f"{ev}/{mine_event}") == 200
    # lists default to the bound node and show nothing of the others
    listed = client.get(ev, headers=bound, params={"customerId": theirs_id}).json()
    assert listed["elements"] == []
    assert [e["id"] for e in client.get(ev, headers=bound).json()["elements"]] == [mine_event]
    customers = client.get(url(hub), headers=bound).json()["elements"]
    assert [c["id"] for c in customers] == [mine["id"]]
    # the ledger outlives the customer, and so does its node binding
    client.delete(url(hub, f"/customers/{theirs_id}"))
    assert status("GET", url(hub, f"/customers/{theirs_id}/consent-ledger")) == 403
    assert status("GET", url(hub, "/customers/no-such-id/consent-ledger")) == 403
    assert client.get(url(hub, "/customers/no-such-id/consent-ledger")).json() == {"elements": []}


def test_deleting_a_customer_journals_its_events(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, base={"contacts": {"email": "d@example.com"}})
    event = {"type": "viewedPage", "context": "WEB", "properties": {}, "customerId": c["id"]}
    ids = sorted(client.post(url(hub, "/events"), json=event).json()["id"] for _ in range(2))
    start = client.get(url(hub, "/updates/last-offset")).json()["lastOffset"]
    client.delete(url(hub, f"/customers/{c['id']}"))
    feed = client.get(url(hub, "/updates"), params={"offset": start}).json()["updates"]
    changes = [(u["operation"], u["entity"]["type"], u["entity"]["data"]["id"]) for u in feed]
    assert sorted(changes[:2]) == [("DELETE", "EVENT", ids[0]), ("DELETE", "EVENT", ids[1])]
    assert changes[2:] == [("DELETE", "CUSTOMER", c["id"])]


def test_events_list_refuses_a_page_larger_than_the_maximum(client: httpx.Client, hub: Hub) -> None:
    c = create(client, hub, base={"contacts": {"email": "p@example.com"}})
    too_big = client.get(url(hub, "/events"), params={"customerId": c["id"], "size": 1001})
    assert too_big.status_code == 400 and too_big.json()["code"] == "E200"
    assert too_big.json()["errors"][0]["path"] == "size"
    most = client.get(url(hub, "/events"), params={"customerId": c["id"], "size": 1000})
    assert most.status_code == 200 and most.json()["page"]["size"] == 1000


@pytest.mark.parametrize("prefix", ["/hub/v1", "/api/v1"])
def test_openapi_documents_400_with_the_error_body(client: httpx.Client, prefix: str) -> None:
    spec = client.get(f"{prefix}/openapi.json").json()
    responses = [op["responses"] for path in spec["paths"].values() for op in path.values()]
    assert all("422" not in r for r in responses)
    assert all(
        r["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        for r in responses
    )
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Error"]["required"]) == {"message", "logref", "data", "errors", "code"}
