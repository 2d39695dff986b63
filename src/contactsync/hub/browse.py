"""What the console shows of the hub: node sizes, customer search, a customer's timeline.

Search takes what a person types: an email (or its start) or the start of a first or last
name, case-insensitive. When the workspace matches customers on the email (the default), an
email's start is looked up in the node's match-key index first, then a last name's start in
the last-name index; first names (a scan of the node) only when neither matched. Pages are
numbered; a page says whether another one follows instead of counting every match (counting
would scan the node on every keystroke).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contactsync.hub import customers as hub_customers
from contactsync.hub import subscriptions as subs
from contactsync.hub.times import format_time
from contactsync.hub.workspaces import Node, load_node, load_workspace, readable_node_ids
from contactsync.store import browse as store
from contactsync.store import subscriptions as sub_store
from contactsync.store.db import Database

EMAIL_ONLY = ("base.contacts.email",)


@dataclass
class CustomerPage:
    node: Node
    elements: list[dict[str, Any]]
    page: int
    size: int
    has_next: bool
    total: int | None  # the node's size when no search term is given


def node_sizes(db: Database, workspace_id: str, nodes: list[Node]) -> dict[str, int]:
    with db.read() as conn:
        return {n.id: store.count(conn, readable_node_ids(n)) for n in nodes}


def search_customers(
    db: Database, workspace_id: str, node_id: str, term: str = "", *, page: int = 0, size: int = 25
) -> CustomerPage:
    term = term.strip()
    page = max(page, 0)
    with db.read() as conn:
        ws = load_workspace(conn, workspace_id)
        node = load_node(conn, workspace_id, node_id)
        ids = readable_node_ids(node)
        offset, limit = page * size, size + 1
        total = None
        if not term:
            rows = store.page(conn, ids, offset=offset, limit=limit)
            total = store.count(conn, ids)
        else:
            rows = _search(conn, ws, ids, term, offset, limit)
        shown = rows[:size]
        sub_rows = sub_store.for_customers(conn, [r.id for r in shown])
    elements = [hub_customers.render(r, sub_rows.get(r.id, [])) for r in shown]
    return CustomerPage(node, elements, page, size, len(rows) > size, total)


def _search(conn: Any, ws: Any, ids: tuple[str, ...], term: str, offset: int, limit: int) -> Sequence[Any]:
    """One way of searching for every page of a term: the first that finds anything at all."""
    by_key = ws.matching_properties == EMAIL_ONLY and not ws.case_sensitive
    low = term.lower()
    if by_key and store.by_match_key_prefix(conn, ids, low, offset=0, limit=1):
        return store.by_match_key_prefix(conn, ids, low, offset=offset, limit=limit)
    if "@" in term:  # an email: the index said no, or (another matching policy) a scan
        if by_key:
            return []
        return store.by_text_prefix(conn, ids, term, store.EMAIL_PATHS, offset=offset, limit=limit)
    if store.by_last_name_prefix(conn, ids, term, offset=0, limit=1):
        return store.by_last_name_prefix(conn, ids, term, offset=offset, limit=limit)
    paths = store.FIRST_NAME_PATHS if by_key else (*store.FIRST_NAME_PATHS, *store.EMAIL_PATHS)
    return store.by_text_prefix(conn, ids, term, paths, offset=offset, limit=limit)


def origin_kind(origin: str) -> str:
    """``api``, ``import``, ``sync``, ``webhook``, ``console``, ``cli``… from a journal origin."""
    return origin.split(":", 1)[0] or "api"


def customer_view(db: Database, workspace_id: str, customer_id: str, limit: int = 100) -> dict[str, Any]:
    """A customer with its consent ledger and a timeline of what changed it, newest first."""
    customer = hub_customers.get(db, workspace_id, customer_id)
    with db.read() as conn:
        ledger = [subs.render_ledger(r) for r in sub_store.ledger(conn, customer_id)]
        entries = store.timeline(conn, customer_id, limit)
    timeline = [
        {
            "at": format_time(e.at),
            "atMs": e.at,
            "operation": e.operation,
            "origin": e.origin,
            "kind": origin_kind(e.origin),
        }
        for e in entries
    ]
    return {"customer": customer, "ledger": list(reversed(ledger)), "timeline": timeline}
