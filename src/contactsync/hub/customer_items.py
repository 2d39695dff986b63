"""Customer sub-resources: subscriptions, tags, educations / likes / jobs, sessions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Row

from contactsync.errors import ConflictError, ConsentRefusedError, FieldProblem, invalid, not_found
from contactsync.hub import customers
from contactsync.hub import subscriptions as subs
from contactsync.hub.context import API, WriteContext, journal_entry
from contactsync.hub.schema import BASE_SCHEMA, SUBSCRIPTION_SCHEMA, validate
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_node, load_workspace, require_writable
from contactsync.store import customers as customer_store
from contactsync.store import events as event_store
from contactsync.store import journal
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

ITEM_KINDS = ("educations", "likes", "jobs")


def _find_subscription(customer: dict[str, Any], sid: str) -> dict[str, Any]:
    for s in customer["base"]["subscriptions"]:
        if s["id"] == sid:
            return dict(s)
    raise not_found("subscription", sid)


def put_subscription(
    db: Database,
    workspace_id: str,
    customer_id: str,
    item: Any,
    ctx: WriteContext = API,
    sid: str | None = None,
) -> dict[str, Any]:
    """Create or change one subscription (consent rules apply); returns it as stored.

    Raises ConsentRefusedError (E301) when the consent rules stored another status than the
    one asked for: the caller addressed this one subscription, so it must hear that its
    request was not applied. The write the rules allowed (such as ``pending``) stays.
    """
    if isinstance(item, dict) and sid is not None:
        item = {**item, "id": sid}
    validate(item, SUBSCRIPTION_SCHEMA, "subscription")
    requested = subs.requested_status(item)
    if requested is None:
        _require_existing(db, workspace_id, customer_id, item["id"])

    def new_body(row: Row[Any]) -> dict[str, Any]:
        body = customers.body_of(row)
        body.setdefault("base", {})["subscriptions"] = [item]
        return body

    updated = customers.update_with(db, workspace_id, customer_id, ctx, new_body)
    stored = _find_subscription(updated, item["id"])
    if requested is not None and stored["status"] != requested:
        raise ConsentRefusedError(
            f"subscription {stored['id']} is {stored['status']} ({stored['reason']}), not {requested}: "
            "the consent rules need a newer opt-in",
            code="E301",
            data={"subscription": stored},
        )
    return stored


def _require_existing(db: Database, workspace_id: str, customer_id: str, sid: str) -> None:
    """An item that asks for no status may only change an existing subscription's attributes."""
    found = customers.get(db, workspace_id, customer_id)["base"]["subscriptions"]
    if not any(s["id"] == sid for s in found):
        raise invalid([subs.missing_status("subscribed", sid)])


def get_subscription(db: Database, workspace_id: str, customer_id: str, sid: str) -> dict[str, Any]:
    return _find_subscription(customers.get(db, workspace_id, customer_id), sid)


def delete_subscription(
    db: Database, workspace_id: str, customer_id: str, sid: str, ctx: WriteContext = API
) -> None:
    """Forget a subscription record. Its consent ledger stays."""
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        row = customer_store.get(conn, workspace_id, customer_id)
        if row is None:
            raise not_found("customer", customer_id)
        require_writable(load_node(conn, workspace_id, row.node_id))
        if not sub_store.delete(conn, customer_id, sid):
            raise not_found("subscription", sid)
        at = now_ms()
        customer_store.touch(conn, customer_id, at)
        entry = journal_entry(workspace_id, row.node_id, "CUSTOMER", customer_id, "UPDATE", ctx, at)
        journal.append(conn, [entry])


def add_tag(
    db: Database, workspace_id: str, customer_id: str, tag: str, ctx: WriteContext = API
) -> dict[str, Any]:
    """Add a manual tag atomically (no read-modify-write race for the client)."""
    if not isinstance(tag, str) or not tag.strip():
        raise invalid([FieldProblem("tag", "a tag is a non-empty string")])

    def new_body(row: Row[Any]) -> dict[str, Any]:
        body = customers.body_of(row)
        manual = body.setdefault("tags", {}).setdefault("manual", [])
        if tag not in manual:
            manual.append(tag)
        return body

    return dict(customers.update_with(db, workspace_id, customer_id, ctx, new_body)["tags"])


