"""An in-process provider: a user DB held in memory, with a change feed and tombstones.

It costs nothing per call, so the engine's own cost shows in ``bench/sync_engine.py``, and the
engine tests drive it directly. It keeps the rules a real provider has: a required field
(missing → E420), an e-mail match key compared case-insensitively, a monotonic change
sequence as cursor, and deletions reported once as tombstones.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import SecretStr

from contactsync.connectors import registry
from contactsync.connectors.base import (
    Capabilities,
    ConnectorConfig,
    ConnectorContext,
    Description,
    FieldInfo,
    ListInfo,
    ReadBatch,
    RecordProblem,
    RemoteRecord,
    WriteItem,
    WriteResult,
)
from contactsync.errors import AuthError, ConfigError
from contactsync.hub.consent import Status
from contactsync.hub.times import now_ms


@dataclass
class _Row:
    fields: dict[str, Any]
    lists: dict[str, Status]
    seq: int
    updated_at: int
    deleted: bool = False


@dataclass
class MemoryUserDb:
    """The provider side: what a user of the provider's own UI would see and change."""

    name: str
    fields: list[FieldInfo] = field(
        default_factory=lambda: [
            FieldInfo("email", "E-mail", "email", required=True),
            FieldInfo("first_name", "First name", "string"),
            FieldInfo("last_name", "Last name", "string"),
            FieldInfo("phone", "Phone", "phone"),
            FieldInfo("city", "City", "string"),
        ]
    )
    lists: list[ListInfo] = field(
        default_factory=lambda: [ListInfo("news", "Newsletter"), ListInfo("offers", "Offers")]
    )
    api_key: str = "memory-key"
    rows: dict[str, _Row] = field(default_factory=dict)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.RLock = field(default_factory=threading.RLock)
    calls: int = 0
    changes: list[tuple[int, str]] = field(default_factory=list)  # (seq, remote id), ascending
    by_email: dict[str, str] = field(default_factory=dict)

    def _touch(self, rid: str, row: _Row) -> None:
        old = str(self.rows[rid].fields.get("email") or "").lower() if rid in self.rows else ""
        self.by_email.pop(old, None)
        if not row.deleted and row.fields.get("email"):
            self.by_email[str(row.fields["email"]).strip().lower()] = rid
        row.seq = next(self._seq)
        row.updated_at = max(now_ms(), row.updated_at + 1)
        self.changes.append((row.seq, rid))

    def add(self, fields: dict[str, Any], lists: dict[str, Status] | None = None) -> str:
        with self.lock:
            rid = f"m{next(self._ids)}"
            row = _Row(dict(fields), dict(lists or {}), 0, 0)
            self._touch(rid, row)
            self.rows[rid] = row
            return rid

    def edit(
        self, remote_id: str, fields: dict[str, Any] | None = None, lists: dict[str, Status] | None = None
    ) -> None:
        with self.lock:
            row = self.rows[remote_id]
            self.by_email.pop(str(row.fields.get("email") or "").strip().lower(), None)
            row.fields.update(fields or {})
            row.lists.update(lists or {})
            self._touch(remote_id, row)

    def remove(self, remote_id: str) -> None:
        with self.lock:
            row = self.rows[remote_id]
            row.deleted = True
            self._touch(remote_id, row)

    def is_live(self, remote_id: str | None) -> bool:
        row = self.rows.get(remote_id) if remote_id else None
        return row is not None and not row.deleted

    def live(self) -> dict[str, _Row]:
        with self.lock:
            return {k: v for k, v in self.rows.items() if not v.deleted}

    def find(self, match: dict[str, Any]) -> str | None:
        for name, value in match.items():
            if name == "email":
                found = self.by_email.get(str(value).strip().lower())
                if found:
                    return found
                continue
            for rid, row in self.live().items():
                if row.fields.get(name) == value:
                    return rid
        return None

    def changed_after(self, seq: int, limit: int) -> list[tuple[str, _Row]]:
        """Rows whose latest change is after ``seq``, oldest change first."""
        with self.lock:
            out: list[tuple[str, _Row]] = []
            for change_seq, rid in self.changes[bisect.bisect_right(self.changes, (seq, "\uffff")) :]:
                row = self.rows[rid]
                if row.seq == change_seq:
                    out.append((rid, row))
                    if len(out) == limit:
                        break
            return out


