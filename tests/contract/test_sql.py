"""What the sql connector does beyond the shared contract: cursors at equal timestamps, rows
without a timestamp, per-row database errors, value types, soft deletes, configuration."""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from contactsync.connectors import registry
from contactsync.connectors.base import Connector, ConnectorContext, WriteItem
from contactsync.connectors.sql import Config, SqlConnector
from contactsync.errors import AuthError, ConfigError, InputError
from contactsync.hub.consent import Status
from tests.contract.harness_sql import SqlHarness, mariadb_harness, postgresql_harness, sqlite_harness
from tests.contract.test_contract import read_all


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"],
)
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlHarness]:
    makers = {
        "sqlite": lambda: sqlite_harness(tmp_path),
        "postgresql": postgresql_harness,
        "mariadb": mariadb_harness,
    }
    with makers[request.param]() as harness:
        yield harness


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[SqlHarness]:
    with sqlite_harness(tmp_path) as harness:
        yield harness


def _set_all(h: SqlHarness, **values: object) -> None:
    with h.engine.begin() as conn:
        conn.execute(sa.update(h.table).values(**values))


def _email(n: int) -> dict[str, str]:
    return {"email": f"p{n}@example.com"}


# -- reading ---------------------------------------------------------------------------------


def test_rows_with_equal_timestamps_are_neither_lost_nor_repeated(sql: SqlHarness) -> None:
    ids = sql.seed([_email(n) for n in range(8)])
    _set_all(sql, updated_at=dt.datetime(2024, 5, 1, 12, 0, 0))
    conn = sql.connector()
    batches = list(conn.read(None))
    assert [len(b.records) for b in batches] == [3, 3, 2]
    assert [r.remote_id for b in batches for r in b.records] == ids
    # a crash after the first batch: the next run resumes after its last row
    rest = read_all(conn, batches[0].cursor)
    assert [r.remote_id for r in rest.records] == ids[3:]
    # rows that arrive later with the same timestamp and a higher key are read
    [late] = sql.seed([_email(99)])
    with sql.engine.begin() as c:
        c.execute(
            sa.update(sql.table)
            .where(sql.table.c.id == int(late))
            .values(updated_at=dt.datetime(2024, 5, 1, 12))
        )
    assert [r.remote_id for r in read_all(conn, batches[-1].cursor).records] == [late]


def test_sqlite_times_written_by_other_programs_are_ordered_as_times(lite: SqlHarness) -> None:
    """SQLite compares time text as text: ISO with a 'T', CURRENT_TIMESTAMP's whole seconds and
    an offset all sort wrongly against SQLAlchemy's own form. Reads must still end, and
    return each row once in time order."""
    ids = lite.seed([_email(n) for n in range(6)])
    texts = [
        "2024-05-01T12:00:00",  # ISO with a T (the same second as the next two)
        "2024-05-01 12:00:00",  # CURRENT_TIMESTAMP's form
        "2024-05-01 12:00:00.000000",  # SQLAlchemy's form
        "2024-05-01T13:30:00+02:00",  # 11:30 UTC: the earliest
        "2024-05-01 12:00:00.500",
        "2024-05-02T08:00:00Z",
    ]
    with lite.engine.begin() as conn:
        for rid, text in zip(ids, texts, strict=True):
            conn.exec_driver_sql(f"UPDATE {lite.table.name} SET updated_at = ? WHERE id = ?", (text, rid))
    conn = lite.connector()
    first = read_all(conn)
    assert [r.remote_id for r in first.records] == [ids[3], ids[0], ids[1], ids[2], ids[4], ids[5]]
    assert read_all(conn, first.cursor).records == []
    # a row written later within the last second read, with a higher key, is still read
    [late] = lite.seed([_email(99)])
    with lite.engine.begin() as c:
        c.exec_driver_sql(
            f"UPDATE {lite.table.name} SET updated_at = '2024-05-02 08:00:00' WHERE id = {late}"
        )
    assert [r.remote_id for r in read_all(conn, first.cursor).records] == [late]


