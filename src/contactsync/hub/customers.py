"""Customers: create, read, replace, patch, delete and list, one at a time.

Each write runs in one transaction with its subscriptions (through the consent rules) and
its change-journal entry. Bulk writes live in :mod:`hub.bulk`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Row

from contactsync.errors import ConflictError, FieldProblem, invalid, not_found
from contactsync.hub import subscriptions as subs
from contactsync.hub.context import API, WriteContext, journal_entry
from contactsync.hub.document import CustomerDoc, merge_patch, parse_customer
from contactsync.hub.ids import new_id
from contactsync.hub.paging import check_page
from contactsync.hub.query import Atomic, Condition, Group, parse_query, parse_sort
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import (
    Node,
    UniquenessPolicy,
    Workspace,
    load_node,
    load_workspace,
    readable_node_ids,
    require_writable,
)
from contactsync.store import customer_query, journal
from contactsync.store import customers as store
from contactsync.store import events as event_store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

T = TypeVar("T")
READ_ONLY_KEYS = ("id", "registeredAt", "updatedAt", "sourceInfo")


# --- rendering -------------------------------------------------------------------------------


def render(row: Row[Any], sub_rows: Sequence[Row[Any]]) -> dict[str, Any]:
    """A stored customer in the Contacthub shape."""
    data = orjson.loads(row.data)
    base = data.get("base", {})
    base["subscriptions"] = [subs.render(s) for s in sub_rows]
    return {
        "id": row.id,
        "nodeId": row.node_id,
        "externalId": row.external_id,
        "base": base,
        "extended": data.get("extended", {}),
        "extra": data.get("extra"),
        "consents": data.get("consents", {}),
        "tags": data.get("tags", {"auto": [], "manual": []}),
        "enabled": bool(row.enabled),
        "registeredAt": format_time(row.registered_at),
        "updatedAt": format_time(row.updated_at),
    }


def project(customer: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the given dotted paths (plus ``id``), as the ``fields`` parameter asks."""
    out: dict[str, Any] = {"id": customer["id"]}
    for path in fields:
        parts = path.split(".")
        src: Any = customer
        for part in parts:
            src = src.get(part) if isinstance(src, dict) else None
        if src is None:
            continue
        dst = out
        for part in parts[:-1]:
            dst = dst.setdefault(part, {})
        dst[parts[-1]] = src
    return out


def _load(conn: Connection, ws_id: str, customer_id: str, for_update: bool = False) -> Row[Any]:
    row = store.get(conn, ws_id, customer_id, for_update=for_update)
    if row is None:
        raise not_found("customer", customer_id)
    return row


def _render_one(conn: Connection, row: Row[Any]) -> dict[str, Any]:
    return render(row, sub_store.for_customers(conn, [row.id]).get(row.id, []))


# --- writes ----------------------------------------------------------------------------------


def write_doc(
    conn: Connection,
    ws: Workspace,
    node: Node,
    doc: CustomerDoc,
    ctx: WriteContext,
    existing: Row[Any] | None,
    *,
    free_key: str | None = None,
) -> str:
    """Insert or rewrite one customer with its subscriptions and journal entry; returns its id.

    ``free_key``: a matching key the caller has found no customer of the node holding, in
    this transaction; when it is the document's key, it is not looked up again.
    """
    at = now_ms()
    key = ws.key_of(doc)
    customer_id = existing.id if existing is not None else new_id()
    if key is not None and key != free_key:
        holder = store.find_id_by_match_key(conn, node.id, key)
        if holder is not None and holder != customer_id:
            raise _conflict(holder)
    data_json = doc.content_json()
    values = {
        "id": customer_id,
        "external_id": doc.external_id,
        "match_key": key,
        "enabled": doc.enabled,
        "updated_at": at,
        "content_hash": doc.content_hash(data_json),
        "data": data_json.decode(),
    }
    if existing is None:
        store.insert_many(conn, [{**values, "workspace_id": ws.id, "node_id": node.id, "registered_at": at}])
    profile_changed = existing is None or (
        values["content_hash"] != existing.content_hash or key != existing.match_key
    )
    if existing is not None and profile_changed:
        store.update_many(conn, [values])
    sub_changed = False
    if doc.subscriptions:
        current = {}  # a brand-new customer has none yet
        if existing is not None:
            rows = sub_store.for_customers(conn, [customer_id]).get(customer_id, [])
            current = {s.subscription_id: s for s in rows}
        writes = subs.plan(customer_id, node.id, doc.subscriptions, current, ctx, at)
        writes.apply(conn)
        sub_changed = writes.changed
    if existing is not None and sub_changed and not profile_changed:
        store.touch(conn, customer_id, at)
    if existing is None or profile_changed or sub_changed:
        op = "CREATE" if existing is None else "UPDATE"
        journal.append(conn, [journal_entry(ws.id, node.id, "CUSTOMER", customer_id, op, ctx, at)])
    return customer_id


