"""Read cursors: ``"<updated_at>|<key>"`` after the last row read, ``"|<key>"`` in key order,
and :data:`LISTING_DONE` once a full listing is complete (the next one starts over).

A batch never carries a None cursor: the engine keeps its stored cursor for a batch without
one, so the end of a listing must be said with a value of its own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from contactsync.errors import ConfigError

LISTING_DONE = "done"


def make_cursor(stamp: dt.datetime | None, key: Any) -> str:
    return f"{stamp.isoformat() if stamp is not None else ''}|{key}"


def parse_cursor(cursor: str | None) -> tuple[dt.datetime | None, str] | None:
    """(time or None, key text), or None for no cursor."""
    if not cursor or cursor == LISTING_DONE:
        return None
    stamp, sep, key = cursor.partition("|")
    if not sep:
        raise ConfigError(f"{cursor!r} is not a cursor of the sql connector", code="E100")
    if not stamp:
        return None, key
    try:
        return dt.datetime.fromisoformat(stamp), key
    except ValueError:
        raise ConfigError(f"{cursor!r} is not a cursor of the sql connector", code="E100") from None


def rows_after(
    updated_at: sa.ColumnElement[Any], key: sa.Column[Any], stamp: Any, key_value: Any
) -> sa.ColumnElement[bool]:
    """Rows after (stamp, key) in (updated_at, key) order: ties on the time go by key, so no
    row that shares a time with the last one read is skipped or read twice."""
    return sa.or_(updated_at > stamp, sa.and_(updated_at == stamp, key > key_value))
