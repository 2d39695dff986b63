"""Schedules as pure logic: cron and the friendly form, time zones across DST, start/end, pause,
and the errors a user gets for a bad spec."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.errors import InputError
from contactsync.scheduling import cron
from contactsync.scheduling.schedules import describe, due_tick, next_runs, validate_spec

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC


def ms(*args: int, tz: dt.tzinfo = UTC, fold: int = 0) -> int:
    return int(dt.datetime(*args, tzinfo=tz, fold=fold).timestamp() * 1000)  # type: ignore[misc,arg-type]


def local(at: int, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(at / 1000, tz).isoformat()


def problems(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InputError) as e:
        validate_spec(spec)
    return {p.path: p.code for p in e.value.problems}


# --- forms ----------------------------------------------------------------------------------


def test_friendly_form_becomes_cron_and_back() -> None:
    friendly = {"times": ["18:30", "06:00"], "days_of_week": ["fri", "mon", 3], "months": [7, 1]}
    spec = validate_spec(friendly)
    assert spec["times"] == ["06:00", "18:30"] and spec["days_of_week"] == [1, 3, 5]
    shown = describe(spec, ms(2026, 1, 1))
    assert shown["as_cron"] == ["0 6 * 1,7 1,3,5", "30 18 * 1,7 1,3,5"]
    assert shown["as_friendly"] == {
        "times": ["06:00", "18:30"],
        "days_of_week": [1, 3, 5],
        "days_of_month": [],
        "months": [1, 7],
    }


def test_times_sharing_their_hours_make_one_expression_and_sunday_is_seven() -> None:
    spec = validate_spec({"times": ["06:00", "06:30", "18:00", "18:30"], "days_of_week": ["sun"]})
    assert describe(spec, 0)["as_cron"] == ["0,30 6,18 * * 0"]
    assert cron.cron_to_friendly("0,30 6,18 * * 0")["days_of_week"] == [7]  # type: ignore[index]
    assert cron.cron_to_friendly("0 6 * * 7")["days_of_week"] == [7]  # type: ignore[index]


def test_cron_without_a_friendly_form_is_shown_as_cron_only() -> None:
    for expr in ("* * * * *", "0 0 L * *", "0 6 * * 5#2"):
        assert describe({"cron": expr}, 0)["as_friendly"] is None


def test_weekday_and_month_day_together_fire_on_either_as_in_cron() -> None:
    runs = next_runs({"times": ["09:00"], "days_of_week": ["mon"], "days_of_month": [1]}, 4, ms(2026, 5, 31))
    assert [local(r, ZoneInfo("UTC"))[:10] for r in runs] == [
        "2026-06-01",
        "2026-06-08",
        "2026-06-15",
        "2026-06-22",
    ]
    runs = next_runs({"cron": "0 9 1 * 3"}, 3, ms(2026, 6, 25))
    assert [local(r, ZoneInfo("UTC"))[:10] for r in runs] == ["2026-07-01", "2026-07-08", "2026-07-15"]


FRIENDLY = st.fixed_dictionaries(
    {
        "times": st.lists(
            st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]:02d}:{t[1]:02d}"),
            min_size=1,
            max_size=6,
        ),
        "days_of_week": st.lists(st.integers(1, 7), max_size=3),
        "days_of_month": st.lists(st.integers(1, 31), max_size=3),
        "months": st.lists(st.integers(1, 12), max_size=4),
    }
)


def brute_force(spec: dict[str, Any], start: dt.datetime, days: int) -> list[int]:
    """The fire times of a friendly spec in UTC, day by day, with cron's day rule."""
    found = []
    for d in range(days):
        day = (start + dt.timedelta(days=d)).date()
        if spec["months"] and day.month not in spec["months"]:
            continue
        by_dom = day.day in spec["days_of_month"]
        by_dow = day.isoweekday() in spec["days_of_week"]
        if spec["days_of_month"] and spec["days_of_week"]:
            ok = by_dom or by_dow
        elif spec["days_of_month"]:
            ok = by_dom
        elif spec["days_of_week"]:
            ok = by_dow
        else:
            ok = True
        if ok:
            for t in spec["times"]:
                h, m = (int(p) for p in t.split(":"))
                found.append(
                    int(dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC).timestamp() * 1000)
                )
    return sorted(found)


