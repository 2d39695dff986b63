"""Inbound provider webhooks through the live service, with the in-process memory provider:
forged tokens, replays and stale events are refused with nothing stored; a valid event is a
targeted pull that updates the hub; an echo of our own write writes nothing."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import sqlalchemy as sa

from contactsync.connectors import memory
from contactsync.errors import NotFoundError
from contactsync.hub import customers as hub_customers
from contactsync.hub.consent import Status
from contactsync.hub.times import format_time
from contactsync.notify.webhooks import WebhookConfig
from contactsync.secrets import SecretBox, new_key
from contactsync.store import journal as journal_store
from contactsync.store import sync as sync_store
from contactsync.store.tables import links
from contactsync.store.webhook_tables import inbound_events
from contactsync.sync import inbound, sources, targeted
from contactsync.sync.engine import Run, RunResult, run_source
from contactsync.sync.inbound import InboundProcessor, parse_mailchimp
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub

_names = itertools.count()


@pytest.fixture
def env(hub: Hub) -> SyncEnv:
    return SyncEnv(hub.db, SecretBox([new_key().encode()]))


@pytest.fixture
def user_db() -> memory.MemoryUserDb:
    return memory.user_db(f"inbound-{next(_names)}-{time.monotonic_ns()}")


@pytest.fixture
def http(live_server: str, hub: Hub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, headers=hub.headers) as client:
        yield client


def make_source(env: SyncEnv, hub: Hub, udb: memory.MemoryUserDb, **sync: Any) -> Source:
    spec = {
        "name": f"src-{udb.name}",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": udb.name, "api_key": "memory-key"},
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.firstName", "provider": "first_name"},
            ],
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news"}],
            **sync,
        },
    }
    return sources.create_source(env, hub.workspace_id, spec)


def full_run(env: SyncEnv, source: Source) -> RunResult:
    result = run_source(env, sources.get_source(env, source.workspace_id, source.id))
    assert result.status == "succeeded", result.error
    return result


def hub_state(hub: Hub) -> dict[str, Any]:
    page = hub_customers.list_page(hub.db, hub.workspace_id, hub.node_id, size=100, max_size=100)
    return {c["base"]["contacts"]["email"]: c for c in page["elements"]}


def newsletter(c: dict[str, Any]) -> str | None:
    return next((s["status"] for s in c["base"].get("subscriptions", []) if s["id"] == "newsletter"), None)


def queued(hub: Hub) -> list[Any]:
    with hub.db.read() as conn:
        return list(conn.execute(sa.select(inbound_events).order_by(inbound_events.c.received_at)))


def token_for(http: httpx.Client, hub: Hub, source: Source) -> dict[str, Any]:
    answer = http.post(f"/api/v1/workspaces/{hub.workspace_id}/sources/{source.name}/webhook-token")
    assert answer.status_code == 200, answer.text
    made: dict[str, Any] = answer.json()
    return made


def event(remote_ids: list[str], *, fired_at: int | None = None, event_id: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": "contact.updated", "remoteIds": remote_ids}
    body["firedAt"] = format_time(fired_at if fired_at is not None else int(time.time() * 1000))
    if event_id:
        body["id"] = event_id
    return orjson.dumps(body)


class Clock:
    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


def synced_customer(env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb) -> tuple[Source, str, str]:
    """A source with one customer on both sides, subscribed; returns source, customer, remote id."""
    source = make_source(env, hub, user_db)
    body = {
        "nodeId": hub.node_id,
        "base": {
            "firstName": "Ann",
            "contacts": {"email": "ann@example.com"},
            "subscriptions": [{"id": "newsletter", "subscribed": True}],
        },
    }
    cid = hub_customers.create(hub.db, hub.workspace_id, body)[0]["id"]
    full_run(env, source)
    return source, cid, user_db.by_email["ann@example.com"]


def test_a_provider_event_is_a_targeted_pull_that_updates_the_hub(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, http: httpx.Client
) -> None:
    source, cid, rid = synced_customer(env, hub, user_db)
    hook = token_for(http, hub, source)
    assert hook["url"].startswith(f"{http.base_url}/webhooks/memory/{source.id}?token=csin_")

    user_db.edit(rid, {"first_name": "Anne"}, {"news": Status.UNSUBSCRIBED})
    answer = http.post(hook["url"], content=event([rid]), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued"
    assert hub_state(hub)["ann@example.com"]["base"]["firstName"] == "Ann"  # acknowledged, not yet applied

    processor = InboundProcessor(env, WebhookConfig())
    assert processor.tick() == 1
    ann = hub_state(hub)["ann@example.com"]
    assert ann["base"]["firstName"] == "Anne"
    assert newsletter(ann) == "unsubscribed"
    (row,) = queued(hub)
    assert row.status == "processed" and row.run_id
    with hub.db.read() as conn:
        run = sync_store.get_run(conn, row.run_id)
    assert run is not None and run.trigger == "webhook" and run.status == "succeeded"
    ledger = hub_customers.consent_ledger(hub.db, hub.workspace_id, cid)
    assert ledger[-1]["origin"] == source.origin and ledger[-1]["status"] == "unsubscribed"

    # the next full sync finds nothing to do: the provider's change came in through the pull
    again = full_run(env, source)
    assert (again.counts.hub.updated, again.counts.provider.updated) == (0, 0)
    assert user_db.rows[rid].lists["news"] == Status.UNSUBSCRIBED

    listed = http.get(f"/api/v1/workspaces/{hub.workspace_id}/sources/{source.name}/webhook-events").json()
    assert [e["status"] for e in listed["elements"]] == ["processed"]


def test_forged_replayed_and_stale_events_are_refused_and_change_nothing(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, http: httpx.Client
) -> None:
    source, _cid, rid = synced_customer(env, hub, user_db)
    hook = token_for(http, hub, source)
    token = hook["token"]
    path = f"/webhooks/memory/{source.id}"
    user_db.edit(rid, {"first_name": "Forged"})
    before_seq = _last_seq(hub)

    def post(url: str, body: bytes, **headers: str) -> httpx.Response:
        return http.post(url, content=body, headers={"Content-Type": "application/json", **headers})

    body = event([rid])
    refused = [
        post(f"{path}?token=csin_forged", body),
        post(path, body),
        post(path, body, **{"X-Contactsync-Token": token[:-1] + ("A" if token[-1] != "A" else "B")}),
        post(f"/webhooks/sql/{source.id}?token={token}", body),  # not the source's provider
        post(f"/webhooks/memory/01a20000-0000-7000-8000-000000000000?token={token}", body),
    ]
    assert [(r.status_code, r.json()["code"]) for r in refused] == [(401, "E720")] * 5
    assert http.get(path).status_code == 401

    # stale (and far-future) timestamps, and a body in no known format
    now = int(time.time() * 1000)
    stale = post(f"{path}?token={token}", event([rid], fired_at=now - 91 * 60_000))
    future = post(f"{path}?token={token}", event([rid], fired_at=now + 91 * 60_000))
    garbage = post(f"{path}?token={token}", b"{not json")
    assert [(r.status_code, r.json()["code"]) for r in (stale, future, garbage)] == [
        (400, "E723"),
        (400, "E723"),
        (400, "E721"),
    ]
    assert queued(hub) == []  # nothing stored
    assert InboundProcessor(env, WebhookConfig()).tick() == 0
    assert hub_state(hub)["ann@example.com"]["base"]["firstName"] == "Ann"
    assert _last_seq(hub) == before_seq

    # a valid event is taken once; its replay (same id, or the same body) is refused
    first = post(path, event([rid], event_id="evt-1"), **{"Authorization": f"Bearer {token}"})
    assert first.status_code == 200, first.text
    replay = post(f"{path}?token={token}", event([rid], event_id="evt-1", fired_at=now - 1000))
    assert (replay.status_code, replay.json()["code"]) == (409, "E722")
    same_body = event([rid], fired_at=now)
    assert post(f"{path}?token={token}", same_body).status_code == 200
    assert post(f"{path}?token={token}", same_body).json()["code"] == "E722"
    assert len(queued(hub)) == 2

    # the URL check providers do (Mailchimp GETs it when the webhook is registered)
    assert http.get(f"{path}?token={token}").status_code == 200
    # a new token revokes the old one
    token_for(http, hub, source)
    assert post(f"{path}?token={token}", event([rid])).status_code == 401


def test_an_echo_of_our_own_write_writes_nothing(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb, http: httpx.Client
) -> None:
    source, cid, rid = synced_customer(env, hub, user_db)
    hook = token_for(http, hub, source)
    # a hub change goes out with the next sync; the provider echoes it back in a webhook
    hub_customers.patch(hub.db, hub.workspace_id, cid, {"base": {"firstName": "Annie"}})
    pushed = full_run(env, source)
    assert pushed.counts.provider.updated == 1
    provider_seq = user_db.rows[rid].seq
    hub_seq = _last_seq(hub)

    answer = http.post(hook["url"], content=event([rid]), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert InboundProcessor(env, WebhookConfig()).tick() == 1
    (row,) = queued(hub)
    with hub.db.read() as conn:
        run = sync_store.get_run(conn, row.run_id)
    assert run is not None
    counts = orjson.loads(run.counts)
    writes = [
        counts[side][action] for side in ("hub", "provider") for action in ("created", "updated", "deleted")
    ]
    assert writes == [0] * 6 and counts["unchanged"] == 1
    assert user_db.rows[rid].seq == provider_seq  # nothing written back: no loop
    assert _last_seq(hub) == hub_seq
    assert full_run(env, source).counts.provider.updated == 0


def test_events_wait_for_a_running_sync_and_disabled_sources_ignore_them(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source, _cid, rid = synced_customer(env, hub, user_db)
    config = WebhookConfig()
    token = inbound.rotate_token(env, hub.workspace_id, source.id, "http://hub.example")["token"]
    user_db.edit(rid, {"first_name": "Later"})
    inbound.receive(env, config, "memory", source.id, token, event([rid], event_id="a"))

    running = Run(env, sources.get_source(env, hub.workspace_id, source.id))
    running.start()
    clock = Clock()
    processor = InboundProcessor(env, config, clock=clock)
    assert processor.tick() == 1
    (row,) = queued(hub)
    assert row.status == "queued" and row.error_code == "E404" and row.next_attempt_at > clock.now
    assert hub_state(hub)["ann@example.com"]["base"]["firstName"] == "Ann"
    assert processor.tick() == 0  # not due yet
    running.execute()  # that run takes the change itself
    clock.now = row.next_attempt_at
    assert processor.tick() == 1
    (row,) = queued(hub)
    assert row.status == "processed"
    assert hub_state(hub)["ann@example.com"]["base"]["firstName"] == "Later"

    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    user_db.edit(rid, {"first_name": "Disabled"})
    inbound.receive(env, config, "memory", source.id, token, event([rid], event_id="b"))
    assert processor.tick() == 1
    assert [r.status for r in queued(hub)] == ["processed", "ignored"]
    assert queued(hub)[1].error_code == "E406"
    assert hub_state(hub)["ann@example.com"]["base"]["firstName"] == "Later"


def test_a_record_gone_from_the_provider_follows_the_delete_behaviour(
    env: SyncEnv, hub: Hub, user_db: memory.MemoryUserDb
) -> None:
    source = make_source(env, hub, user_db, delete_behaviour="unsubscribe")
    body = {
        "nodeId": hub.node_id,
        "base": {
            "contacts": {"email": "bob@example.com"},
            "subscriptions": [{"id": "newsletter", "subscribed": True}],
        },
    }
    hub_customers.create(hub.db, hub.workspace_id, body)
    full_run(env, source)
    rid = user_db.by_email["bob@example.com"]
    token = inbound.rotate_token(env, hub.workspace_id, source.id, "http://hub.example")["token"]
    user_db.remove(rid)
    inbound.receive(env, WebhookConfig(), "memory", source.id, token, event([rid]))
    assert InboundProcessor(env, WebhookConfig()).tick() == 1
    assert newsletter(hub_state(hub)["bob@example.com"]) == "unsubscribed"


def test_mailchimp_list_webhooks_are_read() -> None:
    fired = "2024-06-10 06:13:20"
    body = urlencode(
        {
            "type": "unsubscribe",
            "fired_at": fired,
            "data[action]": "unsub",
            "data[reason]": "manual",
            "data[id]": "8a25ff1d98",
            "data[list_id]": "a6b5da1054",
            "data[email]": "Ann@Example.com",
            "data[merges][FNAME]": "Ann",
        }
    ).encode()
    parsed = parse_mailchimp(body, "application/x-www-form-urlencoded")
    assert parsed.type == "unsubscribe"
    assert parsed.remote_ids == [hashlib.md5(b"ann@example.com", usedforsecurity=False).hexdigest()]
    assert parsed.fired_at == 1_718_000_000_000
    upemail = parse_mailchimp(
        urlencode(
            {"type": "upemail", "fired_at": fired, "data[old_email]": "a@x.com", "data[new_email]": "b@x.com"}
        ).encode(),
        "",
    )
    assert len(upemail.remote_ids) == 2
    assert sorted(upemail.emails.values()) == ["a@x.com", "b@x.com"]  # what each hash stands for
    campaign = parse_mailchimp(
        urlencode({"type": "campaign", "fired_at": fired, "data[id]": "1"}).encode(), ""
    )
    assert campaign.remote_ids == []


def _last_seq(hub: Hub) -> int:
    with hub.db.read() as conn:
        return journal_store.last_seq(conn, hub.workspace_id, None, None)


class MailchimpSetup:
    """A Mailchimp sandbox audience synced with the hub: Ann on both sides, subscribed, and
    the audience's webhook registered to our live service (Mailchimp GETs the URL first)."""

    def __init__(self, hub: Hub, http: httpx.Client, **sync: Any) -> None:
        from contactsync.sandbox.mailchimp import MailchimpSandbox
        from contactsync.sync.sources import connector_for

        self.sandbox = MailchimpSandbox()  # real time: fired_at must be recent
        self.audience = self.sandbox.create_list("Newsletter")
        self.client = httpx.Client(transport=self.sandbox.transport())
        self.env = SyncEnv(hub.db, SecretBox([new_key().encode()]), http=self.client)
        spec = {
            "name": "mc",
            "node": hub.node_id,
            "provider": "mailchimp",
            "config": {"api_key": self.sandbox.api_key, "list_id": self.audience},
            "sync": {
                "field_map": [
                    {"hub": "base.contacts.email", "provider": "email_address"},
                    {"hub": "base.firstName", "provider": "FNAME"},
                ],
                "match_keys": ["base.contacts.email"],
                "subscription_map": [{"hub": "newsletter", "provider": self.audience}],
                **sync,
            },
        }
        self.source = sources.create_source(self.env, hub.workspace_id, spec)
        body = {
            "nodeId": hub.node_id,
            "base": {
                "firstName": "Ann",
                "contacts": {"email": "ann@example.com"},
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            },
        }
        self.cid: str = hub_customers.create(hub.db, hub.workspace_id, body)[0]["id"]
        full_run(self.env, self.source)
        member = self.sandbox.member(self.audience, "ann@example.com")
        assert member is not None and member["status"] == "subscribed"
        self.contact_id = str(member["contact_id"])
        url = token_for(http, hub, self.source)["url"]
        connector = connector_for(self.env, sources.get_source(self.env, hub.workspace_id, self.source.id))
        try:
            connector.ensure_webhook(url)  # type: ignore[attr-defined]
        finally:
            connector.close()
        self.processor = InboundProcessor(self.env, WebhookConfig())

    def close(self) -> None:
        self.client.close()
        self.sandbox.close()

    def links(self) -> dict[str, str]:
        """customer id → remote id of the source's links."""
        with self.env.db.read() as conn:
            rows = conn.execute(sa.select(links).where(links.c.source_id == self.source.id)).all()
        return {r.customer_id: r.remote_id for r in rows}


