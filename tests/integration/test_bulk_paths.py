"""The bulk upsert's fast paths: insert without lookup, lookup after a conflict, the journal
in record order, MERGE, the batch pipeline, and the same stored document as the API path."""

from __future__ import annotations

import gc
import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from contactsync.hub import customers, workspaces
from contactsync.hub.bulk import UpsertMode, UpsertReport, new_ids, upsert_customers
from contactsync.store import journal
from contactsync.store.tables import customers as customers_table
from tests.conftest import Hub


def _rec(i: int, first: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "externalId": f"e{i}",
        "base": {"firstName": first or f"N{i}", "contacts": {"email": f"P{i}@Example.com"}},
        **extra,
    }


def _entries(hub: Hub, after: int) -> list[tuple[str, str]]:
    with hub.db.read() as conn:
        rows = journal.read(
            conn, hub.workspace_id, after_seq=after, since_ms=None, node_ids=None, entity=None, limit=10_000
        )
    return [(r.operation, r.entity_id) for r in rows]


def _last_seq(hub: Hub) -> int:
    with hub.db.read() as conn:
        return journal.last_seq(conn, hub.workspace_id, None, None)


def _ids_by_email(hub: Hub) -> dict[str, str]:
    with hub.db.read() as conn:
        rows = conn.execute(sa.select(customers_table.c.id, customers_table.c.match_key)).all()
    return {r.match_key: r.id for r in rows}


@pytest.mark.parametrize("pipelined", [True, False])
def test_mixed_batches_journal_in_record_order(hub: Hub, pipelined: bool) -> None:
    upsert_customers(hub.db, hub.workspace_id, hub.node_id, [_rec(i) for i in range(0, 10, 2)])
    before = _last_seq(hub)
    # new, changed, unchanged, new, changed... across batches of 4, one duplicate across batches
    records = [_rec(i, "X" if i % 4 == 0 else None) for i in range(10)] + [_rec(3, "again")]
    report = upsert_customers(
        hub.db, hub.workspace_id, hub.node_id, records, batch_size=4, pipelined=pipelined
    )
    ids = _ids_by_email(hub)
    expected = []
    for i in range(10):
        if i % 2:
            expected.append(("CREATE", ids[f"p{i}@example.com"]))
        elif i % 4 == 0:
            expected.append(("UPDATE", ids[f"p{i}@example.com"]))
    expected.append(("UPDATE", ids["p3@example.com"]))  # record 10 matches record 3 of an earlier batch
    assert _entries(hub, before) == expected
    assert (report.created, report.updated, report.unchanged, report.failed) == (5, 4, 2, [])


def test_first_load_then_conflicting_batch_falls_back_to_the_lookup(hub: Hub) -> None:
    first = upsert_customers(hub.db, hub.workspace_id, hub.node_id, [_rec(i) for i in range(6)], batch_size=3)
    assert (first.created, first.updated, first.unchanged) == (6, 0, 0)
    before = _last_seq(hub)
    # an all-new batch (insert straight away) then one whose last record exists
    again = upsert_customers(
        hub.db, hub.workspace_id, hub.node_id, [_rec(i, "Z") for i in (10, 11, 12, 13, 14, 5)], batch_size=3
    )
    assert (again.created, again.updated, again.unchanged) == (5, 1, 0)
    assert [op for op, _ in _entries(hub, before)] == ["CREATE"] * 5 + ["UPDATE"]
    with hub.db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(customers_table)).scalar_one()
    assert count == 11


def test_merge_mode_keeps_properties_the_record_does_not_send(hub: Hub) -> None:
    upsert_customers(
        hub.db,
        hub.workspace_id,
        hub.node_id,
        [{"base": {"lastName": "Lovelace", "contacts": {"email": "ada@example.com"}}}],
    )
    report = upsert_customers(
        hub.db,
        hub.workspace_id,
        hub.node_id,
        [{"base": {"firstName": "Ada", "contacts": {"email": "ADA@example.com"}}}],
        mode=UpsertMode.MERGE,
    )
    assert (report.created, report.updated) == (0, 1)
    with hub.db.read() as conn:
        (data,) = conn.execute(sa.select(customers_table.c.data)).scalars().all()
    base = orjson.loads(data)["base"]
    assert (base["firstName"], base["lastName"]) == ("Ada", "Lovelace")


