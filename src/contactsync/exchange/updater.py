"""The updater: each row says what to do with its customer in an operation column —
``I`` insert, ``U`` update, ``D`` delete.

The operation must fit the customer's state, or the row fails with a code: an ``I`` for a key
the node has is E623, a ``U`` or ``D`` for a key it has not is E622 — never a silent upsert.
Rows are taken a batch at a time; a batch's inserts and updates (the hub's bulk path, with
the consent rules), its deletes (the hub's delete, journaled) and its bookkeeping commit in
one transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from contactsync.errors import ConfigError, RecordError
from contactsync.exchange.codecs import InputRow
from contactsync.exchange.importer import PARSE_BATCH, failure_row, refused_rows
from contactsync.exchange.inputs import Pending, Precheck, Rows, check, chunks
from contactsync.exchange.jobs import Job, UpdaterOptions
from contactsync.exchange.ledger import Counts, FailedRow, Ledger
from contactsync.exchange.mapping import Mapper
from contactsync.hub import customers as hub_customers
from contactsync.hub.bulk import BatchDone, UpsertMode, upsert_customers
from contactsync.hub.context import WriteContext
from contactsync.hub.workspaces import Node, Workspace
from contactsync.store import customers as customer_store
from contactsync.store.db import Database

OPERATIONS = ("I", "U", "D")


class Updater:
    def __init__(self, db: Database, job: Job, ws: Workspace, node: Node, ledger: Ledger) -> None:
        self.db, self.job, self.ws, self.node, self.ledger = db, job, ws, node, ledger
        self.options: UpdaterOptions = job.options()
        self.mapper = Mapper(ws, job.spec.mapping, job.subscription_columns())
        self.ctx = WriteContext(origin=job.origin, actor=job.name, automatic=True)
        self.total: int | None = None
        self.note: str | None = None
        self.columns: list[str] = []
        if self.mapper.key_columns is None:
            raise ConfigError(
                "the updater needs the workspace's matching properties mapped "
                "(and a matching policy other than NO_CHECK)",
                code="E634",
            )

    def run(self, rows: Rows, precheck: Precheck | None = None) -> None:
        op_column = self.options.operation_column
        required = [*self.mapper.columns, op_column]
        checked = check(rows, precheck, self.mapper, required, collect_keys=False)
        self.total, self.columns = checked.rows, checked.columns
        seen: set[int] = set()
        # at most PARSE_BATCH rows in memory (and in a transaction) at a time
        for chunk in chunks(rows(), min(self.job.spec.batch_size, PARSE_BATCH)):
            fresh = [row for row in chunk if row.number > self.ledger.progress]
            for row in chunk:
                if row.number <= self.ledger.progress and row.values is not None:
                    key = self.mapper.key(row.values)
                    if key is not None:
                        seen.add(hash(key))
            if fresh:
                self._batch(fresh, seen)

    def _batch(self, rows: list[InputRow], seen: set[int]) -> None:
        pending = Pending(read=len(rows))
        planned: list[tuple[InputRow, str, str]] = []  # row, operation, key
        for row in rows:
            if row.values is None:
                assert row.problem is not None
                pending.fail(row, row.problem.code, row.problem.message)
                continue
            operation = (row.values.get(self.options.operation_column) or "").strip().upper()
            if operation not in OPERATIONS:
                pending.fail(
                    row,
                    "E625",
                    f"operation {operation or '(empty)'!r} is not I (insert), U (update) or D (delete)",
                )
                continue
            key = self.mapper.key(row.values)
            if key is None:
                cols = ", ".join(c for c, _ in self.mapper.key_columns or [])
                pending.fail(row, "E620", f"no value in the key column(s) {cols}")
                continue
            if hash(key) in seen:
                pending.fail(row, "E621", "an earlier row of the file has the same key")
                continue
            seen.add(hash(key))
            planned.append((row, operation, key))
        with self.db.read() as conn:
            existing = customer_store.find_existing(conn, self.node.id, [k for _, _, k in planned])
        records: list[dict[str, Any]] = []
        owners: list[InputRow] = []
        deletes: list[str] = []
        for row, operation, key in planned:
            found = existing.get(key)
            if operation == "I" and found is not None:
                pending.fail(
                    row, "E623", f"the node already has this customer ({found.id}); use U to update it"
                )
                continue
            if operation in ("U", "D") and found is None:
                pending.fail(
                    row, "E622", f"the node has no customer with this key; use I to insert it ({operation})"
                )
                continue
            if operation == "D":
                assert found is not None
                deletes.append(found.id)
                continue
            try:
                assert row.values is not None
                records.append(self.mapper.record(row.values))
            except RecordError as e:
                pending.fail(row, e.code, e.message)
                continue
            owners.append(row)
        last = rows[-1].number

        def commit(conn: Connection, done: BatchDone | None) -> None:
            failed = list(pending.failed)
            delta = Counts(read=pending.read)
            refused: dict[int, FailedRow] = {}
            if done is not None:
                failed_indexes = {f.index for f in done.failed}
                failed += [failure_row(owners[f.index].number, owners[f.index].raw, f) for f in done.failed]
                refused = refused_rows(done, lambda i: owners[i], failed_indexes)
                delta.inserted, delta.updated, delta.unchanged = done.created, done.updated, done.unchanged
            rows_ = customer_store.get_many(conn, self.ws.id, deletes)
            for row in rows_.values():
                hub_customers.delete_row(conn, self.ws, row, self.ctx)
            delta.deleted = len(rows_)
            delta.failed = len(failed)
            delta.refused = len(refused)
            report = sorted([*failed, *refused.values()], key=lambda f: f.number)
            self.ledger.commit(conn, upto=last, delta=delta, failed=report)

        if records:
            upsert_customers(
                self.db,
                self.ws.id,
                self.node.id,
                records,
                ctx=self.ctx,
                mode=UpsertMode.MERGE,
                batch_size=len(records),
                pipelined=False,
                in_transaction=commit,
            )
        else:
            with self.db.write() as conn:
                commit(conn, None)
