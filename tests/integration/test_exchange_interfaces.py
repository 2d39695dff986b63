"""Exchange jobs through the management API (a live server) and the CLI (a subprocess), the
email report through a real SMTP server, and credentials masked everywhere."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from contactsync.errors import ConfigError
from contactsync.exchange import jobs, runs
from tests.conftest import Hub
from tests.fixtures.smtp import Mailbox
from tests.integration.test_exchange_support import Ex, csv_text, ex  # noqa: F401 - the `ex` fixture

HEADER = ["email", "first"]
MAPPING = {"email": "base.contacts.email", "first": "base.firstName"}


def _wait_run(client: httpx.Client, base: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = client.get(f"{base}/runs/{run_id}").json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_api_crud_run_now_report_and_schedule(ex: Ex, live_server: str, hub: Hub) -> None:
    base = f"{live_server}/api/v1/workspaces/{hub.workspace_id}/exchange-jobs"
    with httpx.Client(headers=hub.headers, timeout=30) as client:
        body = {
            "name": "crm-import",
            "node": "main",
            "module": "importer",
            "endpoint": {"url": "sftp://crm:s3cret@files.example.com:22/out", "known_hosts": ""},
            "mapping": MAPPING,
        }
        created = client.post(base, json=body)
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["endpoint"] == {
            "url": "sftp://crm@files.example.com:22/out",
            "known_hosts": "",
            "password": "********",
        }
        assert "s3cret" not in created.text
        # switch it to the local folder (the password goes with the old server)
        changed = client.patch(f"{base}/crm-import", json={"endpoint": {"url": f"file://{ex.box}"}})
        assert changed.status_code == 200, changed.text
        assert "password" not in changed.json()["endpoint"]
        assert [j["name"] for j in client.get(base).json()["elements"]] == ["crm-import"]

        bad = client.post(base, json={**body, "name": "x", "mapping": {"email": "base.nope.x", "y": "wrong"}})
        assert bad.status_code == 400
        assert {e["code"] for e in bad.json()["errors"]} >= {"E634"}

        ex.put("in.csv", csv_text(HEADER, [["a@example.com", "A"], ["oops", "B"]]))
        started = client.post(f"{base}/crm-import/runs")
        assert started.status_code == 202, started.text
        run = _wait_run(client, f"{base}/crm-import", started.json()["id"])
        assert run["status"] == "succeeded", run
        assert (run["counts"]["inserted"], run["counts"]["failed"]) == (1, 1)
        listed = client.get(f"{base}/crm-import/runs").json()["elements"]
        assert [r["id"] for r in listed] == [run["id"]]
        failed = client.get(f"{base}/crm-import/runs/{run['id']}/failed.csv")
        assert failed.status_code == 200
        assert failed.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(failed.text)))
        assert [(r["row"], r["error_code"], r["email"]) for r in rows] == [("2", "E201", "oops")]
        assert client.get(f"{base}/crm-import/runs/nope/failed.csv").status_code == 404

        assert client.get(f"{base}/crm-import/schedule").status_code == 404
        put = client.put(
            f"{base}/crm-import/schedule",
            json={"times": ["06:30"], "days_of_week": ["mon", "fri"], "timezone": "Europe/Rome"},
        )
        assert put.status_code == 200, put.text
        assert len(put.json()["next_runs"]) == 5
        paused = client.post(f"{base}/crm-import/pause").json()
        assert paused["paused"] is True and paused["next_runs"] == []
        resumed = client.post(f"{base}/crm-import/resume").json()
        assert resumed["paused"] is False and len(resumed["next_runs"]) == 5
        # run now is always available, paused or not; a second one while it runs is refused
        assert client.delete(f"{base}/crm-import").status_code == 200
        assert client.get(f"{base}/crm-import").status_code == 404


def test_one_run_per_job_at_a_time(ex: Ex) -> None:
    job = ex.job(mapping=MAPPING)
    first = runs.start_run(ex.env, job, "test")
    with pytest.raises(ConfigError) as e:
        runs.start_run(ex.env, job, "test")
    assert e.value.code == "E632"
    # a run whose process is gone does not block: it is marked interrupted
    with ex.hub.db.write() as conn:
        from contactsync.store import exchange as store

        store.update_run(conn, first, {"owner": "some-host-that-died:1"})
        store.update_run(conn, first, {"heartbeat_at": 0})
    second = runs.start_run(ex.env, job, "test")
    assert runs.get_run(ex.env, ex.hub.workspace_id, first)[1]["status"] == "interrupted"
    assert second != first


def test_email_report_with_counts_codes_and_the_failed_rows(ex: Ex, smtp_server: Mailbox) -> None:
    ex.env.settings = ex.env.settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_security": "none"}
    )
    job = ex.job(mapping=MAPPING, recipients=["ops@example.com", "crm@example.com"])
    ex.put("in.csv", csv_text(HEADER, [["a@example.com", "A"], ["bad", "B"], ["", "C"]]))
    run = ex.run_one(job)
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "ops@example.com, crm@example.com"
    assert job.name in message["Subject"] and "succeeded" in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "3 read: 1 inserted" in text
    assert "E201" in text and "E620" in text
    [attachment] = list(message.iter_attachments())
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert [r["error_code"] for r in rows] == ["E201", "E620"]
    assert runs.get_run(ex.env, ex.hub.workspace_id, run["id"])[1]["report"].startswith(
        "sent to ops@example.com"
    )


def test_email_report_failure_is_recorded_not_raised(ex: Ex) -> None:
    ex.env.settings = ex.env.settings.model_copy(update={"smtp_host": ""})
    job = ex.job(mapping=MAPPING, recipients=["ops@example.com"])
    run = ex.run_one(job)
    assert run["status"] == "skipped"
    assert run["report"].startswith("not sent: E103")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contactsync", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
def test_cli_create_run_runs_report_schedule(tmp_path: Path) -> None:
    root = tmp_path / "exchange"
    (root / "box").mkdir(parents=True)
    env = {
        **os.environ,
        "CONTACTSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "CONTACTSYNC_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
        "CONTACTSYNC_EXCHANGE_LOCAL_ROOT": str(root),
    }
    assert _cli(env, "migrate").returncode == 0
    assert _cli(env, "workspace", "create", "cli").returncode == 0
    assert _cli(env, "node", "create", "main").returncode == 0
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "name": "nightly",
                "node": "main",
                "module": "importer",
                "endpoint": {"url": f"file://{root / 'box'}"},
                "format": {"format": "csv", "delimiter": ";"},
                "mapping": MAPPING,
            }
        )
    )
    made = _cli(env, "exchange", "create", "-f", str(spec), "--json")
    assert made.returncode == 0, made.stderr
    (root / "box" / "a.csv").write_text("email;first\nA@example.com;A\nbad;B\n")
    ran = _cli(env, "exchange", "run", "nightly", "--json")
    assert ran.returncode == 0, ran.stderr
    [run] = json.loads(ran.stdout)
    assert (run["status"], run["counts"]["inserted"], run["counts"]["failed"]) == ("succeeded", 1, 1)
    listed = _cli(env, "exchange", "runs", "nightly", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run["id"]]
    out = tmp_path / "failed.csv"
    rep = _cli(env, "exchange", "report", run["id"], "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    assert list(csv.reader(io.StringIO(out.read_text()))) == [
        ["row", "error_code", "error_message", "email", "first"],
        ["2", "E201", "base.contacts.email: 'bad' is not a valid email address", "bad", "B"],
    ]
    sched = _cli(env, "exchange", "schedule", "nightly", "--cron", "0 2 * * *", "--timezone", "Europe/Rome")
    assert sched.returncode == 0, sched.stderr
    assert "next:" in sched.stdout
    paused = _cli(env, "exchange", "pause", "nightly", "--json")
    assert json.loads(paused.stdout)["paused"] is True
    again = _cli(env, "exchange", "run", "nightly")  # no file left: a skipped run, not an error
    assert again.returncode == 0 and "E633" in again.stdout
    missing = _cli(env, "exchange", "run", "nope")
    assert missing.returncode == 2 and "E120" in missing.stderr


def test_job_spec_round_trip_keeps_credentials_sealed(ex: Ex) -> None:
    job = ex.job(
        mapping=MAPPING, endpoint={"url": f"file://{ex.box}", "password": "pw", "private_key": "KEY"}
    )
    with ex.hub.db.read() as conn:
        from contactsync.store import exchange as store

        row = store.get_job(conn, ex.hub.workspace_id, job.name)
    assert row is not None and "pw" not in row.options and "KEY" not in row.secrets
    assert job.as_json()["endpoint"]["private_key"] == "********"
    updated = jobs.update_job(ex.env, ex.hub.workspace_id, job.name, {"recipients": ["a@example.com"]})
    assert updated.secrets == {"password": "pw", "private_key": "KEY"}
    removed = jobs.update_job(ex.env, ex.hub.workspace_id, job.name, {"endpoint": {"private_key": None}})
    assert removed.secrets == {"password": "pw"}
