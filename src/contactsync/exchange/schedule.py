"""The schedule of an exchange job (cron or friendly form, time zone, start/end, pause), kept by
:mod:`contactsync.scheduling`; "run now" is always available beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contactsync.errors import not_found
from contactsync.exchange.jobs import SCHEDULE_KIND, ExchangeEnv, get_job
from contactsync.scheduling import schedules


def get_schedule(env: ExchangeEnv, workspace_id: str, ref: str) -> dict[str, Any]:
    job = get_job(env, workspace_id, ref)
    with env.db.read() as conn:
        found = schedules.get_schedule(conn, SCHEDULE_KIND, job.id)
    if found is None:
        raise not_found("schedule of exchange job", job.name)
    return found


def set_schedule(env: ExchangeEnv, workspace_id: str, ref: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Create or replace the job's schedule; returns it with its next run times."""
    job = get_job(env, workspace_id, ref)
    with env.db.write() as conn:
        return schedules.set_schedule(conn, SCHEDULE_KIND, job.id, spec)


def delete_schedule(env: ExchangeEnv, workspace_id: str, ref: str) -> None:
    job = get_job(env, workspace_id, ref)
    with env.db.write() as conn:
        schedules.delete_schedule(conn, SCHEDULE_KIND, job.id)


def pause(env: ExchangeEnv, workspace_id: str, ref: str) -> dict[str, Any]:
    """Pause the job's schedule (no scheduled run until resumed; "run now" still works)."""
    job = get_job(env, workspace_id, ref)
    with env.db.write() as conn:
        return schedules.pause(conn, SCHEDULE_KIND, job.id)


def resume(env: ExchangeEnv, workspace_id: str, ref: str) -> dict[str, Any]:
    """Resume the job's schedule from its next fire time (missed ticks are not replayed)."""
    job = get_job(env, workspace_id, ref)
    with env.db.write() as conn:
        return schedules.resume(conn, SCHEDULE_KIND, job.id)
