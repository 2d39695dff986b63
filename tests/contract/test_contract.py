"""The contract every connector passes: what the sync engine relies on, checked against each
provider setup listed in tests/contract/conftest.py.

A test skips only what the connector's capabilities say it cannot do (tombstones without a
delete feed, update times without a change feed); the other branch asserts what the engine
gets instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from contactsync.connectors.base import Connector, RemoteRecord, WriteItem
from contactsync.errors import AuthError, ConfigError
from contactsync.hub.consent import Status
from tests.contract.harness import Harness


@dataclass
class Read:
    records: list[RemoteRecord]
    deleted: list[str]
    cursor: str | None
    batches: int

    def by_id(self) -> dict[str, RemoteRecord]:
        return {r.remote_id: r for r in self.records}


def read_all(conn: Connector, cursor: str | None = None, since: int | None = None) -> Read:
    """Every batch of one read, as the engine applies them: it stores each batch's cursor,
    and keeps the one it has when a batch carries none."""
    records, deleted, batches = [], [], 0
    for batch in conn.read(cursor, since=since):
        records += batch.records
        deleted += batch.deleted
        cursor = batch.cursor if batch.cursor is not None else cursor
        batches += 1
    return Read(records, deleted, cursor, batches)


def person(h: Harness, n: int, tag: str = "p") -> dict[str, Any]:
    return {h.email_field: f"{tag}{n}@example.com", h.first_name_field: f"First{n}"}


def item(h: Harness, n: int, tag: str = "p", **lists: Status) -> WriteItem:
    fields = person(h, n, tag)
    return WriteItem(f"hub-{tag}{n}", None, fields, {h.email_field: fields[h.email_field]}, dict(lists))


def ok_ids(results: list[Any]) -> list[str]:
    assert [r.problem for r in results] == [None] * len(results)
    return [r.remote_id for r in results]


# -- check and describe ----------------------------------------------------------------------


def test_check_accepts_the_target(harness: Harness) -> None:
    harness.connector().check()


def test_check_refuses_bad_credentials(harness: Harness) -> None:
    with pytest.raises((AuthError, ConfigError)) as raised:
        harness.bad_credentials().check()
    if isinstance(raised.value, AuthError):
        assert raised.value.code == "E112"
    assert raised.value.message


def test_describe_lists_the_email_field_and_the_lists(harness: Harness) -> None:
    description = harness.connector().describe()
    email = description.field(harness.email_field)
    assert email is not None and email.type == "email" and email.writable
    assert description.field(harness.first_name_field) is not None
    assert set(harness.list_ids) <= {lst.id for lst in description.lists}


def test_describe_counts_the_records(harness: Harness) -> None:
    conn = harness.connector()
    assert conn.describe().record_count == 0
    ids = harness.seed([person(harness, n) for n in range(4)])
    assert conn.describe().record_count == 4
    harness.remove(ids[0])
    assert conn.describe().record_count == 3


def test_user_db_is_stable_across_instances(harness: Harness) -> None:
    first, second = harness.connector().describe(), harness.connector().describe()
    assert first.user_db and first.user_db == second.user_db


# -- read ------------------------------------------------------------------------------------


def test_first_read_returns_every_record_once_across_batches(harness: Harness) -> None:
    rows = [person(harness, n) for n in range(2 * harness.page_size + 1)]
    ids = harness.seed(rows)
    result = read_all(harness.connector())
    assert result.batches >= 2
    assert Counter(r.remote_id for r in result.records) == Counter(ids)
    assert result.deleted == []
    got = result.by_id()
    for remote_id, row in zip(ids, rows, strict=True):
        assert got[remote_id].fields[harness.email_field] == row[harness.email_field]
        assert got[remote_id].fields[harness.first_name_field] == row[harness.first_name_field]


def test_reading_again_from_the_last_cursor(harness: Harness) -> None:
    ids = harness.seed([person(harness, n) for n in range(harness.page_size + 1)])
    conn = harness.connector()
    first = read_all(conn)
    again = read_all(conn, first.cursor)
    if conn.capabilities.change_feed:
        assert again.records == [] and again.deleted == []
    else:  # a full listing each time; echo suppression makes it a no-op
        assert Counter(r.remote_id for r in again.records) == Counter(ids)


def test_read_after_an_edit_returns_the_new_value(harness: Harness) -> None:
    ids = harness.seed([person(harness, n) for n in range(harness.page_size + 1)])
    conn = harness.connector()
    cursor = read_all(conn).cursor
    harness.advance_clock(2)
    harness.edit(ids[1], {harness.first_name_field: "Edited"})
    result = read_all(conn, cursor)
    assert result.by_id()[ids[1]].fields[harness.first_name_field] == "Edited"
    if conn.capabilities.change_feed:
        assert [r.remote_id for r in result.records] == [ids[1]]


def test_read_reports_a_removed_record_as_a_tombstone(harness: Harness) -> None:
    conn = harness.connector()
    ids = harness.seed([person(harness, n) for n in range(2)])
    cursor = read_all(conn).cursor
    harness.advance_clock(2)
    harness.remove(ids[0])
    result = read_all(conn, cursor)
    assert ids[0] not in result.by_id()
    if not conn.capabilities.delete_feed:
        pytest.skip("no delete feed: deletions are not reported")
    assert result.deleted == [ids[0]]


def test_fetch_returns_the_current_state_of_the_asked_records(harness: Harness) -> None:
    """A targeted pull (after a webhook): the records as they are now; gone ones left out."""
    conn = harness.connector()
    ids = harness.seed([person(harness, n) for n in range(3)])
    harness.advance_clock(2)
    harness.edit(ids[0], {harness.first_name_field: "Edited"})
    harness.remove(ids[2])
    got = {r.remote_id: r for r in conn.fetch([ids[0], ids[1], ids[2]])}
    assert set(got) == {ids[0], ids[1]}
    assert got[ids[0]].fields[harness.first_name_field] == "Edited"
    assert got[ids[1]].fields[harness.email_field] == "p1@example.com"


def test_first_read_since_returns_only_records_updated_from_then(harness: Harness) -> None:
    conn = harness.connector()
    if not conn.capabilities.change_feed:
        pytest.skip("no change feed: a full listing has no update times to filter on")
    harness.seed([person(harness, n, "old") for n in range(2)])
    harness.advance_clock(5)
    since = harness.now_ms()
    new = harness.seed([person(harness, n, "new") for n in range(2)])
    result = read_all(conn, since=since)
    assert sorted(r.remote_id for r in result.records) == sorted(new)


# -- write -----------------------------------------------------------------------------------


def test_write_creates_records_and_returns_their_ids(harness: Harness) -> None:
    conn = harness.connector()
    items = [item(harness, n) for n in range(3)]
    results = conn.write(items)
    assert [r.key for r in results] == [i.key for i in items]
    ids = ok_ids(results)
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 3
    assert all(r.created for r in results)
    for written, result in zip(items, results, strict=True):
        assert result.remote_id is not None
        stored = harness.fetch(result.remote_id)
        assert stored is not None
        assert stored.fields[harness.email_field] == written.fields[harness.email_field]
        assert stored.fields[harness.first_name_field] == written.fields[harness.first_name_field]
        if result.record is not None:
            assert result.record.remote_id == result.remote_id
            assert result.record.fields[harness.email_field] == written.fields[harness.email_field]
    assert conn.describe().record_count == 3


def test_write_is_idempotent_by_match(harness: Harness) -> None:
    conn = harness.connector()
    items = [item(harness, n) for n in range(3)]
    first = ok_ids(conn.write(items))
    again = conn.write(items)  # e.g. the engine crashed before it stored the links
    assert ok_ids(again) == first
    assert not any(r.created for r in again)
    assert conn.describe().record_count == 3


def test_write_matches_the_email_case_insensitively(harness: Harness) -> None:
    conn = harness.connector()
    [created] = ok_ids(conn.write([item(harness, 1)]))
    shouting = item(harness, 1)
    shouting.match = {harness.email_field: shouting.fields[harness.email_field].upper()}
    [result] = conn.write([shouting])
    assert result.problem is None and result.remote_id == created and not result.created
    assert conn.describe().record_count == 1


def test_write_by_remote_id_changes_only_the_given_fields(harness: Harness) -> None:
    conn = harness.connector()
    [remote_id] = harness.seed([person(harness, 1)])
    harness.set_list(remote_id, harness.list_ids[0], Status.SUBSCRIBED)
    before = harness.fetch(remote_id)
    assert before is not None
    change = WriteItem("hub-1", remote_id, {harness.first_name_field: "Changed"}, {})
    [result] = conn.write([change])
    assert result.problem is None and result.remote_id == remote_id and not result.created
    after = harness.fetch(remote_id)
    assert after is not None
    assert after.fields[harness.first_name_field] == "Changed"
    assert after.fields[harness.email_field] == before.fields[harness.email_field]
    assert after.lists == before.lists
    assert conn.describe().record_count == 1


def read_back_as(written: Status, stored: dict[str, Status], list_id: str) -> bool:
    """Whether a list's stored status is what was written. An unsubscribe may also read back as
    no status at all: providers that model it as leaving the list (Constant Contact, when the
    person stays on other lists) report no status there. It never reads back as anything else."""
    got = stored.get(list_id)
    return got == written or (written is Status.UNSUBSCRIBED and got is None)


def test_list_statuses_written_are_read_back(harness: Harness) -> None:
    conn = harness.connector()
    first, second = harness.list_ids[:2]
    remote_id: str | None = None
    for statuses in (
        {first: Status.SUBSCRIBED, second: Status.UNSUBSCRIBED},  # a new record
        {first: Status.UNSUBSCRIBED, second: Status.SUBSCRIBED},  # then both flipped
    ):
        written = item(harness, 1, **statuses)
        written.remote_id = remote_id
        [remote_id] = ok_ids(conn.write([written]))
        assert remote_id is not None
        stored, read = harness.fetch(remote_id), read_all(conn).by_id()[remote_id]
        assert stored is not None
        for list_id, status in statuses.items():
            assert read_back_as(status, stored.lists, list_id), (list_id, status, stored.lists)
            assert read_back_as(status, read.lists, list_id), (list_id, status, read.lists)


def test_a_record_without_a_required_field_is_skipped_with_e420(harness: Harness) -> None:
    conn = harness.connector()
    required = [f.name for f in conn.describe().fields if f.required and f.writable]
    if not required:
        pytest.skip("the provider requires no field")
    missing = required[0]
    incomplete = item(harness, 2)
    del incomplete.fields[missing]
    if missing in incomplete.match:
        incomplete.match = {}
    items = [item(harness, 1), incomplete, item(harness, 3)]
    results = conn.write(items)
    assert [r.key for r in results] == [i.key for i in items]
    assert results[0].problem is None and results[2].problem is None
    problem = results[1].problem
    assert problem is not None and problem.code == "E420" and missing in problem.message
    assert not problem.retryable
    assert conn.describe().record_count == 2


def test_delete_removes_and_an_absent_id_is_not_an_error(harness: Harness) -> None:
    conn = harness.connector()
    ids = harness.seed([person(harness, n) for n in range(2)])
    results = conn.delete([ids[0]])
    assert [(r.key, r.problem) for r in results] == [(ids[0], None)]
    assert harness.fetch(ids[0]) is None and harness.fetch(ids[1]) is not None
    assert conn.describe().record_count == 1
    again = conn.delete([ids[0]])
    assert [(r.key, r.problem) for r in again] == [(ids[0], None)]
    assert ids[0] not in read_all(conn).by_id()


def test_a_write_keeps_an_unsubscribe_it_does_not_mention(harness: Harness) -> None:
    conn = harness.connector()
    first, second = harness.list_ids[:2]
    [remote_id] = ok_ids(conn.write([item(harness, 1, **{first: Status.SUBSCRIBED})]))
    harness.advance_clock(2)
    harness.set_list(remote_id, first, Status.UNSUBSCRIBED)  # the person unsubscribes
    # a profile change, then a change on another list (pending: a re-opt-in asked elsewhere)
    for n, lists in enumerate([{}, {second: Status.PENDING}]):
        change = WriteItem("hub-1", remote_id, {harness.first_name_field: f"Later{n}"}, {}, lists)
        ok_ids(conn.write([change]))
        stored = harness.fetch(remote_id)
        assert stored is not None
        assert stored.lists.get(first) == Status.UNSUBSCRIBED
        assert stored.fields[harness.first_name_field] == f"Later{n}"
