"""Fault test: a 100,000-row import run by the CLI in a subprocess, killed with SIGKILL while it
writes, then run again until it completes: every row is imported exactly once (one CREATE in
the journal per customer) and every failed row is reported exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from contactsync.hub import workspaces
from contactsync.store.db import Database
from contactsync.store.exchange_tables import exchange_failed_rows, exchange_runs
from contactsync.store.tables import customers, journal

ROWS = 100_000
BAD_EVERY = 9_973  # these rows have an invalid email: E201
KILLS = int(os.environ.get("CONTACTSYNC_TEST_KILLS", "4"))

pytestmark = pytest.mark.slow


def _progress(db: Database) -> int:
    with db.read() as conn:
        value = conn.execute(sa.select(sa.func.max(exchange_runs.c.progress))).scalar_one()
    return int(value or 0)


def test_kill_9_during_a_100k_import_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "exchange"
    box = root / "box"
    box.mkdir(parents=True)
    lines = ["email,first_name,city"]
    bad = set()
    for i in range(1, ROWS + 1):
        if i % BAD_EVERY == 0:
            bad.add(i)
            lines.append(f"broken-{i},Name{i},Rome")
        else:
            lines.append(f"user{i}@example.com,Name{i},Rome")
    (box / "contacts.csv").write_text("\n".join(lines) + "\n")
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = Database(hub_url)
    db.migrate()
    ws = workspaces.create_workspace(db, "kill")
    workspaces.create_node(db, ws.id, "main")
    env = {
        **os.environ,
        "CONTACTSYNC_DATABASE_URL": hub_url,
        "CONTACTSYNC_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
        "CONTACTSYNC_EXCHANGE_LOCAL_ROOT": str(root),
    }
    spec = {
        "name": "big",
        "node": "main",
        "module": "importer",
        "endpoint": {"url": f"file://{box}"},
        "mapping": {
            "email": "base.contacts.email",
            "first_name": "base.firstName",
            "city": "base.address.city",
        },
        "batch_size": 2000,
    }
    (tmp_path / "job.json").write_text(json.dumps(spec))
    cli = [sys.executable, "-m", "contactsync"]
    made = subprocess.run(
        [*cli, "exchange", "create", "-f", str(tmp_path / "job.json")], env=env, capture_output=True
    )
    assert made.returncode == 0, made.stderr

    rng = random.Random(20261122)
    kills = 0
    for _ in range(KILLS * 3):
        if kills == KILLS:
            break
        before = _progress(db)
        proc = subprocess.Popen(
            [*cli, "exchange", "run", "big"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and _progress(db) <= before and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this run commits a batch of its own
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 2, "the import finished before it could be killed twice"
    done = subprocess.run(
        [*cli, "exchange", "run", "big", "--json"], env=env, capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    [final] = json.loads(done.stdout)
    assert final["status"] == "succeeded", final
    assert final["resumedFrom"] is not None

    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one() == ROWS - len(bad)
        creates = conn.execute(
            sa.select(journal.c.entity_id, sa.func.count())
            .where(journal.c.entity == "CUSTOMER")
            .group_by(journal.c.entity_id)
        ).all()
        assert len(creates) == ROWS - len(bad)
        assert {n for _, n in creates} == {1}  # imported once: no UPDATE, no second CREATE
        failed = conn.execute(
            sa.select(exchange_failed_rows.c.row_number, exchange_failed_rows.c.code).where(
                exchange_failed_rows.c.run_id == final["id"]
            )
        ).all()
        statuses = [r.status for r in conn.execute(sa.select(exchange_runs.c.status))]
    assert sorted(n for n, _ in failed) == sorted(bad)
    assert {code for _, code in failed} == {"E201"}
    c = final["counts"]
    assert (c["read"], c["inserted"], c["failed"]) == (ROWS, ROWS - len(bad), len(bad))
    assert statuses.count("interrupted") == kills
    assert (box / "done" / "contacts.csv").exists()
    db.dispose()
