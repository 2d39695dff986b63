"""The database handle: engine creation, connection settings, transactions, migrations."""

from __future__ import annotations

import logging
import sqlite3
import threading
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
log = logging.getLogger(__name__)


class Database:
    """One database: SQLite (WAL) on a file, or PostgreSQL.

    ``read()`` gives a connection in a plain transaction; ``write()`` one that holds the
    write lock from its first statement (``BEGIN IMMEDIATE`` on SQLite), so concurrent
    writers queue instead of failing on a lock upgrade.

    On SQLite the writers of this process also queue on an in-process lock before they ask
    for the database's: SQLite's busy handler makes a waiting writer sleep (up to 100 ms
    between tries), which under a burst of short writes turns into long tail latencies,
    while a lock hands over the moment the previous writer commits. Every
    ``CHECKPOINT_EVERY`` commits a thread of its own checkpoints the write-ahead log, so the
    writer whose commit would cross SQLite's automatic checkpoint threshold (1,000 pages)
    rarely has to copy and sync the log itself while the others wait for it.
    """

    #: how long a SQLite writer waits for the others of its process (the busy timeout too)
    WRITE_WAIT_SECONDS = 30.0
    #: commits between two checkpoints run beside the writers (SQLite; a short write is ~5 pages)
    CHECKPOINT_EVERY = 100

    def __init__(self, url: str, *, sqlite_cache_mb: int = 256) -> None:
        self.url = sa.engine.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine(sqlite_cache_mb)
        # reentrant: a nested write() in the same thread meets SQLite's own lock, as before
        self._writer = threading.RLock() if self.is_sqlite else None
        on_file = self.is_sqlite and self.url.database not in (None, "", ":memory:")
        self._checkpointer = _Checkpointer(self.engine, self.CHECKPOINT_EVERY) if on_file else None

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
            cur.execute(f"PRAGMA busy_timeout={int(self.WRITE_WAIT_SECONDS * 1000)}")
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
        if self._writer is None:
            with self._write() as conn:
                yield conn
            return
        if not self._writer.acquire(timeout=self.WRITE_WAIT_SECONDS):
            raise TransientError("the database is busy; retry shortly", code="E500")
        try:
            with self._write() as conn:
                yield conn
            if self._checkpointer is not None:
                self._checkpointer.committed()
        finally:
            self._writer.release()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
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
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


class _Checkpointer:
    """Checkpoints a SQLite database's write-ahead log from a daemon thread, on request.

    ``committed()`` is called under the writer lock after each commit; every ``every``-th
    one wakes the thread, which runs a PASSIVE checkpoint (it never waits for a reader or a
    writer) on a connection of its own. The thread starts with the first checkpoint.
    """

    def __init__(self, engine: Engine, every: int) -> None:
        self._engine = engine
        self._every = every
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        self._commits += 1
        if self._commits < self._every:
            return
        self._commits = 0
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                raw = self._engine.raw_connection()
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
                finally:
                    raw.close()
            except Exception:  # the commit path's automatic checkpoint remains
                log.warning("WAL checkpoint failed", exc_info=True, extra={"action": "db.checkpoint_failed"})

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(5)


def now_ms() -> int:
    return int(time.time() * 1000)
