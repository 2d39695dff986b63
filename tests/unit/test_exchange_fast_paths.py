"""The importer's fast paths against the slow ones they replace.

* The chunked CSV reader (``codecs._CsvChunks``) against a line-by-line reference reader
  (the reader it replaced): same rows, numbers, raw texts and problems, and the same file
  rejections after the same rows, for any bytes, chunk size and line limit.
* ``check_csv`` (the importer's check without parsing every row) refuses exactly the files
  that reading them whole refuses, and counts the same rows.
* ``bulk.plain_doc`` (the document of a plain mapped record) is the document that
  ``parse_plain`` / the full validation path builds, or declines.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.errors import InputError
from contactsync.exchange import codecs as exchange_codecs
from contactsync.exchange.codecs import CsvFormat, FileRejected, InputRow, RowProblem, check_csv, read_rows
from contactsync.hub.bulk import is_plain_property, plain_doc
from contactsync.hub.document import parse_customer
from contactsync.hub.schema import EMPTY_EXTENDED_SCHEMA

# -- the reference reader: one physical line at a time -------------------------------------------


def reference_rows(data: bytes, fmt: CsvFormat) -> Iterator[InputRow]:
    stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    limit = fmt.max_line_bytes
    encoding = codecs.lookup(fmt.encoding).name
    taken: list[str] = []
    state = {"bytes": 0, "bad": None, "line": 0, "first": True}

    def lines() -> Iterator[str]:
        while line := stream.readline(limit + 1):
            state["line"] += 1
            state["bytes"] += len(line)
            if state["bytes"] > limit:
                raise FileRejected("too long", code="E601", data={"line": state["line"], "limit": limit})
            codec = encoding
            if state["first"]:
                state["first"] = False
                codec = "utf-8-sig" if encoding == "utf-8" else encoding
            try:
                text = line.decode(codec)
            except UnicodeDecodeError:
                state["bad"] = state["bad"] or state["line"]
                text = line.decode(codec, "replace")
            taken.append(text)
            yield text

    reader = csv.reader(lines(), delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
    columns: list[str] | None = None if fmt.header else list(fmt.columns)
    number = 0
    while True:
        try:
            fields: list[str] = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as e:
            fields, error = [], str(e)
        raw = "".join(taken).removesuffix("\n").removesuffix("\r")
        bad = state["bad"]
        taken.clear()
        state["bytes"], state["bad"] = 0, None
        if not fields and error is None:
            continue
        if columns is None:
            columns = exchange_codecs._header(fields, error, bad, raw, fmt)  # type: ignore[arg-type]
            continue
        number += 1
        if bad is not None:
            yield InputRow(number, None, raw, RowProblem("E605", f"line {bad}"))
        elif error is not None:
            yield InputRow(number, None, raw, RowProblem("E604", f"malformed row: {error}"))
        elif len(fields) != len(columns):
            yield InputRow(number, None, raw, RowProblem("E604", "width"))
        else:
            yield InputRow(number, dict(zip(columns, fields, strict=True)), raw)


def outcome(rows: Iterator[InputRow]) -> tuple[list[tuple[Any, ...]], tuple[str, Any] | None]:
    """The rows read (problems by code) and the rejection that stopped the reading, if any."""
    got: list[tuple[Any, ...]] = []
    try:
        for r in rows:
            got.append((r.number, r.values, r.raw, r.problem.code if r.problem else None))
    except FileRejected as e:
        return got, (e.code, e.data if e.code == "E601" else None)
    return got, None


PIECES = [
    b"a",
    b"bc",
    b",",
    b'"',
    b'""',
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"x" * 9,
    b"\xff",
    "é".encode(),
    b"\n\n",
]
files = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)
headers = st.sampled_from([b"h1,h2\n", b'"h1",h2\r\n', b"\xef\xbb\xbfh1,h2\n", b"h1\n", b"", b'"h\n1",h2\n'])
FAST = settings(database=None, max_examples=1500, deadline=None)


@given(headers, files, st.integers(1, 40), st.integers(8, 48), st.booleans())
@FAST
def test_chunked_reader_reads_what_the_line_reader_reads(
    header: bytes, body: bytes, read_size: int, limit: int, has_header: bool
) -> None:
    data = header + body
    fmt = CsvFormat(max_line_bytes=limit, header=has_header, columns=() if has_header else ("h1", "h2"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exchange_codecs, "READ_SIZE", read_size)
        fast = outcome(read_rows(io.BytesIO(data), fmt))
    slow = outcome(reference_rows(data, fmt))
    if slow[1] is not None and slow[1][0] == "E603":  # the header's message is the codec's own
        assert fast[1] is not None and fast[1][0] == "E603"
        return
    assert fast == slow


def check_outcome(data: bytes, fmt: CsvFormat) -> tuple[str, Any] | tuple[list[str], int]:
    try:
        checked = check_csv(io.BytesIO(data), fmt)
    except FileRejected as e:
        return e.code, e.data if e.code == "E601" else None
    return checked.columns, checked.rows


@given(headers, files, st.integers(1, 40), st.integers(8, 48))
@FAST
def test_check_csv_refuses_what_reading_refuses(
    header: bytes, body: bytes, read_size: int, limit: int
) -> None:
    data = header + body
    fmt = CsvFormat(max_line_bytes=limit)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exchange_codecs, "READ_SIZE", read_size)
        checked = check_outcome(data, fmt)
    rows, rejected = outcome(reference_rows(data, fmt))
    if rejected is not None:
        assert checked[0] == rejected[0]
        if rejected[0] == "E601":
            assert checked[1] == rejected[1]
        return
    columns, count = checked
    assert isinstance(columns, list) and count == len(rows)
    readable = [values for _, values, _, _ in rows if values is not None]
    if readable:
        assert columns == list(readable[0])


def test_check_csv_skips_plain_chunks_but_measures_quoted_records() -> None:
    rows = b"".join(b"user%d@example.com,Name %d\n" % (i, i) for i in range(50_000))
    quoted = b'late@example.com,"a\n' + b"b" * 990 + b'\nc"\n'
    fmt = CsvFormat(max_line_bytes=1000)
    assert check_csv(io.BytesIO(b"email,name\n" + rows), fmt).rows == 50_000
    with pytest.raises(FileRejected) as e:  # a record over three lines, past the limit together
        check_csv(io.BytesIO(b"email,name\n" + rows + quoted), fmt)
    assert e.value.code == "E601" and e.value.data == {"line": 50_003, "limit": 1000}
    with pytest.raises(FileRejected) as e:
        check_csv(io.BytesIO(b"email,name\n" + rows + b"x" * 2000 + b"\n"), fmt)
    assert e.value.data == {"line": 50_002, "limit": 1000}


def test_a_quoted_record_across_chunks_reads_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_codecs, "READ_SIZE", 64)
    data = b"email,note\n" + b"a@example.com,x\n" * 10 + b'b@example.com,"' + b"line\n" * 30 + b'end"\n'
    rows = list(read_rows(io.BytesIO(data), CsvFormat()))
    assert [r.number for r in rows] == list(range(1, 12))
    assert rows[-1].values == {"email": "b@example.com", "note": "line\n" * 30 + "end"}
    assert rows[-1].raw == 'b@example.com,"' + "line\n" * 30 + 'end"'


# -- plain documents ------------------------------------------------------------------------------

PLAIN = [
    "externalId",
    "base.firstName",
    "base.lastName",
    "base.title",
    "base.contacts.email",
    "base.contacts.mobilePhone",
    "base.address.city",
    "base.address.zip",
    "tags.manual",
]
texts = st.one_of(
    st.sampled_from(["a@b.it", " A@B.IT ", "broken", "null", "x" * 256, "é", "\x00", "Ada"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
)


@st.composite
def plain_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PLAIN), min_size=1, unique=True)):
        value: Any = draw(texts)
        if path.startswith("tags."):
            value = draw(st.lists(texts, max_size=3))
        parts = path.split(".")
        node = record
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return record


def test_plain_properties() -> None:
    assert all(is_plain_property(p) for p in PLAIN)
    for path in ("extended.points", "consents.x", "base.contacts", "base.subscriptions", "tags.other", "x"):
        assert not is_plain_property(path)


@pytest.mark.slow  # 1,500 generated records
@given(plain_records())
@settings(database=None, max_examples=1500, deadline=None)
def test_plain_doc_is_the_parsed_document(record: dict[str, Any]) -> None:
    import copy

    bound = sum(len(str(v)) for v in _leaves(record))
    doc = plain_doc(copy.deepcopy(record), bound)
    if doc is None:
        return  # declined: the record is parsed as any other
    try:
        parsed = parse_customer(record, EMPTY_EXTENDED_SCHEMA)
    except InputError:
        raise AssertionError(f"plain_doc took a record the hub refuses: {record!r}") from None
    assert (doc.external_id, doc.enabled, doc.data, doc.subscriptions) == (
        parsed.external_id,
        parsed.enabled,
        parsed.data,
        parsed.subscriptions,
    )
    assert doc.content_json() == parsed.content_json()


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_plain_doc_takes_ordinary_rows_and_declines_bad_emails() -> None:
    record = {"base": {"contacts": {"email": " Ada@Example.COM "}, "firstName": "Ada"}, "externalId": "c1"}
    doc = plain_doc(record, 40)
    assert doc is not None and doc.data["base"]["contacts"]["email"] == "ada@example.com"
    assert plain_doc({"base": {"contacts": {"email": "broken"}}}, 10) is None
    assert plain_doc({"externalId": "only"}, 10) is None  # no base: parse_plain decides
    assert plain_doc({"base": {"firstName": "x"}}, 20_000) is None  # might be too large
