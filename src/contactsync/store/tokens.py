"""Named queries: API tokens (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.tables import api_tokens


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(api_tokens.insert(), row)


def find_active(conn: Connection, token_hash: str) -> Row[Any] | None:
    query = sa.select(api_tokens).where(
        api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
    )
    return conn.execute(query).first()


def list_all(conn: Connection, workspace_id: str) -> Sequence[Row[Any]]:
    query = (
        sa.select(api_tokens)
        .where(api_tokens.c.workspace_id == workspace_id)
        .order_by(api_tokens.c.created_at)
    )
    return conn.execute(query).all()


def revoke(
    conn: Connection,
    workspace_id: str,
    *,
    token_id: str | None = None,
    name: str | None = None,
    at: int,
) -> int:
    conds: list[Any] = [
        api_tokens.c.workspace_id == workspace_id,
        api_tokens.c.revoked_at.is_(None),
    ]
    if token_id:
        conds.append(api_tokens.c.id == token_id)
    if name:
        conds.append(api_tokens.c.name == name)
    result = conn.execute(api_tokens.update().where(*conds).values(revoked_at=at))
    return int(result.rowcount)
