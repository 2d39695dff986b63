"""Benchmark: a displacer job exporting N customers to CSV vs a duckdb write of the same rows.

* baseline (the issue's) — duckdb's ``COPY … TO`` of the same rows to CSV: the rows (the
  csv.writer baseline's output, loaded into an in-memory duckdb table beforehand, not timed)
  written by duckdb's own CSV writer;
* csv.writer — Python's ``csv.writer`` writing the same columns of the same customers, read with
  one ``sqlite3`` query (``json_extract`` of the columns) over the same database file: the
  plain-Python figure of the shared performance notes' last row;
* store read floor — that query alone, its rows fetched and dropped: what reading the columns
  out of the hub's storage (a JSON document per customer in SQLite) costs before any writing;
* displacer — ``contactsync.exchange.runs.run_job`` of a displacer job (file endpoint, default
  columns): a streamed read of the node, the mapped values picked out of each document by the
  database (one JSON array per customer), cells neutralised against formulas (which the
  baseline does not do), times formatted, written in chunks under a temporary name and renamed
  when complete.

The customers are loaded first (not timed) with the hub's bulk upsert.
Usage: python bench/exchange_export.py [--rows N] (default 1,000,000). Target: <= 2x the duckdb
baseline.
"""

from __future__ import annotations

import argparse
import csv
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

CITIES = ["Milano", "Roma", "Torino", "Napoli", "Bologna", "Firenze", "Genova", "Bari"]


def customers(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "externalId": f"crm-{i}",
            "base": {
                "firstName": f"Name{i}",
                "lastName": f"Surname{i % 9973}",
                "contacts": {"email": f"user{i}@example.com", "mobilePhone": f"+39333{i:07d}"},
                "address": {"city": CITIES[i % len(CITIES)], "country": "IT"},
            },
        }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_load(n: int, db_path: Path) -> dict[str, Any]:
    from contactsync.hub import workspaces
    from contactsync.hub.bulk import upsert_customers
    from contactsync.store.db import Database

    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    ws = workspaces.create_workspace(db, "bench")
    node = workspaces.create_node(db, ws.id, "main")
    report = upsert_customers(db, ws.id, node.id, customers(n))
    return {"created": report.created}


def phase_baseline(db_path: Path, out: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA cache_size=-262144")
    start = time.perf_counter()
    cursor = conn.execute(_QUERY)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "external_id", "email", "first_name", "last_name", "updated_at"])
        writer.writerows(cursor)
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


_QUERY = (
    "SELECT id, external_id, json_extract(data, '$.base.contacts.email'),"
    " json_extract(data, '$.base.firstName'), json_extract(data, '$.base.lastName'), updated_at"
    " FROM customers ORDER BY id"
)


def phase_read(db_path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA cache_size=-262144")
    start = time.perf_counter()
    cursor = conn.execute(_QUERY)
    rows = 0
    while batch := cursor.fetchmany(10_000):
        rows += len(batch)
    return {"seconds": time.perf_counter() - start, "rows": rows}


def phase_duckdb(rows_csv: Path, out: Path) -> dict[str, Any]:
    import duckdb

    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE t AS SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(rows_csv)]
    )
    start = time.perf_counter()
    conn.execute(f"COPY t TO '{out}' (HEADER, DELIMITER ',')")
    return {
        "seconds": time.perf_counter() - start,
        "rss_mb": peak_rss_mb(),
        "threads": conn.execute("SELECT current_setting('threads')").fetchone()[0],
    }


def phase_displacer(db_path: Path, root: Path) -> dict[str, Any]:
    from contactsync.exchange import jobs, runs
    from contactsync.exchange.jobs import ExchangeEnv
    from contactsync.hub import workspaces
    from contactsync.secrets import SecretBox, new_key
    from contactsync.settings import Settings
    from contactsync.store.db import Database

    db = Database(f"sqlite:///{db_path}")
    settings = Settings(exchange_local_root=str(root), secret_keys=new_key())
    env = ExchangeEnv(db, settings, SecretBox.from_settings(settings))
    ws = workspaces.list_workspaces(db)[0]
    node = workspaces.list_nodes(db, ws.id)[0]
    box = root / "box"
    box.mkdir(parents=True)
    job = {"name": "export", "node": node.id, "module": "displacer", "endpoint": {"url": f"file://{box}"}}
    jobs.create_job(env, ws.id, {**job, "file": "export.csv"})
    start = time.perf_counter()
    [outcome] = runs.run_job(env, ws.id, "export", trigger="bench")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "written": outcome.run["counts"]["written"]}


def run_phase(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        kind = sys.argv[2]
        if kind == "load":
            result = phase_load(int(sys.argv[3]), Path(sys.argv[4]))
        elif kind == "baseline":
            result = phase_baseline(Path(sys.argv[3]), Path(sys.argv[4]))
        elif kind == "read":
            result = phase_read(Path(sys.argv[3]))
        elif kind == "duckdb":
            result = phase_duckdb(Path(sys.argv[3]), Path(sys.argv[4]))
        else:
            result = phase_displacer(Path(sys.argv[3]), Path(sys.argv[4]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="customers to export (default 1,000,000)")
    n = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        db_path = f"{tmp}/hub.db"
        run_phase("load", str(n), db_path)
        plain = run_phase("baseline", db_path, f"{tmp}/baseline.csv")
        duck = run_phase("duckdb", f"{tmp}/baseline.csv", f"{tmp}/duckdb.csv")
        read = run_phase("read", db_path)
        ours = run_phase("displacer", db_path, f"{tmp}/exchange")
        size_mb = Path(f"{tmp}/baseline.csv").stat().st_size / 1e6
    ratio = ours["seconds"] / duck["seconds"]
    print(f"exchange_export: {n:,} customers, 6 columns, {size_mb:.0f} MB CSV, {os.cpu_count()} CPUs")
    print(
        "  baseline: duckdb COPY TO CSV of the same rows from an in-memory table"
        f" ({duck['threads']} threads), measured in this run"
    )
    print(f"  baseline duckdb COPY TO    : {duck['seconds']:7.2f} s  peak RSS {duck['rss_mb']:6.0f} MB")
    print(
        f"  csv.writer over sqlite3    : {plain['seconds']:7.2f} s  peak RSS {plain['rss_mb']:6.0f} MB"
        f"  ({plain['seconds'] / duck['seconds']:.2f}x the baseline)"
    )
    print(
        f"  store read floor           : {read['seconds']:7.2f} s  (the sqlite3 query alone,"
        f" {read['rows']:,} rows fetched, nothing written:"
        f" {read['seconds'] / duck['seconds']:.2f}x the baseline)"
    )
    print(
        f"  displacer job              : {ours['seconds']:7.2f} s  peak RSS {ours['rss_mb']:6.0f} MB"
        f"  ratio {ratio:.2f} (target <= 2.0)  {ours['seconds'] / plain['seconds']:.2f}x csv.writer"
        f"  written {ours['written']:,}"
    )
    print(f"  target {'met' if ratio <= 2.0 else 'NOT met'}: ratio <= 2.0 of the duckdb baseline")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
