"""double opt-in requests and frontend allow-list

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optin_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("subscription_ids", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_sealed", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("webform_code", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("email_sent_at", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("confirmed_at", sa.BigInteger(), nullable=True),
        sa.Column("confirm_ip", sa.String(length=64), nullable=True),
        sa.Column("confirm_user_agent", sa.String(length=512), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optin_requests")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_optin_requests_token_hash")),
    )
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_optin_requests_email_sent_at_next_attempt_at",
            ["email_sent_at", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index("ix_optin_requests_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "frontend_lists",
        sa.Column("list_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("list_guid", sa.String(length=64), nullable=True),
        sa.Column("webform_code", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_frontend_lists_node_id_nodes")),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_frontend_lists_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_frontend_lists")),
    )
    op.create_table(
        "frontend_allowed_ips",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_frontend_allowed_ips_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("workspace_id", "network", name=op.f("pk_frontend_allowed_ips")),
    )
    op.create_table(
        "frontend_fields",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_frontend_fields_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("workspace_id", "code", name=op.f("pk_frontend_fields")),
    )


def downgrade() -> None:
    op.drop_table("frontend_fields")
    op.drop_table("frontend_allowed_ips")
    op.drop_table("frontend_lists")
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_optin_requests_customer_id")
        batch_op.drop_index("ix_optin_requests_email_sent_at_next_attempt_at")

    op.drop_table("optin_requests")
