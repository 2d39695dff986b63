"""Benchmark: upsert N customers through the hub service vs a raw sqlite3 executemany.

Both sides load the same generated customers into a fresh SQLite file with the same
pragmas (WAL, synchronous=NORMAL, 256 MB cache) and a unique (node, email) index:

* baseline — ``sqlite3.executemany`` of (rowid, node, email, json) tuples, 5,000 per transaction;
* hub — ``hub.bulk.upsert_customers`` (validation, normalisation, matching, content hash,
  change journal), 5,000 per transaction;
* re-upsert — the same N customers again with 1% of them changed: only those are
  rewritten and journaled.

Each phase runs in its own process so that its peak RSS is its own.
Usage: python bench/hub_upsert.py [N]   (default 1,000,000)
"""

from __future__ import annotations

import json
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


def phase_baseline(n: int, path: Path) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE customers"
        " (id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, email TEXT, data TEXT NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX uq ON customers (node_id, email)")
    start = time.perf_counter()
    batch: list[tuple[None, str, str, str]] = []
    for record in customers(n):
        email = record["base"]["contacts"]["email"].strip().lower()
        batch.append((None, "node", email, json.dumps(record)))
        if len(batch) == BATCH:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", batch)
            conn.execute("COMMIT")
            batch.clear()
    if batch:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", batch)
        conn.execute("COMMIT")
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


def phase_hub(n: int, path: Path, changed_every: int) -> dict[str, float]:
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
    report = upsert_customers(db, ws.id, node.id, customers(n, changed_every), batch_size=BATCH)
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
        kind, n, path = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        result = phase_baseline(n, path) if kind == "baseline" else phase_hub(n, path, int(sys.argv[5]))
        print(json.dumps(result))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        base = run_phase("baseline", str(n), f"{tmp}/baseline.db")
        first = run_phase("hub", str(n), f"{tmp}/hub.db", "0")
        again = run_phase("hub", str(n), f"{tmp}/hub.db", "100")
    ratio = first["seconds"] / base["seconds"]
    print(f"hub_upsert: {n:,} customers, batches of {BATCH:,}")
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
