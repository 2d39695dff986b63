"""History retention: old logs go, with their children; the newest run, resumable runs and
unfinished work stay; customers and consent are never touched."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contactsync import retention
from contactsync.cli import admin  # noqa: F401 - registers `prune`
from contactsync.cli import app as cli_app
from contactsync.errors import ConfigError
from contactsync.exchange import jobs
from contactsync.exchange.jobs import ExchangeEnv
from contactsync.hub import workspaces
from contactsync.hub.bulk import upsert_customers
from contactsync.hub.times import now_ms
from contactsync.notify import webhooks
from contactsync.secrets import SecretBox, new_key
from contactsync.settings import Settings
from contactsync.store.exchange_tables import exchange_failed_rows, exchange_runs
from contactsync.store.tables import consent_ledger, customers, journal, run_records, runs
from contactsync.store.webhook_tables import inbound_events, webhook_attempts, webhook_deliveries
from contactsync.sync import sources
from contactsync.sync.runs import SyncEnv
from tests.conftest import Hub

DAY = retention.DAY_MS
NOW = now_ms()
OLD = NOW - 100 * DAY  # past the default 90 days
RECENT = NOW - 10 * DAY


def _id() -> str:
    return str(uuid.uuid4())


@dataclass
class History:
    """Ids of the rows the ``made`` fixture inserts, by what should become of them."""

    gone: dict[str, set[str]]  # kind → ids that a 90-day prune deletes
    kept: dict[str, set[str]]  # kind → ids that stay


TABLES = {
    "sync runs": runs,
    "exchange runs": exchange_runs,
    "webhook deliveries": webhook_deliveries,
    "inbound events": inbound_events,
}


def _source(hub: Hub, name: str) -> str:
    """A memory source on a node of its own (one source per node)."""
    node = hub.node_id if name == "crm" else workspaces.create_node(hub.db, hub.workspace_id, name).id
    spec = {
        "name": name,
        "node": node,
        "provider": "memory",
        "config": {"user_db": f"retention-{hub.workspace_id}-{name}"},
        "sync": {
            "field_map": [{"hub": "base.contacts.email", "provider": "email"}],
            "match_keys": ["base.contacts.email"],
        },
    }
    env = SyncEnv(hub.db, SecretBox([new_key().encode()]))
    return sources.create_source(env, hub.workspace_id, spec).id


def _job(hub: Hub, root: Path) -> str:
    settings = Settings(exchange_local_root=str(root), secret_keys=new_key())
    env = ExchangeEnv(hub.db, settings, SecretBox.from_settings(settings))
    (root / "box").mkdir(parents=True, exist_ok=True)
    body = {
        "name": "daily",
        "node": hub.node_id,
        "module": "importer",
        "endpoint": {"url": f"file://{root}/box"},
        "mapping": {"email": "base.contacts.email"},
    }
    return jobs.create_job(env, hub.workspace_id, body).id


@pytest.fixture
def made(hub: Hub, tmp_path: Path) -> History:
    gone: dict[str, set[str]] = {k: set() for k in TABLES}
    kept: dict[str, set[str]] = {k: set() for k in TABLES}
    a, b = _source(hub, "crm"), _source(hub, "shop")
    job = _job(hub, tmp_path / "exchange")
    hook, _ = webhooks.create_webhook(
        hub.db, SecretBox([new_key().encode()]), hub.workspace_id, url="http://127.0.0.1:9/", events=["*"]
    )

    def run(source: str, status: str, started: int, ended: int | None, records: int = 0) -> str:
        run_id = _id()
        conn.execute(
            runs.insert().values(
                id=run_id, source_id=source, trigger="schedule", direction="both", dry_run=False,
                status=status, started_at=started, ended_at=ended, heartbeat_at=ended or started,
                owner="elsewhere:1", counts="{}",
            )
        )  # fmt: skip
        for n in range(records):
            conn.execute(
                run_records.insert().values(
                    run_id=run_id, side="hub", action="updated", key=f"p{n}@example.com"
                )
            )
        return run_id

    def xrun(status: str, started: int, progress: int = 0, resumed_by: str | None = None) -> str:
        run_id = _id()
        conn.execute(
            exchange_runs.insert().values(
                id=run_id, job_id=job, trigger="schedule", status=status, started_at=started,
                ended_at=started + 60_000, heartbeat_at=started, owner="elsewhere:1", progress=progress,
                counts="{}", resumed_by=resumed_by,
            )
        )  # fmt: skip
        conn.execute(
            exchange_failed_rows.insert().values(
                run_id=run_id, row_number=3, code="E606", message="invalid email", raw="x;not-an-email"
            )
        )
        return run_id

    def delivery(status: str, created: int) -> str:
        delivery_id = _id()
        conn.execute(
            webhook_deliveries.insert().values(
                id=delivery_id, webhook_id=hook["id"], event_id=_id(), event_type="customer.updated",
                body="{}", status=status, attempts=1, created_at=created, retry_from=created,
            )
        )  # fmt: skip
        conn.execute(webhook_attempts.insert().values(delivery_id=delivery_id, at=created, duration_ms=5))
        return delivery_id

    def inbound(status: str, received: int) -> str:
        event_id = _id()
        conn.execute(
            inbound_events.insert().values(
                id=event_id, source_id=a, event_key=event_id, event_type="unsubscribe", received_at=received,
                remote_ids="[]", payload="{}", status=status, attempts=0,
            )
        )  # fmt: skip
        return event_id

    with hub.db.write() as conn:
        gone["sync runs"].add(run(a, "succeeded", OLD, OLD + 1000, records=3))
        gone["sync runs"].add(run(a, "failed", OLD + 1000, OLD + 2000, records=1))
        kept["sync runs"].add(run(a, "running", OLD + 2000, None))  # a run still going, whatever its age
        kept["sync runs"].add(run(a, "succeeded", RECENT, RECENT + 1000))
        kept["sync runs"].add(run(b, "succeeded", OLD, OLD + 1000, records=2))  # b's newest run

        gone["exchange runs"].add(xrun("succeeded", OLD))
        gone["exchange runs"].add(xrun("interrupted", OLD + 1000, progress=10, resumed_by=_id()))
        gone["exchange runs"].add(xrun("failed", OLD + 2000, progress=0))  # nothing committed to resume
        kept["exchange runs"].add(xrun("interrupted", OLD + 3000, progress=10))  # a later run resumes it
        kept["exchange runs"].add(xrun("succeeded", RECENT))

        gone["webhook deliveries"].add(delivery("delivered", OLD))
        gone["webhook deliveries"].add(delivery("failed", OLD))
        kept["webhook deliveries"].add(delivery("pending", OLD))  # still being retried
        kept["webhook deliveries"].add(delivery("delivered", RECENT))

        gone["inbound events"].add(inbound("processed", OLD))
        gone["inbound events"].add(inbound("ignored", OLD))
        kept["inbound events"].add(inbound("queued", OLD))
        kept["inbound events"].add(inbound("processed", RECENT))
    return History(gone, kept)


def _ids(hub: Hub) -> dict[str, set[str]]:
    with hub.db.read() as conn:
        return {kind: set(conn.execute(sa.select(t.c.id)).scalars()) for kind, t in TABLES.items()}


def _children(hub: Hub) -> dict[str, int]:
    with hub.db.read() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (run_records, exchange_failed_rows, webhook_attempts)
        }


def _counts(h: History) -> dict[str, int]:
    return {kind: len(ids) for kind, ids in h.gone.items()}


def test_a_dry_run_counts_and_deletes_nothing(hub: Hub, made: History) -> None:
    before = _ids(hub)
    report = retention.prune(hub.db, 90, dry_run=True)
    assert report.counts == _counts(made)
    assert _ids(hub) == before


def test_prune_deletes_old_finished_history_with_its_children(hub: Hub, made: History) -> None:
    with hub.db.read() as conn:
        kept_children = {
            "run_records": conn.execute(
                sa.select(sa.func.count()).where(run_records.c.run_id.in_(made.kept["sync runs"]))
            ).scalar_one(),
        }
    report = retention.prune(hub.db, 90, batch=1)  # one row per transaction: the batches add up
    assert report.counts == _counts(made)
    assert _ids(hub) == made.kept
    children = _children(hub)
    # what belonged to the deleted rows went with them; the kept rows keep theirs
    assert children["run_records"] == kept_children["run_records"] == 2
    assert children["exchange_failed_rows"] == len(made.kept["exchange runs"])
    assert children["webhook_attempts"] == len(made.kept["webhook deliveries"])
    # a second pass finds nothing more
    assert retention.prune(hub.db, 90).total == 0


def _data_counts(hub: Hub) -> dict[str, int]:
    with hub.db.read() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (customers, journal, consent_ledger)
        }


def test_a_shorter_window_takes_more_and_never_the_data(hub: Hub, made: History) -> None:
    old_customer = {
        "base": {
            "contacts": {"email": "ada@example.com"},
            "subscriptions": [{"id": "newsletter", "status": "unsubscribed", "reason": "too many emails"}],
        }
    }
    assert upsert_customers(hub.db, hub.workspace_id, hub.node_id, [old_customer]).created == 1
    data = _data_counts(hub)
    assert all(data.values())  # a customer, its journal entry, its consent ledger entry

    report = retention.prune(hub.db, 5)
    # the recent finished deliveries and events go too; unfinished ones and the newest run of
    # each source and job still stay
    assert report.counts == {**_counts(made), "webhook deliveries": 3, "inbound events": 3}
    left = _ids(hub)
    assert left["webhook deliveries"] == _with_status(hub, webhook_deliveries, "pending")
    assert left["inbound events"] == _with_status(hub, inbound_events, "queued")
    assert left["sync runs"] == made.kept["sync runs"]
    assert _data_counts(hub) == data


def _with_status(hub: Hub, table: sa.Table, status: str) -> set[str]:
    with hub.db.read() as conn:
        ids = set(conn.execute(sa.select(table.c.id).where(table.c.status == status)).scalars())
    assert len(ids) == 1
    return ids


def test_less_than_a_day_is_refused(hub: Hub) -> None:
    with pytest.raises(ConfigError) as e:
        retention.prune(hub.db, 0)
    assert e.value.code == "E100"


def test_cli_prune_shows_then_deletes(hub: Hub, made: History, cli_database: None) -> None:
    runner = CliRunner()
    dry = runner.invoke(cli_app, ["prune", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    shown = orjson.loads(dry.stdout)
    assert shown["dryRun"] is True and shown["days"] == 90 and shown["counts"] == _counts(made)
    assert _ids(hub) != made.kept

    done = runner.invoke(cli_app, ["prune"])
    assert done.exit_code == 0, done.output
    assert f"deleted {sum(_counts(made).values())} row(s) older than 90 days" in done.stdout
    assert _ids(hub) == made.kept

    refused = runner.invoke(cli_app, ["prune", "--days", "0"])
    assert refused.exit_code == 1 and "E100" in refused.output and "--days 0" in refused.output


def test_the_background_loop_prunes_and_history_days_0_keeps_everything(
    hub: Hub, made: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert retention.retention_loops(hub.db, Settings(history_days=0)) == []
    [(name, loop)] = retention.retention_loops(hub.db, Settings(history_days=90))
    assert name == "retention"
    monkeypatch.setattr(retention, "FIRST_PASS_S", 0.01)
    monkeypatch.setattr(retention, "INTERVAL_S", 3600.0)
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    deadline = now_ms() + 10_000
    while _ids(hub) != made.kept and now_ms() < deadline:
        stop.wait(0.05)
    stop.set()
    thread.join(5)
    assert _ids(hub) == made.kept
    assert not thread.is_alive()
