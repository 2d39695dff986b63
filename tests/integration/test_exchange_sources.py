"""Inputs and outputs beyond a local folder: a client database (SQLite, PostgreSQL, MariaDB) as
the importer's and updater's source, and a real OpenSSH SFTP server for the importer (input
moved to done/) and the displacer (output written atomically)."""

# ruff: noqa: F811 - test functions take the imported `ex` fixture as a parameter

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.conftest import CLIENT_DB, PG_URL, _missing
from tests.fixtures.sftp import SftpServer
from tests.integration.test_exchange_support import Ex, csv_text, ex  # noqa: F401 - the `ex` fixture

MAPPING = {"email": "base.contacts.email", "first_name": "base.firstName"}
MARIADB_URL = os.environ.get("CONTACTSYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _fill(url: str, table: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email VARCHAR(200), first_name VARCHAR(100),"
            " op VARCHAR(1))"
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} (id, email, first_name, op) VALUES (:i, :e, :f, :o)"),
            [
                {"i": 1, "e": "a@example.com", "f": "A", "o": "I"},
                {"i": 2, "e": "b@example.com", "f": "B", "o": "I"},
                {"i": 3, "e": "not-an-email", "f": "C", "o": "I"},
            ],
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def client_db(request: pytest.FixtureRequest, ex: Ex) -> Iterator[tuple[str, str]]:
    """(URL, table) of a client table with three rows (one with a bad email)."""
    table = f"client_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        url = f"sqlite:///{ex.root / 'client.db'}"
    elif request.param == "postgresql":
        url = PG_URL
    else:
        server = sa.create_engine(MARIADB_URL)
        try:
            with server.begin() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {CLIENT_DB}")
        except sa.exc.OperationalError:
            _missing("MariaDB at 127.0.0.1:3306")
        finally:
            server.dispose()
        url = f"{MARIADB_URL}/{CLIENT_DB}"
    _fill(url, table)
    yield url, table
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def test_importer_reads_a_client_table(ex: Ex, client_db: tuple[str, str]) -> None:
    url, table = client_db
    job = ex.job("importer", endpoint={"url": url, "table": table}, mapping=MAPPING)
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    assert (run["counts"]["read"], run["counts"]["inserted"], run["counts"]["failed"]) == (3, 2, 1)
    assert [(r["row"], r["error_code"]) for r in ex.failed(job, run["id"])] == [("3", "E201")]
    assert sorted(ex.customers()) == ["a@example.com", "b@example.com"]
    # a database has no checksum: the next run reads it again (nothing changed, nothing written)
    again = ex.run_one(job)
    assert (again["counts"]["unchanged"], again["counts"]["inserted"]) == (2, 0)


def test_updater_reads_a_client_query(ex: Ex, client_db: tuple[str, str]) -> None:
    url, table = client_db
    job = ex.job(
        "updater",
        endpoint={"url": url, "query": f"SELECT email, first_name, op FROM {table} ORDER BY id"},
        mapping=MAPPING,
        options={"operation_column": "op"},
    )
    run = ex.run_one(job)
    assert (run["counts"]["inserted"], run["counts"]["failed"]) == (2, 1)


def test_importer_from_sftp_moves_the_input_to_done(ex: Ex, sftp_server: SftpServer) -> None:
    (sftp_server.root / "contacts_20260101.csv").write_text(
        csv_text(["email", "first_name"], [["a@example.com", "A"], ["b@example.com", "B"]])
    )
    (sftp_server.root / "other.txt").write_text("not matched")
    job = ex.job(
        "importer",
        endpoint={
            "url": sftp_server.url(),
            "private_key": sftp_server.private_key,
            "known_hosts": sftp_server.known_hosts,
        },
        file="contacts_*.csv",
        mapping=MAPPING,
        failed_report_on_endpoint=True,
    )
    assert "PRIVATE KEY" not in str(job.as_json())
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    assert run["counts"]["inserted"] == 2
    assert (sftp_server.root / "done" / "contacts_20260101.csv").exists()
    assert not (sftp_server.root / "contacts_20260101.csv").exists()
    assert (sftp_server.root / "other.txt").exists()
    # a file with failed rows gets its report next to it on the server
    (sftp_server.root / "contacts_20260102.csv").write_text(csv_text(["email", "first_name"], [["bad", "X"]]))
    run = ex.run_one(job)
    report = sftp_server.root / "done" / "contacts_20260102.csv.failed.csv"
    assert [r["error_code"] for r in csv.DictReader(io.StringIO(report.read_text()))] == ["E201"]


def test_sftp_with_a_changed_host_key_is_refused(ex: Ex, sftp_server: SftpServer) -> None:
    (sftp_server.root / "a.csv").write_text(csv_text(["email", "first_name"], [["a@example.com", "A"]]))
    job = ex.job(
        "importer",
        endpoint={
            "url": sftp_server.url(),
            "private_key": sftp_server.private_key,
            "known_hosts": sftp_server.other_known_hosts(),
        },
        mapping=MAPPING,
    )
    run = ex.run_one(job)
    assert (run["status"], run["errorCode"]) == ("failed", "E613")
    assert ex.customers() == {}
    assert (sftp_server.root / "a.csv").exists()


def test_displacer_to_sftp(ex: Ex, sftp_server: SftpServer) -> None:
    from contactsync.hub.bulk import upsert_customers

    upsert_customers(
        ex.hub.db,
        ex.hub.workspace_id,
        ex.hub.node_id,
        [{"base": {"firstName": "+SUM(A1)", "contacts": {"email": f"p{i}@example.com"}}} for i in range(3)],
    )
    job = ex.job(
        "displacer",
        endpoint={
            "url": sftp_server.url(),
            "private_key": sftp_server.private_key,
            "known_hosts": sftp_server.known_hosts,
        },
        file="export.csv",
        format={"format": "csv", "write_bom": True},
        mapping={"email": "base.contacts.email", "first": "base.firstName"},
    )
    run = ex.run_one(job)
    assert run["status"] == "succeeded", run
    names = sorted(p.name for p in sftp_server.root.iterdir())
    assert names == ["export.csv"]  # no part file left behind
    raw = (sftp_server.root / "export.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [(r["email"], r["first"]) for r in rows] == [(f"p{i}@example.com", "'+SUM(A1)") for i in range(3)]
