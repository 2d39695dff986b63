"""API tokens with roles. Only a SHA-256 hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contactsync.errors import AuthError, FieldProblem, invalid, not_found
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_node, load_workspace
from contactsync.store import tokens as store
from contactsync.store.db import Database

TOKEN_PREFIX = "cs_"  # noqa: S105 - a prefix, not a secret


class Role(StrEnum):
    ADMIN = "admin"  # everything, including configuration and tokens
    USER = "user"  # customers, events and the updates feed of the workspace
    SOURCE = "source"  # customers and events, optionally of one node only


@dataclass(frozen=True)
class Principal:
    token_id: str
    workspace_id: str
    role: Role
    node_id: str | None
    name: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    db: Database, workspace_id: str, role: Role | str, name: str, node_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Make a token; returns the token (shown once) and its description."""
    try:
        role = Role(role)
    except ValueError:
        raise invalid([FieldProblem("role", f"unknown role {role!r}; use admin, user or source")]) from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": new_id(),
        "workspace_id": workspace_id,
        "name": name,
        "role": role.value,
        "node_id": node_id,
        "token_hash": _hash(token),
        "prefix": token[:10],
        "created_at": now_ms(),
        "revoked_at": None,
    }
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        if node_id:
            load_node(conn, workspace_id, node_id)
        store.insert(conn, row)
    return token, _describe(row)


def _describe(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else row._mapping.get
    return {
        "id": get("id"),
        "name": get("name"),
        "role": get("role"),
        "nodeId": get("node_id"),
        "prefix": get("prefix"),
        "createdAt": format_time(get("created_at")),
        "revokedAt": format_time(get("revoked_at")),
    }


def authenticate(db: Database, token: str | None) -> Principal:
    if not token:
        raise AuthError("The client is not authorized to access the API: no bearer token", code="E110")
    with db.read() as conn:
        row = store.find_active(conn, _hash(token))
    if row is None:
        raise AuthError(
            "The client is not authorized to access the API: unknown or revoked token", code="E110"
        )
    return Principal(row.id, row.workspace_id, Role(row.role), row.node_id, row.name)


def list_tokens(db: Database, workspace_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [_describe(r) for r in store.list_all(conn, workspace_id)]


def revoke_token(
    db: Database, workspace_id: str, *, token_id: str | None = None, name: str | None = None
) -> int:
    with db.write() as conn:
        count = store.revoke(conn, workspace_id, token_id=token_id, name=name, at=now_ms())
    if token_id and not count:
        raise not_found("token", token_id)
    return count
