"""The database handle: engine creation, connection settings, transactions, migrations."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from contactsync.errors import TransientError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """One database: SQLite (WAL) on a file, or PostgreSQL.

    ``read()`` gives a connection in a plain transaction; ``write()`` one that holds the
    write lock from its first statement (``BEGIN IMMEDIATE`` on SQLite), so concurrent
    writers queue instead of failing on a lock upgrade.
    """

    def __init__(self, url: str, *, sqlite_cache_mb: int = 256) -> None:
        self.url = sa.engine.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine(sqlite_cache_mb)

    def _create_engine(self, cache_mb: int) -> Engine:
        if not self.is_sqlite:
            url = self.url
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        if self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except exc.OperationalError as e:
            if "locked" in str(e) or "could not serialize" in str(e):
                raise TransientError("the database is busy; retry shortly", code="E500") from e
            raise

    def has_schema(self) -> bool:
        """True once a migration has created the tables (checked by their first one)."""
        return sa.inspect(self.engine).has_table("workspaces")

    def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if conn.in_transaction():
                conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def now_ms() -> int:
    return int(time.time() * 1000)
