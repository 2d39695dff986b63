"""Set-based writes: a batch of upserts or deletes in a few statements, not a few per row.

:func:`write_batch` works in rounds of independent items (usually one round per batch):

1. each item is checked and converted in Python (E422, E424 and E420 need no database);
2. the round's rows are looked up together: by key ``IN (...)`` for items with a remote id,
   then by match values ``IN (...)`` (the email column in lower case, unless its collation
   ignores case) for the rest. Which row belongs to which item, two live rows for one item
   (E421) and the soft-deleted fallback (the newest soft-deleted row when no row is live)
   are sorted out in Python;
3. updates run as one ``UPDATE … WHERE key = ?`` per set of changed columns, inserts as one
   ``INSERT`` per set of columns (``RETURNING`` the generated keys, in item order), each
   executed by the driver for all its rows;
4. the written rows are read back by key in one statement.

Items that depend on one another (the same key or match value, a write of a value another
item matches on, two items that find the same row) go to later rounds, in batch order, so a
batch ends as if its items had been written one after the other. (Within a round the
updates run before the inserts: a new row may take a unique value that an update of the
same batch frees.)

A statement that the database refuses for one of its rows is undone (a SAVEPOINT per
statement) and run again row by row, each row in its own SAVEPOINT, so that the row fails
alone (E422, or E424 for a value the driver cannot bind).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from contactsync.connectors.base import RecordProblem, WriteItem, WriteResult
from contactsync.connectors.sql import database, values
from contactsync.connectors.sql.table import SqlTable, record_of
from contactsync.connectors.sql.values import Problem
from contactsync.hub.consent import Status

CHUNK = 1000  # values in one IN (...) list
Row = sa.Row[Any]
Claim = tuple[str, Any]  # (column name, comparison form of a value)


@dataclass
class _Item:
    """One write item on its way through a batch: converted values, then what was found."""

    index: int
    item: WriteItem
    changes: dict[sa.Column[Any], Any]
    match: dict[str, Any]  # converted, without empty values
    key: Any | None  # the remote id as a key value
    claims: set[Claim] = field(default_factory=set)
    found: Row | None = None
    problem: RecordProblem | None = None


@dataclass
class _Op:
    """A planned UPDATE (``key`` given) or INSERT of one item's row."""

    item: _Item
    params: dict[str, Any]  # column name → value
    key: Any | None  # the row's key: known before the write unless the database assigns it
    created: bool


def write_batch(conn: sa.Connection, t: SqlTable, items: Sequence[WriteItem]) -> list[WriteResult]:
    """Upsert ``items`` inside the caller's transaction; one result per item, in order."""
    results: list[WriteResult | None] = [None] * len(items)
    stamp = values.now_for(t.updated_at) if t.updated_at is not None else None
    pending: list[_Item] = []
    for index, item in enumerate(items):
        try:
            pending.append(_prepare(t, index, item, stamp))
        except Problem as e:
            results[index] = WriteResult(item.key, remote_id=item.remote_id, problem=e.problem)
    tracked = {t.key.name} | {name for p in pending for name in p.match}
    for p in pending:
        p.claims |= {(c.name, _loose(v)) for c, v in p.changes.items() if c.name in tracked and v is not None}
    while pending:
        now, pending = _independent(pending)
        _look_up(conn, t, now)
        now, later = _one_per_row(t, now)
        pending = sorted(pending + later, key=lambda p: p.index)
        for index, result in _write_round(conn, t, now).items():
            results[index] = result
    return [r for r in results if r is not None]


def delete_batch(conn: sa.Connection, t: SqlTable, remote_ids: Sequence[str]) -> list[WriteResult]:
    """Delete (or mark deleted) the rows of these remote ids, one statement per chunk; ids
    that are not keys of the table are rows that do not exist, which is not an error."""
    keys: dict[int, Any] = {}
    for index, remote_id in enumerate(remote_ids):
        try:
            keys[index] = t.key_of(remote_id)
        except Problem:
            continue
    problems: dict[int, RecordProblem] = {}
    indexes = list(keys)
    for start in range(0, len(indexes), CHUNK):
        chunk = indexes[start : start + CHUNK]
        try:
            with conn.begin_nested():
                conn.execute(_deleting(t, t.key.in_([keys[i] for i in chunk])))
        except exc.DBAPIError as e:
            database.raise_if_transient(e)
            for i in chunk:  # the chunk again, one row at a time, to fail only the refused rows
                try:
                    with conn.begin_nested():
                        conn.execute(_deleting(t, t.key == keys[i]))
                except exc.DBAPIError as e_row:
                    problems[i] = database.record_problem(e_row)
    return [WriteResult(rid, remote_id=rid, problem=problems.get(i)) for i, rid in enumerate(remote_ids)]


