"""One run of a source: read both sides' changes, merge, write, in resumable batches.

A run has two phases (ARCHITECTURE §5):

1. **provider changes** — ``connector.read(cursor)`` batch by batch. Each record is matched
   (link first, then the match keys in priority order; an ambiguous match is skipped, never
   guessed), merged 3-way against the link's base with the hub's *current* values, and
   written to whichever side needs it. Tombstones follow the source's delete behaviour.
2. **hub changes** — the change journal after the hub cursor, in pages. The provider did not
   change these records since its cursor (phase 1 would have seen it), so the base stands for
   the provider's values and the merge sends the hub's changes out.

Each batch is applied as: provider writes first (idempotent upserts), then ONE transaction
with the hub writes, the links and their new bases, the cursor and the run's records. A run
killed at any point re-reads from the last committed cursor: what was written to the provider
comes back as a record equal to the hub (no write), what was not committed is redone, and an
unlinked create finds its earlier copy by the match keys (no duplicate).

Echo suppression falls out of the merge: a record whose values equal its base writes nothing,
and the journal entries of the run's own hub writes (origin ``sync:<source id>``) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from contactsync.connectors.base import Connector, ReadBatch, RemoteRecord, WriteItem, WriteResult
from contactsync.errors import ConfigError, ContactsyncError
from contactsync.hub import consent, sync_writes
from contactsync.hub.consent import Status
from contactsync.hub.context import WriteContext
from contactsync.hub.ids import new_id
from contactsync.hub.times import now_ms
from contactsync.hub.workspaces import Node, Workspace, load_node, load_workspace
from contactsync.owners import owner_alive, process_owner
from contactsync.store import journal as journal_store
from contactsync.store import subscriptions as sub_store
from contactsync.store import sync as store
from contactsync.store import workspaces as ws_store
from contactsync.sync.mapping import Mapping, View
from contactsync.sync.merge import Outcome, merge
from contactsync.sync.settings import DeleteBehaviour, Direction
from contactsync.sync.sources import Source, SyncEnv, connector_for

SKIP_CODES = frozenset({"E301", "E420", "E421", "E423", "E742"})  # skipped by a rule, not failed
SAMPLE_SIZE = 20


@dataclass
class SideCounts:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0


@dataclass
class Counts:
    hub: SideCounts = field(default_factory=SideCounts)
    provider: SideCounts = field(default_factory=SideCounts)
    read: int = 0  # provider records and hub changes looked at
    unchanged: int = 0
    conflicts: int = 0

    def side(self, name: str) -> SideCounts:
        return self.hub if name == "hub" else self.provider

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        return cls(
            SideCounts(**data.get("hub", {})),
            SideCounts(**data.get("provider", {})),
            data.get("read", 0),
            data.get("unchanged", 0),
            data.get("conflicts", 0),
        )


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: Counts
    error_code: str | None = None
    error: str | None = None
    plan: dict[str, Any] | None = None


class GuardTripped(ContactsyncError):
    pass


Progress = Callable[[str, Counts], None]


@dataclass
class Item:
    """One record's plan within a batch."""

    key: str
    customer_id: str | None
    remote_id: str | None
    base: View | None = None  # the link's new base when every write goes through
    hub_change: sync_writes.HubChange | None = None
    write: WriteItem | None = None
    hub_delete: bool = False
    provider_delete: bool = False
    unlink: bool = False
    skip: tuple[str, str, str] | None = None  # side, code, reason
    conflicts: int = 0
    before: dict[str, Any] | None = None


@dataclass
class Batch:
    items: list[Item] = field(default_factory=list)
    read: int = 0


