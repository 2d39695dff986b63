"""Double opt-in requests and the MailUp-compatible frontend configuration.

SQLAlchemy Core, on the hub's metadata; migration 0005 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.tables import metadata
from contactsync.store.types import Millis

# One confirmation request: a customer asked to join some subscription systems of a node and
# must click the emailed link. The link carries a random token; only its SHA-256 is kept, plus
# the token sealed with the secret keys until the email is out (so a retry can rebuild it).
optin_requests = sa.Table(
    "optin_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), nullable=False),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("subscription_ids", sa.Text, nullable=False),  # JSON list of subscription system ids
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_sealed", sa.Text),  # NULL once the email is sent
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("origin", sa.String(255), nullable=False),  # api, frontend
    sa.Column("actor", sa.String(255)),
    sa.Column("webform_code", sa.String(255)),
    sa.Column("ip", sa.String(64)),  # of the subscribe request
    sa.Column("user_agent", sa.String(512)),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("expires_at", Millis, nullable=False),
    # the confirmation email: sent, or due again at next_attempt_at after `attempts` failures
    sa.Column("email_sent_at", Millis),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Millis, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("confirmed_at", Millis),
    sa.Column("confirm_ip", sa.String(64)),
    sa.Column("confirm_user_agent", sa.String(512)),
    sa.Column("closed_at", Millis),  # withdrawn (the customer was removed)
    sa.Index("ix_optin_requests_email_sent_at_next_attempt_at", "email_sent_at", "next_attempt_at"),
    sa.Index("ix_optin_requests_customer_id", "customer_id"),
)

# A MailUp list id (an integer, as forms send it) → one node and subscription system.
# List ids are unique in the installation, as in one MailUp console.
frontend_lists = sa.Table(
    "frontend_lists",
    metadata,
    sa.Column("list_id", sa.String(32), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("node_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=False),
    sa.Column("subscription_id", sa.String(255), nullable=False),
    sa.Column("list_guid", sa.String(64)),  # checked by xmlUnSubscribe / xmlChkSubscriber when set
    sa.Column("webform_code", sa.String(255)),  # recorded in the consent ledger
    sa.Column("created_at", Millis, nullable=False),
)

# The addresses allowed to call the frontend endpoints of a workspace (MailUp's FrontEnd list).
frontend_allowed_ips = sa.Table(
    "frontend_allowed_ips",
    metadata,
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), primary_key=True),
    sa.Column("network", sa.String(64), primary_key=True),  # normalised CIDR, e.g. 203.0.113.7/32
    sa.Column("note", sa.String(255), nullable=False),
    sa.Column("created_at", Millis, nullable=False),
)

# MailUp personal-data field codes (campo1…) → customer property paths, per workspace;
# the defaults of hub.frontend apply to the codes not listed here.
frontend_fields = sa.Table(
    "frontend_fields",
    metadata,
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), primary_key=True),
    sa.Column("code", sa.String(32), primary_key=True),  # lower-cased, e.g. campo7
    sa.Column("path", sa.String(255), nullable=False),  # e.g. base.address.city
)
