"""The displacer (node → file, with filters; the unsubscriber-export preset) and the exporter
(feedback statistics per customer and campaign), to CSV and XML, on SQLite and PostgreSQL."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contactsync.hub import customers as hub_customers
from contactsync.hub import events as hub_events
from contactsync.hub.times import now_ms
from contactsync.store.tables import subscriptions
from tests.integration.test_exchange_support import Ex, ex, read_csv  # noqa: F401 - the `ex` fixture

DAY = 24 * 3600 * 1000


def _customer(ex: Ex, email: str, first: str, subs: list[dict[str, Any]]) -> str:
    created, _ = hub_customers.create(
        ex.hub.db,
        ex.hub.workspace_id,
        {
            "nodeId": ex.hub.node_id,
            "base": {"firstName": first, "contacts": {"email": email}, "subscriptions": subs},
        },
    )
    return str(created["id"])


def _unsubscribe(ex: Ex, customer_id: str, sid: str, reason: str) -> None:
    hub_customers.patch(
        ex.hub.db,
        ex.hub.workspace_id,
        customer_id,
        {"base": {"subscriptions": [{"id": sid, "subscribed": False, "reason": reason}]}},
    )


def _age_subscriptions(ex: Ex, customer_id: str, at: int) -> None:
    with ex.hub.db.write() as conn:
        conn.execute(
            subscriptions.update().where(subscriptions.c.customer_id == customer_id).values(updated_at=at)
        )


def _xml_rows(path: Path) -> list[dict[str, str]]:
    root = ET.parse(path).getroot()
    return [{child.tag: child.text or "" for child in record} for record in root]


def _only_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if p.is_file()]
    assert len(files) == 1, files
    return files[0]


@pytest.fixture
def people(ex: Ex) -> dict[str, str]:
    ids = {
        "a": _customer(ex, "a@example.com", '=HYPERLINK("x")', [{"id": "1", "subscribed": True}]),
        "b": _customer(
            ex, "b@example.com", "Bea", [{"id": "1", "subscribed": True}, {"id": "2", "subscribed": True}]
        ),
        "c": _customer(ex, "c@example.com", "Cid", [{"id": "2", "subscribed": True}]),
        "d": _customer(ex, "d@example.com", "Dan", []),
    }
    _unsubscribe(ex, ids["a"], "1", "link")  # list 1, clicked the unsubscribe link
    _unsubscribe(ex, ids["b"], "1", "manual")  # list 1, by hand
    _unsubscribe(ex, ids["c"], "2", "manual")  # list 2
    return ids


def test_displacer_writes_the_node_neutralised_with_default_columns(ex: Ex, people: dict[str, str]) -> None:
    job = ex.job("displacer", file="all_{date:%Y%m%d}.csv", timezone="Europe/Rome")
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    assert run["counts"]["written"] == 4
    path = _only_file(ex.box)
    today = dt.datetime.now(ZoneInfo("Europe/Rome")).strftime("%Y%m%d")
    assert path.name == f"all_{today}.csv"
    rows = read_csv(path)
    rows.sort(key=lambda r: r["email"])  # storage order: no sort on the way out
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert rows[0]["first_name"] == '\'=HYPERLINK("x")'  # a spreadsheet will not run it
    assert list(rows[0]) == ["id", "external_id", "email", "first_name", "last_name", "updated_at"]
    assert not [p for p in ex.box.iterdir() if ".part-" in p.name]


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_unsubscriber_preset_filters_by_list_day_and_reason(ex: Ex, people: dict[str, str], fmt: str) -> None:
    _age_subscriptions(ex, people["c"], now_ms() - 3 * DAY)  # not yesterday, not today
    job = ex.job(preset="unsubscribers", format={"format": fmt}, file=f"unsubs.{fmt}")
    assert ex.run_one(job)["counts"]["written"] == 3
    job = ex.job(
        preset="unsubscribers",
        format={"format": fmt},
        file=f"list1.{fmt}",
        options={"subscriptions_included": ["1"], "reasons_excluded": ["link"]},
    )
    ex.run_one(job)
    path = ex.box / f"list1.{fmt}"
    rows = read_csv(path) if fmt == "csv" else _xml_rows(path)
    assert [(r["email"], r["list_id"], r["reason"]) for r in rows] == [("b@example.com", "1", "manual")]
    assert rows[0]["unsubscribed_at"].startswith(dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")[:4])

    # "all unsubscribers of the previous day" in the job's time zone
    yesterday = now_ms() - DAY
    _age_subscriptions(ex, people["b"], yesterday)
    job = ex.job(
        preset="unsubscribers",
        format={"format": fmt},
        file=f"yesterday.{fmt}",
        timezone="Europe/Rome",
        options={"changed": "previous_day", "subscriptions_excluded": ["2"]},
    )
    ex.run_one(job)
    path = ex.box / f"yesterday.{fmt}"
    rows = read_csv(path) if fmt == "csv" else _xml_rows(path)
    assert [r["email"] for r in rows] == ["b@example.com"]


def test_displacer_customer_rows_with_subscription_filters_and_status_columns(
    ex: Ex, people: dict[str, str]
) -> None:
    job = ex.job(
        "displacer",
        file="subscribed2.csv",
        mapping={"email": "base.contacts.email", "list2": "subscriptions.2", "first": "base.firstName"},
        options={"subscriptions_included": ["2"], "statuses": ["subscribed"]},
    )
    ex.run_one(job)
    rows = read_csv(ex.box / "subscribed2.csv")
    assert [(r["email"], r["list2"]) for r in rows] == [("b@example.com", "subscribed")]
    job = ex.job("displacer", file="not1.csv", options={"subscriptions_excluded": ["1"]})
    ex.run_one(job)
    assert sorted(r["email"] for r in read_csv(ex.box / "not1.csv")) == ["c@example.com", "d@example.com"]


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_exporter_counts_feedback_per_customer_and_campaign(ex: Ex, fmt: str) -> None:
    a = _customer(ex, "a@example.com", "A", [])
    b = _customer(ex, "b@example.com", "B", [])
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    when = yesterday.replace(hour=12, minute=0, second=0, microsecond=0).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000"
    )
    old = (yesterday - dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def event(customer: str, kind: str, campaign: str, date: str = when) -> None:
        hub_events.post_event(
            ex.hub.db,
            ex.hub.workspace_id,
            {
                "type": kind,
                "context": "DIGITAL_CAMPAIGN",
                "customerId": customer,
                "date": date,
                "properties": {"campaignId": campaign, "campaignName": f"Campaign {campaign}"},
            },
        )

    for kind in ("campaignSent", "campaignOpened", "campaignOpened", "campaignLinkClicked"):
        event(a, kind, "c1")
    event(a, "campaignSent", "c2")
    event(a, "campaignUnsubscribed", "c2")
    event(b, "campaignSent", "c1")
    event(b, "campaignBounced", "c1")
    event(b, "campaignSent", "c9", old)  # outside the period
    job = ex.job(
        "exporter", format={"format": fmt}, file=f"feedback.{fmt}", options={"period": "previous_day"}
    )
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    path = ex.box / f"feedback.{fmt}"
    rows = read_csv(path) if fmt == "csv" else _xml_rows(path)
    got = {
        (r["email"], r["campaign_id"]): tuple(
            int(r[k]) for k in ("sent", "opened", "clicked", "bounced", "unsubscribed")
        )
        for r in rows
    }
    assert got == {
        ("a@example.com", "c1"): (1, 2, 1, 0, 0),
        ("a@example.com", "c2"): (1, 0, 0, 0, 1),
        ("b@example.com", "c1"): (1, 0, 0, 1, 0),
    }
    assert {r["campaign_name"] for r in rows} == {"Campaign c1", "Campaign c2"}
    job = ex.job("exporter", file="all.csv", options={"period": "all"})
    ex.run_one(job)
    assert len(read_csv(ex.box / "all.csv")) == 4


def test_output_jobs_refuse_a_database_endpoint(ex: Ex) -> None:
    from contactsync.errors import InputError

    with pytest.raises(InputError) as e:
        ex.job("displacer", endpoint={"url": "sqlite:///client.db", "table": "t"})
    assert e.value.problems[0].code == "E634"


def test_run_heartbeat_rows_are_bounded(ex: Ex) -> None:
    """A large export streams: the run's progress moves while it writes."""
    from contactsync.hub.bulk import upsert_customers

    upsert_customers(
        ex.hub.db,
        ex.hub.workspace_id,
        ex.hub.node_id,
        ({"base": {"contacts": {"email": f"p{i}@example.com"}}} for i in range(25_000)),
    )
    job = ex.job("displacer", file="big.csv")
    run = ex.run_one(job)
    assert run["counts"]["written"] == 25_000
    assert run["progress"] == 20_000
