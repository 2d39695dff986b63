"""The client's table as the connector sees it: reflected columns and the role each plays."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import mysql

from contactsync.connectors.base import RemoteRecord
from contactsync.connectors.sql import values
from contactsync.connectors.sql.values import Problem, is_flag
from contactsync.errors import ConfigError

if TYPE_CHECKING:
    from contactsync.connectors.sql.connector import Config


@dataclass(frozen=True)
class SqlTable:
    """The reflected table and the roles the configuration gives its columns."""

    table: sa.Table
    key: sa.Column[Any]
    key_generated: bool  # the database assigns the key (autoincrement, identity, default)
    updated_at: sa.Column[Any] | None
    deleted: sa.Column[Any] | None
    email: sa.Column[Any] | None
    email_ci: bool  # the email column's collation ignores case (MariaDB/MySQL default)
    lists: dict[str, sa.Column[Any]]
    fields: list[sa.Column[Any]]  # the columns that are record fields
    words: dict[str, str]  # field name → type word

    @property
    def name(self) -> str:
        return self.table.name

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.fields)

    def position(self, col: sa.Column[Any]) -> int:
        """The column's position in the rows of ``select(self.table)``."""
        return self._positions[col.name]

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self.table.c)}

    @functools.cached_property
    def field_positions(self) -> list[tuple[str, int, str]]:
        """(name, position, type word) of each field."""
        return [(c.name, self.position(c), self.words[c.name]) for c in self.fields]

    @functools.cached_property
    def list_positions(self) -> list[tuple[str, int]]:
        return [(list_id, self.position(col)) for list_id, col in self.lists.items()]

    def writable(self, col: sa.Column[Any]) -> bool:
        if col is self.key:
            return not self.key_generated
        return col is not self.updated_at and col.computed is None

    def required(self, col: sa.Column[Any]) -> bool:
        """NOT NULL without a default; the key and the update time are never required."""
        return (
            not col.nullable
            and col.server_default is None
            and col.default is None
            and col is not self.key
            and col is not self.updated_at
            and col.computed is None
        )

    def live(self) -> sa.ColumnElement[bool] | None:
        """The rows not soft-deleted (None: no soft-delete column, every row is live)."""
        col = self.deleted
        if col is None:
            return None
        if isinstance(col.type, sa.Boolean):
            return sa.or_(col.is_(None), col == sa.false())
        if isinstance(col.type, sa.Integer):
            return sa.or_(col.is_(None), col == 0)
        return col.is_(None)

    def key_of(self, remote_id: str) -> Any:
        """A remote id as a value of the key column; E422 when it cannot be one."""
        if self.words[self.key.name] == "integer":
            try:
                return int(remote_id)
            except ValueError:
                raise Problem("E422", f"{remote_id!r} is not a key of table {self.name}") from None
        return values.to_db(self.key, self.words[self.key.name], remote_id)

    def is_live(self, row: sa.Row[Any]) -> bool:
        """Whether a row is not soft-deleted: :meth:`live` in Python."""
        return self.deleted is None or not values.is_set(row._mapping[self.deleted])


def record_of(row: sa.Row[Any], t: SqlTable) -> RemoteRecord:
    """A row of ``select(t.table, ...)`` (the table's columns first, in order) as a record."""
    fields = {name: values.to_json(row[i], word) for name, i, word in t.field_positions}
    lists = {list_id: s for list_id, i in t.list_positions if (s := values.status_of(row[i])) is not None}
    stamp = row[t.position(t.updated_at)] if t.updated_at is not None else None
    updated_at = values.epoch_ms(stamp) if stamp is not None else None
    return RemoteRecord(str(row[t.position(t.key)]), fields, lists, updated_at)


