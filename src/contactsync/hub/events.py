"""Events: Contacthub's event model (types, contexts, bring-back properties)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Row

from contactsync.errors import FieldProblem, invalid, not_found
from contactsync.hub.context import API, WriteContext, journal_entry
from contactsync.hub.ids import new_id
from contactsync.hub.paging import check_page
from contactsync.hub.schema import SECTION_LIMIT
from contactsync.hub.times import format_time, now_ms, parse_time
from contactsync.hub.workspaces import (
    load_node,
    load_workspace,
    readable_node_ids,
    require_writable,
)
from contactsync.store import customers as customer_store
from contactsync.store import events as store
from contactsync.store import journal
from contactsync.store.db import Database

CONTEXTS = frozenset(
    [
        "WEB",
        "MOBILE",
        "ECOMMERCE",
        "RETAIL",
        "SOCIAL",
        "DIGITAL_CAMPAIGN",
        "CONTACT_CENTER",
        "IOT",
        "OTHER",
    ]
)
PASSIVE_TYPES = frozenset(
    [
        "campaignBlacklisted",
        "campaignBounced",
        "campaignLinkClicked",
        "campaignMarkedSpam",
        "campaignOpened",
        "campaignSent",
        "campaignSubscribed",
        "campaignUnsubscribed",
        "campaignOptinRequested",
        "eventInvited",
        "eventNotInvited",
        "eventEligible",
    ]
)
ACTIVE_TYPES = frozenset(
    [
        "abandonedCart",
        "abandonedSession",
        "addedCompare",
        "addedProduct",
        "addedReward",
        "addedWishlist",
        "changedSetting",
        "clickedLink",
        "closedTicket",
        "completedOrder",
        "eventConfirmed",
        "eventDeclined",
        "eventNoShow",
        "eventParticipated",
        "eventRegistered",
        "formCompiled",
        "genericActiveEvent",
        "genericPassiveEvent",
        "grantedCoupon",
        "loggedIn",
        "loggedOut",
        "openedTicket",
        "orderShipped",
        "removedCompare",
        "removedProduct",
        "removedReward",
        "removedWishlist",
        "repliedTicket",
        "reviewedProduct",
        "searched",
        "serviceSubscribed",
        "serviceUnsubscribed",
        "viewedPage",
        "viewedProduct",
        "viewedProductCategory",
    ]
)
EVENT_TYPES = PASSIVE_TYPES | ACTIVE_TYPES

#: Called with an event's node before it is read or written; raises to refuse access (the
#: API passes the token's node binding). The hub itself knows nothing of tokens.
NodeCheck = Callable[[str | None], None]


def any_node(_node_id: str | None) -> None:
    """The NodeCheck of callers that may touch every node (CLI, internal use)."""


_FIELDS = {
    "type",
    "context",
    "properties",
    "customerId",
    "bringBackProperties",
    "date",
    "contextInfo",
    "tracking",
    "id",
    "mode",
    "registeredAt",
}


def _check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid([FieldProblem("", "the body must be a JSON object")])
    problems = [FieldProblem(k, f"unknown property {k}", "E202") for k in body if k not in _FIELDS]
    if body.get("type") not in EVENT_TYPES:
        problems.append(FieldProblem("type", f"unknown event type {body.get('type')!r}", "E203"))
    if body.get("context") not in CONTEXTS:
        problems.append(FieldProblem("context", f"must be one of {', '.join(sorted(CONTEXTS))}", "E203"))
    for key in ("properties", "contextInfo", "tracking"):
        value = body.get(key)
        if value is not None and not isinstance(value, dict):
            problems.append(FieldProblem(key, "must be an object", "E203"))
        elif value is not None and len(orjson.dumps(value)) > SECTION_LIMIT:
            problems.append(FieldProblem(key, "larger than 64 KB", "E204"))
    if "properties" not in body:
        problems.append(FieldProblem("properties", "properties is required", "E206"))
    if not body.get("customerId") and not isinstance(body.get("bringBackProperties"), dict):
        problems.append(FieldProblem("customerId", "customerId or bringBackProperties is required", "E206"))
    if problems:
        raise invalid(problems)
    return body


def _resolve_customer(
    conn: Connection, workspace_id: str, body: dict[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """(customer id, node id, session id) of an event."""
    if body.get("customerId"):
        row = customer_store.get(conn, workspace_id, body["customerId"])
        if row is None:
            raise invalid([FieldProblem("customerId", f"customer {body['customerId']} not found", "E203")])
        return row.id, row.node_id, None
    bring = body["bringBackProperties"]
    kind, value, node_id = bring.get("type"), bring.get("value"), bring.get("nodeId")
    if kind not in {"SESSION_ID", "EXTERNAL_ID"} or not isinstance(value, str) or not value:
        raise invalid(
            [
                FieldProblem(
                    "bringBackProperties",
                    "needs type SESSION_ID or EXTERNAL_ID and a value",
                    "E203",
                )
            ]
        )
    if not isinstance(node_id, str):
        raise invalid([FieldProblem("bringBackProperties.nodeId", "nodeId is required", "E206")])
    node = load_node(conn, workspace_id, node_id)
    if kind == "SESSION_ID":
        owner = store.session_owner(conn, workspace_id, value)
        return owner, node.id, value
    found = customer_store.find_by_external_id(conn, readable_node_ids(node), value)
    if found is not None:
        return found.id, found.node_id, None
    raise invalid(
        [
            FieldProblem(
                "bringBackProperties.value",
                f"no customer with externalId {value!r} in the node",
                "E203",
            )
        ]
    )


def _event_row(body: dict[str, Any]) -> dict[str, Any]:
    try:
        date = parse_time(body["date"]) if body.get("date") else now_ms()
    except ValueError:
        raise invalid([FieldProblem("date", "not a date-time", "E203")]) from None
    data = {
        k: body.get(k)
        for k in ("properties", "contextInfo", "tracking", "bringBackProperties")
        if body.get(k) is not None
    }
    return {
        "type": body["type"],
        "context": body["context"],
        "mode": "PASSIVE" if body["type"] in PASSIVE_TYPES else "ACTIVE",
        "date": date,
        "data": orjson.dumps(data).decode(),
    }


def post_event(
    db: Database, workspace_id: str, body: Any, ctx: WriteContext = API, allow: NodeCheck = any_node
) -> dict[str, Any]:
    event = _check(body)
    values = _event_row(event)
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        customer_id, node_id, session_id = _resolve_customer(conn, workspace_id, event)
        allow(node_id)
        if node_id:
            require_writable(load_node(conn, workspace_id, node_id))
        at = now_ms()
        row = {
            **values,
            "id": new_id(),
            "workspace_id": workspace_id,
            "node_id": node_id,
            "customer_id": customer_id,
            "session_id": session_id,
            "registered_at": at,
        }
        store.insert(conn, row)
        _journal(conn, workspace_id, node_id, row["id"], "CREATE", ctx, at)
    return {"id": row["id"]}


def _journal(
    conn: Connection,
    workspace_id: str,
    node_id: str | None,
    event_id: str,
    op: str,
    ctx: WriteContext,
    at: int,
) -> None:
    journal.append(conn, [journal_entry(workspace_id, node_id, "EVENT", event_id, op, ctx, at)])


def render(row: Row[Any]) -> dict[str, Any]:
    data = orjson.loads(row.data)
    return {
        "id": row.id,
        "customerId": row.customer_id,
        "type": row.type,
        "context": row.context,
        "mode": row.mode,
        "properties": data.get("properties", {}),
        "contextInfo": data.get("contextInfo", {}),
        "tracking": data.get("tracking"),
        "bringBackProperties": data.get("bringBackProperties"),
        "date": format_time(row.date),
        "registeredAt": format_time(row.registered_at),
    }


def _load(conn: Connection, workspace_id: str, event_id: str, allow: NodeCheck) -> Row[Any]:
    row = store.get(conn, workspace_id, event_id)
    if row is None:
        raise not_found("event", event_id)
    allow(row.node_id)
    return row


def get_event(db: Database, workspace_id: str, event_id: str, allow: NodeCheck = any_node) -> dict[str, Any]:
    with db.read() as conn:
        return render(_load(conn, workspace_id, event_id, allow))


def replace_event(
    db: Database,
    workspace_id: str,
    event_id: str,
    body: Any,
    ctx: WriteContext = API,
    allow: NodeCheck = any_node,
) -> dict[str, Any]:
    event = _check(body)
    with db.write() as conn:
        row = _load(conn, workspace_id, event_id, allow)
        store.replace(conn, event_id, _event_row(event))
        _journal(conn, workspace_id, row.node_id, event_id, "UPDATE", ctx, now_ms())
        return render(store.get(conn, workspace_id, event_id))  # type: ignore[arg-type]


def delete_event(
    db: Database, workspace_id: str, event_id: str, ctx: WriteContext = API, allow: NodeCheck = any_node
) -> None:
    with db.write() as conn:
        row = _load(conn, workspace_id, event_id, allow)
        store.delete(conn, event_id)
        _journal(conn, workspace_id, row.node_id, event_id, "DELETE", ctx, now_ms())


def list_events(
    db: Database,
    workspace_id: str,
    *,
    customer_id: str | None,
    node_id: str | None,
    types: list[str],
    contexts: list[str],
    mode: str | None,
    date_from: str | None,
    date_to: str | None,
    page: int,
    size: int,
    max_size: int,
) -> dict[str, Any]:
    if not customer_id and not node_id:
        raise invalid([FieldProblem("customerId", "customerId or nodeId is required", "E206")])
    check_page(page, size, max_size)
    try:
        start = parse_time(date_from) if date_from else None
        end = parse_time(date_to) if date_to else None
    except ValueError:
        raise invalid([FieldProblem("dateFrom", "dateFrom/dateTo must be date-times", "E203")]) from None
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        node_ids = readable_node_ids(load_node(conn, workspace_id, node_id)) if node_id else None
        rows, total = store.list_page(
            conn,
            workspace_id,
            customer_id=customer_id,
            node_ids=node_ids,
            types=types,
            contexts=contexts,
            mode=mode,
            date_from=start,
            date_to=end,
            offset=page * size,
            limit=size,
        )
    return {
        "elements": [render(r) for r in rows],
        "page": {
            "size": size,
            "totalElements": total,
            "totalUnfilteredElements": total,
            "totalPages": -(-total // size) if total else 0,
            "number": page,
        },
    }