def test_bulk_stores_what_the_api_stores(hub: Hub) -> None:
    other = workspaces.create_node(hub.db, hub.workspace_id, "other")
    bodies = [
        _rec(1, tags={"manual": ["vip"]}),
        {
            "externalId": None,
            "base": {"firstName": "nullable", "address": {}, "contacts": {"email": "q@b.it"}},
        },
        {"base": {"contacts": {"email": "r@b.it"}, "dob": "1990-01-02"}, "enabled": False},  # full validator
        # what COPY's text format escapes (PostgreSQL's bulk path): backslash, tab, line breaks
        {"base": {"contacts": {"email": "s@b.it"}, "lastName": 'O\'Brien \\N \\. "Q"\t\r\n ü €'}},
    ]
    upsert_customers(hub.db, hub.workspace_id, hub.node_id, bodies)
    for body in bodies:
        customers.create(hub.db, hub.workspace_id, {**body, "nodeId": other.id})
    cols = (customers_table.c.match_key, customers_table.c.content_hash, customers_table.c.data)
    with hub.db.read() as conn:
        by_node = {
            node: {
                r.match_key: (r.content_hash, orjson.loads(r.data))
                for r in conn.execute(sa.select(*cols).where(customers_table.c.node_id == node))
            }
            for node in (hub.node_id, other.id)
        }
    assert by_node[hub.node_id] == by_node[other.id]
    assert len(by_node[hub.node_id]) == 4
    assert by_node[hub.node_id]["s@b.it"][1]["base"]["lastName"] == 'O\'Brien \\N \\. "Q"\t\r\n ü €'


@pytest.mark.parametrize("pipelined", [True, False])
def test_batches_are_reported_in_order_and_an_input_error_keeps_what_was_written(
    hub: Hub, pipelined: bool
) -> None:
    seen: list[tuple[int, int]] = []

    def records() -> Iterator[dict[str, Any]]:
        for i in range(7):
            yield _rec(i) if i != 1 else {"base": {"firstName": 1}}
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError, match="the input broke"):
        upsert_customers(
            hub.db,
            hub.workspace_id,
            hub.node_id,
            records(),
            batch_size=3,
            on_batch=lambda r: seen.append((r.created, len(r.failed))),
            pipelined=pipelined,
        )
    assert seen == [(2, 1), (5, 1)]
    assert len(_ids_by_email(hub)) == 5  # the third batch (record 6) was read but never written


def test_a_failed_write_stops_the_upsert_with_its_error(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    from contactsync.hub import bulk

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk.store, "insert_new", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        upsert_customers(hub.db, hub.workspace_id, hub.node_id, [_rec(1), _rec(2)], batch_size=1)
    monkeypatch.undo()
    assert _ids_by_email(hub) == {}


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_new_subscription_without_a_status_fails_only_its_record(hub: Hub, pipelined: bool) -> None:
    records = [
        _rec(1),
        {"base": {"contacts": {"email": "s@example.com"}, "subscriptions": [{"id": "news"}]}},
        _rec(2),
    ]
    report = upsert_customers(
        hub.db, hub.workspace_id, hub.node_id, records, batch_size=5, pipelined=pipelined
    )
    assert [(f.index, f.code) for f in report.failed] == [(1, "E206")]
    assert report.created == 2
    assert "s@example.com" not in _ids_by_email(hub)


def test_report_counts_every_record(hub: Hub) -> None:
    records = [_rec(i) for i in range(20)] + [{"base": {"contacts": {"email": "bad"}}}, _rec(3)]
    report: UpsertReport = upsert_customers(hub.db, hub.workspace_id, hub.node_id, records, batch_size=6)
    assert report.processed == 22
    assert [(f.index, f.code) for f in report.failed] == [(20, "E201")]
    assert (report.created, report.unchanged) == (20, 1)


def test_the_collector_threshold_is_raised_during_the_upsert_only(hub: Hub) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, ...]] = []
    upsert_customers(
        hub.db,
        hub.workspace_id,
        hub.node_id,
        [_rec(1)],
        on_batch=lambda _r: during.append(gc.get_threshold()),
    )
    assert during[0][0] >= 100_000
    assert gc.get_threshold() == before


def test_new_ids_are_unique_ascending_uuid7() -> None:
    ids = new_ids(10_000) + new_ids(3)
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    shape = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(shape.match(i) for i in ids)
    assert all(uuid.UUID(i).version == 7 for i in ids[:10])
    assert new_ids(0) == []
