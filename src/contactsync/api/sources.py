"""Management API for sources and their sync log (``/api/v1/workspaces/{wid}/sources``).

"Sync now" answers 202 with the run's id at once and runs in a background thread; the run's
page (``GET …/runs/{run_id}``) shows its counts as it goes.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from contactsync.api.auth import Admin, Member
from contactsync.secrets import SecretBox
from contactsync.sync import runs, sources
from contactsync.sync.engine import Run
from contactsync.sync.settings import Direction
from contactsync.sync.sources import SyncEnv

router = APIRouter(prefix="/workspaces/{wid}/sources", tags=["sources"])


def sync_env(request: Request) -> SyncEnv:
    env: SyncEnv | None = getattr(request.app.state, "sync_env", None)
    if env is None:
        env = SyncEnv(request.app.state.db, SecretBox.from_settings(request.app.state.settings))
        request.app.state.sync_env = env
    return env


Env = Annotated[SyncEnv, Depends(sync_env)]
JsonBody = Annotated[dict[str, Any], Body()]


@router.get("")
def list_sources(wid: str, env: Env, who: Member) -> dict[str, Any]:
    return {"elements": [s.as_json() for s in sources.list_sources(env, wid)]}


@router.post("", status_code=201)
def create_source(wid: str, body: JsonBody, env: Env, who: Admin) -> dict[str, Any]:
    """Create a source: ``name``, ``node``, ``provider``, ``config`` (credentials are stored
    encrypted and shown masked), ``sync`` (maps and policies)."""
    return sources.create_source(env, wid, body).as_json()


@router.get("/{ref}")
def get_source(wid: str, ref: str, env: Env, who: Member) -> dict[str, Any]:
    return sources.get_source(env, wid, ref).as_json()


@router.patch("/{ref}")
def update_source(wid: str, ref: str, body: JsonBody, env: Env, who: Admin) -> dict[str, Any]:
    """Change a source; node, credentials and maps need it disabled (see docs/sync.md)."""
    return sources.update_source(env, wid, ref, body).as_json()


@router.delete("/{ref}")
def delete_source(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    sources.delete_source(env, wid, ref)
    return {"deleted": ref}


@router.post("/{ref}/check")
def check_source(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    return {"ok": True, **sources.describe_json(sources.check_source(env, wid, ref))}


@router.get("/{ref}/describe")
def describe_source(wid: str, ref: str, env: Env, who: Member) -> dict[str, Any]:
    return sources.describe_json(sources.check_source(env, wid, ref))


@router.post("/{ref}/revoke")
def revoke_access(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    return sources.revoke_access(env, wid, ref).as_json()


@router.post("/{ref}/runs", status_code=202)
def sync_now(
    wid: str,
    ref: str,
    env: Env,
    who: Admin,
    direction: Direction | None = None,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    force: bool = False,
) -> dict[str, Any]:
    """Start a run now; answers at once with the run (status ``running``)."""
    run = Run(
        env,
        sources.get_source(env, wid, ref),
        trigger="api",
        direction=direction,
        dry_run=dry_run,
        force=force,
    )
    run.start()
    threading.Thread(target=run.execute, name=f"run-{run.run_id}", daemon=True).start()
    return runs.run_json(env, run.run_id)


@router.get("/{ref}/runs")
def list_runs(
    wid: str, ref: str, env: Env, who: Member, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict[str, Any]:
    return {"elements": runs.list_runs(env, wid, ref, limit)}


@router.get("/{ref}/runs/{run_id}")
def get_run(wid: str, ref: str, run_id: str, env: Env, who: Member) -> dict[str, Any]:
    return runs.get_run(env, wid, run_id, source_ref=ref)


@router.get("/{ref}/runs/{run_id}/records")
def run_records(
    wid: str,
    ref: str,
    run_id: str,
    env: Env,
    who: Member,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    records = []
    for r in runs.iter_records(env, wid, run_id, action=action, source_ref=ref):
        records.append(r)
        if len(records) == limit:
            break
    return {"elements": records}


@router.get("/{ref}/runs/{run_id}/records.csv")
def run_records_csv(wid: str, ref: str, run_id: str, env: Env, who: Member) -> StreamingResponse:
    runs.get_run(env, wid, run_id, source_ref=ref)  # 404 before streaming starts
    headers = {"Content-Disposition": f'attachment; filename="run-{run_id}.csv"'}
    chunks = runs.csv_chunks(env, wid, run_id, source_ref=ref)
    return StreamingResponse(chunks, media_type="text/csv", headers=headers)
