"""Benchmark: real-time subscribe requests against the real service, beside its health check.

Starts ``contactsync serve`` as a subprocess on a free loopback port with a fresh SQLite
database (``contactsync demo`` seeds the workspace, node and admin token), then drives it
from this process's own client processes over loopback, keep-alive HTTP/1.1:

1. ``GET /healthz`` (one ``SELECT 1``) for ``--seconds``;
2. ``POST /api/v1/workspaces/{wid}/subscriptions`` (single opt-in, a new address each time,
   with a first name) for ``--seconds``.

Prints requests/s and p50/p99 latency of both, the CPU time per request of the server and
of the client processes, the ratio of the throughputs, the error count, and checks that
every address answered 2xx is subscribed in the database (zero lost).
Targets (issue 4): subscribe ≥ 30% of the health check's throughput, p99 < 100 ms, zero
errors, zero lost. Exit status 1 when one is missed.

Usage: python bench/realtime_api.py [--seconds 60] [--processes 2] [--threads 4]
       [--database-url URL]   (default: a temporary SQLite file)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

SUBSCRIPTION = "newsletter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contactsync", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        **kw,
    )


# --- the client side: one process, several threads, one keep-alive connection per thread ------


def drive(job: dict[str, Any]) -> dict[str, Any]:
    """Run one phase from this process for ``job['seconds']``; latencies in ms, addresses sent."""
    latencies: list[float] = []
    errors: list[str] = []
    accepted: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + job["seconds"]

    def worker(tid: int) -> None:
        mine: list[float] = []
        ok: list[str] = []
        bad: list[str] = []
        with httpx.Client(base_url=job["base"], headers=job["headers"], timeout=30) as client:
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                start = time.perf_counter()
                try:
                    if job["phase"] == "healthz":
                        r = client.get("/healthz")
                        email = ""
                    else:
                        email = f"bench-{job['pid']}-{tid}-{i}@example.com"
                        r = client.post(
                            job["path"],
                            json={
                                "nodeId": job["node"],
                                "email": email,
                                "subscriptions": [SUBSCRIPTION],
                                "profile": {"base": {"firstName": f"Bench{i}"}},
                            },
                        )
                except httpx.HTTPError as e:
                    bad.append(type(e).__name__)
                    continue
                mine.append((time.perf_counter() - start) * 1000)
                if 200 <= r.status_code < 300:
                    if email:
                        ok.append(email)
                else:
                    bad.append(f"{r.status_code} {r.text[:120]}")
        with lock:
            latencies.extend(mine)
            accepted.extend(ok)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(job["threads"])]
    started = time.perf_counter()
    cpu_started = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "latencies": latencies,
        "errors": errors,
        "accepted": accepted,
        "elapsed": time.perf_counter() - started,
        "cpu": time.process_time() - cpu_started,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(
    name: str, base: str, info: dict[str, str], args: argparse.Namespace, server_pid: int
) -> dict[str, Any]:
    cpu_before = cpu_seconds(server_pid)
    jobs = [
        {
            "phase": name,
            "base": base,
            "headers": {"Authorization": f"Bearer {info['token']}"},
            "path": f"/api/v1/workspaces/{info['workspaceId']}/subscriptions",
            "node": info["nodeId"],
            "seconds": args.seconds,
            "threads": args.threads,
            "pid": p,
        }
        for p in range(args.processes)
    ]
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        parts = pool.map(drive, jobs)
    server_cpu = cpu_seconds(server_pid) - cpu_before
    latencies = sorted(x for p in parts for x in p["latencies"])
    elapsed = max(p["elapsed"] for p in parts)
    errors = [e for p in parts for e in p["errors"]]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "phase": name,
        "requests": len(latencies),
        "rps": (len(latencies) - len(errors)) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "accepted": [a for p in parts for a in p["accepted"]],
        "server_cpu_ms": server_cpu * 1000 / max(1, len(latencies)),
        "client_cpu_ms": sum(p["cpu"] for p in parts) * 1000 / max(1, len(latencies)),
    }


# --- the check: every 2xx is in the database ----------------------------------------------------


def subscribed_addresses(db_path: Path, node_id: str) -> set[str]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT json_extract(c.data, '$.base.contacts.email') FROM customers c"
            " JOIN subscriptions s ON s.customer_id = c.id"
            " WHERE c.node_id = ? AND s.subscription_id = ? AND s.status = 'subscribed'",
            (node_id, SUBSCRIPTION),
        ).fetchall()
    return {r[0] for r in rows}


def subscribed_addresses_url(url: str, node_id: str) -> set[str]:
    from contactsync.store.db import Database

    db = Database(url)
    try:
        with db.read() as conn:
            rows = conn.exec_driver_sql(
                "SELECT c.data->'base'->'contacts'->>'email' FROM customers c"
                " JOIN subscriptions s ON s.customer_id = c.id"
                " WHERE c.node_id = %(node)s AND s.subscription_id = %(sub)s AND s.status = 'subscribed'",
                {"node": node_id, "sub": SUBSCRIPTION},
            ).fetchall()
    finally:
        db.dispose()
    return {r[0] for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="client threads (connections) per process")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (its schema must be empty)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    db_path = tmp / "hub.db"
    port = free_port()
    env = {
        **os.environ,
        "CONTACTSYNC_DATABASE_URL": args.database_url or f"sqlite:///{db_path}",
        "CONTACTSYNC_SECRET_KEY_FILE": str(tmp / "secret.key"),
        "CONTACTSYNC_HOST": "127.0.0.1",
        "CONTACTSYNC_PORT": str(port),
        "CONTACTSYNC_SMTP_HOST": "",
    }
    info = json.loads(cli(env, "demo", "--json").stdout)
    backend = env["CONTACTSYNC_DATABASE_URL"].split(":", 1)[0]
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "contactsync", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print(log_path.read_text(), file=sys.stderr)
                    raise SystemExit("the service did not start")
                time.sleep(0.1)
            print(
                f"contactsync serve (pid {server.pid}) on {base}, {backend};"
                f" {args.processes} client processes x {args.threads} connections,"
                f" {args.seconds:.0f} s per phase",
                flush=True,
            )
            health = phase("healthz", base, info, args, server.pid)
            subs = phase("subscribe", base, info, args, server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    stored = (
        subscribed_addresses_url(args.database_url, info["nodeId"])
        if args.database_url
        else subscribed_addresses(db_path, info["nodeId"])
    )
    lost = [a for a in subs["accepted"] if a not in stored]
    ratio = subs["rps"] / health["rps"] if health["rps"] else 0.0

    print(
        f"\n{'endpoint':<12}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'server CPU ms/req':>19}{'client CPU ms/req':>19}"
    )
    for r in (health, subs):
        print(
            f"{r['phase']:<12}{r['requests']:>10}{r['rps']:>10.0f}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['errors']:>8}{r['server_cpu_ms']:>19.2f}"
            f"{r['client_cpu_ms']:>19.2f}"
        )
        for sample in r["error_samples"]:
            print(f"    e.g. {sample}")
    print(f"\nsubscribe / healthz throughput: {ratio:.0%}")
    print(
        f"subscribes answered 2xx: {len(subs['accepted'])}; subscribed in the database: "
        f"{len(stored)}; lost: {len(lost)}"
    )
    checks = {
        "throughput >= 30% of healthz": ratio >= 0.30,
        "subscribe p99 < 100 ms": subs["p99_ms"] < 100,
        "zero errors": health["errors"] == 0 and subs["errors"] == 0,
        "zero lost subscriptions": not lost,
    }
    for name, ok in checks.items():
        print(f"  {'met ' if ok else 'MISSED'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