USER_DBS: dict[str, MemoryUserDb] = {}


def user_db(name: str) -> MemoryUserDb:
    """The in-process user DB called ``name`` (created on first use)."""
    return USER_DBS.setdefault(name, MemoryUserDb(name))


class Config(ConnectorConfig):
    user_db: str
    api_key: SecretStr = SecretStr("memory-key")
    page_size: int = 500


class MemoryConnector:
    provider: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(
        change_feed=True, delete_feed=True, max_page_size=5000
    )

    def __init__(self, config: Config, ctx: ConnectorContext) -> None:
        self.config = config
        self.db = user_db(config.user_db)

    def check(self) -> None:
        if self.config.api_key.get_secret_value() != self.db.api_key:
            raise AuthError("the memory provider refused the API key", code="E112")
        if self.config.page_size < 1:
            raise ConfigError("page_size must be at least 1", code="E100")

    def describe(self) -> Description:
        return Description(
            list(self.db.fields), list(self.db.lists), len(self.db.live()), f"memory:{self.db.name}"
        )

    def read(self, cursor: str | None, *, since: int | None = None) -> Iterator[ReadBatch]:
        self.check()
        after = int(cursor or 0)
        while True:
            self.db.calls += 1
            changed = self.db.changed_after(after, self.config.page_size)
            if not changed:
                return
            records, deleted = [], []
            for rid, row in changed:
                if since is not None and cursor is None and row.updated_at < since:
                    continue
                if row.deleted:
                    deleted.append(rid)
                else:
                    records.append(RemoteRecord(rid, dict(row.fields), dict(row.lists), row.updated_at))
            after = changed[-1][1].seq
            yield ReadBatch(records, deleted, str(after))

    def fetch(self, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        self.check()
        with self.db.lock:
            self.db.calls += 1
            rows = [(rid, self.db.rows[rid]) for rid in remote_ids if self.db.is_live(rid)]
            return [RemoteRecord(rid, dict(r.fields), dict(r.lists), r.updated_at) for rid, r in rows]

    def write(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        self.check()
        results = []
        required = [f.name for f in self.db.fields if f.required]
        with self.db.lock:
            self.db.calls += 1
            for item in items:
                rid = item.remote_id if self.db.is_live(item.remote_id) else None
                rid = rid or self.db.find(item.match)
                current = self.db.rows[rid].fields if rid else {}
                merged = {**current, **item.fields}
                missing = [n for n in required if merged.get(n) in (None, "")]
                if missing:
                    problem = RecordProblem("E420", f"mandatory field {missing[0]} is empty")
                    results.append(WriteResult(item.key, rid, problem=problem))
                    continue
                if rid is None:
                    rid = self.db.add(merged, item.lists)
                    created = True
                else:
                    self.db.edit(rid, item.fields, item.lists)
                    created = False
                row = self.db.rows[rid]
                record = RemoteRecord(rid, dict(row.fields), dict(row.lists), row.updated_at)
                results.append(WriteResult(item.key, rid, created=created, record=record))
        return results

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        self.check()
        with self.db.lock:
            self.db.calls += 1
            for rid in remote_ids:
                if self.db.is_live(rid):
                    self.db.remove(rid)
        return [WriteResult(rid, rid) for rid in remote_ids]

    def close(self) -> None:
        pass


registry.register(
    registry.Provider(
        name="memory",
        label="In-process memory store (tests, benchmarks, offline demo)",
        config=Config,
        capabilities=MemoryConnector.capabilities,
        factory=lambda config, ctx: MemoryConnector(config, ctx),
    )
)
