"""Double opt-in: the confirmation request, its email, and the click that confirms it.

A request is opened in the subscribe transaction: the subscriptions are ``pending`` and a
row holds the SHA-256 of a random link token (the token itself only travels in the email;
until the email is out it is also kept sealed with the secret keys, so that a retry can
rebuild the link). The email is sent after the commit, on a sender thread, so a subscribe
never waits for SMTP; if the server is down the row stays unsent and :func:`send_due`
(run by the background loop of :func:`optin_loops`) retries it with backoff until the link
expires.

Confirming is single-use: the first click moves the subscriptions to ``subscribed`` with a
``DOUBLE_OPT_IN`` evidence (time, IP, user agent, webform code) in the consent ledger; a
replay changes nothing. A tampered, expired or withdrawn link is refused before any write.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Row

from contactsync.errors import ConflictError, ContactsyncError, InputError
from contactsync.hub import customers as hub_customers
from contactsync.hub.consent import EvidenceKind, Status
from contactsync.hub.context import WriteContext
from contactsync.hub.document import parse_customer
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_node, load_workspace
from contactsync.notify.email import send_email
from contactsync.scheduling.background import register_loops
from contactsync.secrets import SecretBox
from contactsync.settings import Settings
from contactsync.store import customers as customer_store
from contactsync.store import optin as store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

log = logging.getLogger("contactsync.optin")

CONFIRM_PATH = "/confirm/"
LEASE_MS = 120_000  # a sender owns an unsent email this long before the loop may take it over
FIRST_RETRY_MS = 30_000
MAX_RETRY_MS = 3_600_000
LOOP_INTERVAL_S = 10.0
_MAX_TOKEN = 128


@dataclass(frozen=True)
class Target:
    """Who is asked to confirm what: a customer of a node and the subscriptions waiting."""

    workspace_id: str
    node_id: str
    customer_id: str
    email: str
    subscription_ids: tuple[str, ...]


@dataclass(frozen=True)
class Opened:
    id: str
    expires_at: int

    def as_json(self) -> dict[str, Any]:
        return {"requestId": self.id, "emailQueued": True, "expiresAt": format_time(self.expires_at)}


@dataclass(frozen=True)
class Confirmation:
    request_id: str
    customer_id: str
    email: str
    subscription_ids: tuple[str, ...]
    language: str
    already: bool  # the link had been used before: nothing changed
    statuses: dict[str, str | None]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def confirm_url(settings: Settings, token: str) -> str:
    return settings.effective_public_url().rstrip("/") + CONFIRM_PATH + token


# --- opening a request and sending its email --------------------------------------------------


def open_request(
    conn: Connection,
    settings: Settings,
    target: Target,
    ctx: WriteContext,
    *,
    language: str,
    webform_code: str | None,
    at: int,
) -> tuple[Opened, str]:
    """Store a confirmation request in the caller's transaction; returns it and its link token."""
    token = secrets.token_urlsafe(32)
    request_id = new_id()
    expires_at = at + int(settings.optin_expiry_hours * 3_600_000)
    row = {
        "id": request_id,
        "workspace_id": target.workspace_id,
        "node_id": target.node_id,
        "customer_id": target.customer_id,
        "email": target.email,
        "subscription_ids": orjson.dumps(list(target.subscription_ids)).decode(),
        "token_hash": _hash(token),
        "token_sealed": SecretBox.from_settings(settings).seal({"token": token}),
        "language": language,
        "origin": ctx.origin,
        "actor": ctx.actor,
        "webform_code": webform_code,
        "ip": ctx.ip,
        "user_agent": (ctx.user_agent or "")[:512] or None,
        "created_at": at,
        "expires_at": expires_at,
        "email_sent_at": None,
        "attempts": 0,
        "next_attempt_at": now_ms() + LEASE_MS,  # owned by the sender thread for now
        "last_error": None,
        "confirmed_at": None,
        "confirm_ip": None,
        "confirm_user_agent": None,
        "closed_at": None,
    }
    store.insert_request(conn, row)
    return Opened(request_id, expires_at), token


_sender: ThreadPoolExecutor | None = None
_sender_lock = threading.Lock()


