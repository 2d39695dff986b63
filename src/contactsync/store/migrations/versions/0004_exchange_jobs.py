"""exchange jobs, runs and failed rows

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("module", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_exchange_jobs_node_id_nodes")),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_exchange_jobs_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_jobs")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_exchange_jobs_workspace_id_name")),
    )
    op.create_table(
        "exchange_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("file_name", sa.String(length=1024), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("input_columns", sa.Text(), nullable=True),
        sa.Column("progress", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(length=8), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("resumed_from", sa.String(length=36), nullable=True),
        sa.Column("resumed_by", sa.String(length=36), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["exchange_jobs.id"],
            name=op.f("fk_exchange_runs_job_id_exchange_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_runs")),
    )
    with op.batch_alter_table("exchange_runs", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_runs_job_id_started_at", ["job_id", "started_at"], unique=False)

    op.create_table(
        "exchange_files",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=1024), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["exchange_jobs.id"],
            name=op.f("fk_exchange_files_job_id_exchange_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "checksum", name=op.f("pk_exchange_files")),
    )
    op.create_table(
        "exchange_failed_rows",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["exchange_runs.id"],
            name=op.f("fk_exchange_failed_rows_run_id_exchange_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_failed_rows")),
    )
    with op.batch_alter_table("exchange_failed_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_failed_rows_run_id_row_number", ["run_id", "row_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_failed_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_failed_rows_run_id_row_number")

    op.drop_table("exchange_failed_rows")
    op.drop_table("exchange_files")
    with op.batch_alter_table("exchange_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_runs_job_id_started_at")

    op.drop_table("exchange_runs")
    op.drop_table("exchange_jobs")
