"""Commands: source (configure), sync (run with a progress bar), runs (the sync log)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contactsync.cli import app, database, emit, err, handles_errors, out
from contactsync.cli.admin import JsonFlag, WorkspaceOpt, workspace_id
from contactsync.errors import FieldProblem, invalid
from contactsync.secrets import SecretBox
from contactsync.settings import get_settings
from contactsync.sync import runs, sources
from contactsync.sync.engine import Counts, run_source
from contactsync.sync.settings import Direction
from contactsync.sync.sources import SyncEnv

source_app = typer.Typer(no_args_is_help=True, help="Sources: a node synced with a provider user DB.")
app.add_typer(source_app, name="source")

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="JSON file with the source's settings.")]


def _env() -> SyncEnv:
    return SyncEnv(database(), SecretBox.from_settings(get_settings()))


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise invalid([FieldProblem(str(path), f"cannot read a JSON object from it: {e}", "E200")]) from None
    if not isinstance(data, dict):
        raise invalid([FieldProblem(str(path), "the file must hold a JSON object", "E200")])
    return data


def _show(v: dict[str, Any]) -> None:
    state = "enabled" if v["enabled"] else "disabled"
    out.print(
        f"source {v['name']} ({v['id']}): {v['provider']} ↔ node {v['nodeId']}, {state}", highlight=False
    )
    out.print(f"  user DB {v['userDb']}; direction {v['sync']['direction']}", highlight=False)


@source_app.command("create")
@handles_errors
def source_create(spec: SpecFile, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Create a source from a JSON file: name, node, provider, config, sync (see docs/sync.md)."""
    env = _env()
    source = sources.create_source(env, workspace_id(env.db, workspace), _read_spec(spec))
    emit(source.as_json(), as_json, _show)


