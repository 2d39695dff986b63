"""Named queries: the change journal (the hub's ordered change feed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import journal

_COLUMNS = (
    "workspace_id",
    "node_id",
    "entity",
    "entity_id",
    "operation",
    "origin",
    "at",
    "snapshot",
)


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append journal entries (driver-level executemany: one per write on the bulk path)."""
    if rows:
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        marks = ", ".join([mark] * len(_COLUMNS))
        sql = f"INSERT INTO journal ({', '.join(_COLUMNS)}) VALUES ({marks})"  # noqa: S608 - constants
        conn.exec_driver_sql(sql, [tuple(r[c] for c in _COLUMNS) for r in rows])


def append_entries(
    conn: Connection,
    workspace_id: str,
    node_id: str,
    entity: str,
    origin: str,
    at: int,
    entries: Sequence[tuple[str, str]],
) -> None:
    """Append one entry per (entity id, operation), in that order, in one statement.

    The bulk path's form of :func:`append` for entries that share everything but the
    entity and the operation (and have no snapshot): the pairs travel as one JSON array
    (SQLite) or two arrays (PostgreSQL) instead of one bound row each.
    """
    if not entries:
        return
    columns = ", ".join(_COLUMNS)
    if conn.dialect.name == "postgresql":
        sql = (
            f"INSERT INTO journal ({columns}) SELECT %s, %s, %s, e.entity_id, e.operation, %s, %s, NULL"  # noqa: S608 - constants
            " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS e(entity_id, operation, n)"
            " ORDER BY e.n"
        )
        ids = [e[0] for e in entries]
        ops = [e[1] for e in entries]
        conn.exec_driver_sql(sql, (workspace_id, node_id, entity, origin, at, ids, ops))
        return
    sql = (
        f"INSERT INTO journal ({columns}) SELECT ?, ?, ?, json_extract(value, '$[0]'),"  # noqa: S608 - constants
        " json_extract(value, '$[1]'), ?, ?, NULL FROM json_each(?) ORDER BY key"
    )
    conn.exec_driver_sql(sql, (workspace_id, node_id, entity, origin, at, orjson.dumps(entries).decode()))


def _scope(workspace_id: str, node_ids: Sequence[str] | None, entity: str | None) -> list[Any]:
    conds: list[Any] = [journal.c.workspace_id == workspace_id]
    if node_ids is not None:
        conds.append(journal.c.node_id.in_(list(node_ids)))
    if entity:
        conds.append(journal.c.entity == entity)
    return conds


def read(
    conn: Connection,
    workspace_id: str,
    *,
    after_seq: int | None,
    since_ms: int | None,
    node_ids: Sequence[str] | None,
    entity: str | None,
    limit: int,
) -> Sequence[Row[Any]]:
    conds = _scope(workspace_id, node_ids, entity)
    if after_seq is not None:
        conds.append(journal.c.seq > after_seq)
    elif since_ms is not None:
        conds.append(journal.c.at >= since_ms)
    query = sa.select(journal).where(*conds).order_by(journal.c.seq).limit(limit)
    return conn.execute(query).all()


def last_seq(conn: Connection, workspace_id: str, node_ids: Sequence[str] | None, entity: str | None) -> int:
    query = sa.select(sa.func.max(journal.c.seq)).where(*_scope(workspace_id, node_ids, entity))
    return int(conn.execute(query).scalar_one_or_none() or 0)


def count_for(conn: Connection, entity_ids: Sequence[str]) -> int:
    query = sa.select(sa.func.count()).select_from(journal).where(journal.c.entity_id.in_(list(entity_ids)))
    return int(conn.execute(query).scalar_one())


def node_of(conn: Connection, workspace_id: str, entity: str, entity_id: str) -> str | None:
    """The node of an entity's latest journal entry (a full scan: meant for rare lookups)."""
    query = (
        sa.select(journal.c.node_id)
        .where(
            journal.c.workspace_id == workspace_id,
            journal.c.entity == entity,
            journal.c.entity_id == entity_id,
        )
        .order_by(journal.c.seq.desc())
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()
