"""The importer: rows of a file or a client table → customers of a node, through the hub's bulk path.

``append`` inserts new customers and updates the ones the workspace's matching policy finds
(``insert_only`` / ``update_existing_only`` narrow that); ``overwrite`` also deletes the
node's customers that the input does not have, behind the mass-change guard. Subscription
columns go through the consent rules like any automatic write. ``overwrite_profile`` and
``overwrite_subscriptions`` say whether an existing customer's profile and subscription
statuses may change.

Rows stream into :func:`contactsync.hub.bulk.upsert_customers`; the bookkeeping of each batch
(:class:`~contactsync.exchange.ledger.Ledger`) commits in the batch's own transaction, so a
killed run resumes after the last committed row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from contactsync.errors import ConfigError, RecordError
from contactsync.exchange.codecs import InputRow
from contactsync.exchange.inputs import Pending, Precheck, Rows, check, chunks
from contactsync.exchange.jobs import ImporterOptions, Job
from contactsync.exchange.ledger import Counts, FailedRow, Ledger
from contactsync.exchange.mapping import Mapper
from contactsync.hub import customers as hub_customers
from contactsync.hub.bulk import (
    BatchDone,
    Prepared,
    RecordFailure,
    UpsertMode,
    is_plain_property,
    plain_doc,
    upsert_customers,
)
from contactsync.hub.context import WriteContext
from contactsync.hub.workspaces import Node, Workspace
from contactsync.store import customers as customer_store
from contactsync.store import exchange as store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

DELETE_BATCH = 500
#: records validated and planned at a time; the job's batch_size is the rows per transaction
PARSE_BATCH = 5000


class GuardTripped(ConfigError):
    """The run stopped before writing: a guard refused it."""


@dataclass
class _Entry:
    number: int
    raw: str


def failure_row(entry_number: int, raw: str, f: RecordFailure) -> FailedRow:
    code = "E621" if f.code == "E300" else f.code  # the bulk path's "same customer as record N"
    message = f"{f.path}: {f.message}" if f.path else f.message
    if code == "E621":
        message = "an earlier row of the file has the same key"
    return FailedRow(entry_number, code, message, raw)


def refused_rows(done: BatchDone, entry: Any, failed_indexes: set[int]) -> dict[int, FailedRow]:
    """One E301 row per record whose subscription change the consent rules refused."""
    out: dict[int, FailedRow] = {}
    for index, sid in done.refused:
        if index in failed_indexes:
            continue
        e = entry(index)
        if index in out:
            out[index].message += f", {sid}"
            continue
        out[index] = FailedRow(
            e.number,
            "E301",
            f"the consent rules kept the current status of subscription {sid} (an import cannot "
            "re-subscribe someone who opted out); the rest of the row was imported",
            e.raw,
        )
    return out


class Importer:
    def __init__(
        self,
        db: Database,
        job: Job,
        ws: Workspace,
        node: Node,
        ledger: Ledger,
        *,
        allow_mass_change: bool = False,
    ) -> None:
        self.db, self.job, self.ws, self.node, self.ledger = db, job, ws, node, ledger
        self.options: ImporterOptions = job.options()
        self.allow_mass_change = allow_mass_change
        self.mapper = Mapper(ws, job.spec.mapping, job.subscription_columns())
        self.ctx = WriteContext(origin=job.origin, actor=job.name, automatic=True)
        self.batch_size = job.spec.batch_size
        self.matching = self.mapper.key_columns is not None
        # every record is plain (strings of base, externalId, tags): its document is built here
        self.plain = (
            not self.mapper.subscriptions
            and all(is_plain_property(path) for path in job.spec.mapping.values())
            and not any(path.startswith("tags.") for path in ws.matching_properties)
        )
        self.side: dict[int, tuple[int, str]] = {}  # record index → (row number, raw row)
        self.before: dict[int, Pending] = {}  # record index → the rows skipped or failed before it
        self.trailing = Pending()
        self.last_number = 0
        self.absent: list[str] = []
        self.note: str | None = None  # what the run record should say beside its counts
        self.total: int | None = None
        self.columns: list[str] = []
        if not self.matching and (
            self.overwrite or self.options.insert_only or self.options.update_existing_only
        ):
            raise ConfigError(
                "the workspace's matching properties are not all mapped (or its policy is NO_CHECK): "
                "this import mode needs them",
                code="E634",
            )

    @property
    def overwrite(self) -> bool:
        return self.options.mode == "overwrite"

    # --- the run -------------------------------------------------------------------------------

    def run(self, rows: Rows, precheck: Precheck | None = None) -> None:
        checked = check(rows, precheck, self.mapper, self.mapper.columns, collect_keys=self.overwrite)
        self.total, self.columns = checked.rows, checked.columns
        if self.overwrite:
            self._plan_deletes(checked.keys, checked.unreadable)
        mode = (
            UpsertMode.REPLACE
            if self.overwrite and self.options.overwrite_profile
            else UpsertMode.MERGE  # append: the file's columns onto the customer
        )
        upsert_customers(
            self.db,
            self.ws.id,
            self.node.id,
            self._records(rows()),
            ctx=self.ctx,
            mode=mode,
            batch_size=min(self.batch_size, PARSE_BATCH),
            commit_rows=self.batch_size,
            in_transaction=self._commit_batch,
        )
        tail = self.trailing
        if self.last_number > self.ledger.progress:
            read = self.last_number - self.ledger.progress
            delta = Counts(read=read, skipped=tail.skipped, failed=len(tail.failed))
            self.ledger.commit_alone(self.db, upto=self.last_number, delta=delta, failed=tail.failed)
        if self.absent:
            self._delete_absent()

    # --- overwrite: who goes ---------------------------------------------------------------------

    def _plan_deletes(self, present: set[int], unreadable: int) -> None:
        with self.db.read() as conn:
            total = 0
            absent = []
            for row in store.iter_node_keys(conn, self.node.id):
                total += 1
                if row.match_key is None or hash(row.match_key) not in present:
                    absent.append(row.id)
        if unreadable:
            self.note = (
                f"no customer was deleted: {unreadable} row(s) could not be read or have no key, so the "
                "customers they stand for are unknown; fix them (see the failed-operations report) and "
                "run the job again"
            )
            return
        share = 100.0 * len(absent) / total if total else 0.0
        if share > self.options.guard_percent and not self.allow_mass_change:
            raise GuardTripped(
                f"the overwrite would delete {len(absent)} of the node's {total} customers ({share:.1f}%), "
                f"more than the job's guard of {self.options.guard_percent:g}%; nothing was written",
                code="E631",
                data={"delete": len(absent), "total": total},
            )
        self.absent = absent

    def _delete_absent(self) -> None:
        for start in range(0, len(self.absent), DELETE_BATCH):
            ids = self.absent[start : start + DELETE_BATCH]
            with self.db.write() as conn:
                rows = customer_store.get_many(conn, self.ws.id, ids)
                for row in rows.values():
                    hub_customers.delete_row(conn, self.ws, row, self.ctx)
                self.ledger.commit(conn, upto=None, delta=Counts(deleted=len(rows)))

    # --- rows → records --------------------------------------------------------------------------

    def _records(self, rows: Iterator[InputRow]) -> Iterator[dict[str, Any] | Prepared]:
        """The records handed to the hub, in row order; each one carries (in ``self.side``) the
        rows before it that were skipped or failed, so they commit with it."""
        mapper, progress, matching, plain = self.mapper, self.ledger.progress, self.matching, self.plain
        seen: set[int] = set()
        pending = Pending()
        index = 0
        for chunk in chunks(rows, min(self.batch_size, PARSE_BATCH)):
            items: list[tuple[InputRow, dict[str, Any] | None, str | None, tuple[str, str] | None]] = []
            for row in chunk:
                self.last_number = row.number
                values = row.values
                if row.number <= progress:  # committed by the run this one resumes
                    if values is not None and (key := mapper.key(values)) is not None:
                        seen.add(hash(key))
                    continue
                if values is None:
                    assert row.problem is not None
                    items.append((row, None, None, (row.problem.code, row.problem.message)))
                    continue
                key = mapper.key(values)
                if key is None:
                    if matching:
                        cols = ", ".join(c for c, _ in mapper.key_columns or [])
                        items.append((row, None, None, ("E620", f"no value in the key column(s) {cols}")))
                        continue
                else:
                    h = hash(key)
                    if h in seen:
                        items.append(
                            (row, None, None, ("E621", "an earlier row of the file has the same key"))
                        )
                        continue
                    seen.add(h)
                try:
                    record = mapper.record(values)
                except RecordError as e:
                    items.append((row, None, None, (e.code, e.message)))
                    continue
                items.append((row, record, key, None))
            records = self._narrow(items)
            side, before = self.side, self.before
            for (row, _, key, problem), written in zip(items, records, strict=True):
                if problem is not None:
                    pending.fail(row, *problem)
                elif written is None:
                    pending.skipped += 1
                else:
                    side[index] = (row.number, row.raw)
                    if pending.skipped or pending.failed:
                        before[index] = pending
                        pending = Pending()
                    index += 1
                    doc = plain_doc(written, len(row.raw)) if plain else None
                    yield written if doc is None else Prepared(doc, key, written)
        self.trailing = pending

    def _narrow(
        self, items: list[tuple[InputRow, dict[str, Any] | None, str | None, tuple[str, str] | None]]
    ) -> list[dict[str, Any] | None]:
        """Each item's record as the options want it written; None: skipped."""
        opts = self.options
        records = [record for _, record, _, _ in items]
        lookup = opts.insert_only or opts.update_existing_only or not opts.overwrite_profile
        if not (lookup or (not opts.overwrite_subscriptions and self.mapper.subscriptions)):
            return records
        keys = [key for _, record, key, _ in items if record is not None and key is not None]
        with self.db.read() as conn:
            existing = customer_store.find_existing(conn, self.node.id, keys)
            subs = {}
            if not opts.overwrite_subscriptions and self.mapper.subscriptions:
                subs = sub_store.for_customers(conn, [e.id for e in existing.values()])
        out: list[dict[str, Any] | None] = []
        for (_, _, key, _), given in zip(items, records, strict=True):
            found = existing.get(key) if key is not None else None
            unwanted = (opts.insert_only and found is not None) or (
                opts.update_existing_only and found is None
            )
            if given is None or unwanted:
                out.append(None)
            else:
                if found is not None and not opts.overwrite_profile:
                    given = self.mapper.key_record(given)
                if found is not None and subs:
                    have = {s.subscription_id for s in subs.get(found.id, [])}
                    base = given.get("base") or {}
                    items_ = [s for s in base.get("subscriptions", []) if s["id"] not in have]
                    if "subscriptions" in base:
                        given = {**given, "base": {**base, "subscriptions": items_}}
                        if not items_:
                            del given["base"]["subscriptions"]
                out.append(given)
        return out

    # --- in each batch's transaction --------------------------------------------------------------

    def _commit_batch(self, conn: Connection, done: BatchDone) -> None:
        side, span = self.side, range(done.first, done.last + 1)
        entries = [side.pop(i) for i in span]
        before = [p for i in span if (p := self.before.pop(i, None)) is not None]
        failed = [f for p in before for f in p.failed]
        failed_indexes = {f.index for f in done.failed}
        failed += [failure_row(*entries[f.index - done.first], f) for f in done.failed]
        refused = refused_rows(done, lambda i: _Entry(*entries[i - done.first]), failed_indexes)
        upto = entries[-1][0]
        delta = Counts(
            read=upto - self.ledger.progress,  # every row after the resume point up to this one
            skipped=sum(p.skipped for p in before),
            inserted=done.created,
            updated=done.updated,
            unchanged=done.unchanged,
            failed=len(failed),
            refused=len(refused),
        )
        rows = sorted([*failed, *refused.values()], key=lambda f: f.number)
        self.ledger.commit(conn, upto=upto, delta=delta, failed=rows)
