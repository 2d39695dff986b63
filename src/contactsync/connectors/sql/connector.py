"""The sql connector's settings and its protocol methods (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from pydantic import Field, SecretStr, field_validator
from sqlalchemy import exc

from contactsync.connectors.base import (
    Capabilities,
    Connector,
    ConnectorConfig,
    ConnectorContext,
    Description,
    FieldInfo,
    ListInfo,
    ReadBatch,
    RemoteRecord,
    WriteItem,
    WriteResult,
)
from contactsync.connectors.sql import database, values, writes
from contactsync.connectors.sql.cursor import LISTING_DONE, make_cursor, parse_cursor, rows_after
from contactsync.connectors.sql.table import SqlTable, record_of, reflect
from contactsync.connectors.sql.values import Problem
from contactsync.errors import ConfigError, TransientError

MAX_PAGE_SIZE = 5000
Row = sa.Row[Any]
After = Callable[[Row], sa.ColumnElement[bool]]


class Config(ConnectorConfig):
    url: SecretStr = Field(description="SQLAlchemy URL, e.g. postgresql://user:password@host:5432/db")
    table: str = Field(min_length=1)
    db_schema: str | None = Field(default=None, description="schema of the table (PostgreSQL)")
    key_column: str = Field(default="id", min_length=1, description="the remote id")
    email_column: str | None = Field(
        default=None, description="email column, matched case-insensitively; default: a column named email"
    )
    updated_at_column: str | None = None
    soft_delete_column: str | None = None
    lists: dict[str, str] = Field(default_factory=dict, description="list id → its status column")
    page_size: int = Field(default=500, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: SecretStr) -> SecretStr:
        try:
            sa.engine.make_url(value.get_secret_value())
        except exc.ArgumentError:
            raise ValueError("not a database URL such as postgresql://user:password@host/db") from None
        return value


def capabilities_for(config: Config) -> Capabilities:
    return Capabilities(
        change_feed=config.updated_at_column is not None,
        delete_feed=config.soft_delete_column is not None,
        max_page_size=MAX_PAGE_SIZE,
    )


CAPABILITIES = Capabilities(change_feed=True, delete_feed=True, max_page_size=MAX_PAGE_SIZE)


class SqlConnector:
    provider: ClassVar[str] = "sql"
    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: Config, ctx: ConnectorContext) -> None:
        self.config = config
        self.ctx = ctx
        self.engine = database.create_engine(database.driver_url(config.url.get_secret_value()))
        self._reflected: SqlTable | None = None

    # -- protocol ---------------------------------------------------------------------------

    def check(self) -> None:
        self._reflected = None
        try:
            self._table()
        except TransientError as e:
            raise ConfigError(e.message, code="E100") from None

    def describe(self) -> Description:
        t = self._table()
        fields = [
            FieldInfo(
                name=col.name,
                label=col.comment or col.name.replace("_", " ").capitalize(),
                type=t.words[col.name],
                required=t.required(col),
                writable=t.writable(col),
            )
            for col in t.fields
        ]
        counting = sa.select(sa.func.count()).select_from(t.table)
        live = t.live()
        with database.connect(self.engine) as conn:
            count = conn.execute(counting if live is None else counting.where(live)).scalar_one()
        return Description(
            fields=fields,
            lists=[ListInfo(id=list_id, name=list_id) for list_id in t.lists],
            record_count=int(count),
            user_db=f"sql:{self.address()}",
        )

    def read(self, cursor: str | None, *, since: int | None = None) -> Iterator[ReadBatch]:
        t = self._table()
        last = self._parse_cursor(t, cursor)
        after_key = functools.partial(_after_key, t)
        if t.updated_at is None:  # a full listing in key order, resumable while it runs
            start = t.key > last[1] if last else None
            for rows, is_last in self._pages(sa.select(t.table).order_by(t.key), after_key, start):
                yield self._batch(t, rows, LISTING_DONE if is_last else cursor_of(rows[-1], t))
            return
        u, clock = t.updated_at, self._clock(t)
        start = None
        if last is not None and last[0] is not None:
            start = rows_after(clock.expr, t.key, clock.param(last[0]), last[1])
        elif last is not None or since is None:  # first the rows that never had an update time
            untimed = sa.select(t.table).where(u.is_(None)).order_by(t.key)
            for rows, _ in self._pages(untimed, after_key, t.key > last[1] if last else None):
                yield self._batch(t, rows, cursor_of(rows[-1], t))
        else:
            start = clock.expr >= clock.param(values.since_for(u, since))
        timed = sa.select(t.table, *clock.columns).where(u.is_not(None)).order_by(clock.expr, t.key)
        for rows, _ in self._pages(timed, functools.partial(_after_row, t, clock), start):
            yield self._batch(t, rows, cursor_of(rows[-1], t, clock))

    def fetch(self, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        t = self._table()
        keys = []
        for remote_id in remote_ids:
            try:
                keys.append(t.key_of(remote_id))
            except Problem:  # not a key of this table: there is no such row
                continue
        if not keys:
            return []
        stmt = sa.select(t.table).where(t.key.in_(keys)).order_by(t.key)
        live = t.live()
        if live is not None:
            stmt = stmt.where(live)
        with database.connect(self.engine) as conn:
            return [record_of(row, t) for row in conn.execute(stmt)]

    def write(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Upserts in one transaction, set-based: a few statements per batch (see .writes)."""
        t = self._table()
        with database.connect(self.engine) as conn, conn.begin():
            return writes.write_batch(conn, t, items)

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        t = self._table()
        with database.connect(self.engine) as conn, conn.begin():
            return writes.delete_batch(conn, t, remote_ids)

    def close(self) -> None:
        self.engine.dispose()

    def address(self) -> str:
        return database.address(self.engine.url, self.config.db_schema, self.config.table)

    # -- reading ----------------------------------------------------------------------------

    def _pages(
        self, stmt: sa.Select[Any], after: After, start: sa.ColumnElement[bool] | None
    ) -> Iterator[tuple[list[Row], bool]]:
        """Keyset pages of an ordered select: (rows, whether it is the last page), each read
        on its own short connection."""
        size = self.config.page_size
        condition = start
        while True:
            page = stmt if condition is None else stmt.where(condition)
            with database.connect(self.engine) as conn:
                rows = list(conn.execute(page.limit(size + 1)))
            more = len(rows) > size
            rows = rows[:size]
            if rows:
                yield rows, not more
            if not more:
                return
            condition = after(rows[-1])

    def _batch(self, t: SqlTable, rows: list[Row], next_cursor: str | None) -> ReadBatch:
        records, deleted = [], []
        for row in rows:
            if t.deleted is not None and values.is_set(row._mapping[t.deleted]):
                deleted.append(str(row._mapping[t.key]))
            else:
                records.append(record_of(row, t))
        return ReadBatch(records=records, deleted=deleted, cursor=next_cursor)

    def _parse_cursor(self, t: SqlTable, text: str | None) -> tuple[Any, Any] | None:
        parsed = parse_cursor(text)
        if parsed is None:
            return None
        try:
            return parsed[0], t.key_of(parsed[1])
        except Problem as p:
            raise ConfigError(f"invalid cursor: {p.problem.message}", code="E100") from None

    def _clock(self, t: SqlTable) -> _Clock:
        """How rows are ordered by update time. SQLite keeps times as text and compares them as
        text, so a table whose times are not all in SQLAlchemy's own format (ISO with a 'T',
        whole seconds from CURRENT_TIMESTAMP, an offset) is ordered by the time normalised
        with strftime: slower (no index unless one is made on that expression), never wrong."""
        u = t.updated_at
        assert u is not None
        if self.engine.dialect.name != "sqlite":
            return _Clock(u)
        odd = sa.select(sa.literal(1)).where(
            u.is_not(None), u.op("NOT GLOB", is_comparison=True)(_SQLITE_CANONICAL)
        )
        with database.connect(self.engine) as conn:
            if conn.execute(odd.select_from(t.table).limit(1)).first() is None:
                return _Clock(u)
        normalised = sa.func.strftime("%Y-%m-%d %H:%M:%f", u)
        return _Clock(normalised, normalised.label(_NORMALISED), _sqlite_text)

    def _table(self) -> SqlTable:
        if self._reflected is None:
            with database.connect(self.engine) as conn:
                self._reflected = reflect(self.config, conn, self.address())
        return self._reflected


