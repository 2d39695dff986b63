"""Benchmark: upsert N customers through the hub service vs a raw sqlite3 executemany.

Both sides load the same generated customers into a fresh SQLite file with the same
pragmas (WAL, synchronous=NORMAL, 256 MB cache) and the same unique index, on
(node id, normalised email), a node id being a 36-character UUID on both sides:

* baseline — ``sqlite3.executemany`` of (rowid, node id, email, record JSON) tuples into
  ``customers (id INTEGER PRIMARY KEY, node_id, match_key, data)`` with
  ``UNIQUE (node_id, match_key)``, one transaction per batch;
* hub — ``hub.bulk.upsert_customers`` (validation, normalisation, matching, content hash,
  change journal) into the hub's schema (TEXT id primary key, the unique index, the
  external-id index and one journal row per customer), one transaction per batch;
* re-upsert — the same N customers again with 1% of them changed: only those are
  rewritten and journaled.

Each phase runs in its own process so that its peak RSS is its own; the times cover the
load only (records are generated inside the timed loop on both sides).
Usage: python bench/hub_upsert.py [--rows N] [--batch B] [--in-turns]
       (default 1,000,000 rows, 5,000 per batch, the hub pipelined: see hub.bulk)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BATCH = 5000
NODE_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"  # the baseline's node: a UUID, like the hub's
CITIES = ["Milano", "Roma", "Torino", "Napoli", "Bologna", "Firenze", "Genova", "Bari"]


def customers(n: int, changed_every: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(n):
        changed = changed_every and i % changed_every == 0
        yield {
            "externalId": f"crm-{i}",
            "base": {
                "firstName": f"Name{i}",
                "lastName": "Changed" if changed else f"Surname{i % 9973}",
                "contacts": {"email": f"User{i}@Example.com", "mobilePhone": f"+39333{i:07d}"},
                "address": {"city": CITIES[i % len(CITIES)], "country": "IT"},
            },
        }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_baseline(n: int, path: Path, batch_size: int) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE customers"
        " (id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, match_key TEXT, data TEXT NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX uq ON customers (node_id, match_key)")
    sql = "INSERT INTO customers VALUES (?, ?, ?, ?)"
    start = time.perf_counter()
    batch: list[tuple[None, str, str, str]] = []
    for record in customers(n):
        email = record["base"]["contacts"]["email"].strip().lower()
        batch.append((None, NODE_ID, email, json.dumps(record)))
        if len(batch) == batch_size:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            batch.clear()
    if batch:
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


def phase_hub(
    n: int, path: Path, changed_every: int, batch_size: int, pipelined: bool = True
) -> dict[str, float]:
    import sqlalchemy as sa

    from contactsync.hub import workspaces
    from contactsync.hub.bulk import upsert_customers
    from contactsync.store.db import Database
    from contactsync.store.tables import journal

    db = Database(f"sqlite:///{path}")
    if changed_every == 0:
        db.migrate()
        ws = workspaces.create_workspace(db, "bench")
        node = workspaces.create_node(db, ws.id, "main")
    else:
        ws = workspaces.list_workspaces(db)[0]
        node = workspaces.list_nodes(db, ws.id)[0]
    with db.read() as conn:
        seq_before = conn.execute(sa.select(sa.func.coalesce(sa.func.max(journal.c.seq), 0))).scalar_one()
    start = time.perf_counter()
    report = upsert_customers(
        db, ws.id, node.id, customers(n, changed_every), batch_size=batch_size, pipelined=pipelined
    )
    seconds = time.perf_counter() - start
    with db.read() as conn:
        journaled = conn.execute(sa.select(sa.func.count()).where(journal.c.seq > seq_before)).scalar_one()
    return {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "failed": len(report.failed),
        "journaled": journaled,
    }


def run_phase(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        kind, n, path, batch = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
        if kind == "baseline":
            result = phase_baseline(n, path, batch)
        else:
            result = phase_hub(n, path, int(sys.argv[6]), batch, sys.argv[7] == "pipelined")
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="customers to load (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per transaction, both sides")
    parser.add_argument(
        "--in-turns", action="store_true", help="hub: validate and write in turns on one thread (no pipeline)"
    )
    args = parser.parse_args()
    n, batch = args.rows, str(args.batch)
    how = "in-turns" if args.in_turns else "pipelined"
    with tempfile.TemporaryDirectory() as tmp:
        base = run_phase("baseline", str(n), f"{tmp}/baseline.db", batch)
        first = run_phase("hub", str(n), f"{tmp}/hub.db", batch, "0", how)
        again = run_phase("hub", str(n), f"{tmp}/hub.db", batch, "100", how)
    ratio = first["seconds"] / base["seconds"]
    print(f"hub_upsert: {n:,} customers, batches of {args.batch:,}, {os.cpu_count()} CPUs, hub {how}")
    print(
        "  baseline: sqlite3 executemany into (id INTEGER PRIMARY KEY, node_id, match_key, data)"
        " with UNIQUE (node_id, match_key), node_id a UUID"
    )
    print(f"  baseline sqlite3 executemany : {base['seconds']:7.2f} s  peak RSS {base['rss_mb']:6.0f} MB")
    print(
        f"  hub upsert (first load)      : {first['seconds']:7.2f} s  peak RSS {first['rss_mb']:6.0f} MB"
        f"  ratio {ratio:.2f} (target <= 2.0)  created {first['created']:,}  journaled {first['journaled']:,}"
    )
    print(
        f"  hub re-upsert, 1% changed    : {again['seconds']:7.2f} s  peak RSS {again['rss_mb']:6.0f} MB"
        f"  updated {again['updated']:,}  unchanged {again['unchanged']:,}  journaled {again['journaled']:,}"
    )
    ok = (
        ratio <= 2.0
        and max(first["rss_mb"], again["rss_mb"]) <= 400
        and again["journaled"] == again["updated"]
    )
    print(
        f"  targets {'met' if ok else 'NOT met'}: "
        "ratio <= 2.0, peak RSS <= 400 MB, only changed rows journaled"
    )


if __name__ == "__main__":
    main()
