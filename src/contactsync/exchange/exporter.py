"""The exporter: feedback statistics per customer and campaign for a period → rows of a file.

The statistics come from the hub's ``campaign*`` events (which providers' feedback arrives as):
``campaignSent`` → sent, ``campaignOpened`` → opened, ``campaignLinkClicked`` → clicked,
``campaignBounced`` → bounced, ``campaignUnsubscribed`` → unsubscribed. The campaign is the
event's ``properties.campaignId`` (its ``campaignName`` is shown beside it). The period is
the previous day, the last 7 or 30 days (whole days in the job's time zone), a ``range``
(``date_from`` included, ``date_to`` excluded) or ``all``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from contactsync.exchange.jobs import ExporterOptions, Job
from contactsync.exchange.periods import day_window, parse_local, zone
from contactsync.hub.workspaces import Node
from contactsync.store import exchange as store
from contactsync.store.db import Database

FEEDBACK = {
    "campaignSent": "sent",
    "campaignOpened": "opened",
    "campaignLinkClicked": "clicked",
    "campaignBounced": "bounced",
    "campaignUnsubscribed": "unsubscribed",
}
COLUMNS = [
    "customer_id",
    "external_id",
    "email",
    "campaign_id",
    "campaign_name",
    *FEEDBACK.values(),
]


def period(options: ExporterOptions, tz_name: str, now_ms: int) -> tuple[int | None, int | None]:
    tz = zone(tz_name)
    assert tz is not None  # checked when the job was saved
    if options.period == "previous_day":
        return day_window(now_ms, tz)
    if options.period == "last_7_days":
        return day_window(now_ms, tz, days_back=7, days=7)
    if options.period == "last_30_days":
        return day_window(now_ms, tz, days_back=30, days=30)
    if options.period == "range":
        start = parse_local(options.date_from, tz) if options.date_from else None
        end = parse_local(options.date_to, tz) if options.date_to else None
        return start, end
    return None, None


def rows(db: Database, job: Job, node: Node, now_ms: int) -> tuple[list[str], Iterator[dict[str, Any]]]:
    options: ExporterOptions = job.options()
    start, end = period(options, job.spec.timezone, now_ms)

    def produce() -> Iterator[dict[str, Any]]:
        with db.read() as conn:
            current: dict[str, Any] | None = None
            for row in store.iter_feedback(
                conn, job.workspace_id, [node.id, *node.members], list(FEEDBACK), date_from=start, date_to=end
            ):
                ident = (row.customer_id, row.campaign_id)
                if current is None or (current["customer_id"], current["campaign_id"]) != ident:
                    if current is not None:
                        yield current
                    data = orjson.loads(row.data) if row.data else {}
                    current = {
                        "customer_id": row.customer_id,
                        "external_id": row.external_id,
                        "email": data.get("base", {}).get("contacts", {}).get("email"),
                        "campaign_id": row.campaign_id,
                        "campaign_name": row.campaign_name,
                        **dict.fromkeys(FEEDBACK.values(), 0),
                    }
                current[FEEDBACK[row.type]] += int(row.n)
                current["campaign_name"] = current["campaign_name"] or row.campaign_name
            if current is not None:
                yield current

    return list(COLUMNS), produce()
