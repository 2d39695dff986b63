"""Reading an audience's changes: ``since_last_changed`` pages, keyed by ``last_changed``.

Mailchimp keeps ``last_changed`` at second resolution and pages with ``offset``. Offsets over
a set that changes while it is read skip records (an edited member moves to the end), so each
page is asked afresh from the newest second already delivered (``since_last_changed`` one
second earlier, ``sort_field=last_changed``, ascending): a member edited meanwhile comes back
on a later page, never lost. The records of that newest second are remembered with a digest,
so a record delivered unchanged is not delivered again, and one changed in the same second is.
Only when a whole page shares one second (more members changed in one second than a page
holds) does the read move through that second by offset.

Two feeds share the cursor: the members (every status but ``archived``) and the archived
members, which are the deletions (tombstones).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from contactsync.connectors.mailchimp.mapping import epoch_ms, iso
from contactsync.errors import ConfigError

SEEN_CAP = 1_000  # digests kept for the newest second; past it the second is re-read next time

GetPage = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Position:
    at: int | None = None  # epoch seconds of the newest last_changed delivered
    seen: dict[str, str] = field(default_factory=dict)  # contact_id → digest, for that second

    def dump(self) -> list[Any]:
        seen = self.seen if len(self.seen) <= SEEN_CAP else {}
        return [self.at, seen]

    @classmethod
    def load(cls, data: Any) -> Position:
        at, seen = data
        return cls(None if at is None else int(at), {str(k): str(v) for k, v in dict(seen).items()})


@dataclass
class Cursor:
    members: Position = field(default_factory=Position)
    archived: Position | None = None  # None: the archived feed was never read

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            archived = Position.load(data["a"]) if data.get("a") is not None else None
            return cls(Position.load(data["m"]), archived)
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"the stored Mailchimp cursor is unreadable: {text[:80]!r}", code="E100"
            ) from None

    def dump(self) -> str:
        data = {"m": self.members.dump(), "a": self.archived.dump() if self.archived else None}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


def digest(member: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(member, sort_keys=True).encode()).hexdigest()[:16]


def pages(
    get_page: GetPage,
    position: Position,
    *,
    page_size: int,
    status: str | None = None,
    since_ms: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The members changed after ``position`` (updating it in place), page by page."""
    if position.at is not None:
        after: int | None = position.at - 1
    elif since_ms is not None:
        after = since_ms // 1000 - 1
    else:
        after = None
    offset = 0
    while True:
        params: dict[str, Any] = {
            "count": page_size,
            "offset": offset,
            "sort_field": "last_changed",
            "sort_dir": "ASC",
            "exclude_fields": "_links,members._links",
        }
        if after is not None:
            params["since_last_changed"] = iso(after)
        if status is not None:
            params["status"] = status
        members = list(get_page(params).get("members") or [])
        fresh = []
        for member in members:
            second = epoch_ms(str(member["last_changed"])) // 1000
            cid, mark = str(member["contact_id"]), digest(member)
            if second == position.at and position.seen.get(cid) == mark:
                continue  # delivered before, unchanged since
            if position.at is None or second > position.at:
                position.at, position.seen = second, {}
            if second == position.at:
                position.seen[cid] = mark
            fresh.append(member)
        yield fresh
        if len(members) < page_size:
            return
        newest = epoch_ms(str(members[-1]["last_changed"])) // 1000
        if after is not None and newest - 1 == after:
            offset += len(members)  # the whole page is one second: move through it by offset
        else:
            after, offset = newest - 1, 0
