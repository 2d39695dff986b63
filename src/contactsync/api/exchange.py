"""Management API for exchange jobs (``/api/v1/workspaces/{wid}/exchange-jobs``).

"Run now" answers 202 with the run at once and runs in a background thread; the run's page
(``GET …/runs/{run_id}``) shows its counts as it goes, and ``…/failed.csv`` its failed rows.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from contactsync.api.auth import Admin, Member
from contactsync.exchange import jobs, report, runs, schedule
from contactsync.exchange.jobs import ExchangeEnv

router = APIRouter(prefix="/workspaces/{wid}/exchange-jobs", tags=["exchange jobs"])


def exchange_env(request: Request) -> ExchangeEnv:
    env: ExchangeEnv | None = getattr(request.app.state, "exchange_env", None)
    if env is None:
        env = ExchangeEnv.of(request.app.state.db, request.app.state.settings)
        request.app.state.exchange_env = env
    return env


Env = Annotated[ExchangeEnv, Depends(exchange_env)]
JsonBody = Annotated[dict[str, Any], Body()]


@router.get("")
def list_jobs(wid: str, env: Env, who: Member) -> dict[str, Any]:
    return {"elements": [j.as_json() for j in jobs.list_jobs(env, wid)]}


@router.post("", status_code=201)
def create_job(wid: str, body: JsonBody, env: Env, who: Admin) -> dict[str, Any]:
    """Create a job: ``name``, ``node``, ``module``, ``endpoint`` (credentials stored encrypted,
    shown masked), ``file``, ``format``, ``mapping``, ``options`` … (see docs/exchange.md)."""
    return jobs.create_job(env, wid, body).as_json()


@router.get("/{ref}")
def get_job(wid: str, ref: str, env: Env, who: Member) -> dict[str, Any]:
    return jobs.get_job(env, wid, ref).as_json()


@router.patch("/{ref}")
def update_job(wid: str, ref: str, body: JsonBody, env: Env, who: Admin) -> dict[str, Any]:
    """Change a job: the keys given replace the job's; ``endpoint`` merges (credentials stay)."""
    return jobs.update_job(env, wid, ref, body).as_json()


@router.delete("/{ref}")
def delete_job(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    jobs.delete_job(env, wid, ref)
    return {"deleted": ref}


@router.post("/{ref}/runs", status_code=202)
def run_now(
    wid: str,
    ref: str,
    env: Env,
    who: Admin,
    force: bool = False,
    allow_mass_change: Annotated[bool, Query(alias="allowMassChange")] = False,
) -> dict[str, Any]:
    """Start a run now (always available, schedule or not); answers at once with the run."""
    job = jobs.get_job(env, wid, ref)
    run_id = runs.start_run(env, job, "api")

    def work() -> None:
        runs.execute(env, job, run_id, force=force, allow_mass_change=allow_mass_change)

    threading.Thread(target=work, name=f"exchange-{run_id}", daemon=True).start()
    return runs.get_run(env, wid, run_id)[1]


@router.get("/{ref}/runs")
def list_runs(
    wid: str, ref: str, env: Env, who: Member, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict[str, Any]:
    return {"elements": runs.list_runs(env, wid, ref, limit)}


@router.get("/{ref}/runs/{run_id}")
def get_run(wid: str, ref: str, run_id: str, env: Env, who: Member) -> dict[str, Any]:
    return runs.get_run(env, wid, run_id)[1]


@router.get("/{ref}/runs/{run_id}/failed.csv")
def failed_csv(wid: str, ref: str, run_id: str, env: Env, who: Member) -> StreamingResponse:
    """The failed-operations report: each failed row as it was, with its code and message."""
    job, _ = runs.get_run(env, wid, run_id)  # 404 before streaming starts
    headers = {"Content-Disposition": f'attachment; filename="failed-{run_id}.csv"'}
    return StreamingResponse(
        report.failed_csv_chunks(env, job, run_id), media_type="text/csv", headers=headers
    )


@router.get("/{ref}/schedule")
def get_schedule(wid: str, ref: str, env: Env, who: Member) -> dict[str, Any]:
    return schedule.get_schedule(env, wid, ref)


@router.put("/{ref}/schedule")
def set_schedule(wid: str, ref: str, body: JsonBody, env: Env, who: Admin) -> dict[str, Any]:
    """Cron (``{"cron": "0 6 * * 1-5"}``) or the friendly form (``times``, ``days_of_week``,
    ``days_of_month``, ``months``), with ``timezone``, ``start``, ``end``, ``paused``; the answer
    shows the next run times."""
    return schedule.set_schedule(env, wid, ref, body)


@router.delete("/{ref}/schedule")
def delete_schedule(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    schedule.delete_schedule(env, wid, ref)
    return {"deleted": "schedule"}


@router.post("/{ref}/pause")
def pause(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    return schedule.pause(env, wid, ref)


@router.post("/{ref}/resume")
def resume(wid: str, ref: str, env: Env, who: Admin) -> dict[str, Any]:
    return schedule.resume(env, wid, ref)
