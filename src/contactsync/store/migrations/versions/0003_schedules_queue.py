"""schedules and the run queue

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("target_kind", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("target_kind", "target_id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index("ix_schedules_next_run_at", ["next_run_at"], unique=False)

    op.create_table(
        "run_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("target_kind", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("scheduled_for", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enqueued_at", sa.BigInteger(), nullable=False),
        sa.Column("run_after", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=8), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_requests")),
        sa.UniqueConstraint(
            "target_kind",
            "target_id",
            "scheduled_for",
            name=op.f("uq_run_requests_target_kind_target_id_scheduled_for"),
        ),
    )
    with op.batch_alter_table("run_requests", schema=None) as batch_op:
        batch_op.create_index("ix_run_requests_status_run_after", ["status", "run_after"], unique=False)
        batch_op.create_index(
            "uq_run_requests_running_target",
            ["target_kind", "target_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("run_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_run_requests_running_target")
        batch_op.drop_index("ix_run_requests_status_run_after")

    op.drop_table("run_requests")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_schedules_next_run_at")

    op.drop_table("schedules")
