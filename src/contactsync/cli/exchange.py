"""Commands: ``contactsync exchange …`` — exchange jobs, their runs (with a progress bar), the
failed-operations report, the schedule."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from contactsync.cli import app, database, emit, err, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.cli.sync import _read_spec
from contactsync.exchange import jobs, report, runs, schedule
from contactsync.exchange.jobs import ExchangeEnv
from contactsync.exchange.ledger import Counts
from contactsync.settings import get_settings

exchange_app = typer.Typer(
    no_args_is_help=True,
    help="Exchange jobs: importer, updater, displacer, exporter over files and databases.",
)
app.add_typer(exchange_app, name="exchange")

JobFile = Annotated[Path, typer.Option("--file", "-f", help="JSON file with the exchange job's settings.")]
JobArg = Annotated[str, typer.Argument(help="The job's name or id.")]


def _env() -> ExchangeEnv:
    return ExchangeEnv.of(database(), get_settings())


def _show(v: dict[str, Any]) -> None:
    out.print(f"job {v['name']} ({v['id']}): {v['module']} on node {v['nodeId']}", highlight=False)
    out.print(f"  endpoint {v['endpoint']['url']}; file {v.get('file') or '(default)'}", highlight=False)


@exchange_app.command("create")
@handles_errors
def create(spec: JobFile, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Create a job from a JSON file (see docs/exchange.md)."""
    env = _env()
    emit(jobs.create_job(env, workspace_id(env.db, workspace), _read_spec(spec)).as_json(), as_json, _show)


@exchange_app.command("list")
@handles_errors
def list_(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List the jobs."""
    env = _env()
    rows = [j.as_json() for j in jobs.list_jobs(env, workspace_id(env.db, workspace))]

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("name", "module", "node", "endpoint", "file")
        for r in rows:
            t.add_row(r["name"], r["module"], r["nodeId"], r["endpoint"]["url"], r.get("file") or "")
        out.print(t)

    emit(rows, as_json, table)


@exchange_app.command("show")
@handles_errors
def show(name: JobArg, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Show a job (credentials masked)."""
    env = _env()
    emit(jobs.get_job(env, workspace_id(env.db, workspace), name).as_json(), as_json, _show)


@exchange_app.command("update")
@handles_errors
def update(name: JobArg, spec: JobFile, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Change a job: the JSON file holds only what changes (the endpoint's credentials stay)."""
    env = _env()
    emit(
        jobs.update_job(env, workspace_id(env.db, workspace), name, _read_spec(spec)).as_json(),
        as_json,
        _show,
    )


@exchange_app.command("delete")
@handles_errors
def delete(name: JobArg, workspace: WorkspaceOpt = None) -> None:
    """Delete a job with its runs and schedule (customers stay)."""
    env = _env()
    jobs.delete_job(env, workspace_id(env.db, workspace), name)
    out.print(f"job {name} deleted", highlight=False)


def _run_line(v: dict[str, Any]) -> str:
    counts = report.counts_line(Counts(**v["counts"]))
    return f"run {v['id']} ({v.get('fileName') or '-'}): {v['status']} · {counts}"


@exchange_app.command("run")
@handles_errors
def run(
    name: JobArg,
    force: Annotated[
        bool, typer.Option("--force", help="Process input files even if their content was processed before.")
    ] = False,
    allow_mass_change: Annotated[
        bool, typer.Option("--allow-mass-change", help="Let an overwrite import delete more than its guard.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a job now (resumes a run of the same input that was interrupted)."""
    env = _env()
    show = sys.stderr.isatty() and not as_json
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rows"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(run_id: str, counts: Counts, total: int | None) -> None:
            if run_id not in tasks:
                tasks[run_id] = bar.add_task(f"{name} {run_id[-8:]}", total=total)
            done = counts.written or counts.read
            bar.update(tasks[run_id], completed=done, total=total)

        outcomes = runs.run_job(
            env,
            workspace_id(env.db, workspace),
            name,
            trigger="cli",
            force=force,
            allow_mass_change=allow_mass_change,
            progress=progress,
        )
    done = [o.run for o in outcomes]

    def human(rows: list[dict[str, Any]]) -> None:
        for v in rows:
            out.print(_run_line(v), highlight=False)
            if v.get("error"):
                out.print(f"  {v.get('errorCode') or 'note'}: {v['error']}", highlight=False)

    emit(done, as_json, human)
    if any(v["status"] not in ("succeeded", "skipped") for v in done):
        raise typer.Exit(1)


@exchange_app.command("runs")
@handles_errors
def runs_(
    name: JobArg,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The latest runs of a job, with their counts."""
    env = _env()
    rows = runs.list_runs(env, workspace_id(env.db, workspace), name, limit)

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("run", "started", "trigger", "file", "status", "read/ins/upd/del/skip/fail", "code")
        for r in rows:
            c = r["counts"]
            keys = ("read", "inserted", "updated", "deleted", "skipped", "failed")
            t.add_row(
                r["id"],
                r["startedAt"],
                r["trigger"],
                r.get("fileName") or "",
                r["status"],
                "/".join(str(c[k]) for k in keys) if not c["written"] else f"{c['written']} written",
                r.get("errorCode") or "",
            )
        out.print(t)

    emit(rows, as_json, table)


@exchange_app.command("report")
@handles_errors
def report_(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the CSV here (default: stdout).")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """The failed-operations report of a run, as CSV: row number, code, message, the row as it was."""
    env = _env()
    job, _ = runs.get_run(env, workspace_id(env.db, workspace), run_id)
    chunks = report.failed_csv_chunks(env, job, run_id)
    if out_file is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return
    with open(out_file, "w", encoding="utf-8", newline="") as f:
        for chunk in chunks:
            f.write(chunk)
    err.print(f"failed-operations report written to {out_file}", highlight=False)


def _show_schedule(v: dict[str, Any]) -> None:
    state = "paused" if v.get("paused") else "active"
    out.print(f"schedule ({state}): cron {', '.join(v['as_cron'])} in {v['timezone']}", highlight=False)
    for at in v.get("next_runs_at", []):
        out.print(f"  next: {at}", highlight=False)


@exchange_app.command("schedule")
@handles_errors
def schedule_(
    name: JobArg,
    spec: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSON file with the schedule (cron or friendly form).")
    ] = None,
    cron: Annotated[str | None, typer.Option(help="A cron expression, e.g. '0 6 * * 1-5'.")] = None,
    timezone: Annotated[str, typer.Option(help="The schedule's time zone (with --cron).")] = "UTC",
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the job's schedule and next run times, or set it (--cron or --file)."""
    env = _env()
    ws = workspace_id(env.db, workspace)
    if spec is not None:
        value = schedule.set_schedule(env, ws, name, _read_spec(spec))
    elif cron is not None:
        value = schedule.set_schedule(env, ws, name, {"cron": cron, "timezone": timezone})
    else:
        value = schedule.get_schedule(env, ws, name)
    emit(value, as_json, _show_schedule)


@exchange_app.command("pause")
@handles_errors
def pause(name: JobArg, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Pause the job's schedule ("run" still works)."""
    env = _env()
    emit(schedule.pause(env, workspace_id(env.db, workspace), name), as_json, _show_schedule)


@exchange_app.command("resume")
@handles_errors
def resume(name: JobArg, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Resume the job's schedule."""
    env = _env()
    emit(schedule.resume(env, workspace_id(env.db, workspace), name), as_json, _show_schedule)
