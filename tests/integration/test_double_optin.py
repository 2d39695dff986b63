"""Double opt-in end to end: a real SMTP server on loopback, the real service, the emailed link."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from contactsync.api import create_app
from contactsync.hub import optin, subscribe
from contactsync.hub.context import WriteContext
from contactsync.hub.times import now_ms
from contactsync.settings import Settings
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database
from contactsync.store.optin_tables import optin_requests
from tests.conftest import Hub, free_port
from tests.fixtures.smtp import Mailbox

LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_\-]+")
BROWSER = "Mozilla/5.0 (test browser)"


@pytest.fixture(autouse=True)
def _secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTSYNC_SECRET_KEY_FILE", str(tmp_path / "secret.key"))


@contextmanager
def serving(db: Database, **settings: Any) -> Iterator[tuple[str, Settings]]:
    """The real app on a loopback port whose public URL is its own (links in emails work)."""
    port = free_port()
    conf = Settings(public_url=f"http://127.0.0.1:{port}", **settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(db, conf), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", conf
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def service(smtp_server: Mailbox, hub: Hub) -> Iterator[tuple[str, Settings]]:
    with serving(hub.db) as running:
        yield running


def api(base: str, hub: Hub) -> str:
    return f"{base}/api/v1/workspaces/{hub.workspace_id}/subscriptions"


def subscribe_doi(base: str, hub: Hub, email: str, **extra: Any) -> dict[str, Any]:
    body = {
        "nodeId": hub.node_id,
        "email": email,
        "subscriptions": ["newsletter"],
        "doubleOptIn": True,
        "webformCode": "footer-form",
        "ip": "198.51.100.7",
        "userAgent": "CMS form",
        **extra,
    }
    r = httpx.post(api(base, hub), json=body, headers=hub.headers)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(0)


def status_of(base: str, hub: Hub, email: str) -> dict[str, Any]:
    r = httpx.get(api(base, hub), params={"nodeId": hub.node_id, "email": email}, headers=hub.headers)
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["subscriptions"]}


def ledger(db: Database, customer_id: str) -> list[Any]:
    with db.read() as conn:
        return list(sub_store.ledger(conn, customer_id))


def test_the_emailed_link_confirms_once_with_evidence(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, _ = service
    answer = subscribe_doi(base, hub, "Ada@Example.com", profile={"base": {"firstName": "Ada"}})
    assert answer["subscriptions"] == [
        {"id": "newsletter", "previousStatus": None, "status": "pending", "reason": "NEW"}
    ]
    assert answer["doubleOptIn"]["emailQueued"] is True
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Please confirm your subscription"
    link = link_in(message)
    assert link.startswith(base + "/confirm/")
    assert status_of(base, hub, "ada@example.com")["newsletter"]["status"] == "pending"

    page = httpx.get(link, headers={"User-Agent": BROWSER})
    assert page.status_code == 200
    assert "Subscription confirmed" in page.text
    assert status_of(base, hub, "ada@example.com")["newsletter"]["status"] == "subscribed"

    rows = ledger(hub.db, answer["customerId"])
    last = rows[-1]
    assert (last.previous_status, last.status, last.origin, last.actor) == (
        "pending",
        "subscribed",
        "api",
        "double-opt-in",
    )
    assert (last.ip, last.user_agent, last.webform_code) == ("127.0.0.1", BROWSER, "footer-form")
    evidence = orjson.loads(last.evidence)
    assert evidence["type"] == "DOUBLE_OPT_IN"
    assert evidence["requestIp"] == "198.51.100.7"
    assert evidence["requestUserAgent"] == "CMS form"

    again = httpx.get(link)
    assert again.status_code == 200
    assert "already confirmed" in again.text
    assert len(ledger(hub.db, answer["customerId"])) == len(rows)


def test_a_tampered_link_is_refused_and_changes_nothing(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, _ = service
    answer = subscribe_doi(base, hub, "eve@example.com")
    link = link_in(smtp_server.wait_for(1)[0])
    token = link.rsplit("/", 1)[1]
    forged = link[: -len(token)] + ("A" if token[0] != "A" else "B") + token[1:]
    for bad in (forged, link + "x", link[:-5]):
        page = httpx.get(bad)
        assert page.status_code == 404
        assert "E700" in page.text
        assert "not valid" in page.text
    assert status_of(base, hub, "eve@example.com")["newsletter"]["status"] == "pending"
    assert len(ledger(hub.db, answer["customerId"])) == 1


def test_an_expired_link_is_refused_and_changes_nothing(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, settings = service
    two_days_ago = now_ms() - 49 * 3_600_000
    req = subscribe.SubscribeRequest(hub.node_id, "late@example.com", ("newsletter",), double_opt_in=True)
    outcome = subscribe.subscribe(hub.db, settings, hub.workspace_id, req, WriteContext(), now=two_days_ago)
    link = link_in(smtp_server.wait_for(1)[0])
    page = httpx.get(link)
    assert page.status_code == 410
    assert "E701" in page.text and "expired" in page.text
    assert status_of(base, hub, "late@example.com")["newsletter"]["status"] == "pending"
    assert len(ledger(hub.db, outcome.customer_id)) == 1


def test_an_opted_out_address_needs_the_confirmation_to_come_back(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, _ = service
    person = {"nodeId": hub.node_id, "email": "bob@example.com", "subscriptions": ["newsletter"]}
    assert httpx.post(api(base, hub), json=person, headers=hub.headers).json()["subscriptions"][0][
        "status"
    ] == ("subscribed")
    r = httpx.post(
        api(base, hub) + "/unsubscribe", json={**person, "reason": "too many"}, headers=hub.headers
    )
    assert r.json()["subscriptions"][0]["status"] == "unsubscribed"

    # single opt-in without evidence over an unsubscribe: pending, never subscribed
    again = httpx.post(api(base, hub), json=person, headers=hub.headers).json()
    assert again["subscriptions"][0] == {
        "id": "newsletter",
        "previousStatus": "unsubscribed",
        "status": "pending",
        "reason": "REOPTIN_REQUIRED",
    }
    assert smtp_server.messages == []

    subscribe_doi(base, hub, "bob@example.com")
    page = httpx.get(link_in(smtp_server.wait_for(1)[0]))
    assert page.status_code == 200
    state = status_of(base, hub, "bob@example.com")["newsletter"]
    assert (state["status"], state["reason"]) == ("subscribed", "NEWER_OPT_IN")


def test_already_subscribed_gets_no_email(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, _ = service
    person = {"nodeId": hub.node_id, "email": "kim@example.com", "subscriptions": ["newsletter"]}
    httpx.post(api(base, hub), json=person, headers=hub.headers)
    answer = subscribe_doi(base, hub, "kim@example.com")
    assert answer["subscriptions"][0]["status"] == "subscribed"
    assert "doubleOptIn" not in answer
    time.sleep(0.3)  # a queued email would be on its way by now
    assert smtp_server.messages == []


def test_the_email_waits_out_an_smtp_outage(smtp_server: Mailbox, hub: Hub) -> None:
    down = free_port()
    with serving(hub.db, smtp_port=down, smtp_timeout=2) as (base, settings):
        answer = subscribe_doi(base, hub, "patient@example.com")
        request_id = answer["doubleOptIn"]["requestId"]
        assert answer["subscriptions"][0]["status"] == "pending"
        row = wait_for_attempt(hub.db, request_id)
        assert row.email_sent_at is None
        assert "E104" in row.last_error
        assert smtp_server.messages == []

        # the server is back: the background loop's next pass sends it
        assert optin.send_due(hub.db, settings, now=now_ms()) == 0  # not due yet (backoff)
        back = settings.model_copy(update={"smtp_port": smtp_server.port})
        assert optin.send_due(hub.db, back, now=now_ms() + 60_000) == 1
        link = link_in(smtp_server.wait_for(1)[0])
        assert optin.send_due(hub.db, back, now=now_ms() + 3_600_000) == 0  # sent once only
        assert httpx.get(link).status_code == 200
        assert status_of(base, hub, "patient@example.com")["newsletter"]["status"] == "subscribed"


def wait_for_attempt(db: Database, request_id: str) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.read() as conn:
            row = conn.execute(optin_requests.select().where(optin_requests.c.id == request_id)).first()
        if row is not None and row.attempts:
            return row
        time.sleep(0.05)
    raise AssertionError("the sender never tried")


def test_the_background_loop_resends_and_stops(smtp_server: Mailbox, hub: Hub) -> None:
    settings = Settings(smtp_port=free_port(), smtp_timeout=2)
    req = subscribe.SubscribeRequest(hub.node_id, "loop@example.com", ("newsletter",), double_opt_in=True)
    outcome = subscribe.subscribe(hub.db, settings, hub.workspace_id, req, WriteContext())
    assert outcome.optin_request is not None
    wait_for_attempt(hub.db, outcome.optin_request.id)
    with hub.db.write() as conn:  # due now
        conn.execute(optin_requests.update().values(next_attempt_at=0))
    ((name, loop),) = optin.optin_loops(hub.db, Settings())
    assert name == "optin-email"
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,))
    thread.start()
    try:
        (message,) = smtp_server.wait_for(1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert message["To"] == "loop@example.com"


def test_a_removed_customer_withdraws_its_link(
    service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub
) -> None:
    base, _ = service
    subscribe_doi(base, hub, "gone@example.com")
    link = link_in(smtp_server.wait_for(1)[0])
    r = httpx.post(
        api(base, hub) + "/cancel",
        json={"nodeId": hub.node_id, "email": "gone@example.com"},
        headers=hub.headers,
    )
    assert r.status_code == 200
    page = httpx.get(link)
    assert page.status_code == 410
    assert "E702" in page.text


def test_italian_email_and_page(service: tuple[str, Settings], smtp_server: Mailbox, hub: Hub) -> None:
    base, _ = service
    subscribe_doi(base, hub, "luca@example.com", language="it")
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == "Conferma la tua iscrizione"
    page = httpx.get(link_in(message))
    assert "Iscrizione confermata" in page.text
    refused = httpx.get(base + "/confirm/nonsense", headers={"Accept-Language": "it-IT,it;q=0.9"})
    assert refused.status_code == 404
    assert "non è valido" in refused.text


def test_double_opt_in_without_smtp_is_refused(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTACTSYNC_SMTP_HOST", raising=False)
    with serving(hub.db, smtp_host="") as (base, _):
        body = {"nodeId": hub.node_id, "email": "x@example.com", "subscriptions": ["n"], "doubleOptIn": True}
        r = httpx.post(api(base, hub), json=body, headers=hub.headers)
    assert r.status_code == 400
    assert r.json()["code"] == "E703"
    assert "SMTP" in r.json()["hint"]
