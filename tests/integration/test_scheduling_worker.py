"""`contactsync worker` and `contactsync serve` as subprocesses: each runs a queued source sync
and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from contactsync.hub import customers, workspaces
from contactsync.scheduling import queue, schedules
from contactsync.scheduling.queue import RequestStatus
from contactsync.secrets import SecretBox, new_key
from contactsync.store.db import Database
from contactsync.sync import sources
from contactsync.sync.sources import SyncEnv
from tests.conftest import free_port

KEY = new_key()


def eventually(check: Callable[[], Any], what: str, deadline_s: float = 60.0) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Database, str, sa.engine.Engine]]:
    """A hub on a SQLite file with one customer and a manual source to a client table."""
    provider = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with provider.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE,"
            " first_name TEXT, updated_at DATETIME NOT NULL)"
        )
    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.migrate()
    ws = workspaces.create_workspace(db, "w")
    node = workspaces.create_node(db, ws.id, "main")
    body = {"nodeId": node.id, "base": {"firstName": "Ada", "contacts": {"email": "ada@example.com"}}}
    customers.create(db, ws.id, body)
    spec = {
        "name": "crm",
        "node": node.id,
        "provider": "sql",
        "config": {"url": str(provider.url), "table": "contacts", "updated_at_column": "updated_at"},
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.firstName", "provider": "first_name"},
            ],
            "match_keys": ["base.contacts.email"],
            "frequency_minutes": None,  # manual: only the queued request runs it
        },
    }
    source = sources.create_source(SyncEnv(db, SecretBox([KEY.encode()])), ws.id, spec)
    yield db, source.id, provider
    db.dispose()
    provider.dispose()


def _start(db: Database, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTACTSYNC_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "CONTACTSYNC_SECRET_KEYS": KEY,
        "CONTACTSYNC_WORKER_POLL_SECONDS": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "contactsync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err.decode()


def _synced(provider: sa.engine.Engine) -> Any:
    with provider.connect() as conn:
        return conn.exec_driver_sql("SELECT first_name FROM contacts WHERE email = 'ada@example.com'").first()


@pytest.mark.slow  # processes started and stopped with SIGTERM: in `make test`, not the quick loop
@pytest.mark.parametrize("command", [["worker", "--no-scheduler"], ["serve", "--port", "PORT"]])
def test_the_process_runs_a_queued_sync_and_stops_cleanly_on_sigterm(
    setup: tuple[Database, str, sa.engine.Engine], command: list[str]
) -> None:
    db, source_id, provider = setup
    request_id = queue.enqueue(db, "source", source_id)
    proc = _start(db, *[str(free_port()) if a == "PORT" else a for a in command])
    try:
        done = eventually(
            lambda: (
                (r := queue.get_request(db, request_id))
                and r.status != RequestStatus.QUEUED
                and r.finished_at
                and r
            ),
            "the request to be run",
        )
    finally:
        code, err = _stop(proc)
    assert (done.status, done.error) == (RequestStatus.DONE, None), err
    assert _synced(provider).first_name == "Ada"
    assert code == 0, err
    if command[0] == "worker":
        assert "worker stopped" in err


def test_schedules_list_and_queue_show_next_runs_and_requests(
    setup: tuple[Database, str, sa.engine.Engine],
) -> None:
    db, source_id, _ = setup
    with db.write() as conn:
        schedules.set_schedule(conn, "exchange", "job-1", {"times": ["06:00"], "timezone": "Europe/Rome"})
    request_id = queue.enqueue(db, "source", source_id)
    env = {**os.environ, "CONTACTSYNC_DATABASE_URL": db.url.render_as_string(hide_password=False)}

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "contactsync", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return orjson.loads(done.stdout)

    listed = cli("schedules", "list", "-n", "2", "--json")
    (job,) = listed["schedules"]
    assert (job["target_kind"], job["target_id"], job["as_cron"]) == ("exchange", "job-1", ["0 6 * * *"])
    assert [t[11:16] for t in job["next_runs_at"]] == ["06:00", "06:00"]
    (crm,) = listed["sources"]
    assert (crm["name"], crm["frequencyMinutes"], crm["nextRun"], crm["inQueue"]) == ("crm", None, None, True)
    (queued,) = cli("schedules", "queue", "--status", "queued", "--json")
    assert (queued["id"], queued["targetKind"], queued["trigger"]) == (request_id, "source", "manual")
