"""The client's database: engines per backend, and its errors sorted by how to react."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from contactsync.connectors.base import RecordProblem
from contactsync.errors import AuthError, ConfigError, TransientError

DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
_PG_AUTH = re.compile(
    r'password authentication failed|no password supplied|pg_hba\.conf|role "[^"]*" does not'
)
_MYSQL_AUTH_CODES = frozenset({1044, 1045, 1698})  # access denied (database, user, socket)
_MYSQL_BUSY_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
_BUSY_STATES = frozenset({"40001", "40P01", "55P03"})  # serialization failure, deadlock, lock


def driver_url(text: str) -> sa.URL:
    """The URL with our driver for the bare backend names (``postgresql://``, ``mysql://``)."""
    url = sa.engine.make_url(text)
    return url.set(drivername=DRIVERS.get(url.drivername, url.drivername))


def address(url: sa.URL, schema: str | None, table: str) -> str:
    """The table's address without password, driver or options: the user DB identity."""
    bare = sa.URL.create(url.get_backend_name(), url.username, None, url.host, url.port, url.database)
    name = f"{schema}.{table}" if schema else table
    return f"{bare.render_as_string(hide_password=False)}#{name}"


def create_engine(url: sa.URL) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, so SAVEPOINTs work

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
    if backend in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _utc_session(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("SET time_zone = '+00:00'")  # TIMESTAMP columns read and written in UTC
            cursor.close()

    return engine


@contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection; a refused login is AuthError (E112), a server that cannot be reached or
    that fails is TransientError (E501, E500 when busy), a missing SQLite file ConfigError."""
    url = engine.url
    path = url.database or ""
    on_file = (
        url.get_backend_name() == "sqlite" and path not in ("", ":memory:") and not path.startswith("file:")
    )
    if on_file and not Path(path).is_file():  # connecting would create an empty database file
        raise ConfigError(f"the SQLite database file {path} does not exist", code="E100")
    try:
        with engine.connect() as conn:
            yield conn
    except (exc.OperationalError, exc.InterfaceError) as e:
        if is_auth_failure(e):
            raise AuthError(f"the database refused the credentials: {error_text(e)}", code="E112") from None
        if is_busy(e):
            raise TransientError(f"the database is busy: {error_text(e)}", code="E500") from None
        raise TransientError(
            f"the database is unreachable or failing: {error_text(e)}", code="E501"
        ) from None


def record_problem(e: exc.DBAPIError) -> RecordProblem:
    """A database error on one record: E422, unless the connection or a lock is the cause
    (then the batch stops with a TransientError and the next run retries it)."""
    raise_if_transient(e)
    return RecordProblem("E422", f"the database refused the record: {error_text(e)}")


def raise_if_transient(e: exc.DBAPIError) -> None:
    """TransientError when a lost connection or a lock caused the error, not the data."""
    if e.connection_invalidated:
        raise TransientError(f"the database connection was lost: {error_text(e)}", code="E501") from None
    if is_busy(e):
        raise TransientError(f"the database is busy: {error_text(e)}", code="E500") from None


def error_text(e: Exception) -> str:
    """The database's own message, without the SQL statement or its parameters."""
    orig = getattr(e, "orig", None) or e
    text = " ".join(str(orig).split())
    return text if len(text) <= 300 else text[:297] + "..."


def is_auth_failure(e: exc.DBAPIError) -> bool:
    code = _mysql_code(e)
    if code is not None:
        return code in _MYSQL_AUTH_CODES
    if str(getattr(e.orig, "sqlstate", "") or "").startswith("28"):  # invalid authorization
        return True
    return _PG_AUTH.search(str(e.orig)) is not None


def is_busy(e: exc.DBAPIError) -> bool:
    return _mysql_code(e) in _MYSQL_BUSY_CODES or getattr(e.orig, "sqlstate", None) in _BUSY_STATES


def _mysql_code(e: exc.DBAPIError) -> int | None:
    args = getattr(e.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None
