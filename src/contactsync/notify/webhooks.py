"""Outbound webhooks: registrations, event types, signing, and the background loops.

A webhook is a URL of the client's systems that receives the hub's events as signed JSON
POSTs. The pieces live in three modules:

* this one: registering webhooks (the secret is made here, sealed, and shown once), the event
  types, the signature, and :func:`webhook_loops` for the background runner;
* :mod:`contactsync.notify.outbox`: the fan-out from the change journal and the consent ledger
  (the transactional outbox) to one delivery per matching webhook;
* :mod:`contactsync.notify.delivery`: sending deliveries, retries with backoff, the delivery
  log and manual redelivery.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson

from contactsync.errors import FieldProblem, invalid, not_found
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.secrets import SecretBox
from contactsync.settings import Settings
from contactsync.store import webhooks as store
from contactsync.store import workspaces as ws_store
from contactsync.store.db import Database

log = logging.getLogger("contactsync.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_VERSION = "v1"
ALL = "*"


class EventType(StrEnum):
    SUBSCRIPTION_PENDING = "subscription.pending"  # requested: waiting for the double opt-in
    SUBSCRIPTION_SUBSCRIBED = "subscription.subscribed"  # confirmed
    SUBSCRIPTION_UNSUBSCRIBED = "subscription.unsubscribed"  # unsubscribed or cleaned
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_REMOVED = "customer.removed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # no 2xx within the retry window; redeliver by hand


@dataclass(frozen=True)
class WebhookConfig:
    """The knobs of delivery and inbound processing (from :class:`Settings`)."""

    timeout_s: float = 10.0
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0
    retry_hours: float = 24.0
    concurrency: int = 4
    poll_s: float = 1.0
    inbound_max_age_s: float = 5400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        return cls(
            timeout_s=settings.webhook_timeout_s,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            retry_hours=settings.webhook_retry_hours,
            concurrency=settings.webhook_concurrency,
            poll_s=settings.webhook_poll_s,
            inbound_max_age_s=settings.inbound_max_age_s,
        )


# --- signing ---------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: the X-Contactsync-Signature value."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


# --- registrations -----------------------------------------------------------------------------


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid([FieldProblem("url", f"{url!r} is not an absolute http(s) URL", "E730")])
    return url


def _check_events(events: Sequence[str]) -> list[str]:
    known = {t.value for t in EventType}
    wanted = list(dict.fromkeys(str(e).strip() for e in events))
    if not wanted:
        raise invalid([FieldProblem("events", "name at least one event type, or * for all", "E731")])
    for i, name in enumerate(wanted):
        if name != ALL and name not in known:
            names = ", ".join(sorted(known))
            raise invalid(
                [FieldProblem(f"events.{i}", f"unknown event type {name!r}; types: {names}", "E731")]
            )
    return [ALL] if ALL in wanted else wanted


def _check_node(db: Database, workspace_id: str, node: str | None) -> str | None:
    if not node:
        return None
    with db.read() as conn:
        row = ws_store.get_node(conn, workspace_id, node) or ws_store.get_node_by_name(
            conn, workspace_id, node
        )
    if row is None:
        raise not_found("node", node)
    return str(row.id)


def render(row: Any) -> dict[str, Any]:
    """A webhook as the API and the CLI show it: never its secret."""
    return {
        "id": row.id,
        "workspaceId": row.workspace_id,
        "nodeId": row.node_id,
        "url": row.url,
        "description": row.description,
        "events": orjson.loads(row.events),
        "enabled": bool(row.enabled),
        "createdAt": format_time(row.created_at),
        "updatedAt": format_time(row.updated_at),
    }


def create_webhook(
    db: Database,
    box: SecretBox,
    workspace_id: str,
    *,
    url: str,
    events: Sequence[str],
    node: str | None = None,
    description: str = "",
    enabled: bool = True,
) -> tuple[dict[str, Any], str]:
    """Register a webhook; returns it and its signing secret (shown this once, stored sealed).

    It receives the events that happen after it is created.
    """
    url = _check_url(url)
    events = _check_events(events)
    node_id = _check_node(db, workspace_id, node)
    secret = new_secret()
    at = now_ms()
    webhook_id = new_id()
    with db.write() as conn:
        if ws_store.get_workspace(conn, workspace_id) is None:
            raise not_found("workspace", workspace_id)
        journal_from, ledger_from = store.outbox_positions(conn)
        store.insert_webhook(
            conn,
            {
                "id": webhook_id,
                "workspace_id": workspace_id,
                "node_id": node_id,
                "url": url,
                "description": description,
                "events": orjson.dumps(events).decode(),
                "secret": box.seal({"secret": secret}),
                "enabled": enabled,
                "journal_from": journal_from,
                "ledger_from": ledger_from,
                "created_at": at,
                "updated_at": at,
            },
        )
    return get_webhook(db, workspace_id, webhook_id), secret


def _load(db: Database, workspace_id: str, webhook_id: str) -> Any:
    with db.read() as conn:
        row = store.get_webhook(conn, workspace_id, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    return row


def get_webhook(db: Database, workspace_id: str, webhook_id: str) -> dict[str, Any]:
    return render(_load(db, workspace_id, webhook_id))


def list_webhooks(db: Database, workspace_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [render(r) for r in store.list_webhooks(conn, workspace_id)]


def update_webhook(
    db: Database, workspace_id: str, webhook_id: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change ``url``, ``events``, ``node``, ``description`` or ``enabled``."""
    _load(db, workspace_id, webhook_id)
    values: dict[str, Any] = {"updated_at": now_ms()}
    if "url" in changes:
        values["url"] = _check_url(str(changes["url"]))
    if "events" in changes:
        values["events"] = orjson.dumps(_check_events(list(changes["events"]))).decode()
    if "node" in changes:
        values["node_id"] = _check_node(db, workspace_id, changes["node"])
    if "description" in changes:
        values["description"] = str(changes["description"])
    if "enabled" in changes:
        values["enabled"] = bool(changes["enabled"])
    with db.write() as conn:
        store.update_webhook(conn, webhook_id, values)
    return get_webhook(db, workspace_id, webhook_id)


