"""Cron expressions and the friendly form, evaluated in a time zone.

A schedule fires at the wall-clock times of its cron expression (5 fields: minute, hour, day
of month, month, day of week) in its time zone. The friendly form (times of day, days of week,
days of month, months) is converted to one or more cron expressions — times whose hours
differ per minute need more than one — and a simple cron expression converts back, so either
form can be shown for the other.

Daylight saving time, decided once for every schedule:

* a wall-clock time that does not exist (the hour skipped in spring) fires once, at the same
  distance from midnight on the shifted clock: 02:30 Europe/Rome on the March change fires at
  03:30 CEST;
* a wall-clock time that exists twice (the hour repeated in autumn) fires once, at its first
  occurrence (the summer-time one).

As in cron, when both the days of month and the days of week are restricted, a day matching
either one fires.
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from contactsync.errors import FieldProblem

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO: mon=1 … sun=7
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_MARGIN = dt.timedelta(hours=3)  # more than any UTC offset change
_MAX_FRIENDLY_TIMES = 96


def check_cron(expr: str, path: str = "cron") -> tuple[str | None, FieldProblem | None]:
    """The expression with its whitespace normalised, or a problem saying what is wrong."""
    fields = str(expr).split()
    if len(fields) != 5:
        return None, FieldProblem(
            path, f"a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}", "E660"
        )
    text = " ".join(fields)
    try:
        croniter(text)
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as e:
        return None, FieldProblem(path, f"not a valid cron expression: {e}", "E660")
    return text, None


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name`` (e.g. Europe/Rome), or None when unknown."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return None


# --- friendly form ---------------------------------------------------------------------------


def _day_of_week(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower()[:3] in DAY_NAMES:
        return DAY_NAMES.index(value.strip().lower()[:3]) + 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        return value
    return None


def _ints(values: Any, low: int, high: int, path: str, problems: list[FieldProblem]) -> list[int]:
    if values is None:
        return []
    if not isinstance(values, list):
        problems.append(FieldProblem(path, "must be a list", "E663"))
        return []
    out: set[int] = set()
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            problems.append(
                FieldProblem(f"{path}.{i}", f"must be a whole number from {low} to {high}", "E663")
            )
        else:
            out.add(v)
    return sorted(out)


def check_friendly(spec: Mapping[str, Any], problems: list[FieldProblem]) -> dict[str, Any]:
    """The friendly form normalised (times ``HH:MM`` sorted, days as numbers), problems appended."""
    times: set[str] = set()
    raw_times = spec.get("times")
    if not isinstance(raw_times, list) or not raw_times:
        problems.append(FieldProblem("times", 'give at least one time of day, e.g. ["06:00"]', "E663"))
        raw_times = []
    for i, t in enumerate(raw_times):
        m = _TIME.match(str(t).strip()) if isinstance(t, str) else None
        if m is None:
            problems.append(
                FieldProblem(f"times.{i}", f"{t!r} is not a time of day HH:MM (00:00-23:59)", "E663")
            )
        else:
            times.add(f"{int(m.group(1)):02d}:{m.group(2)}")
    if len(times) > _MAX_FRIENDLY_TIMES:
        problems.append(FieldProblem("times", f"at most {_MAX_FRIENDLY_TIMES} times a day; use cron", "E663"))
    days: set[int] = set()
    raw_days = spec.get("days_of_week") or []
    if not isinstance(raw_days, list):
        problems.append(FieldProblem("days_of_week", "must be a list", "E663"))
        raw_days = []
    for i, d in enumerate(raw_days):
        n = _day_of_week(d)
        if n is None:
            problems.append(
                FieldProblem(
                    f"days_of_week.{i}", f"{d!r} is not a day: use 1-7 (Monday=1) or mon…sun", "E663"
                )
            )
        else:
            days.add(n)
    return {
        "times": sorted(times),
        "days_of_week": sorted(days),
        "days_of_month": _ints(spec.get("days_of_month"), 1, 31, "days_of_month", problems),
        "months": _ints(spec.get("months"), 1, 12, "months", problems),
    }


def _field(values: Iterable[int]) -> str:
    vals = sorted(set(values))
    return ",".join(str(v) for v in vals) if vals else "*"


def friendly_to_crons(friendly: Mapping[str, Any]) -> list[str]:
    """The cron expressions of a normalised friendly form (one per set of hours)."""
    hours_by_minute: dict[int, set[int]] = {}
    for t in friendly["times"]:
        hour, minute = (int(p) for p in t.split(":"))
        hours_by_minute.setdefault(minute, set()).add(hour)
    minutes_by_hours: dict[tuple[int, ...], list[int]] = {}
    for minute, hours in sorted(hours_by_minute.items()):
        minutes_by_hours.setdefault(tuple(sorted(hours)), []).append(minute)
    dow = _field(d % 7 for d in friendly["days_of_week"])  # cron: Sunday is 0
    rest = f"{_field(friendly['days_of_month'])} {_field(friendly['months'])} {dow}"
    groups = sorted(minutes_by_hours.items(), key=lambda g: (g[1][0], g[0]))
    return [f"{_field(minutes)} {_field(hours)} {rest}" for hours, minutes in groups]


def cron_to_friendly(expr: str) -> dict[str, Any] | None:
    """The friendly form of a cron expression, or None when it has no friendly form
    (steps over every minute, ``L``, ``#`` …)."""
    try:
        fields, nth = croniter.expand(expr)
    except (CroniterError, ValueError, KeyError):
        return None
    if nth or any(v != "*" and not isinstance(v, int) for f in fields for v in f):
        return None
    minutes, hours, dom, months, dow = ([] if f == ["*"] else [int(v) for v in f] for f in fields)
    if not minutes or not hours or len(minutes) * len(hours) > _MAX_FRIENDLY_TIMES:
        return None
    return {
        "times": sorted(f"{h:02d}:{m:02d}" for h in hours for m in minutes),
        "days_of_week": sorted({7 if d % 7 == 0 else d for d in dow}),
        "days_of_month": sorted(dom),
        "months": sorted(months),
    }


# --- fire times ------------------------------------------------------------------------------


def to_ms(local: dt.datetime, tz: ZoneInfo) -> int:
    """Epoch ms of a wall-clock time in ``tz``: a skipped time is shifted forward by the gap,
    a repeated one is its first occurrence (``fold=0``)."""
    return int(local.replace(tzinfo=tz, fold=0).timestamp() * 1000)


def to_local(ms: int, tz: ZoneInfo) -> dt.datetime:
    """The naive wall-clock time in ``tz`` of an instant."""
    return dt.datetime.fromtimestamp(ms / 1000, tz).replace(tzinfo=None)


def _forward(expr: str, tz: ZoneInfo, after_ms: int) -> Iterator[int]:
    it = croniter(expr, to_local(after_ms, tz) - _MARGIN)
    last = after_ms
    while True:
        try:
            at = to_ms(it.get_next(dt.datetime), tz)
        except CroniterBadDateError:  # no further date (e.g. 30 February)
            return
        if at > last:  # a time shifted out of the spring gap may repeat a later one: once only
            last = at
            yield at


def fire_times(crons: Sequence[str], tz: ZoneInfo, after_ms: int) -> Iterator[int]:
    """Every fire time strictly after ``after_ms``, in order, each instant once."""
    last = after_ms
    for at in heapq.merge(*(_forward(c, tz, after_ms) for c in crons)):
        if at > last:
            last = at
            yield at


def last_fire(crons: Sequence[str], tz: ZoneInfo, at_ms: int) -> int | None:
    """The latest fire time at or before ``at_ms``, or None when there is none."""
    best: int | None = None
    horizon = at_ms - 2 * int(_MARGIN.total_seconds() * 1000)
    for expr in crons:
        it = croniter(expr, to_local(at_ms, tz) + _MARGIN + dt.timedelta(minutes=1))
        for _ in range(10_000):
            try:
                t = to_ms(it.get_prev(dt.datetime), tz)
            except CroniterBadDateError:
                break
            if t <= at_ms and (best is None or t > best):
                best = t
            if t < horizon and best is not None:
                break
    return best
