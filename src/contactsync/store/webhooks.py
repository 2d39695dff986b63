"""Named queries: outbound webhooks, the outbox cursors and deliveries, inbound tokens and events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import consent_ledger, customers, journal
from contactsync.store.webhook_tables import (
    inbound_events,
    inbound_tokens,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhooks,
)

# --- webhooks --------------------------------------------------------------------------------


def insert_webhook(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(webhooks.insert(), row)


def get_webhook(conn: Connection, workspace_id: str, webhook_id: str) -> Row[Any] | None:
    query = sa.select(webhooks).where(webhooks.c.workspace_id == workspace_id, webhooks.c.id == webhook_id)
    return conn.execute(query).first()


def list_webhooks(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = (
        sa.select(webhooks)
        .where(webhooks.c.workspace_id == workspace_id)
        .order_by(webhooks.c.created_at, webhooks.c.id)
    )
    return conn.execute(query).all()


def enabled_webhooks(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(sa.select(webhooks).where(webhooks.c.enabled.is_(True))).all()


def update_webhook(conn: Connection, webhook_id: str, values: dict[str, Any]) -> None:
    conn.execute(webhooks.update().where(webhooks.c.id == webhook_id).values(**values))


def delete_webhook(conn: Connection, webhook_id: str) -> None:
    ids = sa.select(webhook_deliveries.c.id).where(webhook_deliveries.c.webhook_id == webhook_id)
    conn.execute(webhook_attempts.delete().where(webhook_attempts.c.delivery_id.in_(ids)))
    conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))


# --- the outbox: journal and ledger past the cursors ------------------------------------------


def high_water(conn: Connection, *, lock_timeout_ms: int = 50) -> tuple[int, int] | None:
    """The journal seq and ledger id up to which every entry is committed, or None when the
    tables are busy (try again later).

    SQLite commits writers one at a time, in id order, so the largest id a reader sees has no
    uncommitted id below it. PostgreSQL hands out ids before commit, so a later id may commit
    first: a SHARE lock waits for the writers in flight (they hold ROW EXCLUSIVE) and keeps new
    ones out for the instant of the two ``max`` reads. Call it in a transaction of its own; the
    lock ends with it.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("LOCK TABLE journal, consent_ledger IN SHARE MODE")
        except sa.exc.OperationalError:
            return None
    return outbox_positions(conn)


def outbox_positions(conn: Connection) -> tuple[int, int]:
    """The newest journal seq and ledger id (a webhook gets the events after them)."""
    seq = conn.execute(sa.select(sa.func.max(journal.c.seq))).scalar_one_or_none()
    ledger = conn.execute(sa.select(sa.func.max(consent_ledger.c.id))).scalar_one_or_none()
    return int(seq or 0), int(ledger or 0)


def cursors(conn: Connection, *, lock: bool) -> dict[str, int]:
    """The fan-out positions; ``lock`` holds them until the transaction ends (one fan-out at a
    time on PostgreSQL; SQLite's write transaction already serialises)."""
    query = sa.select(webhook_cursors)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {r.name: int(r.position) for r in conn.execute(query)}


def advance_cursor(conn: Connection, name: str, position: int) -> None:
    """Move a cursor forward to ``position`` (never back)."""
    done = conn.execute(
        webhook_cursors.update()
        .where(webhook_cursors.c.name == name)
        .values(
            position=sa.case(
                (webhook_cursors.c.position < position, position), else_=webhook_cursors.c.position
            )
        )
    )
    if not done.rowcount:
        conn.execute(webhook_cursors.insert().values(name=name, position=position))


def has_enabled_webhooks(conn: Connection) -> bool:
    query = sa.select(webhooks.c.id).where(webhooks.c.enabled.is_(True)).limit(1)
    return conn.execute(query).first() is not None


def journal_after(conn: Connection, after: int, upto: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(journal)
        .where(journal.c.seq > after, journal.c.seq <= upto)
        .order_by(journal.c.seq)
        .limit(limit)
    )
    return conn.execute(query).all()


