"""Data Exchange (seed 002): the jobs, each job's schedule editor and run history, pause /
"activate recurrence", "Run now", and the paperclip that downloads a failed-operations report.

Admins create jobs and change schedules; editors also run jobs now; every role reads.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from contactsync.errors import ContactsyncError, FieldProblem, NotFoundError, invalid
from contactsync.exchange import jobs, report, runs, schedule
from contactsync.exchange.jobs import ExchangeEnv, Job, Module
from contactsync.hub import workspaces
from contactsync.scheduling.cron import DAY_NAMES
from contactsync.web.deps import Admin, PostedAdmin, PostedRunner, Viewer
from contactsync.web.render import redirect, render

router = APIRouter()
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "|": "|"}


def exchange_env(request: Request) -> ExchangeEnv:
    env: ExchangeEnv | None = getattr(request.app.state, "exchange_env", None)
    if env is None:
        env = ExchangeEnv.of(request.app.state.db, request.app.state.settings)
        request.app.state.exchange_env = env
    return env


XEnv = Annotated[ExchangeEnv, Depends(exchange_env)]


class JobFormIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = ""
    node: str = ""
    module: str = "importer"
    url: str = ""
    password: str = ""
    private_key: str = ""
    known_hosts: str = ""
    file: str = ""
    delimiter: str = ","
    mapping: str = ""
    subscriptions: str = ""
    mode: str = "append"
    options: str = ""
    recipients: str = ""


class ScheduleFormIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str = "friendly"
    cron: str = ""
    times: str = ""
    days_of_week: list[str] = []
    days_of_month: str = ""
    months: list[str] = []
    timezone: str = "UTC"
    start: str = ""
    end: str = ""
    paused: str = ""


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    """``left = right`` lines (blank lines skipped)."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        left, sep, right = line.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise invalid([FieldProblem(what, f"line {n}: write `column = value`", "E200")])
        out.append((left.strip(), right.strip()))
    return out


def job_spec(form: JobFormIn) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"url": form.url.strip(), "known_hosts": form.known_hosts.strip()}
    if form.password:
        endpoint["password"] = form.password
    if form.private_key.strip():
        endpoint["private_key"] = form.private_key.strip() + "\n"
    options: dict[str, Any] = {}
    if form.options.strip():
        try:
            options = orjson.loads(form.options)
        except orjson.JSONDecodeError:
            raise invalid([FieldProblem("options", "module options are a JSON object", "E200")]) from None
    if form.module == Module.IMPORTER:
        options.setdefault("mode", form.mode)
    return {
        "name": form.name.strip(),
        "node": form.node,
        "module": form.module,
        "endpoint": endpoint,
        "file": form.file.strip() or None,
        "format": {"format": "csv", "delimiter": DELIMITERS.get(form.delimiter, ",")},
        "mapping": dict(_pairs(form.mapping, "mapping")),
        "subscriptions": [{"column": c, "id": s} for c, s in _pairs(form.subscriptions, "subscriptions")],
        "options": options,
        "recipients": [r.strip() for r in form.recipients.replace(";", ",").split(",") if r.strip()],
    }


def schedule_spec(form: ScheduleFormIn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "timezone": form.timezone.strip() or "UTC",
        "start": form.start or None,
        "end": form.end or None,
        "paused": bool(form.paused),
    }
    if form.kind == "cron":
        spec["cron"] = form.cron.strip()
        return spec
    days: list[int] = []
    for part in form.days_of_month.replace(";", ",").split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise invalid([FieldProblem("days_of_month", f"{part.strip()!r} is not a day 1-31", "E663")])
            days.append(int(part))
    spec.update(
        times=[t.strip() for t in form.times.replace(";", ",").split(",") if t.strip()],
        days_of_week=list(form.days_of_week),
        days_of_month=days,
        months=[int(m) for m in form.months if m.isdigit()],
    )
    return spec


def _schedule_of(env: ExchangeEnv, workspace_id: str, job: Job) -> dict[str, Any] | None:
    try:
        return schedule.get_schedule(env, workspace_id, job.id)
    except NotFoundError:
        return None


def _jobs_page(request: Request, env: ExchangeEnv, workspace_id: str, **context: Any) -> Response:
    found = jobs.list_jobs(env, workspace_id)
    rows = []
    for job in found:
        last = runs.list_runs(env, workspace_id, job.id, limit=1)
        rows.append(
            {"job": job, "schedule": _schedule_of(env, workspace_id, job), "last": last[0] if last else None}
        )
    nodes = {n.id: n for n in workspaces.list_nodes(env.db, workspace_id)}
    return render(request, "exchange.html", rows=rows, nodes=nodes, **context)


