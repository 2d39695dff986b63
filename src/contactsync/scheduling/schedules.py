"""Schedules: when a target (an exchange job, a source …) runs on its own.

A spec is a JSON object, either a cron expression or the friendly form::

    {"cron": "0 6 * * 1-5", "timezone": "Europe/Rome"}
    {"times": ["06:00", "18:30"], "days_of_week": ["mon", "fri"], "days_of_month": [1, 15],
     "months": [1, 7], "timezone": "Europe/Rome", "start": "2026-12-01", "end": null, "paused": false}

``start`` and ``end`` are dates (the end day included) or date-times, in the schedule's time
zone unless they carry an offset. A paused schedule never fires; resuming it does not replay
the ticks it missed meanwhile. Fire times follow :mod:`contactsync.scheduling.cron`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.engine import Connection

from contactsync.errors import FieldProblem, invalid, not_found
from contactsync.hub.times import now_ms
from contactsync.scheduling import cron
from contactsync.store import schedules as store

FRIENDLY_KEYS = ("times", "days_of_week", "days_of_month", "months")
_COMMON_KEYS = ("timezone", "start", "end", "paused")
_SHOWN_KEYS = ("next_runs", "next_runs_at", "as_cron", "as_friendly")  # output only: ignored on input
SHOWN_RUNS = 5


def validate_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec normalised (the form it was given in), or an InputError listing every problem."""
    if not isinstance(spec, Mapping):
        raise invalid([FieldProblem("schedule", "a schedule is a JSON object", "E663")])
    problems: list[FieldProblem] = []
    for key in spec:
        if key not in ("cron", *FRIENDLY_KEYS, *_COMMON_KEYS, *_SHOWN_KEYS):
            problems.append(FieldProblem(str(key), "not a schedule field", "E663"))
    out: dict[str, Any] = {}
    has_cron = spec.get("cron") not in (None, "")
    has_friendly = any(spec.get(k) not in (None, []) for k in FRIENDLY_KEYS)
    if has_cron and has_friendly:
        problems.append(
            FieldProblem("cron", "give either `cron` or the friendly form (`times` …), not both", "E663")
        )
    elif has_cron:
        text, problem = cron.check_cron(str(spec["cron"]))
        if problem is not None:
            problems.append(problem)
        out["cron"] = text
    else:
        out.update(cron.check_friendly(spec, problems))
    tz_name = str(spec.get("timezone") or "UTC")
    tz = cron.zone(tz_name)
    if tz is None:
        problems.append(
            FieldProblem("timezone", f"unknown time zone {tz_name!r}; e.g. Europe/Rome or UTC", "E661")
        )
    out["timezone"] = tz_name
    for key in ("start", "end"):
        out[key] = _bound_text(spec.get(key), key, problems)
    paused = spec.get("paused", False)
    if not isinstance(paused, bool):
        problems.append(FieldProblem("paused", "must be true or false", "E663"))
    out["paused"] = paused is True
    if not problems and tz is not None:
        start, end = bounds(out, tz)
        if start is not None and end is not None and end <= start:
            problems.append(FieldProblem("end", "the end must be after the start", "E662"))
        elif next(cron.fire_times(crons(out), tz, 0), None) is None:
            problems.append(FieldProblem("cron", "this schedule never fires (no such date)", "E660"))
    if problems:
        raise invalid(problems)
    return out


def _bound_text(value: Any, key: str, problems: list[FieldProblem]) -> str | None:
    if value in (None, ""):
        return None
    try:
        return _parse_bound(str(value)).isoformat()
    except ValueError:
        problems.append(
            FieldProblem(key, f"{value!r} is not a date (2026-12-01) or date-time (2026-12-01T06:00)", "E662")
        )
        return None


def _parse_bound(text: str) -> dt.date | dt.datetime:
    if len(text) == 10:
        return dt.date.fromisoformat(text)
    return dt.datetime.fromisoformat(text)


def bounds(spec: Mapping[str, Any], tz: ZoneInfo) -> tuple[int | None, int | None]:
    """The first and last instants (epoch ms) a normalised spec may fire at; an end date
    includes its whole day."""

    def instant(text: str | None, end: bool) -> int | None:
        if text is None:
            return None
        value = _parse_bound(text)
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                return int(value.timestamp() * 1000)
            return cron.to_ms(value, tz)
        day = dt.datetime.combine(value + dt.timedelta(days=1 if end else 0), dt.time())
        return cron.to_ms(day, tz) - (1 if end else 0)

    return instant(spec.get("start"), False), instant(spec.get("end"), True)


