"""CSV and XML codecs of the Data Exchange: round-trips, hostile files, and flat memory."""

from __future__ import annotations

import csv
import io
import resource
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.errors import InputError
from contactsync.exchange.codecs import (
    CsvFormat,
    FileRejected,
    InputRow,
    XmlFormat,
    format_from_options,
    neutralise,
    read_rows,
    write_rows,
)
from contactsync.settings import Settings

MB = 1024 * 1024


CSV = CsvFormat()


def rows_of(data: bytes, fmt: CsvFormat | XmlFormat = CSV) -> list[InputRow]:
    return list(read_rows(io.BytesIO(data), fmt))


def written(columns: list[str], rows: list[dict[str, Any]], fmt: CsvFormat | XmlFormat) -> bytes:
    out = io.BytesIO()
    assert write_rows(out, columns, rows, fmt) == len(rows)
    return out.getvalue()


class Generated(io.RawIOBase):
    """A file made on the fly from chunks: large inputs without holding them."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks: Iterator[bytes] = iter(chunks)
        self.pending = b""
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.served += n
        return n


def rss_mb() -> float:
    """The process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- round trips -----------------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12).filter(
    lambda n: not n[0].isdigit()
)
cells = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


@st.composite
def tables(draw: st.DrawFn, cell: st.SearchStrategy[str] = cells) -> tuple[list[str], list[dict[str, str]]]:
    columns = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    rows = draw(st.lists(st.fixed_dictionaries({c: cell for c in columns}), max_size=8))
    return columns, rows


@given(tables(), st.sampled_from([",", ";", "\t", "|"]), st.booleans())
@settings(max_examples=150, deadline=None)
def test_csv_round_trip(table: tuple[list[str], list[dict[str, str]]], delimiter: str, bom: bool) -> None:
    columns, rows = table
    fmt = CsvFormat(delimiter=delimiter, write_bom=bom)

    back = rows_of(written(columns, rows, fmt), fmt)

    assert [r.values for r in back] == [{c: neutralise(v) for c, v in row.items()} for row in rows]
    assert [r.number for r in back] == list(range(1, len(rows) + 1))
    for r in back:  # the raw text is a CSV line that reads back to the same values
        assert r.values is not None
        assert next(csv.reader(io.StringIO(r.raw, newline=""), delimiter=delimiter)) == list(
            r.values.values()
        )


latin1_cells = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=20)


@given(tables(latin1_cells))
@settings(max_examples=50, deadline=None)
def test_csv_round_trip_in_latin1_without_header(table: tuple[list[str], list[dict[str, str]]]) -> None:
    columns, rows = table
    fmt = CsvFormat(encoding="latin-1", header=False, columns=tuple(columns))
    data = written(columns, rows, fmt)
    back = rows_of(data, fmt)
    # a row of one empty cell is written as "" so that it is not a blank line
    assert [r.values for r in back] == [{c: neutralise(v) for c, v in row.items()} for row in rows]


xml_cells = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\ufffe\uffff").filter(
        lambda c: c in "\t\n\r" or ord(c) >= 0x20
    ),
    max_size=30,
)


@given(tables(xml_cells), st.sampled_from(["utf-8", "latin-1"]))
@settings(max_examples=100, deadline=None)
def test_xml_round_trip(table: tuple[list[str], list[dict[str, str]]], encoding: str) -> None:
    columns, rows = table
    fmt = XmlFormat(root_element="contacts", record_element="contact", encoding=encoding)

    back = rows_of(written(columns, rows, fmt), fmt)

    assert [r.values for r in back] == rows  # no neutralising in XML; characters the encoding
    assert [r.number for r in back] == list(range(1, len(rows) + 1))  # lacks are references


# -- CSV details -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["=SUM(A1:A9)", "+1", "-2", "@cmd", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    data = written(["email", "note"], [{"email": "a@example.com", "note": cell}], CsvFormat())
    assert rows_of(data)[0].values == {"email": "a@example.com", "note": "'" + cell}


