"""The displacer: a node's customers (or their subscriptions) → rows of a file, with filters.

The job's ``mapping`` names the output columns (column → property path, in order). Paths are
the customer's (``id``, ``externalId``, ``base.contacts.email``, ``extended.x``, ``tags.manual``,
``registeredAt``, ``updatedAt``, ``subscriptions.<id>`` = that subscription's status) and, with
``rows: subscription`` (one row per subscription that passes the filters), the
subscription's: ``subscription.id``, ``.status``, ``.reason``, ``.updatedAt``, ``.registeredAt``,
``.optedOutAt``, ``.name``.

Filters: subscription systems included / excluded, statuses, unsubscribe reasons included /
excluded, and changed (``all``, ``previous_day`` in the job's time zone, or ``since`` a date).
With ``rows: customer`` a customer is written when one of its subscriptions passes the
subscription filters (if any is set) and none of them is an excluded system.

Speed: with ``rows: customer``, no subscription filter and no subscription column (the
common export), the database picks the mapped values out of each document in the same read
(:func:`plan_read`), so Python decodes a short JSON array per customer, not the document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson

from contactsync.exchange.jobs import DisplacerOptions, Job
from contactsync.exchange.periods import day_window, parse_local, zone
from contactsync.hub.times import format_time
from contactsync.hub.workspaces import Node
from contactsync.store import exchange as store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

DEFAULT_COLUMNS = {
    "id": "id",
    "external_id": "externalId",
    "email": "base.contacts.email",
    "first_name": "base.firstName",
    "last_name": "base.lastName",
    "updated_at": "updatedAt",
}
_CUSTOMER_TOP = {"id", "externalId", "registeredAt", "updatedAt", "enabled", "nodeId"}
_SUB_FIELDS = {
    "id": "sub_id",
    "status": "sub_status",
    "reason": "sub_reason",
    "updatedAt": "sub_updated_at",
    "registeredAt": "sub_registered_at",
    "optedOutAt": "sub_opted_out_at",
}
CHUNK = 2000
#: document paths one database read picks out (PostgreSQL functions take at most 100 arguments)
MAX_READ_PATHS = 90

Getter = Callable[[Any, dict[str, Any], dict[str, Any]], Any]  # (row, data, subscriptions by id)


_EMPTY: dict[str, Any] = {}


@lru_cache(maxsize=8192)
def _time(ms: int | None) -> str | None:
    """:func:`format_time`, remembered: the customers of one bulk load share their times."""
    return format_time(ms)


def cell(value: Any) -> Any:
    """A value as a file cell: lists joined with ``;``, objects as JSON."""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


def _getter(path: str) -> Getter:
    head, _, rest = path.partition(".")
    if path == "id":
        return lambda row, _d, _s: row.id
    if path == "externalId":
        return lambda row, _d, _s: row.external_id
    if path == "nodeId":
        return lambda row, _d, _s: row.node_id
    if path == "enabled":
        return lambda row, _d, _s: bool(row.enabled)
    if path == "registeredAt":
        return lambda row, _d, _s: _time(row.registered_at)
    if path == "updatedAt":
        return lambda row, _d, _s: _time(row.updated_at)
    if head == "subscription":
        if rest == "name":
            return lambda row, _d, _s: orjson.loads(row.sub_attributes).get("name")
        column = _SUB_FIELDS.get(rest, "")
        if column.endswith("_at"):
            return lambda row, _d, _s: _time(getattr(row, column))
        return lambda row, _d, _s: getattr(row, column, None)
    if head == "subscriptions":
        return lambda _r, _d, subs: subs[rest].status if rest in subs else None
    parts = path.split(".")
    if len(parts) == 2:
        first, second = parts

        def two(_row: Any, data: dict[str, Any], _s: dict[str, Any]) -> Any:
            try:
                value = data.get(first, _EMPTY).get(second)
            except AttributeError:  # not an object on the way
                return None
            return value if type(value) is str else cell(value)

        return two
    if len(parts) == 3:
        first, second, third = parts

        def three(_row: Any, data: dict[str, Any], _s: dict[str, Any]) -> Any:
            try:
                value = data.get(first, _EMPTY).get(second, _EMPTY).get(third)
            except AttributeError:
                return None
            return value if type(value) is str else cell(value)

        return three

    def nested(_row: Any, data: dict[str, Any], _s: dict[str, Any]) -> Any:
        value: Any = data
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return cell(value)

    return nested


#: the customer's properties held in columns of their own
_COLUMNS = {
    "id": "id",
    "externalId": "external_id",
    "nodeId": "node_id",
    "enabled": "enabled",
    "registeredAt": "registered_at",
    "updatedAt": "updated_at",
}
#: how the columns that do not show as they are show
_SHOW: dict[str, Callable[[Any], Any]] = {"enabled": bool, "registered_at": _time, "updated_at": _time}

RowMaker = Callable[[Sequence[Any]], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class CustomerRead:
    """What to read of each customer for the output paths (:func:`store.iter_customer_values`)
    and how a read row becomes an output row: the database picks the values out of the
    documents, so no whole document is decoded here."""

    columns: list[str]
    paths: list[tuple[str, ...]]
    make: RowMaker


def plan_read(paths: Sequence[str]) -> CustomerRead | None:
    """The read for these output paths of ``rows: customer``, or None when one needs more than
    the customer (a subscription) or names a key that is not a plain name."""
    columns: list[str] = []
    doc_paths: list[tuple[str, ...]] = []
    for path in paths:
        if path in _COLUMNS:
            if _COLUMNS[path] not in columns:
                columns.append(_COLUMNS[path])
            continue
        keys = tuple(path.split("."))
        if keys[0] in ("subscription", "subscriptions") or not all(
            store.PLAIN_KEY.fullmatch(k) for k in keys
        ):
            return None
        if keys not in doc_paths:
            doc_paths.append(keys)
    if len(doc_paths) > MAX_READ_PATHS:
        return None
    # a read row r, (*columns, [document values as one JSON text]), becomes
    # (*r, *shown columns, *document values), from which the output row is picked
    shown = [c for c in columns if c in _SHOW]
    width = len(columns) + (1 if doc_paths else 0)
    where = {c: (width + shown.index(c) if c in _SHOW else columns.index(c)) for c in columns}
    first_value = width + len(shown)
    indexes = [
        where[_COLUMNS[path]] if path in _COLUMNS else first_value + doc_paths.index(tuple(path.split(".")))
        for path in paths
    ]
    show = [(columns.index(c), _SHOW[c]) for c in shown]
    return CustomerRead(columns, doc_paths, _maker(indexes, show, bool(doc_paths)))


def _maker(indexes: list[int], show: list[tuple[int, Callable[[Any], Any]]], values: bool) -> RowMaker:
    """The function of a read row r → the output row, the ``indexes`` of (*r, *shown columns,
    *document values): one expression per row, the cases spelled out for speed."""
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    if len(indexes) == 1:
        only = indexes[0]

        def pick(t: tuple[Any, ...]) -> tuple[Any, ...]:  # itemgetter of one index returns no tuple
            return (t[only],)
    else:
        pick = itemgetter(*indexes)
    cells = _document_cells
    if not show:
        if not values:
            return lambda r: pick(tuple(r))
        return lambda r: pick((*r, *cells(r[-1])))
    if len(show) == 1:
        [(i, f)] = show
        if not values:
            return lambda r: pick((*r, f(r[i])))
        return lambda r: pick((*r, f(r[i]), *cells(r[-1])))
    if not values:
        return lambda r: pick((*r, *[f(r[i]) for i, f in show]))
    return lambda r: pick((*r, *[f(r[i]) for i, f in show], *cells(r[-1])))


def _document_cells(text: str) -> list[Any]:
    """The document values of a read row (a JSON array) as cells: only lists and objects change,
    so a text with no bracket or brace inside needs no look at each value."""
    values: list[Any] = orjson.loads(text)
    if "{" not in text and text.find("[", 1) < 0:
        return values
    return [v if type(v) is str else cell(v) for v in values]


def columns_of(job: Job) -> dict[str, str]:
    return dict(job.spec.mapping) or dict(DEFAULT_COLUMNS)


def window(options: DisplacerOptions, tz_name: str, now_ms: int) -> tuple[int | None, int | None]:
    tz = zone(tz_name)
    assert tz is not None  # checked when the job was saved
    if options.changed == "previous_day":
        return day_window(now_ms, tz)
    if options.changed == "since" and options.changed_since:
        return parse_local(options.changed_since, tz), None
    return None, None


def rows(db: Database, job: Job, node: Node, now_ms: int) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """The output columns and the rows, streamed from one read transaction."""
    options: DisplacerOptions = job.options()
    mapping = columns_of(job)
    getters = [_getter(path) for path in mapping.values()]
    needs_subs = any(path.startswith("subscriptions.") for path in mapping.values())
    start, end = window(options, job.spec.timezone, now_ms)
    node_ids = [node.id, *node.members]
    filtered = bool(
        options.subscriptions_included
        or options.subscriptions_excluded
        or options.statuses
        or options.reasons_included
        or options.reasons_excluded
    )
    plan = plan_read(list(mapping.values())) if options.rows == "customer" and not filtered else None

    def produce() -> Iterator[Sequence[Any]]:
        with db.read() as conn:
            if plan is not None:  # no filter on subscriptions: one read of the values needed
                parts = store.iter_customer_values(
                    conn, node_ids, plan.columns, plan.paths, changed_from=start, changed_to=end
                )
                for part in parts:
                    yield from map(plan.make, part)
                return
            if options.rows == "subscription":
                source = store.iter_subscription_rows(
                    conn,
                    node_ids,
                    included=options.subscriptions_included,
                    excluded=options.subscriptions_excluded,
                    statuses=[s.value for s in options.statuses],
                    reasons_included=options.reasons_included,
                    reasons_excluded=options.reasons_excluded,
                    changed_from=start,
                    changed_to=end,
                )
                for row in source:
                    data = orjson.loads(row.data)
                    yield tuple([get(row, data, _EMPTY) for get in getters])
                return
            batch: list[Any] = []
            for row in store.iter_customers(conn, node_ids, changed_from=start, changed_to=end):
                batch.append(row)
                if len(batch) == CHUNK:
                    yield from _customer_rows(conn, batch, getters, options, filtered or needs_subs, filtered)
                    batch = []
            yield from _customer_rows(conn, batch, getters, options, filtered or needs_subs, filtered)

    return list(mapping), produce()


def _passes(sub: Any, options: DisplacerOptions) -> bool:
    if options.subscriptions_included and sub.subscription_id not in options.subscriptions_included:
        return False
    if options.subscriptions_excluded and sub.subscription_id in options.subscriptions_excluded:
        return False
    if options.statuses and sub.status not in options.statuses:
        return False
    if options.reasons_included and sub.reason not in options.reasons_included:
        return False
    return not (options.reasons_excluded and sub.reason in options.reasons_excluded)


def _customer_rows(
    conn: Any,
    batch: Sequence[Any],
    getters: list[Getter],
    options: DisplacerOptions,
    load_subs: bool,
    filtered: bool,
) -> Iterator[tuple[Any, ...]]:
    subs = sub_store.for_customers(conn, [r.id for r in batch]) if load_subs else {}
    loads = orjson.loads
    if not load_subs:  # the common case: no subscription column, no filter
        for row in batch:
            data = loads(row.data)
            yield tuple([get(row, data, _EMPTY) for get in getters])
        return
    for row in batch:
        own = subs.get(row.id, [])
        if filtered:
            if any(s.subscription_id in options.subscriptions_excluded for s in own):
                continue
            positive = (
                options.subscriptions_included
                or options.statuses
                or options.reasons_included
                or options.reasons_excluded
            )
            if positive and not any(_passes(s, options) for s in own):
                continue
        by_id = {s.subscription_id: s for s in own}
        data = loads(row.data)
        yield tuple([get(row, data, by_id) for get in getters])