@router.get("/exchange")
def job_list(request: Request, env: XEnv, session: Viewer) -> Response:
    return _jobs_page(request, env, session.user.workspace_id)


def _new_page(
    request: Request, env: ExchangeEnv, workspace_id: str, form: JobFormIn, **context: Any
) -> Response:
    return render(
        request,
        "exchange_new.html",
        form=form,
        nodes=workspaces.list_nodes(env.db, workspace_id),
        modules=[m.value for m in Module],
        delimiters=list(DELIMITERS),
        **context,
    )


@router.get("/exchange/new")
def new_job(request: Request, env: XEnv, session: Admin) -> Response:
    return _new_page(request, env, session.user.workspace_id, JobFormIn())


@router.post("/exchange/new")
def post_new_job(
    request: Request, env: XEnv, session: PostedAdmin, form: Annotated[JobFormIn, Form()]
) -> Response:
    try:
        job = jobs.create_job(env, session.user.workspace_id, job_spec(form))
    except ContactsyncError as e:
        form.password = form.private_key = ""  # credentials are never sent back to the browser
        return _new_page(request, env, session.user.workspace_id, form, error=e, status=400)
    return redirect(f"/exchange/{job.id}", notice="job_created")


def _job_page(request: Request, env: ExchangeEnv, workspace_id: str, ref: str, **context: Any) -> Response:
    job = jobs.get_job(env, workspace_id, ref)
    found = _schedule_of(env, workspace_id, job)
    node = next((n for n in workspaces.list_nodes(env.db, workspace_id) if n.id == job.node_id), None)
    shown = context.pop("schedule_form", None) or found or {"timezone": job.spec.timezone}
    return render(
        request,
        "exchange_job.html",
        job=job,
        node=node,
        schedule=found,
        shown=shown,
        runs=runs.list_runs(env, workspace_id, job.id, limit=50),
        day_names=DAY_NAMES,
        **context,
    )


@router.get("/exchange/{ref}")
def job_page(request: Request, ref: str, env: XEnv, session: Viewer) -> Response:
    return _job_page(request, env, session.user.workspace_id, ref)


@router.post("/exchange/{ref}/schedule")
def save_schedule(
    request: Request, ref: str, env: XEnv, session: PostedAdmin, form: Annotated[ScheduleFormIn, Form()]
) -> Response:
    wid = session.user.workspace_id
    spec: dict[str, Any] = {}
    try:
        spec = schedule_spec(form)
        schedule.set_schedule(env, wid, ref, spec)
    except ContactsyncError as e:
        return _job_page(request, env, wid, ref, error=e, schedule_form=spec or None, status=400)
    return redirect(f"/exchange/{ref}", notice="schedule_saved")


@router.post("/exchange/{ref}/pause")
def pause(ref: str, env: XEnv, session: PostedAdmin, back: Annotated[str, Form()] = "") -> Response:
    schedule.pause(env, session.user.workspace_id, ref)
    return redirect("/exchange" if back == "list" else f"/exchange/{ref}", notice="job_paused")


@router.post("/exchange/{ref}/resume")
def resume(ref: str, env: XEnv, session: PostedAdmin, back: Annotated[str, Form()] = "") -> Response:
    schedule.resume(env, session.user.workspace_id, ref)
    return redirect("/exchange" if back == "list" else f"/exchange/{ref}", notice="job_resumed")


@router.post("/exchange/{ref}/runs")
def run_now(ref: str, env: XEnv, session: PostedRunner, back: Annotated[str, Form()] = "") -> Response:
    job = jobs.get_job(env, session.user.workspace_id, ref)
    run_id = runs.start_run(env, job, "manual")

    def work() -> None:
        runs.execute(env, job, run_id)

    threading.Thread(target=work, name=f"exchange-{run_id}", daemon=True).start()
    return redirect("/exchange" if back == "list" else f"/exchange/{job.id}", notice="job_started")


@router.get("/exchange/{ref}/runs/{run_id}/failed.csv")
def failed_report(ref: str, run_id: str, env: XEnv, session: Viewer) -> StreamingResponse:
    job, _ = runs.get_run(env, session.user.workspace_id, run_id)  # 404 before streaming starts
    headers = {"Content-Disposition": f'attachment; filename="failed-{run_id}.csv"'}
    return StreamingResponse(
        report.failed_csv_chunks(env, job, run_id), media_type="text/csv", headers=headers
    )


@router.post("/exchange/{ref}/delete")
def delete_job(ref: str, env: XEnv, session: PostedAdmin) -> Response:
    jobs.delete_job(env, session.user.workspace_id, ref)
    return redirect("/exchange", notice="job_deleted")
