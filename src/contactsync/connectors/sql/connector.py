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
    RecordProblem,
    RemoteRecord,
    WriteItem,
    WriteResult,
)
from contactsync.connectors.sql import database, values
from contactsync.connectors.sql.cursor import LISTING_DONE, make_cursor, parse_cursor, rows_after
from contactsync.connectors.sql.table import SqlTable, reflect
from contactsync.connectors.sql.values import Problem
from contactsync.errors import ConfigError, TransientError
from contactsync.hub.consent import Status

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
                keys.append(_key(t, remote_id))
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
        t = self._table()
        with database.connect(self.engine) as conn, conn.begin():
            return [self._write_one(conn, t, item) for item in items]

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        t = self._table()
        results = []
        with database.connect(self.engine) as conn, conn.begin():
            for remote_id in remote_ids:
                problem = None
                try:
                    key = _key(t, remote_id)
                    with conn.begin_nested():
                        self._delete_one(conn, t, key)
                except Problem:  # not a key of this table: there is no such row
                    pass
                except exc.DBAPIError as e:
                    problem = database.record_problem(e)
                results.append(WriteResult(remote_id, remote_id=remote_id, problem=problem))
        return results

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
            return parsed[0], _key(t, parsed[1])
        except Problem as p:
            raise ConfigError(f"invalid cursor: {p.problem.message}", code="E100") from None

    # -- writing ----------------------------------------------------------------------------

    def _write_one(self, conn: sa.Connection, t: SqlTable, item: WriteItem) -> WriteResult:
        """One upsert inside its own SAVEPOINT, so that a refused record undoes only itself."""
        try:
            with conn.begin_nested():
                key, created = self._upsert(conn, t, item)
                row = conn.execute(sa.select(t.table).where(t.key == key)).one()
        except Problem as p:
            return WriteResult(item.key, remote_id=item.remote_id, problem=p.problem)
        except exc.DBAPIError as e:
            return WriteResult(item.key, remote_id=item.remote_id, problem=database.record_problem(e))
        except exc.StatementError as e:  # a value the driver cannot bind
            problem = RecordProblem("E424", database.error_text(e))
            return WriteResult(item.key, remote_id=item.remote_id, problem=problem)
        record = record_of(row, t)
        return WriteResult(item.key, remote_id=record.remote_id, created=created, record=record)

    def _upsert(self, conn: sa.Connection, t: SqlTable, item: WriteItem) -> tuple[Any, bool]:
        """The row's key after the write, and whether a live row appeared."""
        changes = {t.table.c[name]: v for name, v in _converted(t, item.fields, writing=True).items()}
        changes.update(_list_values(t, item.lists))
        if t.updated_at is not None:
            changes[t.updated_at] = values.now_for(t.updated_at)
        row = None
        if item.remote_id is not None:
            row = conn.execute(sa.select(t.table).where(t.key == _key(t, item.remote_id))).first()
        match = {n: v for n, v in _converted(t, item.match, writing=False).items() if v is not None}
        if row is None and match:
            row = _find(conn, t, match)
        if row is None:
            return self._insert(conn, t, item, changes, match), True
        key = row._mapping[t.key]
        if t.key in changes and changes.pop(t.key) != key:
            raise Problem("E422", f"field {t.key.name} is the record's key and cannot be changed")
        revived = t.deleted is not None and values.is_set(row._mapping[t.deleted])
        if t.deleted is not None and revived:
            changes[t.deleted] = values.unset_marker(t.deleted)
        for col, value in changes.items():
            if value is None and not col.nullable:
                raise Problem("E420", f"field {col.name} is required by table {t.name} and is empty")
        if changes:
            conn.execute(sa.update(t.table).where(t.key == key).values(changes))
        return key, revived

    def _insert(
        self,
        conn: sa.Connection,
        t: SqlTable,
        item: WriteItem,
        changes: dict[sa.Column[Any], Any],
        match: dict[str, Any],
    ) -> Any:
        row = {**{t.table.c[n]: v for n, v in match.items()}, **changes}
        if t.key not in row and item.remote_id is not None and not t.key_generated:
            row[t.key] = _key(t, item.remote_id)
        if t.key not in row and not t.key_generated:
            raise Problem("E420", f"field {t.key.name} is required by table {t.name} and is empty")
        for col in t.table.c:
            if t.required(col) and row.get(col) is None:
                raise Problem("E420", f"field {col.name} is required by table {t.name} and is empty")
        stmt = sa.insert(t.table).values(row)
        if t.key in row:
            conn.execute(stmt)
            return row[t.key]
        if conn.dialect.insert_returning:
            return conn.execute(stmt.returning(t.key)).scalar_one()
        inserted = conn.execute(stmt).inserted_primary_key
        if inserted is None or t.key.name not in inserted._fields:
            raise Problem("E422", f"the database did not return the new row's {t.key.name}")
        return inserted._mapping[t.key.name]

    def _delete_one(self, conn: sa.Connection, t: SqlTable, key: Any) -> None:
        live = t.live()
        if t.deleted is None or live is None:
            conn.execute(sa.delete(t.table).where(t.key == key))
            return
        changes: dict[sa.Column[Any], Any] = {t.deleted: values.deleted_marker(t.deleted)}
        if t.updated_at is not None:
            changes[t.updated_at] = values.now_for(t.updated_at)
        conn.execute(sa.update(t.table).where(t.key == key, live).values(changes))

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


