"""Real-time subscribe, unsubscribe, status and cancel of one email address in one node.

The operations of seed 003's real-time API, over the hub's customer writes: each one finds
the customer of the node by email (creating it on subscribe), goes through the consent rules
(:mod:`hub.consent`) and the change journal in one transaction, and records who asked in
the consent ledger. A double opt-in subscribe leaves the subscriptions ``pending`` and opens
a confirmation request (:mod:`hub.optin`) whose email is sent after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Row

from contactsync.errors import ConfigError, ConflictError, FieldProblem, NotFoundError, invalid
from contactsync.hub import customers as hub_customers
from contactsync.hub import optin
from contactsync.hub import subscriptions as subs
from contactsync.hub.consent import Reason, Status
from contactsync.hub.context import WriteContext
from contactsync.hub.document import EMAIL_RE, merge_patch, normalise_email, parse_customer
from contactsync.hub.sync_writes import find
from contactsync.hub.times import now_ms
from contactsync.hub.workspaces import (
    Node,
    UniquenessPolicy,
    Workspace,
    load_node,
    load_workspace,
    node_from_row,
    require_writable,
    workspace_from_row,
)
from contactsync.settings import Settings
from contactsync.store import customers as store
from contactsync.store import lookups
from contactsync.store import optin as optin_store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

T = TypeVar("T")
EMAIL_PATH = "base.contacts.email"
LANGUAGES = ("en", "it")
_PROFILE_KEYS = ("externalId", "base", "extended", "extra", "tags", "consents")


@dataclass(frozen=True)
class SubscribeRequest:
    """What a subscribe call asks for.

    ``profile`` is a customer body fragment (``base``, ``extended``, ``tags``…) merged onto
    the customer as a JSON merge patch when ``update_profile`` (else used only to create it).
    ``evidence`` is the consent evidence of a single opt-in (Contacthub's ``consentEvidence``).
    """

    node_id: str
    email: str
    subscription_ids: tuple[str, ...]
    profile: Mapping[str, Any] | None = None
    update_profile: bool = True
    double_opt_in: bool = False
    evidence: Mapping[str, Any] | None = None
    webform_code: str | None = None
    language: str = "en"


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    previous: str | None  # status before the call; None: the customer had no such subscription
    status: str | None  # status after the call
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "previousStatus": self.previous, "status": self.status, "reason": self.reason}


@dataclass
class Outcome:
    """The result of a subscribe / unsubscribe: the customer and each subscription's move."""

    customer_id: str
    email: str
    created: bool = False
    subscriptions: list[SubscriptionState] = field(default_factory=list)
    optin_request: optin.Opened | None = None

    @property
    def already_subscribed(self) -> bool:
        return all(s.previous == Status.SUBSCRIBED for s in self.subscriptions)

    @property
    def changed(self) -> bool:
        return any(s.previous != s.status for s in self.subscriptions)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "customerId": self.customer_id,
            "email": self.email,
            "created": self.created,
            "subscriptions": [s.as_json() for s in self.subscriptions],
        }
        if self.optin_request is not None:
            out["doubleOptIn"] = self.optin_request.as_json()
        return out


# --- checks -----------------------------------------------------------------------------------


def checked_email(value: Any, path: str = "email") -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid([FieldProblem(path, "an email address is required", "E206")])
    email = normalise_email(value)
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise invalid([FieldProblem(path, f"{email!r} is not a valid email address", "E201")])
    return email


def checked_subscription_ids(value: Any, path: str = "subscriptions") -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid([FieldProblem(path, "name at least one subscription system id", "E206")])
    out: list[str] = []
    for i, sid in enumerate(value):
        if not isinstance(sid, str) or not sid.strip() or len(sid) > 255:
            raise invalid(
                [FieldProblem(f"{path}.{i}", "a subscription system id is a 1-255 character string")]
            )
        if sid.strip() not in out:
            out.append(sid.strip())
    return tuple(out)


# --- operations -------------------------------------------------------------------------------


