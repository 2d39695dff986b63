"""A run's report: the failed-operations CSV and the email to the job's recipients.

The failed-operations CSV has one line per failed row: its number in the input, the error
code and message, then the row as it was — split into the input's own columns for a CSV
input (fix the cells, drop the first three columns and import it again), or as one ``raw``
column for XML and database inputs. Cells are neutralised against spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson

from contactsync.errors import CATALOGUE, ContactsyncError
from contactsync.exchange.codecs import CsvFormat, neutralise
from contactsync.exchange.jobs import ExchangeEnv, Job
from contactsync.exchange.ledger import Counts
from contactsync.hub.times import format_time, now_ms
from contactsync.notify.email import Attachment, send_email
from contactsync.store import exchange as store

log = logging.getLogger(__name__)
LEAD = ["row", "error_code", "error_message"]
ATTACH_LIMIT = 5 * 1024 * 1024  # bigger reports are only offered for download


def _cells(raw: str, fmt: CsvFormat) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(raw), delimiter=fmt.delimiter, quotechar=fmt.quotechar), [])
    except csv.Error:
        return [raw]


def failed_csv_chunks(
    env: ExchangeEnv, job: Job, run_id: str, *, rows_per_chunk: int = 1000
) -> Iterator[str]:
    """The failed-operations report as CSV text, a chunk at a time (memory stays flat)."""
    with env.db.read() as conn:
        run = store.get_run(conn, run_id)
    columns = orjson.loads(run.input_columns) if run is not None and run.input_columns else []
    fmt = job.format(env.settings) if not job.is_database else None
    split = isinstance(fmt, CsvFormat) and bool(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(LEAD + (columns if split else ["raw"]))
    after, n = 0, 0
    while True:
        with env.db.read() as conn:
            page = store.failed_rows_page(conn, run_id, after_id=after, limit=2000)
        for r in page:
            rest = _cells(r.raw, fmt) if split and isinstance(fmt, CsvFormat) else [r.raw]
            writer.writerow(
                [str(r.row_number), r.code, neutralise(r.message), *(neutralise(c) for c in rest)]
            )
            n += 1
            if n % rows_per_chunk == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if len(page) < 2000:
            break
        after = page[-1].id
    yield buffer.getvalue()


def failed_csv(env: ExchangeEnv, job: Job, run_id: str) -> bytes:
    return "".join(failed_csv_chunks(env, job, run_id)).encode()


def counts_line(counts: Counts) -> str:
    c = counts
    if c.written or not c.read:
        return f"{c.written} rows written"
    return (
        f"{c.read} read: {c.inserted} inserted, {c.updated} updated, {c.unchanged} unchanged, "
        f"{c.deleted} deleted, {c.skipped} skipped, {c.failed} failed"
        + (f", {c.refused} with a subscription change refused" if c.refused else "")
    )


def email_text(job: Job, run: dict[str, Any], codes: list[tuple[str, int]]) -> str:
    counts = Counts.from_json(run["counts"])
    lines = [
        f"Exchange job {job.name} ({job.module}) — run {run['id']}",
        f"Status: {run['status']}",
        f"File: {run.get('fileName') or '-'}",
        f"Started: {run['startedAt']}   Ended: {run.get('endedAt') or '-'}",
        "",
        "Counts: " + counts_line(counts),
    ]
    if run.get("errorCode") or run.get("error"):
        lines += ["", f"Error {run.get('errorCode') or ''}: {run.get('error') or ''}".strip()]
        info = CATALOGUE.get(run.get("errorCode") or "")
        if info:
            lines.append(f"What to do: {info.action}")
    if codes:
        lines += ["", "Failed rows by error code:"]
        for code, n in codes:
            info = CATALOGUE.get(code)
            lines.append(f"  {code}  {n:>8}  {info.name + ': ' + info.meaning if info else ''}")
        lines += ["", "The failed-operations report is attached (or: contactsync exchange report RUN)."]
    return "\n".join(lines) + "\n"


def send_report(env: ExchangeEnv, job: Job, run: dict[str, Any]) -> str | None:
    """Email the run's report to the job's recipients; returns what to record about it."""
    if not job.spec.recipients:
        return None
    with env.db.read() as conn:
        codes = store.failed_codes(conn, run["id"])
    attachments = []
    if codes:
        content = failed_csv(env, job, run["id"])
        if len(content) <= ATTACH_LIMIT:
            attachments.append(Attachment(f"failed-{run['id']}.csv", content))
    subject = f"[contactsync] {job.name}: {run['status']} — {counts_line(Counts.from_json(run['counts']))}"
    try:
        send_email(
            env.settings, job.spec.recipients, subject, email_text(job, run, codes), attachments=attachments
        )
    except ContactsyncError as e:
        log.warning(
            "exchange report not sent",
            extra={"action": "exchange.report", "run_id": run["id"], "code": e.code},
        )
        return f"not sent: {e.code} {e.message}"
    return f"sent to {', '.join(job.spec.recipients)} at {format_time(now_ms())}"
