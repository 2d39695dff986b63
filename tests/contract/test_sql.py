"""What the sql connector does beyond the shared contract: cursors at equal timestamps, rows
without a timestamp, per-row database errors, value types, soft deletes, configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import sqlalchemy as sa

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext, WriteItem
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
