"""Finding a source's links by the address their base holds (a provider event that names a
record by its address): right links, case-insensitively, through an index for the email."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from contactsync.secrets import SecretBox, new_key
from contactsync.store import sync as sync_store
from contactsync.store.db import Database
from contactsync.store.tables import links
from contactsync.sync import sources
from contactsync.sync.runs import SyncEnv
from tests.conftest import Hub

N = 300


@pytest.fixture
def source_id(hub: Hub) -> str:
    spec = {
        "name": "audience",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": f"links-{hub.workspace_id}"},
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.contacts.mobilePhone", "provider": "phone"},
            ],
            "match_keys": ["base.contacts.email"],
        },
    }
    source = sources.create_source(SyncEnv(hub.db, SecretBox([new_key().encode()])), hub.workspace_id, spec)
    base = {"f": {}, "s": {}}
    rows = [
        {
            "source_id": source.id,
            "customer_id": f"c{i:04d}",
            "remote_id": f"r{i:04d}",
            "base": orjson.dumps(
                {
                    **base,
                    "f": {
                        "base.contacts.email": f"Person{i}@Example.com",
                        "base.contacts.mobilePhone": f"+39{i}",
                    },
                }
            ).decode(),
            "synced_at": 1,
        }
        for i in range(N)
    ]
    with hub.db.write() as conn:
        conn.execute(links.insert(), rows)
    return source.id


def test_links_are_found_by_address_case_insensitively_or_by_remote_id(hub: Hub, source_id: str) -> None:
    with hub.db.read() as conn:
        found = sync_store.links_by_remote_or_base(
            conn, source_id, ["r0007"], "base.contacts.email", ["person12@example.com", "nobody@example.com"]
        )
        assert sorted(r.customer_id for r in found) == ["c0007", "c0012"]
        by_phone = sync_store.links_by_remote_or_base(
            conn, source_id, [], "base.contacts.mobilePhone", ["+3942"]
        )
        assert [r.customer_id for r in by_phone] == ["c0042"]
        assert (
            sync_store.links_by_remote_or_base(conn, "another-source", ["r0007"], "base.contacts.email", [])
            == []
        )


def _plan(db: Database, source_id: str) -> str:
    with db.read() as conn:
        expr = sync_store._base_text(conn, "base.contacts.email")
        query = sa.select(links.c.customer_id).where(
            links.c.source_id == source_id, expr.in_(["person12@example.com"])
        )
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: make the choice plain
            return " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
        return " ".join(str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))


def test_the_address_lookup_reads_the_email_index(hub: Hub, source_id: str) -> None:
    assert "ix_links_source_id_email" in _plan(hub.db, source_id)
