"""Named queries: double opt-in requests and the frontend configuration (lists, allow-list, fields)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.optin_tables import (
    frontend_allowed_ips,
    frontend_fields,
    frontend_lists,
    optin_requests,
)

# --- double opt-in requests -------------------------------------------------------------------


def insert_request(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(optin_requests.insert(), row)


def get_request(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(optin_requests).where(optin_requests.c.id == request_id)).first()


def find_by_token_hash(conn: Connection, token_hash: str) -> Row[Any] | None:
    query = sa.select(optin_requests).where(optin_requests.c.token_hash == token_hash)
    return conn.execute(query).first()


def claim_confirmation(conn: Connection, request_id: str, at: int, ip: str | None, ua: str | None) -> bool:
    """Mark an open request confirmed; False when another confirmation got there first."""
    result = conn.execute(
        optin_requests.update()
        .where(
            optin_requests.c.id == request_id,
            optin_requests.c.confirmed_at.is_(None),
            optin_requests.c.closed_at.is_(None),
        )
        .values(confirmed_at=at, confirm_ip=ip, confirm_user_agent=ua)
    )
    return bool(result.rowcount)


def close_for_customer(conn: Connection, customer_id: str, at: int) -> int:
    """Withdraw the open requests of a customer (it is being removed)."""
    result = conn.execute(
        optin_requests.update()
        .where(
            optin_requests.c.customer_id == customer_id,
            optin_requests.c.confirmed_at.is_(None),
            optin_requests.c.closed_at.is_(None),
        )
        .values(closed_at=at, token_sealed=None)
    )
    return int(result.rowcount)


def due_emails(conn: Connection, now: int, limit: int) -> Sequence[Row[Any]]:
    """Open requests whose email is not sent yet and is due (oldest first)."""
    query = (
        sa.select(optin_requests.c.id)
        .where(
            optin_requests.c.email_sent_at.is_(None),
            optin_requests.c.next_attempt_at <= now,
            optin_requests.c.expires_at > now,
            optin_requests.c.confirmed_at.is_(None),
            optin_requests.c.closed_at.is_(None),
        )
        .order_by(optin_requests.c.next_attempt_at)
        .limit(limit)
    )
    return conn.execute(query).all()


def claim_email(conn: Connection, request_id: str, now: int, lease_until: int) -> Row[Any] | None:
    """Take the sending of a due email for a while (so two senders never both send it)."""
    result = conn.execute(
        optin_requests.update()
        .where(
            optin_requests.c.id == request_id,
            optin_requests.c.email_sent_at.is_(None),
            optin_requests.c.next_attempt_at <= now,
            optin_requests.c.closed_at.is_(None),
        )
        .values(next_attempt_at=lease_until)
    )
    return get_request(conn, request_id) if result.rowcount else None


def mark_sent(conn: Connection, request_id: str, at: int) -> None:
    conn.execute(
        optin_requests.update()
        .where(optin_requests.c.id == request_id)
        .values(email_sent_at=at, token_sealed=None, last_error=None, attempts=optin_requests.c.attempts + 1)
    )


def mark_failed(conn: Connection, request_id: str, next_attempt_at: int, error: str) -> None:
    conn.execute(
        optin_requests.update()
        .where(optin_requests.c.id == request_id)
        .values(
            next_attempt_at=next_attempt_at,
            last_error=error[:2000],
            attempts=optin_requests.c.attempts + 1,
        )
    )


def list_requests(
    conn: Connection, workspace_id: str, *, customer_id: str | None = None, limit: int = 100
) -> Sequence[Row[Any]]:
    query = sa.select(optin_requests).where(optin_requests.c.workspace_id == workspace_id)
    if customer_id is not None:
        query = query.where(optin_requests.c.customer_id == customer_id)
    return conn.execute(query.order_by(optin_requests.c.created_at.desc()).limit(limit)).all()


# --- frontend lists ---------------------------------------------------------------------------


def get_lists(conn: Connection, list_ids: Sequence[str]) -> dict[str, Row[Any]]:
    query = sa.select(frontend_lists).where(frontend_lists.c.list_id.in_(list(list_ids)))
    return {r.list_id: r for r in conn.execute(query)}


def list_lists(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = sa.select(frontend_lists).where(frontend_lists.c.workspace_id == workspace_id)
    return conn.execute(query.order_by(frontend_lists.c.list_id)).all()


def upsert_list(conn: Connection, row: dict[str, Any]) -> None:
    found = conn.execute(
        frontend_lists.update().where(frontend_lists.c.list_id == row["list_id"]).values(**row)
    )
    if not found.rowcount:
        conn.execute(frontend_lists.insert(), row)


def delete_list(conn: Connection, workspace_id: str, list_id: str) -> int:
    result = conn.execute(
        frontend_lists.delete().where(
            frontend_lists.c.workspace_id == workspace_id, frontend_lists.c.list_id == list_id
        )
    )
    return int(result.rowcount)


# --- allow-list -------------------------------------------------------------------------------


def allowed_networks(conn: Connection) -> dict[str, list[str]]:
    """Every workspace's allowed networks (CIDR strings): a short list, read whole."""
    out: dict[str, list[str]] = {}
    query = sa.select(frontend_allowed_ips.c.workspace_id, frontend_allowed_ips.c.network)
    for row in conn.execute(query):
        out.setdefault(row.workspace_id, []).append(row.network)
    return out


def list_allowed(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = sa.select(frontend_allowed_ips).where(frontend_allowed_ips.c.workspace_id == workspace_id)
    return conn.execute(query.order_by(frontend_allowed_ips.c.network)).all()


def add_allowed(conn: Connection, row: dict[str, Any]) -> bool:
    exists = conn.execute(
        sa.select(frontend_allowed_ips.c.network).where(
            frontend_allowed_ips.c.workspace_id == row["workspace_id"],
            frontend_allowed_ips.c.network == row["network"],
        )
    ).first()
    if exists:
        return False
    conn.execute(frontend_allowed_ips.insert(), row)
    return True


def remove_allowed(conn: Connection, workspace_id: str, network: str) -> int:
    result = conn.execute(
        frontend_allowed_ips.delete().where(
            frontend_allowed_ips.c.workspace_id == workspace_id, frontend_allowed_ips.c.network == network
        )
    )
    return int(result.rowcount)


# --- personal-data fields ---------------------------------------------------------------------


def field_map(conn: Connection, workspace_id: str) -> dict[str, str]:
    query = sa.select(frontend_fields.c.code, frontend_fields.c.path).where(
        frontend_fields.c.workspace_id == workspace_id
    )
    return {r.code: r.path for r in conn.execute(query)}


def set_field(conn: Connection, workspace_id: str, code: str, path: str | None) -> None:
    conn.execute(
        frontend_fields.delete().where(
            frontend_fields.c.workspace_id == workspace_id, frontend_fields.c.code == code
        )
    )
    if path is not None:
        conn.execute(frontend_fields.insert(), {"workspace_id": workspace_id, "code": code, "path": path})
