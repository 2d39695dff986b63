"""Named queries: exchange jobs, their runs, processed files and failed rows, and the reads of
the node that the displacer and the exporter stream out."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from contactsync.store.exchange_tables import (
    exchange_failed_rows,
    exchange_files,
    exchange_jobs,
    exchange_runs,
)
from contactsync.store.tables import customers, events, subscriptions

# --- jobs ----------------------------------------------------------------------------------------


def insert_job(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(exchange_jobs.insert().values(**values))


def update_job(conn: Connection, job_id: str, values: dict[str, Any]) -> None:
    conn.execute(exchange_jobs.update().where(exchange_jobs.c.id == job_id).values(**values))


def get_job(conn: Connection, workspace_id: str, ref: str) -> Row[Any] | None:
    """A job of the workspace by id or by name."""
    query = sa.select(exchange_jobs).where(
        exchange_jobs.c.workspace_id == workspace_id,
        sa.or_(exchange_jobs.c.id == ref, exchange_jobs.c.name == ref),
    )
    return conn.execute(query.order_by(exchange_jobs.c.id)).first()


def get_job_by_id(conn: Connection, job_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(exchange_jobs).where(exchange_jobs.c.id == job_id)).first()


def list_jobs(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = sa.select(exchange_jobs).where(exchange_jobs.c.workspace_id == workspace_id)
    return conn.execute(query.order_by(exchange_jobs.c.name)).all()


def delete_job(conn: Connection, job_id: str) -> None:
    runs = sa.select(exchange_runs.c.id).where(exchange_runs.c.job_id == job_id)
    conn.execute(exchange_failed_rows.delete().where(exchange_failed_rows.c.run_id.in_(runs)))
    conn.execute(exchange_runs.delete().where(exchange_runs.c.job_id == job_id))
    conn.execute(exchange_files.delete().where(exchange_files.c.job_id == job_id))
    conn.execute(exchange_jobs.delete().where(exchange_jobs.c.id == job_id))


def lock_job(conn: Connection, job_id: str) -> None:
    """Serialise run starts of one job (SQLite's write transaction already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(exchange_jobs.c.id).where(exchange_jobs.c.id == job_id).with_for_update())


# --- runs ----------------------------------------------------------------------------------------


def insert_run(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(exchange_runs.insert().values(**values))


def update_run(conn: Connection, run_id: str, values: dict[str, Any]) -> None:
    conn.execute(exchange_runs.update().where(exchange_runs.c.id == run_id).values(**values))


def get_run(conn: Connection, run_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(exchange_runs).where(exchange_runs.c.id == run_id)).first()


def running_runs(conn: Connection, job_id: str) -> Sequence[Row[Any]]:
    query = sa.select(exchange_runs).where(
        exchange_runs.c.job_id == job_id, exchange_runs.c.status == "running"
    )
    return conn.execute(query).all()


def list_runs(conn: Connection, job_id: str, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(exchange_runs)
        .where(exchange_runs.c.job_id == job_id)
        .order_by(exchange_runs.c.started_at.desc(), exchange_runs.c.id.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


def resumable_run(
    conn: Connection, job_id: str, checksum: str | None, statuses: Sequence[str]
) -> Row[Any] | None:
    """The latest unfinished run of the job on the same input (same checksum; None: a database),
    with committed progress, that no run resumed yet."""
    same_input = (
        exchange_runs.c.checksum.is_(None) if checksum is None else exchange_runs.c.checksum == checksum
    )
    query = (
        sa.select(exchange_runs)
        .where(
            exchange_runs.c.job_id == job_id,
            same_input,
            exchange_runs.c.status.in_(list(statuses)),
            exchange_runs.c.progress > 0,
            exchange_runs.c.resumed_by.is_(None),
        )
        .order_by(exchange_runs.c.started_at.desc(), exchange_runs.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


# --- processed files -----------------------------------------------------------------------------


def processed_file(conn: Connection, job_id: str, checksum: str) -> Row[Any] | None:
    query = sa.select(exchange_files).where(
        exchange_files.c.job_id == job_id, exchange_files.c.checksum == checksum
    )
    return conn.execute(query).first()


def mark_processed(conn: Connection, values: dict[str, Any]) -> None:
    """Remember a processed file (a forced re-run of the same content updates the entry)."""
    conn.execute(
        exchange_files.delete().where(
            exchange_files.c.job_id == values["job_id"], exchange_files.c.checksum == values["checksum"]
        )
    )
    conn.execute(exchange_files.insert().values(**values))


# --- failed rows ---------------------------------------------------------------------------------


def insert_failed_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(exchange_failed_rows.insert(), list(rows))


def copy_failed_rows(conn: Connection, from_run: str, to_run: str) -> None:
    cols = ("row_number", "code", "message", "raw")
    source = sa.select(sa.literal(to_run, sa.String(36)), *(exchange_failed_rows.c[c] for c in cols)).where(
        exchange_failed_rows.c.run_id == from_run
    )
    conn.execute(exchange_failed_rows.insert().from_select(["run_id", *cols], source))


def failed_rows_page(conn: Connection, run_id: str, *, after_id: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(exchange_failed_rows)
        .where(exchange_failed_rows.c.run_id == run_id, exchange_failed_rows.c.id > after_id)
        .order_by(exchange_failed_rows.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def failed_codes(conn: Connection, run_id: str) -> list[tuple[str, int]]:
    """How many failed rows of the run each code has, most frequent first."""
    n = sa.func.count().label("n")
    query = (
        sa.select(exchange_failed_rows.c.code, n)
        .where(exchange_failed_rows.c.run_id == run_id)
        .group_by(exchange_failed_rows.c.code)
        .order_by(n.desc(), exchange_failed_rows.c.code)
    )
    return [(row.code, int(row.n)) for row in conn.execute(query)]


# --- reads of the node ---------------------------------------------------------------------------


def iter_node_keys(conn: Connection, node_id: str) -> Iterator[Any]:
    """(id, match_key) of every customer of a node, streamed."""
    query = (
        sa.select(customers.c.id, customers.c.match_key)
        .where(customers.c.node_id == node_id)
        .execution_options(yield_per=10_000)
    )
    yield from conn.execute(query)


def _of_nodes(conn: Connection, node_ids: Sequence[str]) -> Any:
    """The condition "a customer of these nodes" for a read of all their customers.

    On SQLite an index on node_id would walk the customers in that index's order (the console's
    last-name index, say), a random read of the table; when the nodes hold at least half of the
    table, the condition is written so that no index serves it (``+node_id``), and the read is
    one sequential scan of the table: a quarter faster at a million customers. PostgreSQL's
    planner makes that choice itself from its statistics."""
    ids = list(node_ids)
    if conn.dialect.name != "sqlite":
        return customers.c.node_id.in_(ids)
    # rowids grow with each insert: the largest is about the table's size, found in no time
    half = (
        conn.execute(sa.select(sa.func.max(sa.literal_column("rowid"))).select_from(customers)).scalar() or 0
    ) // 2
    some = sa.select(sa.literal(1)).select_from(customers).where(customers.c.node_id.in_(ids)).limit(half)
    held = conn.execute(sa.select(sa.func.count()).select_from(some.subquery())).scalar_one()
    if held < half:
        return customers.c.node_id.in_(ids)
    return sa.literal_column(f"+{customers.name}.{customers.c.node_id.name}", sa.String(36)).in_(ids)


#: what the displacer reads of a customer
_CUSTOMER_ROW = (
    customers.c.id,
    customers.c.node_id,
    customers.c.external_id,
    customers.c.enabled,
    customers.c.registered_at,
    customers.c.updated_at,
    customers.c.data,
)


def _customer_window(
    conn: Connection, node_ids: Sequence[str], changed_from: int | None, changed_to: int | None
) -> list[Any]:
    """The conditions for the customers of the nodes, changed in the window when one is given."""
    conds: list[Any] = [_of_nodes(conn, node_ids)]
    if changed_from is not None:
        conds.append(customers.c.updated_at >= changed_from)
    if changed_to is not None:
        conds.append(customers.c.updated_at < changed_to)
    return conds


def iter_customers(
    conn: Connection, node_ids: Sequence[str], *, changed_from: int | None, changed_to: int | None
) -> Iterator[Any]:
    """The customers of the nodes, optionally changed in a window, in storage order: no ORDER BY,
    so the database streams one sequential scan (sorting a whole node held it in memory, and
    walking an index made random reads)."""
    query = (
        sa.select(*_CUSTOMER_ROW)
        .where(*_customer_window(conn, node_ids, changed_from, changed_to))
        .execution_options(yield_per=5000)
    )
    yield from conn.execute(query)


#: a property key the document-value read can name in a JSON path without quoting
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _document_values(conn: Connection, paths: Sequence[Sequence[str]]) -> Any:
    """One JSON array text of the document's values at ``paths`` (null where absent): one
    parse of the document per row, however many paths."""
    if not all(PLAIN_KEY.fullmatch(key) for path in paths for key in path):
        raise ValueError(f"not plain property paths: {paths!r}")
    data = customers.c.data
    if conn.dialect.name == "postgresql":
        values = [sa.func.jsonb_extract_path(data, *path) for path in paths]
        return sa.cast(sa.func.jsonb_build_array(*values), sa.Text)
    json_paths = ["$." + ".".join(path) for path in paths]
    if len(json_paths) == 1:  # json_extract of one path returns the value itself, not an array
        return sa.func.json_array(sa.func.json_extract(data, json_paths[0]))
    return sa.func.json_extract(data, *json_paths)


def iter_customer_values(
    conn: Connection,
    node_ids: Sequence[str],
    columns: Sequence[str],
    paths: Sequence[Sequence[str]],
    *,
    changed_from: int | None,
    changed_to: int | None,
) -> Iterator[Sequence[Sequence[Any]]]:
    """The customers of :func:`iter_customers`, in batches, as rows of the customers ``columns``
    followed, when ``paths`` are given, by one JSON array text of the document's values at those
    paths (keys matching :data:`PLAIN_KEY`): the database picks the values out of each document,
    so the caller decodes a few values instead of whole documents."""
    selected = [customers.c[name] for name in columns]
    if paths:
        selected.append(_document_values(conn, paths).label("document_values"))
    window = _customer_window(conn, node_ids, changed_from, changed_to)
    query = sa.select(*selected).where(*window).execution_options(yield_per=5000)
    yield from conn.execute(query).partitions()


def iter_subscription_rows(
    conn: Connection,
    node_ids: Sequence[str],
    *,
    included: Sequence[str],
    excluded: Sequence[str],
    statuses: Sequence[str],
    reasons_included: Sequence[str],
    reasons_excluded: Sequence[str],
    changed_from: int | None,
    changed_to: int | None,
) -> Iterator[Any]:
    """One row per subscription that passes the filters, with its customer, by customer id."""
    s, c = subscriptions, customers
    conds: list[Any] = [s.c.node_id.in_(list(node_ids))]
    if included:
        conds.append(s.c.subscription_id.in_(list(included)))
    if excluded:
        conds.append(s.c.subscription_id.not_in(list(excluded)))
    if statuses:
        conds.append(s.c.status.in_(list(statuses)))
    if reasons_included:
        conds.append(s.c.reason.in_(list(reasons_included)))
    if reasons_excluded:
        conds.append(sa.or_(s.c.reason.is_(None), s.c.reason.not_in(list(reasons_excluded))))
    if changed_from is not None:
        conds.append(s.c.updated_at >= changed_from)
    if changed_to is not None:
        conds.append(s.c.updated_at < changed_to)
    query = (
        sa.select(
            *_CUSTOMER_ROW,
            s.c.subscription_id.label("sub_id"),
            s.c.status.label("sub_status"),
            s.c.reason.label("sub_reason"),
            s.c.opted_out_at.label("sub_opted_out_at"),
            s.c.registered_at.label("sub_registered_at"),
            s.c.updated_at.label("sub_updated_at"),
            s.c.attributes.label("sub_attributes"),
        )
        .select_from(s.join(c, c.c.id == s.c.customer_id))
        .where(*conds)
        .order_by(s.c.customer_id, s.c.subscription_id)  # the subscriptions' primary key: no sort
        .execution_options(yield_per=5000)
    )
    yield from conn.execute(query)


def _event_property(conn: Connection, name: str) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.cast(events.c.data, postgresql.JSONB)["properties"][name].astext
    return sa.func.json_extract(events.c.data, f"$.properties.{name}")


def iter_feedback(
    conn: Connection,
    workspace_id: str,
    node_ids: Sequence[str],
    types: Sequence[str],
    *,
    date_from: int | None,
    date_to: int | None,
) -> Iterator[Any]:
    """Counts of campaign events per customer, campaign and type in a period, customer order."""
    campaign_id = _event_property(conn, "campaignId").label("campaign_id")
    campaign_name = sa.func.max(_event_property(conn, "campaignName")).label("campaign_name")
    conds: list[Any] = [
        events.c.workspace_id == workspace_id,
        events.c.node_id.in_(list(node_ids)),
        events.c.type.in_(list(types)),
        events.c.customer_id.is_not(None),
    ]
    if date_from is not None:
        conds.append(events.c.date >= date_from)
    if date_to is not None:
        conds.append(events.c.date < date_to)
    grouped = (
        sa.select(
            events.c.customer_id,
            campaign_id,
            events.c.type,
            campaign_name,
            sa.func.count().label("n"),
        )
        .where(*conds)
        .group_by(events.c.customer_id, campaign_id, events.c.type)
        .subquery()
    )
    query = (
        sa.select(
            grouped,
            customers.c.external_id,
            customers.c.data,
        )
        .select_from(grouped.outerjoin(customers, customers.c.id == grouped.c.customer_id))
        .order_by(grouped.c.customer_id, grouped.c.campaign_id, grouped.c.type)
        .execution_options(yield_per=5000)
    )
    yield from conn.execute(query)