# SQLAlchemy's text form of a DATETIME on SQLite, which sorts as text in time order
_SQLITE_CANONICAL = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9]*"
_NORMALISED = "_contactsync_updated_at"


def _sqlite_text(stamp: dt.datetime) -> str:
    """A time as SQLite's strftime('%Y-%m-%d %H:%M:%f') writes it (UTC, milliseconds)."""
    naive = values.utc(stamp).replace(tzinfo=None)
    return naive.strftime("%Y-%m-%d %H:%M:%S.") + f"{naive.microsecond // 1000:03d}"


@dataclass(frozen=True)
class _Clock:
    """The update-time expression rows are ordered and compared by, the extra column that
    selects it (when it is not the column itself), and how a time becomes its parameter."""

    expr: sa.ColumnElement[Any]
    label: sa.Label[Any] | None = None
    to_param: Callable[[dt.datetime], Any] | None = None

    @property
    def columns(self) -> list[sa.Label[Any]]:
        return [self.label] if self.label is not None else []

    def param(self, stamp: dt.datetime) -> Any:
        return self.to_param(stamp) if self.to_param is not None else stamp

    def stamp(self, row: Row, t: SqlTable) -> Any:
        got = row._mapping
        if self.label is not None:
            return dt.datetime.fromisoformat(got[_NORMALISED])
        return got[t.updated_at] if t.updated_at is not None else None


def cursor_of(row: Row, t: SqlTable, clock: _Clock | None = None) -> str:
    got = row._mapping
    if clock is not None:
        return make_cursor(clock.stamp(row, t), got[t.key])
    return make_cursor(got[t.updated_at] if t.updated_at is not None else None, got[t.key])


def _after_key(t: SqlTable, row: Row) -> sa.ColumnElement[bool]:
    condition: sa.ColumnElement[bool] = t.key > row._mapping[t.key]
    return condition


def _after_row(t: SqlTable, clock: _Clock, row: Row) -> sa.ColumnElement[bool]:
    return rows_after(clock.expr, t.key, clock.param(clock.stamp(row, t)), row._mapping[t.key])


@functools.cache
def _variant(capabilities: Capabilities) -> type[SqlConnector]:
    """A subclass that carries one configuration's capabilities: base.Connector declares
    ``capabilities`` as a class variable, and ours depend on the configuration."""
    return cast(type[SqlConnector], type("SqlConnector", (SqlConnector,), {"capabilities": capabilities}))


def create(config: Config, ctx: ConnectorContext) -> Connector:
    return _variant(capabilities_for(config))(config, ctx)