def send_soon(db: Database, settings: Settings, request_id: str, token: str) -> None:
    """Send a new request's email on a sender thread; a failure leaves it to :func:`send_due`."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = ThreadPoolExecutor(max_workers=2, thread_name_prefix="optin-email")
        _sender.submit(_send_quietly, db, settings, request_id, token)


def _send_quietly(db: Database, settings: Settings, request_id: str, token: str) -> None:
    try:
        with db.read() as conn:
            row = store.get_request(conn, request_id)
        if row is not None:
            _deliver(db, settings, row, token)
    except Exception:  # the loop retries it; a sender thread must never die with an error
        log.exception("confirmation email not sent", extra={"action": "optin.send_error"})


def send_due(db: Database, settings: Settings, *, now: int | None = None, limit: int = 100) -> int:
    """(Re)send the confirmation emails that are due; returns how many went out."""
    at = now if now is not None else now_ms()
    with db.read() as conn:
        due = [r.id for r in store.due_emails(conn, at, limit)]
    box = SecretBox.from_settings(settings)
    sent = 0
    for request_id in due:
        with db.write() as conn:
            row = store.claim_email(conn, request_id, at, at + LEASE_MS)
        if row is None or not row.token_sealed:
            continue
        token = box.open(row.token_sealed)["token"]
        sent += _deliver(db, settings, row, token, at=at)
    return sent


def _deliver(db: Database, settings: Settings, row: Row[Any], token: str, *, at: int | None = None) -> bool:
    subject, text, html = confirmation_email(settings, row, token)
    try:
        send_email(settings, [row.email], subject, text, html=html)
    except ContactsyncError as e:
        delay = min(FIRST_RETRY_MS * 2 ** min(row.attempts, 20), MAX_RETRY_MS)
        with db.write() as conn:
            store.mark_failed(conn, row.id, (at or now_ms()) + delay, f"{e.code}: {e.message}")
        log.warning(
            "confirmation email not sent: %s; retried in %d s",
            e,
            delay // 1000,
            extra={"action": "optin.send_failed", "request": row.id},
        )
        return False
    with db.write() as conn:
        store.mark_sent(conn, row.id, now_ms())
    log.info("confirmation email sent", extra={"action": "optin.sent", "request": row.id})
    return True


def optin_loops(db: Database, settings: Settings) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The background loops of double opt-in: (name, function of a stop event)."""

    def resend(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                send_due(db, settings)
            except Exception:
                log.exception("confirmation email loop failed", extra={"action": "optin.loop_error"})
            stop.wait(LOOP_INTERVAL_S)

    return [("optin-email", resend)]


# --- the email --------------------------------------------------------------------------------

_EMAIL = {
    "en": {
        "subject": "Please confirm your subscription",
        "text": (
            "Hello,\n\nwe received a request to subscribe {email} to: {lists}.\n"
            "To confirm, open this link:\n\n{url}\n\n"
            "The link is valid until {expires}. If you did not ask for this, ignore this email: "
            "you will not be subscribed.\n"
        ),
        "button": "Confirm my subscription",
    },
    "it": {
        "subject": "Conferma la tua iscrizione",
        "text": (
            "Ciao,\n\nabbiamo ricevuto una richiesta di iscrizione di {email} a: {lists}.\n"
            "Per confermare, apri questo link:\n\n{url}\n\n"
            "Il link è valido fino al {expires}. Se non hai fatto tu questa richiesta, ignora questa "
            "email: non verrai iscritto.\n"
        ),
        "button": "Conferma l'iscrizione",
    },
}


def confirmation_email(settings: Settings, row: Row[Any], token: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a request's confirmation email."""
    from html import escape

    words = _EMAIL.get(row.language, _EMAIL["en"])
    url = confirm_url(settings, token)
    values = {
        "email": row.email,
        "lists": ", ".join(orjson.loads(row.subscription_ids)),
        "url": url,
        "expires": (format_time(row.expires_at) or "")[:16].replace("T", " ") + " UTC",
    }
    text = words["text"].format(**values)
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip() and p.strip() != url)
    html = (
        f'<!doctype html><html lang="{row.language}"><body>{paragraphs}'
        f'<p><a href="{escape(url)}">{escape(words["button"])}</a></p></body></html>'
    )
    return words["subject"], text, html


# --- confirming -------------------------------------------------------------------------------


def confirm(
    db: Database, token: str, *, ip: str | None, user_agent: str | None, now: int | None = None
) -> Confirmation:
    """Confirm the request of a link token: its pending subscriptions become ``subscribed``.

    Raises InputError E700 (unknown or altered token), E701 (expired) and ConflictError E702
    (withdrawn); none of them writes anything. A link used before answers ``already=True``.
    """
    if not token or len(token) > _MAX_TOKEN:
        raise InputError("this confirmation link is not valid", code="E700")
    at = now if now is not None else now_ms()
    token_hash = _hash(token)
    with db.write() as conn:
        row = store.find_by_token_hash(conn, token_hash)
        if row is None:
            raise InputError("this confirmation link is not valid", code="E700")
        sids = tuple(orjson.loads(row.subscription_ids))
        if row.confirmed_at is not None:
            return _result(conn, row, sids, already=True)
        if row.closed_at is not None:
            raise ConflictError(
                "this subscription request was withdrawn", code="E702", data={"language": row.language}
            )
        if at >= row.expires_at:
            raise InputError(
                f"this confirmation link expired at {format_time(row.expires_at)}",
                code="E701",
                data={"language": row.language},
            )
        ws = load_workspace(conn, row.workspace_id)
        node = load_node(conn, row.workspace_id, row.node_id)
        customer = customer_store.get(conn, ws.id, row.customer_id, for_update=True)
        if customer is None:
            raise ConflictError(
                "the customer of this request was removed", code="E702", data={"language": row.language}
            )
        if not store.claim_confirmation(conn, row.id, at, ip, (user_agent or "")[:512] or None):
            return _result(conn, row, sids, already=True)  # a concurrent click got there first
        evidence = _evidence(row, at, ip, user_agent)
        body = hub_customers.body_of(customer)
        body.setdefault("base", {})["subscriptions"] = [
            {"id": sid, "status": Status.SUBSCRIBED.value, "consentEvidence": dict(evidence)} for sid in sids
        ]
        doc = parse_customer(body, ws.extended_schema)
        for item in doc.subscriptions or []:  # what the ledger keeps beside the checked evidence
            item["consentEvidence"] = {
                **item["consentEvidence"],
                "optinRequestId": row.id,
                "requestedAt": format_time(row.created_at),
                "requestOrigin": row.origin,
                "requestIp": row.ip,
                "requestUserAgent": row.user_agent,
            }
            if row.webform_code:
                item["webformCode"] = row.webform_code
        ctx = WriteContext(origin=row.origin, actor="double-opt-in", ip=ip, user_agent=user_agent)
        hub_customers.write_doc(conn, ws, node, doc, ctx, customer)
        return _result(conn, row, sids, already=False)


def _evidence(row: Row[Any], at: int, ip: str | None, user_agent: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": EvidenceKind.DOUBLE_OPT_IN.value, "date": format_time(at)}
    if ip:
        out["ip"] = ip[:64]
    if user_agent:
        out["userAgent"] = user_agent[:512]
    if row.webform_code:
        out["webformCode"] = row.webform_code
    return out


def _result(conn: Connection, row: Row[Any], sids: tuple[str, ...], *, already: bool) -> Confirmation:
    current = {
        s.subscription_id: s.status
        for s in sub_store.for_customers(conn, [row.customer_id]).get(row.customer_id, [])
    }
    return Confirmation(
        row.id,
        row.customer_id,
        row.email,
        sids,
        row.language,
        already,
        {sid: current.get(sid) for sid in sids},
    )


def describe(row: Row[Any]) -> dict[str, Any]:
    """A confirmation request as the API shows it (never its token)."""
    return {
        "requestId": row.id,
        "subscriptions": orjson.loads(row.subscription_ids),
        "createdAt": format_time(row.created_at),
        "expiresAt": format_time(row.expires_at),
        "emailSentAt": format_time(row.email_sent_at),
        "attempts": row.attempts,
        "lastError": row.last_error,
        "confirmedAt": format_time(row.confirmed_at),
        "closedAt": format_time(row.closed_at),
    }


register_loops(optin_loops)  # `contactsync serve` and `contactsync worker` run the resend loop