@settings(max_examples=60, deadline=None)
@given(FRIENDLY)
def test_friendly_form_fires_exactly_on_its_days_and_times(raw: dict[str, Any]) -> None:
    spec = validate_spec(raw)
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    expected = [t for t in brute_force(spec, start, 400) if t > ms(2026, 1, 1)]
    first = expected[:20]
    assert next_runs(spec, len(first), ms(2026, 1, 1)) == first


@settings(max_examples=60, deadline=None)
@given(FRIENDLY)
def test_friendly_and_cron_round_trip(raw: dict[str, Any]) -> None:
    spec = validate_spec(raw)
    expressions = describe(spec, 0)["as_cron"]
    friendly = {k: spec[k] for k in ("times", "days_of_week", "days_of_month", "months")}
    if len(expressions) == 1:
        assert cron.cron_to_friendly(expressions[0]) == friendly
    else:  # several expressions: each one's friendly form is a part of the whole
        times = sorted(t for e in expressions for t in cron.cron_to_friendly(e)["times"])  # type: ignore[index]
        assert times == friendly["times"]


# --- daylight saving time -----------------------------------------------------------------------


def test_daily_0230_in_rome_across_the_march_change_runs_once_a_day() -> None:
    runs = next_runs({"cron": "30 2 * * *", "timezone": "Europe/Rome"}, 4, ms(2026, 3, 27, 12))
    # 29 March 2026: clocks jump from 02:00 to 03:00; the skipped 02:30 runs at 03:30 CEST
    assert [local(r, ROME) for r in runs] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_daily_0230_in_rome_across_the_october_change_runs_once_at_the_first_0230() -> None:
    runs = next_runs({"times": ["02:30"], "timezone": "Europe/Rome"}, 3, ms(2026, 10, 24, 12))
    # 25 October 2026: 02:00-02:59 happens twice; only the first (summer time) runs
    assert [local(r, ROME) for r in runs] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


@pytest.mark.parametrize(
    ("tz", "day"),
    [("Europe/Rome", (2026, 10, 25)), ("America/New_York", (2026, 11, 1))],  # 01:30 repeats in New York
)
def test_0130_on_the_fall_back_day_fires_once(tz: str, day: tuple[int, int, int]) -> None:
    zone = ZoneInfo(tz)
    start = ms(*day, tz=zone)
    runs = next_runs({"cron": "30 1 * * *", "timezone": tz}, 3, start)
    on_the_day = [r for r in runs if local(r, zone).startswith(f"{day[0]}-{day[1]:02d}-{day[2]:02d}")]
    assert len(on_the_day) == 1
    assert on_the_day[0] == ms(*day, 1, 30, tz=zone, fold=0)  # the first 01:30
    assert runs[1] - runs[0] == 25 * 3600 * 1000  # the next day's 01:30, after the 25-hour day


@pytest.mark.parametrize(("start", "hours"), [((2026, 3, 29), 23), ((2026, 10, 25), 25)])
def test_every_half_hour_across_a_change_fires_each_instant_once_in_order(
    start: tuple[int, int, int], hours: int
) -> None:
    day = ms(*start, tz=ROME)
    runs = next_runs({"cron": "*/30 * * * *", "timezone": "Europe/Rome"}, 60, day - 1)
    assert runs == sorted(set(runs))
    within = [r for r in runs if r < day + hours * 3600 * 1000]
    # spring: the skipped hour's times fall on the real 03:00/03:30; autumn: the repeated hour runs once
    assert len(within) == {23: 46, 25: 48}[hours]


