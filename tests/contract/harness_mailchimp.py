"""The Mailchimp connector's harness: a fresh in-memory Mailchimp sandbox per test.

The connector keeps its default API address (``https://us19.api.mailchimp.com/3.0``, from the
key's data center); the sandbox's in-process transport answers for every host and checks the
data center. The two lists are the audience and one of its interests (groups). One
:class:`ManualClock` drives the sandbox's ``last_changed`` and the connector's sleeps.
Provider-side actions are those of the account owner in Mailchimp's UI, and of the person:
an unsubscribe is the person's own (it puts the address in Mailchimp's compliance state).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from contactsync.connectors import registry
from contactsync.connectors.base import Connector, ConnectorContext, RemoteRecord
from contactsync.connectors.mailchimp import member_record
from contactsync.hub.consent import Status
from contactsync.sandbox.mailchimp import MailchimpSandbox, ManualClock


class MailchimpHarness:
    provider = "mailchimp"
    email_field = "email_address"
    first_name_field = "FNAME"
    page_size = 5

    def __init__(self, **sandbox_options: Any) -> None:
        self.clock = ManualClock()
        self.sandbox = MailchimpSandbox(now=self.clock.now, **sandbox_options)
        self.audience = self.sandbox.create_list("Newsletter")
        self.interest = self.sandbox.add_interest(self.audience, "Topics", "Offers")
        self.list_ids = [self.audience, f"interest:{self.interest}"]
        self._connectors: list[Connector] = []
        self._clients: list[httpx.Client] = []

    def context(self) -> ConnectorContext:
        client = httpx.Client(transport=self.sandbox.transport())
        self._clients.append(client)
        return ConnectorContext(http=client, sleep=self.clock.sleep, clock=self.clock.monotonic)

    def config(self, **overrides: Any) -> dict[str, Any]:
        values = {"api_key": self.sandbox.api_key, "list_id": self.audience, "page_size": self.page_size}
        return values | overrides

    def connector(self, **overrides: Any) -> Connector:
        provider = registry.get("mailchimp")
        conn = provider.create(provider.parse_config(self.config(**overrides)), self.context())
        self._connectors.append(conn)
        return conn

    def bad_credentials(self) -> Connector:
        return self.connector(api_key="0000000000000000deadbeef00000000-us19")

    def seed(self, rows: list[dict[str, Any]]) -> list[str]:
        return self.sandbox.seed_members(self.audience, [member_body(row) for row in rows])

    def edit(self, remote_id: str, fields: dict[str, Any]) -> None:
        self.sandbox.edit(self.audience, remote_id, **member_body(fields, status=None))

    def set_list(self, remote_id: str, list_id: str, status: Status) -> None:
        if list_id != self.audience:  # a group: the owner ticks or unticks it
            chosen = status in (Status.SUBSCRIBED, Status.PENDING)
            self.sandbox.edit(self.audience, remote_id, interests={list_id.split(":", 1)[1]: chosen})
        elif status is Status.UNSUBSCRIBED:
            self.sandbox.unsubscribe(self.audience, remote_id)
        elif status is Status.CLEANED:
            self.sandbox.clean(self.audience, remote_id)
        elif status is Status.SUBSCRIBED:
            self.sandbox.subscribe(self.audience, remote_id)
        else:
            self.sandbox.set_status(self.audience, remote_id, "pending")

    def remove(self, remote_id: str) -> None:
        self.sandbox.archive(self.audience, remote_id)

    def fetch(self, remote_id: str) -> RemoteRecord | None:
        member = self.sandbox.member(self.audience, remote_id)
        if member is None:
            return None
        types = {f["tag"]: f["type"] for f in self.sandbox.lists[self.audience].merge_fields.values()}
        return member_record(member, self.audience, types)

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def close(self) -> None:
        for conn in self._connectors:
            conn.close()
        for client in self._clients:
            client.close()
        self.sandbox.close()


def member_body(fields: Mapping[str, Any], *, status: str | None = "subscribed") -> dict[str, Any]:
    """Fields in the connector's names → a member body."""
    body: dict[str, Any] = {"merge_fields": {}}
    if status is not None:
        body["status"] = status
    for name, value in fields.items():
        if name in ("email_address", "language", "vip", "email_type"):
            body[name] = value
        else:
            body["merge_fields"][name] = value
    return body


def harness_for(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailchimpHarness]:
    """The harness of tests/contract/conftest.py's ``mailchimp`` name."""
    del name, request, tmp_path
    harness = MailchimpHarness()
    try:
        yield harness
    finally:
        harness.close()
