"""Named queries: sources, links, retries, runs and run records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import links, run_records, runs, sources, sync_retries

# --- sources ---------------------------------------------------------------------------------


def insert_source(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sources.insert().values(**values))


def update_source(conn: Connection, source_id: str, values: dict[str, Any]) -> None:
    conn.execute(sources.update().where(sources.c.id == source_id).values(**values))


def get_source(conn: Connection, workspace_id: str, ref: str) -> Row[Any] | None:
    """A source by id or by name."""
    query = sa.select(sources).where(
        sources.c.workspace_id == workspace_id, sa.or_(sources.c.id == ref, sources.c.name == ref)
    )
    return conn.execute(query).first()


def get_source_by_id(conn: Connection, source_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(sources).where(sources.c.id == source_id)).first()


def lock_source(conn: Connection, source_id: str) -> None:
    """Serialise run starts of one source (SQLite's write transaction already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sources.c.id).where(sources.c.id == source_id).with_for_update())


def list_sources(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = sa.select(sources).where(sources.c.workspace_id == workspace_id).order_by(sources.c.name)
    return conn.execute(query).all()


def all_sources(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(sa.select(sources).order_by(sources.c.created_at)).all()


def source_for_node(conn: Connection, node_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(sources).where(sources.c.node_id == node_id)).first()


def source_for_user_db(conn: Connection, provider: str, user_db: str) -> Row[Any] | None:
    query = sa.select(sources).where(sources.c.provider == provider, sources.c.user_db == user_db)
    return conn.execute(query).first()


def delete_source(conn: Connection, source_id: str) -> None:
    conn.execute(
        run_records.delete().where(
            run_records.c.run_id.in_(sa.select(runs.c.id).where(runs.c.source_id == source_id))
        )
    )
    for t in (runs, links, sync_retries):
        conn.execute(t.delete().where(t.c.source_id == source_id))
    conn.execute(sources.delete().where(sources.c.id == source_id))


# --- links -----------------------------------------------------------------------------------


def links_by_remote(conn: Connection, source_id: str, remote_ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not remote_ids:
        return {}
    query = sa.select(links).where(links.c.source_id == source_id, links.c.remote_id.in_(list(remote_ids)))
    return {r.remote_id: r for r in conn.execute(query)}


def links_by_customer(conn: Connection, source_id: str, customer_ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not customer_ids:
        return {}
    query = sa.select(links).where(
        links.c.source_id == source_id, links.c.customer_id.in_(list(customer_ids))
    )
    return {r.customer_id: r for r in conn.execute(query)}


def links_by_remote_or_base(
    conn: Connection, source_id: str, remote_ids: Sequence[str], path: str | None, values: Sequence[str]
) -> list[Row[Any]]:
    """Links whose remote id is one of ``remote_ids``, or whose base holds one of ``values`` at
    hub path ``path`` (compared lower-cased: ``values`` are given lower-cased), in one query.

    How a provider event that names a record by another key than its remote id (Mailchimp: the
    address) finds the link of a record the provider no longer has. The base is the link's
    JSON ``{"f": {hub path: value}, "s": …}``; for ``base.contacts.email`` the value match
    reads a range of ``ix_links_source_id_email``, for another path every link of the source.
    """
    conds: list[sa.ColumnElement[bool]] = []
    if remote_ids:
        conds.append(links.c.remote_id.in_(list(remote_ids)))
    if path and values:
        conds.append(_base_text(conn, path).in_(list(values)))
    if not conds:
        return []
    query = sa.select(links).where(links.c.source_id == source_id, sa.or_(*conds))
    return list(conn.execute(query).all())


#: the expression of migration 0008's index on links, per dialect: the query names it word for word
_EMAIL_TEXT = {
    "sqlite": "lower(json_extract(links.base, '$.f.\"base.contacts.email\"'))",
    "postgresql": "lower(links.base::jsonb #>> '{f,base.contacts.email}')",
}


def _base_text(conn: Connection, path: str) -> sa.ColumnElement[Any]:
    """The lower-cased value of a link's base at hub path ``path``."""
    if path == "base.contacts.email":
        return sa.literal_column(_EMAIL_TEXT[conn.dialect.name])
    text: sa.ColumnElement[str]
    if conn.dialect.name == "postgresql":
        keys = sa.literal(["f", path], postgresql.ARRAY(sa.Text))
        text = sa.cast(links.c.base, postgresql.JSONB).op("#>>", return_type=sa.Text)(keys)
    else:
        text = sa.func.json_extract(links.c.base, f'$.f."{path}"')
    return sa.func.lower(text)


def upsert_links(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace links (by source + customer); a remote id moves with its customer."""
    if not rows:
        return
    source_id = rows[0]["source_id"]
    conn.execute(
        links.delete().where(
            links.c.source_id == source_id,
            sa.or_(
                links.c.customer_id.in_([r["customer_id"] for r in rows]),
                links.c.remote_id.in_([r["remote_id"] for r in rows]),
            ),
        )
    )
    conn.execute(links.insert(), list(rows))


def delete_links(conn: Connection, source_id: str, customer_ids: Sequence[str]) -> None:
    if customer_ids:
        conn.execute(
            links.delete().where(links.c.source_id == source_id, links.c.customer_id.in_(list(customer_ids)))
        )


def drop_links(conn: Connection, source_id: str) -> None:
    """Forget every link and retry of a source (its node or user DB changed)."""
    conn.execute(links.delete().where(links.c.source_id == source_id))
    conn.execute(sync_retries.delete().where(sync_retries.c.source_id == source_id))


def count_links(conn: Connection, source_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(links).where(links.c.source_id == source_id)
    return int(conn.execute(query).scalar_one())


# --- retries ---------------------------------------------------------------------------------


def retry_ids(conn: Connection, source_id: str, limit: int) -> list[str]:
    query = (
        sa.select(sync_retries.c.customer_id)
        .where(sync_retries.c.source_id == source_id)
        .order_by(sync_retries.c.customer_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def set_retries(conn: Connection, source_id: str, failed: dict[str, str], done: Sequence[str]) -> None:
    """Remember customers whose provider write failed (id → code), counting the attempts;
    forget those that went through."""
    ids = list(failed) + list(done)
    if not ids:
        return
    where = (sync_retries.c.source_id == source_id, sync_retries.c.customer_id.in_(ids))
    attempts = dict(
        conn.execute(sa.select(sync_retries.c.customer_id, sync_retries.c.attempts).where(*where)).all()
    )
    conn.execute(sync_retries.delete().where(*where))
    if failed:
        conn.execute(
            sync_retries.insert(),
            [
                {"source_id": source_id, "customer_id": c, "code": code, "attempts": attempts.get(c, 0) + 1}
                for c, code in failed.items()
            ],
        )


# --- runs ------------------------------------------------------------------------------------


def insert_run(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(runs.insert().values(**values))


def update_run(conn: Connection, run_id: str, values: dict[str, Any]) -> None:
    conn.execute(runs.update().where(runs.c.id == run_id).values(**values))


def running_runs(conn: Connection, source_id: str) -> Sequence[Row[Any]]:
    query = sa.select(runs).where(runs.c.source_id == source_id, runs.c.status == "running")
    return conn.execute(query).all()


def get_run(conn: Connection, run_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()


def list_runs(conn: Connection, source_id: str, limit: int) -> Sequence[Row[Any]]:
    query = (
        sa.select(runs)
        .where(runs.c.source_id == source_id)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


def insert_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(run_records.insert(), list(rows))


def run_records_page(
    conn: Connection, run_id: str, *, after_id: int, limit: int, action: str | None = None
) -> Sequence[Row[Any]]:
    conds = [run_records.c.run_id == run_id, run_records.c.id > after_id]
    if action:
        conds.append(run_records.c.action == action)
    query = sa.select(run_records).where(*conds).order_by(run_records.c.id).limit(limit)
    return conn.execute(query).all()
