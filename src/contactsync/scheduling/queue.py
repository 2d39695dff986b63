"""The run queue: one table that every scheduler and worker shares, on SQLite or PostgreSQL.

A request is ``queued`` → ``running`` (claimed by one worker, which beats on it) → ``done`` or
``failed``. Claiming is one conditional UPDATE that skips targets with a running request, and
a partial unique index holds one running request per target even when two workers race. A
request whose worker stopped beating (or whose process is gone, on the same host) is queued
again, up to ``worker_max_attempts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Row

from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.owners import owner_alive
from contactsync.store import schedules as store
from contactsync.store.db import Database

log = logging.getLogger(__name__)


class RequestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Request:
    id: str
    target_kind: str
    target_id: str
    trigger: str
    scheduled_for: int | None
    status: RequestStatus
    attempts: int
    claimed_by: str | None
    heartbeat: int | None
    error_code: str | None
    error: str | None
    enqueued_at: int
    finished_at: int | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Request:
        return cls(
            id=row.id,
            target_kind=row.target_kind,
            target_id=row.target_id,
            trigger=row.trigger,
            scheduled_for=row.scheduled_for,
            status=RequestStatus(row.status),
            attempts=int(row.attempts),
            claimed_by=row.claimed_by,
            heartbeat=row.heartbeat,
            error_code=row.error_code,
            error=row.error,
            enqueued_at=int(row.enqueued_at),
            finished_at=row.finished_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "targetKind": self.target_kind,
            "targetId": self.target_id,
            "trigger": self.trigger,
            "scheduledFor": format_time(self.scheduled_for),
            "status": self.status.value,
            "attempts": self.attempts,
            "claimedBy": self.claimed_by,
            "enqueuedAt": format_time(self.enqueued_at),
            "finishedAt": format_time(self.finished_at),
            "errorCode": self.error_code,
            "error": self.error,
        }


def enqueue(
    db: Database,
    target_kind: str,
    target_id: str,
    *,
    trigger: str = "manual",
    scheduled_for: int | None = None,
    coalesce: bool = False,
) -> str:
    """Queue a run of a target; returns the request id.

    A scheduled tick (``scheduled_for`` given) is unique per target: enqueuing it again is a
    no-op returning the existing id. ``coalesce`` returns the id of a request of the target that
    is still queued instead of adding one (a run that has not started will see the change too).
    """
    with db.write() as conn:
        return enqueue_in(
            conn, target_kind, target_id, trigger=trigger, scheduled_for=scheduled_for, coalesce=coalesce
        )


def enqueue_in(
    conn: Connection,
    target_kind: str,
    target_id: str,
    *,
    trigger: str,
    scheduled_for: int | None = None,
    coalesce: bool = False,
) -> str:
    """:func:`enqueue` inside the caller's write transaction."""
    if coalesce:
        waiting = store.queued_request(conn, target_kind, target_id)
        if waiting is not None:
            return waiting
    request_id = new_id()
    now = now_ms()
    inserted = store.insert_request(
        conn,
        {
            "id": request_id,
            "target_kind": target_kind,
            "target_id": target_id,
            "trigger": trigger,
            "scheduled_for": scheduled_for,
            "status": RequestStatus.QUEUED.value,
            "enqueued_at": now,
            "run_after": now,
            "attempts": 0,
        },
    )
    if inserted:
        log.info(
            "enqueued %s %s (%s): request %s",
            target_kind,
            target_id,
            trigger,
            request_id,
            extra={"action": "queue.enqueue", "request": request_id},
        )
        return request_id
    assert scheduled_for is not None  # only a tick can collide
    existing = store.request_for_tick(conn, target_kind, target_id, scheduled_for)
    assert existing is not None
    return existing


def claim(db: Database, worker: str) -> Request | None:
    """The next request this worker runs, or None (nothing due, or a race lost: look again)."""
    try:
        with db.write() as conn:
            row = store.claim(conn, worker, now_ms())
    except exc.IntegrityError:  # another worker started the same target meanwhile
        return None
    return None if row is None else Request.from_row(row)


def heartbeat(db: Database, request_id: str, worker: str) -> bool:
    """Say the worker still runs the request; False when it lost it (reclaimed)."""
    with db.write() as conn:
        return store.beat(conn, request_id, worker, now_ms())


def finish(
    db: Database, request_id: str, worker: str, *, code: str | None = None, error: str | None = None
) -> None:
    status = RequestStatus.DONE if code is None else RequestStatus.FAILED
    values = {
        "status": status.value,
        "finished_at": now_ms(),
        "heartbeat": now_ms(),
        "error_code": code,
        "error": error,
    }
    with db.write() as conn:
        if not store.release(conn, request_id, worker, values):
            log.warning(
                "request %s was taken from this worker before it finished",
                request_id,
                extra={"action": "queue.lost", "request": request_id},
            )


def retry_later(db: Database, request: Request, worker: str, delay_ms: int, code: str, error: str) -> None:
    """Queue a request again after ``delay_ms`` (a busy target)."""
    values = {
        "status": RequestStatus.QUEUED.value,
        "run_after": now_ms() + delay_ms,
        "claimed_by": None,
        "error_code": code,
        "error": error,
    }
    with db.write() as conn:
        store.release(conn, request.id, worker, values)


def worker_alive(worker: str, heartbeat: int | None, now: int, stale_ms: int) -> bool:
    """Whether a worker (``host:pid/name``) still runs: by its process on this host, by its
    heartbeat elsewhere."""
    return owner_alive(worker, heartbeat, now=now, lease_ms=stale_ms)


def reclaim_stale(db: Database, *, stale_ms: int, max_attempts: int) -> list[str]:
    """Queue again the running requests of dead workers (or fail them after ``max_attempts``);
    returns their ids."""
    now = now_ms()
    with db.read() as conn:
        running = [Request.from_row(r) for r in store.running_requests(conn)]
    dead = [r for r in running if not worker_alive(r.claimed_by or "", r.heartbeat, now, stale_ms)]
    reclaimed: list[str] = []
    for r in dead:
        note = f"the worker {r.claimed_by} running it stopped"
        if r.attempts >= max_attempts:
            values: dict[str, Any] = {
                "status": RequestStatus.FAILED.value,
                "finished_at": now,
                "error_code": "E667",
                "error": f"{note}, attempt {r.attempts} of {max_attempts}: given up",
            }
        else:
            values = {
                "status": RequestStatus.QUEUED.value,
                "run_after": now,
                "claimed_by": None,
                "error_code": "E667",
                "error": f"{note}; queued again",
            }
        with db.write() as conn:
            if store.reclaim(conn, r.id, r.heartbeat, values):
                reclaimed.append(r.id)
                log.warning(
                    "%s: %s", r.id, values["error"], extra={"action": "queue.reclaim", "request": r.id}
                )
    return reclaimed


def get_request(db: Database, request_id: str) -> Request | None:
    with db.read() as conn:
        row = store.get_request(conn, request_id)
    return None if row is None else Request.from_row(row)


def list_requests(
    db: Database,
    *,
    target_kind: str | None = None,
    target_id: str | None = None,
    status: RequestStatus | None = None,
    limit: int = 50,
) -> list[Request]:
    """Requests, newest first."""
    with db.read() as conn:
        rows = store.list_requests(conn, target_kind, target_id, status.value if status else None, limit)
    return [Request.from_row(r) for r in rows]