class Run:
    def __init__(
        self,
        env: SyncEnv,
        source: Source,
        *,
        trigger: str = "manual",
        direction: Direction | None = None,
        dry_run: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        batch_size: int = 500,
        connector: Connector | None = None,
    ) -> None:
        self.env = env
        self.source = source
        self.settings = source.settings
        if direction is not None:
            narrowed = source.settings.direction.narrowed(direction)
            if narrowed is None:
                raise ConfigError(
                    f"source {source.name!r} syncs {source.settings.direction.value}; "
                    f"it cannot run {direction.value}",
                    code="E100",
                )
            self.settings = source.settings.model_copy(update={"direction": narrowed})
        self.direction = self.settings.direction
        self.trigger = trigger
        self.dry_run = dry_run
        self.force = force
        self.progress = progress
        self.batch_size = batch_size
        self.connector = connector
        self.mapping = Mapping(self.settings)
        self.ctx = WriteContext(origin=source.origin, actor=source.name, automatic=True)
        self.counts = Counts()
        self.run_id = new_id()
        self.samples: list[dict[str, Any]] = []
        self.destructive = {"hub": 0, "provider": 0}
        self.sizes = {"hub": 0, "provider": 0}
        self._pending_logs: list[dict[str, Any]] = []  # consent refusals found while planning
        self._started = False
        self.ws: Workspace
        self.node: Node

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the run (refused when the source is disabled or already running)."""
        if not self.source.enabled and not self.force:
            raise ConfigError(
                f"source {self.source.name!r} is disabled; enable it or run with --force", code="E406"
            )
        self._start()
        self._started = True

    def execute(self) -> RunResult:
        return self.execute_with(self._phases)

    def _phases(self, connector: Connector) -> None:
        if self.direction.allows("hub"):
            self._provider_phase(connector)
        self._hub_phase(connector)

    def execute_with(self, work: Callable[[Connector], None]) -> RunResult:
        """Start the run if needed, do ``work`` with the source's connector, record the outcome.

        ``execute`` does both phases; a targeted pull (:mod:`contactsync.sync.targeted`) does
        :meth:`apply_provider_records` for a few records instead.
        """
        if not self._started:
            self.start()
        connector = self.connector or connector_for(self.env, self.source)
        status, code, message = "succeeded", None, None
        try:
            work(connector)
        except GuardTripped as e:
            status, code, message = "stopped", e.code, e.message
        except ContactsyncError as e:
            status, code, message = "failed", e.code, e.message
        except Exception as e:
            status, code, message = "failed", "E999", f"{type(e).__name__}: {e}"
            self._finish(status, code, message)
            raise
        finally:
            if self.connector is None:
                connector.close()
        self._finish(status, code, message)
        return RunResult(self.run_id, status, self.counts, code, message, self._plan_json())

    def _start(self) -> None:
        at = now_ms()
        with self.env.db.write() as conn:
            store.lock_source(conn, self.source.id)
            for other in store.running_runs(conn, self.source.id):
                if owner_alive(other.owner, other.heartbeat_at):
                    raise ConfigError(
                        f"source {self.source.name!r} is already running (run {other.id})", code="E404"
                    )
                store.update_run(
                    conn,
                    other.id,
                    {
                        "status": "interrupted",
                        "ended_at": at,
                        "error_code": "E501",
                        "error": f"the process running it died; run {self.run_id} resumes "
                        "from its last committed batch",
                    },
                )
            row = store.get_source_by_id(conn, self.source.id)
            assert row is not None
            self.source.hub_cursor, self.source.provider_cursor = int(row.hub_cursor), row.provider_cursor
            self.ws = load_workspace(conn, self.source.workspace_id)
            self.node = load_node(conn, self.source.workspace_id, self.source.node_id)
            self.sizes["hub"] = ws_store.count_customers(conn, [self.node.id])
            self.sizes["provider"] = store.count_links(conn, self.source.id)
            store.insert_run(
                conn,
                {
                    "id": self.run_id,
                    "source_id": self.source.id,
                    "trigger": self.trigger,
                    "direction": self.direction.value,
                    "dry_run": self.dry_run,
                    "status": "running",
                    "started_at": at,
                    "heartbeat_at": at,
                    "owner": process_owner(),
                    "counts": orjson.dumps(self.counts.as_json()).decode(),
                },
            )

    def _finish(self, status: str, code: str | None, message: str | None) -> None:
        with self.env.db.write() as conn:
            store.update_run(
                conn,
                self.run_id,
                {
                    "status": status,
                    "ended_at": now_ms(),
                    "heartbeat_at": now_ms(),
                    "counts": orjson.dumps(self.counts.as_json()).decode(),
                    "error_code": code,
                    "error": message,
                    "plan": orjson.dumps(self._plan_json()).decode() if self.dry_run else None,
                },
            )

    def _plan_json(self) -> dict[str, Any] | None:
        return {"counts": self.counts.as_json(), "samples": self.samples} if self.dry_run else None

    # --- phase 1: provider changes ------------------------------------------------------------

    def _provider_phase(self, connector: Connector) -> None:
        cursor = self.source.provider_cursor
        since = self.settings.sync_from if cursor is None else None
        for read in connector.read(cursor, since=since):
            batch = self._plan_provider(read)
            self._apply(connector, batch, provider_cursor=read.cursor)
            self._report("provider")

    def apply_provider_records(
        self, connector: Connector, records: Sequence[RemoteRecord], deleted: Sequence[str] = ()
    ) -> None:
        """Phase 1 for these provider records only, as one batch: matched, merged against their
        links' bases and applied like any batch (``deleted``: tombstones). The provider cursor
        stays where it is, so the next full run reads them again and finds nothing to do."""
        batch = self._plan_provider(ReadBatch(list(records), list(deleted), None))
        self._apply(connector, batch)
        self._report("provider")

    def _plan_provider(self, read: ReadBatch) -> Batch:
        records = list({r.remote_id: r for r in read.records}.values())
        deleted = [rid for rid in dict.fromkeys(read.deleted) if rid not in {r.remote_id for r in records}]
        batch = Batch(read=len(records) + len(deleted))
        with self.env.db.read() as conn:
            links = store.links_by_remote(conn, self.source.id, [r.remote_id for r in records] + deleted)
            views = {r.remote_id: self.mapping.provider_view(r) for r in records}
            matched, ambiguous = self._match(conn, [r for r in records if r.remote_id not in links], views)
            ids = [lk.customer_id for lk in links.values()] + list(matched.values())
            hub = sync_writes.current(conn, self.ws.id, ids)
            barriers = self._barriers(conn, list(hub))
        claimed: set[str] = set()
        for record in records:
            pv = views[record.remote_id]
            key = self._key(pv, record.remote_id)
            if record.remote_id in ambiguous:
                batch.items.append(
                    self._skipped(key, None, record.remote_id, "hub", *ambiguous[record.remote_id])
                )
                continue
            link = links.get(record.remote_id)
            customer_id = link.customer_id if link else matched.get(record.remote_id)
            if customer_id is not None and customer_id in claimed:
                reason = "two provider records in one batch match the same customer"
                batch.items.append(self._skipped(key, customer_id, record.remote_id, "hub", "E421", reason))
                continue
            if customer_id is not None:
                claimed.add(customer_id)
            current = hub.get(customer_id) if customer_id else None
            if current is None and not self.direction.allows("hub"):
                continue
            base = View.from_json(link.base) if link else None
            batch.items.append(
                self._plan_record(key, customer_id if current else None, record, pv, current, base, barriers)
            )
        for remote_id in deleted:
            link = links.get(remote_id)
            if link is not None:
                batch.items.append(
                    self._plan_remote_delete(link.customer_id, remote_id, hub.get(link.customer_id))
                )
        return batch

    def _match(
        self, conn: Connection, records: Sequence[RemoteRecord], views: dict[str, View]
    ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
        """Unlinked provider records → hub customer ids by the match keys in priority order."""
        matched: dict[str, str] = {}
        ambiguous: dict[str, tuple[str, str]] = {}
        pending = [r.remote_id for r in records]
        for path in self.settings.match_keys:
            values = {rid: views[rid].fields.get(path) for rid in pending}
            wanted = [v for v in values.values() if v is not None]
            found = sync_writes.find(conn, self.ws, self.node, path, wanted) if wanted else {}
            candidates = {cid for ids in found.values() for cid in ids}
            linked = store.links_by_customer(conn, self.source.id, list(candidates))
            still = []
            for rid in pending:
                ids = found.get(values[rid], []) if values[rid] is not None else []
                if len(ids) > 1:
                    ambiguous[rid] = ("E421", f"{path} {values[rid]!r} matches {len(ids)} customers")
                elif len(ids) == 1 and ids[0] in linked and linked[ids[0]].remote_id != rid:
                    reason = f"{path} {values[rid]!r} matches a customer linked to another provider record"
                    ambiguous[rid] = ("E421", reason)
                elif len(ids) == 1:
                    matched[rid] = ids[0]
                else:
                    still.append(rid)
            pending = still
        return matched, ambiguous

    def _barriers(self, conn: Connection, customer_ids: list[str]) -> dict[tuple[str, str], consent.Current]:
        rows = sub_store.for_customers(conn, customer_ids)
        return {
            (cid, r.subscription_id): consent.Current(Status(r.status), r.opted_out_at)
            for cid, subs in rows.items()
            for r in subs
        }

    def _plan_record(
        self,
        key: str,
        customer_id: str | None,
        record: RemoteRecord | None,
        pv: View,
        current: sync_writes.Current | None,
        base: View | None,
        barriers: dict[tuple[str, str], consent.Current],
    ) -> Item:
        hv = self.mapping.hub_view(current.body) if current else View()
        hub_newer = current is not None and (
            record is None or record.updated_at is None or current.updated_at >= record.updated_at
        )
        outcome = merge(self.settings, base, hv, pv, hub_newer=hub_newer)
        if customer_id is not None:
            self._apply_consent(key, customer_id, outcome, pv, barriers)
        remote_id = record.remote_id if record is not None else None
        item = Item(key, customer_id, remote_id, base=outcome.merged, conflicts=len(outcome.conflicts))
        if self.settings.debug:
            item.before = {"hub": _view_json(hv), "provider": _view_json(pv)}
        if outcome.writes_hub or (customer_id is None and self.direction.allows("hub")):
            fields = outcome.hub_fields if customer_id else dict(outcome.merged.fields)
            item.hub_change = sync_writes.HubChange(
                key=key,
                customer_id=customer_id,
                patch=self.mapping.hub_patch(fields),
                subs=dict(outcome.hub_subs),
                webform_codes=dict(self.mapping.webform),
            )
        if outcome.writes_provider:
            item.write = self.mapping.write_item(
                key, remote_id, outcome.merged, outcome.provider_fields, outcome.provider_subs
            )
        self._count_destructive(outcome)
        return item

    def _apply_consent(
        self,
        key: str,
        customer_id: str,
        outcome: Outcome,
        pv: View,
        barriers: dict[tuple[str, str], consent.Current],
    ) -> None:
        """Predict the hub's consent decision for each subscription change, so the provider gets
        the status the hub will really hold (an automatic resubscribe is refused)."""
        at = now_ms()
        for sid, wanted in list(outcome.hub_subs.items()):
            decision = consent.decide(
                barriers.get((customer_id, sid)), consent.Request(wanted, at, automatic=True)
            )
            if decision.status == wanted:
                continue
            del outcome.hub_subs[sid]
            outcome.merged.subs[sid] = decision.status
            if pv.subs.get(sid) != decision.status and self.direction.allows("provider"):
                outcome.provider_subs[sid] = decision.status
            else:
                outcome.provider_subs.pop(sid, None)
            self._log_consent(key, customer_id, sid, wanted, decision)

    def _log_consent(
        self, key: str, customer_id: str, sid: str, wanted: Status, decision: consent.Decision
    ) -> None:
        self._pending_logs.append(
            {
                "side": "hub",
                "action": "skipped",
                "key": key[:512],
                "customer_id": customer_id,
                "code": "E301",
                "reason": f"subscription {sid}: {wanted.value} refused by the consent rules "
                f"({decision.reason.value}); it stays {decision.status.value}",
            }
        )
        self.counts.hub.skipped += 1

    def _count_destructive(self, outcome: Outcome) -> None:
        for side, subs in (("hub", outcome.hub_subs), ("provider", outcome.provider_subs)):
            if any(s in consent.OPTED_OUT for s in subs.values()):
                self.destructive[side] += 1

    def _plan_remote_delete(
        self, customer_id: str, remote_id: str, current: sync_writes.Current | None
    ) -> Item:
        """The provider record was deleted: apply the delete behaviour to the hub customer."""
        key = self._key(self.mapping.hub_view(current.body), remote_id) if current else remote_id
        item = Item(key, customer_id, remote_id, unlink=True)
        behaviour = self.settings.delete_behaviour
        if current is None or not self.direction.allows("hub") or behaviour == DeleteBehaviour.IGNORE:
            return item
        self.destructive["hub"] += 1
        if behaviour == DeleteBehaviour.DELETE:
            item.hub_delete = True
        elif behaviour == DeleteBehaviour.UNSUBSCRIBE:
            subs = {sid: Status.UNSUBSCRIBED for sid in self.mapping.list_of}
            item.hub_change = sync_writes.HubChange(key, customer_id, subs=subs)
        else:
            item.hub_change = sync_writes.HubChange(key, customer_id, enabled=False)
        return item

    # --- phase 2: hub changes -----------------------------------------------------------------

    def _hub_phase(self, connector: Connector) -> None:
        with self.env.db.read() as conn:
            high = journal_store.last_seq(conn, self.ws.id, [self.node.id], "CUSTOMER")
        cursor = self.source.hub_cursor
        first = True
        while True:
            with self.env.db.read() as conn:
                rows = journal_store.read(
                    conn,
                    self.ws.id,
                    after_seq=cursor,
                    since_ms=None,
                    node_ids=[self.node.id],
                    entity="CUSTOMER",
                    limit=self.batch_size,
                )
                rows = [r for r in rows if r.seq <= high]
                retries = store.retry_ids(conn, self.source.id, self.batch_size) if first else []
            first = False
            if not rows and not retries:
                return
            next_cursor = rows[-1].seq if rows else cursor
            if not self.direction.allows("provider"):
                self._apply(connector, Batch(), hub_cursor=next_cursor)
            else:
                batch = self._plan_hub(rows, retries)
                self._apply(connector, batch, hub_cursor=next_cursor)
            self._report("hub")
            cursor = next_cursor
            if not rows:
                return

    def _plan_hub(self, rows: Sequence[Any], retries: list[str]) -> Batch:
        changed: dict[str, None] = dict.fromkeys(retries)
        deleted: dict[str, None] = {}
        for r in rows:
            if r.origin == self.source.origin:
                continue
            if r.operation == "DELETE":
                deleted[r.entity_id] = None
                changed.pop(r.entity_id, None)
            else:
                changed[r.entity_id] = None
                deleted.pop(r.entity_id, None)
        batch = Batch(read=len(changed) + len(deleted))
        ids = list(changed) + list(deleted)
        with self.env.db.read() as conn:
            links = store.links_by_customer(conn, self.source.id, ids)
            hub = sync_writes.current(conn, self.ws.id, list(changed))
        shared = self._shared_match_values([hub[c] for c in changed if c in hub and c not in links])
        for cid in changed:
            current = hub.get(cid)
            if current is None:  # deleted after the page was read: a later page has its DELETE
                continue
            link = links.get(cid)
            base = View.from_json(link.base) if link else None
            pv = base if base is not None else View()
            hv = self.mapping.hub_view(current.body)
            key = self._key(hv, cid)
            if link is None:
                first = self.mapping.match_values(hv)[:1]
                if not first:
                    batch.items.append(
                        self._skipped(key, cid, None, "provider", "E423", "no value for any match key")
                    )
                    continue
                if first[0] in shared:
                    path, value = first[0]
                    reason = f"{path} {value!r} is shared by several customers: it cannot identify one"
                    batch.items.append(self._skipped(key, cid, None, "provider", "E421", reason))
                    continue
            item = self._plan_record(key, cid, None, pv, current, base, {})
            if link is not None:
                item.remote_id = link.remote_id
                if item.write is not None:
                    item.write.remote_id = link.remote_id
            batch.items.append(item)
        for cid in deleted:
            link = links.get(cid)
            if link is not None:
                batch.items.append(self._plan_hub_delete(cid, link.remote_id, View.from_json(link.base)))
        return batch

    def _shared_match_values(self, unlinked: Sequence[sync_writes.Current]) -> set[tuple[str, Any]]:
        """First match values of unlinked customers that more than one customer of the node has:
        a provider upsert by such a value would pick a record at random."""
        firsts: dict[str, set[Any]] = {}
        for current in unlinked:
            for path, value in self.mapping.match_values(self.mapping.hub_view(current.body))[:1]:
                firsts.setdefault(path, set()).add(value)
        shared: set[tuple[str, Any]] = set()
        with self.env.db.read() as conn:
            for path, values in firsts.items():
                found = sync_writes.find(conn, self.ws, self.node, path, list(values))
                shared |= {(path, v) for v, ids in found.items() if len(ids) > 1}
        return shared

    def _plan_hub_delete(self, customer_id: str, remote_id: str, base: View) -> Item:
        item = Item(self._key(base, remote_id), customer_id, remote_id, unlink=True)
        behaviour = self.settings.delete_behaviour
        if behaviour == DeleteBehaviour.IGNORE:
            return item
        self.destructive["provider"] += 1
        if behaviour == DeleteBehaviour.DELETE:
            item.provider_delete = True
        else:  # unsubscribe / archive: providers have no archive, so unsubscribe everywhere
            subs = {sid: Status.UNSUBSCRIBED for sid in self.mapping.list_of}
            item.write = self.mapping.write_item(item.key, remote_id, base, {}, subs)
        return item

    # --- apply --------------------------------------------------------------------------------

    def _guard(self) -> None:
        limit = self.settings.mass_change_guard / 100
        for side in ("hub", "provider"):
            size = self.sizes[side]
            n = self.destructive[side]
            if n > 10 and n > limit * size:
                raise GuardTripped(
                    f"stopped before deleting or unsubscribing {n} of {size} records on the {side} side "
                    f"(guard: {self.settings.mass_change_guard:g}%); nothing of this batch was written",
                    code="E405",
                )

    def _apply(
        self,
        connector: Connector,
        batch: Batch,
        *,
        provider_cursor: str | None = None,
        hub_cursor: int | None = None,
    ) -> None:
        self.counts.read += batch.read
        self._guard()
        logs = self._pending_logs
        self._pending_logs = []
        if self.dry_run:
            self._count_dry(batch)
            return
        written = self._write_provider(connector, batch)
        at = now_ms()
        with self.env.db.write() as conn:
            hub_results = self._write_hub(conn, batch)
            links = _LinkChanges()
            for i, item in enumerate(batch.items):
                logs += self._settle(item, written.get(i), hub_results.get(i), links, at)
            logs += self._drop_colliding_links(conn, links)
            unlink, link_rows, failed, done = links.unlink, links.rows, links.failed, links.done
            store.delete_links(conn, self.source.id, unlink)
            store.upsert_links(conn, link_rows)
            store.set_retries(conn, self.source.id, failed, done)
            store.insert_records(conn, [{**r, "run_id": self.run_id} for r in logs])
            values: dict[str, Any] = {"updated_at": at}
            if provider_cursor is not None:
                values["provider_cursor"] = provider_cursor
                self.source.provider_cursor = provider_cursor
            if hub_cursor is not None:
                values["hub_cursor"] = hub_cursor
                self.source.hub_cursor = hub_cursor
            store.update_source(conn, self.source.id, values)
            store.update_run(
                conn,
                self.run_id,
                {"heartbeat_at": at, "counts": orjson.dumps(self.counts.as_json()).decode()},
            )

    def _drop_colliding_links(self, conn: Connection, links: _LinkChanges) -> list[dict[str, Any]]:
        """A provider record linked to two customers would merge two people: keep the first
        link, skip the others with E421 (the provider matched them to the same record)."""
        existing = store.links_by_remote(conn, self.source.id, [r["remote_id"] for r in links.rows])
        owner = {rid: lk.customer_id for rid, lk in existing.items() if lk.customer_id not in links.unlink}
        kept, logs = [], []
        for row in links.rows:
            holder = owner.setdefault(row["remote_id"], row["customer_id"])
            if holder == row["customer_id"]:
                kept.append(row)
                continue
            item = Item(row["remote_id"], row["customer_id"], row["remote_id"])
            reason = (
                f"the provider matched it to record {row['remote_id']}, which is linked to customer {holder}"
            )
            logs.append(self._problem(item, "provider", "E421", reason))
        links.rows = kept
        return logs

    def _write_provider(self, connector: Connector, batch: Batch) -> dict[int, WriteResult]:
        """Provider writes and deletes of the batch, by item index."""
        out: dict[int, WriteResult] = {}
        writes = [(i, it.write) for i, it in enumerate(batch.items) if it.write is not None and not it.skip]
        if writes:
            for (i, _), result in zip(writes, connector.write([w for _, w in writes]), strict=True):
                out[i] = result
        deletes = [
            (i, it.remote_id) for i, it in enumerate(batch.items) if it.provider_delete and it.remote_id
        ]
        if deletes:
            results = connector.delete([rid for _, rid in deletes if rid])
            for (i, _), result in zip(deletes, results, strict=True):
                out[i] = result
        return out

    def _write_hub(self, conn: Connection, batch: Batch) -> dict[int, sync_writes.HubResult]:
        changes = [(i, it.hub_change) for i, it in enumerate(batch.items) if it.hub_change and not it.skip]
        results = sync_writes.apply(conn, self.ws, self.node, [c for _, c in changes if c], self.ctx)
        out = {i: r for (i, _), r in zip(changes, results, strict=True)}
        for i, item in enumerate(batch.items):
            if item.hub_delete and item.customer_id:
                gone = sync_writes.delete(conn, self.ws, item.customer_id, self.ctx)
                out[i] = sync_writes.HubResult(item.key, item.customer_id, changed=gone)
        return out

    def _settle(
        self,
        item: Item,
        written: WriteResult | None,
        hub: sync_writes.HubResult | None,
        links: _LinkChanges,
        at: int,
    ) -> list[dict[str, Any]]:
        """Count and log one item's outcome, and decide what happens to its link."""
        if item.skip:
            side, code, reason = item.skip
            self.counts.side(side).skipped += 1
            return [self._log(item, side, "skipped", code, reason)]
        logs: list[dict[str, Any]] = []
        customer_id, remote_id = item.customer_id, item.remote_id
        settled = True
        if hub is not None:
            if hub.code:
                settled = False
                logs.append(self._problem(item, "hub", hub.code, hub.message or ""))
            else:
                customer_id = hub.customer_id
                action = "deleted" if item.hub_delete else "created" if hub.created else "updated"
                if hub.changed or hub.created:
                    _bump(self.counts.hub, action)
                    logs.append(self._log(item, "hub", action, None, None, customer_id=customer_id))
                if item.base is not None:  # a refusal the prediction missed: the hub's status stands
                    for sid, status in hub.statuses.items():
                        item.base.subs[sid] = status
        if written is not None:
            if written.problem is not None:
                settled = False
                logs.append(self._problem(item, "provider", written.problem.code, written.problem.message))
                if written.problem.retryable and customer_id:
                    links.failed[customer_id] = written.problem.code
            else:
                remote_id = written.remote_id or remote_id
                action = "deleted" if item.provider_delete else "created" if written.created else "updated"
                _bump(self.counts.provider, action)
                logs.append(self._log(item, "provider", action, None, None, remote_id=remote_id))
                if customer_id:
                    links.done.append(customer_id)
        if hub is None and written is None and not item.unlink:
            self.counts.unchanged += 1
        self.counts.conflicts += item.conflicts
        if item.unlink or item.hub_delete or item.provider_delete:
            if customer_id:
                links.unlink.append(customer_id)
        elif settled and customer_id and remote_id and item.base is not None:
            links.rows.append(
                {
                    "source_id": self.source.id,
                    "customer_id": customer_id,
                    "remote_id": remote_id,
                    "base": item.base.to_json(),
                    "synced_at": at,
                }
            )
        return logs

    def _problem(self, item: Item, side: str, code: str, message: str) -> dict[str, Any]:
        action = "skipped" if code in SKIP_CODES else "failed"
        _bump(self.counts.side(side), action)
        return self._log(item, side, action, code, message)

    def _log(
        self,
        item: Item,
        side: str,
        action: str,
        code: str | None,
        reason: str | None,
        *,
        customer_id: str | None = None,
        remote_id: str | None = None,
    ) -> dict[str, Any]:
        debug = self.settings.debug
        return {
            "side": side,
            "action": action,
            "key": item.key[:512],
            "customer_id": customer_id or item.customer_id,
            "remote_id": remote_id or item.remote_id,
            "code": code,
            "reason": reason,
            "before": orjson.dumps(item.before).decode() if debug and item.before else None,
            "after": orjson.dumps(_view_json(item.base)).decode() if debug and item.base else None,
        }

    def _count_dry(self, batch: Batch) -> None:
        for item in batch.items:
            if item.skip:
                self.counts.side(item.skip[0]).skipped += 1
                continue
            touched = False
            if item.hub_change is not None:
                side = self.counts.hub
                if item.hub_change.customer_id is None:
                    side.created += 1
                else:
                    side.updated += 1
                touched = True
            if item.hub_delete:
                self.counts.hub.deleted += 1
                touched = True
            if item.write is not None:
                if item.write.remote_id is None:
                    self.counts.provider.created += 1
                else:
                    self.counts.provider.updated += 1
                touched = True
            if item.provider_delete:
                self.counts.provider.deleted += 1
                touched = True
            if not touched:
                self.counts.unchanged += 1
            elif len(self.samples) < SAMPLE_SIZE:
                self.samples.append(_sample(item))

    # --- helpers ------------------------------------------------------------------------------

    def _key(self, view: View, fallback: str) -> str:
        values = self.mapping.match_values(view)
        return str(values[0][1]) if values else fallback

    def _skipped(
        self, key: str, customer_id: str | None, remote_id: str | None, side: str, code: str, reason: str
    ) -> Item:
        return Item(key, customer_id, remote_id, skip=(side, code, reason))

    def _report(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(phase, self.counts)


def _bump(counts: SideCounts, action: str) -> None:
    setattr(counts, action, getattr(counts, action) + 1)


@dataclass
class _LinkChanges:
    rows: list[dict[str, Any]] = field(default_factory=list)
    unlink: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # customer id → code, retried next run
    done: list[str] = field(default_factory=list)


def _view_json(view: View) -> dict[str, Any]:
    return {"fields": view.fields, "subs": {k: v.value if v else None for k, v in view.subs.items()}}


def _sample(item: Item) -> dict[str, Any]:
    return {
        "key": item.key,
        "customerId": item.customer_id,
        "remoteId": item.remote_id,
        "hub": item.hub_change.patch if item.hub_change else None,
        "hubSubscriptions": {k: v.value for k, v in item.hub_change.subs.items()}
        if item.hub_change
        else None,
        "provider": item.write.fields if item.write else None,
        "providerLists": {k: v.value for k, v in item.write.lists.items()} if item.write else None,
        "deleteHub": item.hub_delete,
        "deleteProvider": item.provider_delete,
    }


def run_source(env: SyncEnv, source: Source, **kwargs: Any) -> RunResult:
    return Run(env, source, **kwargs).execute()