@pytest.fixture
def mailchimp(request: pytest.FixtureRequest, hub: Hub, http: httpx.Client) -> Iterator[MailchimpSetup]:
    pytest.importorskip("contactsync.connectors.mailchimp")
    setup = MailchimpSetup(hub, http, **getattr(request, "param", {}))
    try:
        yield setup
    finally:
        setup.close()


def test_a_mailchimp_unsubscribe_webhook_unsubscribes_the_hub_customer_and_echoes_write_nothing(
    hub: Hub, mailchimp: MailchimpSetup
) -> None:
    """The acceptance line with the Mailchimp sandbox: Mailchimp itself POSTs its form-encoded
    webhooks to our live service; with the ``api`` source ticked, our own writes come back too."""
    sandbox, audience, env, source, cid = (
        mailchimp.sandbox,
        mailchimp.audience,
        mailchimp.env,
        mailchimp.source,
        mailchimp.cid,
    )
    # the person unsubscribes in Mailchimp; Mailchimp tells our live service
    sandbox.unsubscribe(audience, "ann@example.com")
    [delivered] = sandbox.webhooks.wait(1)
    assert delivered.type == "unsubscribe" and delivered.status == 200
    (event_row,) = queued(hub)
    assert event_row.status == "queued"
    processor = mailchimp.processor
    assert processor.tick() == 1
    assert newsletter(hub_state(hub)["ann@example.com"]) == "unsubscribed"
    ledger = hub_customers.consent_ledger(hub.db, hub.workspace_id, cid)
    assert ledger[-1]["status"] == "unsubscribed" and ledger[-1]["origin"] == source.origin
    after_pull = full_run(env, source)  # the next sync writes nothing back
    c = after_pull.counts
    assert (c.hub.updated, c.provider.updated, c.provider.created) == (0, 0, 0)
    assert sandbox.member(audience, "ann@example.com")["status"] == "unsubscribed"  # type: ignore[index]

    # our own write, echoed back by Mailchimp (api source ticked), causes nothing
    hub_customers.patch(hub.db, hub.workspace_id, cid, {"base": {"firstName": "Annie"}})
    assert full_run(env, source).counts.provider.updated == 1
    echoes = [d for d in sandbox.webhooks.wait(2) if d.type == "profile"]
    assert echoes and echoes[0].status == 200
    requests_before = len(sandbox.api_requests())
    assert processor.tick() == 1
    (_, echo_row) = queued(hub)
    with hub.db.read() as conn:
        run = sync_store.get_run(conn, echo_row.run_id)
    assert run is not None
    counts = orjson.loads(run.counts)
    assert counts["hub"]["updated"] == counts["provider"]["updated"] == 0 and counts["unchanged"] == 1
    writes = [r for r in sandbox.api_requests()[requests_before:] if r.method != "GET"]
    assert writes == []  # no loop
    assert full_run(env, source).counts.provider.updated == 0


