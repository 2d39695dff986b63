"""Benchmark: a sync run whose cost grows with the changes, not with the number of links.

Setup (not timed): N customers in a SQLite hub, linked by a first run to N records of the
in-process provider (zero latency, so the engine's own cost shows).

Timed, in one process:

* baseline — raw ``sqlite3.executemany`` of the same number of row updates into a copy of the
  customers table: the floor of writing the changes, measured in this run;
* changed run — 1% of the customers edited in the hub and another 1% at the provider: prints
  the run time and the rows written on each side;
* idle run — nothing changed since: must write nothing and take well under a second at
  100,000 links.

Usage: python bench/sync_engine.py [--rows N]   (default 100,000)
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contactsync.connectors import memory
from contactsync.hub import bulk, workspaces
from contactsync.hub import customers as hub_customers
from contactsync.secrets import SecretBox, new_key
from contactsync.store import journal
from contactsync.store.db import Database
from contactsync.sync import sources
from contactsync.sync.engine import RunResult, run_source
from contactsync.sync.sources import SyncEnv

FIELD_MAP = [
    {"hub": "base.contacts.email", "provider": "email"},
    {"hub": "base.firstName", "provider": "first_name"},
    {"hub": "base.lastName", "provider": "last_name"},
    {"hub": "base.address.city", "provider": "city"},
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(n: int, path: Path) -> tuple[SyncEnv, sources.Source, memory.MemoryUserDb]:
    db = Database(f"sqlite:///{path}")
    db.migrate()
    ws = workspaces.create_workspace(db, "bench")
    node = workspaces.create_node(db, ws.id, "main")
    udb = memory.user_db("bench")
    env = SyncEnv(db, SecretBox([new_key().encode()]))
    spec = {
        "name": "bench",
        "node": node.id,
        "provider": "memory",
        "config": {"user_db": "bench", "api_key": udb.api_key, "page_size": 5000},
        "sync": {"field_map": FIELD_MAP, "match_keys": ["base.contacts.email"]},
    }
    source = sources.create_source(env, ws.id, spec)
    records = (
        {
            "base": {
                "firstName": f"Name{i}",
                "lastName": f"Surname{i}",
                "contacts": {"email": f"user{i}@example.com"},
                "address": {"city": "Milano"},
            }
        }
        for i in range(n)
    )
    bulk.upsert_customers(db, ws.id, node.id, records)
    first = run(env, source, batch_size=5000)
    assert first.counts.provider.created == n, first.counts
    run(env, source, batch_size=5000)  # reads the first run's provider writes back: all echoes
    return env, source, udb


def run(env: SyncEnv, source: sources.Source, **kwargs: Any) -> RunResult:
    result = run_source(env, sources.get_source(env, source.workspace_id, source.id), **kwargs)
    assert result.status == "succeeded", result.error
    return result


def baseline(path: Path, changes: int) -> float:
    """Raw executemany of ``changes`` row updates on a copy of the customers table."""
    copy = path.with_suffix(".baseline.db")
    shutil.copy(path, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    ids = [r[0] for r in conn.execute("SELECT id FROM customers LIMIT ?", (changes,))]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "UPDATE customers SET data = json_set(data, '$.base.firstName', ?), updated_at = ? WHERE id = ?",
        [(f"Changed{i}", i, cid) for i, cid in enumerate(ids)],
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="contactsync-bench-"))
    try:
        path = tmp / "hub.db"
        t0 = time.perf_counter()
        env, source, udb = setup(n, path)
        print(f"setup: {n:,} customers linked to {n:,} provider records in {time.perf_counter() - t0:.1f} s")

        step = 100  # 1% on each side
        page = hub_customers.list_page(env.db, source.workspace_id, source.node_id, size=1000, max_size=1000)
        ids = [c["id"] for c in page["elements"]]
        for i in range(0, n, step):
            cid = ids[(i // step) % len(ids)] if i // step < len(ids) else None
            if cid is not None:
                hub_customers.patch(env.db, source.workspace_id, cid, {"base": {"firstName": f"Hub{i}"}})
        provider_ids = list(udb.live())
        for i in range(step // 2, n, step):
            udb.edit(provider_ids[i], {"city": f"City{i}"})
        changes = min(len(ids), n // step) + len(range(step // 2, n, step))

        base_s = baseline(path, changes)
        start = time.perf_counter()
        changed = run(env, source, batch_size=1000)
        changed_s = time.perf_counter() - start
        c = changed.counts

        with env.db.read() as conn:
            seq_before = journal.last_seq(conn, source.workspace_id, None, None)
        calls_before = udb.calls
        start = time.perf_counter()
        idle = run(env, source, batch_size=1000)
        idle_s = time.perf_counter() - start
        with env.db.read() as conn:
            seq_after = journal.last_seq(conn, source.workspace_id, None, None)
        i = idle.counts
        idle_written = i.hub.created + i.hub.updated + i.provider.created + i.provider.updated

        print(f"links: {n:,}; changes made: {changes:,} (1% hub, 1% provider)")
        print(f"baseline  raw executemany of {changes:,} row updates: {base_s:.3f} s")
        print(
            f"changed   run: {changed_s:.2f} s; rows written: hub {c.hub.updated + c.hub.created}, "
            f"provider {c.provider.updated + c.provider.created}; read {c.read:,}"
        )
        print(
            f"idle      run: {idle_s:.3f} s; rows written: {idle_written}; journal entries added: "
            f"{seq_after - seq_before}; provider calls: {udb.calls - calls_before} "
            f"({'OK' if idle_s < 1 and idle_written == 0 else 'NOT MET'}: target < 1 s, 0 rows)"
        )
        print(f"peak RSS: {peak_rss_mb():.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
