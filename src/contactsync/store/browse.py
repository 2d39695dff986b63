"""Named queries for the console: customer pages and search, node counts, a customer's journal.

Query plans (100,000 customers in a node, SQLite; PostgreSQL picks the same indexes):

* a page of a node: ``uq_customers_node_id_match_key`` on ``node_id``, sorted by id (~30 ms);
* email prefix, when the workspace matches on the email alone: a range of the same index's
  ``match_key`` (the normalised email; < 1 ms);
* last-name prefix: a range of ``ix_customers_node_id_last_name``, an expression index
  (migration 0007) on the lower-cased last name (< 1 ms);
* first-name prefix (and email prefix under another matching policy): a scan of the node's rows
  (~200 ms per 100,000 customers, bench/console_pages.py), only when nothing else matched. A
  second expression index would make it instant too, but each one costs every bulk load time
  (two: +40%, measured), so there is one, for the name people search by;
* a customer's timeline: ``ix_journal_entity_id_seq`` (migration 0007).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import customers, journal

FIRST_NAME_PATHS = (("base", "firstName"),)
EMAIL_PATHS = (("base", "contacts", "email"),)


def _text_at(conn: Connection, path: Sequence[str]) -> Any:
    if conn.dialect.name == "postgresql":
        array = sa.literal(list(path), postgresql.ARRAY(sa.Text))
        return customers.c.data.op("#>>", return_type=sa.Text)(array)
    return sa.func.json_extract(customers.c.data, "$." + ".".join(path))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def count(conn: Connection, node_ids: Sequence[str]) -> int:
    query = sa.select(sa.func.count()).select_from(customers).where(customers.c.node_id.in_(list(node_ids)))
    return int(conn.execute(query).scalar_one())


def page(conn: Connection, node_ids: Sequence[str], *, offset: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(customers)
        .where(customers.c.node_id.in_(list(node_ids)))
        .order_by(customers.c.id)
        .offset(offset)
        .limit(limit)
    )
    return conn.execute(query).all()


def by_match_key_prefix(
    conn: Connection, node_ids: Sequence[str], prefix: str, *, offset: int, limit: int
) -> Sequence[Row[Any]]:
    """Customers whose match key starts with ``prefix`` (a range of the unique index)."""
    query = (
        sa.select(customers)
        .where(
            customers.c.node_id.in_(list(node_ids)),
            customers.c.match_key >= prefix,
            customers.c.match_key < prefix + "\U0010ffff",
        )
        .order_by(customers.c.match_key, customers.c.id)
        .offset(offset)
        .limit(limit)
    )
    return conn.execute(query).all()


def _last_name(conn: Connection) -> Any:
    """The indexed expression, verbatim (a bound parameter would not match the index)."""
    if conn.dialect.name == "postgresql":
        return sa.literal_column("lower(customers.data #>> '{base,lastName}') COLLATE \"C\"")
    return sa.literal_column("lower(json_extract(customers.data, '$.base.lastName'))")


def by_last_name_prefix(
    conn: Connection, node_ids: Sequence[str], prefix: str, *, offset: int, limit: int
) -> Sequence[Row[Any]]:
    """Customers whose lower-cased last name starts with ``prefix`` (a range of the index)."""
    expr = _last_name(conn)
    low = prefix.lower()
    query = (
        sa.select(customers)
        .where(customers.c.node_id.in_(list(node_ids)), expr >= low, expr < low + "\U0010ffff")
        .order_by(expr, customers.c.id)
        .offset(offset)
        .limit(limit)
    )
    return conn.execute(query).all()


def by_text_prefix(
    conn: Connection,
    node_ids: Sequence[str],
    prefix: str,
    paths: Sequence[Sequence[str]],
    *,
    offset: int,
    limit: int,
) -> Sequence[Row[Any]]:
    """Customers where one of ``paths`` starts with ``prefix``, case-insensitively (a scan)."""
    pattern = _escape_like(prefix.lower()) + "%"
    matches = [sa.func.lower(_text_at(conn, p)).like(pattern, escape="\\") for p in paths]
    query = (
        sa.select(customers)
        .where(customers.c.node_id.in_(list(node_ids)), sa.or_(*matches))
        .order_by(customers.c.id)
        .offset(offset)
        .limit(limit)
    )
    return conn.execute(query).all()


def timeline(conn: Connection, customer_id: str, limit: int) -> Sequence[Row[Any]]:
    """The newest journal entries of one customer (``ix_journal_entity_id_seq``)."""
    query = (
        sa.select(journal.c.seq, journal.c.operation, journal.c.origin, journal.c.at, journal.c.node_id)
        .where(journal.c.entity_id == customer_id, journal.c.entity == "CUSTOMER")
        .order_by(journal.c.seq.desc())
        .limit(limit)
    )
    return conn.execute(query).all()  # type: ignore[return-value]  # a 5-column Row is a Row
