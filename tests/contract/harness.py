"""What the contract suite needs from each provider's test setup.

Each connector ships a harness (``tests/contract/harness_<provider>.py``) that gives a
connector on an *empty* user DB and acts on the provider side directly, the way a user of
the provider's own UI or API would, so the suite can check what the connector reads back.
"""

from __future__ import annotations

from typing import Any, Protocol

from contactsync.connectors.base import Connector, RemoteRecord
from contactsync.hub.consent import Status


class Harness(Protocol):
    provider: str
    email_field: str  # the provider field that holds the email address (the usual match key)
    first_name_field: str
    list_ids: list[str]  # at least two lists (subscription systems) that exist
    page_size: int  # the read page size the harness's connector uses (the suite seeds more)

    def connector(self) -> Connector:
        """A connector configured for the empty user DB."""
        ...

    def bad_credentials(self) -> Connector:
        """A connector whose credentials the provider refuses."""
        ...

    def seed(self, rows: list[dict[str, Any]]) -> list[str]:
        """Create records provider-side (fields in provider names); their remote ids, in order."""
        ...

    def edit(self, remote_id: str, fields: dict[str, Any]) -> None:
        """Change fields provider-side; the record's update time moves forward."""
        ...

    def set_list(self, remote_id: str, list_id: str, status: Status) -> None:
        """Change a record's status on a list provider-side (e.g. the person unsubscribes)."""
        ...

    def remove(self, remote_id: str) -> None:
        """Delete a record provider-side."""
        ...

    def fetch(self, remote_id: str) -> RemoteRecord | None:
        """The provider's current state of a record, read directly (None when deleted)."""
        ...

    def now_ms(self) -> int:
        """The provider's current time (epoch ms), as moved by :meth:`advance_clock`: records
        seeded or edited after this call are updated at or after it."""
        ...

    def advance_clock(self, seconds: float) -> None:
        """Move the provider's notion of time forward, so that later edits are strictly newer
        (providers keep update times at second resolution)."""
        ...
