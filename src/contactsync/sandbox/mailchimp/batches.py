"""``/batches``: asynchronous bulk operations (shared/providers.md §5.4).

A batch moves ``pending → preprocessing → started → finalizing → finished``: one step per
status poll, or straight to the end once ``batch_seconds`` have passed on the sandbox clock.
Its operations run when it finishes, in order, as if each had been sent on its own (same
rules, same webhooks, source ``api``). The results are a gzipped tar archive at
``response_body_url``, fetched without authentication (Mailchimp serves it from storage): JSON
files, each an array of ``{"status_code", "operation_id", "response"}`` where ``response`` is
the operation's JSON answer as a string.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contactsync.sandbox.mailchimp.audience import ApiError, JsonDict, invalid, iso, not_found

STATES = ("pending", "preprocessing", "started", "finalizing", "finished")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
RESULTS_PER_FILE = 500

Execute = Callable[[Mapping[str, Any]], tuple[int, str]]


@dataclass
class Batch:
    id: str
    operations: list[JsonDict]
    submitted_at: float
    state: int = 0
    completed_at: float | None = None
    results: list[JsonDict] = field(default_factory=list)
    archive: bytes = b""

    @property
    def status(self) -> str:
        return STATES[self.state]


class BatchRunner:
    def __init__(self, *, max_pending: int = 500, batch_seconds: float = 5.0) -> None:
        self.max_pending = max_pending
        self.batch_seconds = batch_seconds
        self.batches: dict[str, Batch] = {}

    def start(self, body: Any, now: float) -> Batch:
        operations = body.get("operations") if isinstance(body, Mapping) else None
        if not isinstance(operations, list):
            raise invalid(
                "The resource submitted could not be validated.",
                [{"field": "operations", "message": "operations is required and must be an array."}],
            )
        for n, op in enumerate(operations):
            if not isinstance(op, Mapping) or op.get("method") not in METHODS or not str(op.get("path", "")):
                raise invalid(
                    "The resource submitted could not be validated.",
                    [{"field": f"operations.{n}", "message": "each operation needs a method and a path."}],
                )
            if op.get("body") is not None and not isinstance(op.get("body"), str):
                raise invalid(f"operations.{n}.body must be a JSON string.")
        pending = sum(1 for b in self.batches.values() if b.status != "finished")
        if pending >= self.max_pending:
            raise ApiError(
                429, "Too Many Requests", f"You have more than {self.max_pending} pending batch requests."
            )
        batch = Batch(secrets.token_hex(5), [dict(op) for op in operations], now)
        self.batches[batch.id] = batch
        return batch

    def poll(self, batch_id: str, now: float, execute: Execute) -> Batch:
        """The batch as a status request sees it (it moves one step, or to the end)."""
        batch = self.get(batch_id)
        if batch.status == "finished":
            return batch
        if now - batch.submitted_at >= self.batch_seconds:
            batch.state = len(STATES) - 1
        else:
            batch.state += 1
        if batch.status == "finished":
            self._run(batch, now, execute)
        return batch

    def get(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise not_found()
        return batch

    def delete(self, batch_id: str) -> None:
        self.get(batch_id)
        del self.batches[batch_id]

    def render(self, batch: Batch, origin: str) -> JsonDict:
        finished = batch.status == "finished"
        return {
            "id": batch.id,
            "status": batch.status,
            "total_operations": len(batch.operations),
            "finished_operations": len(batch.results) if finished else 0,
            "errored_operations": sum(1 for r in batch.results if r["status_code"] >= 400),
            "submitted_at": iso(batch.submitted_at),
            "completed_at": iso(batch.completed_at) if batch.completed_at is not None else "",
            "response_body_url": f"{origin}/batch-results/{batch.id}.tar.gz" if finished else "",
            "_links": [],
        }

    def _run(self, batch: Batch, now: float, execute: Execute) -> None:
        for op in batch.operations:
            status, text = execute(op)
            batch.results.append(
                {"status_code": status, "operation_id": op.get("operation_id"), "response": text}
            )
        batch.completed_at = now
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for start in range(0, max(1, len(batch.results)), RESULTS_PER_FILE):
                data = json.dumps(batch.results[start : start + RESULTS_PER_FILE]).encode()
                info = tarfile.TarInfo(f"{secrets.token_hex(5)}.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        batch.archive = buffer.getvalue()


def read_archive(data: bytes) -> list[JsonDict]:
    """Every result of a batch results archive (for clients and tests)."""
    out: list[JsonDict] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                out += json.loads(handle.read())
    return out
