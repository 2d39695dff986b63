"""Ready-made job specs. A spec naming a ``preset`` gets the preset's settings for every key it
does not give itself.

``unsubscribers`` — seed 003's unsubscriber export: a displacer with one row per unsubscribed
subscription (list id, unsubscription date, reason, personal data), filtered by list
(``subscriptions_included`` / ``subscriptions_excluded``), by date (``changed``: ``all`` or
``previous_day`` in the job's time zone) and by reason (``reasons_included`` /
``reasons_excluded``). E.g. "all unsubscribers of the previous day from list 1, except those
who clicked the unsubscribe link"::

    {"name": "unsubs", "node": "main", "preset": "unsubscribers",
     "endpoint": {"url": "sftp://…"}, "timezone": "Europe/Rome",
     "options": {"subscriptions_included": ["1"], "changed": "previous_day",
                 "reasons_excluded": ["link"]}}
"""

from __future__ import annotations

from typing import Any

from contactsync.errors import FieldProblem, invalid

UNSUBSCRIBERS: dict[str, Any] = {
    "module": "displacer",
    "file": "unsubscribers_{date:%Y%m%d}.csv",
    "mapping": {
        "email": "base.contacts.email",
        "first_name": "base.firstName",
        "last_name": "base.lastName",
        "external_id": "externalId",
        "list_id": "subscription.id",
        "unsubscribed_at": "subscription.updatedAt",
        "reason": "subscription.reason",
    },
    "options": {"rows": "subscription", "statuses": ["unsubscribed"], "changed": "all"},
}

PRESETS: dict[str, dict[str, Any]] = {"unsubscribers": UNSUBSCRIBERS}


def expand(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its preset's settings filled in (the spec's own keys win; ``options`` are
    merged key by key)."""
    name = spec.get("preset")
    if name is None:
        return spec
    preset = PRESETS.get(name)
    if preset is None:
        raise invalid(
            [FieldProblem("preset", f"no preset {name!r}; presets: {', '.join(sorted(PRESETS))}", "E634")]
        )
    out = {**preset, **spec}
    out["options"] = {**preset.get("options", {}), **(spec.get("options") or {})}
    return out