def crons(spec: Mapping[str, Any]) -> list[str]:
    """The cron expressions a normalised spec fires by."""
    if spec.get("cron"):
        return [str(spec["cron"])]
    return cron.friendly_to_crons(spec)


def next_runs(spec: Mapping[str, Any], n: int, now_ms: int) -> list[int]:
    """The next ``n`` fire times (epoch ms) strictly after ``now_ms``; none when paused."""
    s = validate_spec(spec)
    if s["paused"] or n <= 0:
        return []
    tz = ZoneInfo(s["timezone"])
    start, end = bounds(s, tz)
    after = now_ms if start is None else max(now_ms, start - 1)
    found: list[int] = []
    for at in cron.fire_times(crons(s), tz, after):
        if end is not None and at > end:
            break
        found.append(at)
        if len(found) == n:
            break
    return found


def due_tick(spec: Mapping[str, Any], now_ms: int) -> int | None:
    """The latest fire time at or before ``now_ms`` within start/end, or None (paused too)."""
    s = validate_spec(spec)
    if s["paused"]:
        return None
    tz = ZoneInfo(s["timezone"])
    start, end = bounds(s, tz)
    at = cron.last_fire(crons(s), tz, now_ms if end is None else min(now_ms, end))
    if at is None or (start is not None and at < start):
        return None
    return at


def describe(spec: Mapping[str, Any], now: int, n: int = SHOWN_RUNS) -> dict[str, Any]:
    """A normalised spec with both forms and its next fire times (epoch ms, and ISO 8601 in
    the schedule's time zone)."""
    s = validate_spec(spec)
    tz = ZoneInfo(s["timezone"])
    expressions = crons(s)
    friendly = (
        {k: s[k] for k in FRIENDLY_KEYS} if not s.get("cron") else cron.cron_to_friendly(expressions[0])
    )
    runs = next_runs(s, n, now)
    return {
        **s,
        "as_cron": expressions,
        "as_friendly": friendly,
        "next_runs": runs,
        "next_runs_at": [dt.datetime.fromtimestamp(at / 1000, tz).isoformat() for at in runs],
    }


def set_schedule(
    conn: Connection, target_kind: str, target_id: str, spec: Mapping[str, Any], *, now: int | None = None
) -> dict[str, Any]:
    """Create or replace the schedule of a target; returns it with its next fire times.

    The next tick is the first fire time after now: ticks missed before (or while paused)
    are not replayed.
    """
    s = validate_spec(spec)
    now = now_ms() if now is None else now
    upcoming = next_runs(s, 1, now)
    existing = store.get_schedule(conn, target_kind, target_id)
    store.save_schedule(
        conn,
        target_kind,
        target_id,
        {
            "spec": orjson.dumps(s).decode(),
            "paused": s["paused"],
            "next_run_at": upcoming[0] if upcoming else None,
            "created_at": existing.created_at if existing is not None else now,
            "updated_at": now,
        },
    )
    return describe(s, now)


def get_schedule(conn: Connection, target_kind: str, target_id: str) -> dict[str, Any] | None:
    row = store.get_schedule(conn, target_kind, target_id)
    return None if row is None else describe(orjson.loads(row.spec), now_ms())


def list_schedules(conn: Connection, n: int = SHOWN_RUNS) -> list[dict[str, Any]]:
    """Every schedule with its target and next ``n`` fire times."""
    now = now_ms()
    return [
        {
            "target_kind": row.target_kind,
            "target_id": row.target_id,
            **describe(orjson.loads(row.spec), now, n),
        }
        for row in store.list_schedules(conn)
    ]


def delete_schedule(conn: Connection, target_kind: str, target_id: str) -> None:
    """Remove a target's schedule (nothing to do when it has none); queued runs stay queued."""
    store.delete_schedule(conn, target_kind, target_id)


def _set_paused(
    conn: Connection, target_kind: str, target_id: str, paused: bool, now: int | None
) -> dict[str, Any]:
    row = store.get_schedule(conn, target_kind, target_id)
    if row is None:
        raise not_found("schedule of", f"{target_kind} {target_id}")
    return set_schedule(conn, target_kind, target_id, {**orjson.loads(row.spec), "paused": paused}, now=now)


def pause(conn: Connection, target_kind: str, target_id: str, *, now: int | None = None) -> dict[str, Any]:
    return _set_paused(conn, target_kind, target_id, True, now)


def resume(conn: Connection, target_kind: str, target_id: str, *, now: int | None = None) -> dict[str, Any]:
    """Fire again from the next fire time after now; the ticks missed while paused are not replayed."""
    return _set_paused(conn, target_kind, target_id, False, now)
