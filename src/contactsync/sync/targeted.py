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

**Keys that are not the remote id.** An event may name a record by another key the provider
accepts (Mailchimp names members by address and subscriber hash; the remote id, and so the
link, is the ``contact_id``). ``emails`` says which address each requested key stands for. A
requested key is answered when a fetched record has it as remote id or has its address; for
one that is not, the link is looked up by remote id or by the address in the link's base (the
hub path the source maps as email), and the provider is asked again by the linked remote id:
only a linked record the provider does not return either is a tombstone. So an address change
(the member keeps its id) updates the same customer, and a deleted member is a deletion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from contactsync.connectors.base import Connector, RemoteRecord
from contactsync.store import sync as store
from contactsync.sync.engine import Run, RunResult
from contactsync.sync.settings import SyncSettings
from contactsync.sync.sources import Source, SyncEnv

EMAIL_PATH = "base.contacts.email"


def pull(
    env: SyncEnv,
    source: Source,
    remote_ids: Sequence[str],
    *,
    emails: Mapping[str, str] | None = None,
    trigger: str = "webhook",
    connector: Connector | None = None,
) -> RunResult:
    """Fetch ``remote_ids`` from the provider and merge them into the hub (one run).

    ``emails``: the address a requested key stands for, when the provider's remote id is not
    that key (see the module's doc). Raises ConfigError E406 when the source is disabled and
    E404 when a run of it is in progress (the caller retries later).
    """
    wanted = list(dict.fromkeys(remote_ids))
    run = Run(env, source, trigger=trigger, connector=connector)

    def work(conn: Connector) -> None:
        if not run.direction.allows("hub") or not wanted:
            return
        records = conn.fetch(wanted)
        deleted = _tombstones(env, run, conn, wanted, emails or {}, records)
        run.apply_provider_records(conn, records, deleted)

    run.start()
    return run.execute_with(work)


def email_path(settings: SyncSettings) -> str | None:
    """The hub path the source maps as the email address (``base.contacts.email`` first)."""
    paths = [m.hub for m in settings.field_map if m.hub.lower().endswith("email")]
    return EMAIL_PATH if EMAIL_PATH in paths else next(iter(paths), None)


def _tombstones(
    env: SyncEnv,
    run: Run,
    conn: Connector,
    wanted: Sequence[str],
    emails: Mapping[str, str],
    records: list[RemoteRecord],
) -> list[str]:
    """The linked remote ids of the requested records the provider no longer has; records it
    returns when asked by their linked id are appended to ``records``."""
    path = email_path(run.settings)
    found = {r.remote_id for r in records}
    seen = {run.mapping.provider_view(r).fields.get(path) for r in records} if path else set()
    missing = [
        key for key in wanted if key not in found and (emails.get(key) or "").strip().lower() not in seen
    ]
    if not missing:
        return []
    addresses = list({emails[k].strip().lower() for k in missing if emails.get(k, "").strip()})
    with env.db.read() as db:
        linked = store.links_by_remote_or_base(db, run.source.id, missing, path, addresses)
    gone = list(dict.fromkeys(lk.remote_id for lk in linked if lk.remote_id not in found))
    ask = [rid for rid in gone if rid not in wanted]
    if ask:  # named by another key: the provider says whether the linked record is gone
        again = conn.fetch(ask)
        records.extend(again)
        found.update(r.remote_id for r in again)
    return [rid for rid in gone if rid not in found]
