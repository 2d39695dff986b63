"""Named queries: customers (one statement per batch on the bulk paths)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Result, Row
from sqlalchemy.sql.elements import ColumnElement

from contactsync.store.tables import customers, events, sessions, subscriptions

_UPDATABLE = ("external_id", "match_key", "enabled", "updated_at", "content_hash", "data")


_INSERT_COLUMNS = (
    "id",
    "workspace_id",
    "node_id",
    "external_id",
    "match_key",
    "enabled",
    "registered_at",
    "updated_at",
    "content_hash",
    "data",
)


def _insert_sql(dialect: str) -> str:
    marks = ["%s"] * len(_INSERT_COLUMNS) if dialect == "postgresql" else ["?"] * len(_INSERT_COLUMNS)
    if dialect == "postgresql":
        marks[-1] = "CAST(%s AS JSONB)"
    columns = ", ".join(_INSERT_COLUMNS)
    return f"INSERT INTO customers ({columns}) VALUES ({', '.join(marks)})"  # noqa: S608 - constants


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert customers in one driver-level executemany (the bulk path's hot spot)."""
    if rows:
        params = [tuple(r[c] for c in _INSERT_COLUMNS) for r in rows]
        conn.exec_driver_sql(_insert_sql(conn.dialect.name), params)


def update_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite whole customers; each row has ``id`` plus the updatable columns."""
    if not rows:
        return
    stmt = (
        customers.update()
        .where(customers.c.id == sa.bindparam("_id"))
        .values({c: sa.bindparam(c) for c in _UPDATABLE})
    )
    conn.execute(stmt, [{**{c: r[c] for c in _UPDATABLE}, "_id": r["id"]} for r in rows])


def touch(conn: Connection, customer_id: str, updated_at: int) -> None:
    conn.execute(customers.update().where(customers.c.id == customer_id).values(updated_at=updated_at))


def get(
    conn: Connection, workspace_id: str, customer_id: str, *, for_update: bool = False
) -> Row[Any] | None:
    query = sa.select(customers).where(
        customers.c.workspace_id == workspace_id, customers.c.id == customer_id
    )
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def find_id_by_match_key(conn: Connection, node_id: str, key: str) -> str | None:
    query = sa.select(customers.c.id).where(customers.c.node_id == node_id, customers.c.match_key == key)
    return conn.execute(query).scalar_one_or_none()


def find_by_match_keys(
    conn: Connection, node_id: str, keys: Iterable[str], *, with_data: bool = False
) -> dict[str, Row[Any]]:
    """Existing customers of a node by matching key: id, content hash (and data)."""
    cols = [
        customers.c.id,
        customers.c.match_key,
        customers.c.content_hash,
        customers.c.registered_at,
    ]
    if with_data:
        cols += [customers.c.data, customers.c.external_id, customers.c.enabled]
    query = sa.select(*cols).where(customers.c.node_id == node_id, customers.c.match_key.in_(list(keys)))
    return {row.match_key: row for row in conn.execute(query)}


def delete(conn: Connection, customer_id: str) -> None:
    conn.execute(subscriptions.delete().where(subscriptions.c.customer_id == customer_id))
    conn.execute(sessions.delete().where(sessions.c.customer_id == customer_id))
    conn.execute(events.delete().where(events.c.customer_id == customer_id))
    conn.execute(customers.delete().where(customers.c.id == customer_id))


def list_page(
    conn: Connection,
    workspace_id: str,
    node_ids: Sequence[str],
    *,
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[Sequence[Row[Any]], int, int]:
    """One page of customers plus the filtered and unfiltered totals."""
    scope = sa.and_(customers.c.workspace_id == workspace_id, customers.c.node_id.in_(node_ids))
    filtered = scope if where is None else sa.and_(scope, where)
    rows = conn.execute(
        sa.select(customers).where(filtered).order_by(*order_by, customers.c.id).offset(offset).limit(limit)
    ).all()
    count = sa.select(sa.func.count()).select_from(customers)
    total = int(conn.execute(count.where(filtered)).scalar_one())
    unfiltered = total if where is None else int(conn.execute(count.where(scope)).scalar_one())
    return rows, total, unfiltered


def rekey(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Set new matching keys (after a change of the matching policy)."""
    if rows:
        stmt = (
            customers.update()
            .where(customers.c.id == sa.bindparam("_id"))
            .values(match_key=sa.bindparam("key"))
        )
        conn.execute(stmt, list(rows))


def iter_workspace(conn: Connection, workspace_id: str) -> Result[Any]:
    query = sa.select(customers.c.id, customers.c.node_id, customers.c.external_id, customers.c.data)
    query = query.where(customers.c.workspace_id == workspace_id).execution_options(yield_per=5000)
    return conn.execute(query)


def find_by_external_id(conn: Connection, node_ids: Sequence[str], external_id: str) -> Any:
    query = (
        sa.select(customers.c.id, customers.c.node_id)
        .where(customers.c.node_id.in_(list(node_ids)), customers.c.external_id == external_id)
        .order_by(customers.c.id)
        .limit(1)
    )
    return conn.execute(query).first()


def get_many(conn: Connection, workspace_id: str, customer_ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not customer_ids:
        return {}
    query = sa.select(customers).where(
        customers.c.workspace_id == workspace_id, customers.c.id.in_(list(customer_ids))
    )
    return {row.id: row for row in conn.execute(query)}
