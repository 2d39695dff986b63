"""Schedules and the run queue.

SQLAlchemy Core, on the hub's metadata; migration 0003 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.tables import metadata
from contactsync.store.types import Millis

# one schedule per target (an exchange job, a source …): the spec is JSON (cron or friendly form,
# time zone, start/end, paused); next_run_at is the next fire time not yet enqueued
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("target_kind", sa.String(40), primary_key=True),
    sa.Column("target_id", sa.String(36), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("next_run_at", Millis),  # NULL: paused, or no fire time left (past its end)
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.Index("ix_schedules_next_run_at", "next_run_at"),
)

# the run queue: one row per requested run of a target. A scheduled tick carries the fire time
# it stands for, unique per target, so two schedulers enqueue it once; manual, API and
# real-time requests have no scheduled_for (NULLs never collide).
run_requests = sa.Table(
    "run_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("target_kind", sa.String(40), nullable=False),
    sa.Column("target_id", sa.String(36), nullable=False),
    sa.Column("trigger", sa.String(40), nullable=False),  # manual, api, schedule, frequency, realtime
    sa.Column("scheduled_for", Millis),
    sa.Column("status", sa.String(16), nullable=False),  # queued, running, done, failed
    sa.Column("enqueued_at", Millis, nullable=False),
    sa.Column("run_after", Millis, nullable=False),  # not claimed before (retries back off)
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("claimed_by", sa.String(255)),  # host:pid/worker of the worker running it
    sa.Column("claimed_at", Millis),
    sa.Column("heartbeat", Millis),
    sa.Column("finished_at", Millis),
    sa.Column("error_code", sa.String(8)),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("target_kind", "target_id", "scheduled_for"),
    sa.Index("ix_run_requests_status_run_after", "status", "run_after"),
    # one running request per target, enforced by the database on SQLite and PostgreSQL alike
    sa.Index(
        "uq_run_requests_running_target",
        "target_kind",
        "target_id",
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)