def test_plain_cells_are_written_as_they_are() -> None:
    rows = [{"a": "x=1", "b": None, "c": 3, "d": True}, {"a": "'quoted", "c": 0.5}]
    assert written(["a", "b", "c", "d"], rows, CsvFormat()) == b"a,b,c,d\r\nx=1,,3,true\r\n'quoted,,0.5,\r\n"


def test_utf8_reads_with_and_without_bom() -> None:
    body = "email,name\nmario@example.com,Müller\n".encode()
    for data in (body, b"\xef\xbb\xbf" + body):
        assert [r.values for r in rows_of(data)] == [{"email": "mario@example.com", "name": "Müller"}]


def test_write_bom_and_latin1() -> None:
    rows = [{"name": "Müller"}]
    assert written(["name"], rows, CsvFormat(write_bom=True)) == "\ufeffname\r\nMüller\r\n".encode()
    data = written(["name"], rows, CsvFormat(encoding="latin-1"))
    assert data == "name\r\nMüller\r\n".encode("latin-1")
    assert rows_of(data, CsvFormat(encoding="latin-1"))[0].values == {"name": "Müller"}


def test_quoted_newlines_stay_in_their_field() -> None:
    data = b'email,address\r\na@example.com,"Via Roma 1\r\n20100 Milano"\r\nb@example.com,x\r\n'
    rows = rows_of(data)
    assert [r.values for r in rows] == [
        {"email": "a@example.com", "address": "Via Roma 1\r\n20100 Milano"},
        {"email": "b@example.com", "address": "x"},
    ]
    assert rows[0].raw == 'a@example.com,"Via Roma 1\r\n20100 Milano"'
    assert [r.number for r in rows] == [1, 2]


def test_malformed_rows_fail_alone() -> None:
    data = (
        b"email,name\na@example.com,A\nb@example.com\n"
        b'c@example.com,"C"x\nd@example.com,D,extra\ne@example.com,E\n'
    )
    rows = rows_of(data)
    assert [(r.number, r.problem.code if r.problem else None) for r in rows] == [
        (1, None),
        (2, "E604"),
        (3, "E604"),
        (4, "E604"),
        (5, None),
    ]
    assert [r.raw for r in rows if r.problem] == [
        "b@example.com",
        'c@example.com,"C"x',
        "d@example.com,D,extra",
    ]
    assert all(r.values is None for r in rows if r.problem)
    assert rows[1].problem is not None and "1 fields where the header has 2" in rows[1].problem.message


def test_mixed_encodings_fail_only_the_odd_rows() -> None:
    data = "email,name\na@example.com,Zoë\n".encode() + "b@example.com,Zoë\n".encode("latin-1")
    data += "c@example.com,Chloé\n".encode()
    rows = rows_of(data)
    assert [r.problem.code if r.problem else None for r in rows] == [None, "E605", None]
    assert rows[1].raw == "b@example.com,Zo\ufffd"
    assert rows[2].values == {"email": "c@example.com", "name": "Chloé"}


def test_hostile_csv_formulas_mixed_encodings_and_quoted_newlines() -> None:
    """One file with all three: formulas come in as text (and go out neutralised), the Latin-1
    row fails alone with its raw text for the report, the quoted newline stays in its field."""
    data = (
        b'email,name,note\r\n=HYPERLINK("http://evil.example"),x,y\r\n'
        + "b@example.com,Zoë,ok\r\n".encode("latin-1")
        + 'c@example.com,Chloé,"line 1\r\nline 2"\r\n'.encode()
    )
    rows = rows_of(data)
    assert [r.problem.code if r.problem else None for r in rows] == [None, "E605", None]
    assert rows[0].values == {"email": '=HYPERLINK("http://evil.example")', "name": "x", "note": "y"}
    assert rows[2].values == {"email": "c@example.com", "name": "Chloé", "note": "line 1\r\nline 2"}
    out = written(["email", "note"], [rows[0].values], CsvFormat())
    assert out == b'email,note\r\n"\'=HYPERLINK(""http://evil.example"")",y\r\n'


