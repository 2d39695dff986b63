"""Console users, passwords and sessions.

* Roles: ``admin`` (everything: sources, credentials, schedules, webhooks, tokens), ``editor``
  (runs: "Sync now", "Run now"), ``viewer`` (reads).
* Passwords are hashed with scrypt at OWASP's minimum (N=2^15, r=8, p=3: 32 MB, a few tenths
  of a second per check), a random 16-byte salt each, compared in constant time; the parameters
  are stored with each hash so they can be raised later.
* Sessions live server-side: the cookie holds a random token, the table its SHA-256 with the
  user, an expiry (12 hours) and the session's CSRF token. Signing out deletes the row.
* Five failed sign-ins in a row lock the user for 15 minutes (E802); a good one resets the count.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contactsync.errors import (
    AuthError,
    ConflictError,
    FieldProblem,
    ForbiddenError,
    InputError,
    invalid,
    not_found,
)
from contactsync.hub.ids import new_id
from contactsync.hub.times import format_time, now_ms
from contactsync.hub.workspaces import load_workspace
from contactsync.store import users as store
from contactsync.store.db import Database

SESSION_MS = 12 * 3600 * 1000
LOCK_AFTER = 5
LOCK_MS = 15 * 60 * 1000
MIN_PASSWORD = 12
LANGUAGES = ("en", "it")
_SCRYPT = {"n": 2**15, "r": 8, "p": 3}
_MAXMEM = 64 * 1024 * 1024


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


@dataclass(frozen=True)
class User:
    id: str
    workspace_id: str
    name: str
    role: Role
    language: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_run(self) -> bool:
        """Admins and editors start runs; viewers only read."""
        return self.role in (Role.ADMIN, Role.EDITOR)


@dataclass(frozen=True)
class Session:
    id: str  # the SHA-256 of the cookie value
    user: User
    csrf_token: str
    expires_at: int


# --- passwords -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=_MAXMEM, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    """A hash checked for unknown names, so that they take as long as known ones."""
    return hash_password(secrets.token_urlsafe(16))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD}",
            code="E806",
            problems=[FieldProblem("password", f"at least {MIN_PASSWORD} characters", "E806")],
        )


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise invalid(
            [FieldProblem("role", f"unknown role {value!r}; use admin, editor or viewer")]
        ) from None


def _language(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in LANGUAGES:
        raise invalid([FieldProblem("language", f"unknown language {value!r}; use en or it")])
    return value


def _user(row: Any) -> User:
    return User(row.id, row.workspace_id, row.name, Role(row.role), row.language)


# --- users -----------------------------------------------------------------------------------


def create_user(
    db: Database,
    workspace_id: str,
    name: str,
    password: str,
    role: Role | str,
    language: str | None = None,
) -> User:
    name = name.strip()
    if not name:
        raise invalid([FieldProblem("name", "a user needs a name", "E206")])
    _check_password(password)
    at = now_ms()
    user = User(new_id(), workspace_id, name, _role(role), _language(language))
    row = {
        "id": user.id,
        "workspace_id": workspace_id,
        "name": name,
        "role": user.role.value,
        "password_hash": hash_password(password),
        "language": user.language,
        "failed_logins": 0,
        "locked_until": None,
        "created_at": at,
        "updated_at": at,
        "last_login_at": None,
    }
    with db.write() as conn:
        load_workspace(conn, workspace_id)
        if store.get_user_by_name(conn, name) is not None:
            raise ConflictError(f"a console user named {name!r} exists already", code="E805")
        store.insert_user(conn, row)
    return user


def _load(conn: Any, name: str) -> Any:
    row = store.get_user_by_name(conn, name)
    if row is None:
        raise not_found("console user", name)
    return row


def get_user(db: Database, name: str) -> User:
    with db.read() as conn:
        return _user(_load(conn, name))


def list_users(db: Database, workspace_id: str | None = None) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = store.list_users(conn, workspace_id)
    return [
        {
            "id": r.id,
            "workspaceId": r.workspace_id,
            "name": r.name,
            "role": r.role,
            "language": r.language,
            "locked": bool(r.locked_until and r.locked_until > now_ms()),
            "createdAt": format_time(r.created_at),
            "lastLoginAt": format_time(r.last_login_at),
        }
        for r in rows
    ]


def set_password(db: Database, name: str, password: str) -> None:
    """A new password; it also unlocks the user and ends their sessions."""
    _check_password(password)
    digest = hash_password(password)
    with db.write() as conn:
        row = _load(conn, name)
        store.update_user(
            conn,
            row.id,
            {"password_hash": digest, "failed_logins": 0, "locked_until": None, "updated_at": now_ms()},
        )
        store.delete_user_sessions(conn, row.id)


def set_role(db: Database, name: str, role: Role | str) -> User:
    new_role = _role(role)
    with db.write() as conn:
        row = _load(conn, name)
        if row.role == Role.ADMIN and new_role != Role.ADMIN:
            _keep_an_admin(conn, row)
        store.update_user(conn, row.id, {"role": new_role.value, "updated_at": now_ms()})
        return _user(store.get_user(conn, row.id))


def set_language(db: Database, user_id: str, language: str | None) -> None:
    with db.write() as conn:
        store.update_user(conn, user_id, {"language": _language(language), "updated_at": now_ms()})


def delete_user(db: Database, name: str) -> None:
    with db.write() as conn:
        row = _load(conn, name)
        if row.role == Role.ADMIN:
            _keep_an_admin(conn, row)
        store.delete_user_sessions(conn, row.id)
        store.delete_user(conn, row.id)


def _keep_an_admin(conn: Any, row: Any) -> None:
    if store.count_admins(conn, row.workspace_id) <= 1:
        raise ConflictError(
            f"{row.name!r} is the workspace's only console admin; create another admin first", code="E807"
        )


# --- sign-in and sessions --------------------------------------------------------------------


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(db: Database, name: str, password: str) -> tuple[str, Session]:
    """Check the password and open a session; returns the cookie value and the session."""
    at = now_ms()
    with db.read() as conn:
        row = store.get_user_by_name(conn, name.strip())
    if row is None:
        verify_password(password, _dummy_hash())
        raise AuthError("wrong user name or password", code="E800")
    if row.locked_until and row.locked_until > at:
        raise AuthError(
            f"too many failed sign-ins: {row.name!r} is locked until {format_time(row.locked_until)} (UTC)",
            code="E802",
            data={"lockedUntil": format_time(row.locked_until)},
        )
    if not verify_password(password, row.password_hash):
        with db.write() as conn:
            count = store.count_failure(conn, row.id, limit=LOCK_AFTER, locked_until=at + LOCK_MS, at=at)
        if count >= LOCK_AFTER:
            raise AuthError(f"too many failed sign-ins: {row.name!r} is locked for 15 minutes", code="E802")
        raise AuthError("wrong user name or password", code="E800")
    token = secrets.token_urlsafe(32)
    session = Session(_session_id(token), _user(row), secrets.token_urlsafe(32), at + SESSION_MS)
    with db.write() as conn:
        store.delete_expired_sessions(conn, at)
        store.update_user(conn, row.id, {"failed_logins": 0, "locked_until": None, "last_login_at": at})
        store.insert_session(
            conn,
            {
                "id": session.id,
                "user_id": row.id,
                "csrf_token": session.csrf_token,
                "created_at": at,
                "expires_at": session.expires_at,
            },
        )
    return token, session


def session_for(db: Database, token: str | None) -> Session:
    """The live session a cookie value opens, or AuthError E801."""
    if not token:
        raise AuthError("sign in to use the console", code="E801")
    with db.read() as conn:
        row = store.session_with_user(conn, _session_id(token), now_ms())
    if row is None:
        raise AuthError("your session has expired or was signed out; sign in again", code="E801")
    user = User(
        str(row.user_id),
        str(row.user_workspace_id),
        str(row.user_name),
        Role(str(row.user_role)),
        str(row.user_language) if row.user_language else None,
    )
    return Session(row.id, user, row.csrf_token, row.expires_at)


def logout(db: Database, session_id: str) -> None:
    with db.write() as conn:
        store.delete_session(conn, session_id)


def check_csrf(session: Session, given: str | None) -> None:
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise ForbiddenError(
            "this form was not sent from a current console page (CSRF token missing or stale)",
            code="E803",
        )
