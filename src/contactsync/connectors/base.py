"""The connector protocol: what the sync engine asks of every provider.

A connector talks to one provider account and one *user DB* in it (a Constant Contact
account, a Mailchimp audience, a SQL table …). The engine never sees HTTP or SQL; it sees
:class:`RemoteRecord` values in the provider's own field names, and subscription statuses in
our vocabulary (:class:`~contactsync.hub.consent.Status`) per provider list. Connectors
translate the provider's status words into ours (and back) and say why when a record cannot
be written (:class:`RecordProblem` with a stable code), so one bad record never stops a run.

Life of a connector, as the engine drives it::

    conn = registry.create("constantcontact", config, ctx)
    conn.check()                       # credentials and target reachable, else ConfigError/AuthError
    conn.describe()                    # fields, lists, record count (mapping UI, empty-user-DB rule)
    for batch in conn.read(cursor, since=window_start):
        ... apply batch, then persist batch.cursor ...
    conn.write([WriteItem, ...])       # upserts, one WriteResult per item, in order
    conn.delete([remote_id, ...])

Reads are at-least-once: after a crash the engine re-reads from the last cursor it stored,
so ``write`` must be idempotent (an upsert keyed by ``remote_id`` or the match fields).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from contactsync.hub.consent import Status


class ConnectorConfig(BaseModel):
    """Base of every connector's ``Config``. Fields typed ``SecretStr`` are credentials:
    they are stored encrypted, never logged, and masked in every output."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [name for name, f in cls.model_fields.items() if f.annotation in (SecretStr, SecretStr | None)]


@dataclass(frozen=True)
class Capabilities:
    change_feed: bool  # read(cursor) returns only what changed; else a full listing diffed by hash
    delete_feed: bool  # read() reports deletions as tombstones
    webhooks: bool = False
    bulk: bool = False  # write() uses an asynchronous bulk job for large batches
    max_page_size: int = 500
    rate_limit_per_s: float | None = None  # requests per second the provider allows
    daily_limit: int | None = None  # requests per day
    concurrency: int = 1  # parallel requests the provider tolerates


@dataclass(frozen=True)
class FieldInfo:
    name: str
    label: str
    type: str  # string, email, phone, integer, number, boolean, date, datetime
    required: bool = False  # a record without it cannot be written (skipped with E420)
    writable: bool = True


@dataclass(frozen=True)
class ListInfo:
    id: str
    name: str


@dataclass(frozen=True)
class Description:
    fields: list[FieldInfo]
    lists: list[ListInfo]
    record_count: int  # records in the user DB; the seeds' "only an empty user DB" rule reads it
    user_db: str  # stable identity of account + user DB, e.g. "constantcontact:<account id>"

    def field(self, name: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass
class RemoteRecord:
    """One provider record as read: field values in the provider's names and JSON types
    (dates as ISO 8601 strings), and the status of each list the record is known to."""

    remote_id: str
    fields: dict[str, Any]
    lists: dict[str, Status] = field(default_factory=dict)
    updated_at: int | None = None  # epoch ms, as the provider reports it


@dataclass
class ReadBatch:
    records: list[RemoteRecord]
    deleted: list[str]  # remote ids deleted since the cursor (tombstones)
    cursor: str | None  # where the next read starts once this batch is applied


@dataclass
class WriteItem:
    """An upsert. ``remote_id`` is the linked record, or None to create, or to find by
    ``match`` (the match fields and their values) when the provider already has it."""

    key: str  # the engine's identifier (the hub customer id), echoed in the result
    remote_id: str | None
    fields: dict[str, Any]  # provider field → value to set (None clears it)
    match: dict[str, Any]  # provider match field → value
    lists: dict[str, Status] = field(default_factory=dict)  # list id → status to set


@dataclass(frozen=True)
class RecordProblem:
    code: str  # a catalogue code, e.g. E420 mandatory field empty, E422 rejected by the provider
    message: str
    retryable: bool = False  # worth trying again next run (provider hiccup, not bad data)


@dataclass
class WriteResult:
    key: str
    remote_id: str | None = None
    created: bool = False
    problem: RecordProblem | None = None
    record: RemoteRecord | None = None  # the record as the provider now holds it, when known


@dataclass
class ConnectorContext:
    """What a connector gets from its host: the HTTP client (the test seam), a callback that
    persists rotated credentials *before* they are used, and a clock and sleep for backoff."""

    http: httpx.Client | None = None
    save_secrets: Callable[[Mapping[str, str]], None] = lambda _secrets: None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class Connector(Protocol):
    provider: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def check(self) -> None:
        """Raise ConfigError/AuthError with a human message when the target is unusable."""

    def describe(self) -> Description: ...

    def read(self, cursor: str | None, *, since: int | None = None) -> Iterator[ReadBatch]:
        """Changed records and deletions after ``cursor``; on a first run (cursor None) only
        records updated at or after ``since`` (epoch ms) when given."""
        ...

    def fetch(self, remote_ids: Sequence[str]) -> list[RemoteRecord]:
        """The current state of these records (a targeted pull, e.g. after a webhook); ids
        the provider no longer has, or holds as deleted, are left out."""
        ...

    def write(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Upsert ``items``; one result per item in the same order."""
        ...

    def delete(self, remote_ids: Sequence[str]) -> list[WriteResult]:
        """Delete records (absent ones count as deleted); one result per id, ``key`` = id."""
        ...

    def close(self) -> None: ...