def test_blank_lines_are_ignored_and_numbers_are_stable() -> None:
    data = b"email\r\n\r\na@example.com\r\n\r\nb@example.com\r\n\r\n\r\n\n"
    rows = rows_of(data)
    assert [(r.number, r.values) for r in rows] == [
        (1, {"email": "a@example.com"}),
        (2, {"email": "b@example.com"}),
    ]
    assert rows_of(b"") == []
    assert rows_of(b"email\n") == []


def test_rows_without_header_take_the_configured_columns() -> None:
    fmt = CsvFormat(delimiter=";", header=False, columns=("email", "name"))
    assert [r.values for r in rows_of(b"a@example.com;A\n", fmt)] == [{"email": "a@example.com", "name": "A"}]


@pytest.mark.parametrize(
    "header", [b"email,email\n", b"email,,name\n", b'email,"name\n', "email,nämé\n".encode("latin-1")]
)
def test_a_broken_header_rejects_the_file(header: bytes) -> None:
    with pytest.raises(FileRejected) as e:
        rows_of(header + b"a@example.com,A\n")
    assert e.value.code == "E603"


def test_a_line_past_the_limit_rejects_the_file() -> None:
    data = b"email\na@example.com\n" + b"x" * 2000 + b"\nb@example.com\n"
    rows = read_rows(io.BytesIO(data), CsvFormat(max_line_bytes=1000))
    assert next(rows).values == {"email": "a@example.com"}
    with pytest.raises(FileRejected) as e:
        next(rows)
    assert e.value.code == "E601" and e.value.data == {"line": 3, "limit": 1000}


def test_an_unterminated_quote_cannot_swallow_the_file() -> None:
    body = b"".join(b"row%d,x\n" % i for i in range(200))
    with pytest.raises(FileRejected) as e:
        rows_of(b'email,name\na@example.com,"open\n' + body, CsvFormat(max_line_bytes=1000))
    assert e.value.code == "E601"
    rows = rows_of(b'email,name\na@example.com,"open\nrest,x\n')  # at the end: one malformed row
    assert [r.problem.code if r.problem else None for r in rows] == ["E604"]


def test_a_200_mb_line_without_newline_is_refused_in_flat_memory() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"email,name\na@example.com,A\nb@example.com,"
        block = b"B" * MB
        for _ in range(200):
            yield block

    source = Generated(chunks())
    before = peak_rss_mb()
    got: list[InputRow] = []
    with pytest.raises(FileRejected) as e:
        got.extend(read_rows(io.BufferedReader(source), CsvFormat(max_line_bytes=MB)))  # type: ignore[arg-type]
    assert e.value.code == "E601"
    assert [r.values for r in got] == [{"email": "a@example.com", "name": "A"}]
    assert source.served < 4 * MB  # refused at the limit, not after reading the line
    assert peak_rss_mb() - before < 64


@pytest.mark.slow  # large volume
def test_a_million_rows_stream_in_flat_memory() -> None:
    count = 1_000_000

    def chunks() -> Iterator[bytes]:
        yield b"email,name,city\n"
        for start in range(0, count, 10_000):
            yield b"".join(
                b'user%d@example.com,Name %d,"Town, %d"\n' % (i, i, i) for i in range(start, start + 10_000)
            )

    before = rss_mb()
    growth = 0.0
    seen = last = 0
    for row in read_rows(io.BufferedReader(Generated(chunks())), CsvFormat()):  # type: ignore[arg-type]
        seen += 1
        last = row.number
        if seen % 100_000 == 0:
            growth = max(growth, rss_mb() - before)
    assert seen == last == count
    assert row.values == {
        "email": f"user{count - 1}@example.com",
        "name": f"Name {count - 1}",
        "city": f"Town, {count - 1}",
    }
    assert growth < 64


