"""The hub's tables (SQLAlchemy Core). Migrations in ``store/migrations`` create them."""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.types import BigId, JsonDocument, Millis

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    # unique customer matching policy: JSON list of property paths
    sa.Column("matching_properties", sa.Text, nullable=False),
    sa.Column("case_sensitive", sa.Boolean, nullable=False),
    sa.Column("uniqueness_policy", sa.String(16), nullable=False),
    # JSON Schema of the extended properties
    sa.Column("extended_schema", sa.Text, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("members", sa.Text, nullable=False),  # JSON list of node ids (aggregate nodes)
    sa.Column("created_at", Millis, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), nullable=False),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("external_id", sa.String(255)),
    # normalised values of the matching properties; NULL when absent or policy NO_CHECK
    sa.Column("match_key", sa.String(512)),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("registered_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.Column("content_hash", sa.String(32), nullable=False),
    # {"base": {... without subscriptions}, "extended", "extra", "tags", "consents"}
    sa.Column("data", JsonDocument, nullable=False),
    sa.Index("uq_customers_node_id_match_key", "node_id", "match_key", unique=True),
    sa.Index("ix_customers_node_id_external_id", "node_id", "external_id"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("customer_id", sa.String(36), primary_key=True),
    sa.Column("subscription_id", sa.String(255), primary_key=True),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64)),
    sa.Column("opted_out_at", Millis),  # last unsubscribe/clean: the re-opt-in barrier
    sa.Column("registered_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    # the Contacthub subscription attributes: name, type, kind, dates, subscriberId, preferences
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Index("ix_subscriptions_node_id_subscription_id_status", "node_id", "subscription_id", "status"),
)

consent_ledger = sa.Table(
    "consent_ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("subscription_id", sa.String(255), nullable=False),
    sa.Column("at", Millis, nullable=False),
    sa.Column("previous_status", sa.String(16)),
    sa.Column("requested_status", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("origin", sa.String(255), nullable=False),
    sa.Column("actor", sa.String(255)),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("webform_code", sa.String(255)),
    sa.Column("evidence", sa.Text),  # JSON of the opt-in evidence, when given
    sa.Index("ix_consent_ledger_customer_id_subscription_id", "customer_id", "subscription_id"),
)

journal = sa.Table(
    "journal",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("workspace_id", sa.String(36), nullable=False),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("entity", sa.String(16), nullable=False),  # CUSTOMER | EVENT
    sa.Column("entity_id", sa.String(36), nullable=False),
    sa.Column("operation", sa.String(8), nullable=False),  # CREATE | UPDATE | DELETE
    sa.Column("origin", sa.String(255), nullable=False),
    sa.Column("at", Millis, nullable=False),
    sa.Column("snapshot", sa.Text),  # the entity as it was, kept for DELETE only
    # no index on node_id: the feed reads seq ranges (the primary key) and filters them, and
    # one index less per write keeps bulk loads fast
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), nullable=False),
    sa.Column("node_id", sa.String(36)),
    sa.Column("customer_id", sa.String(36)),
    sa.Column("session_id", sa.String(255)),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("context", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("date", Millis, nullable=False),
    sa.Column("registered_at", Millis, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # properties, contextInfo, tracking, bringBack
    sa.Index("ix_events_customer_id_date", "customer_id", "date"),
    sa.Index("ix_events_session_id", "session_id"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("workspace_id", sa.String(36), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index("ix_sessions_customer_id", "customer_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("node_id", sa.String(36)),  # source tokens may be bound to one node
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("revoked_at", Millis),
)