def subscribe(
    db: Database,
    settings: Settings,
    workspace_id: str,
    req: SubscribeRequest,
    ctx: WriteContext,
    *,
    now: int | None = None,
) -> Outcome:
    """Subscribe an address to subscription systems of a node, single or double opt-in.

    Single opt-in: each subscription becomes ``subscribed`` unless the consent rules keep it
    ``pending`` (the address opted out before and no newer consent evidence came with the
    call: reason ``REOPTIN_REQUIRED``). Double opt-in: the subscriptions not yet subscribed
    become ``pending`` and a confirmation email is queued; its link subscribes them.
    """
    email = checked_email(req.email)
    sids = checked_subscription_ids(list(req.subscription_ids))
    if req.profile is not None and not isinstance(req.profile, Mapping):
        raise invalid([FieldProblem("profile", "the profile is a customer object (base, extended, …)")])
    if req.double_opt_in and not settings.smtp_host:
        raise ConfigError(
            "double opt-in was asked for, but no SMTP server is configured to send the confirmation email",
            code="E703",
        )
    language = req.language if req.language in LANGUAGES else "en"
    at = now if now is not None else now_ms()

    def work(conn: Connection) -> tuple[Outcome, str | None]:
        ws, node = _target(conn, workspace_id, req.node_id)
        row = _find_customer(conn, ws, node, email, for_update=True)
        before = _statuses(conn, row.id) if row is not None else {}
        body = hub_customers.body_of(row) if row is not None else {}
        if req.profile and (row is None or req.update_profile):
            body = merge_patch(body, {k: v for k, v in req.profile.items() if k in _PROFILE_KEYS})
        body = merge_patch(body, {"base": {"contacts": {"email": email}}})
        items = []
        for sid in sids:
            current = before.get(sid)
            if req.double_opt_in:
                if current is not None and current.status == Status.SUBSCRIBED:
                    continue
                items.append({"id": sid, "status": Status.PENDING.value})
            else:
                item: dict[str, Any] = {"id": sid, "status": Status.SUBSCRIBED.value}
                if req.evidence:
                    item["consentEvidence"] = dict(req.evidence)
                items.append(item)
        body.setdefault("base", {})["subscriptions"] = items
        doc = parse_customer(body, ws.extended_schema)
        for item in doc.subscriptions or []:
            if req.webform_code:
                item["webformCode"] = req.webform_code
        # matched by email alone, the lookup above has shown that no customer holds the key
        free_key = email if row is None and _matched_by_email(ws) else None
        customer_id = hub_customers.write_doc(conn, ws, node, doc, ctx, row, free_key=free_key)
        if row is None:  # a new customer's subscriptions are as asked (consent reason NEW)
            after: Mapping[str, Any] = {i["id"]: Stored(i["status"], Reason.NEW.value) for i in items}
        else:
            after = _statuses(conn, customer_id)
        outcome = Outcome(customer_id, email, created=row is None)
        outcome.subscriptions = [_state(sid, before.get(sid), after.get(sid)) for sid in sids]
        token = None
        if req.double_opt_in:
            waiting = [sid for sid in sids if (s := after.get(sid)) and s.status == Status.PENDING]
            if waiting:
                opened, token = optin.open_request(
                    conn,
                    settings,
                    optin.Target(ws.id, node.id, customer_id, email, tuple(waiting)),
                    ctx,
                    language=language,
                    webform_code=req.webform_code,
                    at=at,
                )
                outcome.optin_request = opened
        return outcome, token

    outcome, token = _retrying(db, work)
    if outcome.optin_request is not None and token is not None:
        optin.send_soon(db, settings, outcome.optin_request.id, token)
    return outcome


def unsubscribe(
    db: Database,
    workspace_id: str,
    node_id: str,
    email: str,
    subscription_ids: Sequence[str],
    ctx: WriteContext,
    *,
    reason: str | None = None,
) -> Outcome:
    """Unsubscribe an address from subscription systems of a node (with a reason).

    Subscriptions the customer does not have stay absent (their state is reported as
    ``None``); an unknown address is a NotFoundError (E705).
    """
    email = checked_email(email)
    sids = checked_subscription_ids(list(subscription_ids))
    if reason is not None and (not isinstance(reason, str) or len(reason) > 64):
        raise invalid([FieldProblem("reason", "a reason is a string of up to 64 characters")])

    with db.read() as conn:
        ws, node = _target(conn, workspace_id, node_id)

    def work(conn: Connection) -> Outcome:
        row = _find_customer(conn, ws, node, email, for_update=True)
        if row is None:
            raise _unknown(email, node)
        before = _statuses(conn, row.id)
        body = hub_customers.body_of(row)
        body.setdefault("base", {})["subscriptions"] = [
            {"id": sid, "status": Status.UNSUBSCRIBED.value, "reason": reason or "UNSUBSCRIBE_REQUEST"}
            for sid in sids
            if sid in before
        ]
        hub_customers.write_doc(conn, ws, node, parse_customer(body, ws.extended_schema), ctx, row)
        after = _statuses(conn, row.id)
        outcome = Outcome(row.id, email)
        outcome.subscriptions = [_state(sid, before.get(sid), after.get(sid)) for sid in sids]
        return outcome

    return _retrying(db, work)


