"""The updates feed: the change journal in Contacthub's ``updates`` shape."""

from __future__ import annotations

from typing import Any

import orjson

from contactsync.errors import FieldProblem, invalid
from contactsync.hub import customers, events
from contactsync.hub.workspaces import load_node, load_workspace, readable_node_ids
from contactsync.store import customers as customer_store
from contactsync.store import events as event_store
from contactsync.store import journal
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

ENTITIES = ("CUSTOMER", "EVENT")


def _scope(
    conn: Any, workspace_id: str, node_id: str | None, entity: str | None
) -> tuple[tuple[str, ...] | None, str | None]:
    if entity is not None and entity not in ENTITIES:
        raise invalid([FieldProblem("entity", "must be CUSTOMER or EVENT")])
    node_ids = readable_node_ids(load_node(conn, workspace_id, node_id)) if node_id else None
    return node_ids, entity


def read_updates(
    db: Database,
    workspace_id: str,
    *,
    offset: int | None,
    timestamp: int | None,
    size: int,
    node_id: str | None = None,
    entity: str | None = None,
) -> dict[str, Any]:
    """Changes after ``offset`` (exclusive), or from ``timestamp`` (epoch ms) when no offset.

    Each update carries the entity as it is now (as it was, for a DELETE): a consumer that
    applies updates in order converges on the hub's state.
    """
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        node_ids, entity = _scope(conn, workspace_id, node_id, entity)
        rows = journal.read(
            conn,
            workspace_id,
            after_seq=offset,
            since_ms=timestamp,
            node_ids=node_ids,
            entity=entity,
            limit=size,
        )
        customer_ids = list({r.entity_id for r in rows if r.entity == "CUSTOMER" and r.operation != "DELETE"})
        current = customer_store.get_many(conn, workspace_id, customer_ids)
        sub_rows = sub_store.for_customers(conn, list(current))
        event_rows = event_store.get_many(
            conn, workspace_id, [r.entity_id for r in rows if r.entity == "EVENT"]
        )
    updates = []
    for r in rows:
        if r.operation == "DELETE" and r.snapshot:
            data = orjson.loads(r.snapshot)
        elif r.entity == "CUSTOMER" and r.entity_id in current:
            data = customers.render(current[r.entity_id], sub_rows.get(r.entity_id, []))
        elif r.entity == "EVENT" and r.entity_id in event_rows:
            data = events.render(event_rows[r.entity_id])
        else:
            data = {"id": r.entity_id}  # deleted since; its DELETE comes later in the feed
        updates.append(
            {
                "offset": r.seq,
                "operation": r.operation,
                "origin": r.origin,
                "entity": {"type": r.entity, "data": data},
            }
        )
    next_offset = rows[-1].seq if rows else (offset or 0)
    return {"nextOffset": next_offset, "updates": updates}


def last_offset(
    db: Database, workspace_id: str, node_id: str | None = None, entity: str | None = None
) -> dict[str, int]:
    with db.read() as conn:
        load_workspace(conn, workspace_id)
        node_ids, entity = _scope(conn, workspace_id, node_id, entity)
        return {"lastOffset": journal.last_seq(conn, workspace_id, node_ids, entity)}
