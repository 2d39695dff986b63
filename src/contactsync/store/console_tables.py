"""Console users, their sessions, and source drafts (a "New source" form kept across an OAuth
sign-in).

SQLAlchemy Core, on the hub's metadata; migration 0007 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.tables import journal, metadata
from contactsync.store.types import Millis

# a customer's timeline on the console reads the journal by entity (the journal has no other index:
# this one costs nothing measurable on bulk loads, since ids are time-ordered)
sa.Index("ix_journal_entity_id_seq", journal.c.entity_id, journal.c.seq)

console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),  # admin, editor, viewer
    sa.Column("password_hash", sa.String(255), nullable=False),  # scrypt$n$r$p$salt$hash
    sa.Column("language", sa.String(8)),  # en, it; NULL: the browser's Accept-Language
    sa.Column("failed_logins", sa.Integer, nullable=False),  # in a row; reset by a good login
    sa.Column("locked_until", Millis),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.Column("last_login_at", Millis),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie value
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("expires_at", Millis, nullable=False),
    sa.Index("ix_console_sessions_user_id", "user_id"),
    sa.Index("ix_console_sessions_expires_at", "expires_at"),
)

source_drafts = sa.Table(
    "source_drafts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("console_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("workspace_id", sa.String(36), nullable=False),
    sa.Column("source_id", sa.String(36)),  # set when the draft re-authorizes an existing source
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("state_hash", sa.String(64), unique=True),  # SHA-256 of a pending OAuth state
    sa.Column("data", sa.Text, nullable=False),  # sealed JSON: form values, credentials, PKCE verifier
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("expires_at", Millis, nullable=False),
)
