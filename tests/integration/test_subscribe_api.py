"""The real-time subscribe / unsubscribe / status / cancel API over HTTP (live server)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from contactsync.hub import tokens, workspaces
from contactsync.store import journal
from tests.conftest import Hub


def url(base: str, hub: Hub, tail: str = "") -> str:
    return f"{base}/api/v1/workspaces/{hub.workspace_id}/subscriptions{tail}"


def person(hub: Hub, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"nodeId": hub.node_id, "email": email, "subscriptions": ["newsletter"], **extra}


def post(base: str, hub: Hub, body: dict[str, Any], tail: str = "") -> httpx.Response:
    return httpx.post(url(base, hub, tail), json=body, headers=hub.headers)


def customer(base: str, hub: Hub, cid: str) -> httpx.Response:
    return httpx.get(f"{base}/hub/v1/workspaces/{hub.workspace_id}/customers/{cid}", headers=hub.headers)


def consent_ledger(base: str, hub: Hub, cid: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{base}/hub/v1/workspaces/{hub.workspace_id}/customers/{cid}/consent-ledger", headers=hub.headers
    )
    elements: list[dict[str, Any]] = r.json()["elements"]
    return elements


def test_subscribe_creates_the_customer_with_its_profile_and_evidence(live_server: str, hub: Hub) -> None:
    body = person(
        hub,
        "Ada@Example.com",
        subscriptions=["newsletter", "offers"],
        profile={"base": {"firstName": "Ada", "lastName": "Lovelace"}, "tags": {"manual": ["web"]}},
        webformCode="landing-2024",
        ip="203.0.113.5",
        userAgent="Firefox",
    )
    r = post(live_server, hub, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["created"] is True
    assert answer["email"] == "ada@example.com"
    assert [(s["id"], s["previousStatus"], s["status"]) for s in answer["subscriptions"]] == [
        ("newsletter", None, "subscribed"),
        ("offers", None, "subscribed"),
    ]
    found = customer(live_server, hub, answer["customerId"]).json()
    assert found["base"]["firstName"] == "Ada"
    assert found["base"]["contacts"]["email"] == "ada@example.com"
    assert found["tags"]["manual"] == ["web"]
    assert {s["id"]: s["status"] for s in found["base"]["subscriptions"]} == {
        "newsletter": "subscribed",
        "offers": "subscribed",
    }
    entries = consent_ledger(live_server, hub, answer["customerId"])
    assert [
        (e["subscriptionId"], e["origin"], e["ip"], e["userAgent"], e["webformCode"]) for e in entries
    ] == [
        ("newsletter", "api", "203.0.113.5", "Firefox", "landing-2024"),
        ("offers", "api", "203.0.113.5", "Firefox", "landing-2024"),
    ]
    assert entries[0]["actor"] == "token:test-admin"
    with hub.db.read() as conn:
        assert journal.count_for(conn, [answer["customerId"]]) == 1  # one CREATE in the change feed


def test_subscribe_twice_is_idempotent_and_profile_update_is_optional(live_server: str, hub: Hub) -> None:
    first = post(live_server, hub, person(hub, profile={"base": {"firstName": "Ada"}})).json()
    again = post(
        live_server, hub, person(hub, profile={"base": {"firstName": "Augusta"}}, updateProfile=False)
    ).json()
    assert again["customerId"] == first["customerId"]
    assert again["created"] is False
    assert again["subscriptions"][0] == {
        "id": "newsletter",
        "previousStatus": "subscribed",
        "status": "subscribed",
        "reason": "NEW",
    }
    assert customer(live_server, hub, first["customerId"]).json()["base"]["firstName"] == "Ada"
    post(live_server, hub, person(hub, profile={"base": {"firstName": "Augusta"}}))
    assert customer(live_server, hub, first["customerId"]).json()["base"]["firstName"] == "Augusta"
    assert len(consent_ledger(live_server, hub, first["customerId"])) == 1  # no status change, no row


def test_unsubscribe_with_a_reason_and_the_consent_rules_on_the_way_back(live_server: str, hub: Hub) -> None:
    cid = post(live_server, hub, person(hub)).json()["customerId"]
    r = post(live_server, hub, person(hub, reason="too many emails"), "/unsubscribe")
    assert r.status_code == 200, r.text
    assert r.json()["subscriptions"] == [
        {
            "id": "newsletter",
            "previousStatus": "subscribed",
            "status": "unsubscribed",
            "reason": "too many emails",
        }
    ]
    # unsubscribing again changes nothing; a subscription it never had stays absent
    again = post(live_server, hub, person(hub, subscriptions=["newsletter", "never"]), "/unsubscribe").json()
    assert [(s["id"], s["previousStatus"], s["status"]) for s in again["subscriptions"]] == [
        ("newsletter", "unsubscribed", "unsubscribed"),
        ("never", None, None),
    ]

    back = post(live_server, hub, person(hub)).json()["subscriptions"][0]
    assert (back["status"], back["reason"]) == ("pending", "REOPTIN_REQUIRED")

    stale = {"type": "EXPLICIT", "date": "2001-01-01T00:00:00.000+0000", "ip": "192.0.2.1"}
    kept = post(live_server, hub, person(hub, consentEvidence=stale)).json()["subscriptions"][0]
    assert kept["status"] == "pending"

    fresh = {"type": "EXPLICIT", "date": "2100-01-01T00:00:00.000+0000", "ip": "192.0.2.1"}
    moved = post(live_server, hub, person(hub, consentEvidence=fresh)).json()["subscriptions"][0]
    assert (moved["status"], moved["reason"]) == ("subscribed", "NEWER_OPT_IN")
    last = consent_ledger(live_server, hub, cid)[-1]
    assert (last["previousStatus"], last["status"], last["ip"]) == ("pending", "subscribed", "192.0.2.1")


def test_status_answers_each_subscription(live_server: str, hub: Hub) -> None:
    post(live_server, hub, person(hub, subscriptions=["newsletter", "offers"]))
    post(live_server, hub, person(hub, subscriptions=["offers"], reason="bounced"), "/unsubscribe")
    r = httpx.get(
        url(live_server, hub), params={"nodeId": hub.node_id, "email": "ADA@example.com"}, headers=hub.headers
    )
    assert r.status_code == 200
    states = {s["id"]: (s["status"], s["subscribed"], s["reason"]) for s in r.json()["subscriptions"]}
    assert states == {"newsletter": ("subscribed", True, "NEW"), "offers": ("unsubscribed", False, "bounced")}
    assert r.json()["doubleOptIn"] == []


def test_unknown_address_is_404(live_server: str, hub: Hub) -> None:
    params = {"nodeId": hub.node_id, "email": "nobody@example.com"}
    r = httpx.get(url(live_server, hub), params=params, headers=hub.headers)
    assert (r.status_code, r.json()["code"]) == (404, "E705")
    for tail in ("/unsubscribe", "/cancel"):
        r = post(live_server, hub, person(hub, "nobody@example.com"), tail)
        assert (r.status_code, r.json()["code"]) == (404, "E705")


def test_cancel_removes_the_customer_and_keeps_the_ledger(live_server: str, hub: Hub) -> None:
    cid = post(live_server, hub, person(hub)).json()["customerId"]
    r = post(live_server, hub, {"nodeId": hub.node_id, "email": "ada@example.com"}, "/cancel")
    assert r.status_code == 200
    assert r.json()["deleted"]["id"] == cid
    assert customer(live_server, hub, cid).status_code == 404
    assert len(consent_ledger(live_server, hub, cid)) == 1
    again = post(live_server, hub, person(hub)).json()
    assert again["created"] is True and again["customerId"] != cid


def test_bad_requests_say_what_to_fix(live_server: str, hub: Hub) -> None:
    r = post(live_server, hub, person(hub, "not-an-address"))
    assert (r.status_code, r.json()["code"]) == (400, "E201")
    r = post(live_server, hub, person(hub, subscriptions=[]))
    assert (r.status_code, r.json()["code"]) == (400, "E200")
    r = post(live_server, hub, person(hub, profile={"base": {"nickname": "x"}}))
    assert r.status_code == 400
    r = post(live_server, hub, {**person(hub), "nodeId": "no-such-node"})
    assert (r.status_code, r.json()["code"]) == (404, "E120")
    r = httpx.post(url(live_server, hub), json=person(hub))
    assert (r.status_code, r.json()["code"]) == (401, "E110")


def test_a_node_bound_token_stays_in_its_node(live_server: str, hub: Hub) -> None:
    other = workspaces.create_node(hub.db, hub.workspace_id, "shop")
    token, _ = tokens.create_token(hub.db, hub.workspace_id, tokens.Role.SOURCE, "shop-form", other.id)
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.post(url(live_server, hub), json=person(hub), headers=headers)
    assert (r.status_code, r.json()["code"]) == (403, "E111")
    r = httpx.post(url(live_server, hub), json={**person(hub), "nodeId": other.id}, headers=headers)
    assert r.status_code == 200
    assert consent_ledger(live_server, hub, r.json()["customerId"])[0]["actor"] == "token:shop-form"


def test_aggregate_nodes_are_read_only(live_server: str, hub: Hub) -> None:
    agg = workspaces.create_node(
        hub.db, hub.workspace_id, "all", kind=workspaces.NodeKind.AGGREGATE, members=[hub.node_id]
    )
    r = post(live_server, hub, {**person(hub), "nodeId": agg.id})
    assert (r.status_code, r.json()["code"]) == (403, "E101")


def test_concurrent_subscribes_of_one_address_make_one_customer(live_server: str, hub: Hub) -> None:
    def once(i: int) -> httpx.Response:
        return post(live_server, hub, person(hub, "race@example.com", subscriptions=[f"list-{i % 3}"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(once, range(24)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["customerId"] for r in answers}) == 1
    cid = answers[0].json()["customerId"]
    subs = customer(live_server, hub, cid).json()["base"]["subscriptions"]
    assert sorted(s["id"] for s in subs) == ["list-0", "list-1", "list-2"]
    assert all(s["status"] == "subscribed" for s in subs)