def record_of(row: Row, t: SqlTable) -> RemoteRecord:
    got = row._mapping
    fields = {c.name: values.to_json(got[c], t.words[c.name]) for c in t.fields}
    lists = {list_id: s for list_id, col in t.lists.items() if (s := values.status_of(got[col])) is not None}
    stamp = got[t.updated_at] if t.updated_at is not None else None
    updated_at = values.epoch_ms(stamp) if stamp is not None else None
    return RemoteRecord(str(got[t.key]), fields, lists, updated_at)


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


def _find(conn: sa.Connection, t: SqlTable, match: dict[str, Any]) -> Row | None:
    """The row the match values point at: the live one, else the newest soft-deleted one.
    The email column is compared without regard to case; two live rows are E421."""
    conditions = []
    for name, value in match.items():
        col = t.table.c[name]
        if col is not t.email or not isinstance(value, str):
            conditions.append(col == value)
        elif t.email_ci:  # the collation ignores case: the column's index serves
            conditions.append(col == value.strip())
        else:
            conditions.append(sa.func.lower(col) == value.strip().lower())
    stmt = sa.select(t.table).where(*conditions)
    live = t.live()
    rows = conn.execute((stmt if live is None else stmt.where(live)).limit(2)).all()
    if len(rows) > 1:
        shown = ", ".join(f"{k}={v!r}" for k, v in match.items())
        raise Problem("E421", f"more than one row of {t.name} has {shown}")
    if rows or live is None:
        return rows[0] if rows else None
    return conn.execute(stmt.where(sa.not_(live)).order_by(t.key.desc()).limit(1)).first()


def _converted(t: SqlTable, given: dict[str, Any], *, writing: bool) -> dict[str, Any]:
    converted = {}
    for name, value in given.items():
        col = t.table.c.get(name)
        if col is None or col not in t.fields or (writing and not t.writable(col)):
            raise Problem("E422", f"{name} is not a writable field of table {t.name}")
        converted[name] = values.to_db(col, t.words[name], value)
    return converted


def _list_values(t: SqlTable, lists: dict[str, Status]) -> dict[sa.Column[Any], Any]:
    changes = {}
    for list_id, status in lists.items():
        col = t.lists.get(list_id)
        if col is None:
            raise Problem("E422", f"list {list_id} is not configured for table {t.name}")
        write, value = values.list_value(col, status)
        if write:
            changes[col] = value
    return changes


def _key(t: SqlTable, remote_id: str) -> Any:
    if t.words[t.key.name] == "integer":
        try:
            return int(remote_id)
        except ValueError:
            raise Problem("E422", f"{remote_id!r} is not a key of table {t.name}") from None
    return values.to_db(t.key, t.words[t.key.name], remote_id)


@functools.cache
def _variant(capabilities: Capabilities) -> type[SqlConnector]:
    """A subclass that carries one configuration's capabilities: base.Connector declares
    ``capabilities`` as a class variable, and ours depend on the configuration."""
    return cast(type[SqlConnector], type("SqlConnector", (SqlConnector,), {"capabilities": capabilities}))


def create(config: Config, ctx: ConnectorContext) -> Connector:
    return _variant(capabilities_for(config))(config, ctx)
