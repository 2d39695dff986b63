"""History retention: the service's own logs are deleted once they are ``history_days`` old.

What goes: finished sync runs with their per-record log, finished exchange runs with their
failed-operations rows (copies of input rows: personal data), webhook deliveries that were
delivered or gave up, with their attempts, and inbound provider events already handled. The
newest run of each source and of each exchange job stays, and so does an exchange run that a
later run can still resume.

What never goes here: customers, their events, the change journal and the consent ledger —
the data itself and the record of consent.

``contactsync serve`` and ``contactsync worker`` prune once an hour (the first pass a minute
after start); ``contactsync prune`` does it on demand, or shows what would go (``--dry-run``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from contactsync.errors import ConfigError
from contactsync.hub.times import now_ms
from contactsync.scheduling.background import register_loops
from contactsync.settings import Settings
from contactsync.store import retention as store
from contactsync.store.db import Database

log = logging.getLogger("contactsync.retention")

DAY_MS = 86_400_000
BATCH = 500  # parent rows deleted per transaction: writers wait on one batch at most
FIRST_PASS_S = 60.0
INTERVAL_S = 3600.0


@dataclass
class PruneReport:
    days: int
    cutoff: int  # rows older than this (ms since the epoch) went, or would go
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)  # kind → rows deleted (or that would be)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def prune(
    db: Database, days: int, *, now: int | None = None, dry_run: bool = False, batch: int = BATCH
) -> PruneReport:
    """Delete (or with ``dry_run`` count) the history older than ``days`` days."""
    if days < 1:
        raise ConfigError(
            f"keep at least one day of history (--days {days}); to keep everything, set "
            "CONTACTSYNC_HISTORY_DAYS=0 and do not run `contactsync prune`",
            code="E100",
        )
    cutoff = (now_ms() if now is None else now) - days * DAY_MS
    report = PruneReport(days, cutoff, dry_run)
    for kind in store.KINDS:
        if dry_run:
            with db.read() as conn:
                report.counts[kind.name] = store.count(conn, kind, cutoff)
            continue
        deleted = 0
        while True:
            with db.write() as conn:
                n = store.delete_some(conn, kind, cutoff, batch)
            deleted += n
            if n < batch:
                break
        report.counts[kind.name] = deleted
    return report


def retention_loops(db: Database, settings: Settings) -> list[tuple[str, Callable[[threading.Event], None]]]:
    """The hourly pruning loop; none when ``history_days`` is 0 (keep everything)."""
    days = settings.history_days
    if days <= 0:
        return []

    def loop(stop: threading.Event) -> None:
        wait = FIRST_PASS_S
        while not stop.wait(wait):
            wait = INTERVAL_S
            report = prune(db, days)
            if report.total:
                log.info(
                    "pruned history older than %d days: %s",
                    days,
                    ", ".join(f"{n} {kind}" for kind, n in report.counts.items() if n),
                    extra={"action": "retention.pruned", "counts": report.counts},
                )

    return [("retention", loop)]


register_loops(retention_loops)
