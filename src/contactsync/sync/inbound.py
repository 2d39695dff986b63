"""Inbound provider webhooks: authenticate, refuse replays and stale events, queue, process.

``POST /webhooks/{provider}/{source_id}`` reaches :func:`receive`, which only checks and
stores (so the provider gets its answer in milliseconds); :class:`InboundProcessor` takes the
queued events in the background and turns them into targeted pulls
(:mod:`contactsync.sync.targeted`): the hub never takes a value from the webhook itself, only
from the provider's current record.

* **Authentication**: providers do not sign their list webhooks, so each source gets a secret
  token, put in the URL registered with the provider (``?token=…``) or sent in the
  ``X-Contactsync-Token`` header (or ``Authorization: Bearer``). Only its SHA-256 is stored;
  the comparison is constant-time. A wrong token stores nothing (E720).
* **Replays**: each event is keyed by the provider's event id, or by a hash of the body when
  the provider gives none (Mailchimp's body holds ``fired_at``, so two real events differ).
  The key is unique per source: a second copy is refused (E722) and changes nothing.
* **Stale events**: an event whose timestamp is more than ``inbound_max_age_s`` away from now
  (10 minutes by default) is refused (E723).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy.engine import Row

from contactsync.errors import (
    AuthError,
    ConflictError,
    ContactsyncError,
    FieldProblem,
    InputError,
    invalid,
    not_found,
)
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms, parse_time
from contactsync.notify.webhooks import WebhookConfig
from contactsync.store import sync as sync_store
from contactsync.store import webhooks as store
from contactsync.sync import sources, targeted
from contactsync.sync.sources import SyncEnv

log = logging.getLogger("contactsync.webhooks")

TOKEN_PREFIX = "csin_"  # noqa: S105 - a prefix, not a secret
MAX_BODY = 1_000_000  # bytes of an inbound event
MAX_ATTEMPTS = 10  # processing attempts of an event whose pull keeps failing
BUSY_RETRY_MS = 2000  # a run of the source is in progress: look again this much later
LEASE_MS = 10 * 60 * 1000


class InboundStatus(StrEnum):
    QUEUED = "queued"
    PROCESSED = "processed"
    IGNORED = "ignored"  # nothing to pull, or the source is disabled
    FAILED = "failed"


# --- tokens ---------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_token(env: SyncEnv, workspace_id: str, ref: str, public_url: str) -> dict[str, Any]:
    """A new inbound token for a source (the old one stops working); returns it once, with the
    URL to register with the provider."""
    source = _source_row(env, workspace_id, ref)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with env.db.write() as conn:
        store.set_inbound_token(
            conn,
            {
                "source_id": source.id,
                "token_hash": _hash(token),
                "prefix": token[:10],
                "created_at": now_ms(),
            },
        )
    path = f"/webhooks/{source.provider}/{source.id}"
    return {
        "sourceId": source.id,
        "provider": source.provider,
        "token": token,
        "url": f"{public_url.rstrip('/')}{path}?token={token}",
    }


def authenticate(env: SyncEnv, provider: str, source_id: str, token: str | None) -> None:
    """Refuse (E720) unless ``token`` is the source's inbound token and the provider matches."""
    given = _hash(token or "")
    with env.db.read() as conn:
        source = sync_store.get_source_by_id(conn, source_id)
        row = store.inbound_token(conn, source_id) if source is not None else None
    expected = row.token_hash if row is not None else _hash(secrets.token_urlsafe(32))
    valid = hmac.compare_digest(given, expected)
    if not (valid and token and source is not None and source.provider == provider):
        raise AuthError(
            "this webhook URL has no valid token for the source: register the URL given when "
            "the source's webhook token was made",
            code="E720",
        )


# --- parsing ----------------------------------------------------------------------------------


@dataclass
class ParsedEvent:
    type: str
    remote_ids: list[str]
    fired_at: int | None = None  # epoch ms, when the provider sends a time
    event_id: str | None = None  # the provider's own id, when it sends one
    # the address a remote id stands for, when the provider's record id is not that key
    # (Mailchimp: the subscriber hash; the link is keyed by contact_id): see sync.targeted
    emails: dict[str, str] = field(default_factory=dict)


def _bad(message: str) -> InputError:
    return invalid([FieldProblem("body", message, "E721")], message)


