"""The sql connector: one table of a client's own database, through a SQLAlchemy URL.

A row is a record; ``key_column`` holds its remote id. Columns are fields, except the ones
the configuration gives a role: the list columns (one per subscription system, a boolean
or a text column), the soft-delete column and the update-time column.

Change detection depends on the table:

* With ``updated_at_column``, :meth:`SqlConnector.read` is incremental. Rows come ordered by
  ``(updated_at, key)`` and the cursor is ``"<updated_at>|<key>"`` of the last row read, so
  rows that share a timestamp are neither skipped nor read twice across pages or runs. Rows
  whose ``updated_at`` is NULL are read once, on the first run, before the others (cursor
  ``"|<key>"``). ``since`` is applied at one-second resolution.
* Without it, every read is a full listing in key order (``change_feed`` is False): the
  cursor only lets an interrupted listing resume, and is ``"done"`` once the listing is
  complete, so the next read starts over. The engine's echo suppression turns the unchanged
  rows into no-ops.

Deletions are reported only with ``soft_delete_column`` (``delete_feed``): rows where it is
set (non-NULL, and not false/0 for a flag column) are tombstones, and :meth:`delete` sets it
instead of deleting the row. Without it, :meth:`delete` deletes rows and deletions made by
others are not reported.

Writes are upserts in one transaction per batch, set-based (:mod:`.writes`): the batch's
rows are looked up, updated, inserted and read back in a few statements, each executed by
the driver for all its rows. A record that the database refuses (E422), lacks a required
column (E420) or carries a value of the wrong type (E424) is skipped and the others go
through: a statement refused for one of its rows is run again row by row, one SAVEPOINT per
row. Deletes take one statement per batch. ``updated_at_column`` is set to the current UTC
time on every write.

Modules: :mod:`.connector` (settings and the protocol methods), :mod:`.table` (the reflected
table and its column roles), :mod:`.writes` (set-based upserts and deletes), :mod:`.cursor`,
:mod:`.values` (JSON ↔ column values and list statuses), :mod:`.database` (engines and how
database errors are reported).
"""

from __future__ import annotations

from contactsync.connectors.registry import Provider, register
from contactsync.connectors.sql.connector import (
    CAPABILITIES,
    Config,
    SqlConnector,
    capabilities_for,
    create,
)

__all__ = ["CAPABILITIES", "Config", "SqlConnector", "capabilities_for", "create"]

register(
    Provider(
        name="sql",
        label="SQL database table",
        config=Config,
        capabilities=CAPABILITIES,
        factory=create,
    )
)
