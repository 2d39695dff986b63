"""Benchmark: an importer job on a generated CSV vs the ``sqlite3`` command line's ``.import``.

* baseline — the ``sqlite3`` CLI (a subprocess) ``.import``s the same CSV into a table with the
  same unique index on (node id, email) in place, same pragmas (WAL, synchronous=NORMAL,
  256 MB cache), in one transaction;
* first import — ``contactsync.exchange.runs.run_job`` of an importer job (file endpoint,
  append) into an empty node: checksum, the CSV check (header, line lengths), mapping,
  validation, matching, content hash, change journal, resume bookkeeping per transaction, the
  file moved to done/;
* re-import — the same file with 1% of the rows changed: only those are rewritten and journaled;
* hub schema floor — what the database alone costs for what the first import stores: the rows
  it wrote (customers and change-journal entries, read back from its database beforehand) are
  inserted with ``executemany`` into an empty database of the hub's schema (same indexes, same
  pragmas, 50,000 rows per transaction as the job's default), with no parsing, mapping or
  validation. The ``.import`` baseline stores ten short text columns and one index; the hub
  stores a JSON document per customer, a journal entry per change and five indexes, and this
  line shows how much of the gap is the storage itself.

Besides wall-clock seconds each phase reports its CPU seconds (user + system, all threads): on a
machine that other work keeps busy, the wall-clock ratio moves with the load, the CPU one less.

Each phase runs in its own process so that its peak RSS is its own.
With ``--database-url postgresql://…`` (an empty database) the hub runs on PostgreSQL and the
baseline is a ``COPY … FROM STDIN`` of the same file into a table with the same unique index;
the floor line is measured on SQLite only.

Usage: python bench/exchange_import.py [--rows N] (default 1,000,000) [--database-url URL]
Targets (issue 6): first import <= 2x baseline, re-import <= 1x first import with only the
changed rows journaled, peak RSS <= 400 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NODE_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
CITIES = ["Milano", "Roma", "Torino", "Napoli", "Bologna", "Firenze", "Genova", "Bari"]
HEADER = [
    "email",
    "first_name",
    "last_name",
    "external_id",
    "mobile",
    "city",
    "country",
    "zip",
    "street",
    "title",
]
MAPPING = {
    "email": "base.contacts.email",
    "first_name": "base.firstName",
    "last_name": "base.lastName",
    "external_id": "externalId",
    "mobile": "base.contacts.mobilePhone",
    "city": "base.address.city",
    "country": "base.address.country",
    "zip": "base.address.zip",
    "street": "base.address.street",
    "title": "base.title",
}


def generate(path: Path, n: int, changed_every: int = 0) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            changed = changed_every and i % changed_every == 0
            w.writerow(
                [
                    f"user{i}@example.com",
                    f"Name{i}",
                    "Changed" if changed else f"Surname{i % 9973}",
                    f"crm-{i}",
                    f"+39333{i:07d}",
                    CITIES[i % len(CITIES)],
                    "IT",
                    f"{10000 + i % 89999}",
                    f"Via Roma {i % 300}",
                    "Dr" if i % 7 == 0 else "",
                ]
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_baseline(csv_path: Path, db_path: Path) -> dict[str, float]:
    # the hub's index is on (node id, matching key): an expression index on the node's id (a
    # constant the CLI cannot fill as a column) and the email has the same entries
    script = f"""
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA cache_size=-262144;
CREATE TABLE customers ({", ".join(f"{c} TEXT" for c in HEADER)});
CREATE UNIQUE INDEX uq ON customers ('{NODE_ID}' || '', email);
.mode csv
.import --skip 1 {csv_path} customers
"""
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(db_path)], input=script, text=True, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def phase_pg_baseline(csv_path: Path, url: str) -> dict[str, float]:
    """COPY of the file into a table with a unique index on (node id, email) in place."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        columns = ", ".join(f"{c} text" for c in HEADER)
        conn.execute("DROP TABLE IF EXISTS bench_import_baseline")
        conn.execute(f"CREATE TABLE bench_import_baseline (node_id text DEFAULT '{NODE_ID}', {columns})")
        conn.execute("CREATE UNIQUE INDEX ON bench_import_baseline (node_id, email)")
        conn.commit()
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY bench_import_baseline ({', '.join(HEADER)}) FROM STDIN (FORMAT csv, HEADER)"
            ) as copy,
            open(csv_path, "rb") as f,
        ):
            while block := f.read(1 << 20):
                copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE bench_import_baseline")
        conn.commit()
    return {"seconds": seconds, "cpu": 0.0, "rss_mb": 0.0}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase_hub(db_path: Path, root: Path, first: bool) -> dict[str, Any]:
    import sqlalchemy as sa

    from contactsync.exchange import jobs, runs
    from contactsync.exchange.jobs import ExchangeEnv
    from contactsync.hub import workspaces
    from contactsync.secrets import SecretBox
    from contactsync.settings import Settings
    from contactsync.store.db import Database
    from contactsync.store.tables import journal

    db = Database(os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{db_path}")
    settings = Settings(exchange_local_root=str(root), secret_keys=(root / "key").read_text())
    env = ExchangeEnv(db, settings, SecretBox.from_settings(settings))
    if first:
        db.migrate()
        ws = workspaces.create_workspace(db, "bench")
        node = workspaces.create_node(db, ws.id, "main")
        jobs.create_job(
            env,
            ws.id,
            {
                "name": "bench",
                "node": node.id,
                "module": "importer",
                "endpoint": {"url": f"file://{root / 'box'}"},
                "mapping": MAPPING,
            },
        )
    ws = workspaces.list_workspaces(db)[0]
    with db.read() as conn:
        seq_before = conn.execute(sa.select(sa.func.coalesce(sa.func.max(journal.c.seq), 0))).scalar_one()
    start, cpu = time.perf_counter(), cpu_seconds()
    [outcome] = runs.run_job(env, ws.id, "bench", trigger="bench")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    rss_mb = peak_rss_mb()  # before counting the journal: that read fills this handle's page cache
    with db.read() as conn:
        journaled = conn.execute(sa.select(sa.func.count()).where(journal.c.seq > seq_before)).scalar_one()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rss_mb": rss_mb,
        "run": outcome.run,
        "journaled": journaled,
    }


