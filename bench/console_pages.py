"""Benchmark: console pages with 100,000 customers in a node, next to the same server's /healthz.

Loads N customers (a third subscribed to a newsletter) into a fresh database, adds a source
(the in-process memory provider) with a few runs, starts the real service (uvicorn on
loopback), signs in as a console user, then requests each page R times and prints the median
and the slowest time per page. Target: every page under 300 ms.

Usage: python bench/console_pages.py [--rows N] [--repeat R] [--database-url URL]
       (default 100,000 rows, 15 repeats, a SQLite file in a temporary folder)
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from contactsync.api import create_app
from contactsync.connectors import memory
from contactsync.hub import workspaces
from contactsync.hub.bulk import UpsertMode, upsert_customers
from contactsync.hub.context import WriteContext
from contactsync.secrets import SecretBox
from contactsync.settings import Settings
from contactsync.store.db import Database
from contactsync.sync import sources
from contactsync.sync.engine import run_source
from contactsync.sync.sources import SyncEnv
from contactsync.web import auth

PASSWORD = "benchmark console password"
TARGET_MS = 300


def customers(n: int) -> Any:
    for i in range(n):
        doc: dict[str, Any] = {
            "externalId": f"crm-{i}",
            "base": {
                "firstName": f"Name{i}",
                "lastName": f"Surname{i % 9973}",
                "contacts": {"email": f"user{i}@example.com"},
            },
        }
        if i % 3 == 0:
            doc["base"]["subscriptions"] = [{"id": "newsletter", "subscribed": True}]
        yield doc


def load(db: Database, rows: int, settings: Settings) -> tuple[str, str, str]:
    ws = workspaces.create_workspace(db, "bench")
    node = workspaces.create_node(db, ws.id, "main")
    started = time.perf_counter()
    upsert_customers(
        db, ws.id, node.id, customers(rows), ctx=WriteContext(origin="import:bench"), mode=UpsertMode.REPLACE
    )
    print(f"loaded {rows:,} customers in {time.perf_counter() - started:.1f} s")
    env = SyncEnv(db, SecretBox.from_settings(settings))
    udb = memory.user_db("bench-console")
    for i in range(50):
        udb.add({"email": f"remote{i}@example.com", "first_name": f"R{i}"})
    spec = {
        "name": "crm",
        "node": node.id,
        "provider": "memory",
        "config": {"user_db": udb.name},
        "sync": {
            "field_map": [
                {"hub": "base.contacts.email", "provider": "email"},
                {"hub": "base.firstName", "provider": "first_name"},
            ],
            "match_keys": ["base.contacts.email"],
            "direction": "to_hub",
            "initial_merge": True,
        },
    }
    source = sources.create_source(env, ws.id, spec)
    for _ in range(3):
        run_source(env, sources.get_source(env, ws.id, source.id))
    auth.create_user(db, ws.id, "bench", PASSWORD, "admin")
    return ws.id, node.id, source.id


def serve(db: Database, settings: Settings) -> tuple[uvicorn.Server, str]:
    port = 8765
    server = uvicorn.Server(
        uvicorn.Config(create_app(db, settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def timed(client: httpx.Client, path: str, repeat: int) -> list[float]:
    client.get(path).raise_for_status()  # warm-up (and a check that the page works)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        db = Database(url)
        if not db.is_sqlite:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
        db.migrate()
        settings = Settings(database_url=url, secret_key_file=str(Path(folder) / "secret.key"))
        _, node_id, source_id = load(db, args.rows, settings)
        server, base = serve(db, settings)
        with httpx.Client(base_url=base, timeout=60) as client:
            token = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            client.post("/login", data={"name": "bench", "password": PASSWORD, "login_csrf": token[1]})
            customer = re.search(r'href="/customers/([^"]+)"', client.get(f"/nodes/{node_id}").text)
            assert customer is not None
            run = re.search(
                r'href="/sources/[^/]+/runs/([^"/]+)"', client.get(f"/sources/{source_id}/log").text
            )
            assert run is not None
            pages = {
                "healthz": "/healthz",
                "node list": "/nodes",
                "customer list (page 1)": f"/nodes/{node_id}",
                "customer list (page 100)": f"/nodes/{node_id}?page=99",
                "search by email": f"/nodes/{node_id}?q=user4242@",
                "search by email start": f"/nodes/{node_id}?q=user4242",
                "search by last name": f"/nodes/{node_id}?q=surname9971",
                "search by first name (a scan)": f"/nodes/{node_id}?q=name4242",
                "customer page": f"/customers/{customer[1]}",
                "sources": "/sources",
                "sync log": f"/sources/{source_id}/log",
                "run records": f"/sources/{source_id}/runs/{run[1]}/records",
            }
            print(f"{args.rows:,} customers, {db.url.get_backend_name()}, {args.repeat} requests per page")
            print(f"{'page':<28} {'median ms':>10} {'max ms':>8}")
            worst = 0.0
            for name, path in pages.items():
                times = timed(client, path, args.repeat)
                median = statistics.median(times)
                if name != "healthz":
                    worst = max(worst, median)
                print(f"{name:<28} {median:>10.1f} {max(times):>8.1f}")
        server.should_exit = True
        db.dispose()
    verdict = "within" if worst < TARGET_MS else "OVER"
    print(f"slowest page median {worst:.1f} ms: {verdict} the {TARGET_MS} ms target")
    sys.exit(0 if worst < TARGET_MS else 1)


if __name__ == "__main__":
    main()
