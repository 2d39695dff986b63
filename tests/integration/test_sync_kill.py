"""Fault test: a 10,000-contact sync killed with SIGKILL at random points, then resumed.

The provider is a client's own table (the sql connector on a SQLite file), so its state
outlives the killed process like a real provider's does. The sync runs as the CLI in a
subprocess; the test kills it at 20+ random moments and starts it again each time. After the
last run completes: both sides hold the same people, no one twice, every change once.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from contactsync.hub import bulk, workspaces
from contactsync.store import sync as sync_store
from contactsync.store.db import Database
from contactsync.store.tables import customers

HUB_ONLY = 8_000
PROVIDER_ONLY = 2_000
KILLS = int(os.environ.get("CONTACTSYNC_TEST_KILLS", "20"))

pytestmark = pytest.mark.slow


def _provider_table(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE,"
            " first_name TEXT, city TEXT, newsletter TEXT, updated_at DATETIME NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_contacts_updated ON contacts (updated_at, id)")
        # the connector matches e-mail addresses with lower(): an expression index serves it
        conn.exec_driver_sql("CREATE INDEX ix_contacts_email ON contacts (lower(email))")
    engine.dispose()
    engine = sa.create_engine(url)
    engine.dispose()


def _cli(hub_url: str, key_file: Path, *args: str, quiet: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONTACTSYNC_DATABASE_URL": hub_url, "CONTACTSYNC_SECRET_KEY_FILE": str(key_file)}
    pipe = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "contactsync", *args], env=env, stdout=pipe, stderr=pipe)


def test_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    provider_url = f"sqlite:///{tmp_path / 'crm.db'}"
    key_file = tmp_path / "secret.key"
    _provider_table(provider_url)
    db = Database(hub_url)
    db.migrate()
    ws = workspaces.create_workspace(db, "kill")
    node = workspaces.create_node(db, ws.id, "main")
    records = (
        {
            "base": {
                "firstName": f"Hub{i}",
                "contacts": {"email": f"hub{i}@example.com"},
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            }
        }
        for i in range(HUB_ONLY)
    )
    bulk.upsert_customers(db, ws.id, node.id, records)
    spec = {
        "name": "crm",
        "node": node.id,
        "provider": "sql",
        "config": {
            "url": provider_url,
            "table": "contacts",
            "updated_at_column": "updated_at",
            "lists": {"news": "newsletter"},
            "page_size": 200,
        },
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.firstName", "provider": "first_name"},
                {"hub": "base.address.city", "provider": "city"},
            ],
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news"}],
        },
    }
    spec_file = tmp_path / "source.json"
    spec_file.write_bytes(orjson.dumps(spec))
    created = _cli(hub_url, key_file, "source", "create", "-f", str(spec_file), "--workspace", ws.id)
    _, created_err = created.communicate(timeout=60)
    assert created.returncode == 0, created_err.decode()

    # people only the provider has (the source was created on an empty table; a CRM adds them later)
    engine = sa.create_engine(provider_url)
    with engine.begin() as conn:
        when = f"{dt.datetime(2026, 1, 1):%Y-%m-%d %H:%M:%S.%f}"  # SQLAlchemy's DATETIME text on SQLite
        conn.exec_driver_sql(
            "INSERT INTO contacts (email, first_name, city, newsletter, updated_at) VALUES (?, ?, ?, ?, ?)",
            [(f"crm{i}@example.com", f"Crm{i}", "Roma", "subscribed", when) for i in range(PROVIDER_ONLY)],
        )

    rng = random.Random(20261122)
    kills = rounds = 0
    while kills < KILLS:
        proc = _cli(hub_url, key_file, "sync", "crm", "--batch-size", "100", "--workspace", ws.id, quiet=True)
        time.sleep(rng.uniform(0.9, 2.0))  # the CLI needs most of a second to start
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        # the run got through between two kills: give it a new round of hub edits to carry
        rounds += 1
        assert rounds < 5, f"the sync finished {rounds} times with only {kills} kills"
        edits = (
            {"base": {"firstName": f"Hub{i}-r{rounds}", "contacts": {"email": f"hub{i}@example.com"}}}
            for i in range(HUB_ONLY)
        )
        bulk.upsert_customers(db, ws.id, node.id, edits, mode=bulk.UpsertMode.MERGE)
    final = _cli(hub_url, key_file, "sync", "crm", "--workspace", ws.id, "--json")
    out, errors = final.communicate(timeout=300)
    assert final.returncode == 0, errors.decode()

    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, first_name, newsletter FROM contacts").all()
    emails = [r.email for r in rows]
    assert len(emails) == len(set(emails)) == HUB_ONLY + PROVIDER_ONLY  # no one twice
    assert all(r.newsletter == "subscribed" for r in rows)
    with db.read() as conn:
        hub_rows = conn.execute(sa.select(customers.c.id, customers.c.data)).all()
        source = sync_store.get_source(conn, ws.id, "crm")
        assert source is not None
        assert sync_store.count_links(conn, source.id) == HUB_ONLY + PROVIDER_ONLY
        creates = conn.exec_driver_sql(
            "SELECT count(*) FROM journal WHERE operation = 'CREATE' AND origin = ?", (f"sync:{source.id}",)
        ).scalar_one()
    assert len(hub_rows) == HUB_ONLY + PROVIDER_ONLY
    assert creates == PROVIDER_ONLY  # each provider-only person created in the hub exactly once
    hub_names = {
        orjson.loads(d)["base"]["contacts"]["email"]: orjson.loads(d)["base"]["firstName"]
        for _, d in hub_rows
    }
    assert hub_names == {r.email: r.first_name for r in rows}

    run = orjson.loads(out)
    assert run["status"] == "succeeded"
    idle = _cli(hub_url, key_file, "sync", "crm", "--workspace", ws.id, "--json")
    idle_out, _ = idle.communicate(timeout=120)
    counts = orjson.loads(idle_out)["counts"]
    written = sum(counts[side][k] for side in ("hub", "provider") for k in ("created", "updated", "deleted"))
    assert written == 0
    with db.read() as conn:  # the killed runs are on record as interrupted, none as running
        statuses = conn.exec_driver_sql("SELECT status, count(*) FROM runs GROUP BY status").all()
    by_status = dict(statuses)
    assert by_status.get("interrupted", 0) >= 1 and "running" not in by_status
    engine.dispose()
    db.dispose()