def _mailchimp_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address (its ``subscriber_hash``)."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def parse_mailchimp(body: bytes, content_type: str) -> ParsedEvent:
    """A Mailchimp list webhook: form fields ``type``, ``fired_at`` (UTC), ``data[...]``."""
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise _bad("not a form-encoded Mailchimp event") from None
    kind = form.get("type")
    if not kind:
        raise _bad("a Mailchimp event needs a `type` field")
    fired_at = None
    if form.get("fired_at"):
        try:
            fired = datetime.strptime(form["fired_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise _bad(f"fired_at {form['fired_at']!r} is not YYYY-MM-DD HH:MM:SS") from None
        fired_at = int(fired.timestamp() * 1000)
    addresses = [form.get(k, "") for k in ("data[email]", "data[old_email]", "data[new_email]")]
    emails = {_mailchimp_hash(e): e.strip().lower() for e in addresses if e.strip()}
    return ParsedEvent(kind, list(emails), fired_at, emails=emails)


def parse_json(body: bytes, content_type: str) -> ParsedEvent:
    """The generic format, for providers without webhooks of their own (a database trigger, a
    script): ``{"id", "type", "firedAt" (ISO 8601 or epoch ms), "remoteIds": [...]}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("not a JSON object") from None
    if not isinstance(data, dict):
        raise _bad("not a JSON object")
    ids = data.get("remoteIds")
    if ids is None and data.get("remoteId") is not None:
        ids = [data["remoteId"]]
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids):
        raise _bad("`remoteIds` must be a list of the provider's record ids")
    fired_at = None
    if data.get("firedAt") is not None:
        try:
            fired_at = parse_time(data["firedAt"])
        except ValueError:
            raise _bad("`firedAt` must be an ISO 8601 time or epoch milliseconds") from None
    event_id = str(data["id"]) if data.get("id") is not None else None
    return ParsedEvent(str(data.get("type") or "changed"), [str(i) for i in ids], fired_at, event_id)


PARSERS: dict[str, Callable[[bytes, str], ParsedEvent]] = {"mailchimp": parse_mailchimp}


def parse(provider: str, body: bytes, content_type: str) -> ParsedEvent:
    return PARSERS.get(provider, parse_json)(body, content_type)


# --- receiving ----------------------------------------------------------------------------------


def receive(
    env: SyncEnv,
    config: WebhookConfig,
    provider: str,
    source_id: str,
    token: str | None,
    body: bytes,
    content_type: str = "",
    *,
    now: int | None = None,
) -> dict[str, Any]:
    """Check and queue one inbound event; nothing is stored unless every check passes."""
    authenticate(env, provider, source_id, token)
    if len(body) > MAX_BODY:
        raise _bad(f"the event is larger than {MAX_BODY} bytes")
    event = parse(provider, body, content_type)
    at = now if now is not None else now_ms()
    if event.fired_at is not None and abs(at - event.fired_at) > config.inbound_max_age_s * 1000:
        raise InputError(
            f"the event was fired at {format_time(event.fired_at)}, more than "
            f"{config.inbound_max_age_s:g} s from now: refused as stale",
            code="E723",
        )
    key = event.event_id or "sha256:" + hashlib.sha256(body).hexdigest()
    status = InboundStatus.QUEUED if event.remote_ids else InboundStatus.IGNORED
    event_row_id = new_id()
    with env.db.write() as conn:
        stored = store.insert_inbound_event(
            conn,
            {
                "id": event_row_id,
                "source_id": source_id,
                "event_key": key[:128],
                "event_type": event.type[:64],
                "fired_at": event.fired_at,
                "received_at": at,
                "remote_ids": orjson.dumps(event.remote_ids).decode(),
                "payload": body.decode(errors="replace"),
                "status": status,
                "attempts": 0,
                "next_attempt_at": at if status == InboundStatus.QUEUED else None,
                "processed_at": None if status == InboundStatus.QUEUED else at,
            },
        )
    if not stored:
        raise ConflictError("this event was received before; the replay is ignored", code="E722")
    return {"id": event_row_id, "status": status, "type": event.type}


# --- processing -------------------------------------------------------------------------------


class InboundProcessor:
    """Takes queued events and pulls their records, one targeted pull per source per tick."""

    def __init__(
        self, env: SyncEnv, config: WebhookConfig, *, clock: Callable[[], int] = now_ms, batch: int = 200
    ) -> None:
        self.env = env
        self.config = config
        self.clock = clock
        self.batch = batch

    def tick(self) -> int:
        now = self.clock()
        with self.env.db.read() as conn:
            if not store.any_inbound_due(conn, now):
                return 0
        with self.env.db.write() as conn:
            rows = store.claim_inbound(conn, now, now + LEASE_MS, self.batch)
        by_source: dict[str, list[Row[Any]]] = defaultdict(list)
        for row in rows:
            by_source[row.source_id].append(row)
        for source_id, events in by_source.items():
            self._process(source_id, events)
        return len(rows)

    def _process(self, source_id: str, events: Sequence[Row[Any]]) -> None:
        ids = [e.id for e in events]
        remote_ids = [rid for e in events for rid in orjson.loads(e.remote_ids)]
        try:
            with self.env.db.read() as conn:
                row = sync_store.get_source_by_id(conn, source_id)
            if row is None:  # deleted meanwhile (its events go with it)
                return
            source = sources.get_source(self.env, row.workspace_id, source_id)
            if not source.enabled:
                self._finish(ids, InboundStatus.IGNORED, "E406", "the source is disabled")
                return
            emails = {k: v for e in events for k, v in _emails(row.provider, e.payload).items()}
            result = targeted.pull(self.env, source, remote_ids, emails=emails)
        except ContactsyncError as e:
            if e.code == "E404":  # a run of the source is in progress: after it
                self._later(events, BUSY_RETRY_MS, count=False, code=e.code, error=e.message)
            else:
                self._retry_or_fail(events, e.code, e.message)
            return
        if result.status == "succeeded":
            self._finish(ids, InboundStatus.PROCESSED, None, None, run_id=result.run_id)
        else:
            self._retry_or_fail(events, result.error_code or "E999", result.error or "", run_id=result.run_id)

    def _finish(
        self,
        ids: Sequence[str],
        status: str,
        code: str | None,
        error: str | None,
        *,
        run_id: str | None = None,
    ) -> None:
        values = {
            "status": status,
            "processed_at": self.clock(),
            "next_attempt_at": None,
            "error_code": code,
            "error": error,
            "run_id": run_id,
        }
        with self.env.db.write() as conn:
            store.update_inbound(conn, ids, values)

    def _retry_or_fail(
        self, events: Sequence[Row[Any]], code: str, error: str, *, run_id: str | None = None
    ) -> None:
        attempts = max(int(e.attempts) for e in events) + 1
        if attempts >= MAX_ATTEMPTS:
            self._finish([e.id for e in events], InboundStatus.FAILED, code, error, run_id=run_id)
            log.warning("inbound event failed", extra={"action": "webhooks.inbound_failed", "code": code})
            return
        wait = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempts - 1))
        self._later(events, int(wait * 1000), count=True, code=code, error=error, run_id=run_id)

    def _later(
        self,
        events: Sequence[Row[Any]],
        wait_ms: int,
        *,
        count: bool,
        code: str,
        error: str,
        run_id: str | None = None,
    ) -> None:
        with self.env.db.write() as conn:
            for e in events:
                values = {"next_attempt_at": self.clock() + wait_ms, "error_code": code, "error": error}
                if count:
                    values["attempts"] = int(e.attempts) + 1
                if run_id:
                    values["run_id"] = run_id
                store.update_inbound(conn, [e.id], values)


def _emails(provider: str, payload: str) -> dict[str, str]:
    """The addresses a queued event's remote ids stand for, read again from its stored body."""
    try:
        return parse(provider, payload.encode(), "").emails
    except InputError:
        return {}


def render(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "sourceId": row.source_id,
        "type": row.event_type,
        "status": row.status,
        "firedAt": format_time(row.fired_at),
        "receivedAt": format_time(row.received_at),
        "processedAt": format_time(row.processed_at),
        "remoteIds": orjson.loads(row.remote_ids),
        "attempts": row.attempts,
        "runId": row.run_id,
        "errorCode": row.error_code,
        "error": row.error,
    }


def list_events(env: SyncEnv, workspace_id: str, ref: str, limit: int = 100) -> list[dict[str, Any]]:
    """The source's latest inbound events, newest first."""
    source = _source_row(env, workspace_id, ref)
    with env.db.read() as conn:
        return [render(r) for r in store.list_inbound(conn, source.id, limit)]


def _source_row(env: SyncEnv, workspace_id: str, ref: str) -> Row[Any]:
    """The source's row (its credentials stay sealed: nothing here needs them)."""
    with env.db.read() as conn:
        row = sync_store.get_source(conn, workspace_id, ref)
    if row is None:
        raise not_found("source", ref)
    return row
