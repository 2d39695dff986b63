"""The consent state machine (hub.consent): properties first, then the documented cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.hub.consent import (
    OPTED_OUT,
    Current,
    Decision,
    Evidence,
    EvidenceKind,
    Reason,
    Request,
    Status,
    decide,
    status_from_contacthub,
)

PROPS = settings(database=None, max_examples=300, deadline=None)

times = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970 .. 2100, epoch ms
statuses = st.sampled_from(list(Status))
evidence = st.builds(Evidence, kind=st.sampled_from(list(EvidenceKind)), at=times)
maybe_evidence = st.none() | evidence
opted_out_start = st.builds(
    Current, status=st.sampled_from(sorted(OPTED_OUT)), opted_out_at=st.none() | times
)
automatic_writes = st.builds(
    Request, status=statuses, at=times, automatic=st.just(True), evidence=maybe_evidence
)
explicit_writes_without_evidence = st.builds(
    Request, status=statuses, at=times, automatic=st.just(False), evidence=st.none()
)
writes_without_evidence = st.builds(
    Request, status=statuses, at=times, automatic=st.booleans(), evidence=st.none()
)
any_current = st.none() | st.builds(Current, status=statuses, opted_out_at=st.none() | times)
any_request = st.builds(Request, status=statuses, at=times, automatic=st.booleans(), evidence=maybe_evidence)


def run(start: Current | None, requests: list[Request]) -> list[Decision]:
    """Apply the requests in order, storing each decision as the next current state."""
    current, decisions = start, []
    for req in requests:
        d = decide(current, req)
        decisions.append(d)
        current = Current(d.status, d.opted_out_at)
    return decisions


# -- properties ---------------------------------------------------------------------------------


@PROPS
@given(start=opted_out_start, requests=st.lists(automatic_writes, max_size=25))
def test_automatic_writes_never_resubscribe_an_opted_out_subscription(start, requests):
    for d in run(start, requests):
        assert d.status != Status.SUBSCRIBED


@PROPS
@given(start=opted_out_start, requests=st.lists(explicit_writes_without_evidence, max_size=25))
def test_explicit_writes_without_evidence_never_resubscribe(start, requests):
    for d in run(start, requests):
        assert d.status != Status.SUBSCRIBED


@PROPS
@given(start=opted_out_start, requests=st.lists(writes_without_evidence, max_size=25))
def test_mixed_writes_without_evidence_never_resubscribe(start, requests):
    for d in run(start, requests):
        assert d.status != Status.SUBSCRIBED


@PROPS
@given(current=any_current, req=any_request)
def test_decision_is_well_formed_and_changed_means_something_changed(current, req):
    d = decide(current, req)
    assert isinstance(d.status, Status)
    assert d.status in set(Status)
    assert isinstance(d.reason, Reason)
    if current is None:
        assert d.changed is True
        assert d.reason == Reason.NEW
        return
    # A row opted out before barriers were recorded (opted_out_at None) counts as barrier 0.
    legacy = current.opted_out_at is None and current.status in OPTED_OUT
    barrier = 0 if legacy else current.opted_out_at
    assert d.changed == (d.status != current.status or d.opted_out_at != barrier)
    if d.refused:
        assert not d.changed
        assert req.automatic and req.status == Status.SUBSCRIBED


@PROPS
@given(start=st.none() | opted_out_start, requests=st.lists(any_request, min_size=1, max_size=25))
def test_reachable_states_keep_status_and_barrier_consistent(start, requests):
    for d in run(start, requests):
        if d.status in OPTED_OUT:
            assert d.opted_out_at is not None
        if d.status == Status.SUBSCRIBED:
            assert d.opted_out_at is None


@PROPS
@given(current=any_current, at=times, kind=st.sampled_from(sorted(OPTED_OUT)))
def test_explicit_opt_out_is_always_honoured(current, at, kind):
    d = decide(current, Request(kind, at, automatic=False))
    assert d.status == kind
    assert d.opted_out_at is not None


# -- examples -----------------------------------------------------------------------------------


def test_new_subscription_is_subscribed():
    d = decide(None, Request(Status.SUBSCRIBED, 1_000, automatic=True))
    assert d == Decision(Status.SUBSCRIBED, Reason.NEW, None, changed=True)


def test_new_unsubscribed_subscription_gets_a_barrier():
    d = decide(None, Request(Status.UNSUBSCRIBED, 1_000, automatic=True))
    assert (d.status, d.reason, d.opted_out_at, d.changed) == (
        Status.UNSUBSCRIBED,
        Reason.NEW,
        1_000,
        True,
    )


@pytest.mark.parametrize("automatic", [True, False])
def test_unsubscribe_sets_the_barrier(automatic):
    d = decide(Current(Status.SUBSCRIBED, None), Request(Status.UNSUBSCRIBED, 5_000, automatic=automatic))
    assert d.status == Status.UNSUBSCRIBED
    assert d.reason == Reason.OPTED_OUT
    assert d.opted_out_at == 5_000
    assert d.changed and not d.refused


def test_explicit_subscribe_over_unsubscribed_without_evidence_requires_reoptin():
    d = decide(Current(Status.UNSUBSCRIBED, 5_000), Request(Status.SUBSCRIBED, 9_000, automatic=False))
    assert d.status == Status.PENDING
    assert d.reason == Reason.REOPTIN_REQUIRED
    assert d.opted_out_at == 5_000  # the barrier stays
    assert d.changed and not d.refused


@pytest.mark.parametrize("kind", list(EvidenceKind))
def test_explicit_subscribe_with_newer_evidence_lifts_the_barrier(kind):
    d = decide(
        Current(Status.UNSUBSCRIBED, 5_000),
        Request(Status.SUBSCRIBED, 9_000, automatic=False, evidence=Evidence(kind, 5_001)),
    )
    assert d.status == Status.SUBSCRIBED
    assert d.reason == Reason.NEWER_OPT_IN
    assert d.opted_out_at is None
    assert d.changed


@pytest.mark.parametrize("evidence_at", [4_999, 5_000])
def test_evidence_not_newer_than_the_barrier_gives_pending(evidence_at):
    d = decide(
        Current(Status.UNSUBSCRIBED, 5_000),
        Request(
            Status.SUBSCRIBED,
            9_000,
            automatic=False,
            evidence=Evidence(EvidenceKind.EXPLICIT, evidence_at),
        ),
    )
    assert d.status == Status.PENDING
    assert d.reason == Reason.REOPTIN_REQUIRED
    assert d.opted_out_at == 5_000


def test_newer_evidence_also_confirms_a_pending_reoptin():
    d = decide(
        Current(Status.PENDING, 5_000),
        Request(
            Status.SUBSCRIBED,
            9_000,
            automatic=False,
            evidence=Evidence(EvidenceKind.DOUBLE_OPT_IN, 8_000),
        ),
    )
    assert (d.status, d.reason, d.opted_out_at) == (Status.SUBSCRIBED, Reason.NEWER_OPT_IN, None)


def test_automatic_unsubscribe_over_cleaned_keeps_cleaned():
    d = decide(Current(Status.CLEANED, 5_000), Request(Status.UNSUBSCRIBED, 9_000, automatic=True))
    assert d.status == Status.CLEANED
    assert d.reason == Reason.KEPT_HIGHER_PRECEDENCE
    assert d.opted_out_at == 5_000
    assert not d.changed


def test_automatic_pending_over_unsubscribed_keeps_unsubscribed():
    d = decide(Current(Status.UNSUBSCRIBED, 5_000), Request(Status.PENDING, 9_000, automatic=True))
    assert (d.status, d.reason, d.changed) == (
        Status.UNSUBSCRIBED,
        Reason.KEPT_HIGHER_PRECEDENCE,
        False,
    )


@pytest.mark.parametrize("with_evidence", [False, True])
def test_automatic_subscribe_over_unsubscribed_is_refused(with_evidence):
    ev = Evidence(EvidenceKind.DOUBLE_OPT_IN, 8_000) if with_evidence else None
    d = decide(
        Current(Status.UNSUBSCRIBED, 5_000),
        Request(Status.SUBSCRIBED, 9_000, automatic=True, evidence=ev),
    )
    assert d.refused is True
    assert d.status == Status.UNSUBSCRIBED
    assert d.reason == Reason.REOPTIN_REQUIRED
    assert d.opted_out_at == 5_000
    assert not d.changed


def test_legacy_unsubscribed_row_without_barrier_still_blocks_automatic_resubscribe():
    d = decide(Current(Status.UNSUBSCRIBED, None), Request(Status.SUBSCRIBED, 9_000, automatic=True))
    assert d.refused is True
    assert d.status == Status.UNSUBSCRIBED
    assert not d.changed
    # the missing barrier is read as "opted out at the beginning of time"
    assert d.opted_out_at == 0


def test_legacy_row_explicit_subscribe_needs_evidence():
    legacy = Current(Status.CLEANED, None)
    without = decide(legacy, Request(Status.SUBSCRIBED, 9_000, automatic=False))
    assert (without.status, without.reason) == (Status.PENDING, Reason.REOPTIN_REQUIRED)
    with_ev = decide(
        legacy,
        Request(Status.SUBSCRIBED, 9_000, automatic=False, evidence=Evidence(EvidenceKind.EXPLICIT, 1)),
    )
    assert (with_ev.status, with_ev.reason) == (Status.SUBSCRIBED, Reason.NEWER_OPT_IN)


def test_repeating_the_current_status_is_unchanged():
    for status in Status:
        barrier = 5_000 if status in OPTED_OUT else None
        d = decide(Current(status, barrier), Request(status, 9_000, automatic=False))
        assert d.reason == Reason.UNCHANGED, status
        assert not d.changed
        assert d.opted_out_at == barrier


def test_an_older_opt_out_does_not_move_the_barrier_back():
    # unsubscribed at t=100; a late import replays an old clean from t=50 ...
    d1 = decide(Current(Status.UNSUBSCRIBED, 100), Request(Status.CLEANED, 50, automatic=True))
    # ... then an explicit subscribe carries evidence from t=75, before the t=100 opt-out
    d2 = decide(
        Current(d1.status, d1.opted_out_at),
        Request(Status.SUBSCRIBED, 200, automatic=False, evidence=Evidence(EvidenceKind.EXPLICIT, 75)),
    )
    assert d1.opted_out_at == 100
    assert d2.status != Status.SUBSCRIBED


@pytest.mark.parametrize(
    ("subscribed", "status", "expected"),
    [
        (True, None, Status.SUBSCRIBED),
        (False, None, Status.UNSUBSCRIBED),
        (None, None, None),  # asks for no status: it must not read as an unsubscribe
        (True, "cleaned", Status.CLEANED),
        (False, "pending", Status.PENDING),
    ],
)
def test_status_from_contacthub(subscribed, status, expected):
    assert status_from_contacthub(subscribed, status) == expected


def test_status_from_contacthub_rejects_an_unknown_status():
    with pytest.raises(ValueError):
        status_from_contacthub(True, "maybe")
