"""Runs of exchange jobs: start (one per job at a time), execute, finish, resume, report.

An input job (importer, updater) takes the files of its endpoint that match its pattern, in
name order, one run per file: a file whose content (SHA-256) the job already processed is
skipped (E630) unless forced; a processed file is moved to ``done/``, a file refused as a whole
to ``failed/``. A run that did not finish (its process was killed, or it failed on a transient
error) is resumed by the next run on the same input: that run starts after the last committed
row, with the counts and failed rows so far. An output job (displacer, exporter) writes its
file under a temporary name and renames it when complete.

After each run, the job's recipients get the report by email (counts, failed rows by code,
the failed-operations CSV attached).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from contactsync.errors import ConfigError, ContactsyncError, TransientError, not_found
from contactsync.exchange import displacer, exporter, report
from contactsync.exchange.codecs import (
    CsvCheck,
    CsvFormat,
    FileRejected,
    InputRow,
    OutputRow,
    check_csv,
    read_rows,
    write_rows,
)
from contactsync.exchange.importer import GuardTripped, Importer
from contactsync.exchange.inputs import Precheck
from contactsync.exchange.jobs import ExchangeEnv, Job, Module, get_job, job_by_id
from contactsync.exchange.ledger import Counts, Ledger
from contactsync.exchange.periods import render_name, zone
from contactsync.exchange.transports import Credentials, Endpoint, open_endpoint
from contactsync.exchange.updater import Updater
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_node, load_workspace
from contactsync.owners import owner_alive, process_owner
from contactsync.store import exchange as store
from contactsync.store.db import Database

log = logging.getLogger(__name__)
HEARTBEAT_ROWS = 20_000
#: SQLite page cache of an input run's connection, in MB: at a million customers the random
#: index pages of a load miss it a little more often than 256 MB, for no measurable time
RUN_CACHE_MB = 128


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # row failures are in the counts and the report
    FAILED = "failed"
    STOPPED = "stopped"  # a guard refused the run before it wrote anything
    SKIPPED = "skipped"  # nothing to do (no file, or the file was processed already)
    INTERRUPTED = "interrupted"  # its process died; the next run on the same input resumes it


RESUMABLE = (RunStatus.INTERRUPTED.value, RunStatus.FAILED.value)

#: (run id, counts so far, rows in the input when known); called as batches commit
Progress = Callable[[str, Counts, int | None], None]


@dataclass
class Outcome:
    run: dict[str, Any]
    error: ContactsyncError | None = None  # why the run failed, for a caller that re-raises it


def run_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "jobId": row.job_id,
        "trigger": row.trigger,
        "status": row.status,
        "startedAt": format_time(row.started_at),
        "endedAt": format_time(row.ended_at),
        "fileName": row.file_name,
        "checksum": row.checksum,
        "progress": int(row.progress),
        "counts": Counts.from_json(orjson.loads(row.counts)).as_json(),
        "errorCode": row.error_code,
        "error": row.error,
        "resumedFrom": row.resumed_from,
        "resumedBy": row.resumed_by,
        "report": row.report,
    }


def _load_run(env: ExchangeEnv, run_id: str) -> dict[str, Any]:
    with env.db.read() as conn:
        row = store.get_run(conn, run_id)
    if row is None:
        raise not_found("exchange run", run_id)
    return run_json(row)


def get_run(env: ExchangeEnv, workspace_id: str, run_id: str) -> tuple[Job, dict[str, Any]]:
    """A run of a job of the workspace, with its job."""
    with env.db.read() as conn:
        row = store.get_run(conn, run_id)
    if row is None:
        raise not_found("exchange run", run_id)
    job = job_by_id(env, row.job_id)
    if job.workspace_id != workspace_id:
        raise not_found("exchange run", run_id)
    return job, run_json(row)


def list_runs(env: ExchangeEnv, workspace_id: str, ref: str, limit: int = 20) -> list[dict[str, Any]]:
    job = get_job(env, workspace_id, ref)
    with env.db.read() as conn:
        return [run_json(r) for r in store.list_runs(conn, job.id, limit)]


# --- lifecycle -----------------------------------------------------------------------------------


def start_run(env: ExchangeEnv, job: Job, trigger: str) -> str:
    """Register a run of the job; E632 when another one is alive. A run whose process died is
    marked interrupted (the next run on its input resumes it)."""
    at = now_ms()
    run_id = new_id()
    with env.db.write() as conn:
        store.lock_job(conn, job.id)
        for other in store.running_runs(conn, job.id):
            if owner_alive(other.owner, other.heartbeat_at):
                raise ConfigError(f"job {job.name!r} is already running (run {other.id})", code="E632")
            store.update_run(
                conn,
                other.id,
                {
                    "status": RunStatus.INTERRUPTED.value,
                    "ended_at": at,
                    "error": f"the process running it died after row {other.progress}; "
                    "the next run on the same input resumes from there",
                },
            )
        store.insert_run(
            conn,
            {
                "id": run_id,
                "job_id": job.id,
                "trigger": trigger,
                "status": RunStatus.RUNNING.value,
                "started_at": at,
                "heartbeat_at": at,
                "owner": process_owner(),
                "progress": 0,
                "counts": orjson.dumps(Counts().as_json()).decode(),
            },
        )
    log.info("exchange run started", extra={"action": "exchange.start", "run_id": run_id, "job": job.name})
    return run_id


def _finish(
    env: ExchangeEnv,
    job: Job,
    run_id: str,
    status: RunStatus,
    error: ContactsyncError | None = None,
    *,
    note: str | None = None,
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    at = now_ms()
    with env.db.write() as conn:
        row = store.get_run(conn, run_id)
        assert row is not None
        store.update_run(
            conn,
            run_id,
            {
                "status": status.value,
                "ended_at": at,
                "heartbeat_at": at,
                "error_code": error.code if error is not None else None,
                "error": error.message if error is not None else note,
                **(values or {}),
            },
        )
        if status == RunStatus.SUCCEEDED and row.checksum:
            store.mark_processed(
                conn,
                {
                    "job_id": job.id,
                    "checksum": row.checksum,
                    "file_name": row.file_name or "",
                    "run_id": run_id,
                    "processed_at": at,
                },
            )
    log.info(
        "exchange run ended",
        extra={
            "action": "exchange.end",
            "run_id": run_id,
            "status": status.value,
            "code": error and error.code,
        },
    )
    return _load_run(env, run_id)


def _reported(env: ExchangeEnv, job: Job, run: dict[str, Any]) -> dict[str, Any]:
    sent = report.send_report(env, job, run)
    if sent is None:
        return run
    with env.db.write() as conn:
        store.update_run(conn, run["id"], {"report": sent})
    return {**run, "report": sent}


def _ledger(
    env: ExchangeEnv, job: Job, run_id: str, checksum: str | None, progress: Progress | None
) -> Ledger:
    """The run's ledger; it takes over the progress of an unfinished run on the same input."""
    position, counts = 0, Counts()
    with env.db.write() as conn:
        previous = store.resumable_run(conn, job.id, checksum, RESUMABLE)
        if previous is not None:
            position, counts = int(previous.progress), Counts.from_json(orjson.loads(previous.counts))
            store.copy_failed_rows(conn, previous.id, run_id)
            store.update_run(
                conn,
                run_id,
                {"progress": position, "counts": previous.counts, "resumed_from": previous.id},
            )
            store.update_run(conn, previous.id, {"resumed_by": run_id})
            log.info(
                "exchange run resumes",
                extra={"action": "exchange.resume", "run_id": run_id, "from": previous.id, "row": position},
            )
    return Ledger(run_id, position, counts)


