"""Shared by the exchange tests: a file endpoint under a temporary exchange root, job helpers."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from contactsync.exchange import jobs, report, runs
from contactsync.exchange.jobs import ExchangeEnv, Job
from contactsync.hub import customers as hub_customers
from contactsync.secrets import SecretBox, new_key
from contactsync.settings import Settings
from contactsync.store import journal
from contactsync.store.tables import customers
from tests.conftest import Hub

_names = itertools.count()


@dataclass
class Ex:
    env: ExchangeEnv
    hub: Hub
    root: Path  # the exchange root; jobs read and write in root/"box"

    @property
    def box(self) -> Path:
        folder = self.root / "box"
        folder.mkdir(exist_ok=True)
        return folder

    def put(self, name: str, content: str | bytes) -> Path:
        path = self.box / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def job(self, module: str | None = None, **spec: Any) -> Job:
        """A job on the test node reading and writing ``self.box`` (module: importer, unless a
        preset says)."""
        body = {
            "name": spec.pop("name", f"job-{next(_names)}"),
            "node": self.hub.node_id,
            "endpoint": {"url": f"file://{self.box}"},
            **spec,
        }
        if module is not None or "preset" not in spec:
            body["module"] = module or "importer"
        return jobs.create_job(self.env, self.hub.workspace_id, body)

    def run(self, job: Job, **kwargs: Any) -> list[dict[str, Any]]:
        outcomes = runs.run_job(self.env, self.hub.workspace_id, job.id, trigger="test", **kwargs)
        return [o.run for o in outcomes]

    def run_one(self, job: Job, **kwargs: Any) -> dict[str, Any]:
        done = self.run(job, **kwargs)
        assert len(done) == 1, done
        return done[0]

    def failed(self, job: Job, run_id: str) -> list[dict[str, str]]:
        text = report.failed_csv(self.env, job, run_id).decode()
        return list(csv.DictReader(io.StringIO(text)))

    def customers(self) -> dict[str, dict[str, Any]]:
        """The node's customers by email (those without an email by id)."""
        out = {}
        with self.hub.db.read() as conn:
            ids = [r.id for r in conn.execute(sa.select(customers.c.id))]
        for cid in ids:
            c = hub_customers.get(self.hub.db, self.hub.workspace_id, cid)
            out[(c["base"].get("contacts") or {}).get("email") or cid] = c
        return out

    def journal_ops(self) -> list[tuple[str, str]]:
        with self.hub.db.read() as conn:
            rows = journal.read(
                conn,
                self.hub.workspace_id,
                after_seq=0,
                since_ms=None,
                node_ids=None,
                entity="CUSTOMER",
                limit=1_000_000,
            )
        return [(r.entity_id, r.operation) for r in rows]


@pytest.fixture
def ex(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ex:
    root = tmp_path / "exchange"
    root.mkdir()
    monkeypatch.setenv("CONTACTSYNC_EXCHANGE_LOCAL_ROOT", str(root))
    settings = Settings(exchange_local_root=str(root), secret_keys=new_key())
    return Ex(ExchangeEnv(hub.db, settings, SecretBox.from_settings(settings)), hub, root)


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def xml_text(rows: list[dict[str, str]]) -> str:
    def esc(v: str) -> str:
        return v.replace("&", "&amp;").replace("<", "&lt;")

    body = "".join(
        "<record>" + "".join(f"<{k}>{esc(v)}</{k}>" for k, v in row.items()) + "</record>\n" for row in rows
    )
    return f'<?xml version="1.0" encoding="utf-8"?>\n<records>\n{body}</records>\n'


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def rows_of(records: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [orjson.loads(orjson.dumps(r)) for r in records]
