"""Sending webhook deliveries: signed POSTs, retries with backoff, the delivery log, redelivery.

Delivery state lives in the database, never only in memory: a delivery is claimed with a
lease (its next attempt moves past the request's timeout), sent, and its outcome written with
the attempt's log row. A process that dies mid-attempt leaves the delivery to be retried when
the lease ends, so a restart continues where it stopped: delivery is at-least-once, and the
event id lets a receiver drop a duplicate.

Retries: after a failure (no answer, or not 2xx) the next attempt waits ``backoff_s`` x
2^(attempts-1), capped at ``backoff_max_s``, ±20 % jitter, until ``retry_hours`` after the
delivery was created (or redelivered); the last attempt falls on that deadline, then the
delivery is ``failed`` (E732) until someone redelivers it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from sqlalchemy.engine import Row

from contactsync import __version__
from contactsync.errors import FieldProblem, invalid, not_found
from contactsync.hub.times import format_time, now_ms
from contactsync.notify.webhooks import DeliveryStatus, WebhookConfig, sign
from contactsync.secrets import SecretBox
from contactsync.store import webhooks as store
from contactsync.store.db import Database

log = logging.getLogger("contactsync.webhooks")

RESPONSE_EXCERPT = 1024  # characters of the receiver's answer kept in the log


def backoff_ms(config: WebhookConfig, attempts: int, rand: Callable[[], float] = random.random) -> int:
    """The wait after the ``attempts``-th failed attempt, with ±20 % jitter."""
    delay = min(config.backoff_max_s, config.backoff_s * 2 ** max(attempts - 1, 0))
    return int(delay * 1000 * (0.8 + 0.4 * rand()))


class Deliverer:
    """Sends due deliveries; :meth:`tick` is one pass of the delivery loop.

    ``clock`` (epoch ms) and ``http`` are seams for tests.
    """

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        config: WebhookConfig,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.box = box
        self.config = config
        self.http = http or httpx.Client(follow_redirects=False)
        self.clock = clock

    def tick(self) -> int:
        """Attempt the deliveries that are due; returns how many were attempted."""
        now = self.clock()
        lease_until = now + int((self.config.timeout_s * 2 + 30) * 1000)
        with self.db.read() as conn:
            if not store.any_due(conn, now):
                return 0
        with self.db.write() as conn:
            rows = store.claim_due(conn, now, lease_until, self.config.concurrency * 4)
        if not rows:
            return 0
        if len(rows) == 1 or self.config.concurrency == 1:
            for row in rows:
                self._attempt(row)
        else:
            with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="webhook") as pool:
                list(pool.map(self._attempt, rows))
        return len(rows)

    def _attempt(self, row: Row[Any]) -> None:
        body = row.body.encode()
        timestamp = self.clock() // 1000
        secret = self.box.open(row.secret)["secret"]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"contactsync/{__version__}",
            "X-Contactsync-Event-Id": row.event_id,
            "X-Contactsync-Event-Type": row.event_type,
            "X-Contactsync-Delivery-Id": row.id,
            "X-Contactsync-Timestamp": str(timestamp),
            "X-Contactsync-Signature": sign(secret, timestamp, body),
        }
        started = time.monotonic()
        status_code: int | None = None
        response: str | None = None
        error: str | None = None
        try:
            answer = self.http.post(row.url, content=body, headers=headers, timeout=self.config.timeout_s)
            status_code = answer.status_code
            response = answer.text[:RESPONSE_EXCERPT]
            if not 200 <= status_code < 300:
                error = f"the receiver answered HTTP {status_code}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:RESPONSE_EXCERPT]
        duration = int((time.monotonic() - started) * 1000)
        at = self.clock()
        values = self._outcome(row, at, status_code, error)
        attempt = {
            "at": at,
            "status_code": status_code,
            "error": error,
            "response": response,
            "duration_ms": duration,
        }
        with self.db.write() as conn:
            store.record_attempt(conn, row.id, attempt, values)
        log.info(
            "webhook delivery attempt",
            extra={
                "action": "webhooks.attempt",
                "delivery_id": row.id,
                "status": values["status"],
                "status_code": status_code,
            },
        )

    def _outcome(self, row: Row[Any], at: int, status_code: int | None, error: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {"last_attempt_at": at, "last_status_code": status_code, "last_error": error}
        if error is None:
            return {
                **values,
                "status": DeliveryStatus.DELIVERED.value,
                "next_attempt_at": None,
                "delivered_at": at,
                "error_code": None,
            }
        deadline = int(row.retry_from + self.config.retry_hours * 3_600_000)
        if at >= deadline:
            return {
                **values,
                "status": DeliveryStatus.FAILED.value,
                "next_attempt_at": None,
                "error_code": "E732",
            }
        wait = backoff_ms(self.config, int(row.attempts) + 1)
        return {**values, "status": DeliveryStatus.PENDING.value, "next_attempt_at": min(at + wait, deadline)}

    def close(self) -> None:
        self.http.close()


# --- the delivery log ---------------------------------------------------------------------------


def render(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhookId": row.webhook_id,
        "url": row.url,
        "eventId": row.event_id,
        "eventType": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "createdAt": format_time(row.created_at),
        "nextAttemptAt": format_time(row.next_attempt_at),
        "lastAttemptAt": format_time(row.last_attempt_at),
        "lastStatusCode": row.last_status_code,
        "errorCode": row.error_code,
        "lastError": row.last_error,
        "deliveredAt": format_time(row.delivered_at),
    }


def _render_attempt(row: Row[Any]) -> dict[str, Any]:
    return {
        "at": format_time(row.at),
        "statusCode": row.status_code,
        "error": row.error,
        "response": row.response,
        "durationMs": row.duration_ms,
    }


def list_deliveries(
    db: Database,
    workspace_id: str,
    *,
    webhook_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        names = ", ".join(s.value for s in DeliveryStatus)
        raise invalid([FieldProblem("status", f"unknown status {status!r}; statuses: {names}", "E200")])
    with db.read() as conn:
        rows = store.list_deliveries(conn, workspace_id, webhook_id=webhook_id, status=status, limit=limit)
    return [render(r) for r in rows]


def get_delivery(db: Database, workspace_id: str, delivery_id: str) -> dict[str, Any]:
    """A delivery with its payload and every attempt (time, status code, answer excerpt)."""
    with db.read() as conn:
        row = store.get_delivery(conn, workspace_id, delivery_id)
        if row is None:
            raise not_found("delivery", delivery_id)
        attempts = store.attempts_of(conn, delivery_id)
    return {**render(row), "payload": orjson.loads(row.body), "log": [_render_attempt(a) for a in attempts]}


def redeliver(db: Database, workspace_id: str, delivery_id: str, *, now: int | None = None) -> dict[str, Any]:
    """Send a delivery again as soon as the delivery loop runs, whatever its status; it gets a
    new retry window. The payload and the event id are the original ones."""
    at = now if now is not None else now_ms()
    with db.write() as conn:
        if store.get_delivery(conn, workspace_id, delivery_id) is None:
            raise not_found("delivery", delivery_id)
        store.update_delivery(
            conn,
            delivery_id,
            {
                "status": DeliveryStatus.PENDING.value,
                "next_attempt_at": at,
                "retry_from": at,
                "error_code": None,
            },
        )
    return get_delivery(db, workspace_id, delivery_id)
