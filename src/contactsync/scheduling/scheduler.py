"""The scheduler: turns due schedules and sources' background frequency into queued runs.

Every ``scheduler_tick_seconds`` it looks at

* **schedules** whose next fire time has come: it enqueues ONE request for the latest fire
  time at or before now (after downtime: the most recent missed tick, not a burst), keyed
  by that fire time so that two schedulers enqueue it once, and moves the next fire time on;
* **enabled sources** with a ``frequency_minutes``: a source is due when that long has passed
  since its last run started (or its last tick); a source never run is due at once. The tick
  is the latest slot ``anchor + k * frequency`` at or before now, the same for every scheduler
  reading the same rows, so it is enqueued once too. A source with a request queued or
  running is left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson

from contactsync.errors import ContactsyncError
from contactsync.hub.times import now_ms
from contactsync.scheduling import queue, schedules
from contactsync.settings import Settings
from contactsync.store import schedules as store
from contactsync.store import sync as sync_store
from contactsync.store.db import Database

log = logging.getLogger(__name__)

SOURCE = "source"
TRIGGER = "schedule"


class Scheduler:
    def __init__(self, db: Database, settings: Settings, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed", extra={"action": "scheduler.error"})
            stop.wait(self.settings.scheduler_tick_seconds)

    def tick(self, now: int | None = None) -> list[str]:
        """Enqueue what is due at ``now``; returns the request ids (existing ones included)."""
        at = self.clock() if now is None else now
        return self.tick_schedules(at) + self.tick_sources(at)

    def tick_schedules(self, now: int) -> list[str]:
        with self.db.read() as conn:
            due = store.due_schedules(conn, now)
        enqueued: list[str] = []
        for row in due:
            try:
                spec = orjson.loads(row.spec)
                tick = schedules.due_tick(spec, now)
                upcoming = schedules.next_runs(spec, 1, now)
            except ContactsyncError as e:  # e.g. a time zone gone from the system's database
                log.error(
                    "schedule of %s %s cannot be evaluated: %s",
                    row.target_kind,
                    row.target_id,
                    e,
                    extra={"action": "scheduler.bad_spec"},
                )
                continue
            with self.db.write() as conn:
                if not store.advance_schedule(
                    conn, row.target_kind, row.target_id, row.next_run_at, upcoming[0] if upcoming else None
                ):
                    continue  # another scheduler (or an edit) got there first
                if tick is not None and tick >= row.next_run_at:
                    enqueued.append(
                        queue.enqueue_in(
                            conn, row.target_kind, row.target_id, trigger=TRIGGER, scheduled_for=tick
                        )
                    )
        return enqueued

    def tick_sources(self, now: int) -> list[str]:
        with self.db.read() as conn:
            sources = store.enabled_sources(conn)
            started = store.last_run_starts(conn)
            ticked = store.last_ticks(conn, SOURCE)
            busy = store.open_targets(conn, SOURCE)
        enqueued: list[str] = []
        for source in sources:
            frequency = orjson.loads(source.settings).get("frequency_minutes")
            if not frequency or source.id in busy:
                continue
            slot = source_slot(
                int(frequency), source.created_at, started.get(source.id), ticked.get(source.id), now
            )
            if slot is None:
                continue
            with self.db.write() as conn:
                enqueued.append(
                    queue.enqueue_in(conn, SOURCE, source.id, trigger=TRIGGER, scheduled_for=slot)
                )
        return enqueued


def source_slot(
    frequency_minutes: int, created_at: int, last_start: int | None, last_tick: int | None, now: int
) -> int | None:
    """The tick a source is due for at ``now``, or None when its frequency has not elapsed."""
    anchors = [a for a in (last_start, last_tick) if a is not None]
    if not anchors:
        return int(created_at)  # never run: due at once
    anchor = max(anchors)
    period = frequency_minutes * 60_000
    if now - anchor < period:
        return None
    return anchor + period * ((now - anchor) // period)


def source_overview(db: Database, now: int) -> list[dict[str, Any]]:
    """Every source with its background frequency and when it runs next (epoch ms; None:
    never on its own)."""
    with db.read() as conn:
        rows = sync_store.all_sources(conn)
        started = store.last_run_starts(conn)
        ticked = store.last_ticks(conn, SOURCE)
        busy = store.open_targets(conn, SOURCE)
    out: list[dict[str, Any]] = []
    for row in rows:
        frequency = orjson.loads(row.settings).get("frequency_minutes")
        next_run: int | None = None
        if row.enabled and frequency:
            slot = source_slot(int(frequency), row.created_at, started.get(row.id), ticked.get(row.id), now)
            if slot is not None or row.id in busy:
                next_run = now
            else:
                anchor = max(a for a in (started.get(row.id), ticked.get(row.id)) if a is not None)
                next_run = anchor + int(frequency) * 60_000
        out.append(
            {
                "id": row.id,
                "name": row.name,
                "workspaceId": row.workspace_id,
                "enabled": bool(row.enabled),
                "frequencyMinutes": frequency,
                "lastRunAt": started.get(row.id),
                "inQueue": row.id in busy,
                "nextRun": next_run,
            }
        )
    return out
