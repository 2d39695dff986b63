"""The history that :mod:`contactsync.retention` prunes: which rows are old enough to go.

Each kind is a parent table whose children go with it (ON DELETE CASCADE): sync runs with
their per-record log, exchange runs with their failed-operations rows, webhook deliveries
with their attempts; inbound provider events have none. Only finished rows are candidates,
and never the newest run of a source or of an exchange job (the sources and jobs pages show
it), nor an exchange run a later run can still resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contactsync.store.exchange_tables import exchange_runs
from contactsync.store.tables import runs
from contactsync.store.webhook_tables import inbound_events, webhook_deliveries

#: statuses of an exchange run that a later run resumes from its committed progress
RESUMABLE = ("interrupted", "failed")


@dataclass(frozen=True)
class Kind:
    name: str  # as the CLI and the log name it
    table: sa.Table
    where: Callable[[int], sa.ColumnElement[bool]]  # the rows older than a cutoff (ms) that may go


def _sync_runs(cutoff: int) -> sa.ColumnElement[bool]:
    newer = sa.alias(runs, "newer")
    has_newer = sa.exists().where(
        newer.c.source_id == runs.c.source_id, newer.c.started_at > runs.c.started_at
    )
    return sa.and_(
        runs.c.status != "running",
        sa.func.coalesce(runs.c.ended_at, runs.c.started_at) < cutoff,
        has_newer,
    )


def _exchange_runs(cutoff: int) -> sa.ColumnElement[bool]:
    newer = sa.alias(exchange_runs, "newer")
    has_newer = sa.exists().where(
        newer.c.job_id == exchange_runs.c.job_id, newer.c.started_at > exchange_runs.c.started_at
    )
    resumable = sa.and_(
        exchange_runs.c.status.in_(RESUMABLE),
        exchange_runs.c.progress > 0,
        exchange_runs.c.resumed_by.is_(None),
    )
    return sa.and_(
        exchange_runs.c.status != "running",
        sa.func.coalesce(exchange_runs.c.ended_at, exchange_runs.c.started_at) < cutoff,
        has_newer,
        ~resumable,
    )


def _deliveries(cutoff: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        webhook_deliveries.c.status.in_(("delivered", "failed")),
        webhook_deliveries.c.created_at < cutoff,
    )


def _inbound(cutoff: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        inbound_events.c.status.in_(("processed", "ignored", "failed")),
        inbound_events.c.received_at < cutoff,
    )


KINDS = (
    Kind("sync runs", runs, _sync_runs),
    Kind("exchange runs", exchange_runs, _exchange_runs),
    Kind("webhook deliveries", webhook_deliveries, _deliveries),
    Kind("inbound events", inbound_events, _inbound),
)


def count(conn: Connection, kind: Kind, cutoff: int) -> int:
    query = sa.select(sa.func.count()).select_from(kind.table).where(kind.where(cutoff))
    return int(conn.execute(query).scalar_one())


def delete_some(conn: Connection, kind: Kind, cutoff: int, limit: int) -> int:
    """Delete up to ``limit`` of the kind's rows older than ``cutoff`` (their children go with
    them); how many went."""
    ids: Sequence[str] = (
        conn.execute(sa.select(kind.table.c.id).where(kind.where(cutoff)).limit(limit)).scalars().all()
    )
    if ids:
        conn.execute(kind.table.delete().where(kind.table.c.id.in_(ids)))
    return len(ids)
