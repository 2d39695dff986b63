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

# --- sync: sources, links, runs (ARCHITECTURE §5) -------------------------------------------

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("node_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # JSON, non-secret provider options
    sa.Column("secrets", sa.Text, nullable=False),  # Fernet token of a JSON object
    # identity of the provider account + user DB (from describe()); one node per user DB
    sa.Column("user_db", sa.String(512), nullable=False),
    sa.Column("settings", sa.Text, nullable=False),  # JSON: maps, keys, policies (SyncSettings)
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("hub_cursor", sa.BigInteger, nullable=False),  # last journal seq applied
    sa.Column("provider_cursor", sa.Text),  # opaque, from the connector
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
    sa.UniqueConstraint("node_id"),  # one source per node
    sa.UniqueConstraint("provider", "user_db"),  # one node per user DB
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", sa.String(36), primary_key=True),
    sa.Column("remote_id", sa.String(255), nullable=False),
    # the values both sides agreed on after the last sync: the base of the 3-way merge
    sa.Column("base", sa.Text, nullable=False),
    sa.Column("synced_at", Millis, nullable=False),
    sa.Index("uq_links_source_id_remote_id", "source_id", "remote_id", unique=True),
)

# hub customers whose change could not reach the provider (a retryable problem): next run retries
sync_retries = sa.Table(
    "sync_retries",
    metadata,
    sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trigger", sa.String(40), nullable=False),  # manual, schedule, api, resume
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    # running, succeeded, failed, stopped (a guard), interrupted (the process died)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", Millis, nullable=False),
    sa.Column("ended_at", Millis),
    sa.Column("heartbeat_at", Millis, nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),  # host:pid of the process running it
    sa.Column("counts", sa.Text, nullable=False),  # JSON {"hub": {...}, "provider": {...}}
    sa.Column("error_code", sa.String(8)),
    sa.Column("error", sa.Text),
    sa.Column("plan", sa.Text),  # JSON, dry runs: counts per action and sample records
    sa.Index("ix_runs_source_id_started_at", "source_id", "started_at"),
)

run_records = sa.Table(
    "run_records",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),  # hub or provider: the side written
    sa.Column("action", sa.String(16), nullable=False),  # created updated deleted skipped failed
    sa.Column("key", sa.String(512), nullable=False),  # the match key value (e.g. the email)
    sa.Column("customer_id", sa.String(36)),
    sa.Column("remote_id", sa.String(255)),
    sa.Column("code", sa.String(8)),
    sa.Column("reason", sa.Text),
    sa.Column("before", sa.Text),  # JSON, debug mode only
    sa.Column("after", sa.Text),  # JSON, debug mode only
    sa.Index("ix_run_records_run_id", "run_id"),
)

# The tables of later features live in their own modules, on this same metadata.
from contactsync.store import (  # noqa: E402
    console_tables,
    exchange_tables,
    optin_tables,
    schedule_tables,
    webhook_tables,
)

__all__ = [
    "console_tables",
    "exchange_tables",
    "metadata",
    "optin_tables",
    "schedule_tables",
    "webhook_tables",
]
