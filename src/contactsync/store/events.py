"""Named queries: events and customer sessions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import events, sessions


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(events.insert(), row)


def get(conn: Connection, workspace_id: str, event_id: str) -> Row[Any] | None:
    query = sa.select(events).where(events.c.workspace_id == workspace_id, events.c.id == event_id)
    return conn.execute(query).first()


def replace(conn: Connection, event_id: str, values: dict[str, Any]) -> None:
    conn.execute(events.update().where(events.c.id == event_id).values(**values))


def delete(conn: Connection, event_id: str) -> None:
    conn.execute(events.delete().where(events.c.id == event_id))


def of_customer(conn: Connection, customer_id: str) -> Sequence[Row[str, str | None]]:
    """The id and node of each event of a customer (served by the customer/date index)."""
    query = sa.select(events.c.id, events.c.node_id).where(events.c.customer_id == customer_id)
    return conn.execute(query).all()


def list_page(
    conn: Connection,
    workspace_id: str,
    *,
    customer_id: str | None,
    node_ids: Sequence[str] | None,
    types: Sequence[str],
    contexts: Sequence[str],
    mode: str | None,
    date_from: int | None,
    date_to: int | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Row[Any]], int]:
    conds: list[Any] = [events.c.workspace_id == workspace_id]
    if customer_id:
        conds.append(events.c.customer_id == customer_id)
    if node_ids is not None:
        conds.append(events.c.node_id.in_(list(node_ids)))
    if types:
        conds.append(events.c.type.in_(list(types)))
    if contexts:
        conds.append(events.c.context.in_(list(contexts)))
    if mode:
        conds.append(events.c.mode == mode)
    if date_from is not None:
        conds.append(events.c.date >= date_from)
    if date_to is not None:
        conds.append(events.c.date <= date_to)
    query = sa.select(events).where(*conds).order_by(events.c.date.desc(), events.c.id)
    rows = conn.execute(query.offset(offset).limit(limit)).all()
    total = int(conn.execute(sa.select(sa.func.count()).select_from(events).where(*conds)).scalar_one())
    return rows, total


def add_session(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(sessions.insert(), row)


def session_owner(conn: Connection, workspace_id: str, value: str) -> str | None:
    query = sa.select(sessions.c.customer_id).where(
        sessions.c.workspace_id == workspace_id, sessions.c.value == value
    )
    return conn.execute(query).scalar_one_or_none()


def list_sessions(conn: Connection, customer_id: str) -> Sequence[Row[Any]]:
    query = sa.select(sessions).where(sessions.c.customer_id == customer_id).order_by(sessions.c.created_at)
    return conn.execute(query).all()


def delete_session(conn: Connection, customer_id: str, value: str) -> int:
    result = conn.execute(
        sessions.delete().where(sessions.c.customer_id == customer_id, sessions.c.value == value)
    )
    return int(result.rowcount)


def claim_session_events(
    conn: Connection, workspace_id: str, value: str, customer_id: str, node_id: str
) -> int:
    """Give the anonymous events of a session to the customer it now belongs to."""
    result = conn.execute(
        events.update()
        .where(
            events.c.workspace_id == workspace_id,
            events.c.session_id == value,
            events.c.customer_id.is_(None),
        )
        .values(customer_id=customer_id, node_id=node_id)
    )
    return int(result.rowcount)


def get_many(conn: Connection, workspace_id: str, event_ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not event_ids:
        return {}
    query = sa.select(events).where(events.c.workspace_id == workspace_id, events.c.id.in_(list(event_ids)))
    return {row.id: row for row in conn.execute(query)}
