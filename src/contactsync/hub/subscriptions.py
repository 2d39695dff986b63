"""Subscription writes: every status change goes through :mod:`hub.consent` and the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Row

from contactsync.errors import FieldProblem, invalid
from contactsync.hub import consent
from contactsync.hub.context import WriteContext
from contactsync.hub.document import prune_nulls
from contactsync.hub.times import format_time, parse_time
from contactsync.store import subscriptions as store

_ATTRIBUTES = ("name", "type", "kind", "startDate", "endDate", "subscriberId", "preferences")


@dataclass
class SubscriptionWrites:
    """Rows to write for a set of subscription items, planned before anything is written."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # subscription ids refused by consent rules

    @property
    def changed(self) -> bool:
        return bool(self.inserts or self.updates)

    def extend(self, other: SubscriptionWrites) -> None:
        self.inserts += other.inserts
        self.updates += other.updates
        self.ledger += other.ledger
        self.refused += other.refused

    def apply(self, conn: Connection) -> None:
        store.insert_many(conn, self.inserts)
        store.update_many(conn, self.updates)
        store.append_ledger(conn, self.ledger)


def _evidence(item: Mapping[str, Any], path: str) -> consent.Evidence | None:
    ev = item.get("consentEvidence")
    if not ev:
        return None
    try:
        at = parse_time(ev["date"])
    except ValueError:
        raise invalid([FieldProblem(f"{path}.consentEvidence.date", "not a date-time", "E203")]) from None
    return consent.Evidence(
        kind=consent.EvidenceKind(ev["type"]),
        at=at,
        ip=ev.get("ip"),
        user_agent=ev.get("userAgent"),
        webform_code=ev.get("webformCode"),
    )


def requested_status(item: Mapping[str, Any]) -> consent.Status | None:
    """The status a subscription item asks for; None when it names neither status nor boolean."""
    enable = item.get("subscribed")
    if enable is None:
        enable = item.get("enable")  # the Swagger spec's name for `subscribed`
    return consent.status_from_contacthub(enable, item.get("status"))


def missing_status(path: str, sid: str) -> FieldProblem:
    """The problem of a new subscription that asks for no status: none can be guessed."""
    return FieldProblem(
        path, f"new subscription {sid} needs `subscribed` (true or false) or `status`", "E206"
    )


def plan(
    customer_id: str,
    node_id: str,
    items: Sequence[Mapping[str, Any]],
    existing: Mapping[str, Row[Any]],
    ctx: WriteContext,
    at: int,
    path: str = "base.subscriptions",
) -> SubscriptionWrites:
    """Decide each item under the consent rules; ``existing`` maps subscription id → row.

    An item without a requested status only updates the attributes of an existing
    subscription; a new subscription without one is refused, since no status can be guessed.
    """
    out = SubscriptionWrites()
    for i, item in enumerate(items):
        sid = str(item["id"])
        row = existing.get(sid)
        requested = requested_status(item)
        if requested is None:
            if row is None:
                raise invalid([missing_status(f"{path}.{i}.subscribed", sid)])
            _plan_attributes(out, row, _attributes_json(row, item), at)
            continue
        evidence = _evidence(item, f"{path}.{i}")
        current = consent.Current(consent.Status(row.status), row.opted_out_at) if row else None
        decision = consent.decide(current, consent.Request(requested, at, ctx.automatic, evidence))
        attrs_json = _attributes_json(row, item)
        reason = item.get("reason") if decision.changed and requested in consent.OPTED_OUT else None
        reason = reason or decision.reason.value
        values = {
            "customer_id": customer_id,
            "subscription_id": sid,
            "node_id": node_id,
            "status": decision.status.value,
            "reason": reason,
            "opted_out_at": decision.opted_out_at,
            "updated_at": at,
            "attributes": attrs_json,
        }
        if row is None:
            out.inserts.append({**values, "registered_at": at})
        elif decision.changed:
            out.updates.append(values)
        else:
            _plan_attributes(out, row, attrs_json, at)
        if decision.changed or decision.refused:
            out.ledger.append(
                _ledger_row(customer_id, sid, row, requested, decision, reason, ctx, evidence, item, at)
            )
        if decision.refused:
            out.refused.append(sid)
    return out


def _attributes_json(row: Row[Any] | None, item: Mapping[str, Any]) -> str:
    """The stored attributes with the item's merged onto them, as sorted JSON."""
    attrs = orjson.loads(row.attributes) if row else {}
    given = {k: item[k] for k in _ATTRIBUTES if k in item}
    return orjson.dumps(prune_nulls({**attrs, **given}), option=orjson.OPT_SORT_KEYS).decode()


def _plan_attributes(out: SubscriptionWrites, row: Row[Any], attrs_json: str, at: int) -> None:
    """Update only the attributes of a subscription whose status stays, if they changed."""
    if attrs_json == row.attributes:
        return
    out.updates.append(
        {
            "customer_id": row.customer_id,
            "subscription_id": row.subscription_id,
            "node_id": row.node_id,
            "status": row.status,
            "reason": row.reason,
            "opted_out_at": row.opted_out_at,
            "updated_at": at,
            "attributes": attrs_json,
        }
    )


def _ledger_row(
    customer_id: str,
    sid: str,
    row: Row[Any] | None,
    requested: consent.Status,
    decision: consent.Decision,
    reason: str,
    ctx: WriteContext,
    evidence: consent.Evidence | None,
    item: Mapping[str, Any],
    at: int,
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "subscription_id": sid,
        "at": at,
        "previous_status": row.status if row else None,
        "requested_status": requested.value,
        "status": decision.status.value,
        "reason": reason,
        "origin": ctx.origin,
        "actor": ctx.actor,
        "ip": (evidence.ip if evidence else None) or ctx.ip,
        "user_agent": (evidence.user_agent if evidence else None) or ctx.user_agent,
        "webform_code": (evidence.webform_code if evidence else None) or item.get("webformCode"),
        "evidence": orjson.dumps(item["consentEvidence"]).decode() if item.get("consentEvidence") else None,
    }


def render(row: Row[Any]) -> dict[str, Any]:
    """A subscription in the Contacthub shape, with our ``status`` and ``reason`` beside it."""
    return {
        "id": row.subscription_id,
        **orjson.loads(row.attributes),
        "subscribed": row.status == consent.Status.SUBSCRIBED,
        "status": row.status,
        "reason": row.reason,
        "registeredAt": format_time(row.registered_at),
        "updatedAt": format_time(row.updated_at),
    }


def render_ledger(row: Row[Any]) -> dict[str, Any]:
    return {
        "subscriptionId": row.subscription_id,
        "at": format_time(row.at),
        "previousStatus": row.previous_status,
        "requestedStatus": row.requested_status,
        "status": row.status,
        "reason": row.reason,
        "origin": row.origin,
        "actor": row.actor,
        "ip": row.ip,
        "userAgent": row.user_agent,
        "webformCode": row.webform_code,
    }