@source_app.command("list")
@handles_errors
def source_list(workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """List the sources."""
    env = _env()
    rows = [s.as_json() for s in sources.list_sources(env, workspace_id(env.db, workspace))]

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("name", "provider", "node", "direction", "enabled")
        for r in rows:
            t.add_row(r["name"], r["provider"], r["nodeId"], r["sync"]["direction"], str(r["enabled"]))
        out.print(t)

    emit(rows, as_json, table)


@source_app.command("show")
@handles_errors
def source_show(name: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Show a source (credentials masked)."""
    env = _env()
    emit(sources.get_source(env, workspace_id(env.db, workspace), name).as_json(), as_json, _show)


@source_app.command("update")
@handles_errors
def source_update(
    name: str, spec: SpecFile, workspace: WorkspaceOpt = None, as_json: JsonFlag = False
) -> None:
    """Change a source: the JSON file holds only what changes (node, config, sync, …)."""
    env = _env()
    source = sources.update_source(env, workspace_id(env.db, workspace), name, _read_spec(spec))
    emit(source.as_json(), as_json, _show)


@source_app.command("enable")
@handles_errors
def source_enable(name: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Enable a source: background and scheduled runs start."""
    env = _env()
    emit(
        sources.update_source(env, workspace_id(env.db, workspace), name, {"enabled": True}).as_json(),
        as_json,
        _show,
    )


@source_app.command("disable")
@handles_errors
def source_disable(name: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Disable a source (needed before changing its node, credentials or maps)."""
    env = _env()
    emit(
        sources.update_source(env, workspace_id(env.db, workspace), name, {"enabled": False}).as_json(),
        as_json,
        _show,
    )


@source_app.command("delete")
@handles_errors
def source_delete(name: str, workspace: WorkspaceOpt = None) -> None:
    """Delete a source with its links and sync log (customers stay)."""
    env = _env()
    sources.delete_source(env, workspace_id(env.db, workspace), name)
    out.print(f"source {name} deleted", highlight=False)


@source_app.command("check")
@handles_errors
def source_check(name: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Check the credentials and describe the provider side: fields, lists, record count."""
    env = _env()
    description = sources.describe_json(sources.check_source(env, workspace_id(env.db, workspace), name))

    def human(v: dict[str, Any]) -> None:
        out.print(f"ok: {v['userDb']} holds {v['recordCount']} records", highlight=False)
        t = Table("field", "type", "required", "writable")
        for f in v["fields"]:
            t.add_row(f["name"], f["type"], str(f["required"]), str(f["writable"]))
        out.print(t)
        out.print("lists: " + ", ".join(f"{li['id']} ({li['name']})" for li in v["lists"]), highlight=False)

    emit(description, as_json, human)


@source_app.command("revoke")
@handles_errors
def source_revoke(name: str, workspace: WorkspaceOpt = None, as_json: JsonFlag = False) -> None:
    """Revoke the provider's grant, forget the credentials and disable the source."""
    env = _env()
    emit(sources.revoke_access(env, workspace_id(env.db, workspace), name).as_json(), as_json, _show)


def _counts_line(c: Counts) -> str:
    h, p = c.hub, c.provider
    return (
        f"hub: {h.created} created, {h.updated} updated, {h.deleted} deleted, {h.skipped} skipped, "
        f"{h.failed} failed · provider: {p.created} created, {p.updated} updated, {p.deleted} deleted, "
        f"{p.skipped} skipped, {p.failed} failed"
    )


@app.command("sync")
@handles_errors
def sync(
    name: str,
    direction: Annotated[Direction | None, typer.Option(help="Only this direction for this run.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and show the changes; write nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Run even if the source is disabled.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Records per committed batch.")] = 500,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a source now: read both sides' changes, merge, write; resumes a crashed run."""
    env = _env()
    source = sources.get_source(env, workspace_id(env.db, workspace), name)
    show = sys.stderr.isatty() and not as_json
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
    ) as bar:
        task = bar.add_task(f"sync {source.name}", total=None)

        def progress(phase: str, counts: Counts) -> None:
            bar.update(task, completed=counts.read, description=f"sync {source.name} ({phase} changes)")

        result = run_source(
            env,
            source,
            trigger="cli",
            direction=direction,
            dry_run=dry_run,
            force=force,
            progress=progress,
            batch_size=batch_size,
        )
    value = runs.run_json(env, result.run_id)

    def human(v: dict[str, Any]) -> None:
        label = "planned (dry run, nothing written)" if dry_run else v["status"]
        out.print(f"run {v['id']}: {label}", highlight=False)
        out.print("  " + _counts_line(result.counts), highlight=False)
        if v.get("error"):
            out.print(f"  [red]{v['errorCode']}[/red]: {v['error']}", highlight=False)
        for s in (v.get("plan") or {}).get("samples", [])[:10]:
            out.print(
                f"  e.g. {s['key']}: hub {s['hub'] or '-'} · provider {s['provider'] or '-'}", highlight=False
            )

    emit(value, as_json, human)
    if result.status not in ("succeeded",):
        raise typer.Exit(1)


runs_app = typer.Typer(no_args_is_help=True, help="The sync log: runs and their records.")
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@handles_errors
def runs_list(
    name: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The latest runs of a source, with counts per side."""
    env = _env()
    rows = runs.list_runs(env, workspace_id(env.db, workspace), name, limit)

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("run", "started", "trigger", "status", "hub c/u/d/s/f", "provider c/u/d/s/f")
        for r in rows:
            h, p = r["counts"]["hub"], r["counts"]["provider"]
            keys = ("created", "updated", "deleted", "skipped", "failed")
            t.add_row(
                r["id"],
                r["startedAt"],
                r["trigger"],
                r["status"] + (" (dry run)" if r["dryRun"] else ""),
                "/".join(str(h[k]) for k in keys),
                "/".join(str(p[k]) for k in keys),
            )
        out.print(t)

    emit(rows, as_json, table)


@runs_app.command("records")
@handles_errors
def runs_records(
    run_id: str,
    as_csv: Annotated[bool, typer.Option("--csv", help="Write CSV to stdout.")] = False,
    action: Annotated[str | None, typer.Option(help="Only this action (created, skipped, …).")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The records of a run: key, side, action, code and reason (values in debug mode)."""
    env = _env()
    ws = workspace_id(env.db, workspace)
    if as_csv:
        runs.write_csv(env, ws, run_id, sys.stdout, action=action)
        return
    rows = list(runs.iter_records(env, ws, run_id, action=action))

    def table(rows: list[dict[str, Any]]) -> None:
        t = Table("side", "action", "key", "code", "reason")
        for r in rows:
            t.add_row(r["side"], r["action"], r["key"], r["code"] or "", r["reason"] or "")
        out.print(t)

    emit(rows, as_json, table)