def remove_tag(
    db: Database, workspace_id: str, customer_id: str, tag: str, ctx: WriteContext = API
) -> dict[str, Any]:
    def new_body(row: Row[Any]) -> dict[str, Any]:
        body = customers.body_of(row)
        manual = body.setdefault("tags", {}).setdefault("manual", [])
        if tag not in manual:
            raise not_found("tag", tag)
        manual.remove(tag)
        return body

    return dict(customers.update_with(db, workspace_id, customer_id, ctx, new_body)["tags"])


def _check_kind(kind: str) -> None:
    if kind not in ITEM_KINDS:
        raise not_found("sub-resource", kind)


def put_item(
    db: Database,
    workspace_id: str,
    customer_id: str,
    kind: str,
    item: Any,
    *,
    item_id: str | None = None,
    create: bool,
    ctx: WriteContext = API,
) -> dict[str, Any]:
    """Add (``create``) or replace one education / like / job of ``base``."""
    _check_kind(kind)
    if isinstance(item, dict) and item_id is not None:
        item = {**item, "id": item_id}
    validate(item, BASE_SCHEMA["properties"][kind]["items"], kind)

    def new_body(row: Row[Any]) -> dict[str, Any]:
        body = customers.body_of(row)
        items = body.setdefault("base", {}).setdefault(kind, [])
        index = next((i for i, x in enumerate(items) if x.get("id") == item["id"]), None)
        if create and index is not None:
            raise ConflictError(f"{kind} item {item['id']} already exists", code="E300")
        if not create and index is None:
            raise not_found(kind, item["id"])
        if index is None:
            items.append(item)
        else:
            items[index] = item
        return body

    customers.update_with(db, workspace_id, customer_id, ctx, new_body)
    return dict(item)


def get_item(db: Database, workspace_id: str, customer_id: str, kind: str, item_id: str) -> dict[str, Any]:
    _check_kind(kind)
    for x in customers.get(db, workspace_id, customer_id)["base"].get(kind, []):
        if x.get("id") == item_id:
            return dict(x)
    raise not_found(kind, item_id)


def delete_item(
    db: Database,
    workspace_id: str,
    customer_id: str,
    kind: str,
    item_id: str,
    ctx: WriteContext = API,
) -> None:
    _check_kind(kind)

    def new_body(row: Row[Any]) -> dict[str, Any]:
        body = customers.body_of(row)
        items = body.get("base", {}).get(kind, [])
        kept = [x for x in items if x.get("id") != item_id]
        if len(kept) == len(items):
            raise not_found(kind, item_id)
        body["base"][kind] = kept
        return body

    customers.update_with(db, workspace_id, customer_id, ctx, new_body)


def add_session(db: Database, workspace_id: str, customer_id: str, value: Any) -> dict[str, Any]:
    """Link a session id to a customer; anonymous events of that session become theirs."""
    if not isinstance(value, str) or not value.strip():
        raise invalid([FieldProblem("value", "a session id is a non-empty string", "E206")])
    try:
        with db.write() as conn:
            load_workspace(conn, workspace_id)
            row = customer_store.get(conn, workspace_id, customer_id)
            if row is None:
                raise not_found("customer", customer_id)
            event_store.add_session(
                conn,
                {
                    "workspace_id": workspace_id,
                    "value": value,
                    "customer_id": customer_id,
                    "created_at": now_ms(),
                },
            )
            event_store.claim_session_events(conn, workspace_id, value, customer_id, row.node_id)
    except exc.IntegrityError:
        raise ConflictError(f"session {value} already belongs to a customer", code="E300") from None
    return {"value": value}


def list_sessions(db: Database, workspace_id: str, customer_id: str) -> list[dict[str, Any]]:
    customers.get(db, workspace_id, customer_id)
    with db.read() as conn:
        return [
            {"value": r.value, "createdAt": format_time(r.created_at)}
            for r in event_store.list_sessions(conn, customer_id)
        ]


def delete_session(db: Database, workspace_id: str, customer_id: str, value: str) -> None:
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        if not event_store.delete_session(conn, customer_id, value):
            raise not_found("session", value)
