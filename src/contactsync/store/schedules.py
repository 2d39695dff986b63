"""Named queries: schedules, the run queue, and what the scheduler reads of sources and the journal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from contactsync.store.schedule_tables import run_requests, schedules
from contactsync.store.tables import journal, runs, sources

QUEUED, RUNNING = "queued", "running"

# --- schedules -------------------------------------------------------------------------------


def get_schedule(conn: Connection, kind: str, target_id: str) -> Row[Any] | None:
    query = sa.select(schedules).where(schedules.c.target_kind == kind, schedules.c.target_id == target_id)
    return conn.execute(query).first()


def save_schedule(conn: Connection, kind: str, target_id: str, values: dict[str, Any]) -> None:
    """Insert or update the schedule of a target (the caller holds a write transaction)."""
    where = (schedules.c.target_kind == kind, schedules.c.target_id == target_id)
    if conn.execute(schedules.update().where(*where).values(**values)).rowcount == 0:
        conn.execute(schedules.insert().values(target_kind=kind, target_id=target_id, **values))


def delete_schedule(conn: Connection, kind: str, target_id: str) -> int:
    where = (schedules.c.target_kind == kind, schedules.c.target_id == target_id)
    return int(conn.execute(schedules.delete().where(*where)).rowcount)


def list_schedules(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(sa.select(schedules).order_by(schedules.c.target_kind, schedules.c.target_id)).all()


def due_schedules(conn: Connection, now: int) -> Sequence[Row[Any]]:
    query = sa.select(schedules).where(schedules.c.next_run_at <= now, schedules.c.paused.is_(False))
    return conn.execute(query.order_by(schedules.c.next_run_at)).all()


def advance_schedule(conn: Connection, kind: str, target_id: str, seen: int, next_run_at: int | None) -> bool:
    """Move ``next_run_at`` on, unless another scheduler (or an edit) moved it since it was read."""
    query = (
        schedules.update()
        .where(
            schedules.c.target_kind == kind,
            schedules.c.target_id == target_id,
            schedules.c.next_run_at == seen,
        )
        .values(next_run_at=next_run_at)
    )
    return bool(conn.execute(query).rowcount)


# --- the run queue ---------------------------------------------------------------------------


def insert_request(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert a request; False when its (target, scheduled_for) is already there."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    query = insert(run_requests).values(**values).on_conflict_do_nothing().returning(run_requests.c.id)
    return conn.execute(query).first() is not None  # (rowcount is -1 here with psycopg)


def request_for_tick(conn: Connection, kind: str, target_id: str, scheduled_for: int) -> str | None:
    query = sa.select(run_requests.c.id).where(
        run_requests.c.target_kind == kind,
        run_requests.c.target_id == target_id,
        run_requests.c.scheduled_for == scheduled_for,
    )
    return conn.execute(query).scalar_one_or_none()


def queued_request(conn: Connection, kind: str, target_id: str) -> str | None:
    """A request of the target still waiting for a worker, if any."""
    query = sa.select(run_requests.c.id).where(
        run_requests.c.target_kind == kind,
        run_requests.c.target_id == target_id,
        run_requests.c.status == QUEUED,
    )
    return conn.execute(query.limit(1)).scalar_one_or_none()


def open_targets(conn: Connection, kind: str) -> set[str]:
    """Targets of ``kind`` with a request queued or running."""
    query = sa.select(run_requests.c.target_id).where(
        run_requests.c.target_kind == kind, run_requests.c.status.in_([QUEUED, RUNNING])
    )
    return set(conn.execute(query.distinct()).scalars())


def claim(conn: Connection, worker: str, now: int) -> Row[Any] | None:
    """Take the oldest due queued request whose target has no running request: one conditional
    UPDATE. The partial unique index on running targets backs the NOT EXISTS up under races."""
    r = run_requests.alias("r")
    other = run_requests.alias("o")
    busy = (
        sa.select(other.c.id)
        .where(
            other.c.target_kind == r.c.target_kind,
            other.c.target_id == r.c.target_id,
            other.c.status == RUNNING,
        )
        .exists()
    )
    pick = (
        sa.select(r.c.id)
        .where(r.c.status == QUEUED, r.c.run_after <= now, ~busy)
        .order_by(r.c.run_after, r.c.enqueued_at, r.c.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(of=r, skip_locked=True)
    query = (
        run_requests.update()
        .where(run_requests.c.id == pick.scalar_subquery(), run_requests.c.status == QUEUED)
        .values(
            status=RUNNING,
            claimed_by=worker,
            claimed_at=now,
            heartbeat=now,
            attempts=run_requests.c.attempts + 1,
            error_code=None,
            error=None,
        )
        .returning(*run_requests.c)
    )
    return conn.execute(query).first()


def beat(conn: Connection, request_id: str, worker: str, now: int) -> bool:
    query = (
        run_requests.update()
        .where(
            run_requests.c.id == request_id,
            run_requests.c.claimed_by == worker,
            run_requests.c.status == RUNNING,
        )
        .values(heartbeat=now)
    )
    return bool(conn.execute(query).rowcount)


def release(conn: Connection, request_id: str, worker: str | None, values: dict[str, Any]) -> bool:
    """Change a running request (finish it, or queue it again) if ``worker`` still holds it
    (``None``: whoever holds it)."""
    conds = [run_requests.c.id == request_id, run_requests.c.status == RUNNING]
    if worker is not None:
        conds.append(run_requests.c.claimed_by == worker)
    return bool(conn.execute(run_requests.update().where(*conds).values(**values)).rowcount)


def running_requests(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(sa.select(run_requests).where(run_requests.c.status == RUNNING)).all()


def reclaim(conn: Connection, request_id: str, heartbeat: int | None, values: dict[str, Any]) -> bool:
    """Change a running request whose heartbeat is still the one seen (its worker is dead)."""
    beat_is = (
        run_requests.c.heartbeat.is_(None) if heartbeat is None else run_requests.c.heartbeat == heartbeat
    )
    query = (
        run_requests.update()
        .where(run_requests.c.id == request_id, run_requests.c.status == RUNNING, beat_is)
        .values(**values)
    )
    return bool(conn.execute(query).rowcount)


def get_request(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(run_requests).where(run_requests.c.id == request_id)).first()


def list_requests(
    conn: Connection, kind: str | None, target_id: str | None, status: str | None, limit: int
) -> Sequence[Row[Any]]:
    conds = []
    if kind is not None:
        conds.append(run_requests.c.target_kind == kind)
    if target_id is not None:
        conds.append(run_requests.c.target_id == target_id)
    if status is not None:
        conds.append(run_requests.c.status == status)
    query = (
        sa.select(run_requests).where(*conds).order_by(run_requests.c.enqueued_at.desc(), run_requests.c.id)
    )
    return conn.execute(query.limit(limit)).all()


# --- what the scheduler reads of sources and the journal ---------------------------------------


def enabled_sources(conn: Connection) -> Sequence[Row[Any]]:
    """Enabled sources: id, node, settings (JSON) and creation time; no credentials."""
    query = sa.select(
        sources.c.id,
        sources.c.workspace_id,
        sources.c.node_id,
        sources.c.name,
        sources.c.settings,
        sources.c.created_at,
    ).where(sources.c.enabled.is_(True))
    return cast(Sequence[Row[Any]], conn.execute(query.order_by(sources.c.created_at)).all())


def last_run_starts(conn: Connection) -> dict[str, int]:
    """Each source's latest run start."""
    query = sa.select(runs.c.source_id, sa.func.max(runs.c.started_at)).group_by(runs.c.source_id)
    return {sid: int(at) for sid, at in conn.execute(query)}


def last_ticks(conn: Connection, kind: str) -> dict[str, int]:
    """Each target's latest scheduled tick in the queue."""
    query = (
        sa.select(run_requests.c.target_id, sa.func.max(run_requests.c.scheduled_for))
        .where(run_requests.c.target_kind == kind, run_requests.c.scheduled_for.is_not(None))
        .group_by(run_requests.c.target_id)
    )
    return {tid: int(at) for tid, at in conn.execute(query)}


def last_journal_seq(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(journal.c.seq))).scalar_one_or_none() or 0)


def customer_changes_after(conn: Connection, seq: int, limit: int) -> Sequence[Row[Any]]:
    """Customer journal entries after ``seq``: seq, node and origin only (a primary-key range)."""
    query = (
        sa.select(journal.c.seq, journal.c.node_id, journal.c.origin)
        .where(journal.c.seq > seq, journal.c.entity == "CUSTOMER")
        .order_by(journal.c.seq)
        .limit(limit)
    )
    return cast(Sequence[Row[Any]], conn.execute(query).all())
