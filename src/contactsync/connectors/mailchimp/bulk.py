"""Large writes through ``/batches``: one asynchronous job instead of hundreds of requests.

Plain items go in the job: a new record (``POST`` a member) and a change to a linked one that
does not ask for ``subscribed`` (``PATCH``). An item whose result needs a second look — the
address is already a member, the linked member is gone, a ``subscribed`` to check against the
compliance state — goes back to the one-by-one path (a None result).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from contactsync.connectors.base import WriteResult
from contactsync.connectors.mailchimp.mapping import Plan, member_record, problem
from contactsync.hub.consent import Status

if TYPE_CHECKING:
    from contactsync.connectors.mailchimp.connector import MailchimpConnector

OPERATIONS_PER_BATCH = 5_000
SECOND_LOOK = frozenset({"Member Exists", "Resource Not Found", "Member In Compliance State"})


def bulk_eligible(p: Plan) -> bool:
    if p.item.remote_id is None:
        return p.email is not None
    return p.status is not Status.SUBSCRIBED and bool(p.patch_body(with_status=True))


def _operation(conn: MailchimpConnector, p: Plan) -> dict[str, Any]:
    members = f"/lists/{conn.config.list_id}/members"
    if p.item.remote_id is None:
        return {
            "method": "POST",
            "path": members,
            "operation_id": str(p.index),
            "body": json.dumps(p.create_body()),
        }
    body = json.dumps(p.patch_body(with_status=True))
    return {
        "method": "PATCH",
        "path": f"{members}/{p.item.remote_id}",
        "operation_id": str(p.index),
        "body": body,
    }


def _chunks(plans: list[Plan]) -> Iterator[list[Plan]]:
    for start in range(0, len(plans), OPERATIONS_PER_BATCH):
        yield plans[start : start + OPERATIONS_PER_BATCH]


def write_bulk(conn: MailchimpConnector, plans: list[Plan]) -> list[tuple[Plan, WriteResult | None]]:
    out: list[tuple[Plan, WriteResult | None]] = []
    types = conn._types()
    for chunk in _chunks(plans):
        results = conn.run_batch([_operation(conn, p) for p in chunk])
        for p in chunk:
            found = results.get(str(p.index))
            if found is None:
                out.append((p, problem(p.item.key, "E501", "missing from the batch results", retryable=True)))
                continue
            status = int(found.get("status_code") or 0)
            try:
                answer = json.loads(found.get("response") or "{}")
            except ValueError:
                answer = {}
            if status == 200:
                created = p.item.remote_id is None
                record = member_record(answer, conn.config.list_id, types)
                out.append((p, WriteResult(p.item.key, record.remote_id, created=created, record=record)))
            elif answer.get("title") in SECOND_LOOK:
                out.append((p, None))
            else:
                text = f"{answer.get('title') or 'HTTP ' + str(status)}: {answer.get('detail') or ''}"
                if answer.get("title") == "Forgotten Email Not Subscribed":
                    out.append((p, problem(p.item.key, "E744", text)))
                elif status >= 500 or status == 429:
                    out.append((p, problem(p.item.key, "E501", text, retryable=True)))
                else:
                    out.append((p, problem(p.item.key, "E422", text, remote_id=p.item.remote_id)))
    return out
