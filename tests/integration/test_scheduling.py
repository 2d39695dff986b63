"""Schedules, the run queue, the scheduler and the worker on SQLite and PostgreSQL.

The scheduler is driven with explicit times, so a test can walk through days (or DST nights)
in a few hundred ticks; the queue and the workers run for real, with threads on their own
``Database`` objects standing for separate processes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from contactsync.connectors import memory
from contactsync.errors import ConfigError, NotFoundError, TransientError
from contactsync.hub import customers as hub_customers
from contactsync.hub.times import now_ms
from contactsync.scheduling import queue, schedules, source_runs, targets  # noqa: F401 - registers "source"
from contactsync.scheduling.queue import RequestStatus
from contactsync.scheduling.realtime import Realtime
from contactsync.scheduling.scheduler import Scheduler
from contactsync.scheduling.worker import Worker
from contactsync.secrets import SecretBox, new_key
from contactsync.settings import Settings
from contactsync.store import sync as sync_store
from contactsync.store.db import Database
from contactsync.store.schedule_tables import run_requests
from contactsync.sync import sources
from contactsync.sync.sources import Source, SyncEnv
from tests.conftest import Hub

ROME = ZoneInfo("Europe/Rome")
MINUTE = 60_000
KEY = new_key()
_names = itertools.count()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        secret_keys=KEY,
        worker_max_attempts=3,
        realtime_debounce_seconds=2.0,
        realtime_max_delay_seconds=10.0,
    )


@pytest.fixture
def twin(db: Database) -> Iterator[Database]:
    """A second handle on the same database, as another process would have."""
    other = Database(db.url.render_as_string(hide_password=False))
    yield other
    other.dispose()


def ms(*args: int, tz: dt.tzinfo = ROME) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc,arg-type]


def requests(db: Database, kind: str | None = None, target: str | None = None) -> list[queue.Request]:
    return sorted(
        queue.list_requests(db, target_kind=kind, target_id=target, limit=10_000),
        key=lambda r: (r.scheduled_for or 0, r.enqueued_at),
    )


def set_schedule(db: Database, target: str, spec: dict[str, Any], kind: str = "exchange") -> dict[str, Any]:
    with db.write() as conn:
        return schedules.set_schedule(conn, kind, target, spec)


def set_next_run(db: Database, target: str, at: int, kind: str = "exchange") -> None:
    """Pretend the schedule was saved before ``at`` (its next fire time is then in the past)."""
    from contactsync.store.schedule_tables import schedules as table

    with db.write() as conn:
        conn.execute(
            table.update()
            .where(table.c.target_kind == kind, table.c.target_id == target)
            .values(next_run_at=at)
        )


# --- schedules ------------------------------------------------------------------------------


def test_a_schedule_is_stored_shown_paused_resumed_and_deleted(db: Database) -> None:
    shown = set_schedule(
        db, "job-1", {"times": ["06:00"], "days_of_week": ["mon"], "timezone": "Europe/Rome"}
    )
    assert shown["as_cron"] == ["0 6 * * 1"] and len(shown["next_runs"]) == schedules.SHOWN_RUNS
    assert all(
        dt.datetime.fromisoformat(t).strftime("%a %H:%M") == "Mon 06:00" for t in shown["next_runs_at"]
    )
    with db.read() as conn:
        stored = schedules.get_schedule(conn, "exchange", "job-1")
    assert stored is not None and stored["times"] == ["06:00"] and stored["next_runs"] == shown["next_runs"]
    with db.write() as conn:
        paused = schedules.pause(conn, "exchange", "job-1")
    assert paused["paused"] is True and paused["next_runs"] == []
    with db.write() as conn:
        resumed = schedules.resume(conn, "exchange", "job-1")
    assert resumed["paused"] is False and resumed["next_runs"] == shown["next_runs"]
    with db.write() as conn:
        schedules.delete_schedule(conn, "exchange", "job-1")
        assert schedules.get_schedule(conn, "exchange", "job-1") is None
        with pytest.raises(NotFoundError):
            schedules.pause(conn, "exchange", "job-1")


def test_the_scheduler_fires_each_tick_once_not_while_paused_and_not_after_the_end(db: Database) -> None:
    start = now_ms()
    spec = {"cron": "*/10 * * * *", "end": dt.datetime.fromtimestamp(start / 1000 + 6000, dt.UTC).isoformat()}
    set_schedule(db, "job-1", spec)
    scheduler = Scheduler(db, Settings())
    for t in range(start, start + 41 * MINUTE, MINUTE):  # 41 ticks: whatever minute of the slot it is
        scheduler.tick(t)
    fired = [r.scheduled_for for r in requests(db, "exchange")]
    assert fired == schedules.next_runs(spec, 4, start)  # the 4 fire times of these 40 minutes
    assert all(r.trigger == "schedule" for r in requests(db))

    with db.write() as conn:
        schedules.pause(conn, "exchange", "job-1", now=start + 40 * MINUTE)
    for t in range(start + 40 * MINUTE, start + 65 * MINUTE, MINUTE):
        scheduler.tick(t)
    assert len(requests(db)) == 4
    with db.write() as conn:
        resumed = schedules.resume(conn, "exchange", "job-1", now=start + 65 * MINUTE)
    # resuming does not replay the ticks missed while paused; past the end nothing fires
    for t in range(start + 65 * MINUTE, start + 120 * MINUTE, MINUTE):
        scheduler.tick(t)
    fired = [r.scheduled_for for r in requests(db, "exchange")]
    assert resumed["next_runs"] and fired[4:] == resumed["next_runs"]  # until the end: none after it
    assert all(f is not None and start + 65 * MINUTE < f <= start + 100 * MINUTE for f in fired[4:])


def test_two_schedulers_enqueue_each_tick_exactly_once(db: Database, twin: Database) -> None:
    first = set_schedule(db, "job-1", {"cron": "* * * * *"})["next_runs"][0]
    set_schedule(db, "job-2", {"times": ["00:00"], "days_of_month": list(range(1, 32))})
    start = now_ms()
    times = list(range(start, start + 30 * MINUTE, 15_000))  # 30 minutes in 15-second steps
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler(handle: Database) -> None:
        s = Scheduler(handle, Settings())
        try:
            for t in times:
                barrier.wait(timeout=30)
                s.tick(t)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(h,)) for h in (db, twin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    fired = [r.scheduled_for for r in requests(db, "exchange", "job-1")]
    expected = [t for t in schedules.next_runs({"cron": "* * * * *"}, 40, first - 1) if t <= times[-1]]
    assert len(expected) >= 29 and fired == expected


def test_the_same_tick_enqueued_twice_at_once_is_one_request(db: Database, twin: Database) -> None:
    barrier = threading.Barrier(2)
    ids: list[str] = []

    def enqueue(handle: Database) -> None:
        barrier.wait(timeout=30)
        for n in range(20):
            ids.append(queue.enqueue(handle, "exchange", "job-1", trigger="schedule", scheduled_for=n))

    threads = [threading.Thread(target=enqueue, args=(h,)) for h in (db, twin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(ids) == 40 and len(set(ids)) == 20
    assert len(requests(db)) == 20
    # requests without a tick (run now) are never merged
    assert queue.enqueue(db, "exchange", "job-1") != queue.enqueue(db, "exchange", "job-1")


def test_missed_ticks_fire_once_for_the_most_recent_one(db: Database) -> None:
    set_schedule(db, "job-1", {"cron": "*/5 * * * *"})
    start = now_ms()
    scheduler = Scheduler(db, Settings())
    # the service was down for 3 hours (36 ticks missed); it ticks twice, 30 s apart, one minute
    # into a 5-minute slot, so that no new tick falls between the two
    later = (start + 3 * 3600 * 1000) // 300_000 * 300_000 + 60_000
    scheduler.tick(later)
    scheduler.tick(later + 30_000)
    fired = requests(db, "exchange")
    assert [r.scheduled_for for r in fired] == [schedules.due_tick({"cron": "*/5 * * * *"}, later)]


@pytest.mark.parametrize(
    ("first_day", "expected"),
    [
        (
            (2027, 3, 26),  # 28 March 2027: 02:00 → 03:00
            ["03-26T02:30+01:00", "03-27T02:30+01:00", "03-28T03:30+02:00", "03-29T02:30+02:00"],
        ),
        (
            (2027, 10, 29),  # 31 October 2027: 03:00 → 02:00, 02:30 happens twice
            ["10-29T02:30+02:00", "10-30T02:30+02:00", "10-31T02:30+02:00", "11-01T02:30+01:00"],
        ),
    ],
)
def test_a_daily_0230_schedule_across_a_dst_night_runs_once_a_day(
    db: Database, first_day: tuple[int, int, int], expected: list[str]
) -> None:
    set_schedule(db, "job-1", {"cron": "30 2 * * *", "timezone": "Europe/Rome"})
    begin = ms(*first_day)
    set_next_run(db, "job-1", begin)
    scheduler = Scheduler(db, Settings())
    for t in range(begin, begin + 4 * 24 * 60 * MINUTE, 10 * MINUTE):
        scheduler.tick(t)
    fired = [dt.datetime.fromtimestamp(r.scheduled_for / 1000, ROME) for r in requests(db)]  # type: ignore[operator]
    assert [f.strftime("%m-%dT%H:%M%z")[:-2] + ":00" for f in fired] == expected


# --- the queue and the worker -----------------------------------------------------------------


def test_one_running_request_per_target(db: Database) -> None:
    a1 = queue.enqueue(db, "exchange", "a")
    a2 = queue.enqueue(db, "exchange", "a")
    b1 = queue.enqueue(db, "exchange", "b")
    first = queue.claim(db, "w1")
    second = queue.claim(db, "w2")
    assert (first and first.id, second and second.id) == (a1, b1)  # a2 waits: a is running
    assert queue.claim(db, "w3") is None
    queue.finish(db, a1, "w1")
    third = queue.claim(db, "w3")
    assert third is not None and third.id == a2 and third.attempts == 1
    assert queue.get_request(db, a1).status == RequestStatus.DONE  # type: ignore[union-attr]


def test_the_database_refuses_a_second_running_request_for_a_target(db: Database) -> None:
    queue.enqueue(db, "exchange", "a")
    queue.enqueue(db, "exchange", "a")
    assert queue.claim(db, "w1") is not None
    with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
        conn.execute(run_requests.update().where(run_requests.c.status == "queued").values(status="running"))


def test_racing_workers_never_run_one_target_twice_at_once(
    db: Database, twin: Database, settings: Settings
) -> None:
    lock = threading.Lock()
    running: dict[str, int] = {}
    overlaps: list[str] = []
    ran: list[str] = []

    def slow(_db: Database, _settings: Settings, target_id: str, _trigger: str, request_id: str) -> None:
        with lock:
            running[target_id] = running.get(target_id, 0) + 1
            if running[target_id] > 1:
                overlaps.append(target_id)
        threading.Event().wait(0.01)
        with lock:
            running[target_id] -= 1
            ran.append(request_id)

    targets.register("test-slow", slow)
    for n in range(24):
        queue.enqueue(db, "test-slow", f"t{n % 3}")
    third = Database(db.url.render_as_string(hide_password=False))

    def work(handle: Database, name: str) -> None:
        w = Worker(handle, settings, name)
        idle = 0
        while idle < 20:
            idle = 0 if w.run_one() else idle + 1

    threads = [threading.Thread(target=work, args=(h, f"w{i}")) for i, h in enumerate((db, twin, third, db))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    third.dispose()
    assert overlaps == []
    assert len(ran) == len(set(ran)) == 24
    assert {r.status for r in requests(db)} == {RequestStatus.DONE}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_requests_of_dead_workers_are_queued_again_then_given_up(db: Database) -> None:
    host = socket.gethostname()
    elsewhere = queue.enqueue(db, "exchange", "a")
    dead_here = queue.enqueue(db, "exchange", "b")
    alive_here = queue.enqueue(db, "exchange", "c")
    assert queue.claim(db, "other-host:1/w") is not None
    assert queue.claim(db, f"{host}:{_dead_pid()}/w") is not None
    assert queue.claim(db, f"{host}:{os.getpid()}/w") is not None
    with db.write() as conn:  # the other host's worker stopped beating 10 minutes ago
        conn.execute(
            run_requests.update()
            .where(run_requests.c.id != dead_here)
            .values(heartbeat=now_ms() - 10 * MINUTE)
        )
    reclaimed = queue.reclaim_stale(db, stale_ms=2 * MINUTE, max_attempts=2)
    assert sorted(reclaimed) == sorted([elsewhere, dead_here])  # this process is alive: kept
    assert queue.get_request(db, alive_here).status == RequestStatus.RUNNING  # type: ignore[union-attr]
    again = queue.get_request(db, elsewhere)
    assert again is not None and again.status == RequestStatus.QUEUED and again.error_code == "E667"

    # a second death of the same request: attempts spent, it fails with E667
    claimed = [queue.claim(db, "other-host:1/w"), queue.claim(db, "other-host:1/w")]
    assert {c.id for c in claimed if c} == {elsewhere, dead_here}
    with db.write() as conn:
        conn.execute(
            run_requests.update()
            .where(run_requests.c.id != alive_here)
            .values(heartbeat=now_ms() - 10 * MINUTE)
        )
    queue.reclaim_stale(db, stale_ms=2 * MINUTE, max_attempts=2)
    failed = queue.get_request(db, elsewhere)
    assert failed is not None and failed.status == RequestStatus.FAILED and failed.error_code == "E667"


def test_worker_outcomes_done_failed_retried_unknown_and_bug(db: Database, settings: Settings) -> None:
    def ok(*_: Any) -> None:
        return None

    def busy(*_: Any) -> None:
        raise TransientError("another run is going on", code="E666")

    def refused(*_: Any) -> None:
        raise ConfigError("the job's endpoint is wrong", code="E100")

    def bug(*_: Any) -> None:
        raise RuntimeError("boom")

    for kind, fn in (("test-ok", ok), ("test-busy", busy), ("test-refused", refused), ("test-bug", bug)):
        targets.register(kind, fn)
    ids = {
        kind: queue.enqueue(db, kind, "x") for kind in ("test-ok", "test-busy", "test-refused", "test-bug")
    }
    ids["unknown"] = queue.enqueue(db, "no-such-kind", "x")
    worker = Worker(db, settings)
    while worker.run_one():
        pass
    got = {k: queue.get_request(db, v) for k, v in ids.items()}
    assert got["test-ok"].status == RequestStatus.DONE  # type: ignore[union-attr]
    assert (got["test-refused"].status, got["test-refused"].error_code) == ("failed", "E100")  # type: ignore[union-attr]
    assert (got["test-bug"].status, got["test-bug"].error_code) == ("failed", "E999")  # type: ignore[union-attr]
    assert "RuntimeError: boom" in (got["test-bug"].error or "")  # type: ignore[union-attr]
    assert (got["unknown"].status, got["unknown"].error_code) == ("failed", "E665")  # type: ignore[union-attr]
    retried = got["test-busy"]
    assert retried is not None and (retried.status, retried.error_code, retried.attempts) == (
        "queued",
        "E666",
        1,
    )
    assert queue.claim(db, "w") is None  # it waits before the next attempt
    with db.write() as conn:  # time passes; after worker_max_attempts it fails
        conn.execute(run_requests.update().values(run_after=0))
    for _ in range(3):
        with db.write() as conn:
            conn.execute(run_requests.update().values(run_after=0))
        worker.run_one()
    final = queue.get_request(db, ids["test-busy"])
    assert final is not None and (final.status, final.attempts, final.error_code) == ("failed", 3, "E666")


# --- sources: background frequency and near-real-time push --------------------------------------


FIELD_MAP = [
    {"hub": "base.contacts.email", "provider": "email"},
    {"hub": "base.firstName", "provider": "first_name"},
]


def make_source(hub: Hub, **sync: Any) -> tuple[SyncEnv, Source, memory.MemoryUserDb]:
    env = SyncEnv(hub.db, SecretBox([KEY.encode()]))
    udb = memory.user_db(f"sched-{next(_names)}")
    spec = {
        "name": f"src-{udb.name}",
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": udb.name, "api_key": "memory-key"},
        "sync": {"field_map": FIELD_MAP, "match_keys": ["base.contacts.email"], **sync},
    }
    return env, sources.create_source(env, hub.workspace_id, spec), udb


def test_enabled_sources_sync_in_the_background_at_their_frequency(
    hub: Hub, twin: Database, settings: Settings
) -> None:
    env, source, udb = make_source(hub, frequency_minutes=15)
    hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": hub.node_id, "base": {"contacts": {"email": "a@x.io"}}}
    )
    now = now_ms()
    assert len(Scheduler(hub.db, settings).tick(now)) == 1
    assert Scheduler(twin, settings).tick(now) == []  # another scheduler: the source is in the queue
    assert [r.trigger for r in requests(hub.db, "source")] == ["schedule"]
    assert Worker(hub.db, settings).run_one()
    assert "a@x.io" in udb.by_email  # a source never run syncs at once
    with hub.db.read() as conn:
        (run,) = sync_store.list_runs(conn, source.id, 10)
    assert (run.trigger, run.status) == ("schedule", "succeeded")

    scheduler = Scheduler(hub.db, settings)
    assert scheduler.tick(now_ms()) == []  # it just ran
    assert scheduler.tick(run.started_at + 14 * MINUTE) == []
    due = scheduler.tick(run.started_at + 16 * MINUTE)
    assert len(due) == 1 and scheduler.tick(run.started_at + 17 * MINUTE) == []  # queued: not again
    assert queue.get_request(hub.db, due[0]).scheduled_for == run.started_at + 15 * MINUTE  # type: ignore[union-attr]

    sources.update_source(env, hub.workspace_id, source.id, {"enabled": False})
    assert Worker(hub.db, settings).run_one()  # queued before it was disabled: dropped, not failed
    assert queue.get_request(hub.db, due[0]).status == RequestStatus.DONE  # type: ignore[union-attr]
    assert scheduler.tick(run.started_at + 60 * MINUTE) == []  # disabled: no background sync


def test_a_manual_source_has_no_background_sync(hub: Hub, settings: Settings) -> None:
    make_source(hub, frequency_minutes=None)
    assert Scheduler(hub.db, settings).tick(now_ms() + 24 * 60 * MINUTE) == []


def test_hub_changes_are_pushed_after_a_quiet_moment_but_not_the_sources_own_writes(
    hub: Hub, settings: Settings
) -> None:
    _env, source, udb = make_source(hub, frequency_minutes=60)
    udb.add({"email": "from-provider@x.io", "first_name": "Pro"}, {})
    realtime = Realtime(hub.db, settings)
    t0 = now_ms()
    assert realtime.poll(t0) == []  # starts from the journal's end

    # the source's own sync writes the provider's record into the hub: no push back
    assert Worker(hub.db, settings).run_one() is False  # nothing queued yet
    sources_run = queue.enqueue(hub.db, "source", source.id)
    assert Worker(hub.db, settings).run_one()
    assert queue.get_request(hub.db, sources_run).status == RequestStatus.DONE  # type: ignore[union-attr]
    assert realtime.poll(t0 + 100) == [] and realtime.poll(t0 + 60_000) == []

    # a change through the hub API: pushed once the node is quiet for the debounce time
    (customer,) = [
        c
        for c in hub_customers.list_page(hub.db, hub.workspace_id, hub.node_id, size=10, max_size=10)[
            "elements"
        ]
    ]
    hub_customers.patch(hub.db, hub.workspace_id, customer["id"], {"base": {"firstName": "Changed"}})
    assert realtime.poll(t0 + 61_000) == []
    assert realtime.poll(t0 + 62_000) == []
    (pushed,) = realtime.poll(t0 + 63_000)
    assert queue.get_request(hub.db, pushed).trigger == "realtime"  # type: ignore[union-attr]
    assert Worker(hub.db, settings).run_one()
    assert udb.rows[udb.by_email["from-provider@x.io"]].fields["first_name"] == "Changed"


def test_a_node_that_keeps_changing_is_pushed_by_the_max_delay_and_joined_to_a_waiting_request(
    hub: Hub, settings: Settings
) -> None:
    make_source(hub, frequency_minutes=60)
    (customer, _) = hub_customers.create(
        hub.db, hub.workspace_id, {"nodeId": hub.node_id, "base": {"contacts": {"email": "busy@x.io"}}}
    )
    realtime = Realtime(hub.db, settings)
    t0 = now_ms()
    realtime.poll(t0)
    pushed: list[str] = []
    for second in range(12):  # a change every second: never 2 quiet seconds
        hub_customers.patch(hub.db, hub.workspace_id, customer["id"], {"base": {"firstName": f"N{second}"}})
        pushed += realtime.poll(t0 + second * 1000)
    assert len(pushed) == 1  # at the 10-second max delay
    hub_customers.patch(hub.db, hub.workspace_id, customer["id"], {"base": {"firstName": "again"}})
    realtime.poll(t0 + 13_000)
    assert realtime.poll(t0 + 16_000) == pushed  # the first request is still waiting: joined to it
