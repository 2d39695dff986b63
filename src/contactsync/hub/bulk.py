"""Bulk upsert of customers: one transaction and a handful of statements per batch.

Records are matched to existing customers by the workspace's matching key; only records
whose content hash differs are rewritten and journaled, so re-loading a file with 1% of
rows changed writes 1% of the rows. Subscriptions go through the consent rules as anywhere.

The hot path, per record: validation (a hand-written check for plain records, the
workspace's compiled JSON-schema validator for the others), one serialisation of the
stored document, one MD5 of those bytes, an id from a block generated per batch. Per
batch: while the previous batch matched nothing, the new customers are inserted straight
away (the unique index on the matching key stops any that exist, and the batch is then
redone with the lookup of existing customers); the journal entries go in one statement.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any, NamedTuple

import orjson
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from contactsync.errors import FieldProblem, InputError
from contactsync.hub import subscriptions as subs
from contactsync.hub.context import WriteContext
from contactsync.hub.document import (
    _BASE_OBJECTS,
    _BASE_STRINGS,
    _PLAIN_KEYS_JSON,
    _TAG_LISTS,
    CustomerDoc,
    checked_email,
    customer_parser,
    match_key_function,
    merge_patch,
)
from contactsync.hub.schema import SECTION_LIMIT
from contactsync.hub.times import now_ms
from contactsync.hub.workspaces import (
    Node,
    UniquenessPolicy,
    Workspace,
    load_node,
    load_workspace,
    require_writable,
)
from contactsync.store import customers as store
from contactsync.store import journal
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

BULK = WriteContext(origin="bulk", automatic=True)


class UpsertMode(StrEnum):
    REPLACE = "replace"  # a matched customer's profile becomes the record's
    MERGE = "merge"  # the record's properties are merged onto the matched customer


class Prepared(NamedTuple):
    """A record whose document the caller built itself, as :func:`parse_plain` would from
    ``record`` (the caller guarantees it, and ``key`` = the workspace's matching key of ``doc``):
    the bulk path takes it as it is, and parses ``record`` only if the document cannot be
    stored as JSON. For callers that produce plain records by construction (the importer)."""

    doc: CustomerDoc
    key: str | None
    record: Mapping[str, Any]


def is_plain_property(path: str) -> bool:
    """Whether a property holds a string (a list of strings for tags) in a plain body (see
    :func:`contactsync.hub.document.parse_plain`): a record made of such properties only,
    without nulls, can take :func:`plain_doc`."""
    parts = path.split(".")
    if parts == ["externalId"]:
        return True
    if len(parts) == 2:
        return (parts[0] == "base" and parts[1] in _BASE_STRINGS) or (
            parts[0] == "tags" and parts[1] in _TAG_LISTS
        )
    return len(parts) == 3 and parts[0] == "base" and parts[2] in _BASE_OBJECTS.get(parts[1], ())


def plain_doc(record: dict[str, Any], text_bound: int) -> CustomerDoc | None:
    """The document :func:`parse_plain` builds from ``record``, for a record of plain properties
    only (:func:`is_plain_property`), all strings (lists of strings for tags), none null;
    ``text_bound``: at least the length of all its strings together. None when parse_plain
    would need the full path (an e-mail or externalId the schema refuses, or strings that
    might make a section too large): then parse the record.

    The record's own objects become the document's (its e-mail normalised in place).
    """
    if 6 * text_bound + _PLAIN_KEYS_JSON > SECTION_LIMIT:
        return None
    external_id = record.get("externalId")
    if external_id is not None and len(external_id) > 255:
        return None
    base = record.get("base")
    if not base:  # parse_plain leaves "base" out when a string has "null" in it: let it tell
        return None
    contacts = base.get("contacts")
    if contacts is not None:
        email = contacts.get("email")
        if email is not None:
            email = checked_email(email)
            if email is None:
                return None
            contacts["email"] = email
    tags = record.get("tags")
    tags = {"auto": [], "manual": [], **tags} if tags else {"auto": [], "manual": []}
    return CustomerDoc(external_id, True, {"base": base, "tags": tags}, None)


@dataclass
class RecordFailure:
    index: int
    code: str
    path: str
    message: str


@dataclass
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[RecordFailure] = field(default_factory=list)
    consent_refused: list[tuple[int, str]] = field(default_factory=list)  # (record, subscription id)

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.failed)


@dataclass
class BatchDone:
    """One batch as written, handed to ``in_transaction`` inside the batch's transaction."""

    first: int  # index of the batch's first and last record in the input
    last: int
    failed: list[RecordFailure]
    refused: list[tuple[int, str]]  # (record, subscription id) kept by the consent rules
    created: int
    updated: int
    unchanged: int


def _batches(
    records: Iterable[Mapping[str, Any] | Prepared], size: int
) -> Iterator[list[tuple[int, Mapping[str, Any] | Prepared]]]:
    it = enumerate(records)
    while batch := list(islice(it, size)):
        yield batch


# -- ids ------------------------------------------------------------------------------------------

_ids_lock = threading.Lock()
_ids_last_ms = 0
_SEQ_HEX = [f"{s:03x}" for s in range(4096)]
_VARIANT_HEX = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_ids(n: int) -> list[str]:
    """``n`` ascending ids in the layout of :func:`contactsync.hub.ids.new_id`.

    UUID version 7: 48-bit millisecond time, 12-bit counter, variant 0b10, 62 random bits.
    A block takes the milliseconds from now on (one per 4,096 ids) that no earlier block
    took, so blocks never overlap; the random bits keep them apart from ``new_id``'s.
    """
    global _ids_last_ms
    if n <= 0:
        return []
    with _ids_lock:
        first_ms = max(now_ms(), _ids_last_ms + 1)
        _ids_last_ms = first_ms + ((n - 1) >> 12)
    rand = os.urandom(8 * n).hex()
    seq_hex = _SEQ_HEX
    variant = _VARIANT_HEX
    out: list[str] = []
    append = out.append
    done = 0
    ms = first_ms
    while done < n:
        h = f"{ms:012x}"
        head = f"{h[:8]}-{h[8:]}-7"
        for seq in range(min(4096, n - done)):
            r = rand[16 * done : 16 * done + 16]
            append(f"{head}{seq_hex[seq]}-{variant[r[0]]}{r[1:4]}-{r[4:]}")
            done += 1
        ms += 1
    return out


# -- the collector while a bulk upsert runs -------------------------------------------------------

_gc_lock = threading.Lock()
_gc_users = 0
_saved_gc_threshold: tuple[int, ...] = ()
#: allocations between two young-generation collections while a bulk upsert runs. A batch's
#: records and documents live until the batch is written, so with CPython's default (700)
#: each batch is promoted to the oldest generation and every other batch sets off a full
#: collection of the heap: a quarter of the run, for nothing (reference counting frees them)
GC_THRESHOLD = 100_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's threshold (process-wide; restored when the last upsert ends)."""
    global _gc_users, _saved_gc_threshold
    with _gc_lock:
        if _gc_users == 0:
            _saved_gc_threshold = gc.get_threshold()
            gc.set_threshold(max(_saved_gc_threshold[0], GC_THRESHOLD), *_saved_gc_threshold[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_saved_gc_threshold)


# -- the upsert -----------------------------------------------------------------------------------

#: a parsed record: index in the input, document, matching key, stored JSON text, content hash
_Item = tuple[int, CustomerDoc, str | None, str, str]


def upsert_customers(
    db: Database,
    workspace_id: str,
    node_id: str,
    records: Iterable[Mapping[str, Any] | Prepared],
    *,
    ctx: WriteContext = BULK,
    mode: UpsertMode = UpsertMode.REPLACE,
    batch_size: int = 5000,
    on_batch: Callable[[UpsertReport], None] | None = None,
    pipelined: bool = True,
    in_transaction: Callable[[Connection, BatchDone], None] | None = None,
    commit_rows: int | None = None,
) -> UpsertReport:
    """Insert new customers and update matched ones, streaming ``records`` in batches.

    A record that fails validation is reported with its index and code; the others go on.
    Each batch is written in its own transaction, in input order; ``on_batch`` sees the
    report after each commit.

    ``pipelined``: while a second thread writes batch N (the database engine releases the
    GIL while it works), this one reads and validates batch N + 1; False does both in turn
    on this thread. Either way the writes, the report and the calls of ``on_batch`` are the
    same, and at most two batches are held in memory.

    ``in_transaction`` runs inside each batch's transaction after its writes, with what the
    batch did: a caller's own bookkeeping (e.g. an import's resume point) commits with them.

    ``commit_rows``: the batches share one transaction until it holds at least this many
    records (default: ``batch_size``, one transaction per batch). On SQLite every commit
    rewrites each index page the transaction touched, and new customers touch index pages
    all over the node: at a million rows, 5,000-row commits write the indexes 200 times over
    and take twice the time of 50,000-row ones. ``on_batch`` sees a batch once its transaction
    has committed; a failed transaction takes all its batches with it.
    """
    with db.read() as conn:
        ws = load_workspace(conn, workspace_id)
        node = load_node(conn, workspace_id, node_id)
    require_writable(node)
    report = UpsertReport()
    loader = _Loader(db, ws, node, ctx, mode, in_transaction, commit_rows or batch_size)

    def done(committed: list[_Written]) -> None:
        for failures, plan in committed:
            report.failed += sorted(failures + plan.failed, key=lambda f: f.index)
            report.created += plan.created
            report.updated += plan.updated
            report.unchanged += plan.unchanged
            report.consent_refused += plan.refused
            if on_batch is not None:
                on_batch(report)

    with _fewer_collections():
        if not pipelined:
            try:
                for batch in _batches(records, batch_size):
                    items, failures = loader.parse(batch)
                    done(loader.write(items, loader.plan_new(items), failures, _span(batch)))
            finally:
                # what was written stays written, also when reading the input failed
                done(loader.commit())
            return report
        with ThreadPoolExecutor(1, thread_name_prefix="bulk-writer") as writer:
            pending: Future[list[_Written]] | None = None
            try:
                for batch in _batches(records, batch_size):
                    items, failures = loader.parse(batch)
                    new = loader.plan_new(items)
                    if pending is not None:
                        done(pending.result())
                    pending = writer.submit(loader.write, items, new, failures, _span(batch))
            except BaseException:
                # reading the input failed while a batch was being written: as in turns, that
                # batch is written and reported first, and its own error wins
                if pending is not None:
                    error = pending.exception()
                    if error is not None:
                        raise error  # noqa: B904 - the error in flight is chained as its context
                    done(pending.result())
                done(writer.submit(loader.commit).result())
                raise
            if pending is not None:
                done(pending.result())
            done(writer.submit(loader.commit).result())
    return report


def _span(batch: list[tuple[int, Mapping[str, Any] | Prepared]]) -> tuple[int, int]:
    return batch[0][0], batch[-1][0]


def _failure(index: int, error: InputError) -> RecordFailure:
    problem = error.problems[0] if error.problems else FieldProblem("", error.message, error.code)
    return RecordFailure(index, problem.code, problem.path, problem.message)


#: a batch written in the open transaction: the records refused while parsing, and its plan
_Written = tuple[list[RecordFailure], "_Plan"]


@dataclass
class _Plan:
    """What one batch writes, decided before anything is written."""

    inserts: list[store.NewCustomer] = field(default_factory=list)
    updates: list[store.NewCustomer] = field(default_factory=list)  # rewritten whole
    touched: list[str] = field(default_factory=list)
    entries: list[tuple[str, str]] = field(default_factory=list)  # journal: (customer id, operation)
    subs: subs.SubscriptionWrites = field(default_factory=subs.SubscriptionWrites)
    failed: list[RecordFailure] = field(default_factory=list)  # refused while planning (E206 …)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class _Loader:
    def __init__(
        self,
        db: Database,
        ws: Workspace,
        node: Node,
        ctx: WriteContext,
        mode: UpsertMode,
        in_transaction: Callable[[Connection, BatchDone], None] | None = None,
        commit_rows: int = 1,
    ) -> None:
        self.db, self.ws, self.node, self.ctx, self.mode = db, ws, node, ctx, mode
        self.in_transaction = in_transaction
        # the open transaction (entered and left on the writer's thread) and what it holds
        self.commit_rows = commit_rows
        self._open: ExitStack | None = None
        self._conn: Connection | None = None
        self._held: list[_Written] = []
        self._held_rows = 0
        self.parse_doc = customer_parser(ws.extended_schema)
        # Workspace.key_of, with the property paths split once
        self.key_of: Callable[[CustomerDoc], str | None] = (
            (lambda _doc: None)
            if ws.uniqueness_policy == UniquenessPolicy.NO_CHECK
            else match_key_function(ws.matching_properties, ws.case_sensitive)
        )
        # insert without looking up existing customers first while the last batch matched none
        self.optimistic = True

    def parse(
        self, batch: list[tuple[int, Mapping[str, Any] | Prepared]]
    ) -> tuple[list[_Item], list[RecordFailure]]:
        parsed: list[_Item] = []
        failed: list[RecordFailure] = []
        first_seen: dict[str, int] = {}
        parse_doc, key_of, sort_keys = self.parse_doc, self.key_of, orjson.OPT_SORT_KEYS
        for index, record in batch:
            data_json = None
            if type(record) is Prepared:
                doc, key, record = record
                try:
                    data_json = orjson.dumps(doc.data, option=sort_keys)
                except orjson.JSONEncodeError:  # parsed below: the error it has
                    data_json = None
            if data_json is None:
                try:
                    doc = parse_doc(record)
                except InputError as e:
                    failed.append(_failure(index, e))
                    continue
                key = key_of(doc)
            if key is not None:
                if key in first_seen:
                    failed.append(
                        RecordFailure(
                            index,
                            "E300",
                            "",
                            f"same customer as record {first_seen[key]} of this input",
                        )
                    )
                    continue
                first_seen[key] = index
            if data_json is None:
                data_json = orjson.dumps(doc.data, option=sort_keys)
            # kept as text: orjson's bytes keep a 4 KB buffer each (20 MB a batch)
            parsed.append((index, doc, key, data_json.decode(), doc.content_hash(data_json)))
        return parsed, failed

    def plan_new(self, items: list[_Item]) -> _Plan | None:
        """The plan of a batch whose customers are all new, made ahead of its transaction.

        None when the writer will not try that (the last batch matched customers) or when a
        record has subscriptions (their rows carry the transaction's time).
        """
        if not self.optimistic or any(doc.subscriptions for _, doc, _, _, _ in items):
            return None
        plan = _Plan(created=len(items))
        ids = new_ids(len(items))
        plan.inserts = [
            (customer_id, doc.external_id, key, doc.enabled, content_hash, data_text)
            for customer_id, (_, doc, key, data_text, content_hash) in zip(ids, items, strict=True)
        ]
        plan.entries = [(customer_id, "CREATE") for customer_id in ids]
        return plan

    def write(
        self,
        items: list[_Item],
        new: _Plan | None = None,
        failures: list[RecordFailure] | None = None,
        span: tuple[int, int] = (0, 0),
    ) -> list[_Written]:
        """Write a batch in the open transaction (opened if need be) and commit it once it holds
        ``commit_rows`` records: the batches committed now (none while it stays open).

        ``new``: the batch's plan if all its customers are new; ``failures``, ``span``: its
        records refused while parsing, its first and last index (for ``in_transaction``).
        """
        if self._open is None:
            stack = ExitStack()
            self._conn = stack.enter_context(self.db.write())
            self._open = stack
        assert self._conn is not None
        try:
            plan = self._write(self._conn, items, new, failures or [], span)
        except BaseException:
            self._abort()
            raise
        self._held.append((failures or [], plan))
        self._held_rows += span[1] - span[0] + 1
        if self._held_rows >= self.commit_rows:
            return self.commit()
        return []

    def commit(self) -> list[_Written]:
        """Commit the open transaction, if any: the batches it held."""
        stack, self._open, self._conn = self._open, None, None
        held, self._held, self._held_rows = self._held, [], 0
        if stack is not None:
            stack.close()
        return held

    def _abort(self) -> None:
        stack, self._open, self._conn = self._open, None, None
        self._held, self._held_rows = [], 0
        if stack is not None:
            stack.__exit__(*sys.exc_info())  # rolls back

    def _write(
        self,
        conn: Connection,
        items: list[_Item],
        new: _Plan | None,
        failures: list[RecordFailure],
        span: tuple[int, int],
    ) -> _Plan:
        node_id, ws_id = self.node.id, self.ws.id
        plan: _Plan | None = None
        at = now_ms()
        if self.optimistic:
            plan = new if new is not None else self._plan(conn, items, {}, at)
            try:
                with conn.begin_nested():
                    store.insert_new(conn, ws_id, node_id, at, plan.inserts)
            except exc.IntegrityError:  # some exist after all: redo the batch with the lookup
                plan = None
        if plan is None:
            keys = [key for _, _, key, _, _ in items if key is not None]
            existing = store.find_existing(conn, node_id, keys)
            self.optimistic = not existing
            if self.mode == UpsertMode.MERGE and existing:
                existing = self._with_data(conn, items, existing)
            plan = self._plan(conn, items, existing, at)
            store.insert_new(conn, ws_id, node_id, at, plan.inserts)
        store.update_changed(conn, at, plan.updates)
        for customer_id in plan.touched:
            store.touch(conn, customer_id, at)
        plan.subs.apply(conn)
        journal.append_entries(conn, ws_id, node_id, "CUSTOMER", self.ctx.origin, at, plan.entries)
        if self.in_transaction is not None:
            failed = sorted(failures + plan.failed, key=lambda f: f.index)
            self.in_transaction(
                conn,
                BatchDone(*span, failed, plan.refused, plan.created, plan.updated, plan.unchanged),
            )
        # written: only the counts and failures are kept until the transaction commits
        plan.inserts, plan.updates, plan.touched, plan.entries = [], [], [], []
        plan.subs = subs.SubscriptionWrites()
        return plan

    def _with_data(
        self, conn: Connection, items: list[_Item], existing: dict[str, store.Existing]
    ) -> dict[str, store.Existing]:
        """``existing`` with the stored documents that a merge needs.

        A record whose content hash is the stored one's (same data, externalId and enabled)
        merges onto the customer without changing it: only the others are read and merged, so
        re-loading an unchanged file reads no document.
        """
        differ = [
            key
            for _, _, key, _, content_hash in items
            if key is not None and (row := existing.get(key)) is not None and row.content_hash != content_hash
        ]
        if differ:
            existing = {**existing, **store.find_existing(conn, self.node.id, differ, with_data=True)}
        return existing

    def _plan(
        self, conn: Connection, items: list[_Item], existing: dict[str, store.Existing], at: int
    ) -> _Plan:
        plan = _Plan()
        node, ctx = self.node, self.ctx
        with_subs = [existing[k].id for _, d, k, _, _ in items if d.subscriptions and k in existing]
        current_subs = sub_store.for_customers(conn, with_subs)
        ids = iter(new_ids(sum(1 for item in items if item[2] not in existing)))
        inserts, entries = plan.inserts, plan.entries
        for index, doc, key, data_text, content_hash in items:
            row = existing.get(key) if existing and key is not None else None
            if row is None:
                customer_id = next(ids)
                if doc.subscriptions:
                    try:
                        planned = subs.plan(customer_id, node.id, doc.subscriptions, {}, ctx, at)
                    except InputError as e:
                        plan.failed.append(_failure(index, e))
                        continue
                    plan.refused += [(index, sid) for sid in planned.refused]
                    plan.subs.extend(planned)
                inserts.append((customer_id, doc.external_id, key, doc.enabled, content_hash, data_text))
                plan.created += 1
                entries.append((customer_id, "CREATE"))
                continue
            customer_id = row.id
            if self.mode == UpsertMode.MERGE and content_hash != row.content_hash:
                body = {
                    **orjson.loads(row.data or "{}"),
                    "externalId": row.external_id,
                    "enabled": row.enabled,
                }
                doc = self.parse_doc(
                    merge_patch(
                        body,  # as hub.customers.body_of
                        {
                            **doc.as_body(),
                            "base": {
                                **doc.data.get("base", {}),
                                "subscriptions": doc.subscriptions,
                            },
                        },
                    )
                )
                data_json = doc.content_json()
                content_hash = doc.content_hash(data_json)
                data_text = data_json.decode()
            sub_changed = False
            if doc.subscriptions:
                current = {s.subscription_id: s for s in current_subs.get(customer_id, [])}
                try:
                    planned = subs.plan(customer_id, node.id, doc.subscriptions, current, ctx, at)
                except InputError as e:
                    plan.failed.append(_failure(index, e))
                    continue
                sub_changed = planned.changed
                plan.refused += [(index, sid) for sid in planned.refused]
                plan.subs.extend(planned)
            profile_changed = content_hash != row.content_hash
            if profile_changed:
                plan.updates.append((customer_id, doc.external_id, key, doc.enabled, content_hash, data_text))
            if profile_changed or sub_changed:
                plan.updated += 1
                if not profile_changed:
                    plan.touched.append(customer_id)
                entries.append((customer_id, "UPDATE"))
            else:
                plan.unchanged += 1
        return plan
