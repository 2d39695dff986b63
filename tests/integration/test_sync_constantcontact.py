"""End to end: a node synced both ways with the Constant Contact sandbox, 1,000 contacts.

Edits on both sides, a conflict, unsubscribes on either side, deletes on either side; then
the two sides are compared field by field, and a run with no outside change writes nothing.
A second test runs the same sync through a storm of 5xx and 429 answers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contactsync.hub import customers as hub_customers
from contactsync.secrets import SecretBox, new_key
from contactsync.sync import sources
from contactsync.sync.engine import RunResult, run_source
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub
from tests.contract.harness_constantcontact import ConstantContactHarness

HUB_ONLY = 600
CC_ONLY = 400


def _env(hub: Hub, cc: ConstantContactHarness) -> SyncEnv:
    client = httpx.Client(transport=cc.sandbox.transport())
    return SyncEnv(
        hub.db, SecretBox([new_key().encode()]), http=client, sleep=cc.clock.sleep, clock=cc.clock.monotonic
    )


def _source(env: SyncEnv, hub: Hub, cc: ConstantContactHarness) -> Source:
    spec = {
        "name": "cc",
        "node": hub.node_id,
        "provider": "constantcontact",
        "config": cc.config(page_size=500),
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email_address"},
                {"hub": "base.firstName", "provider": "first_name"},
                {"hub": "base.lastName", "provider": "last_name"},
            ],
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": cc.list_ids[0], "webform_code": "CC-1"}],
            "conflict_policy": "hub_wins",
            "delete_behaviour": "delete",
            "mass_change_guard": 50,
        },
    }
    return sources.create_source(env, hub.workspace_id, spec)


def _run(env: SyncEnv, source: Source) -> RunResult:
    result = run_source(env, sources.get_source(env, source.workspace_id, source.id), batch_size=250)
    assert result.status == "succeeded", result.error
    return result


def _written(result: RunResult) -> int:
    c = result.counts
    return sum(getattr(side, k) for side in (c.hub, c.provider) for k in ("created", "updated", "deleted"))


def _hub_people(hub: Hub) -> dict[str, dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    page = 0
    while True:
        got = hub_customers.list_page(
            hub.db, hub.workspace_id, hub.node_id, page=page, size=1000, max_size=1000
        )
        for c in got["elements"]:
            people[c["base"]["contacts"]["email"]] = c
        if page + 1 >= got["page"]["totalPages"]:
            return people
        page += 1


def _hub_status(c: dict[str, Any]) -> str | None:
    return next((s["status"] for s in c["base"].get("subscriptions", []) if s["id"] == "newsletter"), None)


def _cc_people(cc: ConstantContactHarness) -> dict[str, dict[str, Any]]:
    return {c["email_address"]["address"]: c for c in cc.sandbox.contacts()}


def _assert_equal_sides(hub: Hub, cc: ConstantContactHarness) -> None:
    people, contacts = _hub_people(hub), _cc_people(cc)
    assert set(people) == set(contacts)
    newsletter = cc.list_ids[0]
    for email, person in people.items():
        contact = contacts[email]
        assert person["base"].get("firstName") == contact.get("first_name"), email
        assert person["base"].get("lastName") == contact.get("last_name"), email
        opted_out = contact["email_address"]["permission_to_send"] == "unsubscribed"
        on_list = newsletter in contact.get("list_memberships", [])
        status = _hub_status(person)
        if status == "unsubscribed":
            assert opted_out or not on_list, email
        else:
            assert status == "subscribed" and on_list and not opted_out, email


def _scenario(hub: Hub, cc: ConstantContactHarness, env: SyncEnv) -> tuple[Source, list[RunResult]]:
    source = _source(env, hub, cc)
    for i in range(HUB_ONLY):
        body = {
            "nodeId": hub.node_id,
            "base": {
                "firstName": f"Hub{i}",
                "lastName": "Rossi",
                "contacts": {"email": f"hub{i}@example.com"},
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            },
        }
        hub_customers.create(hub.db, hub.workspace_id, body)
    cc.sandbox.seed_contacts(
        [
            {
                "email_address": f"cc{i}@example.com",
                "first_name": f"Cc{i}",
                "last_name": "Bianchi",
                "permission_to_send": "explicit",
                "list_memberships": [cc.list_ids[0]],
            }
            for i in range(CC_ONLY)
        ]
    )
    runs = [_run(env, source), _run(env, source)]
    _assert_equal_sides(hub, cc)

    cc.advance_clock(5)
    people, contacts = _hub_people(hub), _cc_people(cc)
    for i in range(50):  # hub edits
        hub_customers.patch(
            hub.db,
            hub.workspace_id,
            people[f"hub{i}@example.com"]["id"],
            {"base": {"firstName": f"HubEdit{i}"}},
        )
    for i in range(50):  # provider edits
        cc.sandbox.edit(contacts[f"cc{i}@example.com"]["contact_id"], last_name=f"CcEdit{i}")
    # one conflict: both sides change the same field; the source says hub wins
    hub_customers.patch(
        hub.db, hub.workspace_id, people["hub100@example.com"]["id"], {"base": {"firstName": "FromHub"}}
    )
    cc.sandbox.edit(contacts["hub100@example.com"]["contact_id"], first_name="FromCC")
    for i in range(200, 220):  # unsubscribes in the hub
        patch = {"base": {"subscriptions": [{"id": "newsletter", "subscribed": False}]}}
        hub_customers.patch(hub.db, hub.workspace_id, people[f"hub{i}@example.com"]["id"], patch)
    for i in range(200, 220):  # unsubscribes at the provider
        cc.sandbox.unsubscribe(contacts[f"cc{i}@example.com"]["contact_id"])
    for i in range(300, 310):  # deletes on both sides
        hub_customers.delete(hub.db, hub.workspace_id, people[f"hub{i}@example.com"]["id"])
        cc.sandbox.delete(contacts[f"cc{i}@example.com"]["contact_id"])
    cc.advance_clock(5)
    runs += [_run(env, source), _run(env, source)]
    return source, runs


@pytest.mark.slow  # the sandbox end to end, both databases: in `make test`, not the quick loop
def test_both_ways_with_the_constant_contact_sandbox(hub: Hub) -> None:
    cc = ConstantContactHarness()
    env = _env(hub, cc)
    try:
        _, (first, echo, changed, idle) = _scenario(hub, cc, env)
    finally:
        cc.close()
        assert env.http is not None
        env.http.close()
    assert first.counts.hub.created == CC_ONLY and first.counts.provider.created == HUB_ONLY
    assert _written(echo) == 0
    assert _written(idle) == 0

    _assert_equal_sides(hub, cc)
    people = _hub_people(hub)
    assert len(people) == HUB_ONLY + CC_ONLY - 20
    assert people["hub100@example.com"]["base"]["firstName"] == "FromHub"
    assert changed.counts.conflicts >= 1
    for i in range(200, 220):  # no unsubscribe lost, on either side
        assert _hub_status(people[f"hub{i}@example.com"]) == "unsubscribed"
        assert _hub_status(people[f"cc{i}@example.com"]) == "unsubscribed"
    c = changed.counts
    assert (c.hub.deleted, c.provider.deleted) == (10, 10)
    assert c.hub.updated == 50 + 20  # provider edits + provider unsubscribes reached the hub
    assert c.provider.updated == 50 + 1 + 20  # hub edits, the conflict, hub unsubscribes
    assert c.hub.failed == c.provider.failed == 0


@pytest.mark.slow
def test_a_storm_of_5xx_and_429_loses_nothing(hub: Hub) -> None:
    cc = ConstantContactHarness(error_rate=0.3, seed=7)
    env = _env(hub, cc)
    try:
        cc.sandbox.burst_429 = 5
        _scenario(hub, cc, env)
        _assert_equal_sides(hub, cc)
        assert cc.sandbox.max_requests_per_window(1.0) <= 4
    finally:
        cc.close()
        assert env.http is not None
        env.http.close()
