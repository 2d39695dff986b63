"""Commands: schedules (when schedules and sources run next) and the run queue."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from contactsync.cli import app, database, emit, handles_errors, out
from contactsync.cli.admin import JsonFlag
from contactsync.hub.times import format_time, now_ms
from contactsync.scheduling import queue, schedules
from contactsync.scheduling.scheduler import source_overview

schedules_app = typer.Typer(no_args_is_help=True, help="Schedules, background syncs and the run queue.")
app.add_typer(schedules_app, name="schedules")


@schedules_app.command("list")
@handles_errors
def schedules_list(
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, max=100, help="Next run times to show.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Next run times of every schedule (exchange jobs …) and of every source's background sync."""
    db = database()
    with db.read() as conn:
        rows = schedules.list_schedules(conn, runs)
    value = {"schedules": rows, "sources": source_overview(db, now_ms())}

    def table(v: dict[str, Any]) -> None:
        t = Table("target", "schedule", "time zone", "state", "next runs")
        for s in v["schedules"]:
            when = " or ".join(s["as_cron"])
            state = "paused" if s["paused"] else "active"
            t.add_row(
                f"{s['target_kind']} {s['target_id']}",
                when,
                s["timezone"],
                state,
                "\n".join(s["next_runs_at"]),
            )
        for src in v["sources"]:
            every = f"every {src['frequencyMinutes']} min" if src["frequencyMinutes"] else "manual"
            state = "enabled" if src["enabled"] else "disabled"
            if src["inQueue"]:
                state += ", in the queue"
            t.add_row(f"source {src['name']}", every, "", state, format_time(src["nextRun"]) or "")
        out.print(t)

    emit(value, as_json, table)


@schedules_app.command("queue")
@handles_errors
def schedules_queue(
    status: Annotated[queue.RequestStatus | None, typer.Option(help="Only requests in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Requests to show, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The run queue: requested runs of sources and exchange jobs, newest first."""
    rows = [r.as_json() for r in queue.list_requests(database(), status=status, limit=limit)]

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "target", "trigger", "status", "enqueued", "error")
        for r in rows:
            error = f"{r['errorCode']}: {r['error']}" if r["errorCode"] else ""
            t.add_row(
                r["id"],
                f"{r['targetKind']} {r['targetId']}",
                r["trigger"],
                r["status"],
                r["enqueuedAt"],
                error,
            )
        out.print(t)

    emit(rows, as_json, table)
