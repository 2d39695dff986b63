"""Fixtures: a clean database per test (SQLite and PostgreSQL), a workspace, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from contactsync.api import create_app
from contactsync.hub import tokens, workspaces
from contactsync.settings import Settings, get_settings
from contactsync.store.db import Database
from contactsync.store.tables import metadata

_BASE_PG_URL = sa.engine.make_url(
    os.environ.get("CONTACTSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/contactsync_test")
)
# Under pytest-xdist each worker process gets its own PostgreSQL database (and, named after it,
# its own MariaDB database), created on first use: the tests truncate what they use.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PG_URL = _BASE_PG_URL.set(
    database=f"{_BASE_PG_URL.database}_{WORKER}" if WORKER else _BASE_PG_URL.database
).render_as_string(hide_password=False)
CLIENT_DB = f"{sa.engine.make_url(PG_URL).database}_client"  # a client's own database on MariaDB
IN_CI = os.environ.get("CI") == "true"

pytest_plugins = ["tests.fixtures.smtp", "tests.fixtures.sftp"]


def _missing(what: str) -> None:
    message = f"{what} is not reachable; start it with scripts/services.sh"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service fails the run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    """An xdist worker's own PostgreSQL database is created before any test reaches for it (an
    unreachable server is reported by the tests that need it)."""
    if not WORKER:
        return
    name = sa.engine.make_url(PG_URL).database
    server = sa.create_engine(_BASE_PG_URL.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).first() is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        pass
    finally:
        server.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Database]:
    db = Database(PG_URL)
    try:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        _missing("PostgreSQL at 127.0.0.1:5432")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    db.migrate()
    yield db
    db.dispose()


_NON_EMPTY = " UNION ALL ".join(
    f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM {t.name})" for t in metadata.sorted_tables
)
_sequences: list[tuple[str, str]] = []  # (table, column) of the identity columns, read once


def _truncate(db: Database) -> None:
    """Empty every table and restart the identity sequences.

    Only the tables that hold rows are truncated: a TRUNCATE of every table gives each one and
    its indexes new files and catalog rows (~150 ms measured on its own; the server here runs
    without autovacuum, so the catalog only grows), a look at which hold rows takes ~4 ms. The
    sequences restart with setval, which changes no catalog.
    """
    with db.engine.begin() as conn:
        if not _sequences:
            _sequences.extend(
                (r[0], r[1])
                for r in conn.exec_driver_sql(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema ="
                    " 'public' AND (is_identity = 'YES' OR column_default LIKE 'nextval%%')"
                )
            )
        full = [r[0] for r in conn.exec_driver_sql(_NON_EMPTY)]
        if full:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(full)} CASCADE")
        if _sequences:
            restart = ", ".join(
                f"setval(pg_get_serial_sequence('{t}', '{c}'), 1, false)" for t, c in _sequences
            )
            conn.exec_driver_sql(f"SELECT {restart}")


def make_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if backend == "postgresql":
        pg: Database = request.getfixturevalue("pg_database")
        _truncate(pg)
        return pg
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "hub.db"
    shutil.copy(template, path)
    db = Database(f"sqlite:///{path}")
    request.addfinalizer(db.dispose)
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A clean, migrated database: each test runs on SQLite and on PostgreSQL."""
    return make_db(request.param, request, tmp_path)


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return make_db("sqlite", request, tmp_path)


@dataclass
class Hub:
    db: Database
    workspace_id: str
    node_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def hub(db: Database) -> Hub:
    """A workspace with one standard node and an admin token."""
    ws = workspaces.create_workspace(db, "test")
    node = workspaces.create_node(db, ws.id, "main")
    token, _ = tokens.create_token(db, ws.id, tokens.Role.ADMIN, "test-admin")
    return Hub(db, ws.id, node.id, token)


@pytest.fixture
def cli_database(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Commands run in-process (typer's CliRunner) use the hub's database."""
    monkeypatch.setenv("CONTACTSYNC_DATABASE_URL", hub.db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(hub: Hub) -> Iterator[str]:
    """The real service on a loopback port (uvicorn in a thread); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(hub.db, Settings()), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