def test_rows_without_a_timestamp_are_read_on_the_first_run(lite: SqlHarness) -> None:
    ids = lite.seed([_email(n) for n in range(5)])
    with lite.engine.begin() as conn:
        conn.execute(sa.update(lite.table).where(lite.table.c.id.in_(ids[:4])).values(updated_at=None))
    c = lite.connector()
    batches = list(c.read(None))
    assert [r.remote_id for b in batches for r in b.records] == ids[:4] + ids[4:]
    assert batches[0].cursor == f"|{ids[2]}"
    assert read_all(c, batches[-1].cursor).records == []
    assert [r.remote_id for r in read_all(c, batches[0].cursor).records] == ids[3:]


def test_a_full_listing_resumes_and_then_starts_over(tmp_path: Path) -> None:
    with sqlite_harness(tmp_path, incremental=False) as h:
        ids = h.seed([_email(n) for n in range(5)])
        conn = h.connector()
        assert not conn.capabilities.change_feed and not conn.capabilities.delete_feed
        batches = list(conn.read(None, since=h.now_ms() + 10_000))  # since cannot filter a listing
        assert [b.cursor for b in batches] == [f"|{ids[2]}", "done"]  # the next read starts over
        assert [r.remote_id for r in read_all(conn, "done").records] == ids
        assert [r.remote_id for r in read_all(conn, batches[0].cursor).records] == ids[3:]


def test_values_read_as_json_types(sql: SqlHarness) -> None:
    [rid] = sql.seed([{"email": "a@example.com", "birth_date": dt.date(1990, 5, 17), "score": 12.5}])
    _set_all(sql, updated_at=dt.datetime(2024, 5, 1, 12, 30, 15))
    [record] = read_all(sql.connector()).records
    assert record.remote_id == rid
    assert record.fields["birth_date"] == "1990-05-17"
    assert record.fields["score"] == 12.5
    assert record.fields["updated_at"] == "2024-05-01T12:30:15+00:00"
    assert record.updated_at == int(dt.datetime(2024, 5, 1, 12, 30, 15, tzinfo=dt.UTC).timestamp() * 1000)
    assert "deleted_at" not in record.fields and "newsletter" not in record.fields


def test_describe_maps_types_and_roles(sql: SqlHarness) -> None:
    d = sql.connector().describe()
    types = {f.name: f.type for f in d.fields}
    assert types == {
        "id": "integer",
        "email": "email",
        "first_name": "string",
        "last_name": "string",
        "birth_date": "date",
        "score": "number",
        "updated_at": "datetime",
    }
    assert [f.name for f in d.fields if f.required] == ["email"]
    assert [f.name for f in d.fields if not f.writable] == ["id", "updated_at"]
    assert [lst.id for lst in d.lists] == ["newsletter", "offers"]


# -- writing ---------------------------------------------------------------------------------


def test_a_database_error_on_one_row_is_e422_and_the_others_go_through(sql: SqlHarness) -> None:
    ids = sql.seed([_email(1), _email(2)])
    conn = sql.connector()
    items = [
        WriteItem("a", None, {"email": "new@example.com"}, {"email": "new@example.com"}),
        WriteItem("b", ids[0], {"email": "p2@example.com"}, {}),  # unique email taken
        WriteItem("c", ids[1], {"first_name": "Grace"}, {}),
    ]
    results = conn.write(items)
    assert results[0].problem is None and results[0].created
    problem = results[1].problem
    assert problem is not None and problem.code == "E422" and results[1].remote_id == ids[0]
    assert results[2].problem is None
    fetched = sql.fetch(ids[1])
    assert fetched is not None and fetched.fields["first_name"] == "Grace"
    assert conn.describe().record_count == 3


