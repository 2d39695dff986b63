"""API tokens with roles. Only a SHA-256 hash of each token is stored.

A verified token is remembered in this process for :data:`CACHE_SECONDS` (keyed by its
hash), so the real-time API does not open a read transaction per request just to check
it. Creating or revoking a token in this process forgets them all at once; a token
revoked by another process (``contactsync token revoke`` beside a running server) is
refused at the latest :data:`CACHE_SECONDS` later.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
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
CACHE_SECONDS = 5.0  # how long a verified token is trusted without reading the database again
CACHE_SIZE = 1024  # verified tokens remembered per database (the oldest are forgotten first)


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


class _VerifiedTokens:
    """Principals of recently verified tokens of one database: token hash → (expiry, principal)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}
        self.generation = 0  # bumped by every forget(): a lookup that started before is not kept

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            with self._lock:
                self._entries.pop(token_hash, None)
            return None
        return entry[1]

    def put(self, token_hash: str, who: Principal, generation: int) -> None:
        with self._lock:
            if generation != self.generation:  # a create or revoke ran meanwhile: do not keep it
                return
            if len(self._entries) >= CACHE_SIZE:
                del self._entries[next(iter(self._entries))]
            self._entries[token_hash] = (time.monotonic() + CACHE_SECONDS, who)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()
            self.generation += 1


_verified: weakref.WeakKeyDictionary[Database, _VerifiedTokens] = weakref.WeakKeyDictionary()
_verified_lock = threading.Lock()


def _cache(db: Database) -> _VerifiedTokens:
    found = _verified.get(db)
    if found is None:
        with _verified_lock:
            found = _verified.setdefault(db, _VerifiedTokens())
    return found


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
    _cache(db).forget()
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
    token_hash = _hash(token)
    cache = _cache(db)
    who = cache.get(token_hash)
    if who is not None:
        return who
    generation = cache.generation
    with db.read() as conn:
        row = store.find_active(conn, token_hash)
    if row is None:
        raise AuthError(
            "The client is not authorized to access the API: unknown or revoked token", code="E110"
        )
    who = Principal(row.id, row.workspace_id, Role(row.role), row.node_id, row.name)
    cache.put(token_hash, who, generation)
    return who


def list_tokens(db: Database, workspace_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [_describe(r) for r in store.list_all(conn, workspace_id)]


def revoke_token(
    db: Database, workspace_id: str, *, token_id: str | None = None, name: str | None = None
) -> int:
    with db.write() as conn:
        count = store.revoke(conn, workspace_id, token_id=token_id, name=name, at=now_ms())
    _cache(db).forget()
    if token_id and not count:
        raise not_found("token", token_id)
    return count
