"""Bulk upsert (journal only what changed; bad records reported) and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contactsync.hub.bulk import upsert_customers
from contactsync.store import journal
from tests.conftest import Hub


def _records(n: int, changed: set[int] = frozenset()) -> list[dict[str, object]]:  # type: ignore[assignment]
    return [
        {
            "base": {
                "firstName": "X" if i in changed else f"N{i}",
                "contacts": {"email": f"b{i}@example.com"},
            },
            "externalId": f"e{i}",
        }
        for i in range(n)
    ]


def test_bulk_journals_only_changed_rows_and_reports_bad_ones(hub: Hub) -> None:
    first = upsert_customers(hub.db, hub.workspace_id, hub.node_id, _records(50), batch_size=7)
    assert (first.created, first.updated, first.unchanged, first.failed) == (50, 0, 0, [])
    with hub.db.read() as conn:
        before = journal.last_seq(conn, hub.workspace_id, None, None)
    bad = [{"base": {"contacts": {"email": "broken"}}}, {"base": {"firstName": 3}}]
    again = upsert_customers(
        hub.db, hub.workspace_id, hub.node_id, [*_records(50, {3, 30}), *bad], batch_size=7
    )
    assert (again.created, again.updated, again.unchanged) == (0, 2, 48)
    assert [(f.index, f.code) for f in again.failed] == [(50, "E201"), (51, "E203")]
    with hub.db.read() as conn:
        rows = journal.read(
            conn, hub.workspace_id, after_seq=before, since_ms=None, node_ids=None, entity=None, limit=100
        )
    assert [r.operation for r in rows] == ["UPDATE", "UPDATE"]


def test_bulk_automatic_writes_never_resubscribe(hub: Hub) -> None:
    rec = {
        "base": {
            "contacts": {"email": "c@example.com"},
            "subscriptions": [{"id": "news", "subscribed": False}],
        }
    }
    upsert_customers(hub.db, hub.workspace_id, hub.node_id, [rec])
    rec["base"]["subscriptions"] = [{"id": "news", "subscribed": True}]  # type: ignore[index]
    report = upsert_customers(hub.db, hub.workspace_id, hub.node_id, [rec])
    assert report.consent_refused == [(0, "news")]


def run_cli(db_url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTACTSYNC_DATABASE_URL": db_url, **settings}
    return subprocess.run(
        [sys.executable, "-m", "contactsync", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
def test_cli_end_to_end(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/cli.db"
    demo = run_cli(db_url, "demo", "--json")
    assert demo.returncode == 0, demo.stderr
    info = json.loads(demo.stdout)
    assert info["token"].startswith("cs_")
    node = json.loads(run_cli(db_url, "node", "create", "shop", "--json").stdout)
    assert node["workspaceId"] == info["workspaceId"] and node["kind"] == "standard"
    token = json.loads(run_cli(db_url, "token", "create", "--role", "user", "--json").stdout)
    assert token["role"] == "user" and token["token"].startswith("cs_")
    found = json.loads(
        run_cli(
            db_url, "customers", "find", "--node", info["nodeId"], "--email", "ADA@example.com", "--json"
        ).stdout
    )
    assert [c["base"]["firstName"] for c in found["elements"]] == ["Ada"]
    missing = run_cli(db_url, "customers", "get", "no-such-id")
    assert missing.returncode == 2 and "E120" in missing.stderr and "what to do" in missing.stderr


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
def test_demo_gives_a_workspace_without_nodes_its_demo_node(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/cli.db"
    assert run_cli(db_url, "migrate").returncode == 0
    ws = json.loads(run_cli(db_url, "workspace", "create", "acme", "--json").stdout)
    demo = run_cli(db_url, "demo", "--json")
    assert demo.returncode == 0, demo.stderr
    info = json.loads(demo.stdout)
    nodes = json.loads(run_cli(db_url, "node", "list", "--json").stdout)
    assert info["workspaceId"] == ws["id"]
    assert [(n["id"], n["name"]) for n in nodes] == [(info["nodeId"], "main")]
    found = json.loads(run_cli(db_url, "customers", "find", "--node", info["nodeId"], "--json").stdout)
    assert found["elements"] == []  # the user's workspace is not seeded with demo customers


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
@pytest.mark.parametrize(
    "command",
    [
        ("customers", "get", "some-id"),
        ("customers", "find", "--node", "some-node"),
        ("node", "list"),
        ("token", "create", "--role", "user"),
        ("workspace", "list"),
    ],
)
def test_data_commands_on_an_unmigrated_database_say_to_migrate(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = run_cli(f"sqlite:///{tmp_path}/empty.db", *command)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error E102" in result.stderr and "has no contactsync schema" in result.stderr
    assert "run `contactsync migrate`" in result.stderr


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
def test_customers_find_honours_size_and_the_max_page_size(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/cli.db"
    node = json.loads(run_cli(db_url, "demo", "--json").stdout)["nodeId"]
    found = run_cli(db_url, "customers", "find", "--node", node, "--size", "2", "--json")
    assert json.loads(found.stdout)["page"] == {
        "size": 2,
        "totalElements": 3,
        "totalUnfilteredElements": 3,
        "totalPages": 2,
        "number": 0,
    }
    too_big = run_cli(
        db_url, "customers", "find", "--node", node, "--size", "3", CONTACTSYNC_MAX_PAGE_SIZE="2"
    )
    assert too_big.returncode == 2
    assert "error E200" in too_big.stderr and "size must be 1..2" in too_big.stderr


def test_docs_errors_is_generated_from_the_catalogue() -> None:
    from contactsync.errors import catalogue_markdown

    assert (Path(__file__).parents[2] / "docs" / "errors.md").read_text() == catalogue_markdown()