def test_a_value_of_the_wrong_type_is_e424(lite: SqlHarness) -> None:
    results = lite.connector().write(
        [
            WriteItem("a", None, {"email": "a@example.com", "score": "lots"}, {}),
            WriteItem("b", None, {"email": "b@example.com", "birth_date": "17/05/1990"}, {}),
            WriteItem("c", None, {"email": "c@example.com", "birth_date": "1990-05-17", "score": "7.25"}, {}),
        ]
    )
    assert [r.problem.code if r.problem else None for r in results] == ["E424", "E424", None]
    assert results[2].record is not None
    assert results[2].record.fields["birth_date"] == "1990-05-17"
    assert results[2].record.fields["score"] == 7.25


def test_unknown_or_read_only_fields_and_lists_are_e422(lite: SqlHarness) -> None:
    results = lite.connector().write(
        [
            WriteItem("a", None, {"email": "a@example.com", "nickname": "x"}, {}),
            WriteItem("b", None, {"email": "b@example.com", "id": 5}, {}),
            WriteItem("c", None, {"email": "c@example.com"}, {}, {"sms": Status.SUBSCRIBED}),
        ]
    )
    assert [r.problem.code if r.problem else None for r in results] == ["E422"] * 3


def test_every_write_sets_updated_at(lite: SqlHarness) -> None:
    [rid] = lite.seed([_email(1)])
    _set_all(lite, updated_at=dt.datetime(2020, 1, 1))
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    lite.connector().write([WriteItem("k", rid, {"first_name": "Ada"}, {})])
    stored = lite.fetch(rid)
    assert stored is not None and stored.fields["updated_at"] >= before


def test_pending_is_null_in_a_boolean_list_column_and_a_word_in_a_text_one(lite: SqlHarness) -> None:
    lists = {"newsletter": Status.PENDING, "offers": Status.PENDING}
    [result] = lite.connector().write([WriteItem("k", None, _email(1), _email(1), lists)])
    assert result.record is not None and result.record.lists == {"offers": Status.PENDING}


@pytest.mark.parametrize(
    ("written", "flag", "text"),
    [
        (Status.SUBSCRIBED, Status.SUBSCRIBED, Status.SUBSCRIBED),
        (Status.UNSUBSCRIBED, Status.UNSUBSCRIBED, Status.UNSUBSCRIBED),
        (Status.CLEANED, Status.UNSUBSCRIBED, Status.CLEANED),  # a flag has no "cleaned"
    ],
)
def test_list_columns_read_back_exactly(sql: SqlHarness, written: Status, flag: Status, text: Status) -> None:
    lists = {"newsletter": written, "offers": written}
    [result] = sql.connector().write([WriteItem("k", None, _email(1), _email(1), lists)])
    assert result.record is not None and result.record.lists == {"newsletter": flag, "offers": text}


def test_email_matching_uses_the_column_itself_under_a_case_blind_collation(sql: SqlHarness) -> None:
    conn = sql.connector()
    assert isinstance(conn, SqlConnector)
    assert conn._table().email_ci == sql.url.startswith("mysql")
    [created] = conn.write([WriteItem("k", None, {"email": "Ada@Example.com"}, {"email": "Ada@Example.com"})])
    [again] = conn.write([WriteItem("k", None, {"first_name": "Ada"}, {"email": " ada@EXAMPLE.com "})])
    assert again.problem is None and again.remote_id == created.remote_id and not again.created


def test_two_rows_matching_one_email_are_e421(lite: SqlHarness) -> None:
    lite.seed([{"email": "Ada@example.com"}, {"email": "ada@example.com"}])  # SQLite: case-sensitive unique
    [result] = lite.connector().write(
        [WriteItem("k", None, {"first_name": "A"}, {"email": "ADA@example.com"})]
    )
    assert result.problem is not None and result.problem.code == "E421"


def test_a_matching_write_revives_a_soft_deleted_row(sql: SqlHarness) -> None:
    [rid] = sql.seed([_email(1)])
    conn = sql.connector()
    assert [r.problem for r in conn.delete([rid])] == [None]
    assert sql.fetch(rid) is None
    [result] = conn.write([WriteItem("k", None, {"first_name": "Back"}, _email(1))])
    assert result.problem is None and result.remote_id == rid and result.created
    stored = sql.fetch(rid)
    assert stored is not None and stored.fields["first_name"] == "Back"


