"""A Mailchimp Marketing API v3 sandbox: one account with its audiences, in memory.

Use :meth:`MailchimpSandbox.transport` for an in-process ``httpx`` transport, or
:meth:`MailchimpSandbox.serve` for a real HTTP server on loopback (the official
``mailchimp-marketing`` client talks to it with its ``api_client.host`` set to
``ServedSandbox.api_url``). :class:`ManualClock` drives its timestamps in tests.
"""

from __future__ import annotations

from contactsync.sandbox.constantcontact import ManualClock
from contactsync.sandbox.mailchimp.audience import ApiError, Audience, Event, subscriber_hash
from contactsync.sandbox.mailchimp.batches import read_archive
from contactsync.sandbox.mailchimp.server import MailchimpSandbox
from contactsync.sandbox.mailchimp.webhooks import Delivery, form_fields
from contactsync.sandbox.serving import ServedSandbox

__all__ = [
    "ApiError",
    "Audience",
    "Delivery",
    "Event",
    "MailchimpSandbox",
    "ManualClock",
    "ServedSandbox",
    "form_fields",
    "read_archive",
    "subscriber_hash",
]
