"""A run's bookkeeping — counts, failed rows, resume point — committed with the run's writes.

Every batch of hub writes commits, in the same transaction, the rows it failed, the counts it
adds and the number of the last input row it covers. A run killed at any moment therefore
has a resume point that matches what was written: the next run on the same input starts
after it, and no row is imported (or reported) twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from contactsync.hub.times import now_ms
from contactsync.store import exchange as store
from contactsync.store.db import Database


@dataclass
class Counts:
    """``read`` = inserted + updated + unchanged + skipped + failed for input modules; ``refused``
    rows were written but a subscription change of theirs was kept out by the consent rules
    (they are in the failed-operations report too); ``written``: rows of an output file."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    refused: int = 0
    written: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in known})


@dataclass
class FailedRow:
    number: int  # the row's number in the input (1-based, header not counted)
    code: str
    message: str
    raw: str  # the row as it was in the input


OnProgress = Callable[[Counts], None]


class Ledger:
    def __init__(
        self,
        run_id: str,
        progress: int = 0,
        counts: Counts | None = None,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.run_id = run_id
        self.progress = progress
        self.counts = counts or Counts()
        self.on_progress = on_progress

    def commit(
        self, conn: Connection, *, upto: int | None, delta: Counts, failed: Sequence[FailedRow] = ()
    ) -> None:
        """Record a batch in the caller's transaction: its failed rows, its counts, and (``upto``)
        the last input row it covers."""
        store.insert_failed_rows(
            conn,
            [
                {
                    "run_id": self.run_id,
                    "row_number": f.number,
                    "code": f.code,
                    "message": f.message,
                    "raw": f.raw,
                }
                for f in failed
            ],
        )
        counts = Counts(**self.counts.as_json())
        counts.add(delta)
        progress = max(self.progress, upto) if upto is not None else self.progress
        store.update_run(
            conn,
            self.run_id,
            {
                "progress": progress,
                "counts": orjson.dumps(counts.as_json()).decode(),
                "heartbeat_at": now_ms(),
            },
        )
        # the transaction commits after this returns: if it does not, the run fails anyway
        self.counts, self.progress = counts, progress
        if self.on_progress is not None:
            self.on_progress(self.counts)

    def commit_alone(
        self, db: Database, *, upto: int | None, delta: Counts, failed: Sequence[FailedRow] = ()
    ) -> None:
        with db.write() as conn:
            self.commit(conn, upto=upto, delta=delta, failed=failed)
