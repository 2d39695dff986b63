"""Named queries: subscriptions and the consent ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import consent_ledger, subscriptions

_UPDATABLE = ("status", "reason", "opted_out_at", "updated_at", "attributes")


def for_customers(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    out: dict[str, list[Row[Any]]] = defaultdict(list)
    if customer_ids:
        query = (
            sa.select(subscriptions)
            .where(subscriptions.c.customer_id.in_(list(customer_ids)))
            .order_by(
                subscriptions.c.customer_id,
                subscriptions.c.registered_at,
                subscriptions.c.subscription_id,
            )
        )
        for row in conn.execute(query):
            out[row.customer_id].append(row)
    return out


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(subscriptions.insert(), list(rows))


def update_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = (
        subscriptions.update()
        .where(
            subscriptions.c.customer_id == sa.bindparam("_cid"),
            subscriptions.c.subscription_id == sa.bindparam("_sid"),
        )
        .values({c: sa.bindparam(c) for c in _UPDATABLE})
    )
    params = [
        {**{c: r[c] for c in _UPDATABLE}, "_cid": r["customer_id"], "_sid": r["subscription_id"]}
        for r in rows
    ]
    conn.execute(stmt, params)


def delete(conn: Connection, customer_id: str, subscription_id: str) -> int:
    result = conn.execute(
        subscriptions.delete().where(
            subscriptions.c.customer_id == customer_id,
            subscriptions.c.subscription_id == subscription_id,
        )
    )
    return int(result.rowcount)


def append_ledger(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(consent_ledger.insert(), list(rows))


def ledger(conn: Connection, customer_id: str) -> Sequence[Row[Any]]:
    query = (
        sa.select(consent_ledger)
        .where(consent_ledger.c.customer_id == customer_id)
        .order_by(consent_ledger.c.id)
    )
    return conn.execute(query).all()
