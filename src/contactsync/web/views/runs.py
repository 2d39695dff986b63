"""The sync log of a source (seed 004): runs with their counts per side, each count opening
its records, the records as CSV, the debug log, and "Sync now" with live progress."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from contactsync.connectors import registry
from contactsync.errors import FieldProblem, invalid, not_found
from contactsync.hub import workspaces
from contactsync.sync import runs, sources
from contactsync.sync.engine import Run
from contactsync.sync.sources import SyncEnv
from contactsync.web.deps import Env, PostedRunner, Viewer
from contactsync.web.render import redirect, render

router = APIRouter()
SIDES = ("provider", "hub")
ACTIONS = ("created", "updated", "skipped", "deleted", "failed")
MODULE = "Contacts"
PAGE = 100


def _check(side: str | None, action: str | None) -> None:
    if side not in (None, "", *SIDES):
        raise invalid([FieldProblem("side", "side is hub or provider")])
    if action not in (None, "", *ACTIONS):
        raise invalid([FieldProblem("action", f"action is one of {', '.join(ACTIONS)}")])


@router.get("/sources/{ref}/log")
def sync_log(request: Request, ref: str, env: Env, session: Viewer) -> Response:
    wid = session.user.workspace_id
    source = sources.get_source(env, wid, ref)
    found = runs.list_runs(env, wid, source.id, limit=50)
    node = next((n for n in workspaces.list_nodes(env.db, wid) if n.id == source.node_id), None)
    return render(
        request,
        "sync_log.html",
        source=source,
        runs=found,
        node=node,
        provider_label=registry.get(source.provider).label,
        running=any(r["status"] == "running" for r in found),
    )


@router.post("/sources/{ref}/runs")
def sync_now(ref: str, env: Env, session: PostedRunner) -> Response:
    source = sources.get_source(env, session.user.workspace_id, ref)
    run = Run(env, source, trigger="manual")
    run.start()
    threading.Thread(target=run.execute, name=f"run-{run.run_id}", daemon=True).start()
    return redirect(f"/sources/{source.id}/runs/{run.run_id}")


def _run_context(env: SyncEnv, workspace_id: str, ref: str, run_id: str) -> dict[str, Any]:
    source = sources.get_source(env, workspace_id, ref)
    run = runs.get_run(env, workspace_id, run_id)
    if run["sourceId"] != source.id:
        raise not_found("run", run_id)
    return {"source": source, "run": run, "provider_label": registry.get(source.provider).label}


@router.get("/sources/{ref}/runs/{run_id}")
def run_page(request: Request, ref: str, run_id: str, env: Env, session: Viewer) -> Response:
    return render(request, "run.html", **_run_context(env, session.user.workspace_id, ref, run_id))


@router.get("/sources/{ref}/runs/{run_id}/progress")
def run_progress(request: Request, ref: str, run_id: str, env: Env, session: Viewer) -> Response:
    """The run's counts alone: the run page polls this while the run is going."""
    return render(request, "_run_counts.html", **_run_context(env, session.user.workspace_id, ref, run_id))


def _records(
    env: SyncEnv, workspace_id: str, run_id: str, side: str | None, action: str | None
) -> Iterator[dict[str, Any]]:
    for record in runs.iter_records(env, workspace_id, run_id, action=action or None):
        if not side or record["side"] == side:
            yield record


@router.get("/sources/{ref}/runs/{run_id}/records")
def run_records(
    request: Request,
    ref: str,
    run_id: str,
    env: Env,
    session: Viewer,
    side: str | None = None,
    action: str | None = None,
    page: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    _check(side, action)
    context = _run_context(env, session.user.workspace_id, ref, run_id)
    shown: list[dict[str, Any]] = []
    more = False
    for i, record in enumerate(_records(env, session.user.workspace_id, run_id, side, action)):
        if i < page * PAGE:
            continue
        if len(shown) == PAGE:
            more = True
            break
        shown.append(record)
    return render(
        request,
        "run_records.html",
        records=shown,
        side=side or "",
        action=action or "",
        page=page,
        more=more,
        module=MODULE,
        **context,
    )


@router.get("/sources/{ref}/runs/{run_id}/records.csv")
def run_records_csv(
    ref: str, run_id: str, env: Env, session: Viewer, side: str | None = None, action: str | None = None
) -> StreamingResponse:
    _check(side, action)
    context = _run_context(env, session.user.workspace_id, ref, run_id)  # 404 before streaming
    wid = session.user.workspace_id

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            ("side", "action", "record_name", "source_module", "code", "reason", "customer_id", "remote_id")
        )
        for n, r in enumerate(_records(env, wid, run_id, side, action), start=1):
            row = (
                r["side"],
                r["action"],
                r["key"],
                MODULE,
                r["code"],
                r["reason"],
                r["customerId"],
                r["remoteId"],
            )
            writer.writerow([runs.safe_cell(v) for v in row])
            if n % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = "-".join(x for x in ("run", context["run"]["id"], side, action) if x)
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/sources/{ref}/runs/{run_id}/debug")
def debug_log(
    request: Request, ref: str, run_id: str, env: Env, session: Viewer, page: Annotated[int, Query(ge=0)] = 0
) -> Response:
    context = _run_context(env, session.user.workspace_id, ref, run_id)
    shown: list[dict[str, Any]] = []
    more = False
    for i, record in enumerate(runs.iter_records(env, session.user.workspace_id, run_id)):
        if i < page * PAGE:
            continue
        if len(shown) == PAGE:
            more = True
            break
        shown.append(record)
    return render(request, "debug_log.html", records=shown, page=page, more=more, **context)
