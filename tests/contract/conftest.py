"""The ``harness`` fixture: every contract test runs once per provider setup listed here.

To add a provider, write ``harness_<provider>.py`` (see harness.py for the protocol) and add
its names to :data:`HARNESSES`. A setup that needs a server reports it with
``tests.conftest._missing`` (a skip locally, a failure under CI=true).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.contract import harness_constantcontact, harness_mailchimp, harness_sql
from tests.contract.harness import Harness

HarnessMaker = Callable[[str, pytest.FixtureRequest, Path], Iterator[Harness]]

HARNESSES: dict[str, HarnessMaker] = {
    "sql-sqlite": harness_sql.harness_for,
    "sql-sqlite-listing": harness_sql.harness_for,  # no updated_at / soft-delete column
    "sql-postgresql": harness_sql.harness_for,
    "sql-mariadb": harness_sql.harness_for,
    "constantcontact": harness_constantcontact.harness_for,
    "mailchimp": harness_mailchimp.harness_for,
}
_MARKS = {"sql-postgresql": [pytest.mark.postgres]}


@pytest.fixture(params=[pytest.param(name, marks=_MARKS.get(name, [])) for name in HARNESSES])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    yield from HARNESSES[request.param](request.param, request, tmp_path)