def test_due_tick_is_the_latest_fire_time_at_or_before_now() -> None:
    spec = {"cron": "30 2 * * *", "timezone": "Europe/Rome"}
    assert local(due_tick(spec, ms(2026, 3, 29, 12)), ROME) == "2026-03-29T03:30:00+02:00"  # type: ignore[arg-type]
    assert local(due_tick(spec, ms(2026, 10, 25, 12)), ROME) == "2026-10-25T02:30:00+02:00"  # type: ignore[arg-type]
    exact = ms(2026, 6, 1, 2, 30, tz=ROME)
    assert due_tick(spec, exact) == exact
    assert local(due_tick(spec, exact - 1), ROME) == "2026-05-31T02:30:00+02:00"  # type: ignore[arg-type]


# --- start, end, pause ------------------------------------------------------------------------


def test_start_and_end_dates_are_days_in_the_schedules_time_zone_end_included() -> None:
    spec = {
        "times": ["00:30", "23:30"],
        "timezone": "Europe/Rome",
        "start": "2026-12-01",
        "end": "2026-12-02",
    }
    runs = next_runs(spec, 10, ms(2026, 1, 1))
    assert [local(r, ROME) for r in runs] == [
        "2026-12-01T00:30:00+01:00",
        "2026-12-01T23:30:00+01:00",
        "2026-12-02T00:30:00+01:00",
        "2026-12-02T23:30:00+01:00",
    ]
    assert next_runs(spec, 3, ms(2026, 12, 3)) == []
    assert due_tick(spec, ms(2026, 11, 30)) is None
    assert local(due_tick(spec, ms(2027, 1, 1)), ROME) == "2026-12-02T23:30:00+01:00"  # type: ignore[arg-type]


def test_start_and_end_date_times_with_and_without_offset() -> None:
    spec = {
        "cron": "0 * * * *",
        "timezone": "Europe/Rome",
        "start": "2026-06-01T10:00",
        "end": "2026-06-01T12:00Z",
    }
    runs = next_runs(spec, 10, 0)
    assert [local(r, ROME)[11:16] for r in runs] == ["10:00", "11:00", "12:00", "13:00", "14:00"]


def test_a_paused_schedule_has_no_next_runs_and_no_due_tick() -> None:
    spec = {"cron": "* * * * *", "paused": True}
    assert next_runs(spec, 5, 0) == []
    assert due_tick(spec, ms(2026, 1, 1)) is None
    assert validate_spec(spec)["paused"] is True


# --- errors ------------------------------------------------------------------------------------


def test_bad_cron_expressions_are_refused_with_E660() -> None:
    assert problems({"cron": "0 6 * * * *"}) == {"cron": "E660"}  # 6 fields: seconds are not supported
    assert problems({"cron": "61 6 * * *"}) == {"cron": "E660"}
    assert problems({"cron": "every day"}) == {"cron": "E660"}
    assert problems({"cron": "0 0 30 2 *"}) == {"cron": "E660"}  # 30 February never comes


def test_unknown_time_zone_is_E661_and_bad_dates_E662() -> None:
    assert problems({"cron": "0 6 * * *", "timezone": "Europe/Atlantis"}) == {"timezone": "E661"}
    assert problems({"cron": "0 6 * * *", "start": "yesterday"}) == {"start": "E662"}
    assert problems({"cron": "0 6 * * *", "start": "2026-12-02", "end": "2026-12-01"}) == {"end": "E662"}


def test_friendly_form_problems_are_listed_together_with_E663() -> None:
    found = problems(
        {"times": ["25:00", "6:00"], "days_of_week": ["funday", 8], "months": [13], "colour": "red"}
    )
    assert found == {
        "colour": "E663",
        "times.0": "E663",
        "days_of_week.0": "E663",
        "days_of_week.1": "E663",
        "months.0": "E663",
    }
    assert problems({}) == {"times": "E663"}
    assert problems({"cron": "0 6 * * *", "times": ["06:00"]}) == {"cron": "E663"}
    assert validate_spec({"times": ["6:05"]})["times"] == ["06:05"]


def test_shown_fields_sent_back_are_ignored() -> None:
    shown = describe({"cron": "0 6 * * 1-5", "timezone": "Europe/Rome"}, 0)
    assert validate_spec(shown) == validate_spec({"cron": "0 6 * * 1-5", "timezone": "Europe/Rome"})
