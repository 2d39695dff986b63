"""Named queries: customers (one statement per batch on the bulk paths)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
import psycopg
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


#: PostgreSQL's bulk insert of new customers (the data column is JSONB: parsed from the text)
_COPY_SQL = f"COPY customers ({', '.join(_INSERT_COLUMNS)}) FROM STDIN"

#: one row of :func:`insert_new`: id, external_id, match_key, enabled, content_hash, data (JSON text)
NewCustomer = tuple[str, str | None, str | None, bool, str, str]

_NEW_COLUMNS = ("id", "external_id", "match_key", "enabled", "content_hash", "data")
_NEW_ROW_PARAMS = len(_NEW_COLUMNS)


@lru_cache(maxsize=8)
def _insert_new_sqlite(rows: int) -> str:
    """One INSERT of ``rows`` new customers; node, workspace and times are bound once."""
    columns = ", ".join(_INSERT_COLUMNS)
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO customers ({columns}) SELECT column1, ?, ?, column2, column3, column4, ?, ?,"  # noqa: S608 - constants
        f" column5, column6 FROM (VALUES {values})"
    )


def insert_new(
    conn: Connection, workspace_id: str, node_id: str, at: int, rows: Sequence[NewCustomer]
) -> None:
    """Insert new customers of one node, all registered and updated at ``at`` (bulk path).

    On SQLite a batch is one multi-row INSERT when the build allows that many parameters
    (Debian's: 250,000), so the driver is called once, not once per row, and releases the
    GIL for the whole batch; PostgreSQL gets a COPY in the caller's transaction (an existing
    matching key fails it as it fails an INSERT, with a unique violation): psycopg encodes the
    rows in C, where an executemany spends ~20 µs of Python per row.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        try:
            with dbapi.cursor() as cur, cur.copy(_COPY_SQL) as copy:  # type: ignore[attr-defined]
                write = copy.write_row
                for r in rows:
                    write((r[0], workspace_id, node_id, r[1], r[2], r[3], at, at, r[4], r[5]))
        except psycopg.Error as e:  # as SQLAlchemy raises it for a statement (IntegrityError …)
            raise sa.exc.DBAPIError.instance(_COPY_SQL, None, e, psycopg.Error, dialect=conn.dialect) from e
        return
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(
            _insert_sql(conn.dialect.name),
            [(r[0], workspace_id, node_id, r[1], r[2], r[3], at, at, r[4], r[5]) for r in rows],
        )
        return
    dbapi = conn.connection.dbapi_connection
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if dbapi is not None else 999
    chunk = max(1, (limit - 4) // _NEW_ROW_PARAMS)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        params: list[Any] = [workspace_id, node_id, at, at]
        for row in part:
            params.extend(row)
        conn.exec_driver_sql(_insert_new_sqlite(len(part)), tuple(params))


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


@lru_cache(maxsize=8)
def _update_changed_sqlite(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "UPDATE customers SET external_id = v.column2, match_key = v.column3, enabled = v.column4,"  # noqa: S608 - constants
        " updated_at = ?, content_hash = v.column5, data = v.column6"
        f" FROM (VALUES {values}) AS v WHERE customers.id = v.column1"
    )


def update_changed(conn: Connection, at: int, rows: Sequence[NewCustomer]) -> None:
    """Rewrite whole customers, all updated at ``at``; rows as for :func:`insert_new` (bulk path).

    SQLite (3.33 and later: UPDATE … FROM) gets one statement per batch, PostgreSQL an
    executemany: the SQLite driver takes the GIL back for every row of an executemany.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite" or sqlite3.sqlite_version_info < (3, 33):
        update_many(conn, [dict(zip(_NEW_COLUMNS, r, strict=True)) | {"updated_at": at} for r in rows])
        return
    dbapi = conn.connection.dbapi_connection
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if dbapi is not None else 999
    chunk = max(1, (limit - 1) // _NEW_ROW_PARAMS)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        params: list[Any] = [at]
        for row in part:
            params.extend(row)
        conn.exec_driver_sql(_update_changed_sqlite(len(part)), tuple(params))


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


class Existing(NamedTuple):
    """An existing customer as the bulk path needs it (see :func:`find_existing`)."""

    id: str
    match_key: str
    content_hash: str
    registered_at: int
    data: str | None = None  # JSON text; with_data only
    external_id: str | None = None
    enabled: bool | None = None


def find_existing(
    conn: Connection, node_id: str, keys: Sequence[str], *, with_data: bool = False
) -> dict[str, Existing]:
    """:func:`find_by_match_keys` for the bulk path: the keys travel as one parameter.

    On SQLite the answer is one JSON array from one row: the driver releases and takes back
    the GIL for every row it steps through, and a thread busy elsewhere makes each of those
    a wait.
    """
    if not keys:
        return {}
    columns = "id, match_key, content_hash, registered_at"
    if conn.dialect.name == "postgresql":
        if with_data:
            columns += ", CAST(data AS TEXT) AS data, external_id, enabled"
        sql = f"SELECT {columns} FROM customers WHERE node_id = %s AND match_key = ANY(%s)"  # noqa: S608 - constants
        rows: Sequence[Any] = conn.exec_driver_sql(sql, (node_id, list(keys))).all()
    else:
        if with_data:
            columns += ", data, external_id, enabled"
        sql = (
            f"SELECT json_group_array(json_array({columns})) FROM customers"  # noqa: S608 - constants
            " WHERE node_id = ? AND match_key IN (SELECT value FROM json_each(?))"
        )
        found = conn.exec_driver_sql(sql, (node_id, orjson.dumps(list(keys)).decode())).scalar_one()
        rows = orjson.loads(found)
    out = {}
    for row in rows:
        existing = Existing(*row)
        if with_data:
            existing = existing._replace(enabled=bool(existing.enabled))
        out[existing.match_key] = existing
    return out


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