def _nothing_written(result: RunResult) -> None:
    c = result.counts
    writes = [
        getattr(getattr(c, side), a)
        for side in ("hub", "provider")
        for a in ("created", "updated", "deleted")
    ]
    assert writes == [0] * 6


def _processed_run(hub: Hub, mailchimp: MailchimpSetup, kind: str) -> dict[str, Any]:
    """Wait for Mailchimp's ``kind`` webhook, process it; the counts of its targeted pull."""
    deliveries = [d for d in mailchimp.sandbox.webhooks.wait(1) if d.type == kind]
    assert deliveries and deliveries[0].status == 200
    assert mailchimp.processor.tick() == 1
    (row,) = queued(hub)
    assert row.status == "processed", (row.error_code, row.error)
    with hub.db.read() as conn:
        run = sync_store.get_run(conn, row.run_id)
    assert run is not None and run.status == "succeeded"
    counts: dict[str, Any] = orjson.loads(run.counts)
    return counts


@pytest.mark.parametrize("mailchimp", [{"delete_behaviour": "delete"}], indirect=True)
def test_a_member_deleted_permanently_in_mailchimp_deletes_the_hub_customer(
    hub: Hub, mailchimp: MailchimpSetup
) -> None:
    """Mailchimp keeps no trace of a permanently deleted member: its webhook names the address
    (``unsubscribe`` with ``action=delete``), the link is found by it, and the customer goes."""
    mailchimp.sandbox.delete_permanent(mailchimp.audience, "ann@example.com")
    deliveries = mailchimp.sandbox.webhooks.wait(1)
    assert deliveries[0].form["data[action]"] == "delete"
    counts = _processed_run(hub, mailchimp, "unsubscribe")
    assert counts["hub"]["deleted"] == 1
    assert hub_state(hub) == {}
    assert mailchimp.links() == {}
    with pytest.raises(NotFoundError):
        hub_customers.get(hub.db, hub.workspace_id, mailchimp.cid)

    _nothing_written(full_run(mailchimp.env, mailchimp.source))
    assert mailchimp.sandbox.member(mailchimp.audience, "ann@example.com") is None


