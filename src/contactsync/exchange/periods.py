"""Dates of exchange jobs: file-name placeholders and day windows, in the job's time zone."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_PLACEHOLDER = re.compile(r"\{(date|yesterday)(?::([^{}]*))?\}")
DEFAULT_DATE_FORMAT = "%Y%m%d"


def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_now(now_ms: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(now_ms / 1000, tz)


def render_name(template: str, now_ms: int, tz: ZoneInfo) -> str:
    """``contacts_{date:%Y%m%d}.csv`` → ``contacts_20261122.csv``; ``{yesterday}`` the day before.

    Anything else in the template (``*`` and ``?`` of an input glob) stays as it is.
    """
    today = local_now(now_ms, tz)

    def fill(match: re.Match[str]) -> str:
        day = today if match.group(1) == "date" else today - dt.timedelta(days=1)
        return day.strftime(match.group(2) or DEFAULT_DATE_FORMAT)

    return _PLACEHOLDER.sub(fill, template)


def _midnight_ms(day: dt.date, tz: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tz).timestamp() * 1000)


def day_window(now_ms: int, tz: ZoneInfo, days_back: int = 1, days: int = 1) -> tuple[int, int]:
    """[start, end) in epoch ms of ``days`` whole days ending ``days_back - days`` days before today
    (default: the previous day), midnight to midnight in ``tz`` (23 or 25 hours on DST days)."""
    today = local_now(now_ms, tz).date()
    first = today - dt.timedelta(days=days_back)
    return _midnight_ms(first, tz), _midnight_ms(first + dt.timedelta(days=days), tz)


def parse_local(text: str, tz: ZoneInfo) -> int:
    """Epoch ms of an ISO date or date-time; without an offset it is read in ``tz``."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return int(value.timestamp() * 1000)
