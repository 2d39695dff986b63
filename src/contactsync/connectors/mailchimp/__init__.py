"""Mailchimp (Marketing API v3): the members of one audience, their merge fields, groups and
subscription status. See :mod:`.connector` for the behaviour and :mod:`.mapping` for the status
table; docs/providers/mailchimp.md for the setup."""

from __future__ import annotations

from typing import Any

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext
from contactsync.connectors.mailchimp.config import CAPABILITIES, PROVIDER, Config, DeleteMode
from contactsync.connectors.mailchimp.connector import MailchimpConnector
from contactsync.connectors.mailchimp.mapping import member_lists, member_record, resubscribe_step


def _create(config: Any, ctx: ConnectorContext) -> MailchimpConnector:
    return MailchimpConnector(config, ctx)


registry.register(
    registry.Provider(
        name=PROVIDER, label="Mailchimp", config=Config, capabilities=CAPABILITIES, factory=_create
    )
)

__all__ = [
    "CAPABILITIES",
    "Config",
    "DeleteMode",
    "MailchimpConnector",
    "member_lists",
    "member_record",
    "resubscribe_step",
]
