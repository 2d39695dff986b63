"""The client's database as an exchange endpoint: SQLite, a real PostgreSQL and a real MariaDB."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from contactsync.errors import AuthError, ConfigError, TransientError
from contactsync.exchange.dbrows import read_db_rows, shown_url, write_db_rows
from contactsync.settings import Settings
from tests.conftest import CLIENT_DB, PG_URL, _missing, free_port

MARIADB_SERVER = os.environ.get("CONTACTSYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
MARIADB_DB = CLIENT_DB
PG_SCHEMA = "exchange_client"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    root = tmp_path / "exchange"
    root.mkdir()
    return Settings(exchange_local_root=str(root), exchange_connect_timeout=5)


def _sqlite(settings: Settings) -> tuple[str, str | None]:
    path = Path(settings.exchange_local_root) / "client.db"
    sa.create_engine(f"sqlite:///{path}").dispose()
    return f"sqlite:///{path}", None


def _postgres() -> tuple[str, str | None]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {PG_SCHEMA}")
    except sa.exc.OperationalError:
        _missing("PostgreSQL at 127.0.0.1:5432")
    finally:
        engine.dispose()
    return PG_URL, PG_SCHEMA


def _mariadb() -> tuple[str, str | None]:
    engine = sa.create_engine(MARIADB_SERVER)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {MARIADB_DB}")
            conn.exec_driver_sql(f"CREATE DATABASE {MARIADB_DB} CHARACTER SET utf8mb4")
    except sa.exc.OperationalError:
        _missing("MariaDB at 127.0.0.1:3306")
    finally:
        engine.dispose()
    return f"{MARIADB_SERVER}/{MARIADB_DB}", None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"])
def client_db(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[str, str]]:
    """A client database with a table ``contacts`` of a few rows; yields (url, table name)."""
    url, schema = {"sqlite": lambda: _sqlite(settings), "postgresql": _postgres, "mariadb": _mariadb}[
        request.param
    ]()
    metadata = sa.MetaData(schema=schema)
    contacts = sa.Table(
        "contacts",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(200)),
        sa.Column("born", sa.Date),
        sa.Column("balance", sa.Numeric(10, 2)),
        sa.Column("active", sa.Boolean),
    )
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            contacts.insert(),
            [
                {
                    "id": 3,
                    "email": "c@example.com",
                    "name": "Zoë",
                    "born": dt.date(1990, 5, 17),
                    "balance": Decimal("12.50"),
                    "active": True,
                },
                {
                    "id": 1,
                    "email": "a@example.com",
                    "name": None,
                    "born": None,
                    "balance": None,
                    "active": False,
                },
                {
                    "id": 2,
                    "email": "b@example.com",
                    "name": 'O"Brien, Jr',
                    "born": None,
                    "balance": Decimal("-3.00"),
                    "active": None,
                },
            ],
        )
    engine.dispose()
    yield url, f"{schema}.contacts" if schema else "contacts"


def test_reads_a_table_in_key_order_as_text(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    rows = list(read_db_rows(url, table=table, settings=settings))
    no, yes = ("0", "1") if url.startswith("mysql") else ("false", "true")  # MariaDB: TINYINT(1)

    assert [r.number for r in rows] == [1, 2, 3]
    assert [r.values for r in rows] == [
        {"id": "1", "email": "a@example.com", "name": "", "born": "", "balance": "", "active": no},
        {
            "id": "2",
            "email": "b@example.com",
            "name": 'O"Brien, Jr',
            "born": "",
            "balance": "-3.00",
            "active": "",
        },
        {
            "id": "3",
            "email": "c@example.com",
            "name": "Zoë",
            "born": "1990-05-17",
            "balance": "12.50",
            "active": yes,
        },
    ]
    assert rows[1].raw == '2,b@example.com,"O""Brien, Jr",,-3.00,'  # a CSV line, ready for the report
    assert all(r.problem is None for r in rows)


def test_a_sqlite_table_with_an_expression_index_reads_without_warnings(settings: Settings) -> None:
    url, _ = _sqlite(settings)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)")
        conn.exec_driver_sql("CREATE INDEX people_email_lower ON people (lower(email))")
        conn.exec_driver_sql("INSERT INTO people (email) VALUES ('A@example.com')")
    engine.dispose()
    rows = list(read_db_rows(url, table="people", settings=settings))  # warnings are errors in tests
    assert [r.values for r in rows] == [{"id": "1", "email": "A@example.com"}]


def test_reads_a_query(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    query = f"SELECT email, name FROM {table} WHERE id > 1 ORDER BY email DESC"
    rows = list(read_db_rows(url, query=query, settings=settings))
    assert [r.values for r in rows] == [
        {"email": "c@example.com", "name": "Zoë"},
        {"email": "b@example.com", "name": 'O"Brien, Jr'},
    ]


def test_reading_cannot_change_the_client_data(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    with pytest.raises(ConfigError) as e:
        list(read_db_rows(url, query=f"DELETE FROM {table}", settings=settings))
    assert e.value.code == "E619"
    assert len(list(read_db_rows(url, table=table, settings=settings))) == 3


def test_streams_many_rows_in_batches(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    columns = ["id", "email", "name"]
    many = ({"id": i, "email": f"u{i}@example.com", "name": f"N{i}"} for i in range(10, 5010))
    assert write_db_rows(url, table, columns, many, settings=settings, batch_size=700) == 5000

    rows = read_db_rows(url, table=table, settings=settings, batch_size=300)
    first = next(rows)
    assert first.values is not None and first.values["id"] == "1"
    rest = list(rows)
    assert len(rest) == 5002 and rest[-1].number == 5003
    assert rest[-1].values is not None and rest[-1].values["email"] == "u5009@example.com"


def test_written_rows_all_or_nothing(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    rows = [{"id": 10 + i, "email": f"n{i}@example.com"} for i in range(30)] + [
        {"id": 99, "email": "a@example.com"}  # taken: the unique index refuses it
    ]
    with pytest.raises(ConfigError) as e:
        write_db_rows(url, table, ["id", "email"], rows, settings=settings, batch_size=10)
    assert e.value.code == "E619"
    assert len(list(read_db_rows(url, table=table, settings=settings))) == 3


def test_wrong_table_column_or_sql_is_a_config_error(client_db: tuple[str, str], settings: Settings) -> None:
    url, table = client_db
    cases = [
        lambda: list(read_db_rows(url, table="absent", settings=settings)),
        lambda: list(read_db_rows(url, table="x; DROP TABLE contacts", settings=settings)),
        lambda: list(read_db_rows(url, query="SELEC nothing", settings=settings)),
        lambda: list(read_db_rows(url, query=f"SELECT nope FROM {table}", settings=settings)),
        lambda: write_db_rows(url, table, ["id", "nope"], [{"id": 1}], settings=settings),
    ]
    for case in cases:
        with pytest.raises(ConfigError) as e:
            case()
        assert e.value.code == "E619"


def test_table_or_query_one_of_them(settings: Settings) -> None:
    for kwargs in ({}, {"table": "a", "query": "SELECT 1"}):
        with pytest.raises(ConfigError) as e:
            list(read_db_rows("sqlite:///x.db", settings=settings, **kwargs))  # type: ignore[arg-type]
        assert e.value.code == "E610"


def test_sqlite_client_database_must_be_under_the_exchange_root(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "hub.db"
    sa.create_engine(f"sqlite:///{outside}").dispose()
    with pytest.raises(ConfigError) as e:
        list(read_db_rows(f"sqlite:///{outside}", table="contacts", settings=settings))
    assert e.value.code == "E611"


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://host/x"])
def test_unusable_url(url: str, settings: Settings) -> None:
    with pytest.raises(ConfigError) as e:
        list(read_db_rows(url, table="t", settings=settings))
    assert e.value.code == "E610"


def test_mariadb_wrong_password_is_an_auth_error_and_not_shown(settings: Settings) -> None:
    url, _ = _mariadb()
    with pytest.raises(AuthError) as e:
        list(read_db_rows(url, table="contacts", password="Wr0ng-s3cret", settings=settings))
    assert e.value.code == "E614"
    assert "Wr0ng-s3cret" not in str(e.value)
    assert shown_url("mysql://u:Wr0ng-s3cret@h/db") == "mysql://u:***@h/db"


def test_unreachable_database_is_transient(settings: Settings) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    with pytest.raises(TransientError) as e:
        list(read_db_rows(url, table="contacts", settings=settings))
    assert e.value.code == "E618"
