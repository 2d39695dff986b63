"""The client's own database as a Data Exchange endpoint: rows read from a table or a query
(importer, updater), and rows inserted into a table (displacer output).

Reads stream through a server-side cursor (PostgreSQL, MariaDB/MySQL) in batches, inside a
read-only transaction; every value comes out as text, like a file's. A table is read in the
order of its primary key, so row numbers are stable between runs; a query should have its own
``ORDER BY`` for the same. SQLite client databases must lie under the exchange root.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from contactsync.connectors.sql.database import driver_url, error_text, is_auth_failure
from contactsync.errors import AuthError, ConfigError, TransientError
from contactsync.exchange.codecs import InputRow
from contactsync.settings import Settings, get_settings

BATCH = 1000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def read_db_rows(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    password: str | None = None,
    settings: Settings | None = None,
    batch_size: int = BATCH,
) -> Iterator[InputRow]:
    """The rows of ``table`` (``schema.table`` allowed) or of the ``query``'s result, as text.

    ``password``, when given, replaces the URL's (so the URL can be stored and shown without it).
    """
    if (table is None) == (query is None):
        raise ConfigError("a client-database endpoint needs a table or a query (one of them)", code="E610")
    engine = _engine(url, password, settings or get_settings())
    try:
        with _connected(engine) as conn:
            _read_only(conn)
            if table is not None:
                selectable: sa.Executable = _select_table(conn, table)
            else:
                selectable = sa.text(query or "")
            with _query_errors(engine):
                result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(selectable)
                columns = list(result.keys())
                number = 0
                for partition in result.partitions():
                    for row in partition:
                        number += 1
                        values = {c: _text(v) for c, v in zip(columns, row, strict=True)}
                        yield InputRow(number, values, _raw(values.values()))
    finally:
        engine.dispose()


def write_db_rows(
    url: str,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    password: str | None = None,
    settings: Settings | None = None,
    batch_size: int = BATCH,
) -> int:
    """Insert ``rows`` into ``table`` in batches, all in one transaction (all or nothing);
    returns how many were inserted. Missing keys and None are NULL."""
    engine = _engine(url, password, settings or get_settings())
    try:
        with _connected(engine) as conn, _query_errors(engine), conn.begin():
            target = _reflect(conn, table)
            unknown = [c for c in columns if c not in target.c]
            if unknown:
                raise ConfigError(
                    f"the table {table} has no column {', '.join(unknown)}; "
                    f"its columns: {', '.join(target.c.keys())}",
                    code="E619",
                )
            count = 0
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append({c: row.get(c) for c in columns})
                if len(batch) >= batch_size:
                    conn.execute(target.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(target.insert(), batch)
                count += len(batch)
            return count
    finally:
        engine.dispose()


def shown_url(url: str) -> str:
    """The URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "(not a database URL)"


def _engine(url: str, password: str | None, settings: Settings) -> sa.Engine:
    try:
        parsed = driver_url(url)
        if password is not None:
            parsed = parsed.set(password=password)
    except exc.ArgumentError:
        raise ConfigError(
            f"{shown_url(url)!r} is not a database URL such as postgresql://user@host/db", code="E610"
        ) from None
    backend = parsed.get_backend_name()
    timeout = int(settings.exchange_connect_timeout)
    try:
        if backend == "sqlite":
            parsed = parsed.set(database=_sqlite_path(parsed.database or "", settings))
            return sa.create_engine(parsed, connect_args={"timeout": timeout}, poolclass=sa.NullPool)
        connect_args = {"connect_timeout": timeout} if backend in ("postgresql", "mysql", "mariadb") else {}
        return sa.create_engine(parsed, connect_args=connect_args, poolclass=sa.NullPool)
    except (exc.NoSuchModuleError, exc.ArgumentError, ImportError) as e:
        raise ConfigError(
            f"{shown_url(url)}: this kind of database is not supported here ({error_text(e)})", code="E610"
        ) from None


def _sqlite_path(path: str, settings: Settings) -> str:
    root = Path(settings.exchange_local_root).resolve()
    if path in ("", ":memory:") or path.startswith("file:"):
        raise ConfigError("a SQLite client database must be a file under the exchange root", code="E610")
    resolved = (root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(
            f"the SQLite database {resolved} is outside the exchange root {root}; "
            "put it under CONTACTSYNC_EXCHANGE_LOCAL_ROOT",
            code="E611",
        )
    if not resolved.is_file():
        raise ConfigError(f"the SQLite database {resolved} does not exist", code="E610")
    return str(resolved)


@contextmanager
def _connected(engine: sa.Engine) -> Iterator[sa.Connection]:
    shown = engine.url.render_as_string(hide_password=True)
    try:
        conn = engine.connect()
    except (exc.OperationalError, exc.InterfaceError) as e:
        if is_auth_failure(e):
            raise AuthError(
                f"{shown}: the database refused the login: {error_text(e)}", code="E614"
            ) from None
        raise TransientError(f"{shown}: cannot connect: {error_text(e)}", code="E618") from None
    with conn:
        yield conn


@contextmanager
def _query_errors(engine: sa.Engine) -> Iterator[None]:
    shown = engine.url.render_as_string(hide_password=True)
    try:
        yield
    except exc.DBAPIError as e:
        failing = e.connection_invalidated or isinstance(e, (exc.OperationalError, exc.InterfaceError))
        if failing and not _is_query_error(e):
            raise TransientError(f"{shown}: the database failed: {error_text(e)}", code="E618") from None
        raise ConfigError(
            f"{shown}: the database refused the job's SQL: {error_text(e)}", code="E619"
        ) from None
    except exc.StatementError as e:
        raise ConfigError(f"{shown}: the job's SQL cannot be run: {error_text(e)}", code="E619") from None


_QUERY_WORDS = (
    "no such table",
    "no such column",
    "doesn't exist",
    "unknown column",
    "syntax",
    "read only",
    "read-only",
    "readonly",
    "denied",
)


def _is_query_error(e: exc.DBAPIError) -> bool:
    """SQLite and MySQL report a wrong table, a wrong column or a write in a read-only
    transaction as an OperationalError, as they do a lost connection."""
    text = str(e.orig).lower()
    return any(w in text for w in _QUERY_WORDS)


def _read_only(conn: sa.Connection) -> None:
    """Reads cannot change the client's data, whatever the job's query says."""
    backend = conn.engine.url.get_backend_name()
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # the first statement of the transaction
    elif backend in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    elif backend == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = 1")


def _reflect(conn: sa.Connection, name: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    if not _NAME.fullmatch(table) or (schema and not _NAME.fullmatch(schema)):
        raise ConfigError(f"{name!r} is not a table name (letters, digits, _; schema.table)", code="E619")
    try:
        with warnings.catch_warnings():  # its indexes are not used: an expression index is no news
            warnings.filterwarnings(
                "ignore",
                message="Skipped unsupported reflection of expression-based index",
                category=exc.SAWarning,
            )
            return sa.Table(table, sa.MetaData(), schema=schema or None, autoload_with=conn)
    except exc.NoSuchTableError:
        raise ConfigError(f"the client database has no table {name}", code="E619") from None
    except exc.DBAPIError as e:
        raise ConfigError(f"the table {name} cannot be read: {error_text(e)}", code="E619") from None


def _select_table(conn: sa.Connection, name: str) -> sa.Select[Any]:
    t = _reflect(conn, name)
    order = list(t.primary_key.columns) or list(t.c)
    return sa.select(t).order_by(*order)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


def _raw(values: Iterable[str]) -> str:
    """The row as one CSV line: it can go into the failed-operations report as it is."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(list(values))
    return out.getvalue()
