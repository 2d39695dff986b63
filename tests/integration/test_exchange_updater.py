"""The updater: an operation column I/U/D per row; a wrong operation for the record's state is a
row error (E622/E623), never a silent upsert. CSV and XML, SQLite and PostgreSQL."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

import pytest

from contactsync.hub.bulk import upsert_customers
from tests.integration.test_exchange_support import Ex, csv_text, ex, xml_text  # noqa: F401 - the `ex` fixture

HEADER = ["op", "email", "first"]


def _content(fmt: str, rows: list[list[str]]) -> tuple[str, str]:
    if fmt == "csv":
        return "ops.csv", csv_text(HEADER, rows)
    return "ops.xml", xml_text([dict(zip(HEADER, r, strict=True)) for r in rows])


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_operations_apply_and_wrong_ones_fail_with_their_codes(ex: Ex, fmt: str) -> None:
    seeded = [
        {"base": {"firstName": n, "contacts": {"email": f"{n}@example.com"}}} for n in ("u", "d", "i", "x")
    ]
    upsert_customers(ex.hub.db, ex.hub.workspace_id, ex.hub.node_id, seeded)
    job = ex.job(
        "updater",
        format={"format": fmt},
        mapping={"email": "base.contacts.email", "first": "base.firstName"},
        options={"operation_column": "op"},
    )
    rows = [
        ["I", "new@example.com", "New"],  # 1 insert
        ["U", "u@example.com", "Updated"],  # 2 update
        ["d", "d@example.com", ""],  # 3 delete (lower case accepted)
        ["I", "i@example.com", "Again"],  # 4 E623: exists
        ["U", "ghost@example.com", "G"],  # 5 E622: missing
        ["D", "nobody@example.com", ""],  # 6 E622: missing
        ["X", "x@example.com", "?"],  # 7 E625
        ["", "x@example.com", "?"],  # 8 E625 (empty)
        ["U", "", "NoKey"],  # 9 E620
        ["U", "new@example.com", "Dup"],  # 10 E621: same key as row 1
    ]
    name, content = _content(fmt, rows)
    ex.put(name, content)
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    report = [(r["row"], r["error_code"]) for r in ex.failed(job, run["id"])]
    assert report == [
        ("4", "E623"),
        ("5", "E622"),
        ("6", "E622"),
        ("7", "E625"),
        ("8", "E625"),
        ("9", "E620"),
        ("10", "E621"),
    ]
    c = run["counts"]
    assert (c["read"], c["inserted"], c["updated"], c["deleted"], c["failed"]) == (10, 1, 1, 1, 7)
    people = ex.customers()
    assert sorted(people) == ["i@example.com", "new@example.com", "u@example.com", "x@example.com"]
    assert people["u@example.com"]["base"]["firstName"] == "Updated"
    assert people["i@example.com"]["base"]["firstName"] == "i"  # the failed insert changed nothing
    assert people["new@example.com"]["base"]["firstName"] == "New"
    ops = ex.journal_ops()
    assert [op for _, op in ops].count("DELETE") == 1


def test_updater_batches_commit_separately_and_count_every_row(ex: Ex) -> None:
    job = ex.job(
        "updater",
        mapping={"email": "base.contacts.email", "first": "base.firstName"},
        options={"operation_column": "op"},
        batch_size=3,
    )
    rows = [["I", f"p{i}@example.com", f"P{i}"] for i in range(7)] + [["D", "p0@example.com", ""]]
    ex.put("ops.csv", csv_text(HEADER, rows))
    run = ex.run_one(job)
    assert run["counts"]["inserted"] == 7 and run["counts"]["deleted"] == 0  # p0 seen twice: E621
    assert run["counts"]["failed"] == 1
    assert run["progress"] == 8
    assert len(ex.customers()) == 7
