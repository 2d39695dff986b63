"""End to end: a node synced both ways with the Mailchimp sandbox.

Edits on both sides, a conflict, unsubscribes on either side, deletes on either side (an
archive in Mailchimp), large writes through ``/batches``; then the two sides are compared
field by field, and a run with no outside change writes nothing. A second test follows one
person through Mailchimp's compliance state: unsubscribed in Mailchimp, re-opted-in in the hub
with consent evidence, written to Mailchimp as ``pending`` with E742 in the run's records,
and subscribed on both sides once they confirm Mailchimp's email.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from contactsync.hub import customers as hub_customers
from contactsync.secrets import SecretBox, new_key
from contactsync.sync import runs, sources
from contactsync.sync.engine import RunResult, run_source
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub
from tests.contract.harness_mailchimp import MailchimpHarness

HUB_ONLY = 300
MC_ONLY = 200


def _env(hub: Hub, mc: MailchimpHarness) -> SyncEnv:
    client = httpx.Client(transport=mc.sandbox.transport())
    return SyncEnv(
        hub.db, SecretBox([new_key().encode()]), http=client, sleep=mc.clock.sleep, clock=mc.clock.monotonic
    )


def _source(env: SyncEnv, hub: Hub, mc: MailchimpHarness) -> Source:
    spec = {
        "name": "mc",
        "node": hub.node_id,
        "provider": "mailchimp",
        "config": mc.config(page_size=1000, bulk_threshold=100),
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email_address"},
                {"hub": "base.firstName", "provider": "FNAME"},
                {"hub": "base.lastName", "provider": "LNAME"},
            ],
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": mc.audience, "webform_code": "MC-1"}],
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
    got = hub_customers.list_page(hub.db, hub.workspace_id, hub.node_id, page=0, size=1000, max_size=1000)
    assert got["page"]["totalPages"] <= 1
    return {c["base"]["contacts"]["email"]: c for c in got["elements"]}


def _hub_status(c: dict[str, Any]) -> str | None:
    return next((s["status"] for s in c["base"].get("subscriptions", []) if s["id"] == "newsletter"), None)


def _mc_people(mc: MailchimpHarness) -> dict[str, dict[str, Any]]:
    return {m["email_address"]: m for m in mc.sandbox.members(mc.audience)}


def _assert_equal_sides(hub: Hub, mc: MailchimpHarness) -> None:
    people, members = _hub_people(hub), _mc_people(mc)
    assert set(people) == set(members)
    for email, person in people.items():
        member = members[email]
        assert person["base"].get("firstName") == (member["merge_fields"]["FNAME"] or None), email
        assert person["base"].get("lastName") == (member["merge_fields"]["LNAME"] or None), email
        assert _hub_status(person) == member["status"], email


def _customer(hub: Hub, email: str, first: str, last: str) -> None:
    body = {
        "nodeId": hub.node_id,
        "base": {
            "firstName": first,
            "lastName": last,
            "contacts": {"email": email},
            "subscriptions": [{"id": "newsletter", "subscribed": True}],
        },
    }
    hub_customers.create(hub.db, hub.workspace_id, body)


def test_both_ways_with_the_mailchimp_sandbox(hub: Hub) -> None:
    mc = MailchimpHarness()
    env = _env(hub, mc)
    try:
        source = _source(env, hub, mc)
        for i in range(HUB_ONLY):
            _customer(hub, f"hub{i}@example.com", f"Hub{i}", "Rossi")
        rows = [
            {"email_address": f"mc{i}@example.com", "merge_fields": {"FNAME": f"Mc{i}", "LNAME": "Bianchi"}}
            for i in range(MC_ONLY)
        ]
        mc.sandbox.seed_members(mc.audience, rows)
        first, echo = _run(env, source), _run(env, source)
        _assert_equal_sides(hub, mc)

        mc.advance_clock(5)
        people, members = _hub_people(hub), _mc_people(mc)
        for i in range(20):  # hub edits
            cid = people[f"hub{i}@example.com"]["id"]
            hub_customers.patch(hub.db, hub.workspace_id, cid, {"base": {"firstName": f"HubEdit{i}"}})
        for i in range(20):  # provider edits
            mc.sandbox.edit(
                mc.audience, members[f"mc{i}@example.com"]["id"], merge_fields={"LNAME": f"McEdit{i}"}
            )
        # one conflict: both sides change the same field; the source says hub wins
        cid = people["hub100@example.com"]["id"]
        hub_customers.patch(hub.db, hub.workspace_id, cid, {"base": {"firstName": "FromHub"}})
        mc.sandbox.edit(mc.audience, "hub100@example.com", merge_fields={"FNAME": "FromMC"})
        for i in range(200, 210):  # unsubscribes in the hub
            patch = {"base": {"subscriptions": [{"id": "newsletter", "subscribed": False}]}}
            hub_customers.patch(hub.db, hub.workspace_id, people[f"hub{i}@example.com"]["id"], patch)
        for i in range(100, 110):  # unsubscribes at Mailchimp, by the people themselves
            mc.sandbox.unsubscribe(mc.audience, f"mc{i}@example.com")
        for i in range(250, 255):  # deletes on both sides (an archive in Mailchimp)
            hub_customers.delete(hub.db, hub.workspace_id, people[f"hub{i}@example.com"]["id"])
            mc.sandbox.archive(mc.audience, f"mc{i - 100}@example.com")
        mc.advance_clock(5)
        changed, idle = _run(env, source), _run(env, source)
    finally:
        mc.close()
        assert env.http is not None
        env.http.close()
    assert first.counts.hub.created == MC_ONLY and first.counts.provider.created == HUB_ONLY
    batches = [r for r in mc.sandbox.api_requests() if r.method == "POST" and r.path == "/3.0/batches"]
    assert batches  # the first run's creates went through /batches
    assert _written(echo) == 0
    assert _written(idle) == 0

    _assert_equal_sides(hub, mc)
    people = _hub_people(hub)
    assert len(people) == HUB_ONLY + MC_ONLY - 10
    assert people["hub100@example.com"]["base"]["firstName"] == "FromHub"
    assert changed.counts.conflicts >= 1
    for i in range(10):  # no unsubscribe lost, on either side
        assert _hub_status(people[f"hub{200 + i}@example.com"]) == "unsubscribed"
        assert _hub_status(people[f"mc{100 + i}@example.com"]) == "unsubscribed"
    c = changed.counts
    assert (c.hub.deleted, c.provider.deleted) == (5, 5)
    assert c.hub.updated == 20 + 10  # provider edits + provider unsubscribes reached the hub
    assert c.provider.updated == 20 + 1 + 10  # hub edits, the conflict, hub unsubscribes
    assert c.hub.failed == c.provider.failed == 0


def test_a_compliance_state_becomes_pending_with_a_reason_code(hub: Hub) -> None:
    mc = MailchimpHarness()
    env = _env(hub, mc)
    try:
        source = _source(env, hub, mc)
        [cid] = mc.sandbox.seed_members(mc.audience, [{"email_address": "cy@example.com"}])
        _run(env, source)
        person = _hub_people(hub)["cy@example.com"]
        assert _hub_status(person) == "subscribed"

        mc.advance_clock(5)
        mc.sandbox.unsubscribe(mc.audience, cid)  # the person unsubscribes in Mailchimp
        _run(env, source)
        assert _hub_status(_hub_people(hub)["cy@example.com"]) == "unsubscribed"

        # later the person opts in again on the company's website: an explicit write with evidence
        when = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        evidence = {"type": "EXPLICIT", "date": when, "ip": "203.0.113.7"}
        subs = [{"id": "newsletter", "subscribed": True, "consentEvidence": evidence}]
        hub_customers.patch(hub.db, hub.workspace_id, person["id"], {"base": {"subscriptions": subs}})
        assert _hub_status(_hub_people(hub)["cy@example.com"]) == "subscribed"

        mc.advance_clock(5)
        pushed = _run(env, source)
        records = list(runs.iter_records(env, hub.workspace_id, pushed.run_id))
        [noted] = [r for r in records if r["code"] == "E742"]
        assert noted["side"] == "provider" and noted["remoteId"] == cid and "pending" in noted["reason"]
        assert noted["action"] == "skipped"  # a consent rule's outcome, not a failure
        assert pushed.counts.provider.failed == 0
        member = mc.sandbox.member(mc.audience, cid)
        assert member is not None and member["status"] == "pending"  # never subscribed by us
        assert mc.sandbox.confirmations == ["cy@example.com"]

        mc.advance_clock(5)
        _run(env, source)  # the hub learns that Mailchimp waits for the confirmation
        assert _hub_status(_hub_people(hub)["cy@example.com"]) == "pending"

        mc.advance_clock(5)
        mc.sandbox.confirm(mc.audience, cid)  # the person clicks the link in Mailchimp's email
        _run(env, source)
        assert _hub_status(_hub_people(hub)["cy@example.com"]) == "subscribed"
        _assert_equal_sides(hub, mc)
        assert _written(_run(env, source)) == 0
    finally:
        mc.close()
        assert env.http is not None
        env.http.close()
