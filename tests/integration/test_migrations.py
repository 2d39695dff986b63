"""The Alembic migrations create exactly the schema the code declares (store/*tables.py)."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from contactsync.store.db import Database
from contactsync.store.tables import metadata

# Written by migration 0007 in each dialect's own SQL, because SQLAlchemy cannot declare it
# portably: the console's last-name search uses the very same expression.
MIGRATION_ONLY_INDEXES = {"ix_customers_node_id_last_name", "ix_links_source_id_email"}


def _index_name(diff: object) -> str | None:
    if isinstance(diff, tuple) and diff and diff[0] in ("add_index", "remove_index"):
        return str(diff[1].name)
    return None


def test_the_migrations_create_the_tables_as_declared(db: Database) -> None:
    with db.engine.connect() as conn, warnings.catch_warnings():
        # SQLite's reflection skips expression indexes (with a warning): they are the ones above
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if _index_name(d) not in MIGRATION_ONLY_INDEXES] == []
