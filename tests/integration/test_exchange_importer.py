"""The importer on CSV and XML files: append and overwrite, options, row errors with their codes,
the failed-operations report, processed files, on SQLite and PostgreSQL."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

from typing import Any

import pytest

from contactsync.hub import customers as hub_customers
from contactsync.hub import workspaces
from contactsync.hub.bulk import upsert_customers
from tests.integration.test_exchange_support import Ex, csv_text, ex, xml_text  # noqa: F401 - the `ex` fixture

MAPPING = {"email": "base.contacts.email", "first": "base.firstName", "city": "base.address.city"}
HEADER = ["email", "first", "city", "news"]
SUBS = [{"column": "news", "id": "newsletter"}]


def _file(fmt: str, rows: list[list[str]], header: list[str] = HEADER) -> tuple[str, str]:
    """(file name, content) of the rows in the format."""
    if fmt == "csv":
        return "contacts.csv", csv_text(header, rows)
    return "contacts.xml", xml_text([dict(zip(header, r, strict=True)) for r in rows])


def _importer(ex: Ex, fmt: str, **options: Any) -> Any:
    return ex.job(
        "importer",
        format={"format": fmt},
        mapping=MAPPING,
        subscriptions=SUBS,
        options=options,
    )


def _seed(ex: Ex, people: list[tuple[str, str]]) -> None:
    records = [
        {
            "base": {
                "firstName": first,
                "contacts": {"email": email},
                "lastName": "Kept",
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            }
        }
        for email, first in people
    ]
    report = upsert_customers(ex.hub.db, ex.hub.workspace_id, ex.hub.node_id, records)
    assert report.created == len(people)


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_append_inserts_updates_and_moves_the_file_to_done(ex: Ex, fmt: str) -> None:
    _seed(ex, [("ada@example.com", "Ada"), ("alan@example.com", "Alan")])
    job = _importer(ex, fmt)
    name, content = _file(
        fmt,
        [
            ["ada@example.com", "Ada", "London", "yes"],  # unchanged profile, same subscription
            ["Alan@Example.com", "Alan M.", "Wilmslow", ""],  # profile update, merged
            ["grace@example.com", "Grace", "Arlington", "subscribed"],  # new
        ],
    )
    ex.put(name, content)
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    c = run["counts"]
    assert (c["read"], c["inserted"], c["updated"], c["failed"]) == (3, 1, 2, 0)
    people = ex.customers()
    assert people["alan@example.com"]["base"]["firstName"] == "Alan M."
    assert people["alan@example.com"]["base"]["lastName"] == "Kept"  # append merges: not blanked
    assert people["ada@example.com"]["base"]["address"]["city"] == "London"
    grace = people["grace@example.com"]
    assert [(s["id"], s["status"]) for s in grace["base"]["subscriptions"]] == [("newsletter", "subscribed")]
    assert not (ex.box / name).exists()
    assert (ex.box / "done" / name).exists()
    origins = {op for _, op in ex.journal_ops()}
    assert origins == {"CREATE", "UPDATE"}


def test_same_content_is_skipped_unless_forced(ex: Ex) -> None:
    job = _importer(ex, "csv")
    content = csv_text(HEADER, [["a@example.com", "A", "Rome", "yes"]])
    ex.put("day1.csv", content)
    assert ex.run_one(job)["status"] == "succeeded"
    ex.put("day2.csv", content)  # the same file sent again under another name
    again = ex.run_one(job)
    assert (again["status"], again["errorCode"]) == ("skipped", "E630")
    assert (ex.box / "done" / "day2.csv").exists()
    ex.put("day3.csv", content)
    forced = ex.run_one(job, force=True)
    assert forced["status"] == "succeeded"
    assert forced["counts"]["unchanged"] == 1


def test_no_input_file_is_a_skipped_run(ex: Ex) -> None:
    job = _importer(ex, "csv")
    run = ex.run_one(job)
    assert (run["status"], run["errorCode"]) == ("skipped", "E633")


def test_several_files_make_one_run_each_in_name_order(ex: Ex) -> None:
    job = _importer(ex, "csv")
    ex.put("b.csv", csv_text(HEADER, [["x@example.com", "Second", "", ""]]))
    ex.put("a.csv", csv_text(HEADER, [["x@example.com", "First", "", ""]]))
    done = ex.run(job)
    assert [(r["fileName"], r["status"]) for r in done] == [("a.csv", "succeeded"), ("b.csv", "succeeded")]
    assert ex.customers()["x@example.com"]["base"]["firstName"] == "Second"


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_row_errors_have_codes_and_the_report_holds_exactly_the_failed_rows(ex: Ex, fmt: str) -> None:
    ws = workspaces.set_extended_schema(
        ex.hub.db,
        ex.hub.workspace_id,
        {"type": "object", "properties": {"points": {"type": ["integer", "null"]}}},
    )
    assert ws.extended_schema
    # an opt-out the import may not undo
    _seed(ex, [("out@example.com", "Out")])
    hub_customers.patch(
        ex.hub.db,
        ex.hub.workspace_id,
        next(iter(ex.customers().values()))["id"],
        {"base": {"subscriptions": [{"id": "newsletter", "subscribed": False}]}},
    )
    job = ex.job(
        "importer",
        format={"format": fmt},
        mapping={**MAPPING, "points": "extended.points"},
        subscriptions=SUBS,
    )
    header = [*HEADER, "points"]
    rows = [
        ["ok1@example.com", "Ok", "Rome", "yes", "3"],  # 1 fine
        ["", "NoKey", "Rome", "yes", "1"],  # 2 E620
        ["not-an-email", "Bad", "Rome", "", ""],  # 3 E201
        ["ok1@example.com", "Dup", "Rome", "", ""],  # 4 E621
        ["pts@example.com", "Pts", "Rome", "", "many"],  # 5 E624 (integer)
        ["sub@example.com", "Sub", "Rome", "perhaps", ""],  # 6 E624 (subscription value)
        ["out@example.com", "Out", "Rome", "yes", ""],  # 7 E301 (consent refused)
        ["ok2@example.com", "=cmd|' /C calc'!A0", "Rome", "", ""],  # 8 fine (a formula is text)
    ]
    name, content = _file(fmt, rows, header)
    if fmt == "csv":
        content += '"broken@example.com","Quote,"Rome"\n'  # 9 E604 malformed
        content += "short@example.com,Short\n"  # 10 E604 (too few fields)
    else:
        content = content.replace(
            "</records>", "<record><email>x@example.com</email><email>y</email></record>\n</records>"
        )
    ex.put(name, content)
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    got = [(r["row"], r["error_code"]) for r in ex.failed(job, run["id"])]
    expected = [("2", "E620"), ("3", "E201"), ("4", "E621"), ("5", "E624"), ("6", "E624"), ("7", "E301")]
    expected += [("9", "E604"), ("10", "E604")] if fmt == "csv" else [("9", "E604")]
    assert got == expected
    c = run["counts"]
    assert c["read"] == len(expected) + 2
    assert (c["inserted"], c["failed"], c["refused"]) == (2, len(expected) - 1, 1)
    assert c["read"] == c["inserted"] + c["updated"] + c["unchanged"] + c["skipped"] + c["failed"]
    people = ex.customers()
    assert people["ok1@example.com"]["extended"]["points"] == 3
    assert people["ok2@example.com"]["base"]["firstName"] == "=cmd|' /C calc'!A0"
    assert people["out@example.com"]["base"]["subscriptions"][0]["status"] == "unsubscribed"
    report = ex.failed(job, run["id"])
    if fmt == "csv":  # the failed rows come back split into the file's own columns, formula-safe
        assert report[0]["first"] == "NoKey" and report[0]["email"] == ""
    else:
        assert "<first>NoKey</first>" in report[0]["raw"]


def test_a_file_without_a_mapped_column_is_refused_whole(ex: Ex) -> None:
    job = _importer(ex, "csv")
    ex.put("c.csv", csv_text(["email", "first", "town"], [["a@example.com", "A", "Rome"]]))
    run = ex.run_one(job)
    assert (run["status"], run["errorCode"]) == ("failed", "E635")
    assert ex.customers() == {}
    assert (ex.box / "failed" / "c.csv").exists()


def test_a_file_rejected_after_good_rows_writes_nothing(ex: Ex) -> None:
    settings = ex.env.settings.model_copy(update={"exchange_max_line_bytes": 200})
    ex.env.settings = settings
    job = _importer(ex, "csv")
    good = [[f"p{i}@example.com", "P", "Rome", ""] for i in range(50)]
    ex.put("long.csv", csv_text(HEADER, good) + "x" * 500 + "\n")
    run = ex.run_one(job)
    assert (run["status"], run["errorCode"]) == ("failed", "E601")
    assert ex.customers() == {}
    assert (ex.box / "failed" / "long.csv").exists()


def test_insert_only_and_update_existing_only(ex: Ex) -> None:
    _seed(ex, [("old@example.com", "Old")])
    rows = [["old@example.com", "Changed", "", ""], ["new@example.com", "New", "", ""]]
    job = _importer(ex, "csv", insert_only=True)
    ex.put("1.csv", csv_text(HEADER, rows))
    run = ex.run_one(job)
    assert (run["counts"]["inserted"], run["counts"]["skipped"]) == (1, 1)
    assert ex.customers()["old@example.com"]["base"]["firstName"] == "Old"
    rows = [["old@example.com", "Changed", "", ""], ["newer@example.com", "Newer", "", ""]]
    job = _importer(ex, "csv", update_existing_only=True)
    ex.put("2.csv", csv_text(HEADER, rows))
    run = ex.run_one(job)
    assert (run["counts"]["updated"], run["counts"]["skipped"]) == (1, 1)
    people = ex.customers()
    assert people["old@example.com"]["base"]["firstName"] == "Changed"
    assert "newer@example.com" not in people


def test_profile_and_subscription_overwrite_are_separate_options(ex: Ex) -> None:
    _seed(ex, [("p@example.com", "Before")])
    rows = [["p@example.com", "After", "Rome", "unsubscribed"], ["q@example.com", "Q", "Rome", "yes"]]
    job = _importer(ex, "csv", overwrite_profile=False)
    ex.put("1.csv", csv_text(HEADER, rows))
    assert ex.run_one(job)["status"] == "succeeded"
    people = ex.customers()
    assert people["p@example.com"]["base"]["firstName"] == "Before"  # profile kept …
    assert people["p@example.com"]["base"]["subscriptions"][0]["status"] == "unsubscribed"  # … status changed
    assert people["q@example.com"]["base"]["firstName"] == "Q"  # a new customer gets the whole row

    _seed(ex, [("r@example.com", "R")])
    rows = [["r@example.com", "R2", "", "no"], ["s@example.com", "S", "", "no"]]
    job = _importer(ex, "csv", overwrite_subscriptions=False)
    ex.put("2.csv", csv_text(HEADER, rows))
    assert ex.run_one(job)["status"] == "succeeded"
    people = ex.customers()
    assert people["r@example.com"]["base"]["firstName"] == "R2"  # profile changed …
    assert people["r@example.com"]["base"]["subscriptions"][0]["status"] == "subscribed"  # … status kept
    assert people["s@example.com"]["base"]["subscriptions"][0]["status"] == "unsubscribed"  # new: as the file


def test_overwrite_deletes_absent_customers_behind_the_guard(ex: Ex) -> None:
    _seed(ex, [(f"c{i}@example.com", f"C{i}") for i in range(20)])
    job = _importer(ex, "csv", mode="overwrite")
    keep = [[f"c{i}@example.com", f"C{i}", "", ""] for i in range(18)]
    ex.put("full.csv", csv_text(HEADER, keep))  # 2 of 20 absent: 10%, at the guard
    run = ex.run_one(job)
    assert run["status"] == "succeeded"
    assert run["counts"]["deleted"] == 2
    assert sorted(ex.customers()) == sorted(f"c{i}@example.com" for i in range(18))
    # profile overwrite: the node's content becomes the file's (lastName was not in the file)
    assert "lastName" not in ex.customers()["c0@example.com"]["base"]

    ex.put("half.csv", csv_text(HEADER, [*keep[:9], ["n@example.com", "N", "", ""]]))  # 50% would go
    stopped = ex.run_one(job)
    assert (stopped["status"], stopped["errorCode"]) == ("stopped", "E631")
    assert len(ex.customers()) == 18  # nothing written, not even the new row
    assert (ex.box / "half.csv").exists()  # the file stays for a run with the override

    forced = ex.run_one(job, allow_mass_change=True)
    assert forced["status"] == "succeeded"
    assert (forced["counts"]["deleted"], forced["counts"]["inserted"]) == (9, 1)
    assert len(ex.customers()) == 10


def test_overwrite_deletes_nothing_when_a_row_cannot_be_read(ex: Ex) -> None:
    _seed(ex, [("a@example.com", "A"), ("b@example.com", "B")])
    job = _importer(ex, "csv", mode="overwrite", guard_percent=100)
    ex.put("f.csv", csv_text(HEADER, [["a@example.com", "A", "", ""]]) + "broken,row\n")
    run = ex.run_one(job)
    assert run["status"] == "succeeded"
    assert run["counts"]["deleted"] == 0
    assert "no customer was deleted" in run["error"]
    assert set(ex.customers()) == {"a@example.com", "b@example.com"}