def reflect(config: Config, conn: sa.Connection, where: str) -> SqlTable:
    """Read the table's definition; ConfigError (E100) naming what is missing or unusable.
    Indexes on expressions (``lower(email)``) are left out of the definition without a warning:
    the connector does not use the definition's indexes."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="Skipped unsupported reflection of expression-based index",
                category=exc.SAWarning,
            )
            table = sa.Table(config.table, sa.MetaData(), schema=config.db_schema, autoload_with=conn)
    except exc.NoSuchTableError:
        raise ConfigError(f"table {where.rpartition('#')[2]} not found in {where}", code="E100") from None
    roles = [
        ("key_column", config.key_column),
        ("updated_at_column", config.updated_at_column),
        ("soft_delete_column", config.soft_delete_column),
        ("email_column", config.email_column),
    ]
    roles += [(f"lists.{list_id}", name) for list_id, name in config.lists.items()]
    missing = [f"{role} {name!r}" for role, name in roles if name is not None and name not in table.c]
    if missing:
        raise ConfigError(f"{where} has no column for {', '.join(missing)}", code="E100")
    col = table.c
    key = col[config.key_column]
    updated_at = col[config.updated_at_column] if config.updated_at_column else None
    deleted = col[config.soft_delete_column] if config.soft_delete_column else None
    lists = {list_id: col[name] for list_id, name in config.lists.items()}
    _check_types(updated_at, deleted, lists)
    email = col[config.email_column] if config.email_column else col.get("email")
    hidden = {c.name for c in lists.values()} | ({deleted.name} if deleted is not None else set())
    fields = [c for c in table.c if c.name not in hidden]
    generated = table.autoincrement_column is key or key.server_default is not None
    if key.primary_key:  # SQLite reflects an INTEGER PRIMARY KEY declared without NOT NULL as
        key.nullable = False  # nullable, and SQLAlchemy then refuses to read new keys back in order
    if _is_serial(conn, key):
        # SQLAlchemy trusts the order of a SERIAL's keys only when the column does not carry the
        # reflected nextval() default (as a SERIAL it declared itself does not): then it inserts
        # a batch in one statement and returns the new keys in order, instead of row by row
        key.server_default = None
    return SqlTable(
        table=table,
        key=key,
        key_generated=generated or key.identity is not None,
        updated_at=updated_at,
        deleted=deleted,
        email=email,
        email_ci=email is not None and _ignores_case(conn, config.db_schema, table, email),
        lists=lists,
        fields=fields,
        words={c.name: type_word(c, email) for c in fields},
    )


def _is_serial(conn: sa.Connection, key: sa.Column[Any]) -> bool:
    """A PostgreSQL integer key numbered by a sequence (SERIAL: DEFAULT nextval(...))."""
    default = key.server_default
    return (
        conn.dialect.name == "postgresql"
        and isinstance(key.type, sa.Integer)
        and isinstance(default, sa.DefaultClause)
        and str(getattr(default.arg, "text", default.arg)).startswith("nextval(")
    )


def _check_types(
    updated_at: sa.Column[Any] | None, deleted: sa.Column[Any] | None, lists: dict[str, sa.Column[Any]]
) -> None:
    if updated_at is not None and not isinstance(updated_at.type, sa.DateTime):
        raise ConfigError(f"updated_at_column {updated_at.name!r} is not a date-time column", code="E100")
    if deleted is not None and not isinstance(deleted.type, (sa.Boolean, sa.Integer, sa.DateTime, sa.String)):
        message = f"soft_delete_column {deleted.name!r} is not a flag, time or text column"
        raise ConfigError(message, code="E100")
    for list_id, col in lists.items():
        if not (is_flag(col) or isinstance(col.type, sa.String)):
            raise ConfigError(
                f"lists.{list_id} column {col.name!r} is not a boolean or text column", code="E100"
            )


def type_word(col: sa.Column[Any], email: sa.Column[Any] | None) -> str:
    """Our type word for a column: string, email, phone, integer, number, boolean, date,
    datetime (and uuid, for uuid keys)."""
    kind = col.type
    if col is email:
        return "email"
    if isinstance(kind, sa.Boolean) or (isinstance(kind, mysql.TINYINT) and kind.display_width == 1):
        return "boolean"
    if isinstance(kind, sa.Integer):
        return "integer"
    if isinstance(kind, sa.Numeric):
        return "number"
    if isinstance(kind, sa.DateTime):
        return "datetime"
    if isinstance(kind, sa.Date):
        return "date"
    if isinstance(kind, sa.Uuid):
        return "uuid"
    if isinstance(kind, sa.String) and any(w in col.name.lower() for w in ("phone", "mobile")):
        return "phone"
    return "string"


def _ignores_case(conn: sa.Connection, schema: str | None, table: sa.Table, col: sa.Column[Any]) -> bool:
    """Whether a MariaDB/MySQL column compares text without regard to case (a ``_ci``
    collation), so that matching on it can use its index instead of ``lower()``."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return False
    collation = conn.execute(
        sa.text(
            "SELECT collation_name FROM information_schema.columns WHERE table_schema = "
            "COALESCE(:schema, DATABASE()) AND table_name = :table AND column_name = :column"
        ),
        {"schema": schema, "table": table.name, "column": col.name},
    ).scalar()
    return str(collation or "").endswith("_ci")
