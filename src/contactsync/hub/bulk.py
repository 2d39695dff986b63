"""Bulk upsert of customers: one transaction and a handful of statements per batch.

Records are matched to existing customers by the workspace's matching key; only records
whose content hash differs are rewritten and journaled, so re-loading a file with 1% of
rows changed writes 1% of the rows. Subscriptions go through the consent rules as anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any

from contactsync.errors import FieldProblem, InputError
from contactsync.hub import subscriptions as subs
from contactsync.hub.context import WriteContext, journal_entry
from contactsync.hub.customers import body_of
from contactsync.hub.document import CustomerDoc, merge_patch, parse_customer
from contactsync.hub.ids import new_id
from contactsync.hub.times import now_ms
from contactsync.hub.workspaces import Node, Workspace, load_node, load_workspace, require_writable
from contactsync.store import customers as store
from contactsync.store import journal
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

BULK = WriteContext(origin="bulk", automatic=True)


class UpsertMode(StrEnum):
    REPLACE = "replace"  # a matched customer's profile becomes the record's
    MERGE = "merge"  # the record's properties are merged onto the matched customer


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


def _batches(
    records: Iterable[Mapping[str, Any]], size: int
) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    it = enumerate(records)
    while batch := list(islice(it, size)):
        yield batch


def upsert_customers(
    db: Database,
    workspace_id: str,
    node_id: str,
    records: Iterable[Mapping[str, Any]],
    *,
    ctx: WriteContext = BULK,
    mode: UpsertMode = UpsertMode.REPLACE,
    batch_size: int = 5000,
    on_batch: Callable[[UpsertReport], None] | None = None,
) -> UpsertReport:
    """Insert new customers and update matched ones, streaming ``records`` in batches.

    A record that fails validation is reported with its index and code; the others go on.
    """
    with db.read() as conn:
        ws = load_workspace(conn, workspace_id)
        node = load_node(conn, workspace_id, node_id)
    require_writable(node)
    report = UpsertReport()
    for batch in _batches(records, batch_size):
        _upsert_batch(db, ws, node, batch, ctx, mode, report)
        if on_batch is not None:
            on_batch(report)
    return report


def _parse(
    ws: Workspace, batch: list[tuple[int, Mapping[str, Any]]], report: UpsertReport
) -> list[tuple[int, CustomerDoc, str | None]]:
    parsed: list[tuple[int, CustomerDoc, str | None]] = []
    first_seen: dict[str, int] = {}
    for index, record in batch:
        try:
            doc = parse_customer(record, ws.extended_schema)
        except InputError as e:
            problem = e.problems[0] if e.problems else FieldProblem("", e.message, e.code)
            report.failed.append(RecordFailure(index, problem.code, problem.path, problem.message))
            continue
        key = ws.key_of(doc)
        if key is not None:
            if key in first_seen:
                report.failed.append(
                    RecordFailure(
                        index,
                        "E300",
                        "",
                        f"same customer as record {first_seen[key]} of this input",
                    )
                )
                continue
            first_seen[key] = index
        parsed.append((index, doc, key))
    return parsed


def _upsert_batch(
    db: Database,
    ws: Workspace,
    node: Node,
    batch: list[tuple[int, Mapping[str, Any]]],
    ctx: WriteContext,
    mode: UpsertMode,
    report: UpsertReport,
) -> None:
    parsed = _parse(ws, batch, report)
    keys = [key for _, _, key in parsed if key is not None]
    with db.write() as conn:
        existing = (
            store.find_by_match_keys(conn, node.id, keys, with_data=mode == UpsertMode.MERGE) if keys else {}
        )
        with_subs = [existing[k].id for _, d, k in parsed if d.subscriptions and k in existing]
        current_subs = sub_store.for_customers(conn, with_subs)
        at = now_ms()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        touched: list[str] = []
        journal_rows: list[dict[str, Any]] = []
        sub_writes = subs.SubscriptionWrites()
        for index, doc, key in parsed:
            row = existing.get(key) if key is not None else None
            if row is not None and mode == UpsertMode.MERGE:
                doc = parse_customer(
                    merge_patch(
                        body_of(row),
                        {
                            **doc.as_body(),
                            "base": {
                                **doc.data.get("base", {}),
                                "subscriptions": doc.subscriptions,
                            },
                        },
                    ),
                    ws.extended_schema,
                )
            data_json = doc.content_json()
            content_hash = doc.content_hash(data_json)
            customer_id = row.id if row is not None else new_id()
            values = {
                "id": customer_id,
                "external_id": doc.external_id,
                "match_key": key,
                "enabled": doc.enabled,
                "updated_at": at,
                "content_hash": content_hash,
                "data": data_json.decode(),
            }
            profile_changed = row is None or content_hash != row.content_hash
            if row is None:
                inserts.append({**values, "workspace_id": ws.id, "node_id": node.id, "registered_at": at})
            elif profile_changed:
                updates.append(values)
            sub_changed = False
            if doc.subscriptions:
                current = {s.subscription_id: s for s in current_subs.get(customer_id, [])}
                planned = subs.plan(customer_id, node.id, doc.subscriptions, current, ctx, at)
                sub_changed = planned.changed
                report.consent_refused += [(index, sid) for sid in planned.refused]
                sub_writes.extend(planned)
            if row is None:
                report.created += 1
            elif profile_changed or sub_changed:
                report.updated += 1
                if not profile_changed:
                    touched.append(customer_id)
            else:
                report.unchanged += 1
                continue
            op = "CREATE" if row is None else "UPDATE"
            journal_rows.append(journal_entry(ws.id, node.id, "CUSTOMER", customer_id, op, ctx, at))
        store.insert_many(conn, inserts)
        store.update_many(conn, updates)
        for customer_id in touched:
            store.touch(conn, customer_id, at)
        sub_writes.apply(conn)
        journal.append(conn, journal_rows)
