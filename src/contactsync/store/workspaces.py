"""Named queries: workspaces and nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import customers, nodes, workspaces


def insert_workspace(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(workspaces.insert(), row)


def get_workspace(conn: Connection, workspace_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(workspaces).where(workspaces.c.id == workspace_id)).first()


def list_workspaces(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(sa.select(workspaces).order_by(workspaces.c.created_at)).all()


def update_workspace(conn: Connection, workspace_id: str, values: dict[str, Any]) -> None:
    conn.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(**values))


def insert_node(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(nodes.insert(), row)


def get_node(conn: Connection, workspace_id: str, node_id: str) -> Row[Any] | None:
    query = sa.select(nodes).where(nodes.c.workspace_id == workspace_id, nodes.c.id == node_id)
    return conn.execute(query).first()


def get_node_by_name(conn: Connection, workspace_id: str, name: str) -> Row[Any] | None:
    query = sa.select(nodes).where(nodes.c.workspace_id == workspace_id, nodes.c.name == name)
    return conn.execute(query).first()


def list_nodes(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = sa.select(nodes).where(nodes.c.workspace_id == workspace_id).order_by(nodes.c.created_at)
    return conn.execute(query).all()


def count_customers(conn: Connection, node_ids: Sequence[str]) -> int:
    query = sa.select(sa.func.count()).select_from(customers).where(customers.c.node_id.in_(node_ids))
    return int(conn.execute(query).scalar_one())
