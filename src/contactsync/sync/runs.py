"""The sync log: runs with their counts per side, and each run's records (also as CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, TextIO

import orjson

from contactsync.errors import not_found
from contactsync.hub.times import format_time
from contactsync.store import sync as store
from contactsync.sync.sources import SyncEnv, get_source

CSV_COLUMNS = ("side", "action", "key", "customer_id", "remote_id", "code", "reason", "before", "after")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _run(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "sourceId": row.source_id,
        "trigger": row.trigger,
        "direction": row.direction,
        "dryRun": bool(row.dry_run),
        "status": row.status,
        "startedAt": format_time(row.started_at),
        "endedAt": format_time(row.ended_at),
        "counts": orjson.loads(row.counts),
        "errorCode": row.error_code,
        "error": row.error,
        "plan": orjson.loads(row.plan) if row.plan else None,
    }


def run_json(env: SyncEnv, run_id: str) -> dict[str, Any]:
    with env.db.read() as conn:
        row = store.get_run(conn, run_id)
    if row is None:
        raise not_found("run", run_id)
    return _run(row)


def _check_run(env: SyncEnv, workspace_id: str, run_id: str, source_ref: str | None) -> None:
    """404 unless the run belongs to the workspace and, when given, to that source."""
    with env.db.read() as conn:
        row = store.get_run(conn, run_id)
        source = store.get_source_by_id(conn, row.source_id) if row is not None else None
    if row is None or source is None or source.workspace_id != workspace_id:
        raise not_found("run", run_id)
    if source_ref is not None and source_ref not in (source.id, source.name):
        raise not_found("run", run_id)


def get_run(env: SyncEnv, workspace_id: str, run_id: str, *, source_ref: str | None = None) -> dict[str, Any]:
    _check_run(env, workspace_id, run_id, source_ref)
    return run_json(env, run_id)


def list_runs(env: SyncEnv, workspace_id: str, source_ref: str, limit: int = 20) -> list[dict[str, Any]]:
    source = get_source(env, workspace_id, source_ref)
    with env.db.read() as conn:
        return [_run(r) for r in store.list_runs(conn, source.id, limit)]


def iter_records(
    env: SyncEnv,
    workspace_id: str,
    run_id: str,
    *,
    action: str | None = None,
    page: int = 2000,
    source_ref: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A run's records in order, streamed page by page."""
    _check_run(env, workspace_id, run_id, source_ref)
    after = 0
    while True:
        with env.db.read() as conn:
            rows = store.run_records_page(conn, run_id, after_id=after, limit=page, action=action)
        for r in rows:
            yield {
                "side": r.side,
                "action": r.action,
                "key": r.key,
                "customerId": r.customer_id,
                "remoteId": r.remote_id,
                "code": r.code,
                "reason": r.reason,
                "before": orjson.loads(r.before) if r.before else None,
                "after": orjson.loads(r.after) if r.after else None,
            }
        if len(rows) < page:
            return
        after = rows[-1].id


def safe_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(
    env: SyncEnv,
    workspace_id: str,
    run_id: str,
    *,
    action: str | None = None,
    rows_per_chunk: int = 1000,
    source_ref: str | None = None,
) -> Iterator[str]:
    """A run's records as CSV text, a chunk at a time (memory stays flat for any run size)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    keys = ("side", "action", "key", "customerId", "remoteId", "code", "reason", "before", "after")
    records = iter_records(env, workspace_id, run_id, action=action, source_ref=source_ref)
    for n, r in enumerate(records, start=1):
        writer.writerow([safe_cell(r[k]) for k in keys])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(
    env: SyncEnv, workspace_id: str, run_id: str, stream: TextIO, *, action: str | None = None
) -> None:
    for chunk in csv_chunks(env, workspace_id, run_id, action=action):
        stream.write(chunk)
