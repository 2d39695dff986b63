"""The sql connector's harness: a fresh contacts table per test on SQLite, PostgreSQL or MariaDB.

The table looks like one a client would have::

    id (autoincrement key) · email (NOT NULL, unique: the required column) · first_name ·
    last_name · birth_date · score · updated_at · deleted_at · newsletter (boolean) ·
    offers_status (text)

``incremental=False`` leaves out ``updated_at`` and ``deleted_at``: the connector then lists
the whole table on each read and deletes rows for real, and the suite checks that mode too.
The harness keeps its own clock (UTC now + :meth:`advance_clock`) for the times it writes.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contactsync.connectors import registry
from contactsync.connectors.base import Connector, ConnectorContext, RemoteRecord
from contactsync.hub.consent import Status
from tests.conftest import PG_URL, _missing

# The MariaDB database defaults to the PostgreSQL test database's name, so that parallel
# checkouts that use their own PostgreSQL database use their own MariaDB database too.
MARIADB_URL = os.environ.get(
    "CONTACTSYNC_TEST_MARIADB_URL",
    f"mysql+pymysql://root@127.0.0.1:3306/{sa.engine.make_url(PG_URL).database or 'contactsync_test'}",
)
LIST_COLUMNS = {"newsletter": "newsletter", "offers": "offers_status"}


class SqlHarness:
    provider = "sql"
    email_field = "email"
    first_name_field = "first_name"
    list_ids = list(LIST_COLUMNS)
    page_size = 3

    def __init__(self, url: str, bad_url: str, *, incremental: bool = True) -> None:
        self.url = url
        self.bad_url = bad_url
        self.incremental = incremental
        self.engine = sa.create_engine(url)
        self.table = _contacts_table(f"contacts_{uuid.uuid4().hex[:12]}", incremental)
        self.table.create(self.engine)
        self._offset = dt.timedelta()
        self._connectors: list[Connector] = []

    def config(self, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "url": self.url,
            "table": self.table.name,
            "lists": LIST_COLUMNS,
            "page_size": self.page_size,
        }
        if self.incremental:
            values |= {"updated_at_column": "updated_at", "soft_delete_column": "deleted_at"}
        return values | overrides

    def connector(self, **overrides: Any) -> Connector:
        provider = registry.get("sql")
        conn = provider.create(provider.parse_config(self.config(**overrides)), ConnectorContext())
        self._connectors.append(conn)
        return conn

    def bad_credentials(self) -> Connector:
        return self.connector(url=self.bad_url)

    def seed(self, rows: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.engine.begin() as conn:
            for row in rows:
                result = conn.execute(sa.insert(self.table).values(**row, **self._touch()))
                assert result.inserted_primary_key is not None
                ids.append(str(result.inserted_primary_key[0]))
        return ids

    def edit(self, remote_id: str, fields: dict[str, Any]) -> None:
        self._update(remote_id, fields)

    def set_list(self, remote_id: str, list_id: str, status: Status) -> None:
        column = LIST_COLUMNS[list_id]
        if column == "newsletter":
            value = None if status is Status.PENDING else status is Status.SUBSCRIBED
            self._update(remote_id, {column: value})
        else:
            self._update(remote_id, {column: status.value})

    def remove(self, remote_id: str) -> None:
        if self.incremental:
            self._update(remote_id, {"deleted_at": self._now()})
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.id == int(remote_id)))

    def fetch(self, remote_id: str) -> RemoteRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == int(remote_id))).first()
        if row is None or (self.incremental and row.deleted_at is not None):
            return None
        values = dict(row._mapping)
        lists = {}
        if values["newsletter"] is not None:
            lists["newsletter"] = Status.SUBSCRIBED if values["newsletter"] else Status.UNSUBSCRIBED
        if values["offers_status"] is not None:
            lists["offers"] = Status(values["offers_status"])
        fields = {k: v for k, v in values.items() if k not in ("newsletter", "offers_status", "deleted_at")}
        return RemoteRecord(remote_id, fields, lists)

    def now_ms(self) -> int:
        return int(self._now().replace(tzinfo=dt.UTC).timestamp() * 1000)

    def advance_clock(self, seconds: float) -> None:
        self._offset += dt.timedelta(seconds=seconds)

    def close(self) -> None:
        for conn in self._connectors:
            conn.close()
        self.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None) + self._offset

    def _touch(self) -> dict[str, Any]:
        return {"updated_at": self._now()} if self.incremental else {}

    def _update(self, remote_id: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            stmt = sa.update(self.table).where(self.table.c.id == int(remote_id))
            conn.execute(stmt.values(**values, **self._touch()))


def _contacts_table(name: str, incremental: bool) -> sa.Table:
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("first_name", sa.String(100)),
        sa.Column("last_name", sa.String(100)),
        sa.Column("birth_date", sa.Date),
        sa.Column("score", sa.Numeric(10, 2)),
        sa.Column("newsletter", sa.Boolean),
        sa.Column("offers_status", sa.String(20)),
    ]
    if incremental:
        columns += [sa.Column("updated_at", sa.DateTime), sa.Column("deleted_at", sa.DateTime)]
    return sa.Table(name, sa.MetaData(), *columns)


def _reachable(url: str, server: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        _missing(f"{server} at {engine.url.host}:{engine.url.port}")
    finally:
        engine.dispose()


@contextmanager
def sqlite_harness(tmp_path: Path, *, incremental: bool = True) -> Iterator[SqlHarness]:
    missing = tmp_path / "no-such-dir" / "client.db"
    harness = SqlHarness(
        f"sqlite:///{tmp_path / 'client.db'}", f"sqlite:///{missing}", incremental=incremental
    )
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def postgresql_harness() -> Iterator[SqlHarness]:
    _reachable(PG_URL, "PostgreSQL")
    bad = sa.engine.make_url(PG_URL).set(username="contactsync_nobody", password="wrong")
    harness = SqlHarness(PG_URL, bad.render_as_string(hide_password=False))
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def mariadb_harness() -> Iterator[SqlHarness]:
    url = sa.engine.make_url(MARIADB_URL)
    _reachable(url.set(database="").render_as_string(hide_password=False), "MariaDB")
    server = sa.create_engine(url.set(database=""))
    with server.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{url.database}`")
    server.dispose()
    bad = url.set(password="wrong-password").render_as_string(hide_password=False)
    harness = SqlHarness(url.render_as_string(hide_password=False), bad)
    try:
        yield harness
    finally:
        harness.close()


def harness_for(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlHarness]:
    """The harnesses of tests/contract/conftest.py's ``sql-*`` names."""
    del request
    makers = {
        "sql-sqlite": lambda: sqlite_harness(tmp_path),
        "sql-sqlite-listing": lambda: sqlite_harness(tmp_path, incremental=False),
        "sql-postgresql": postgresql_harness,
        "sql-mariadb": mariadb_harness,
    }
    with makers[name]() as harness:
        yield harness
