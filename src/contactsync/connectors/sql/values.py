"""Values between JSON (what the engine sees) and a table's column types, both ways."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from contactsync.connectors.base import RecordProblem
from contactsync.hub.consent import Status

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STATUS_WORDS = {
    **{s.value: s for s in Status},
    **dict.fromkeys(("true", "t", "yes", "y", "1"), Status.SUBSCRIBED),
    **dict.fromkeys(("false", "f", "no", "n", "0"), Status.UNSUBSCRIBED),
}
_BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False}


class Problem(Exception):
    """A record-level problem raised inside a write, returned as its WriteResult."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.problem = RecordProblem(code, message)


def to_json(value: Any, word: str) -> Any:
    """A column value as the engine sees it: ISO 8601 times (UTC), numbers, strings."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        number = float(value)
        return number if Decimal(repr(number)) == value else str(value)
    if isinstance(value, int) and not isinstance(value, bool) and word == "boolean":
        return bool(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value


def to_db(col: sa.Column[Any], word: str, value: Any) -> Any:
    """A JSON value converted for a column of type ``word``; E424 when it cannot be."""
    if value is None:
        return None
    try:
        return _convert(col, word, value)
    except (ValueError, TypeError, LookupError, InvalidOperation):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise Problem("E424", f"field {col.name}: {shown} is not a valid {word}") from None


def _convert(col: sa.Column[Any], word: str, value: Any) -> Any:
    if isinstance(value, (dict, list)) and not isinstance(col.type, sa.JSON):
        raise TypeError(value)
    if word == "boolean":
        if isinstance(value, str):
            value = _BOOLEAN_WORDS[value.strip().lower()]
        elif value not in (0, 1) or isinstance(value, float):
            raise ValueError(value)
        return bool(value) if isinstance(col.type, sa.Boolean) else int(value)
    if word == "integer":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if word == "number":
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value) if isinstance(col.type, sa.Float) else Decimal(str(value))
    if word == "datetime":
        stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return for_column(col, utc(stamp))
    if word == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if word == "uuid":
        return uuid.UUID(str(value))
    if not isinstance(col.type, sa.String):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    return str(value)


def status_of(value: Any) -> Status | None:
    """A list column's value as a status: flags are subscribed/unsubscribed, text is our
    status words (or yes/no words); NULL and unknown words are no status."""
    if value is None:
        return None
    if isinstance(value, (bool, int)):
        return Status.SUBSCRIBED if value else Status.UNSUBSCRIBED
    return STATUS_WORDS.get(str(value).strip().lower())


def is_flag(col: sa.Column[Any]) -> bool:
    """A boolean or integer column, read as true/false (MySQL's BOOLEAN is TINYINT(1))."""
    return isinstance(col.type, (sa.Boolean, sa.Integer))


def utc(stamp: dt.datetime) -> dt.datetime:
    """An aware UTC time; a time without a zone is taken to be UTC."""
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def epoch_ms(stamp: dt.datetime) -> int:
    return (utc(stamp) - EPOCH) // dt.timedelta(milliseconds=1)


def for_column(col: sa.Column[Any], stamp: dt.datetime) -> dt.datetime:
    """A UTC time as the column takes it: aware for a column with a time zone, else naive."""
    return stamp if getattr(col.type, "timezone", False) else stamp.replace(tzinfo=None)


def now_for(col: sa.Column[Any]) -> dt.datetime:
    return for_column(col, dt.datetime.now(dt.UTC))


def since_for(col: sa.Column[Any], since_ms: int) -> dt.datetime:
    """``since`` (epoch ms) floored to the second, for columns that keep whole seconds."""
    return for_column(col, dt.datetime.fromtimestamp(since_ms // 1000, dt.UTC))


def is_set(value: Any) -> bool:
    """Whether a soft-delete column's value marks the row deleted."""
    return value is not None and value is not False and value != 0


def deleted_marker(col: sa.Column[Any]) -> Any:
    if isinstance(col.type, sa.Boolean):
        return True
    if isinstance(col.type, sa.Integer):
        return 1
    if isinstance(col.type, sa.DateTime):
        return now_for(col)
    return dt.datetime.now(dt.UTC).isoformat()


def unset_marker(col: sa.Column[Any]) -> Any:
    if isinstance(col.type, sa.Boolean):
        return False
    if isinstance(col.type, sa.Integer):
        return 0
    return None


def list_value(col: sa.Column[Any], status: Status) -> tuple[bool, Any]:
    """(whether to write, the value) for a status in a list column. A flag cannot say
    pending: it becomes NULL, or stays as it is when the column is NOT NULL."""
    if not is_flag(col):
        return True, Status(status).value
    if status is Status.PENDING:
        return bool(col.nullable), None
    subscribed = status is Status.SUBSCRIBED
    return True, subscribed if isinstance(col.type, sa.Boolean) else int(subscribed)
