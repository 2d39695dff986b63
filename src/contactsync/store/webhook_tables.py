"""Outbound webhooks, their deliveries, inbound provider events.

SQLAlchemy Core, on the hub's metadata; migration 0006 creates them.

The change journal and the consent ledger are the outbox (they are written in the same
transaction as the change): ``webhook_cursors`` says how far the fan-out has read them, and
each fan-out pass inserts its ``webhook_deliveries`` and moves the cursors in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.tables import metadata
from contactsync.store.types import BigId, Millis

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("node_id", sa.String(36)),  # only the events of this node; NULL = every node
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # JSON list of event types
    sa.Column("secret", sa.Text, nullable=False),  # Fernet token of {"secret": …}
    sa.Column("enabled", sa.Boolean, nullable=False),
    # the outbox positions when the webhook was created: it gets the events after them
    sa.Column("journal_from", sa.BigInteger, nullable=False),
    sa.Column("ledger_from", sa.BigInteger, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.Index("ix_webhooks_workspace_id", "workspace_id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("webhook_id", sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the JSON body, byte for byte as signed and sent
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("retry_from", Millis, nullable=False),  # start of the retry window (reset by redeliver)
    sa.Column("next_attempt_at", Millis),  # NULL once delivered or failed
    sa.Column("last_attempt_at", Millis),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("error_code", sa.String(8)),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", Millis),
    sa.UniqueConstraint("webhook_id", "event_id"),
    sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id",
        sa.String(36),
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("at", Millis, nullable=False),
    sa.Column("status_code", sa.Integer),  # NULL: no HTTP answer (refused, timeout …)
    sa.Column("error", sa.Text),
    sa.Column("response", sa.Text),  # the first bytes of the answer
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_attempts_delivery_id", "delivery_id"),
)

webhook_cursors = sa.Table(
    "webhook_cursors",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),  # journal | ledger
    sa.Column("position", sa.BigInteger, nullable=False),
)

inbound_tokens = sa.Table(
    "inbound_tokens",
    metadata,
    sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),  # SHA-256 of the token
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", Millis, nullable=False),
)

inbound_events = sa.Table(
    "inbound_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_key", sa.String(128), nullable=False),  # provider event id, or a hash of the body
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("fired_at", Millis),
    sa.Column("received_at", Millis, nullable=False),
    sa.Column("remote_ids", sa.Text, nullable=False),  # JSON list: the records to pull
    sa.Column("payload", sa.Text, nullable=False),  # the raw body as received
    sa.Column("status", sa.String(16), nullable=False),  # queued, processed, ignored, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Millis),
    sa.Column("processed_at", Millis),
    sa.Column("run_id", sa.String(36)),
    sa.Column("error_code", sa.String(8)),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("source_id", "event_key"),
    sa.Index("ix_inbound_events_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_inbound_events_source_id_received_at", "source_id", "received_at"),
)
