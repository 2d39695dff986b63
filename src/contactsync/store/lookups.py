"""Named queries: the per-request reads of the real-time subscribe API, as prebuilt statements.

The same reads as :mod:`store.workspaces` and :mod:`store.customers` make, built once at
import with bound parameters: building a statement's clauses costs SQLAlchemy more than
SQLite takes to answer it, and these run on every subscribe (bench/realtime_api.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import customers, nodes, workspaces

_WORKSPACE = sa.select(workspaces).where(workspaces.c.id == sa.bindparam("wid"))
_NODE = sa.select(nodes).where(nodes.c.workspace_id == sa.bindparam("wid"), nodes.c.id == sa.bindparam("nid"))
_BY_MATCH_KEY = sa.select(customers).where(
    customers.c.node_id == sa.bindparam("nid"), customers.c.match_key == sa.bindparam("key")
)
_BY_MATCH_KEY_FOR_UPDATE = _BY_MATCH_KEY.with_for_update()


def workspace(conn: Connection, workspace_id: str) -> Row[Any] | None:
    return conn.execute(_WORKSPACE, {"wid": workspace_id}).first()


def node(conn: Connection, workspace_id: str, node_id: str) -> Row[Any] | None:
    return conn.execute(_NODE, {"wid": workspace_id, "nid": node_id}).first()


def customer_by_match_key(
    conn: Connection, node_id: str, key: str, *, for_update: bool = False
) -> Row[Any] | None:
    """The node's customer holding matching key ``key`` (unique per node), the whole row."""
    query = _BY_MATCH_KEY_FOR_UPDATE if for_update and conn.dialect.name == "postgresql" else _BY_MATCH_KEY
    return conn.execute(query, {"nid": node_id, "key": key}).first()