# -- preparing -------------------------------------------------------------------------------


def _prepare(t: SqlTable, index: int, item: WriteItem, stamp: Any) -> _Item:
    changes = {t.table.c[name]: v for name, v in _converted(t, item.fields, writing=True).items()}
    changes.update(_list_values(t, item.lists))
    if t.updated_at is not None:
        changes[t.updated_at] = stamp
    key = t.key_of(item.remote_id) if item.remote_id is not None else None
    match = {n: v for n, v in _converted(t, item.match, writing=False).items() if v is not None}
    claims = {(name, _loose(v)) for name, v in match.items()}
    if key is not None:
        claims.add((t.key.name, _loose(key)))
    return _Item(index, item, changes, match, key, claims)


def _converted(t: SqlTable, given: dict[str, Any], *, writing: bool) -> dict[str, Any]:
    converted = {}
    for name, value in given.items():
        col = t.table.c.get(name)
        if col is None or name not in t.field_names or (writing and not t.writable(col)):
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


def _loose(value: Any) -> Any:
    """A value's comparison form, at least as forgiving as any database's equality: text
    without surrounding spaces, case or accents (MariaDB's ``_ci`` collations ignore both)."""
    if isinstance(value, str):
        if value.isascii():
            return value.strip().lower()
        folded = unicodedata.normalize("NFKD", value.strip().casefold())
        return "".join(ch for ch in folded if not unicodedata.combining(ch))
    if isinstance(value, memoryview):
        return bytes(value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _independent(pending: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """(the items to write now, the rest): an item waits when it shares a claim (a key, a
    match value, a value written to a match column) with an earlier item of the batch that
    is written now or waits."""
    now: list[_Item] = []
    later: list[_Item] = []
    taken: set[Claim] = set()
    for p in pending:
        (later if p.claims & taken else now).append(p)
        taken |= p.claims
    return now, later


def _one_per_row(t: SqlTable, items: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """(the items to write now, the rest): of items that found the same row, the first."""
    now: list[_Item] = []
    later: list[_Item] = []
    rows = set()
    for p in items:
        row_key = _loose(p.found._mapping[t.key]) if p.found is not None else None
        if row_key is not None and row_key in rows:
            later.append(p)
            continue
        rows.add(row_key)
        now.append(p)
    return now, later


# -- looking up ------------------------------------------------------------------------------


def _look_up(conn: sa.Connection, t: SqlTable, items: list[_Item]) -> None:
    """Set each item's ``found`` row (or its E421 problem): by key, else by match values."""
    for p in items:  # an item put off to a later round looks again
        p.found, p.problem = None, None
    by_key = [p for p in items if p.key is not None]
    for chunk, rows in _select_for(conn, t, by_key, lambda ps: [t.key.in_([p.key for p in ps])]):
        index = _index(rows, (t.key.name,))
        for p in chunk:
            matching = index.get((_loose(p.key),), [])
            exact = [r for r in matching if r._mapping[t.key] == p.key]
            p.found = exact[0] if exact else matching[0] if matching else None
    groups: dict[tuple[str, ...], list[_Item]] = {}
    for p in items:
        if p.found is None and p.problem is None and p.match:
            groups.setdefault(tuple(p.match), []).append(p)
    for names, group in groups.items():
        for chunk, rows in _select_for(conn, t, group, functools.partial(_match_conditions, t, names)):
            index = _index(rows, names)
            for p in chunk:
                _choose(t, p, index.get(tuple(_loose(p.match[n]) for n in names), []))


def _index(rows: list[Row], names: tuple[str, ...]) -> dict[tuple[Any, ...], list[Row]]:
    """The rows by the comparison form of these columns' values."""
    index: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        got = row._mapping
        index.setdefault(tuple(_loose(got[n]) for n in names), []).append(row)
    return index


def _select_for(
    conn: sa.Connection,
    t: SqlTable,
    items: list[_Item],
    conditions: Callable[[list[_Item]], list[sa.ColumnElement[bool]]],
) -> Iterable[tuple[list[_Item], list[Row]]]:
    """Chunks of items, each with the rows its query selects. A chunk whose query the
    database refuses is queried again item by item, and an item refused alone gets the
    problem."""
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        try:
            with conn.begin_nested():
                rows = list(conn.execute(sa.select(t.table).where(*conditions(chunk))))
        except exc.DBAPIError as e:
            database.raise_if_transient(e)
        else:
            yield chunk, rows
            continue
        for p in chunk:
            try:
                with conn.begin_nested():
                    rows = list(conn.execute(sa.select(t.table).where(*conditions([p]))))
            except exc.DBAPIError as e:
                p.problem = database.record_problem(e)
            else:
                yield [p], rows


def _match_conditions(
    t: SqlTable, names: tuple[str, ...], items: list[_Item]
) -> list[sa.ColumnElement[bool]]:
    """Each match column IN the items' values: the email column is compared without regard
    to case (by the column itself when its collation ignores case, so its index serves)."""
    conditions: list[sa.ColumnElement[bool]] = []
    for name in names:
        col = t.table.c[name]
        given = [p.match[name] for p in items]
        texts = [v.strip() for v in given if isinstance(v, str)]
        if col is not t.email or not texts:
            conditions.append(col.in_(given))
            continue
        others = [v for v in given if not isinstance(v, str)]
        folded = col if t.email_ci else sa.func.lower(col)
        text_match = folded.in_(texts if t.email_ci else [v.lower() for v in texts])
        conditions.append(sa.or_(text_match, col.in_(others)) if others else text_match)
    return conditions


def _choose(t: SqlTable, p: _Item, rows: list[Row]) -> None:
    """The row the match values point at: the live one, else the newest soft-deleted one.
    Two live rows are E421: the item is not guessed."""
    live = [r for r in rows if t.is_live(r)]
    if len(live) > 1:
        shown = ", ".join(f"{k}={v!r}" for k, v in p.match.items())
        p.problem = RecordProblem("E421", f"more than one row of {t.name} has {shown}")
    elif live:
        p.found = live[0]
    elif rows:
        p.found = max(rows, key=lambda r: r._mapping[t.key])


# -- writing ---------------------------------------------------------------------------------


def _write_round(conn: sa.Connection, t: SqlTable, items: list[_Item]) -> dict[int, WriteResult]:
    """Plan, write and read back one round: the updates, then the inserts."""
    results: dict[int, WriteResult] = {}
    updates: dict[tuple[str, ...], list[_Op]] = {}
    inserts: dict[tuple[str, ...], list[_Op]] = {}
    for p in items:
        try:
            op = _planned(t, p)
        except Problem as e:
            p.problem = e.problem
            results[p.index] = _failed(p)
            continue
        groups = updates if p.found is not None else inserts
        groups.setdefault(_columns(t, op.params), []).append(op)
    written: list[_Op] = []
    for names, ops in updates.items():
        if names:  # else nothing to change: the row is read back as it is
            _run(conn, ops, _updating(t), lambda op: {**op.params, _KEY: op.key}, None)
        written += ops
    for names, ops in inserts.items():
        _run_inserts(conn, t, names, ops)
        written += ops
    results.update({op.item.index: _failed(op.item) for op in written if op.item.problem is not None})
    results.update(_read_back(conn, t, [op for op in written if op.item.problem is None]))
    return results


def _planned(t: SqlTable, p: _Item) -> _Op:
    """The item's UPDATE of the row it found, or INSERT of a new row; Problem when it cannot
    be written (a problem found when looking up, a changed key, a required column left empty)."""
    if p.problem is not None:
        raise Problem(p.problem.code, p.problem.message)
    changes = dict(p.changes)
    if p.found is not None:
        key = p.found._mapping[t.key]
        if t.key in changes and changes.pop(t.key) != key:
            raise Problem("E422", f"field {t.key.name} is the record's key and cannot be changed")
        revived = t.deleted is not None and values.is_set(p.found._mapping[t.deleted])
        if t.deleted is not None and revived:
            changes[t.deleted] = values.unset_marker(t.deleted)
        for col, value in changes.items():
            if value is None and not col.nullable:
                raise Problem("E420", f"field {col.name} is required by table {t.name} and is empty")
        return _Op(p, {c.name: v for c, v in changes.items()}, key, revived)
    row = {**{t.table.c[n]: v for n, v in p.match.items()}, **changes}
    if t.key not in row and p.key is not None and not t.key_generated:
        row[t.key] = p.key
    if t.key not in row and not t.key_generated:
        raise Problem("E420", f"field {t.key.name} is required by table {t.name} and is empty")
    for col in t.table.c:
        if t.required(col) and row.get(col) is None:
            raise Problem("E420", f"field {col.name} is required by table {t.name} and is empty")
    return _Op(p, {c.name: v for c, v in row.items()}, row.get(t.key), True)


def _columns(t: SqlTable, params: dict[str, Any]) -> tuple[str, ...]:
    """The names of the columns set, in table order: the group an operation belongs to."""
    return tuple(c.name for c in t.table.c if c.name in params)


_KEY = "_contactsync_row_key"  # the bound key of an UPDATE: not a column name


def _updating(t: SqlTable) -> sa.Update:
    """UPDATE by key; the columns set are the ones each parameter set names."""
    return sa.update(t.table).where(t.key == sa.bindparam(_KEY, type_=t.key.type))


def _run_inserts(conn: sa.Connection, t: SqlTable, names: tuple[str, ...], ops: list[_Op]) -> None:
    """INSERT the rows of one column set; a key the database assigns is read back in order."""
    insert = sa.insert(t.table)
    if t.key.name in names:  # the keys are known
        _run(conn, ops, insert, _params, None)
    elif conn.dialect.insert_executemany_returning:  # one statement, the keys in the items' order
        _run(conn, ops, insert.returning(t.key, sort_by_parameter_order=True), _params, _assign_keys)
    elif conn.dialect.insert_returning:
        _run(conn, ops, insert.returning(t.key), _params, _assign_keys, one_by_one=True)
    else:
        _run(conn, ops, insert, _params, _assign_inserted_keys(t), one_by_one=True)


def _params(op: _Op) -> dict[str, Any]:
    return op.params


def _assign_keys(ops: list[_Op], result: sa.CursorResult[Any]) -> None:
    for op, key in zip(ops, result.scalars().all(), strict=True):
        op.key = key


def _assign_inserted_keys(t: SqlTable) -> Callable[[list[_Op], sa.CursorResult[Any]], None]:
    def assign(ops: list[_Op], result: sa.CursorResult[Any]) -> None:
        [op] = ops
        inserted = result.inserted_primary_key
        if inserted is None or t.key.name not in inserted._fields:
            raise Problem("E422", f"the database did not return the new row's {t.key.name}")
        op.key = inserted._mapping[t.key.name]

    return assign


def _run(
    conn: sa.Connection,
    ops: list[_Op],
    stmt: sa.Executable,
    params: Callable[[_Op], dict[str, Any]],
    after: Callable[[list[_Op], sa.CursorResult[Any]], None] | None,
    *,
    one_by_one: bool = False,
) -> None:
    """Execute ``stmt`` for every operation at once (the driver's executemany), inside a
    SAVEPOINT. When the database refuses it, or a value cannot be bound, the SAVEPOINT is
    rolled back and each operation runs alone in its own, so only the refused rows fail."""
    if len(ops) > 1 and not one_by_one:
        try:
            with conn.begin_nested():
                result = conn.execute(stmt, [params(op) for op in ops])
                if after is not None:
                    after(ops, result)
            return
        except exc.DBAPIError as e:
            database.raise_if_transient(e)
        except exc.StatementError:
            pass
    for op in ops:
        try:
            with conn.begin_nested():
                result = conn.execute(stmt, params(op))
                if after is not None:
                    after([op], result)
        except Problem as p:
            op.item.problem = p.problem
        except exc.DBAPIError as e:
            op.item.problem = database.record_problem(e)
        except exc.StatementError as e:  # a value the driver cannot bind
            op.item.problem = RecordProblem("E424", database.error_text(e))


def _failed(p: _Item) -> WriteResult:
    return WriteResult(p.item.key, remote_id=p.item.remote_id, problem=p.problem)


def _read_back(conn: sa.Connection, t: SqlTable, ops: list[_Op]) -> dict[int, WriteResult]:
    """The rows as written, selected by key in one statement per chunk."""
    results = {}
    for start in range(0, len(ops), CHUNK):
        chunk = ops[start : start + CHUNK]
        rows = conn.execute(sa.select(t.table).where(t.key.in_([op.key for op in chunk]))).all()
        exact = {r._mapping[t.key]: r for r in rows}
        loose: dict[Any, list[Row]] = {}
        for r in rows:
            loose.setdefault(_loose(r._mapping[t.key]), []).append(r)
        for op in chunk:
            item = op.item.item
            row = exact.get(op.key)
            if row is None and len(loose.get(_loose(op.key), [])) == 1:
                row = loose[_loose(op.key)][0]
            if row is None:
                message = f"the row written to table {t.name} (key {op.key!r}) could not be read back"
                problem = RecordProblem("E422", message)
                results[op.item.index] = WriteResult(item.key, remote_id=item.remote_id, problem=problem)
                continue
            record = record_of(row, t)
            results[op.item.index] = WriteResult(
                item.key, remote_id=record.remote_id, created=op.created, record=record
            )
    return results


def _deleting(t: SqlTable, which: sa.ColumnElement[bool]) -> sa.Executable:
    """DELETE the rows, or mark the live ones deleted when the table has a soft-delete column."""
    live = t.live()
    if t.deleted is None or live is None:
        return sa.delete(t.table).where(which)
    changes: dict[sa.Column[Any], Any] = {t.deleted: values.deleted_marker(t.deleted)}
    if t.updated_at is not None:
        changes[t.updated_at] = values.now_for(t.updated_at)
    return sa.update(t.table).where(which, live).values(changes)
