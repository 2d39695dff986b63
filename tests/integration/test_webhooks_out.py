"""Outbound webhooks against a real receiver on loopback: signed deliveries (checked with the
snippet of docs/webhooks.md), retries with backoff, a restart mid-retry, the retry window,
manual redelivery, exactly-once fan-out; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from contactsync.errors import InputError
from contactsync.hub import customer_items
from contactsync.hub import customers as hub_customers
from contactsync.notify import delivery, outbox, webhooks
from contactsync.notify.delivery import Deliverer
from contactsync.notify.webhooks import WebhookConfig, webhook_loops
from contactsync.secrets import SecretBox, new_key
from contactsync.settings import Settings
from contactsync.store import webhooks as webhook_store
from contactsync.store.db import Database
from contactsync.store.webhook_tables import webhook_deliveries
from contactsync.store.webhook_tables import webhooks as webhooks_table
from tests.conftest import Hub, free_port

DOCS = Path(__file__).parents[2] / "docs" / "webhooks.md"


def documented_verify() -> Callable[..., bool]:
    """The `verify` function of docs/webhooks.md, run as a receiver would copy it."""
    text = DOCS.read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), scope)
    verify: Callable[..., bool] = scope["verify"]
    return verify


class Receiver:
    """A webhook receiver on loopback: records what it gets; can fail N times or be down."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.fail_next = 0
        self.status = 200
        self.lock = threading.Condition()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= 1 if failing else 0
                    status = 500 if failing else receiver.status
                    if not failing:
                        receiver.received.append((dict(self.headers.items()), body))
                        receiver.paths.append(self.path)
                    receiver.lock.notify_all()
                answer = b"receiver says no" if status >= 300 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} deliveries, got {len(self.received)}")
                self.lock.wait(left)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([new_key().encode()])


class Clock:
    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


def customer(hub: Hub, email: str, **base: Any) -> dict[str, Any]:
    body = {"nodeId": hub.node_id, "base": {"contacts": {"email": email}, **base}}
    return hub_customers.create(hub.db, hub.workspace_id, body)[0]


def pump(db: Database, box: SecretBox, rounds: int = 3) -> None:
    """Fan out and deliver until nothing is due (what the background loops do)."""
    deliverer = Deliverer(db, box, WebhookConfig())
    try:
        for _ in range(rounds):
            while outbox.fan_out(db):
                pass
            while deliverer.tick():
                pass
    finally:
        deliverer.close()


@pytest.fixture
def make_deliverer(db: Database, box: SecretBox) -> Iterator[Callable[..., Deliverer]]:
    made: list[Deliverer] = []

    def make(config: WebhookConfig, clock: Callable[[], int]) -> Deliverer:
        made.append(Deliverer(db, box, config, clock=clock))
        return made[-1]

    yield make
    for d in made:
        d.close()


def deliveries(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.created_at)))