def _conflict(existing_id: str) -> ConflictError:
    return ConflictError(
        f"Conflict with existing customer {existing_id}",
        code="E300",
        data={"customer": {"id": existing_id}},
    )


def _retry_on_race(
    db: Database, work: Callable[[Connection], T], node_id: str, key_of: Callable[[], str | None]
) -> T:
    """Run a write; if a concurrent create took the matching key first, answer 409 with its id."""
    try:
        with db.write() as conn:
            return work(conn)
    except exc.IntegrityError:
        key = key_of()
        with db.read() as conn:
            holder = store.find_id_by_match_key(conn, node_id, key) if key else None
        if holder is None:
            raise
        raise _conflict(holder) from None


def create(
    db: Database, workspace_id: str, body: Any, ctx: WriteContext = API
) -> tuple[dict[str, Any], bool]:
    """Create a customer. Returns (customer, created); ``created`` is False when MERGE merged it."""
    if not isinstance(body, dict):
        raise invalid([FieldProblem("", "the body must be a JSON object")])
    node_id = body.get("nodeId")
    if not isinstance(node_id, str) or not node_id:
        raise invalid([FieldProblem("nodeId", "nodeId is required", "E206")])
    if not any(body.get(k) is not None for k in ("externalId", "base", "extended")):
        raise invalid(
            [FieldProblem("", "a customer needs at least one of externalId, base, extended", "E206")]
        )
    with db.read() as conn:
        ws = load_workspace(conn, workspace_id)
        node = load_node(conn, workspace_id, node_id)
    require_writable(node)
    doc = parse_customer(_writable(body), ws.extended_schema)
    key = ws.key_of(doc)

    def work(conn: Connection) -> tuple[dict[str, Any], bool]:
        holder = store.find_id_by_match_key(conn, node.id, key) if key else None
        if holder is not None:
            if ws.uniqueness_policy != UniquenessPolicy.MERGE:
                raise _conflict(holder)
            existing = _load(conn, ws.id, holder, for_update=True)
            merged = parse_customer(merge_patch(body_of(existing), _writable(body)), ws.extended_schema)
            write_doc(conn, ws, node, merged, ctx, existing)
            return _render_one(conn, _load(conn, ws.id, holder)), False
        cid = write_doc(conn, ws, node, doc, ctx, None, free_key=key)
        return _render_one(conn, _load(conn, ws.id, cid)), True

    return _retry_on_race(db, work, node.id, lambda: key)


def _writable(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in READ_ONLY_KEYS and k != "nodeId"}


def body_of(row: Row[Any]) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(row.data)
    return {**data, "externalId": row.external_id, "enabled": bool(row.enabled)}


def _check_node(body: Mapping[str, Any], row: Row[Any]) -> None:
    node_id = body.get("nodeId")
    if node_id is not None and node_id != row.node_id:
        raise invalid(
            [FieldProblem("nodeId", "a customer cannot move to another node; create it there instead")]
        )


def replace(
    db: Database, workspace_id: str, customer_id: str, body: Any, ctx: WriteContext = API
) -> dict[str, Any]:
    """PUT: the customer becomes the body (properties not sent are removed)."""
    if not isinstance(body, dict):
        raise invalid([FieldProblem("", "the body must be a JSON object")])
    return update_with(db, workspace_id, customer_id, ctx, lambda _row: _writable(body), body)


def patch(
    db: Database, workspace_id: str, customer_id: str, body: Any, ctx: WriteContext = API
) -> dict[str, Any]:
    """PATCH: JSON merge patch (null removes a property; lists are replaced whole)."""
    if not isinstance(body, dict):
        raise invalid([FieldProblem("", "the body must be a JSON object")])

    def merged(row: Row[Any]) -> dict[str, Any]:
        changes = _writable(body)
        base = changes.get("base")
        sub_items = base.get("subscriptions") if isinstance(base, dict) else None
        if isinstance(base, dict) and "subscriptions" in base:
            changes["base"] = {k: v for k, v in base.items() if k != "subscriptions"}
        out = merge_patch(body_of(row), changes)
        if sub_items is not None:
            out.setdefault("base", {})["subscriptions"] = sub_items
        return out

    return update_with(db, workspace_id, customer_id, ctx, merged, body)