# -- XML -------------------------------------------------------------------------------------------

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<records><record><email>&lol3;</email></record></records>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE records [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<records><record><email>&xxe;</email></record></records>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE records SYSTEM "http://example.com/records.dtd">
<records><record><email>a@example.com</email></record></records>"""


@pytest.mark.parametrize("data", [BOMB, EXTERNAL, DTD_ONLY], ids=["bomb", "external-entity", "dtd"])
def test_xml_with_dtd_or_entities_is_rejected(data: bytes) -> None:
    with pytest.raises(FileRejected) as e:
        rows_of(data, XmlFormat())
    assert e.value.code == "E602"


def test_xml_records_and_their_problems() -> None:
    data = b"""<?xml version="1.0" encoding="UTF-8"?>
<records>
  <!-- exported nightly -->
  <record><email>a@example.com</email><name>Zo\xc3\xab</name><empty/></record>
  <record><email>b@example.com</email><email>c@example.com</email></record>
  <record><email>d@example.com</email><address><city>Rome</city></address></record>
  <other>ignored</other>
  <record><email>e@example.com</email></record>
</records>"""
    rows = rows_of(data, XmlFormat())
    assert [(r.number, r.values, r.problem.code if r.problem else None) for r in rows] == [
        (1, {"email": "a@example.com", "name": "Zoë", "empty": ""}, None),
        (2, None, "E604"),
        (3, None, "E604"),
        (4, {"email": "e@example.com"}, None),
    ]
    assert rows[1].raw == "<record><email>b@example.com</email><email>c@example.com</email></record>"


def test_xml_declared_latin1_is_read_and_encoding_option_overrides() -> None:
    body = "<records><record><name>Zoë</name></record></records>"
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + body.encode("latin-1")
    assert rows_of(declared, XmlFormat())[0].values == {"name": "Zoë"}
    assert rows_of(body.encode("latin-1"), XmlFormat(encoding="latin-1"))[0].values == {"name": "Zoë"}


@pytest.mark.parametrize(
    "data",
    [
        b"<contacts><record><email>a</email></record></contacts>",
        b"<records><record><email>a</email></record>",
        b"<records><record><email>a</emial></record></records>",
        b"",
    ],
    ids=["other-root", "truncated", "mismatched", "empty"],
)
def test_broken_xml_is_rejected(data: bytes) -> None:
    with pytest.raises(FileRejected) as e:
        rows_of(data, XmlFormat())
    assert e.value.code == "E603"


def test_huge_xml_text_is_refused_in_flat_memory() -> None:
    def with_text_in(record: bool) -> Iterator[bytes]:
        yield b"<records><record><email>a@example.com</email></record>"
        yield b"<record><note>" if record else b"<!-- "
        block = b"x" * MB
        for _ in range(200):
            yield block

    for record in (True, False):
        source = Generated(with_text_in(record))
        before = peak_rss_mb()
        got: list[InputRow] = []
        with pytest.raises(FileRejected) as e:
            got.extend(read_rows(io.BufferedReader(source), XmlFormat(max_record_bytes=MB)))  # type: ignore[arg-type]
        assert e.value.code == "E601"
        assert [r.values for r in got] == [{"email": "a@example.com"}]
        assert source.served < 4 * MB
        assert peak_rss_mb() - before < 64


# -- options ---------------------------------------------------------------------------------------


def test_format_from_options() -> None:
    settings_ = Settings(exchange_max_line_bytes=4096)
    fmt = format_from_options(
        {"format": "csv", "delimiter": ";", "encoding": "latin-1", "columns": "email, name", "header": False},
        settings_,
    )
    assert fmt == CsvFormat(
        delimiter=";", encoding="latin-1", header=False, columns=("email", "name"), max_line_bytes=4096
    )
    assert format_from_options({"format": "xml", "record_element": "contact"}, settings_) == XmlFormat(
        record_element="contact", max_record_bytes=4096
    )


def test_bad_format_options_list_every_problem() -> None:
    with pytest.raises(InputError) as e:
        format_from_options(
            {"format": "csv", "delimiter": ";;", "encoding": "utf-16", "header": "yes", "colour": "red"},
            Settings(),
        )
    assert e.value.code == "E600"
    assert sorted(p.path for p in e.value.problems) == ["colour", "delimiter", "encoding", "header"]
    with pytest.raises(InputError):
        format_from_options({"format": "json"}, Settings())
    with pytest.raises(InputError):
        format_from_options({"format": "csv", "header": False}, Settings())  # columns needed
    with pytest.raises(InputError):
        format_from_options({"format": "xml", "record_element": "1bad"}, Settings())
