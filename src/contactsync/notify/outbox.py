"""The fan-out: from the transactional outbox to one delivery per matching webhook.

The outbox is not a table of its own. Every hub write appends to the change journal, and
every subscription status change to the consent ledger, *in the transaction of the write*:
if the write commits, its journal or ledger entry commits with it, and if it rolls back,
neither exists. So the journal and the ledger are the outbox, and an event can never be lost
between the change and its webhook.

:func:`fan_out` reads both past persistent cursors and, in ONE transaction, inserts a
delivery per (event, matching webhook) and moves the cursors. A crash before the commit
leaves the cursors where they were (the pass is redone); a crash after it leaves the
deliveries stored (the delivery loop sends them). No event is skipped, none is fanned out
twice. It only reads up to the outbox's *high-water mark*: the position below which every
entry is committed (see :func:`contactsync.store.webhooks.high_water`), so an entry committed
late, with an id below one already read, is never jumped over.

Event ids are stable (``evt_j<journal seq>``, ``evt_l<ledger id>``): every webhook and every
redelivery of an event carries the same id, so receivers can drop duplicates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Row

from contactsync.hub import customers as hub_customers
from contactsync.hub.ids import new_id
from contactsync.hub.subscriptions import render_ledger
from contactsync.hub.times import format_time, now_ms
from contactsync.notify.webhooks import ALL, DeliveryStatus, EventType
from contactsync.store import customers as customer_store
from contactsync.store import subscriptions as sub_store
from contactsync.store import webhooks as store
from contactsync.store.db import Database

BATCH = 1000  # journal entries and ledger entries read per pass

_CUSTOMER_TYPES = {
    "CREATE": EventType.CUSTOMER_CREATED,
    "UPDATE": EventType.CUSTOMER_UPDATED,
    "DELETE": EventType.CUSTOMER_REMOVED,
}
_SUBSCRIPTION_TYPES = {
    "pending": EventType.SUBSCRIPTION_PENDING,
    "subscribed": EventType.SUBSCRIPTION_SUBSCRIBED,
    "unsubscribed": EventType.SUBSCRIPTION_UNSUBSCRIBED,
    "cleaned": EventType.SUBSCRIPTION_UNSUBSCRIBED,
}


@dataclass
class _Hook:
    id: str
    workspace_id: str
    node_id: str | None
    events: frozenset[str]
    journal_from: int
    ledger_from: int

    def wants(self, event: _Event) -> bool:
        if event.workspace_id != self.workspace_id:
            return False
        if self.node_id is not None and event.node_id != self.node_id:
            return False
        if ALL not in self.events and event.type not in self.events:
            return False
        start = self.journal_from if event.outbox == "journal" else self.ledger_from
        return event.position > start


@dataclass
class _Event:
    outbox: str  # journal | ledger
    position: int  # journal seq or ledger id
    type: EventType
    workspace_id: str
    node_id: str
    at: int
    customer_id: str
    data: dict[str, Any]
    snapshot: dict[str, Any] | None = None  # the customer as deleted (customer.removed)

    @property
    def id(self) -> str:
        return f"evt_{self.outbox[0]}{self.position}"


def fan_out(db: Database, *, batch: int = BATCH) -> int:
    """One pass: deliveries for the outbox entries past the cursors; returns the entries read."""
    with db.read() as conn:
        pos = store.cursors(conn, lock=False)
        latest = store.outbox_positions(conn)
        listening = store.has_enabled_webhooks(conn)
    if latest[0] <= pos.get("journal", 0) and latest[1] <= pos.get("ledger", 0):
        return 0  # idle: no write transaction, no lock
    if not listening:  # nobody listens: skip ahead without reading (a new webhook starts later)
        with db.write() as conn:
            store.advance_cursor(conn, "journal", latest[0])
            store.advance_cursor(conn, "ledger", latest[1])
        return 0
    with db.read() as conn:
        high = store.high_water(conn)
    if high is None:  # writes in flight held the outbox longer than the lock timeout: next tick
        return 0
    high_seq, high_ledger = high
    with db.write() as conn:
        pos = store.cursors(conn, lock=True)
        after_seq, after_ledger = pos.get("journal", 0), pos.get("ledger", 0)
        if after_seq >= high_seq and after_ledger >= high_ledger:
            return 0
        hooks = [_hook(r) for r in store.enabled_webhooks(conn)]
        if not hooks:
            return 0
        # entries older than every webhook are wanted by none: start past them
        after_seq = max(after_seq, min(h.journal_from for h in hooks))
        after_ledger = max(after_ledger, min(h.ledger_from for h in hooks))
        entries = store.journal_after(conn, after_seq, high_seq, batch)
        ledger = store.ledger_after(conn, after_ledger, high_ledger, batch)
        events = _journal_events(entries) + _ledger_events(conn, ledger)
        wanted = [(e, [h for h in hooks if h.wants(e)]) for e in events]
        wanted = [(e, hs) for e, hs in wanted if hs]
        _attach_customers(conn, [e for e, _ in wanted])
        at = now_ms()
        store.insert_deliveries(conn, [_delivery(e, h, at) for e, hs in wanted for h in hs])
        store.advance_cursor(conn, "journal", entries[-1].seq if len(entries) == batch else high_seq)
        store.advance_cursor(conn, "ledger", ledger[-1].id if len(ledger) == batch else high_ledger)
    return len(entries) + len(ledger)


def _hook(row: Row[Any]) -> _Hook:
    return _Hook(
        row.id,
        row.workspace_id,
        row.node_id,
        frozenset(orjson.loads(row.events)),
        int(row.journal_from),
        int(row.ledger_from),
    )


def _journal_events(entries: Sequence[Row[Any]]) -> list[_Event]:
    out = []
    for r in entries:
        if r.entity != "CUSTOMER" or r.operation not in _CUSTOMER_TYPES:
            continue
        event = _Event(
            "journal",
            int(r.seq),
            _CUSTOMER_TYPES[r.operation],
            r.workspace_id,
            r.node_id,
            int(r.at),
            r.entity_id,
            {"customerId": r.entity_id, "origin": r.origin},
        )
        if r.operation == "DELETE" and r.snapshot:
            event.snapshot = orjson.loads(r.snapshot)
        out.append(event)
    return out


def _ledger_events(conn: Connection, rows: Sequence[Row[Any]]) -> list[_Event]:
    changes = [r for r in rows if r.status != r.previous_status and r.status in _SUBSCRIPTION_TYPES]
    gone = store.deleted_customers(conn, [r.customer_id for r in changes if r.workspace_id is None])
    out = []
    for r in changes:
        where = r if r.workspace_id is not None else gone.get(r.customer_id)
        if where is None:  # neither live nor deleted: not a hub customer (cannot happen)
            continue
        data = {"customerId": r.customer_id, **render_ledger(r)}
        data.pop("at")
        out.append(
            _Event(
                "ledger",
                int(r.id),
                _SUBSCRIPTION_TYPES[r.status],
                where.workspace_id,
                where.node_id,
                int(r.at),
                r.customer_id,
                data,
            )
        )
    return out


def _attach_customers(conn: Connection, events: Sequence[_Event]) -> None:
    """``data.customer``: the customer as it is now (as it was, once deleted)."""
    ids: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.snapshot is None:
            ids[e.workspace_id].add(e.customer_id)
    current: dict[str, dict[str, Any]] = {}
    for workspace_id, customer_ids in ids.items():
        rows = customer_store.get_many(conn, workspace_id, sorted(customer_ids))
        subs = sub_store.for_customers(conn, list(rows))
        current.update({cid: hub_customers.render(row, subs.get(cid, [])) for cid, row in rows.items()})
    for e in events:
        e.data["customer"] = e.snapshot or current.get(e.customer_id) or {"id": e.customer_id}


def _delivery(event: _Event, hook: _Hook, at: int) -> dict[str, Any]:
    body = {
        "id": event.id,
        "type": event.type.value,
        "occurredAt": format_time(event.at),
        "workspaceId": event.workspace_id,
        "nodeId": event.node_id,
        "data": event.data,
    }
    return {
        "id": new_id(),
        "webhook_id": hook.id,
        "event_id": event.id,
        "event_type": event.type.value,
        "body": orjson.dumps(body).decode(),
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "created_at": at,
        "retry_from": at,
        "next_attempt_at": at,
    }