@pytest.mark.parametrize("mailchimp", [{"delete_behaviour": "ignore"}], indirect=True)
def test_a_member_deleted_permanently_in_mailchimp_keeps_the_hub_customer_when_told_to(
    hub: Hub, mailchimp: MailchimpSetup
) -> None:
    before = hub_state(hub)["ann@example.com"]
    mailchimp.sandbox.delete_permanent(mailchimp.audience, "ann@example.com")
    counts = _processed_run(hub, mailchimp, "unsubscribe")
    assert counts["hub"]["deleted"] == counts["hub"]["updated"] == 0
    kept = hub_state(hub)["ann@example.com"]
    assert kept["id"] == mailchimp.cid and newsletter(kept) == "subscribed"
    assert kept["base"] == before["base"]
    assert mailchimp.links() == {}  # the link went with the member

    _nothing_written(full_run(mailchimp.env, mailchimp.source))
    assert mailchimp.sandbox.member(mailchimp.audience, "ann@example.com") is None


@pytest.mark.parametrize("mailchimp", [{"delete_behaviour": "delete"}], indirect=True)
def test_an_address_changed_in_mailchimp_updates_the_same_customer(
    hub: Hub, mailchimp: MailchimpSetup
) -> None:
    """``upemail`` names the old and the new address; the member keeps its contact_id, so the
    pull by the new address updates the linked customer: no duplicate, and no deletion."""
    mailchimp.sandbox.edit(mailchimp.audience, "ann@example.com", email_address="Ann.New@Example.com")
    counts = _processed_run(hub, mailchimp, "upemail")
    assert counts["hub"]["updated"] == 1
    assert (counts["hub"]["created"], counts["hub"]["deleted"]) == (0, 0)
    state = hub_state(hub)
    assert list(state) == ["ann.new@example.com"]
    ann = state["ann.new@example.com"]
    assert (
        ann["id"] == mailchimp.cid and ann["base"]["firstName"] == "Ann" and newsletter(ann) == "subscribed"
    )
    assert mailchimp.links() == {mailchimp.cid: mailchimp.contact_id}

    _nothing_written(full_run(mailchimp.env, mailchimp.source))
    member = mailchimp.sandbox.member(mailchimp.audience, "ann.new@example.com")
    assert member is not None and member["contact_id"] == mailchimp.contact_id
    assert len(mailchimp.sandbox.members(mailchimp.audience)) == 1


@pytest.mark.parametrize("mailchimp", [{"delete_behaviour": "delete"}], indirect=True)
def test_an_old_address_the_member_left_is_not_taken_for_a_deletion(
    hub: Hub, mailchimp: MailchimpSetup
) -> None:
    """An event naming only the address the member had (its ``upemail`` not pulled with it):
    Mailchimp has no member there, but the linked contact_id still exists, so nothing is deleted
    and the customer takes the member's current address."""
    mailchimp.sandbox.edit(mailchimp.audience, "ann@example.com", email_address="ann.new@example.com")
    old = hashlib.md5(b"ann@example.com", usedforsecurity=False).hexdigest()
    source = sources.get_source(mailchimp.env, hub.workspace_id, mailchimp.source.id)
    result = targeted.pull(mailchimp.env, source, [old], emails={old: "ann@example.com"})
    assert result.status == "succeeded", result.error
    assert (result.counts.hub.deleted, result.counts.hub.updated) == (0, 1)
    assert hub_state(hub)["ann.new@example.com"]["id"] == mailchimp.cid
    assert mailchimp.links() == {mailchimp.cid: mailchimp.contact_id}
