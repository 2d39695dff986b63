"""Near-real-time push: hub changes on a node with an enabled source start a sync within seconds.

The loop follows the change journal (``seq``) from where it stood when the process started
(changes made while it was down are carried by the next background sync). A customer change
on the node of an enabled source that may write to the provider marks that source; once the
node has been quiet for ``realtime_debounce_seconds`` — or at the latest
``realtime_max_delay_seconds`` after the first change, when it keeps changing — one sync is
queued (trigger ``realtime``), joined to a request of that source still waiting if there is one.

The source's own writes (journal origin ``sync:<source id>``) do not count: a change that came
from the provider is not pushed back to it. Sources with no background frequency (manual
sources) are not pushed either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from contactsync.hub.times import now_ms
from contactsync.scheduling import queue
from contactsync.settings import Settings
from contactsync.store import schedules as store
from contactsync.store.db import Database

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
PAGE = 5000
TRIGGER = "realtime"


@dataclass
class _Pending:
    first: int
    last: int


class Realtime:
    def __init__(self, db: Database, settings: Settings, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.cursor: int | None = None  # the last journal seq looked at
        self.pending: dict[str, _Pending] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("real-time push failed", extra={"action": "realtime.error"})
            stop.wait(min(POLL_SECONDS, self.settings.realtime_debounce_seconds or POLL_SECONDS))

    def poll(self, now: int | None = None) -> list[str]:
        """Read new journal entries and queue the syncs that are due; returns the request ids."""
        if self.cursor is None:
            with self.db.read() as conn:
                self.cursor = store.last_journal_seq(conn)
        at = self.clock() if now is None else now
        self._read(at)
        return self._flush(at)

    def _pushing_sources(self) -> dict[str, str]:
        """node id → source id, for enabled sources that write to the provider on their own."""
        with self.db.read() as conn:
            rows = store.enabled_sources(conn)
        by_node: dict[str, str] = {}
        for row in rows:
            settings = orjson.loads(row.settings)
            if settings.get("frequency_minutes") and settings.get("direction", "both") != "to_hub":
                by_node[row.node_id] = row.id
        return by_node

    def _read(self, now: int) -> None:
        assert self.cursor is not None
        by_node: dict[str, str] | None = None
        while True:
            with self.db.read() as conn:
                changes = store.customer_changes_after(conn, self.cursor, PAGE)
            if not changes:
                return
            if by_node is None:
                by_node = self._pushing_sources()
            for change in changes:
                source_id = by_node.get(change.node_id)
                if source_id is None or change.origin == f"sync:{source_id}":  # Source.origin
                    continue
                mark = self.pending.get(source_id)
                if mark is None:
                    self.pending[source_id] = _Pending(now, now)
                else:
                    mark.last = now
            self.cursor = changes[-1].seq
            if len(changes) < PAGE:
                return

    def _flush(self, now: int) -> list[str]:
        debounce = int(self.settings.realtime_debounce_seconds * 1000)
        max_delay = int(self.settings.realtime_max_delay_seconds * 1000)
        enqueued: list[str] = []
        for source_id, mark in list(self.pending.items()):
            if now - mark.last >= debounce or now - mark.first >= max_delay:
                enqueued.append(queue.enqueue(self.db, "source", source_id, trigger=TRIGGER, coalesce=True))
                del self.pending[source_id]
        return enqueued