def test_subscription_changes_through_the_hub_api_are_delivered_signed(
    hub: Hub, live_server: str, receiver: Receiver, request: pytest.FixtureRequest
) -> None:
    settings = Settings()
    box = SecretBox.from_settings(settings)  # the live server's key
    http = httpx.Client(base_url=live_server, headers=hub.headers)
    request.addfinalizer(http.close)
    made = http.post(
        f"/api/v1/workspaces/{hub.workspace_id}/webhooks",
        json={
            "url": receiver.url,
            "events": ["subscription.pending", "subscription.subscribed", "subscription.unsubscribed"],
        },
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    everything, _ = webhooks.create_webhook(
        hub.db, box, hub.workspace_id, url=receiver.url + "?all", events=["*"]
    )

    customers = f"/hub/v1/workspaces/{hub.workspace_id}/customers"
    created = http.post(
        customers,
        json={
            "nodeId": hub.node_id,
            "base": {
                "contacts": {"email": "ann@example.com"},
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            },
        },
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    put = http.put(
        f"{customers}/{cid}/subscriptions/newsletter", json={"id": "newsletter", "subscribed": False}
    )
    assert put.status_code == 200, put.text

    pump(hub.db, box)
    got = receiver.wait_for(6)
    verify = documented_verify()
    filtered = sorted((json.loads(b) for h, b in got if verify(secret, h, b)), key=lambda e: e["occurredAt"])
    assert [e["type"] for e in filtered] == ["subscription.subscribed", "subscription.unsubscribed"]
    assert receiver.paths.count("/hook") == 2 and receiver.paths.count("/hook?all") == 4
    unsub = filtered[1]
    assert unsub["data"]["previousStatus"] == "subscribed"
    assert unsub["data"]["status"] == "unsubscribed"
    assert unsub["data"]["customer"]["base"]["contacts"]["email"] == "ann@example.com"
    assert unsub["workspaceId"] == hub.workspace_id and unsub["nodeId"] == hub.node_id

    # the catch-all webhook got the customer events too, signed with its own secret
    types = sorted(e["type"] for e in receiver.events())
    assert types.count("customer.created") == 1 and types.count("customer.updated") == 1
    # a tampered body or a wrong secret does not verify
    headers, body = got[0]
    assert not verify(secret, headers, body.replace(b"ann@", b"bob@"))
    assert not verify("whsec_wrong", headers, body)
    assert everything["events"] == ["*"]

    # the secret is shown once: not in reads, and sealed at rest
    shown = http.get(f"/api/v1/workspaces/{hub.workspace_id}/webhooks/{made.json()['id']}").json()
    assert "secret" not in shown
    with hub.db.read() as conn:
        sealed = conn.execute(sa.select(webhooks_table.c.secret)).scalars().all()
    assert all(secret not in s for s in sealed)


def test_failures_are_retried_with_exponential_backoff(
    db: Database, hub: Hub, box: SecretBox, receiver: Receiver, make_deliverer: Callable[..., Deliverer]
) -> None:
    hook, secret = webhooks.create_webhook(
        db, box, hub.workspace_id, url=receiver.url, events=["customer.created"]
    )
    customer(hub, "ann@example.com")
    assert outbox.fan_out(db) > 0
    clock = Clock()
    deliverer = make_deliverer(WebhookConfig(backoff_s=30, backoff_max_s=3600), clock)
    receiver.fail_next = 3

    waits = []
    for _ in range(3):
        assert deliverer.tick() == 1
        (row,) = deliveries(db)
        assert row.status == "pending" and row.last_status_code == 500
        waits.append(row.next_attempt_at - clock.now)
        assert deliverer.tick() == 0  # not due yet
        clock.now = row.next_attempt_at
    assert deliverer.tick() == 1
    (row,) = deliveries(db)
    assert row.status == "delivered" and row.attempts == 4
    # 30 s, 60 s, 120 s, each ±20 %
    for wait, base in zip(waits, (30_000, 60_000, 120_000), strict=True):
        assert 0.8 * base <= wait <= 1.2 * base

    log = delivery.get_delivery(db, hub.workspace_id, row.id)
    assert [a["statusCode"] for a in log["log"]] == [500, 500, 500, 200]
    assert log["log"][0]["response"] == "receiver says no"
    headers, body = receiver.wait_for(1)[0]
    assert documented_verify()(secret, headers, body)
    assert headers["X-Contactsync-Event-Id"] == log["eventId"] == json.loads(body)["id"]
    assert hook["id"] == row.webhook_id


def test_after_the_retry_window_a_delivery_fails_and_can_be_redelivered(
    db: Database, hub: Hub, box: SecretBox, receiver: Receiver, make_deliverer: Callable[..., Deliverer]
) -> None:
    hook, _ = webhooks.create_webhook(db, box, hub.workspace_id, url=receiver.url, events=["*"])
    customer(hub, "ann@example.com")
    outbox.fan_out(db)
    clock = Clock()
    deliverer = make_deliverer(WebhookConfig(backoff_s=30, backoff_max_s=3600, retry_hours=24), clock)
    (row,) = deliveries(db)
    receiver.status = 503
    while row.status == "pending":
        clock.now = max(clock.now, row.next_attempt_at)
        deliverer.tick()
        (row,) = deliveries(db)
    assert row.status == "failed" and row.error_code == "E732"
    assert row.last_attempt_at - row.created_at >= 24 * 3_600_000  # retried for at least 24 h
    assert 20 <= row.attempts <= 40
    assert deliverer.tick() == 0

    receiver.status = 200
    again = delivery.redeliver(db, hub.workspace_id, row.id, now=clock.now)
    assert again["status"] == "pending"
    assert deliverer.tick() == 1
    (row,) = deliveries(db)
    assert row.status == "delivered" and row.error_code is None
    _, body = receiver.received[0]
    assert json.loads(body)["id"] == row.event_id
    failed = delivery.list_deliveries(db, hub.workspace_id, webhook_id=hook["id"], status="failed")
    assert failed == []


def _run_loops(db: Database, settings: Settings) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        for name, loop in webhook_loops(db, settings)
    ]
    for t in threads:
        t.start()
    return stop, threads


def test_a_restart_mid_retry_still_delivers_every_event(db: Database, hub: Hub, receiver: Receiver) -> None:
    key = new_key()
    settings = Settings(
        secret_keys=key,
        webhook_backoff_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_poll_s=0.02,
        webhook_timeout_s=2,
    )
    box = SecretBox.from_settings(settings)
    _, secret = webhooks.create_webhook(db, box, hub.workspace_id, url=receiver.url, events=["*"])
    receiver.stop()  # the receiver is down

    stop, threads = _run_loops(db, settings)
    for i in range(10):
        customer(hub, f"p{i}@example.com")
    deadline = time.monotonic() + 20
    while not all(r.attempts >= 2 for r in deliveries(db)) or len(deliveries(db)) < 10:
        assert time.monotonic() < deadline, "the deliveries were not retried"
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert all(r.status == "pending" for r in deliveries(db))

    # "restart": new database handle and new loops on the same database; more changes meanwhile
    url = db.url.render_as_string(hide_password=False)
    fresh = Database(url)
    try:
        for i in range(10, 15):
            customer(Hub(fresh, hub.workspace_id, hub.node_id, hub.token), f"p{i}@example.com")
        receiver.start()
        stop, threads = _run_loops(fresh, settings)
        got = receiver.wait_for(15)
        time.sleep(0.3)  # nothing more should come
        stop.set()
        for t in threads:
            t.join(timeout=10)
        rows = deliveries(fresh)
    finally:
        fresh.dispose()
    verify = documented_verify()
    assert all(verify(secret, h, b) for h, b in receiver.received)
    emails = sorted(json.loads(b)["data"]["customer"]["base"]["contacts"]["email"] for _, b in got)
    assert emails == sorted(f"p{i}@example.com" for i in range(15))
    assert len(receiver.received) == 15  # none twice
    assert len(rows) == 15 and all(r.status == "delivered" for r in rows)


def test_fan_out_is_exactly_once_even_when_a_pass_dies(
    db: Database, hub: Hub, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhooks.create_webhook(db, box, hub.workspace_id, url="http://127.0.0.1:9/a", events=["*"])
    webhooks.create_webhook(
        db, box, hub.workspace_id, url="http://127.0.0.1:9/b", events=["customer.removed"]
    )
    a = customer(hub, "ann@example.com")
    customer(hub, "bob@example.com")
    hub_customers.delete(db, hub.workspace_id, a["id"])

    def die(*_args: Any) -> None:
        raise RuntimeError("killed mid-pass")

    with monkeypatch.context() as m:
        m.setattr(webhook_store, "advance_cursor", die)
        with pytest.raises(RuntimeError):
            outbox.fan_out(db)
    assert deliveries(db) == []  # the pass rolled back: nothing half-done

    outbox.fan_out(db)
    outbox.fan_out(db)
    rows = deliveries(db)
    # a: created, removed; bob: created → 3 for the catch-all, 1 for the removed-only webhook
    assert sorted(r.event_type for r in rows) == [
        "customer.created",
        "customer.created",
        "customer.removed",
        "customer.removed",
    ]
    removed = [json.loads(r.body) for r in rows if r.event_type == "customer.removed"]
    assert removed[0]["id"] == removed[1]["id"]  # the same event id for every webhook
    assert removed[0]["data"]["customer"]["base"]["contacts"]["email"] == "ann@example.com"


def test_webhooks_get_only_later_events_of_their_node_and_types(
    db: Database, hub: Hub, box: SecretBox
) -> None:
    early = customer(hub, "early@example.com")
    from contactsync.hub import workspaces

    other = workspaces.create_node(db, hub.workspace_id, "other")
    webhooks.create_webhook(
        db,
        box,
        hub.workspace_id,
        url="http://127.0.0.1:9/",
        events=["customer.updated", "subscription.pending"],
        node=hub.node_id,
    )
    hub_customers.patch(db, hub.workspace_id, early["id"], {"base": {"firstName": "Early"}})
    hub_customers.create(
        db, hub.workspace_id, {"nodeId": other.id, "base": {"contacts": {"email": "o@x.com"}}}
    )
    customer_items.put_subscription(db, hub.workspace_id, early["id"], {"id": "news", "status": "pending"})
    outbox.fan_out(db)
    assert sorted(r.event_type for r in deliveries(db)) == [
        "customer.updated",
        "customer.updated",
        "subscription.pending",
    ]

    with pytest.raises(InputError) as bad_url:
        webhooks.create_webhook(db, box, hub.workspace_id, url="ftp://x", events=["*"])
    assert bad_url.value.code == "E730"
    with pytest.raises(InputError) as bad_event:
        webhooks.create_webhook(db, box, hub.workspace_id, url="https://x.example", events=["customer.eaten"])
    assert bad_event.value.code == "E731"


def test_management_api(
    hub: Hub, live_server: str, receiver: Receiver, request: pytest.FixtureRequest
) -> None:
    http = httpx.Client(base_url=f"{live_server}/api/v1/workspaces/{hub.workspace_id}", headers=hub.headers)
    request.addfinalizer(http.close)
    assert http.post("/webhooks", json={"url": "nope"}).json()["code"] == "E730"
    bad = http.post("/webhooks", json={"url": receiver.url, "events": ["x"]})
    assert (bad.status_code, bad.json()["code"]) == (400, "E731")
    made = http.post("/webhooks", json={"url": receiver.url, "description": "crm"}).json()
    assert made["events"] == ["*"] and made["secret"].startswith("whsec_")
    wid = made["id"]
    assert [w["id"] for w in http.get("/webhooks").json()["elements"]] == [wid]
    patched = http.patch(f"/webhooks/{wid}", json={"enabled": False}).json()
    assert patched["enabled"] is False
    rotated = http.post(f"/webhooks/{wid}/secret").json()
    assert rotated["secret"] != made["secret"]
    http.patch(f"/webhooks/{wid}", json={"enabled": True})

    customer(hub, "ann@example.com")
    pump(hub.db, SecretBox.from_settings(Settings()))
    ((headers, body),) = receiver.wait_for(1)
    assert documented_verify()(rotated["secret"], headers, body)
    listed = http.get(f"/webhooks/{wid}/deliveries").json()["elements"]
    assert [d["status"] for d in listed] == ["delivered"]
    did = listed[0]["id"]
    one = http.get(f"/webhooks/{wid}/deliveries/{did}").json()
    assert one["payload"]["type"] == "customer.created" and one["log"][0]["statusCode"] == 200
    again = http.post(f"/webhooks/{wid}/deliveries/{did}/redeliver")
    assert again.status_code == 202 and again.json()["status"] == "pending"
    pump(hub.db, SecretBox.from_settings(Settings()))
    receiver.wait_for(2)
    assert receiver.events()[0]["id"] == receiver.events()[1]["id"]
    assert http.get(f"/webhooks/{wid}/deliveries?status=bogus").status_code == 400
    assert http.delete(f"/webhooks/{wid}").status_code == 200
    assert http.get(f"/webhooks/{wid}").status_code == 404


def _cli(db_url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTACTSYNC_DATABASE_URL": db_url, "CONTACTSYNC_SECRET_KEYS": key}
    return subprocess.run(
        [sys.executable, "-m", "contactsync", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # one interpreter start per command
def test_cli(sqlite_db: Database, receiver: Receiver) -> None:
    from contactsync.hub import workspaces

    url = sqlite_db.url.render_as_string(hide_password=False)
    key = new_key()
    ws = workspaces.create_workspace(sqlite_db, "cli")
    node = workspaces.create_node(sqlite_db, ws.id, "main")
    made = _cli(url, key, "webhooks", "create", receiver.url, "-e", "customer.created", "--json")
    assert made.returncode == 0, made.stderr
    hook = json.loads(made.stdout)
    assert hook["events"] == ["customer.created"] and hook["secret"].startswith("whsec_")
    listed = _cli(url, key, "webhooks", "list", "--json")
    assert [h["id"] for h in json.loads(listed.stdout)] == [hook["id"]] and "whsec_" not in listed.stdout
    bad = _cli(url, key, "webhooks", "create", "not-a-url")
    assert bad.returncode == 2 and "E730" in bad.stderr

    hub_customers.create(sqlite_db, ws.id, {"nodeId": node.id, "base": {"contacts": {"email": "c@x.com"}}})
    pump(sqlite_db, SecretBox([key.encode()]))
    ((headers, body),) = receiver.wait_for(1)
    assert documented_verify()(hook["secret"], headers, body)
    log = json.loads(_cli(url, key, "webhooks", "deliveries", hook["id"], "--json").stdout)
    assert [d["status"] for d in log] == ["delivered"]
    again = _cli(url, key, "webhooks", "redeliver", hook["id"], log[0]["id"], "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "pending"
    one = json.loads(
        _cli(url, key, "webhooks", "deliveries", hook["id"], "--id", log[0]["id"], "--json").stdout
    )
    assert one["log"][0]["statusCode"] == 200
    assert _cli(url, key, "webhooks", "delete", hook["id"]).returncode == 0
    assert json.loads(_cli(url, key, "webhooks", "list", "--json").stdout) == []


def test_fan_out_never_jumps_over_an_entry_that_commits_late(db: Database, hub: Hub, box: SecretBox) -> None:
    """PostgreSQL hands out journal seqs before commit: a change with a lower seq may commit
    after one with a higher seq. The fan-out must wait for it, not move its cursor past it."""
    if db.is_sqlite:
        pytest.skip("SQLite commits writers one at a time, in seq order")
    from contactsync.hub.context import API, journal_entry
    from contactsync.hub.ids import new_id
    from contactsync.store import journal as journal_store

    webhooks.create_webhook(db, box, hub.workspace_id, url="http://127.0.0.1:9/", events=["*"])
    late_id = new_id()
    with db.engine.connect() as slow:
        tx = slow.begin()
        entry = journal_entry(hub.workspace_id, hub.node_id, "CUSTOMER", late_id, "CREATE", API, 1)
        journal_store.append(slow, [entry])  # the lower seq, not committed yet
        customer(hub, "fast@example.com")  # a higher seq, committed
        assert outbox.fan_out(db) == 0  # waits: the late entry is still in flight
        assert deliveries(db) == []
        tx.commit()
    outbox.fan_out(db)
    got = {json.loads(r.body)["data"]["customerId"] for r in deliveries(db)}
    assert late_id in got and len(got) == 2
