"""The 3-way merge of one record: hub view, provider view, and the link's base.

Per field: a side that still equals the base did not change, so the other side's value wins;
when both changed, the source's conflict policy decides (newest wins breaks ties in favour of
the hub, so the result is deterministic). Subscriptions never follow the conflict policy:
when both sides changed, the stronger status wins by consent precedence
(cleaned > unsubscribed > pending > subscribed), so an unsubscribe is never lost. The hub
then applies the consent rules to what reaches it (an automatic resubscribe is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contactsync.hub.consent import PRECEDENCE, Status
from contactsync.sync.mapping import View
from contactsync.sync.settings import ConflictPolicy, Direction, NullPolicy, SyncSettings


@dataclass
class Outcome:
    merged: View  # the values both sides hold once the writes are done: the new base
    hub_fields: dict[str, Any] = field(default_factory=dict)
    hub_subs: dict[str, Status] = field(default_factory=dict)
    provider_fields: dict[str, Any] = field(default_factory=dict)
    provider_subs: dict[str, Status] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    @property
    def writes_hub(self) -> bool:
        return bool(self.hub_fields or self.hub_subs)

    @property
    def writes_provider(self) -> bool:
        return bool(self.provider_fields or self.provider_subs)


def _stronger(a: Status | None, b: Status | None) -> Status | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if PRECEDENCE[a] >= PRECEDENCE[b] else b


def merge(
    settings: SyncSettings,
    base: View | None,
    hub: View,
    provider: View,
    *,
    hub_newer: bool,
) -> Outcome:
    """Merge one record. ``hub_newer``: the hub's copy changed last (for newest wins)."""
    out = Outcome(View())
    hub_first = settings.conflict_policy == ConflictPolicy.HUB_WINS or (
        settings.conflict_policy == ConflictPolicy.NEWEST_WINS and hub_newer
    )
    for m in settings.field_map:
        direction = settings.direction.narrowed(m.direction)
        if direction is None:
            continue
        k = m.hub
        h, p = hub.fields.get(k), provider.fields.get(k)
        has_base = base is not None and k in base.fields
        b = base.fields.get(k) if base is not None else None
        if direction == Direction.BOTH:
            value = _both_ways(h, p, b, has_base, hub_first, out, k)
            if m.nulls == NullPolicy.SKIP and value is None:
                value = h if h is not None else p
            out.merged.fields[k] = value
        else:
            # one way: the base follows the source side, and only its changes travel
            source = p if direction == Direction.TO_HUB else h
            out.merged.fields[k] = source
            if has_base and source == b:
                continue
            value = source
            if m.nulls == NullPolicy.SKIP and value is None:
                continue
        if_empty = m.nulls == NullPolicy.IF_EMPTY
        if h != value and direction.allows("hub") and not (if_empty and h is not None):
            out.hub_fields[k] = value
        if p != value and direction.allows("provider") and not (if_empty and p is not None):
            out.provider_fields[k] = value
    for sid in hub.subs.keys() | provider.subs.keys():
        h_s, p_s = hub.subs.get(sid), provider.subs.get(sid)
        has_base = base is not None and sid in base.subs
        b_s = base.subs.get(sid) if base is not None else None
        direction = settings.direction
        if direction == Direction.BOTH:
            status = _status_both_ways(h_s, p_s, b_s, has_base)
            out.merged.subs[sid] = status
        else:
            source_s = p_s if direction == Direction.TO_HUB else h_s
            out.merged.subs[sid] = source_s
            if has_base and source_s == b_s:
                continue
            status = source_s
        if status is None:
            continue
        if h_s != status and direction.allows("hub"):
            out.hub_subs[sid] = status
        if p_s != status and direction.allows("provider"):
            out.provider_subs[sid] = status
    return out


def _both_ways(h: Any, p: Any, b: Any, has_base: bool, hub_first: bool, out: Outcome, k: str) -> Any:
    if h == p:
        return h
    if has_base and h == b:
        return p
    if has_base and p == b:
        return h
    if not has_base and (h is None or p is None):
        return p if h is None else h
    out.conflicts.append(k)
    return h if hub_first else p


def _status_both_ways(h: Status | None, p: Status | None, b: Status | None, has_base: bool) -> Status | None:
    if h == p:
        return h
    if has_base and h == b and p is not None:
        return p
    if has_base and p == b and h is not None:
        return h
    return _stronger(h, p)
