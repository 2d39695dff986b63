"""Hub writes on behalf of a sync run, inside the run's batch transaction.

The engine plans each batch, writes the provider side, then calls :func:`apply` with the
connection of the one transaction that also stores links, cursors and the run log. Each
change goes through the same document validation, matching index, consent rules and change
journal as an API write; a change the hub refuses (an invalid value, a matching conflict) is
reported for that record only and the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from contactsync.errors import ConflictError, InputError
from contactsync.hub import customers as hub_customers
from contactsync.hub.consent import Status
from contactsync.hub.context import WriteContext
from contactsync.hub.document import merge_patch, parse_customer
from contactsync.hub.workspaces import Node, UniquenessPolicy, Workspace
from contactsync.store import customer_query
from contactsync.store import customers as store
from contactsync.store import subscriptions as sub_store


@dataclass
class Current:
    """A customer as the hub holds it now: its Contacthub body and update time (epoch ms)."""

    body: dict[str, Any]
    updated_at: int


@dataclass
class HubChange:
    key: str  # the engine's record key, echoed in the result
    customer_id: str | None  # None: create
    patch: dict[str, Any] = field(default_factory=dict)  # merge patch (None values remove)
    subs: dict[str, Status] = field(default_factory=dict)
    webform_codes: dict[str, str] = field(default_factory=dict)
    enabled: bool | None = None


@dataclass
class HubResult:
    key: str
    customer_id: str | None
    created: bool = False
    changed: bool = False
    code: str | None = None  # set when the hub refused the change
    message: str | None = None
    statuses: dict[str, Status | None] = field(default_factory=dict)  # after the write
    refused: list[str] = field(default_factory=list)  # subscriptions the consent rules kept


def current(conn: Connection, workspace_id: str, customer_ids: Sequence[str]) -> dict[str, Current]:
    rows = store.get_many(conn, workspace_id, customer_ids)
    subs = sub_store.for_customers(conn, list(rows))
    return {
        cid: Current(hub_customers.render(row, subs.get(cid, [])), row.updated_at)
        for cid, row in rows.items()
    }


def find(
    conn: Connection, ws: Workspace, node: Node, path: str, values: Sequence[Any]
) -> dict[Any, list[str]]:
    """Customer ids of ``node`` by the value of property ``path`` (values normalised as
    :func:`contactsync.sync.mapping.normalise` does: e-mail addresses lower-cased)."""
    out: dict[Any, list[str]] = {}
    if not values:
        return out
    lower = path.endswith("email")
    indexed = (
        ws.matching_properties == (path,)
        and ws.uniqueness_policy != UniquenessPolicy.NO_CHECK
        and (lower and not ws.case_sensitive)
    )
    if indexed:
        for key, row in store.find_by_match_keys(conn, node.id, [str(v) for v in values]).items():
            out.setdefault(key, []).append(row.id)
        return out
    for cid, value in customer_query.find_ids_by_path(conn, node.id, path, values, lower=lower):
        out.setdefault(value, []).append(cid)
    return out


def apply(
    conn: Connection, ws: Workspace, node: Node, changes: Sequence[HubChange], ctx: WriteContext
) -> list[HubResult]:
    """Write ``changes`` in the caller's transaction; one result per change, in order."""
    ids = [c.customer_id for c in changes if c.customer_id]
    rows = store.get_many(conn, ws.id, ids)
    results = []
    for change in changes:
        row = rows.get(change.customer_id) if change.customer_id else None
        result = HubResult(change.key, change.customer_id)
        if change.customer_id and row is None:
            result.code, result.message = "E120", f"customer {change.customer_id} was deleted meanwhile"
            results.append(result)
            continue
        body = hub_customers.body_of(row) if row is not None else {}
        if change.patch:
            body = merge_patch(body, change.patch)
        if change.enabled is not None:
            body["enabled"] = change.enabled
        items = [{"id": sid, "status": status.value} for sid, status in change.subs.items()]
        body.setdefault("base", {})["subscriptions"] = items
        try:
            doc = parse_customer(body, ws.extended_schema)
            for item in doc.subscriptions or []:  # recorded in the consent ledger
                if code := change.webform_codes.get(item["id"]):
                    item["webformCode"] = code
            before = row.updated_at if row is not None else None
            result.customer_id = hub_customers.write_doc(conn, ws, node, doc, ctx, row)
        except (InputError, ConflictError) as e:
            result.code, result.message = e.code, e.message
            results.append(result)
            continue
        result.created = row is None
        after = store.get(conn, ws.id, result.customer_id)
        result.changed = row is None or (after is not None and after.updated_at != before)
        final = {
            s.subscription_id: s
            for s in sub_store.for_customers(conn, [result.customer_id]).get(result.customer_id, [])
        }
        for sid, wanted in change.subs.items():
            got = final.get(sid)
            result.statuses[sid] = Status(got.status) if got is not None else None
            if got is None or got.status != wanted.value:
                result.refused.append(sid)
        results.append(result)
    return results


def delete(conn: Connection, ws: Workspace, customer_id: str, ctx: WriteContext) -> bool:
    """Delete a customer with its journal entries; False when it was already gone."""
    row = store.get(conn, ws.id, customer_id)
    if row is None:
        return False
    hub_customers.delete_row(conn, ws, row, ctx)
    return True
