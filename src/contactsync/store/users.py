"""Named queries: console users, their sessions, and the source drafts a session holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contactsync.store.console_tables import console_sessions, console_users, source_drafts

# --- users -----------------------------------------------------------------------------------


def insert_user(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(console_users.insert(), row)


def get_user(conn: Connection, user_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(console_users).where(console_users.c.id == user_id)).first()


def get_user_by_name(conn: Connection, name: str) -> Row[Any] | None:
    return conn.execute(sa.select(console_users).where(console_users.c.name == name)).first()


def list_users(conn: Connection, workspace_id: str | None = None) -> Sequence[Row[Any]]:
    query = sa.select(console_users).order_by(console_users.c.name)
    if workspace_id is not None:
        query = query.where(console_users.c.workspace_id == workspace_id)
    return conn.execute(query).all()


def count_admins(conn: Connection, workspace_id: str) -> int:
    query = sa.select(sa.func.count()).where(
        console_users.c.workspace_id == workspace_id, console_users.c.role == "admin"
    )
    return int(conn.execute(query).scalar_one())


def update_user(conn: Connection, user_id: str, values: dict[str, Any]) -> None:
    conn.execute(console_users.update().where(console_users.c.id == user_id).values(**values))


def count_failure(conn: Connection, user_id: str, *, limit: int, locked_until: int, at: int) -> int:
    """Add one failed login in one statement (safe under concurrent attempts); lock the user when
    the count reaches ``limit``. Returns the new count."""
    count = console_users.c.failed_logins + 1
    conn.execute(
        console_users.update()
        .where(console_users.c.id == user_id)
        .values(
            failed_logins=count,
            locked_until=sa.case((count >= limit, locked_until), else_=console_users.c.locked_until),
            updated_at=at,
        )
    )
    query = sa.select(console_users.c.failed_logins).where(console_users.c.id == user_id)
    return int(conn.execute(query).scalar_one())


def delete_user(conn: Connection, user_id: str) -> None:
    conn.execute(console_users.delete().where(console_users.c.id == user_id))


# --- sessions --------------------------------------------------------------------------------


def insert_session(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(console_sessions.insert(), row)


def session_with_user(conn: Connection, session_id: str, at: int) -> Row[Any] | None:
    """The live session and its user's columns (``user_*``), or None when absent or expired."""
    u = console_users.c
    query = (
        sa.select(
            console_sessions,
            u.workspace_id.label("user_workspace_id"),
            u.name.label("user_name"),
            u.role.label("user_role"),
            u.language.label("user_language"),
        )
        .join(console_users, console_users.c.id == console_sessions.c.user_id)
        .where(console_sessions.c.id == session_id, console_sessions.c.expires_at > at)
    )
    return conn.execute(query).first()


def delete_session(conn: Connection, session_id: str) -> None:
    conn.execute(console_sessions.delete().where(console_sessions.c.id == session_id))


def delete_user_sessions(conn: Connection, user_id: str) -> None:
    conn.execute(console_sessions.delete().where(console_sessions.c.user_id == user_id))


def delete_expired_sessions(conn: Connection, at: int) -> None:
    conn.execute(source_drafts.delete().where(source_drafts.c.expires_at <= at))
    conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= at))


# --- source drafts ---------------------------------------------------------------------------


def insert_draft(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(source_drafts.insert(), row)


def update_draft(conn: Connection, draft_id: str, values: dict[str, Any]) -> None:
    conn.execute(source_drafts.update().where(source_drafts.c.id == draft_id).values(**values))


def get_draft(conn: Connection, draft_id: str, session_id: str, at: int) -> Row[Any] | None:
    query = sa.select(source_drafts).where(
        source_drafts.c.id == draft_id,
        source_drafts.c.session_id == session_id,
        source_drafts.c.expires_at > at,
    )
    return conn.execute(query).first()


def draft_by_state(conn: Connection, state_hash: str, at: int) -> Row[Any] | None:
    query = sa.select(source_drafts).where(
        source_drafts.c.state_hash == state_hash, source_drafts.c.expires_at > at
    )
    return conn.execute(query).first()


def delete_draft(conn: Connection, draft_id: str) -> None:
    conn.execute(source_drafts.delete().where(source_drafts.c.id == draft_id))
