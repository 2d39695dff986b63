"""Targeted pulls: sync a few provider records now, by remote id (e.g. after a webhook).

A provider's webhook only says *that* a record changed; what it holds now is asked of the
provider (``Connector.fetch``), so the hub changes only from what the provider really holds
and a forged or stale event cannot put values into the hub. The records then go through the
same match, 3-way merge, consent rules and batch apply as a full run's provider phase
(:meth:`contactsync.sync.engine.Run.apply_provider_records`), as a run of its own with
trigger ``webhook`` in the source's sync log.

Echo suppression is the merge's: a record whose values equal its link's base (our own write,
echoed back by the provider's webhook) plans no write on either side. A record the provider
no longer has is a tombstone for its link, handled by the source's delete behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

from contactsync.connectors.base import Connector
from contactsync.sync.engine import Run, RunResult
from contactsync.sync.sources import Source, SyncEnv


def pull(
    env: SyncEnv,
    source: Source,
    remote_ids: Sequence[str],
    *,
    trigger: str = "webhook",
    connector: Connector | None = None,
) -> RunResult:
    """Fetch ``remote_ids`` from the provider and merge them into the hub (one run).

    Raises ConfigError E406 when the source is disabled and E404 when a run of it is in
    progress (the caller retries later).
    """
    wanted = list(dict.fromkeys(remote_ids))
    run = Run(env, source, trigger=trigger, connector=connector)

    def work(conn: Connector) -> None:
        if not run.direction.allows("hub") or not wanted:
            return
        records = conn.fetch(wanted)
        found = {r.remote_id for r in records}
        run.apply_provider_records(conn, records, [rid for rid in wanted if rid not in found])

    run.start()
    return run.execute_with(work)
