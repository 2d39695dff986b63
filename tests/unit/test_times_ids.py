"""Times (hub.times) and identifiers (hub.ids)."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contactsync.hub import ids
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms, parse_time

PROPS = settings(database=None, max_examples=500, deadline=None)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
sane_ms = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970-01-01 .. 2100-01-01
FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


# -- times --------------------------------------------------------------------------------------


def test_format_time_examples():
    assert format_time(None) is None
    assert format_time(0) == "1970-01-01T00:00:00.000+0000"
    assert format_time(1_488_456_773_074) == "2017-03-02T12:12:53.074+0000"
    assert format_time(1_488_456_773_999) == "2017-03-02T12:12:53.999+0000"


@PROPS
@given(ms=sane_ms)
def test_format_time_is_exact(ms):
    text = format_time(ms)
    assert FORMAT.match(text)
    expected = EPOCH + timedelta(milliseconds=ms)
    assert text == expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


@PROPS
@given(seconds=st.integers(min_value=0, max_value=4_102_444_800))
def test_round_trip_on_whole_seconds(seconds):
    ms = seconds * 1000
    assert parse_time(format_time(ms)) == ms


@PROPS
@given(ms=sane_ms)
@example(ms=1_073_777_862_837)  # 2004-01-10T23:37:42.837+0000
@example(ms=2_188_964_338_272)  # 2039-05-14T05:38:58.272+0000
def test_format_parse_round_trip(ms):
    assert parse_time(format_time(ms)) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2017-03-02T12:12:53.074+0000",
        "2017-03-02T12:12:53.074Z",
        "2017-03-02T12:12:53.074z",
        "2017-03-02T12:12:53.074+00:00",
        "2017-03-02T13:12:53.074+0100",
        "2017-03-02T07:12:53.074-0500",
        "2017-03-02 12:12:53.074+0000",
        "2017-03-02T12:12:53.074",  # no offset: UTC
        " 2017-03-02T12:12:53.074+0000 ",
    ],
)
def test_parse_time_accepts_contacthub_and_iso_forms(text):
    assert parse_time(text) == 1_488_456_773_074


def test_parse_time_numbers_are_ms():
    assert parse_time(1_488_456_773_074) == 1_488_456_773_074
    assert parse_time(1_488_456_773_074.0) == 1_488_456_773_074


@pytest.mark.parametrize("value", [True, None, "yesterday", "", [], {"ms": 1}, "2017-13-02T00:00:00Z"])
def test_parse_time_refuses_other_values(value):
    with pytest.raises(ValueError):
        parse_time(value)


def test_now_ms_is_the_current_time():
    before = int(time.time() * 1000)
    got = now_ms()
    after = int(time.time() * 1000)
    assert before - 1 <= got <= after + 1


# -- ids ----------------------------------------------------------------------------------------


def test_new_ids_are_unique_ordered_uuid7():
    start_ms = int(time.time() * 1000)
    values = [new_id() for _ in range(10_000)]
    assert len(set(values)) == len(values)
    assert values == sorted(values)
    for v in values:
        u = uuid.UUID(v)
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert str(u) == v  # canonical lower-case 8-4-4-4-12 form
    first_ms = uuid.UUID(values[0]).int >> 80
    assert abs(first_ms - start_ms) < 60_000


@pytest.fixture
def fake_clock(monkeypatch):
    """Drive ids.time.time() from a list of seconds; the id state is restored afterwards."""
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)

    def use(seconds):
        it = iter(seconds)
        monkeypatch.setattr(ids, "time", SimpleNamespace(time=lambda: next(it)))

    return use


def test_ids_stay_unique_and_ordered_when_one_millisecond_overflows_the_counter(fake_clock):
    fake_clock(itertools.repeat(1_700_000_000.0))
    values = [new_id() for _ in range(5_000)]  # more than the 4,096 counter values of one ms
    assert len(set(values)) == len(values)
    assert values == sorted(values)
    assert all(uuid.UUID(v).version == 7 for v in values)


def test_ids_stay_ordered_when_the_clock_goes_back(fake_clock):
    fake_clock([1_700_000_000.010, 1_700_000_000.005, 1_699_999_999.000, 1_700_000_000.020])
    values = [new_id() for _ in range(4)]
    assert values == sorted(values)
    assert len(set(values)) == 4
    assert uuid.UUID(values[-1]).int >> 80 == 1_700_000_000_020