def test_a_table_with_a_given_key_needs_it_on_insert(lite: SqlHarness) -> None:
    table = sa.Table(
        "people",
        sa.MetaData(),
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("email", sa.String(255)),
    )
    table.create(lite.engine)
    conn = lite.connector(
        table="people", key_column="code", lists={}, updated_at_column=None, soft_delete_column=None
    )
    conn.check()
    assert conn.describe().field("code") is not None
    results = conn.write(
        [
            WriteItem("a", None, {"email": "a@example.com"}, {"email": "a@example.com"}),
            WriteItem("b", "C-2", {"email": "b@example.com"}, {}),
            WriteItem("c", None, {"code": "C-3", "email": "c@example.com"}, {}),
        ]
    )
    assert results[0].problem is not None and results[0].problem.code == "E420"
    assert [(r.remote_id, r.created) for r in results[1:]] == [("C-2", True), ("C-3", True)]


# -- set-based writes ------------------------------------------------------------------------


@contextmanager
def _statements(conn: Connector) -> Iterator[list[str]]:
    """The SQL statements the connector sends while the block runs (an executemany counts once)."""
    assert isinstance(conn, SqlConnector)
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    sa.event.listen(conn.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(conn.engine, "before_cursor_execute", record)


def test_a_mixed_batch_returns_each_result_in_order_with_its_record(sql: SqlHarness) -> None:
    ids = sql.seed([_email(n) for n in range(40)])
    items = []
    for n in range(60):
        if n % 3 == 0:  # new
            fields = {"email": f"new{n}@example.com", "first_name": f"N{n}"}
            items.append(
                WriteItem(
                    f"k{n}", None, fields, {"email": fields["email"]}, {"newsletter": Status.SUBSCRIBED}
                )
            )
        elif n % 3 == 1:  # linked
            items.append(WriteItem(f"k{n}", ids[n // 3], {"first_name": f"I{n}"}, {}))
        else:  # found by email (rows 20..39), written in another case
            items.append(
                WriteItem(f"k{n}", None, {"last_name": f"M{n}"}, {"email": f"P{20 + n // 3}@EXAMPLE.com"})
            )
    results = sql.connector().write(items)
    assert [r.key for r in results] == [i.key for i in items]
    assert [r.problem for r in results] == [None] * 60
    assert [r.created for r in results] == [n % 3 == 0 for n in range(60)]
    for n, (item, result) in enumerate(zip(items, results, strict=True)):
        record = result.record
        assert record is not None and result.remote_id == record.remote_id
        stored = sql.fetch(record.remote_id)
        assert stored is not None
        if n % 3 == 0:
            assert record.fields["email"] == stored.fields["email"] == item.fields["email"]
            assert record.lists["newsletter"] == Status.SUBSCRIBED
        elif n % 3 == 1:
            assert result.remote_id == ids[n // 3]
            assert record.fields["first_name"] == stored.fields["first_name"] == f"I{n}"
        else:
            assert result.remote_id == ids[20 + n // 3]
            assert record.fields["last_name"] == stored.fields["last_name"] == f"M{n}"
        assert record.updated_at is not None
    assert len({r.remote_id for r in results}) == 60
    assert sql.connector().describe().record_count == 60


def test_a_batch_of_updates_takes_a_few_statements_not_a_few_per_row(sql: SqlHarness) -> None:
    ids = sql.seed([_email(n) for n in range(100)])
    conn = sql.connector()
    conn.check()
    linked = [WriteItem(f"a{n}", ids[n], {"first_name": f"A{n}"}, {}) for n in range(50)]
    matched = [WriteItem(f"b{n}", None, {"first_name": f"B{n}"}, _email(n)) for n in range(50, 100)]
    with _statements(conn) as seen:
        results = conn.write(linked + matched)
    assert [r.problem for r in results] == [None] * 100
    assert len(seen) < 15, seen  # lookups, one UPDATE executed for all rows, the read back
    stored = sql.fetch(ids[70])
    assert stored is not None and stored.fields["first_name"] == "B70"


def test_new_rows_are_inserted_in_one_statement_with_their_keys_in_order(sql: SqlHarness) -> None:
    conn = sql.connector()
    conn.check()
    items = [WriteItem(f"k{n}", None, {"first_name": f"F{n}"}, _email(n)) for n in range(50)]
    with _statements(conn) as seen:
        results = conn.write(items)
    for n, result in enumerate(results):
        assert result.created and result.remote_id is not None
        stored = sql.fetch(result.remote_id)
        assert stored is not None and stored.fields["email"] == f"p{n}@example.com"
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    if not sql.url.startswith("sqlite"):  # SQLAlchemy inserts row by row on SQLite (in-process)
        assert len(inserts) == 1, inserts


def test_items_of_one_batch_see_each_others_writes(sql: SqlHarness) -> None:
    """A batch ends as if its items had been written one after the other."""
    [rid] = sql.seed([_email(1)])
    conn = sql.connector()
    results = conn.write(
        [
            # the same new person twice: created, then updated
            WriteItem("a", None, {"email": "x@example.com", "first_name": "One"}, {"email": "x@example.com"}),
            WriteItem("b", None, {"first_name": "Two"}, {"email": "X@example.com"}),
            # the same row found by email, then by key
            WriteItem("c", None, {"first_name": "C"}, _email(1)),
            WriteItem("d", rid, {"last_name": "D"}, {}),
            # the row's email changed, then the old address is a new person
            WriteItem("e", rid, {"email": "renamed@example.com"}, {}),
            WriteItem("f", None, {"email": "p1@example.com", "first_name": "F"}, _email(1)),
        ]
    )
    assert [r.problem for r in results] == [None] * 6
    a, b, c, d, e, f = results
    assert a.created and not b.created and a.remote_id == b.remote_id
    assert a.record is not None and a.record.fields["first_name"] == "One"
    assert b.record is not None and b.record.fields["first_name"] == "Two"
    assert [r.remote_id for r in (c, d, e)] == [rid] * 3 and not any(r.created for r in (c, d, e))
    assert c.record is not None and (c.record.fields["first_name"], c.record.fields["last_name"]) == (
        "C",
        None,
    )
    assert d.record is not None and (d.record.fields["first_name"], d.record.fields["last_name"]) == (
        "C",
        "D",
    )
    assert f.created and f.remote_id not in (rid, a.remote_id)
    assert conn.describe().record_count == 3


def test_a_refused_row_in_a_statement_for_many_fails_alone(sql: SqlHarness) -> None:
    ids = sql.seed([_email(n) for n in range(6)])
    conn = sql.connector()
    updates = [
        WriteItem(
            f"u{n}",
            ids[n],
            {"first_name": f"F{n}", "email": "p5@example.com" if n == 1 else f"q{n}@x.org"},
            {},
        )
        for n in range(4)
    ]
    inserts = [
        WriteItem(f"n{n}", None, {"email": "p4@example.com" if n == 2 else f"new{n}@x.org"}, {})
        for n in range(4)
    ]
    results = conn.write(updates + inserts)
    codes = [r.problem.code if r.problem else None for r in results]
    assert codes == [None, "E422", None, None, None, None, "E422", None]
    assert [r.remote_id for r in results[:4]] == ids[:4]
    for n in (0, 2, 3):
        stored = sql.fetch(ids[n])
        assert stored is not None and stored.fields["email"] == f"q{n}@x.org"
    untouched = sql.fetch(ids[1])
    assert untouched is not None and (untouched.fields["email"], untouched.fields["first_name"]) == (
        "p1@example.com",
        None,
    )
    for n in (0, 1, 3):
        result = results[4 + n]
        assert result.created and result.remote_id is not None
        stored = sql.fetch(result.remote_id)
        assert stored is not None and stored.fields["email"] == f"new{n}@x.org"
    assert conn.describe().record_count == 9


@pytest.mark.parametrize("soft", [True, False], ids=["soft", "hard"])
def test_a_batch_of_deletes(sql: SqlHarness, soft: bool) -> None:
    ids = sql.seed([_email(n) for n in range(5)])
    conn = sql.connector() if soft else sql.connector(soft_delete_column=None)
    asked = [ids[0], "not-a-key", ids[1], ids[0], "999999"]
    with _statements(conn) as seen:
        results = conn.delete(asked)
    assert [(r.key, r.remote_id, r.problem) for r in results] == [(i, i, None) for i in asked]
    assert [s for s in seen if s.lstrip().upper().startswith(("DELETE", "UPDATE"))] != []
    assert len([s for s in seen if s.lstrip().upper().startswith(("DELETE", "UPDATE"))]) == 1
    assert [sql.fetch(i) is None for i in ids] == [True, True, False, False, False]
    assert conn.describe().record_count == 3


def test_a_refused_delete_fails_alone(sql: SqlHarness) -> None:
    ids = sql.seed([_email(n) for n in range(3)])
    name = sql.table.name
    with sql.engine.begin() as c:
        if sql.url.startswith("sqlite"):
            c.exec_driver_sql(
                f"CREATE TRIGGER {name}_keep BEFORE DELETE ON {name} WHEN OLD.id = {ids[1]} "
                "BEGIN SELECT RAISE(ABORT, 'this row is kept'); END"
            )
        else:  # a row that another table refers to
            c.exec_driver_sql(
                f"CREATE TABLE {name}_orders (id INT PRIMARY KEY, contact INT REFERENCES {name} (id))"
            )
            c.exec_driver_sql(f"INSERT INTO {name}_orders VALUES (1, {ids[1]})")
    try:
        results = sql.connector(soft_delete_column=None).delete(ids)
        codes = [r.problem.code if r.problem else None for r in results]
        assert codes == [None, "E422", None]
        assert [sql.fetch(i) is None for i in ids] == [True, False, True]
    finally:
        if not sql.url.startswith("sqlite"):
            with sql.engine.begin() as c:
                c.exec_driver_sql(f"DROP TABLE {name}_orders")


def test_a_table_with_an_expression_index_reflects_without_a_warning(sql: SqlHarness) -> None:
    if sql.url.startswith("mysql"):
        pytest.skip("MariaDB has no indexes on expressions")
    name = sql.table.name
    with sql.engine.begin() as c:
        c.exec_driver_sql(f"CREATE INDEX {name}_email_lower ON {name} (lower(email))")
    conn = sql.connector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conn.check()
    [created] = conn.write([WriteItem("k", None, {"email": "Ada@Example.com"}, {"email": "Ada@Example.com"})])
    [again] = conn.write([WriteItem("k", None, {"first_name": "Ada"}, {"email": "ADA@example.COM"})])
    assert again.problem is None and again.remote_id == created.remote_id and not again.created


def test_a_raw_sqlite_table_with_an_integer_primary_key(tmp_path: Path) -> None:
    """A table made by other tools: INTEGER PRIMARY KEY without NOT NULL, an index on lower(email)."""
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE, name TEXT)")
        db.execute("CREATE INDEX people_email ON people (lower(email))")
        db.execute("INSERT INTO people (email, name) VALUES ('Old@example.com', 'Old')")
    provider = registry.get("sql")
    conn = provider.create(
        provider.parse_config({"url": f"sqlite:///{path}", "table": "people"}), ConnectorContext()
    )
    try:
        results = conn.write(
            [WriteItem(f"k{n}", None, {"name": f"N{n}"}, {"email": f"p{n}@example.com"}) for n in range(3)]
            + [WriteItem("old", None, {"name": "Again"}, {"email": "old@EXAMPLE.com"})]
        )
        assert [(r.remote_id, r.created) for r in results] == [
            ("2", True),
            ("3", True),
            ("4", True),
            ("1", False),
        ]
    finally:
        conn.close()


@pytest.mark.postgres
def test_a_match_value_the_database_refuses_fails_only_its_item() -> None:
    """PostgreSQL refuses a value that is not one of an enum's labels, in a lookup too."""
    with postgresql_harness() as h:
        name = h.table.name
        with h.engine.begin() as c:
            c.exec_driver_sql(f"CREATE TYPE {name}_tier AS ENUM ('gold', 'silver', 'bronze')")
            c.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN tier {name}_tier UNIQUE")
        try:
            [gold] = h.seed([{"email": "gold@example.com"}])
            with h.engine.begin() as c:
                c.exec_driver_sql(f"UPDATE {name} SET tier = 'gold'")
            results = h.connector().write(
                [
                    WriteItem("a", None, {"first_name": "G"}, {"tier": "gold"}),
                    WriteItem("b", None, {"email": "x@example.com"}, {"tier": "platinum"}),
                    WriteItem("c", None, {"email": "s@example.com"}, {"tier": "silver"}),
                ]
            )
            assert [r.problem.code if r.problem else None for r in results] == [None, "E422", None]
            assert results[0].remote_id == gold and not results[0].created
            assert results[2].created and results[2].record is not None
            assert results[2].record.fields["tier"] == "silver"
        finally:
            h.close()
            with h.engine.begin() as c:
                c.exec_driver_sql(f"DROP TYPE IF EXISTS {name}_tier")


# -- configuration ---------------------------------------------------------------------------


def test_check_names_what_is_missing(lite: SqlHarness) -> None:
    with pytest.raises(ConfigError) as raised:
        lite.connector(updated_at_column="modified", lists={"news": "nl_flag"}).check()
    assert raised.value.code == "E100"
    assert "updated_at_column 'modified'" in raised.value.message
    assert "lists.news 'nl_flag'" in raised.value.message
    with pytest.raises(ConfigError, match="table nope not found"):
        lite.connector(table="nope").check()
    with pytest.raises(ConfigError, match="not a date-time column"):
        lite.connector(updated_at_column="email").check()


@pytest.mark.parametrize(
    "maker", [pytest.param(postgresql_harness, marks=pytest.mark.postgres), mariadb_harness]
)
def test_a_wrong_password_or_user_is_e112(maker: Callable[[], AbstractContextManager[SqlHarness]]) -> None:
    with maker() as h:
        with pytest.raises(AuthError) as raised:
            h.bad_credentials().check()
        assert raised.value.code == "E112" and "wrong" not in raised.value.message


def test_the_password_stays_secret(tmp_path: Path) -> None:
    provider = registry.get("sql")
    url = "postgresql://sync:s3cret@db.example.com:5432/crm?sslmode=require"
    config = provider.parse_config({"url": url, "table": "contacts"})
    assert isinstance(config, Config) and "s3cret" not in repr(config)
    assert Config.secret_fields() == ["url"]
    conn = provider.create(config, ConnectorContext())
    assert isinstance(conn, SqlConnector)
    assert conn.address() == "postgresql://sync@db.example.com:5432/crm#contacts"
    conn.close()


def test_capabilities_follow_the_configuration() -> None:
    provider = registry.get("sql")
    plain = provider.create(provider.parse_config({"url": "sqlite://", "table": "t"}), ConnectorContext())
    full = provider.create(
        provider.parse_config(
            {"url": "sqlite://", "table": "t", "updated_at_column": "u", "soft_delete_column": "d"}
        ),
        ConnectorContext(),
    )
    assert (plain.capabilities.change_feed, plain.capabilities.delete_feed) == (False, False)
    assert (full.capabilities.change_feed, full.capabilities.delete_feed) == (True, True)
    assert plain.provider == full.provider == "sql"


def test_an_invalid_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(InputError) as raised:
        registry.get("sql").parse_config({"url": "not a url s3cret", "table": "t"})
    assert "s3cret" not in str(raised.value)
