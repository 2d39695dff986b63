"""Compile a parsed customer query (``hub.query``) to SQL, for SQLite and PostgreSQL.

JSON properties are read from the ``data`` document: ``json_extract`` on SQLite, the
``#>`` path operator on PostgreSQL (compared as JSONB, so numbers compare as numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from contactsync.hub.query import ARRAY_ATTRIBUTES, Atomic, Condition, Sort
from contactsync.store.tables import customers, subscriptions

_COLUMNS: dict[str, Any] = {
    "id": customers.c.id,
    "externalId": customers.c.external_id,
    "nodeId": customers.c.node_id,
    "enabled": customers.c.enabled,
    "registeredAt": customers.c.registered_at,
    "updatedAt": customers.c.updated_at,
}
_SUB_PREFIX = "base.subscriptions."


def compile_condition(cond: Condition, dialect: str) -> ColumnElement[bool]:
    if isinstance(cond, Atomic):
        if cond.attribute.startswith(_SUB_PREFIX):
            return _subscription_exists([cond])
        return _atomic(cond, dialect)
    if cond.conjunction == "not":
        return sa.not_(compile_condition(cond.items[0], dialect))
    if cond.conjunction == "or":
        return sa.or_(*(compile_condition(c, dialect) for c in cond.items))
    # "and": conditions on subscriptions must hold for the same subscription
    subs = [c for c in cond.items if isinstance(c, Atomic) and c.attribute.startswith(_SUB_PREFIX)]
    rest = [compile_condition(c, dialect) for c in cond.items if c not in subs]
    if subs:
        rest.append(_subscription_exists(subs))
    return sa.and_(*rest)


def _compare(expr: Any, op: str, value: Any, wrap: Any) -> ColumnElement[bool]:
    if op == "IS_NULL":
        return expr.is_(None)  # type: ignore[no-any-return]
    if op == "IS_NOT_NULL":
        return expr.is_not(None)  # type: ignore[no-any-return]
    if op in ("IN", "NOT_IN"):
        clause = expr.in_([wrap(v) for v in value])
        return sa.or_(clause, sa.false()) if op == "IN" else sa.or_(sa.not_(clause), expr.is_(None))
    if op == "BETWEEN":
        return sa.and_(expr >= wrap(value[0]), expr <= wrap(value[1]))
    v = wrap(value)
    if op == "EQUALS":
        return expr == v  # type: ignore[no-any-return]
    if op == "NOT_EQUALS":
        return sa.or_(expr != v, expr.is_(None))
    if op == "GT":
        return expr > v  # type: ignore[no-any-return]
    if op == "GTE":
        return expr >= v  # type: ignore[no-any-return]
    if op == "LT":
        return expr < v  # type: ignore[no-any-return]
    return expr <= v  # type: ignore[no-any-return]


def _atomic(cond: Atomic, dialect: str) -> ColumnElement[bool]:
    if cond.attribute in _COLUMNS:
        return _compare(_COLUMNS[cond.attribute], cond.operator, cond.value, lambda v: v)
    parts = cond.attribute.split(".")
    if cond.attribute in ARRAY_ATTRIBUTES:
        return _array(parts, cond, dialect)
    expr: Any
    if dialect == "postgresql":
        expr = customers.c.data.op("#>")(_pg_path(parts))
        return _compare(expr, cond.operator, cond.value, _jsonb)
    expr = sa.func.json_extract(customers.c.data, "$." + ".".join(parts))
    return _compare(expr, cond.operator, cond.value, _sqlite_value)


def _pg_path(parts: Sequence[str]) -> Any:
    return sa.literal(list(parts), postgresql.ARRAY(sa.Text))


def _jsonb(value: Any) -> Any:
    return sa.cast(sa.literal(orjson.dumps(value).decode()), postgresql.JSONB)


def _sqlite_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _array(parts: list[str], cond: Atomic, dialect: str) -> ColumnElement[bool]:
    """Tags: EQUALS / IN mean "contains", NOT_EQUALS / NOT_IN "does not contain"."""
    op = cond.operator
    values: Sequence[Any] = cond.value if isinstance(cond.value, tuple) else (cond.value,)
    if op in ("IS_NULL", "IS_NOT_NULL"):
        has_any = _contains_any(parts, None, dialect)
        return sa.not_(has_any) if op == "IS_NULL" else has_any
    found = _contains_any(parts, values, dialect)
    return found if op in ("EQUALS", "IN") else sa.not_(found)


def _contains_any(parts: list[str], values: Sequence[Any] | None, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        arr = customers.c.data.op("#>")(_pg_path(parts))
        if values is None:
            return sa.func.coalesce(sa.func.jsonb_array_length(arr), 0) > 0
        return sa.or_(*(arr.op("@>", is_comparison=True)(_jsonb([v])) for v in values))
    each = sa.func.json_each(customers.c.data, "$." + ".".join(parts)).table_valued("value")
    inner = sa.select(sa.literal(1)).select_from(each)
    if values is not None:
        inner = inner.where(each.c.value.in_(list(values)))
    return inner.exists()


def _subscription_exists(conds: list[Atomic]) -> ColumnElement[bool]:
    where: list[Any] = [subscriptions.c.customer_id == customers.c.id]
    for c in conds:
        field = c.attribute.removeprefix(_SUB_PREFIX)
        col = subscriptions.c.subscription_id if field == "id" else subscriptions.c.status
        where.append(_compare(col, c.operator, c.value, lambda v: v))
    return sa.select(sa.literal(1)).select_from(subscriptions).where(*where).exists()


def order_by(sort: Sort | None, dialect: str) -> list[Any]:
    if sort is None:
        return []  # the store orders by id last: ids are time-ordered, so registration order
    if sort.attribute in _COLUMNS:
        expr: Any = _COLUMNS[sort.attribute]
    elif dialect == "postgresql":
        expr = customers.c.data.op("#>")(_pg_path(sort.attribute.split(".")))
    else:
        expr = sa.func.json_extract(customers.c.data, "$." + sort.attribute)
    return [expr.desc() if sort.descending else expr.asc()]


def find_ids_by_path(
    conn: Any, node_id: str, path: str, values: Sequence[Any], *, lower: bool
) -> list[tuple[str, Any]]:
    """(customer id, value) of a node's customers whose property ``path`` is one of ``values``
    (compared lower-cased when ``lower``): a scan of the node, for match keys without an index."""
    dialect = conn.dialect.name
    parts = path.split(".")
    expr: Any
    if path == "externalId":
        expr = customers.c.external_id
    elif dialect == "postgresql":
        expr = customers.c.data.op("#>>", return_type=sa.Text)(_pg_path(parts))
    else:
        expr = sa.func.json_extract(customers.c.data, "$." + ".".join(parts))
    if lower:
        expr = sa.func.lower(sa.func.trim(expr))
    query = sa.select(customers.c.id, expr.label("value")).where(
        customers.c.node_id == node_id, expr.in_(list(values))
    )
    return [(r.id, r.value) for r in conn.execute(query)]
