"""Schedules and the run queue.

SQLAlchemy Core, on the hub's metadata; migration 0003 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from contactsync.store.tables import metadata  # noqa: F401
from contactsync.store.types import BigId, Millis  # noqa: F401
