"""What the importer and the updater share: the check pass over an input and row batching.

Before anything is written, an input is checked whole: a file the codec rejects as a whole
(a line past the limit, an XML bomb …) or that lacks a mapped column is refused with nothing
written, and the check counts the rows (the progress bar's total) and, when asked, collects
the matching keys of every row (an overwrite import's "present" set).

The check reads the input once through (:func:`scan`), except for a CSV file when no keys
are needed: its header and its lines' lengths are all a CSV file can be refused for, and
:func:`contactsync.exchange.codecs.check_csv` finds those without parsing every row (the
input's ``precheck``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from contactsync.exchange.codecs import CsvCheck, FileRejected, InputRow
from contactsync.exchange.ledger import FailedRow
from contactsync.exchange.mapping import Mapper

Rows = Callable[[], Iterator[InputRow]]  # opens the input again at each call
Precheck = Callable[[], CsvCheck]  # the cheaper whole-file check of a CSV input


def chunks(rows: Iterable[InputRow], size: int) -> Iterator[list[InputRow]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class Scan:
    rows: int = 0
    keys: set[int] = field(default_factory=set)  # hash() of each row's matching key (when collected)
    unreadable: int = 0  # rows the codec could not read: their customers are unknown
    columns: list[str] = field(default_factory=list)  # the input's columns (of its first readable row)


def check(
    rows: Rows, precheck: Precheck | None, mapper: Mapper, required: Sequence[str], *, collect_keys: bool
) -> Scan:
    """The check of an input before anything is written (see the module's documentation)."""
    if precheck is None or collect_keys:
        return scan(rows(), mapper, required, collect_keys=collect_keys)
    checked = precheck()
    out = Scan(rows=checked.rows)
    if checked.rows:  # as scan: the columns of a file with rows
        out.columns = checked.columns
        _require(checked.columns, required)
    return out


def _require(columns: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise FileRejected(
            f"the file has no column {', '.join(repr(c) for c in missing)}, which the job's mapping "
            f"names (its columns: {', '.join(columns)}); nothing from it was imported",
            code="E635",
            data={"missing": missing},
        )


def scan(rows: Iterator[InputRow], mapper: Mapper, required: Sequence[str], *, collect_keys: bool) -> Scan:
    """Read the whole input once; FileRejected when it cannot be imported as a whole."""
    out = Scan()
    checked = False
    for row in rows:
        out.rows += 1
        if row.values is None:
            out.unreadable += 1
            continue
        if not checked:
            out.columns = list(row.values)
            _require(out.columns, required)
            checked = True
        if collect_keys:
            key = mapper.key(row.values)
            if key is None:
                out.unreadable += 1
            else:
                out.keys.add(hash(key))
    return out


@dataclass
class Pending:
    """What the rows between two written records amount to: it is committed with the next one."""

    read: int = 0
    skipped: int = 0
    failed: list[FailedRow] = field(default_factory=list)

    def fail(self, row: InputRow, code: str, message: str) -> None:
        self.failed.append(FailedRow(row.number, code, message, row.raw))