def update_with(
    db: Database,
    workspace_id: str,
    customer_id: str,
    ctx: WriteContext,
    new_body: Callable[[Row[Any]], dict[str, Any]],
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rewrite a customer as ``new_body(current row)`` says, inside one write transaction."""
    with db.read() as conn:
        ws = load_workspace(conn, workspace_id)
        row = _load(conn, workspace_id, customer_id)
        node = load_node(conn, workspace_id, row.node_id)
    _check_node(body or {}, row)
    require_writable(node)
    keys: list[str | None] = [None]

    def work(conn: Connection) -> dict[str, Any]:
        current = _load(conn, ws.id, customer_id, for_update=True)
        doc = parse_customer(new_body(current), ws.extended_schema)
        keys[0] = ws.key_of(doc)
        write_doc(conn, ws, node, doc, ctx, current)
        return _render_one(conn, _load(conn, ws.id, customer_id))

    return _retry_on_race(db, work, node.id, lambda: keys[0])


def delete(db: Database, workspace_id: str, customer_id: str, ctx: WriteContext = API) -> dict[str, Any]:
    """Delete a customer with its subscriptions, sessions and events; returns it as it was.

    Each event gets its own DELETE in the journal, so a feed reader drops them too. The consent
    ledger keeps its rows: the proof of an unsubscribe outlives the profile.
    """
    with db.write() as conn:
        ws = load_workspace(conn, workspace_id)
        row = _load(conn, workspace_id, customer_id, for_update=True)
        require_writable(load_node(conn, workspace_id, row.node_id))
        return delete_row(conn, ws, row, ctx)


def delete_row(conn: Connection, ws: Workspace, row: Row[Any], ctx: WriteContext) -> dict[str, Any]:
    """Delete a loaded customer in the caller's transaction, journaling it and its events."""
    snapshot = _render_one(conn, row)
    at = now_ms()
    entries = [
        journal_entry(ws.id, event.node_id, "EVENT", event.id, "DELETE", ctx, at)
        for event in event_store.of_customer(conn, row.id)
    ]
    entries.append(journal_entry(ws.id, row.node_id, "CUSTOMER", row.id, "DELETE", ctx, at, snapshot))
    store.delete(conn, row.id)
    journal.append(conn, entries)
    return snapshot


# --- reads -----------------------------------------------------------------------------------


def get(db: Database, workspace_id: str, customer_id: str) -> dict[str, Any]:
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        return _render_one(conn, _load(conn, workspace_id, customer_id))


def list_page(
    db: Database,
    workspace_id: str,
    node_id: str | None,
    *,
    external_id: str | None = None,
    query: str | None = None,
    fields: Sequence[str] = (),
    sort: str | None = None,
    page: int = 0,
    size: int = 10,
    max_size: int,
) -> dict[str, Any]:
    """A page of a node's customers, filtered by ``externalId`` and/or a ``query``."""
    if not node_id:
        raise invalid([FieldProblem("nodeId", "nodeId is required", "E206")])
    check_page(page, size, max_size)
    conds: list[Condition] = []
    if external_id is not None:
        conds.append(Atomic("externalId", "EQUALS", external_id))
    if query:
        conds.append(parse_query(query))
    sort_spec = parse_sort(sort)
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        node = load_node(conn, workspace_id, node_id)
        dialect = conn.dialect.name
        where = customer_query.compile_condition(Group("and", tuple(conds)), dialect) if conds else None
        rows, total, unfiltered = store.list_page(
            conn,
            workspace_id,
            readable_node_ids(node),
            where=where,
            order_by=customer_query.order_by(sort_spec, dialect),
            offset=page * size,
            limit=size,
        )
        sub_rows = sub_store.for_customers(conn, [r.id for r in rows])
    elements = [render(r, sub_rows.get(r.id, [])) for r in rows]
    if fields:
        elements = [project(e, fields) for e in elements]
    return {
        "elements": elements,
        "page": {
            "size": size,
            "totalElements": total,
            "totalUnfilteredElements": unfiltered,
            "totalPages": math.ceil(total / size) if total else 0,
            "number": page,
        },
    }


def node_of(db: Database, workspace_id: str, customer_id: str) -> str | None:
    """The customer's node; for a deleted customer, the node its journal entries name.

    The consent ledger outlives its customer, so a node-bound token needs the node of a
    customer that may be gone. None when the id was never a customer of the workspace.
    """
    with db.read() as conn:
        row = store.get(conn, workspace_id, customer_id)
        if row is not None:
            return str(row.node_id)
        return journal.node_of(conn, workspace_id, "CUSTOMER", customer_id)


def consent_ledger(db: Database, workspace_id: str, customer_id: str) -> list[dict[str, Any]]:
    """The consent ledger of a customer (kept even after the customer is deleted)."""
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        return [subs.render_ledger(r) for r in sub_store.ledger(conn, customer_id)]
