"""Exchange jobs, their runs and failed rows.

SQLAlchemy Core, on the hub's metadata; migration 0004 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from contactsync.store.tables import metadata
from contactsync.store.types import BigId, Millis

exchange_jobs = sa.Table(
    "exchange_jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("node_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("module", sa.String(16), nullable=False),  # importer | updater | displacer | exporter
    sa.Column("endpoint", sa.Text, nullable=False),  # URL without any password
    sa.Column("secrets", sa.Text, nullable=False),  # Fernet token of the endpoint's credentials
    sa.Column("options", sa.Text, nullable=False),  # JSON: format, mapping, module options …
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

exchange_runs = sa.Table(
    "exchange_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("job_id", sa.String(36), sa.ForeignKey("exchange_jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trigger", sa.String(40), nullable=False),  # cli, api, schedule, manual …
    # running, succeeded, failed, stopped (a guard), skipped (nothing to do), interrupted
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", Millis, nullable=False),
    sa.Column("ended_at", Millis),
    sa.Column("heartbeat_at", Millis, nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),  # host:pid of the process running it
    sa.Column("file_name", sa.String(1024)),  # the input or output file of the run
    sa.Column("checksum", sa.String(64)),  # SHA-256 of the input file
    sa.Column("input_columns", sa.Text),  # JSON list: the input's columns (the failed report's header)
    # the last input row number whose effects are committed (resume point)
    sa.Column("progress", sa.BigInteger, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),  # JSON {"read": …, "inserted": …, …}
    sa.Column("error_code", sa.String(8)),
    sa.Column("error", sa.Text),
    # a run that picks up an interrupted or failed run's file from its resume point names it
    sa.Column("resumed_from", sa.String(36)),
    sa.Column("resumed_by", sa.String(36)),  # … and that run names the one that resumed it
    sa.Column("report", sa.Text),  # where the email report went, or why it did not
    sa.Index("ix_exchange_runs_job_id_started_at", "job_id", "started_at"),
)

# input files already processed by a job, by content: a resent copy is skipped
exchange_files = sa.Table(
    "exchange_files",
    metadata,
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("exchange_jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("checksum", sa.String(64), primary_key=True),
    sa.Column("file_name", sa.String(1024), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("processed_at", Millis, nullable=False),
)

# the failed-operations report: each failed row as it was in the file, with its code
exchange_failed_rows = sa.Table(
    "exchange_failed_rows",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("exchange_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("row_number", sa.BigInteger, nullable=False),
    sa.Column("code", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Index("ix_exchange_failed_rows_run_id_row_number", "run_id", "row_number"),
)
