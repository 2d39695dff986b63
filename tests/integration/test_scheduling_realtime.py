"""Near-real-time push end to end: the service as `contactsync serve` runs it (API + scheduler +
workers in one process), a client's own table as the provider (the sql connector on a SQLite
file), and a customer changed through the hub API reaching that table without waiting for the
source's background frequency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from contactsync.api import create_app
from contactsync.scheduling import background, queue
from contactsync.secrets import SecretBox, new_key
from contactsync.settings import Settings
from contactsync.store import sync as sync_store
from contactsync.sync import sources
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub, free_port

KEY = new_key()


def eventually(check: Callable[[], Any], what: str, deadline_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (a deadline, not a speed assertion)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE,"
            " first_name TEXT, newsletter TEXT, updated_at DATETIME NOT NULL)"
        )
    yield engine
    engine.dispose()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        secret_keys=KEY,
        scheduler_tick_seconds=0.2,
        worker_poll_seconds=0.1,
        realtime_debounce_seconds=0.3,
        realtime_max_delay_seconds=2.0,
    )


@pytest.fixture
def service(hub: Hub, settings: Settings) -> Iterator[str]:
    """What `contactsync serve` runs: the API on a loopback port and the background threads."""
    threads = background.start(hub.db, settings)
    port = free_port()
    config = uvicorn.Config(create_app(hub.db, settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, "the server to start", 10)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert threads.stop(30), "the background threads did not stop"


def make_source(hub: Hub, provider: sa.engine.Engine) -> Source:
    env = SyncEnv(hub.db, SecretBox([KEY.encode()]))
    spec = {
        "name": "crm",
        "node": hub.node_id,
        "provider": "sql",
        "config": {
            "url": provider.url.render_as_string(hide_password=False),
            "table": "contacts",
            "updated_at_column": "updated_at",
            "lists": {"news": "newsletter"},
        },
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.firstName", "provider": "first_name"},
            ],
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news"}],
            "frequency_minutes": 60,  # the background sync is an hour away: only the push is quick
        },
    }
    return sources.create_source(env, hub.workspace_id, spec)


def provider_row(provider: sa.engine.Engine, email: str) -> Any:
    with provider.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT first_name, newsletter FROM contacts WHERE email = ?", (email,)
        ).first()


def test_a_hub_change_reaches_the_provider_within_seconds(
    hub: Hub, provider: sa.engine.Engine, service: str
) -> None:
    source = make_source(hub, provider)
    base = f"{service}/hub/v1/workspaces/{hub.workspace_id}/customers"
    with httpx.Client(headers=hub.headers, timeout=30) as client:
        # a new source syncs at once; then its runs come only from the push
        eventually(lambda: _runs(hub, source), "the source's first run")
        created = client.post(
            base,
            json={
                "nodeId": hub.node_id,
                "base": {
                    "firstName": "Ada",
                    "contacts": {"email": "ada@example.com"},
                    "subscriptions": [{"id": "newsletter", "subscribed": True}],
                },
            },
        )
        assert created.status_code == 201, created.text
        row = eventually(
            lambda: provider_row(provider, "ada@example.com"), "the new customer in the provider"
        )
        assert (row.first_name, row.newsletter) == ("Ada", "subscribed")

        patched = client.patch(f"{base}/{created.json()['id']}", json={"base": {"firstName": "Augusta"}})
        assert patched.status_code == 200, patched.text
        eventually(
            lambda: provider_row(provider, "ada@example.com").first_name == "Augusta",
            "the change in the provider",
        )
    # the pushes' own writes to the hub (links, values read back) do not push again: once the
    # queue is idle it stays idle, with at most one push per API write
    eventually(lambda: not _open_requests(hub), "an idle queue")
    time.sleep(1.5)  # longer than the debounce and the max delay
    assert not _open_requests(hub)
    triggers = [r.trigger for r in _runs(hub, source)]
    assert triggers.count("schedule") == 1 and 1 <= triggers.count("realtime") <= 2
    assert all(r.status == "succeeded" for r in _runs(hub, source))


def _open_requests(hub: Hub) -> list[queue.Request]:
    return [r for r in queue.list_requests(hub.db) if r.status in ("queued", "running")]


def _runs(hub: Hub, source: Source) -> list[Any]:
    with hub.db.read() as conn:
        return [r for r in sync_store.list_runs(conn, source.id, 100) if r.status != "running"]