def phase_floor(hub_path: Path, db_path: Path) -> dict[str, float]:
    """The hub schema floor (see the module's documentation), in a process of its own."""
    import sqlite3

    from contactsync.store.db import Database

    Database(f"sqlite:///{db_path}").migrate()
    source = sqlite3.connect(f"file:{hub_path}?mode=ro", uri=True)
    customers = source.execute("SELECT * FROM customers ORDER BY rowid").fetchall()
    journal = source.execute(
        "SELECT workspace_id, node_id, entity, entity_id, operation, origin, at, snapshot"
        " FROM journal WHERE entity = 'CUSTOMER' ORDER BY seq"
    ).fetchall()
    source.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144"):
        conn.execute(f"PRAGMA {pragma}")
    marks = ", ".join("?" * len(customers[0])) if customers else "?"
    batch = 50_000
    start, cpu = time.perf_counter(), cpu_seconds()
    for first in range(0, max(len(customers), len(journal)), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO customers VALUES ({marks})", customers[first : first + batch])
        conn.executemany(
            "INSERT INTO journal (workspace_id, node_id, entity, entity_id, operation, origin, at, snapshot)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            journal[first : first + batch],
        )
        conn.execute("COMMIT")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    conn.close()
    return {"seconds": seconds, "cpu": cpu, "rows": len(customers), "entries": len(journal)}


def run_phase(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        kind, a, b = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
        if kind == "baseline":
            result = phase_baseline(a, b)
        elif kind == "pgbaseline":
            result = phase_pg_baseline(a, str(sys.argv[4]))
        elif kind == "floor":
            result = phase_floor(a, b)
        else:
            result = phase_hub(a, b, kind == "first")
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the file (default 1,000,000)")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL of an empty database")
    args = parser.parse_args()
    n = args.rows
    pg = args.database_url
    if pg:
        os.environ["BENCH_DATABASE_URL"] = pg
    if not pg and shutil.which("sqlite3") is None:
        sys.exit(
            "exchange_import: the sqlite3 command-line tool is needed for the baseline (apt install sqlite3)"
        )
    from contactsync.secrets import new_key

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "exchange"
        (root / "box").mkdir(parents=True)
        (root / "key").write_text(new_key())
        data = Path(tmp) / "contacts.csv"
        generate(data, n)
        size_mb = data.stat().st_size / 1e6
        base = (
            run_phase("pgbaseline", str(data), pg)
            if pg
            else run_phase("baseline", str(data), f"{tmp}/baseline.db")
        )
        shutil.copy(data, root / "box" / "contacts.csv")
        first = run_phase("first", f"{tmp}/hub.db", str(root))
        floor = None if pg else run_phase("floor", f"{tmp}/hub.db", f"{tmp}/floor.db")
        generate(root / "box" / "contacts_changed.csv", n, changed_every=100)
        again = run_phase("again", f"{tmp}/hub.db", str(root))
    ratio = first["seconds"] / base["seconds"]
    again_ratio = again["seconds"] / first["seconds"]
    fc, ac = first["run"]["counts"], again["run"]["counts"]
    print(f"exchange_import: {n:,} rows, {len(HEADER)} columns, {size_mb:.0f} MB CSV, {os.cpu_count()} CPUs")
    if pg:
        print(
            "  PostgreSQL; baseline: COPY FROM STDIN (one transaction) of the same file into a table with a"
            " unique index on (node id, email) in place, measured in this run"
        )
        print(f"  baseline COPY              : {base['seconds']:7.2f} s  (server side; cpu not counted)")
    else:
        print(
            "  baseline: sqlite3 CLI .import (one transaction) of the same file into a table with a unique"
            " index on (node id, email) in place"
            " (WAL, synchronous=NORMAL, 256 MB cache), measured in this run"
        )
        print(
            f"  baseline sqlite3 .import   : {base['seconds']:7.2f} s  cpu {base['cpu']:6.2f} s"
            f"  peak RSS {base['rss_mb']:6.0f} MB"
        )
    print(
        f"  importer (empty node)      : {first['seconds']:7.2f} s  cpu {first['cpu']:6.2f} s"
        f"  peak RSS {first['rss_mb']:6.0f} MB  ratio {ratio:.2f} (target <= 2.0"
        + (f"; cpu {first['cpu'] / base['cpu']:.2f}" if base["cpu"] else "")
        + f")  inserted {fc['inserted']:,}  journaled {first['journaled']:,}"
    )
    print(
        f"  re-import, 1% changed      : {again['seconds']:7.2f} s  cpu {again['cpu']:6.2f} s"
        f"  peak RSS {again['rss_mb']:6.0f} MB  {again_ratio:.2f}x first (target <= 1.0)"
        f"  updated {ac['updated']:,}  unchanged {ac['unchanged']:,}  journaled {again['journaled']:,}"
    )
    if floor is not None:
        print(
            f"  hub schema floor           : {floor['seconds']:7.2f} s  cpu {floor['cpu']:6.2f} s"
            f"  ({floor['rows']:,} customers + {floor['entries']:,} journal entries by executemany,"
            " no parsing)"
            f"  = {floor['seconds'] / base['seconds']:.2f}x the baseline; the first import is"
            f" {first['seconds'] / floor['seconds']:.2f}x the floor"
        )
    print(f"  load average before / after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    targets = [
        ("first import <= 2x the baseline", ratio <= 2.0),
        ("re-import <= the first import", again_ratio <= 1.0),
        ("only the changed rows journaled", again["journaled"] == ac["updated"]),
        ("peak RSS <= 400 MB", max(first["rss_mb"], again["rss_mb"]) <= 400),
    ]
    print("  targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in targets))


if __name__ == "__main__":
    main()
