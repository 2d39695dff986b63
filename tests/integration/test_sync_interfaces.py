"""Sources and runs through the management API (live server) and the CLI."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from contactsync.cli import app as cli_app
from contactsync.cli import sync as _sync_commands  # noqa: F401 - registers the commands
from contactsync.connectors import memory
from contactsync.hub import customers as hub_customers
from contactsync.hub.consent import Status
from contactsync.settings import get_settings
from tests.conftest import Hub
from tests.integration.test_sync_engine import FIELD_MAP, _names


def spec(hub: Hub, udb: memory.MemoryUserDb, **sync: Any) -> dict[str, Any]:
    return {
        "name": "crm",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": udb.name, "api_key": udb.api_key},
        "sync": {
            "field_map": FIELD_MAP,
            "match_keys": ["base.contacts.email"],
            "subscription_map": [{"hub": "newsletter", "provider": "news"}],
            **sync,
        },
    }


def wait_run(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(url).json()
        if run["status"] != "running":
            return run
        time.sleep(0.05)
    raise AssertionError("the run did not finish")


def test_sources_and_runs_over_http(live_server: str, hub: Hub) -> None:
    udb = memory.user_db(f"api-{next(_names)}")
    udb.api_key = "k-secret-123"
    udb.add(
        {"email": "x@example.com", "first_name": '=HYPERLINK("http://evil")'}, {"news": Status.SUBSCRIBED}
    )
    hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": hub.node_id, "base": {"contacts": {"email": "y@example.com"}}}
    )
    base = f"{live_server}/api/v1/workspaces/{hub.workspace_id}/sources"
    with httpx.Client(headers=hub.headers, timeout=30) as client:
        not_empty = client.post(base, json=spec(hub, udb))
        assert not_empty.status_code == 400 and not_empty.json()["code"] == "E403"
        created = client.post(base, json=spec(hub, udb, debug=True, initial_merge=True))
        assert created.status_code == 201, created.text
        assert "k-secret-123" not in created.text and created.json()["config"]["api_key"] == "********"

        again = client.post(base, json={**spec(hub, udb, initial_merge=True), "name": "crm2"})
        assert again.status_code == 400 and again.json()["code"] == "E400"

        other = client.post(
            f"{live_server}/api/v1/workspaces/{hub.workspace_id}/nodes", json={"name": "other"}
        )
        wrong = {"user_db": udb.name, "api_key": "nope"}
        bad_key = client.post(
            base, json={**spec(hub, udb), "name": "crm3", "node": other.json()["id"], "config": wrong}
        )
        assert bad_key.json()["code"] == "E112", bad_key.text

        described = client.get(f"{base}/crm/describe").json()
        assert described["recordCount"] == 1 and {f["name"] for f in described["fields"]} >= {"email", "city"}

        # changing the field map needs the source disabled first
        change = {"sync": {"field_map": FIELD_MAP[:2]}}
        refused = client.patch(f"{base}/crm", json=change)
        assert refused.status_code == 400 and refused.json()["code"] == "E401"

        started = client.post(f"{base}/crm/runs")
        assert started.status_code == 202
        run = wait_run(client, f"{base}/crm/runs/{started.json()['id']}")
        assert run["status"] == "succeeded", run
        assert run["counts"]["hub"]["created"] == 1 and run["counts"]["provider"]["created"] == 1

        records = client.get(f"{base}/crm/runs/{run['id']}/records").json()["elements"]
        assert {(r["side"], r["action"]) for r in records} == {("hub", "created"), ("provider", "created")}
        text = client.get(f"{base}/crm/runs/{run['id']}/records.csv").text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 2
        assert all(not (r["after"] or "x").startswith(("=", "+", "-", "@")) for r in rows)

        for path in ("", "/records", "/records.csv"):  # a run is only reached through its own source
            elsewhere = client.get(f"{base}/other-source/runs/{run['id']}{path}")
            assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "E120"

        listed = client.get(f"{base}/crm/runs").json()["elements"]
        assert [r["id"] for r in listed] == [run["id"]]

        unauthenticated = httpx.get(base)
        assert unauthenticated.status_code == 401


@pytest.fixture
def cli_env(hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTACTSYNC_DATABASE_URL", hub.db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CONTACTSYNC_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_source_sync_dry_run_and_log(hub: Hub, cli_env: None, tmp_path: Path) -> None:
    udb = memory.user_db(f"cli-{next(_names)}")
    udb.add({"email": "a@example.com", "first_name": "A"})
    spec_file = tmp_path / "source.json"
    spec_file.write_bytes(orjson.dumps(spec(hub, udb, initial_merge=True)))
    runner = CliRunner()

    created = runner.invoke(cli_app, ["source", "create", "-f", str(spec_file), "--json"])
    assert created.exit_code == 0, created.output
    assert orjson.loads(created.stdout)["name"] == "crm"

    planned = runner.invoke(cli_app, ["sync", "crm", "--dry-run", "--json"])
    assert planned.exit_code == 0, planned.output
    plan = orjson.loads(planned.stdout)
    assert plan["dryRun"] and plan["plan"]["counts"]["hub"]["created"] == 1
    assert (
        hub_customers.list_page(hub.db, hub.workspace_id, hub.node_id, size=10, max_size=10)["elements"] == []
    )

    done = runner.invoke(cli_app, ["sync", "crm", "--json"])
    assert done.exit_code == 0, done.output
    run = orjson.loads(done.stdout)
    assert run["status"] == "succeeded" and run["counts"]["hub"]["created"] == 1

    log = runner.invoke(cli_app, ["runs", "records", run["id"], "--csv"])
    assert log.exit_code == 0 and "a@example.com" in log.stdout

    disabled = runner.invoke(cli_app, ["source", "disable", "crm"])
    assert disabled.exit_code == 0
    refused = runner.invoke(cli_app, ["sync", "crm"])
    assert refused.exit_code == 1 and "E406" in refused.output
