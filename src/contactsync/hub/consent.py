"""Consent rules: the one state machine every subscription write goes through.

Statuses, by precedence for automatic writes (imports, syncs, webhooks)::

    cleaned > unsubscribed > pending > subscribed

* A subscription that was ever unsubscribed or cleaned carries an *opt-out barrier*
  (``opted_out_at``). Only explicit evidence of a newer opt-in lifts it: a confirmed double
  opt-in, or an explicit write (hub API, subscribe form) carrying consent evidence dated after
  the barrier.
* Automatic writes never lift the barrier and never lower the status below a stronger one:
  an import that says "subscribed" for someone who unsubscribed is refused
  (``REOPTIN_REQUIRED``) and the unsubscribe stays. (ARCHITECTURE §3 said such a write becomes
  ``pending``; we keep ``unsubscribed`` instead, because a ``pending`` pushed to a double
  opt-in provider sends a confirmation email to a person who opted out.)
* An explicit write asking for "subscribed" over the barrier without evidence becomes
  ``pending`` (re-opt-in requested) with reason ``REOPTIN_REQUIRED``, never ``subscribed``.

:func:`decide` is pure; callers store its :class:`Decision` and append the ledger row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    CLEANED = "cleaned"


PRECEDENCE = {Status.SUBSCRIBED: 0, Status.PENDING: 1, Status.UNSUBSCRIBED: 2, Status.CLEANED: 3}
OPTED_OUT = frozenset({Status.UNSUBSCRIBED, Status.CLEANED})


class Reason(StrEnum):
    NEW = "NEW"
    UNCHANGED = "UNCHANGED"
    APPLIED = "APPLIED"
    OPTED_OUT = "OPTED_OUT"
    NEWER_OPT_IN = "NEWER_OPT_IN"
    REOPTIN_REQUESTED = "REOPTIN_REQUESTED"
    REOPTIN_REQUIRED = "REOPTIN_REQUIRED"
    KEPT_HIGHER_PRECEDENCE = "KEPT_HIGHER_PRECEDENCE"


class EvidenceKind(StrEnum):
    DOUBLE_OPT_IN = "DOUBLE_OPT_IN"
    EXPLICIT = "EXPLICIT"


@dataclass(frozen=True)
class Evidence:
    """Proof of an opt-in: what, when (epoch ms), and from where."""

    kind: EvidenceKind
    at: int
    ip: str | None = None
    user_agent: str | None = None
    webform_code: str | None = None


@dataclass(frozen=True)
class Current:
    status: Status
    opted_out_at: int | None


@dataclass(frozen=True)
class Request:
    status: Status
    at: int
    automatic: bool
    evidence: Evidence | None = None


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: Reason
    opted_out_at: int | None
    changed: bool
    refused: bool = False


def decide(current: Current | None, req: Request) -> Decision:
    """What a requested status change becomes under the consent rules."""
    if current is None:
        barrier = req.at if req.status in OPTED_OUT else None
        return Decision(req.status, Reason.NEW, barrier, changed=True)

    cur, barrier = current.status, current.opted_out_at
    if barrier is None and cur in OPTED_OUT:  # opted out before barriers were recorded
        barrier = 0

    def keep(reason: Reason, refused: bool = False) -> Decision:
        return Decision(cur, reason, barrier, changed=False, refused=refused)

    def move(status: Status, reason: Reason, new_barrier: int | None) -> Decision:
        return Decision(status, reason, new_barrier, changed=status != cur or new_barrier != barrier)

    if req.status in OPTED_OUT:
        if req.status == cur:
            return keep(Reason.UNCHANGED)
        if req.automatic and PRECEDENCE[req.status] < PRECEDENCE[cur]:
            return keep(Reason.KEPT_HIGHER_PRECEDENCE)
        # a late-arriving older opt-out never moves the barrier back
        return move(req.status, Reason.OPTED_OUT, max(req.at, barrier or 0))

    lifts = _lifts_barrier(barrier, req)
    if req.status == Status.PENDING:
        if cur == Status.PENDING:
            return keep(Reason.UNCHANGED)
        if cur in OPTED_OUT:
            if req.automatic:
                return keep(Reason.KEPT_HIGHER_PRECEDENCE)
            return move(Status.PENDING, Reason.REOPTIN_REQUESTED, barrier)
        return move(Status.PENDING, Reason.APPLIED, barrier)

    # requested: subscribed
    if barrier is not None and not lifts:
        if req.automatic:
            return keep(Reason.REOPTIN_REQUIRED, refused=True)
        if cur == Status.PENDING:
            return keep(Reason.REOPTIN_REQUIRED)
        return move(Status.PENDING, Reason.REOPTIN_REQUIRED, barrier)
    if cur == Status.SUBSCRIBED:
        return keep(Reason.UNCHANGED)
    if barrier is not None:
        return move(Status.SUBSCRIBED, Reason.NEWER_OPT_IN, None)
    return move(Status.SUBSCRIBED, Reason.APPLIED, None)


def _lifts_barrier(barrier: int | None, req: Request) -> bool:
    """True when the request carries evidence of an opt-in newer than the barrier."""
    if barrier is None:
        return True
    return not req.automatic and req.evidence is not None and req.evidence.at > barrier


def status_from_contacthub(subscribed: bool | None, status: str | None) -> Status | None:
    """The requested status of a Contacthub subscription item (``status`` wins over the boolean).

    None when the item asks for no status: an item that only renames a subscription must not
    read as an unsubscribe.
    """
    if status is not None:
        return Status(status)
    if subscribed is None:
        return None
    return Status.SUBSCRIBED if subscribed else Status.UNSUBSCRIBED