def status(db: Database, workspace_id: str, node_id: str, email: str) -> dict[str, Any]:
    """The address's customer id and its subscriptions (with status and reason)."""
    email = checked_email(email)
    with db.read() as conn:
        ws, node = _target(conn, workspace_id, node_id, writable=False)
        row = _find_customer(conn, ws, node, email)
        if row is None:
            raise _unknown(email, node)
        rows = sub_store.for_customers(conn, [row.id]).get(row.id, [])
        pending = optin_store.list_requests(conn, ws.id, customer_id=row.id, limit=20)
    return {
        "customerId": row.id,
        "email": email,
        "subscriptions": [subs.render(s) for s in rows],
        "doubleOptIn": [optin.describe(r) for r in pending],
    }


def cancel(db: Database, workspace_id: str, node_id: str, email: str, ctx: WriteContext) -> dict[str, Any]:
    """Remove the address's customer from the node (seed 003's "cancellation").

    Its open confirmation requests are withdrawn; the consent ledger keeps its rows.
    Returns the customer as it was.
    """
    email = checked_email(email)
    with db.write() as conn:
        ws, node = _target(conn, workspace_id, node_id)
        row = _find_customer(conn, ws, node, email, for_update=True)
        if row is None:
            raise _unknown(email, node)
        optin_store.close_for_customer(conn, row.id, now_ms())
        return hub_customers.delete_row(conn, ws, row, ctx)


# --- helpers ----------------------------------------------------------------------------------


def _target(
    conn: Connection, workspace_id: str, node_id: str, writable: bool = True
) -> tuple[Workspace, Node]:
    if not isinstance(node_id, str) or not node_id:
        raise invalid([FieldProblem("nodeId", "nodeId is required", "E206")])
    ws_row = lookups.workspace(conn, workspace_id)
    node_row = lookups.node(conn, workspace_id, node_id) if ws_row is not None else None
    if ws_row is None or node_row is None:  # answered by the usual loads, with their errors
        ws, node = load_workspace(conn, workspace_id), load_node(conn, workspace_id, node_id)
    else:
        ws, node = workspace_from_row(ws_row), node_from_row(node_row)
    if writable:
        require_writable(node)
    return ws, node


def _find_customer(
    conn: Connection, ws: Workspace, node: Node, email: str, for_update: bool = False
) -> Row[Any] | None:
    if _matched_by_email(ws):  # the node's unique matching-key index answers in one read
        return lookups.customer_by_match_key(conn, node.id, email, for_update=for_update)
    ids = find(conn, ws, node, EMAIL_PATH, [email]).get(email, [])
    if len(ids) > 1:
        raise ConflictError(
            f"{len(ids)} customers of node {node.name!r} have the address {email}",
            code="E704",
            data={"customers": [{"id": i} for i in ids]},
        )
    if not ids:
        return None
    return store.get(conn, ws.id, ids[0], for_update=for_update)


def _matched_by_email(ws: Workspace) -> bool:
    """Customers are matched by their (case-insensitive) email alone: it is their matching key."""
    return (
        ws.matching_properties == (EMAIL_PATH,)
        and ws.uniqueness_policy != UniquenessPolicy.NO_CHECK
        and not ws.case_sensitive
    )


def _statuses(conn: Connection, customer_id: str) -> dict[str, Row[Any]]:
    return {s.subscription_id: s for s in sub_store.for_customers(conn, [customer_id]).get(customer_id, [])}


@dataclass(frozen=True)
class Stored:
    """A subscription's status and reason, as a stored row has them."""

    status: str
    reason: str | None


def _state(sid: str, before: Row[Any] | Stored | None, after: Row[Any] | Stored | None) -> SubscriptionState:
    return SubscriptionState(
        sid,
        before.status if before is not None else None,
        after.status if after is not None else None,
        after.reason if after is not None else None,
    )


def _unknown(email: str, node: Node) -> NotFoundError:
    return NotFoundError(f"no customer of node {node.name!r} has the address {email}", code="E705")


def _retrying(db: Database, work: Callable[[Connection], T], attempts: int = 3) -> T:
    """Run a write; again if a concurrent subscribe created the same customer first.

    That shows as a unique-index violation, or as a matching conflict (E300) when the other
    transaction committed between our lookup and our insert; the next attempt finds it.
    """
    for attempt in range(1, attempts + 1):
        try:
            with db.write() as conn:
                return work(conn)
        except (exc.IntegrityError, ConflictError) as e:
            if attempt == attempts or (isinstance(e, ConflictError) and e.code != "E300"):
                raise
    raise AssertionError("unreachable")