def rotate_secret(
    db: Database, box: SecretBox, workspace_id: str, webhook_id: str
) -> tuple[dict[str, Any], str]:
    """A new signing secret (shown once); deliveries signed from now on use it."""
    _load(db, workspace_id, webhook_id)
    secret = new_secret()
    with db.write() as conn:
        store.update_webhook(
            conn, webhook_id, {"secret": box.seal({"secret": secret}), "updated_at": now_ms()}
        )
    return get_webhook(db, workspace_id, webhook_id), secret


def delete_webhook(db: Database, workspace_id: str, webhook_id: str) -> None:
    """Delete a webhook with its deliveries and their log."""
    _load(db, workspace_id, webhook_id)
    with db.write() as conn:
        store.delete_webhook(conn, webhook_id)


# --- background loops ----------------------------------------------------------------------------

Loop = Callable[[threading.Event], None]


def poll_loop(
    name: str, tick: Callable[[], int], poll_s: float, on_exit: Callable[[], None] | None = None
) -> Loop:
    """A loop that calls ``tick`` until stopped; it waits ``poll_s`` when a tick found no work,
    and after an error (logged; the outbox and the queue keep the work for the next tick)."""

    def loop(stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    busy = tick()
                except Exception:
                    log.exception("background tick failed", extra={"action": f"{name}.error"})
                    busy = 0
                if not busy:
                    stop.wait(poll_s)
        finally:
            if on_exit is not None:
                on_exit()

    return loop


def webhook_loops(db: Database, settings: Settings) -> list[tuple[str, Loop]]:
    """The background jobs of webhooks: fan-out, delivery and inbound processing."""
    from contactsync.notify.delivery import Deliverer
    from contactsync.notify.outbox import fan_out
    from contactsync.sync.inbound import InboundProcessor
    from contactsync.sync.sources import SyncEnv

    config = WebhookConfig.from_settings(settings)
    box = SecretBox.from_settings(settings)
    deliverer = Deliverer(db, box, config)
    inbound = InboundProcessor(SyncEnv(db, box), config)
    return [
        ("webhooks.fanout", poll_loop("webhooks.fanout", lambda: fan_out(db), config.poll_s)),
        ("webhooks.deliver", poll_loop("webhooks.deliver", deliverer.tick, config.poll_s, deliverer.close)),
        ("webhooks.inbound", poll_loop("webhooks.inbound", inbound.tick, config.poll_s)),
    ]


def _register() -> None:
    from contactsync.scheduling.background import register_loops

    register_loops(webhook_loops)


_register()  # imported by scheduling.background.load_modules: serve and worker run the loops
