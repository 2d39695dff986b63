"""Benchmark: the sql connector's write() on SQLite vs a raw sqlite3 executemany of the same rows.

Setup (not timed): a SQLite file with a client's contacts table (autoincrement key, unique
email NOT NULL, names, a date, a number, two list columns, updated_at, deleted_at, and the
``lower(email)`` index the docs recommend), holding N/2 rows. The same file is copied for
each side, so both start from the same table.

Timed, in one process, on N items of which half are new rows and half change existing
ones (of those, half carry their remote id and half are found by email, as after a first
run that matched them):

* baseline — raw ``sqlite3.executemany``: one INSERT for the new rows and one UPDATE by
  key for the changed ones, per batch, one transaction per batch. The floor of writing
  these rows, measured in this run;
* connector — ``SqlConnector.write`` in batches of the same size: the lookup by key and by
  email, the upserts, and reading the written rows back (each result carries the record).

Then ``delete()`` of the N/2 existing rows (soft delete: one UPDATE per batch).

Usage: python bench/sql_connector.py [--rows N] [--batch B]   (default 20,000 items, 2,000 per batch)
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext, WriteItem
from contactsync.hub.consent import Status

TABLE = """
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(255) NOT NULL UNIQUE,
    first_name VARCHAR(100),
    last_name VARCHAR(100),
    birth_date DATE,
    score NUMERIC(10, 2),
    newsletter BOOLEAN,
    offers_status VARCHAR(20),
    updated_at DATETIME,
    deleted_at DATETIME
)
"""
EMAIL_INDEX = "CREATE INDEX contacts_email_lower ON contacts (lower(email))"


def setup(path: Path, existing: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(TABLE)
    conn.execute(EMAIL_INDEX)
    stamp = "2024-01-01 00:00:00.000000"
    conn.executemany(
        "INSERT INTO contacts (id, email, first_name, last_name, newsletter, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(i + 1, f"person{i}@example.com", f"Name{i}", "Old", 1, stamp) for i in range(existing)],
    )
    conn.commit()
    conn.close()


def items(n: int) -> list[WriteItem]:
    """N/2 changes of existing rows (ids 1..N/2) interleaved with N/2 new rows."""
    half = n // 2
    out = []
    for i in range(half):
        email = f"person{i}@example.com"
        fields: dict[str, Any] = {"first_name": f"Name{i}", "last_name": "Changed", "score": i % 100}
        if i % 2:  # linked: by remote id
            out.append(WriteItem(f"u{i}", str(i + 1), fields, {}, {"newsletter": Status.SUBSCRIBED}))
        else:  # found by email, written in another case
            out.append(WriteItem(f"u{i}", None, fields, {"email": email.upper()}))
        new = f"new{i}@example.com"
        fields = {"email": new, "first_name": f"New{i}", "last_name": "Person", "birth_date": "1990-05-17"}
        out.append(WriteItem(f"n{i}", None, fields, {"email": new}, {"offers": Status.SUBSCRIBED}))
    return out


def baseline(path: Path, n: int, batch_size: int) -> float:
    """Raw executemany of the same new and changed rows, one transaction per batch."""
    conn = sqlite3.connect(path, isolation_level=None)
    half = n // 2
    start = time.perf_counter()
    for first in range(0, half, batch_size // 2):
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(" ")
        part = range(first, min(first + batch_size // 2, half))
        conn.execute("BEGIN")
        conn.executemany(
            "UPDATE contacts SET first_name = ?, last_name = ?, score = ?, updated_at = ? WHERE id = ?",
            [(f"Name{i}", "Changed", i % 100, now, i + 1) for i in part],
        )
        conn.executemany(
            "INSERT INTO contacts (email, first_name, last_name, birth_date, offers_status, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(f"new{i}@example.com", f"New{i}", "Person", "1990-05-17", "subscribed", now) for i in part],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def connector_run(path: Path, n: int, batch_size: int) -> tuple[float, float, int]:
    provider = registry.get("sql")
    config = provider.parse_config(
        {
            "url": f"sqlite:///{path}",
            "table": "contacts",
            "updated_at_column": "updated_at",
            "soft_delete_column": "deleted_at",
            "lists": {"newsletter": "newsletter", "offers": "offers_status"},
        }
    )
    conn = provider.create(config, ConnectorContext())
    conn.check()  # reflect the table outside the timed part
    work = items(n)
    start = time.perf_counter()
    failed = 0
    for first in range(0, len(work), batch_size):
        results = conn.write(work[first : first + batch_size])
        failed += sum(r.problem is not None for r in results)
    written = time.perf_counter() - start
    existing = [str(i + 1) for i in range(n // 2)]
    start = time.perf_counter()
    for first in range(0, len(existing), batch_size):
        conn.delete(existing[first : first + batch_size])
    deleted = time.perf_counter() - start
    conn.close()
    return written, deleted, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="items written (half new)")
    parser.add_argument("--batch", type=int, default=2_000, help="items per write() call")
    args = parser.parse_args()
    n, batch_size = args.rows, args.batch
    with tempfile.TemporaryDirectory() as tmp:
        seeded = Path(tmp) / "seeded.db"
        setup(seeded, n // 2)
        raw, ours = Path(tmp) / "raw.db", Path(tmp) / "connector.db"
        shutil.copy(seeded, raw)
        shutil.copy(seeded, ours)
        base = baseline(raw, n, batch_size)
        written, deleted, failed = connector_run(ours, n, batch_size)
    half = n // 2
    print(
        f"sql connector, SQLite {sqlite3.sqlite_version}: {n:,} items ({half:,} new), {batch_size:,} a batch"
    )
    print(f"  baseline executemany {base:8.2f} s {n / base:>9,.0f} rows/s")
    ratio = written / base
    print(f"  connector write()    {written:8.2f} s {n / written:>9,.0f} rows/s  ({ratio:.1f}x baseline)")
    print(f"  connector delete()   {deleted:8.2f} s {half / deleted:>9,.0f} rows/s  ({half:,} soft deletes)")
    if failed:
        print(f"  {failed} items failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
