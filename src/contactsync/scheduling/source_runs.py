"""The ``source`` target: a queued request runs the source's two-way sync (sync/engine.py)."""

from __future__ import annotations

import logging

from contactsync.errors import ConfigError, ContactsyncError, TransientError, not_found
from contactsync.scheduling import targets
from contactsync.secrets import SecretBox
from contactsync.settings import Settings
from contactsync.store import sync as sync_store
from contactsync.store.db import Database
from contactsync.sync import sources
from contactsync.sync.engine import run_source
from contactsync.sync.sources import SyncEnv

log = logging.getLogger(__name__)

AUTOMATIC = frozenset({"schedule", "realtime"})


def run_source_request(
    db: Database, settings: Settings, source_id: str, trigger: str, request_id: str
) -> None:
    """Run one sync of a source. An automatic request for a source disabled since it was queued
    is dropped; a source already running makes the request wait (E666)."""
    env = SyncEnv(db, SecretBox.from_settings(settings))
    with db.read() as conn:
        row = sync_store.get_source_by_id(conn, source_id)
    if row is None:
        raise not_found("source", source_id)
    source = sources.get_source(env, row.workspace_id, source_id)
    if not source.enabled and trigger in AUTOMATIC:
        log.info(
            "source %s is disabled: %s run skipped", source.name, trigger, extra={"action": "source.skip"}
        )
        return
    try:
        result = run_source(env, source, trigger=trigger)
    except ConfigError as e:
        if e.code == "E404":
            raise TransientError(
                f"source {source.name!r} is already running; this run waits", code="E666"
            ) from e
        raise
    if result.status != "succeeded":
        raise ContactsyncError(
            f"run {result.run_id} of source {source.name!r} {result.status}: {result.error}",
            code=result.error_code or "E999",
        )


targets.register("source", run_source_request)