def ledger_after(conn: Connection, after: int, upto: int, limit: int) -> Sequence[Row[Any]]:
    """Ledger entries with the workspace and node of their customer (NULL once it is deleted)."""
    query = (
        sa.select(consent_ledger, customers.c.workspace_id, customers.c.node_id)
        .select_from(consent_ledger.outerjoin(customers, customers.c.id == consent_ledger.c.customer_id))
        .where(consent_ledger.c.id > after, consent_ledger.c.id <= upto)
        .order_by(consent_ledger.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def deleted_customers(conn: Connection, customer_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """The journal's DELETE entries of these customers (a scan: only for customers deleted
    before the fan-out reached their subscription change)."""
    if not customer_ids:
        return {}
    query = sa.select(journal).where(
        journal.c.entity == "CUSTOMER",
        journal.c.operation == "DELETE",
        journal.c.entity_id.in_(list(customer_ids)),
    )
    return {r.entity_id: r for r in conn.execute(query)}


# --- deliveries --------------------------------------------------------------------------------


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(webhook_deliveries.insert(), list(rows))


def any_due(conn: Connection, now: int) -> bool:
    """Whether a delivery is due (a read, so an idle loop never takes the write lock)."""
    query = sa.select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now
    )
    return conn.execute(query.limit(1)).first() is not None


def claim_due(conn: Connection, now: int, lease_until: int, limit: int) -> Sequence[Row[Any]]:
    """Pending deliveries due at ``now``, with their webhook's url and sealed secret; their next
    attempt moves to ``lease_until`` so no other worker takes them meanwhile (a worker that
    dies leaves them to be retried when the lease ends)."""
    due = (
        sa.select(webhook_deliveries.c.id)
        .where(webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id.in_(ids))
        .values(next_attempt_at=lease_until)
    )
    query = (
        sa.select(webhook_deliveries, webhooks.c.url, webhooks.c.secret)
        .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        .where(webhook_deliveries.c.id.in_(ids))
    )
    return conn.execute(query).all()


def record_attempt(
    conn: Connection, delivery_id: str, attempt: dict[str, Any], values: dict[str, Any]
) -> None:
    conn.execute(webhook_attempts.insert().values(delivery_id=delivery_id, **attempt))
    conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery_id)
        .values(attempts=webhook_deliveries.c.attempts + 1, **values)
    )


def list_deliveries(
    conn: Connection,
    workspace_id: str,
    *,
    webhook_id: str | None,
    status: str | None,
    limit: int,
) -> Sequence[Row[Any]]:
    conds: list[Any] = [webhooks.c.workspace_id == workspace_id]
    if webhook_id:
        conds.append(webhook_deliveries.c.webhook_id == webhook_id)
    if status:
        conds.append(webhook_deliveries.c.status == status)
    query = (
        sa.select(webhook_deliveries, webhooks.c.url)
        .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        .where(*conds)
        .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


def get_delivery(conn: Connection, workspace_id: str, delivery_id: str) -> Row[Any] | None:
    query = (
        sa.select(webhook_deliveries, webhooks.c.url)
        .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        .where(webhooks.c.workspace_id == workspace_id, webhook_deliveries.c.id == delivery_id)
    )
    return conn.execute(query).first()


def attempts_of(conn: Connection, delivery_id: str) -> Sequence[Row[Any]]:
    query = (
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.id)
    )
    return conn.execute(query).all()


def update_delivery(conn: Connection, delivery_id: str, values: dict[str, Any]) -> None:
    conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == delivery_id).values(**values))


# --- inbound -----------------------------------------------------------------------------------


def set_inbound_token(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(inbound_tokens.delete().where(inbound_tokens.c.source_id == row["source_id"]))
    conn.execute(inbound_tokens.insert(), row)


def inbound_token(conn: Connection, source_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(inbound_tokens).where(inbound_tokens.c.source_id == source_id)).first()


def insert_inbound_event(conn: Connection, row: dict[str, Any]) -> bool:
    """Queue an event; False when the source already has one with the same key (a replay)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(inbound_events).values(**row).on_conflict_do_nothing(index_elements=["source_id", "event_key"])
    )
    return conn.execute(stmt.returning(inbound_events.c.id)).first() is not None


def any_inbound_due(conn: Connection, now: int) -> bool:
    query = sa.select(inbound_events.c.id).where(
        inbound_events.c.status == "queued", inbound_events.c.next_attempt_at <= now
    )
    return conn.execute(query.limit(1)).first() is not None


def claim_inbound(conn: Connection, now: int, lease_until: int, limit: int) -> Sequence[Row[Any]]:
    """Queued events due at ``now``, oldest first; leased like :func:`claim_due`."""
    due = (
        sa.select(inbound_events.c.id)
        .where(inbound_events.c.status == "queued", inbound_events.c.next_attempt_at <= now)
        .order_by(inbound_events.c.next_attempt_at, inbound_events.c.received_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        inbound_events.update().where(inbound_events.c.id.in_(ids)).values(next_attempt_at=lease_until)
    )
    query = (
        sa.select(inbound_events).where(inbound_events.c.id.in_(ids)).order_by(inbound_events.c.received_at)
    )
    return conn.execute(query).all()


def update_inbound(conn: Connection, event_ids: Sequence[str], values: dict[str, Any]) -> None:
    if event_ids:
        conn.execute(inbound_events.update().where(inbound_events.c.id.in_(list(event_ids))).values(**values))


def list_inbound(conn: Connection, source_id: str, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(inbound_events)
        .where(inbound_events.c.source_id == source_id)
        .order_by(inbound_events.c.received_at.desc())
        .limit(limit)
    )
    return conn.execute(query).all()
