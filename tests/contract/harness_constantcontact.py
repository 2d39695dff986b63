"""The Constant Contact connector's harness: a fresh in-memory CC sandbox per test.

The connector talks to the sandbox through its in-process transport (its default CC URLs are
kept: the transport answers for every host). One :class:`ManualClock` drives the sandbox's
timestamps, the connector's rate limiter and its ``ctx.sleep``, so the 4 requests/second
limit and bulk-activity polling cost no real time. Provider-side actions are those of a person
in CC's UI: a contact unsubscribing opts out of the whole account (CC has no per-list opt-out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from contactsync.connectors import registry
from contactsync.connectors.base import Connector, ConnectorContext, RemoteRecord
from contactsync.connectors.constantcontact import contact_record
from contactsync.hub.consent import Status
from contactsync.sandbox.constantcontact import ConstantContactSandbox, ManualClock

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "https://hub.example.com/oauth/constantcontact/callback"


class ConstantContactHarness:
    provider = "constantcontact"
    email_field = "email_address"
    first_name_field = "first_name"
    page_size = 5

    def __init__(self, **sandbox_options: Any) -> None:
        self.clock = ManualClock()
        self.sandbox = ConstantContactSandbox(now=self.clock.now, **sandbox_options)
        self.sandbox.register_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        self.list_ids = [self.sandbox.create_list("Newsletter"), self.sandbox.create_list("Offers")]
        self.saved: list[dict[str, str]] = []
        self._connectors: list[Connector] = []
        self._clients: list[httpx.Client] = []

    def context(self) -> ConnectorContext:
        client = httpx.Client(transport=self.sandbox.transport())
        self._clients.append(client)
        return ConnectorContext(
            http=client,
            save_secrets=lambda secrets: self.saved.append(dict(secrets)),
            sleep=self.clock.sleep,
            clock=self.clock.monotonic,
        )

    def config(self, **overrides: Any) -> dict[str, Any]:
        tokens = self.sandbox.issue_tokens(CLIENT_ID)
        values: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "page_size": self.page_size,
        }
        return values | overrides

    def connector(self, **overrides: Any) -> Connector:
        provider = registry.get("constantcontact")
        conn = provider.create(provider.parse_config(self.config(**overrides)), self.context())
        self._connectors.append(conn)
        return conn

    def bad_credentials(self) -> Connector:
        return self.connector(access_token="not-a-token", refresh_token="not-a-refresh-token")

    def seed(self, rows: list[dict[str, Any]]) -> list[str]:
        return self.sandbox.seed_contacts([_contact_body(row) for row in rows])

    def edit(self, remote_id: str, fields: dict[str, Any]) -> None:
        self.sandbox.edit(remote_id, **_contact_body(fields))

    def set_list(self, remote_id: str, list_id: str, status: Status) -> None:
        if status is Status.UNSUBSCRIBED:  # the person opts out: account-wide in CC
            self.sandbox.unsubscribe(remote_id)
        elif status is Status.CLEANED:  # CC has no cleaned state; the account owner drops the list
            self.sandbox.remove_from_list(remote_id, list_id)
        else:
            self.sandbox.add_to_list(remote_id, list_id)
            wanted = "explicit" if status is Status.SUBSCRIBED else "pending_confirmation"
            self.sandbox.set_permission(remote_id, wanted, source="Contact")

    def remove(self, remote_id: str) -> None:
        self.sandbox.delete(remote_id)

    def fetch(self, remote_id: str) -> RemoteRecord | None:
        contact = self.sandbox.contact(remote_id, include_deleted=False)
        if contact is None:
            return None
        return contact_record(contact, self.sandbox.list_ids(), self.sandbox.custom_field_names())

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def close(self) -> None:
        for conn in self._connectors:
            conn.close()
        for client in self._clients:
            client.close()


def _contact_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields in the connector's names → the sandbox's contact properties."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "phone_number":
            body["phone_numbers"] = [{"phone_number": value, "kind": "other"}] if value else []
        else:
            body[name] = value
    return body


def harness_for(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ConstantContactHarness]:
    """The harness of tests/contract/conftest.py's ``constantcontact`` name."""
    del name, request, tmp_path
    harness = ConstantContactHarness()
    try:
        yield harness
    finally:
        harness.close()