# --- execution -----------------------------------------------------------------------------------


def _endpoint(env: ExchangeEnv, job: Job) -> Endpoint:
    s = job.secrets
    credentials = Credentials(
        password=s.get("password"),
        private_key=s.get("private_key"),
        passphrase=s.get("passphrase"),
        known_hosts=job.spec.endpoint.known_hosts,
    )
    return open_endpoint(job.spec.endpoint.url, credentials, env.settings)


def _file_name(job: Job) -> str:
    tz = zone(job.spec.timezone)
    assert tz is not None  # checked when the job was saved
    return render_name(job.file_pattern(), now_ms(), tz)


def execute(
    env: ExchangeEnv,
    job: Job,
    run_id: str,
    *,
    force: bool = False,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Execute a started run (and, for an input job with several files, one run per further file)."""
    try:
        if not job.module.reads_files:
            return [_export(env, job, run_id, progress)]
        if job.is_database:
            return [_import_database(env, job, run_id, allow_mass_change, progress)]
        return _import_files(env, job, run_id, force, allow_mass_change, progress)
    except Exception as e:
        with env.db.read() as conn:
            row = store.get_run(conn, run_id)
        if row is not None and row.status == RunStatus.RUNNING:
            _finish(
                env, job, run_id, RunStatus.FAILED, ContactsyncError(f"{type(e).__name__}: {e}", code="E999")
            )
        raise


def run_job(
    env: ExchangeEnv,
    workspace_id: str,
    ref: str,
    *,
    trigger: str = "manual",
    force: bool = False,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Start and execute a run of a job now, in this thread."""
    job = get_job(env, workspace_id, ref)
    run_id = start_run(env, job, trigger)
    return execute(env, job, run_id, force=force, allow_mass_change=allow_mass_change, progress=progress)


def run_scheduled(env: ExchangeEnv, job_id: str, trigger: str, request_id: str) -> None:
    """The scheduler's entry point: run the job; a busy job is retried later (E666), a run that
    failed fails the request with its error (a transient one is retried by the queue)."""
    job = job_by_id(env, job_id)
    try:
        run_id = start_run(env, job, trigger)
    except ConfigError as e:
        if e.code == "E632":
            raise TransientError(e.message, code="E666") from e
        raise
    for outcome in execute(env, job, run_id):
        if outcome.error is not None:
            raise outcome.error


def _apply(
    env: ExchangeEnv,
    job: Job,
    ledger: Ledger,
    rows: Callable[[], Iterator[InputRow]],
    allow_mass_change: bool,
    progress: Progress | None,
    precheck: Precheck | None = None,
) -> tuple[RunStatus, ContactsyncError | None, str | None, list[str]]:
    """Import an input with the job's module: (status, error, note, the input's columns)."""
    module: Importer | Updater | None = None
    if progress is not None:
        ledger.on_progress = lambda counts: progress(ledger.run_id, counts, module.total if module else None)
    db = _run_database(env.db)
    try:
        with env.db.read() as conn:
            ws = load_workspace(conn, job.workspace_id)
            node = load_node(conn, job.workspace_id, job.node_id)
        if job.module == Module.IMPORTER:
            module = Importer(db, job, ws, node, ledger, allow_mass_change=allow_mass_change)
        else:
            module = Updater(db, job, ws, node, ledger)
        module.run(rows, precheck)
    except GuardTripped as e:
        return RunStatus.STOPPED, e, None, module.columns if module else []
    except ContactsyncError as e:
        return RunStatus.FAILED, e, None, module.columns if module else []
    finally:
        if db is not env.db:
            db.dispose()
    return RunStatus.SUCCEEDED, None, module.note, module.columns


def _run_database(db: Database) -> Database:
    """The database handle an input run writes through: on a SQLite file, one of its own with a
    page cache of RUN_CACHE_MB (the service's connections keep theirs, and do not grow to
    their full cache with the pages of a million-row import); else ``db``."""
    if not db.is_sqlite or db.url.database in (None, "", ":memory:"):
        return db
    return Database(db.url.render_as_string(hide_password=False), sqlite_cache_mb=RUN_CACHE_MB)


def _import_files(
    env: ExchangeEnv,
    job: Job,
    run_id: str,
    force: bool,
    allow_mass_change: bool,
    progress: Progress | None,
) -> list[Outcome]:
    try:
        endpoint = _endpoint(env, job)
    except ContactsyncError as e:
        return [Outcome(_reported(env, job, _finish(env, job, run_id, RunStatus.FAILED, e)), e)]
    outcomes: list[Outcome] = []
    try:
        pattern = _file_name(job)
        try:
            names = [f.name for f in endpoint.list(pattern)]
        except ContactsyncError as e:
            return [Outcome(_reported(env, job, _finish(env, job, run_id, RunStatus.FAILED, e)), e)]
        if not names:
            error = ContactsyncError(f"no file on {endpoint.url} matches {pattern!r}", code="E633")
            return [Outcome(_reported(env, job, _finish(env, job, run_id, RunStatus.SKIPPED, error)))]
        for i, name in enumerate(names):
            if i > 0:
                try:
                    run_id = start_run(env, job, outcomes[0].run["trigger"])
                except ContactsyncError:
                    break  # another process took the job meanwhile: it goes on with the files
            outcome = _import_file(env, job, endpoint, name, run_id, force, allow_mass_change, progress)
            outcomes.append(outcome)
            if outcome.run["status"] == RunStatus.FAILED and not isinstance(outcome.error, FileRejected):
                break  # the endpoint or the database failed: the next run tries again
    finally:
        endpoint.close()
    return outcomes


def _import_file(
    env: ExchangeEnv,
    job: Job,
    endpoint: Endpoint,
    name: str,
    run_id: str,
    force: bool,
    allow_mass_change: bool,
    progress: Progress | None,
) -> Outcome:
    try:
        checksum = endpoint.checksum(name)
    except ContactsyncError as e:
        return Outcome(
            _reported(env, job, _finish(env, job, run_id, RunStatus.FAILED, e, values={"file_name": name})), e
        )
    with env.db.write() as conn:
        store.update_run(conn, run_id, {"file_name": name, "checksum": checksum})
        done = store.processed_file(conn, job.id, checksum)
    if done is not None and not force:
        skipped = ContactsyncError(
            f"{name} has the same content as {done.file_name}, processed by run {done.run_id} "
            f"on {format_time(done.processed_at)}; skipped",
            code="E630",
        )
        run = _finish(env, job, run_id, RunStatus.SKIPPED, skipped)
        if job.spec.move_processed:
            endpoint.move(name, "done")
        return Outcome(_reported(env, job, run))
    ledger = _ledger(env, job, run_id, checksum, progress)
    fmt = job.format(env.settings)

    def rows() -> Iterator[InputRow]:
        with endpoint.open_read(name) as stream:
            yield from read_rows(stream, fmt)

    def precheck() -> CsvCheck:
        assert isinstance(fmt, CsvFormat)
        with endpoint.open_read(name) as stream:
            return check_csv(stream, fmt)

    status, error, note, columns = _apply(
        env, job, ledger, rows, allow_mass_change, progress, precheck if isinstance(fmt, CsvFormat) else None
    )
    run = _finish(
        env, job, run_id, status, error, note=note, values={"input_columns": orjson.dumps(columns).decode()}
    )
    folder = None
    if status == RunStatus.SUCCEEDED:
        folder = "done"
    elif isinstance(error, FileRejected):
        folder = "failed"
    if folder and job.spec.move_processed:
        try:
            endpoint.move(name, folder)
            if job.spec.failed_report_on_endpoint and (run["counts"]["failed"] or run["counts"]["refused"]):
                report_name = f"{name}.failed.csv"
                with endpoint.write_atomic(report_name) as out:
                    for chunk in report.failed_csv_chunks(env, job, run_id):
                        out.write(chunk.encode())
                endpoint.move(report_name, folder)
        except ContactsyncError as e:
            log.warning(
                "exchange file not moved", extra={"action": "exchange.move", "run_id": run_id, "code": e.code}
            )
    return Outcome(_reported(env, job, run), error)


def _import_database(
    env: ExchangeEnv, job: Job, run_id: str, allow_mass_change: bool, progress: Progress | None
) -> Outcome:
    from contactsync.exchange.dbrows import read_db_rows

    endpoint = job.spec.endpoint
    with env.db.write() as conn:
        shown = f"{endpoint.table}" if endpoint.table else "query"
        store.update_run(conn, run_id, {"file_name": shown})
    ledger = _ledger(env, job, run_id, None, progress)

    def rows() -> Iterator[InputRow]:
        return read_db_rows(
            endpoint.url,
            table=endpoint.table,
            query=endpoint.query,
            password=job.secrets.get("password"),
            settings=env.settings,
        )

    status, error, note, columns = _apply(env, job, ledger, rows, allow_mass_change, progress)
    run = _finish(
        env, job, run_id, status, error, note=note, values={"input_columns": orjson.dumps(columns).decode()}
    )
    return Outcome(_reported(env, job, run), error)


def _export(env: ExchangeEnv, job: Job, run_id: str, progress: Progress | None) -> Outcome:
    counts = Counts()
    name = None
    try:
        with env.db.read() as conn:
            node = load_node(conn, job.workspace_id, job.node_id)
        produce = displacer.rows if job.module == Module.DISPLACER else exporter.rows
        columns, rows = produce(env.db, job, node, now_ms())
        name = _file_name(job)
        with env.db.write() as conn:
            store.update_run(conn, run_id, {"file_name": name})
        fmt = job.format(env.settings)
        endpoint = _endpoint(env, job)
        try:
            with endpoint.write_atomic(name) as out:
                counts.written = write_rows(out, columns, _beating(env, run_id, rows, counts, progress), fmt)
        finally:
            endpoint.close()
    except ContactsyncError as e:
        values = {"counts": orjson.dumps(Counts().as_json()).decode()}
        return Outcome(_reported(env, job, _finish(env, job, run_id, RunStatus.FAILED, e, values=values)), e)
    values = {"counts": orjson.dumps(counts.as_json()).decode()}
    return Outcome(_reported(env, job, _finish(env, job, run_id, RunStatus.SUCCEEDED, values=values)))


def _beating(
    env: ExchangeEnv, run_id: str, rows: Iterator[OutputRow], counts: Counts, progress: Progress | None
) -> Iterator[OutputRow]:
    """The rows, with the run's heartbeat and progress updated every so many."""
    for n, row in enumerate(rows, start=1):
        yield row
        if n % HEARTBEAT_ROWS == 0:
            with env.db.write() as conn:
                store.update_run(conn, run_id, {"heartbeat_at": now_ms(), "progress": n})
            if progress is not None:
                progress(run_id, Counts(written=n), None)
