"""File formats of the Data Exchange: CSV and XML, read and written as streams.

Reading never holds more than one record: CSV is split into physical lines with a length
limit (``max_line_bytes``) before any decoding, XML is parsed by defusedxml in 16 KB feeds
and each record is dropped once yielded. A problem with one record is a :class:`RowProblem`
on its :class:`InputRow` (the other rows go on); a problem with the file as a whole — a line
past the limit, a DTD or entity in XML, a broken header — raises :class:`FileRejected`.

A file can be rejected after some of its rows were yielded (the limit is found where the long
line is): a caller that must write nothing from a rejected file reads it once to check it, or
writes inside a transaction it can roll back.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from contactsync.errors import FieldProblem, InputError
from contactsync.settings import Settings, get_settings

DEFAULT_MAX_LINE_BYTES = 1_048_576
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# our own limit on a record's size is the one that counts: let the csv module hold any field
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class CsvFormat:
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"  # "utf-8" reads with or without a BOM
    write_bom: bool = False
    header: bool = True
    columns: tuple[str, ...] = ()  # the columns when header=False (required then), or the output order
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@dataclass(frozen=True)
class XmlFormat:
    root_element: str = "records"
    record_element: str = "record"  # each child element of a record is one field (tag -> text)
    encoding: str = "utf-8"
    max_record_bytes: int = DEFAULT_MAX_LINE_BYTES


Format = CsvFormat | XmlFormat


@dataclass
class RowProblem:
    code: str
    message: str


@dataclass
class InputRow:
    number: int  # 1-based data record number in the file (header not counted), stable across re-reads
    values: dict[str, str] | None  # column -> text; None when problem is set
    raw: str  # the record as it was in the file (CSV: its text; XML: the record element)
    problem: RowProblem | None = None


class FileRejected(InputError):
    """The whole file is refused: nothing from it may be written."""


# -- options -------------------------------------------------------------------------------------

_XML_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def format_from_options(options: Mapping[str, Any], settings: Settings | None = None) -> Format:
    """A format from a job's options: ``{"format": "csv" | "xml", <fields of the format>}``.

    ``max_line_bytes`` / ``max_record_bytes`` default to ``settings.exchange_max_line_bytes``.
    """
    limit = (settings or get_settings()).exchange_max_line_bytes
    kind = options.get("format", "csv")
    given = {k: v for k, v in options.items() if k != "format"}
    if kind == "csv":
        values, problems = _typed(CsvFormat, given)
        csv_format = CsvFormat(**{"max_line_bytes": limit, **values})
        _raise_problems(problems + csv_problems(csv_format))
        return csv_format
    if kind == "xml":
        values, problems = _typed(XmlFormat, given)
        xml_format = XmlFormat(**{"max_record_bytes": limit, **values})
        _raise_problems(problems + xml_problems(xml_format))
        return xml_format
    raise _bad_options([FieldProblem("format", f"is {kind!r}: use 'csv' or 'xml'", "E600")])


def _typed(
    cls: type[CsvFormat] | type[XmlFormat], given: Mapping[str, Any]
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The options that have the type of their field, and a problem for each other one."""
    known = {f.name: f for f in fields(cls)}
    problems = [
        FieldProblem(name, f"is not an option of the {cls.__name__[:3].lower()} format", "E600")
        for name in given
        if name not in known
    ]
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name not in known:
            continue
        default = known[name].default
        if name == "columns":
            if isinstance(value, str):
                value = [c.strip() for c in value.split(",") if c.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
                problems.append(FieldProblem(name, "must be a list of column names", "E600"))
                continue
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(FieldProblem(name, "must be true or false", "E600"))
                continue
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 64:
                problems.append(FieldProblem(name, "must be a whole number of bytes, at least 64", "E600"))
                continue
        elif not isinstance(value, str):
            problems.append(FieldProblem(name, "must be a string", "E600"))
            continue
        values[name] = value
    return values, problems


def csv_problems(fmt: CsvFormat) -> list[FieldProblem]:
    problems = _encoding_problems(fmt.encoding)
    for name in ("delimiter", "quotechar"):
        value = getattr(fmt, name)
        if len(value) != 1 or value in "\r\n":
            problems.append(FieldProblem(name, "must be one character, not a line break", "E600"))
    if fmt.delimiter == fmt.quotechar:
        problems.append(FieldProblem("quotechar", "must differ from the delimiter", "E600"))
    if not fmt.header and not fmt.columns:
        problems.append(FieldProblem("columns", "are required when the file has no header row", "E600"))
    if len(set(fmt.columns)) != len(fmt.columns):
        problems.append(FieldProblem("columns", "name a column twice", "E600"))
    if fmt.write_bom and not _is_utf8(fmt.encoding):
        problems.append(FieldProblem("write_bom", "a byte order mark is only written in UTF-8", "E600"))
    return problems


def xml_problems(fmt: XmlFormat) -> list[FieldProblem]:
    problems = _encoding_problems(fmt.encoding)
    for name in ("root_element", "record_element"):
        if not _XML_NAME.fullmatch(getattr(fmt, name)):
            problems.append(FieldProblem(name, "must be an XML element name such as 'records'", "E600"))
    return problems


def _encoding_problems(encoding: str) -> list[FieldProblem]:
    try:
        codecs.lookup(encoding)
        ascii_compatible = "\n,;\"'a".encode(encoding) == b"\n,;\"'a"
    except (LookupError, UnicodeError):
        return [FieldProblem("encoding", f"{encoding!r} is not a known encoding", "E600")]
    if not ascii_compatible:
        return [
            FieldProblem(
                "encoding", f"{encoding!r} is not ASCII-compatible (UTF-16/32 are not supported)", "E600"
            )
        ]
    return []


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _raise_problems(problems: list[FieldProblem]) -> None:
    if problems:
        raise _bad_options(problems)


def _bad_options(problems: list[FieldProblem]) -> InputError:
    first = problems[0]
    return InputError(f"file format option {first.path} {first.message}", code="E600", problems=problems)


# -- reading -------------------------------------------------------------------------------------


def read_rows(stream: BinaryIO, fmt: Format) -> Iterator[InputRow]:
    """The records of a file, one at a time (constant memory); raises FileRejected on a file
    that cannot be read as a whole."""
    if isinstance(fmt, CsvFormat):
        _raise_problems(csv_problems(fmt))
        return _read_csv(stream, fmt)
    _raise_problems(xml_problems(fmt))
    return _read_xml(stream, fmt)


class _CsvLines:
    """Physical lines of a CSV file, decoded, no longer than the limit; remembers the lines
    the csv reader took for the current record (its raw text) and whether one was not valid
    in the file's encoding."""

    def __init__(self, stream: BinaryIO, fmt: CsvFormat) -> None:
        self.stream = stream
        self.limit = fmt.max_line_bytes
        self.encoding = codecs.lookup(fmt.encoding).name
        self.first = True
        self.taken: list[str] = []
        self.taken_bytes = 0
        self.bad_line: int | None = None  # physical line number of the first undecodable line
        self.line_number = 0

    def __iter__(self) -> Iterator[str]:
        readline, limit = self.stream.readline, self.limit
        while True:
            line = readline(limit + 1)
            if not line:
                return
            self.line_number += 1
            self.taken_bytes += len(line)
            if self.taken_bytes > limit:
                what = "line" if len(self.taken) == 0 else "record (quoted line breaks included)"
                raise FileRejected(
                    f"line {self.line_number}: a {what} is longer than {limit} bytes; "
                    "nothing from this file is written",
                    code="E601",
                    data={"line": self.line_number, "limit": limit},
                )
            text = self._decode(line)
            self.taken.append(text)
            yield text

    def _decode(self, line: bytes) -> str:
        encoding = self.encoding
        if self.first:
            self.first = False
            if encoding == "utf-8":
                encoding = "utf-8-sig"
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            if self.bad_line is None:
                self.bad_line = self.line_number
            return line.decode(encoding, "replace")

    def take(self) -> tuple[str, int | None]:
        """The raw text of the record just parsed (without its final line break)."""
        raw = "".join(self.taken)
        bad = self.bad_line
        self.taken.clear()
        self.taken_bytes = 0
        self.bad_line = None
        return raw.removesuffix("\n").removesuffix("\r"), bad


def _read_csv(stream: BinaryIO, fmt: CsvFormat) -> Iterator[InputRow]:
    lines = _CsvLines(stream, fmt)
    reader = csv.reader(lines, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
    columns: list[str] | None = None if fmt.header else list(fmt.columns)
    number = 0
    while True:
        try:
            fields_ = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as e:
            fields_, error = [], str(e)
        raw, bad_line = lines.take()
        if not fields_ and error is None:
            continue  # a blank line
        if columns is None:
            columns = _header(fields_, error, bad_line, raw, fmt)
            continue
        number += 1
        problem = None
        if bad_line is not None:
            problem = RowProblem(
                "E605",
                f"line {bad_line} is not valid {fmt.encoding}: save the file in {fmt.encoding} "
                "or set the job's encoding to the file's",
            )
        elif error is not None:
            problem = RowProblem("E604", f"malformed row: {error}")
        elif len(fields_) != len(columns):
            problem = RowProblem(
                "E604", f"malformed row: {len(fields_)} fields where the header has {len(columns)}"
            )
        if problem is not None:
            yield InputRow(number, None, raw, problem)
        else:
            yield InputRow(number, dict(zip(columns, fields_, strict=True)), raw)


def _header(
    fields_: list[str], error: str | None, bad_line: int | None, raw: str, fmt: CsvFormat
) -> list[str]:
    names = [f.strip() for f in fields_]
    reason = None
    if bad_line is not None:
        reason = f"is not valid {fmt.encoding}"
    elif error is not None:
        reason = f"is malformed ({error})"
    elif any(not n for n in names):
        reason = "has an empty column name"
    elif len(set(names)) != len(names):
        reason = "names a column twice"
    if reason is not None:
        shown = raw if len(raw) <= 200 else raw[:197] + "..."
        raise FileRejected(f"the header row {reason}: {shown!r}", code="E603", data={"header": shown})
    return names


class _CountingReader:
    """What the XML parser reads, counted: refuses to feed more than ``limit`` bytes into one
    record, or between two things the reader was shown (a huge text, a comment ...)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.position = 0
        self.record_start: int | None = None
        self.last_event = 0

    def read(self, size: int = -1) -> bytes:
        in_record = self.record_start is not None and self.position - self.record_start > self.limit
        if in_record or self.position - self.last_event > self.limit:
            raise FileRejected(
                f"an XML {'record' if in_record else 'element'} near byte {self.position} is longer than "
                f"{self.limit} bytes; nothing from this file is written",
                code="E601",
                data={"byte": self.position, "limit": self.limit},
            )
        data = self.stream.read(size)
        self.position += len(data)
        return data


def _read_xml(stream: BinaryIO, fmt: XmlFormat) -> Iterator[InputRow]:
    source = _CountingReader(stream, fmt.max_record_bytes)
    # UTF-8 (the default) lets the file's own declaration decide; another encoding overrides it
    override = None if _is_utf8(fmt.encoding) else fmt.encoding
    parser = DefusedXMLParser(target=TreeBuilder(), encoding=override, forbid_dtd=True)
    depth = 0
    root: Element | None = None
    number = 0
    try:
        for event, elem in iterparse(source, events=("start", "end"), parser=parser):
            source.last_event = source.position
            if event == "start":
                depth += 1
                if depth == 1:
                    if elem.tag != fmt.root_element:
                        raise FileRejected(
                            f"the root element is <{elem.tag}>, the job expects <{fmt.root_element}>",
                            code="E603",
                        )
                    root = elem
                elif depth == 2 and elem.tag == fmt.record_element:
                    source.record_start = source.position
                continue
            depth -= 1
            if depth == 1 and root is not None:
                if elem.tag == fmt.record_element:
                    number += 1
                    yield _xml_row(number, elem)
                    source.record_start = None
                root.clear()  # drop what was read: memory stays flat
    except DefusedXmlException as e:
        raise FileRejected(
            f"the XML file declares a DTD or entities ({type(e).__name__}), which are refused for safety; "
            "nothing from this file is written",
            code="E602",
        ) from None
    except ParseError as e:
        raise FileRejected(
            f"the XML file is not well-formed: {e}; nothing from this file is written", code="E603"
        ) from None
    if root is None:
        raise FileRejected("the XML file is empty", code="E603")


def _xml_row(number: int, record: Element) -> InputRow:
    record.tail = None
    raw = tostring(record, encoding="unicode")
    values: dict[str, str] = {}
    for child in record:
        if not isinstance(child.tag, str):
            continue  # a comment or processing instruction
        if len(child):
            return InputRow(
                number, None, raw, RowProblem("E604", f"malformed record: <{child.tag}> has elements inside")
            )
        if child.tag in values:
            return InputRow(
                number, None, raw, RowProblem("E604", f"malformed record: <{child.tag}> appears twice")
            )
        values[child.tag] = child.text or ""
    return InputRow(number, values, raw)


# -- writing -------------------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): a leading apostrophe
    before ``= + - @``, TAB and CR."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def write_rows(
    stream: BinaryIO, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], fmt: Format
) -> int:
    """Write ``rows`` (missing keys and None are empty cells) and return how many were written.

    CSV cells are neutralised; characters the encoding cannot hold are written as ``?`` (CSV)
    or as character references (XML).
    """
    columns = list(columns or (fmt.columns if isinstance(fmt, CsvFormat) else ()))
    if isinstance(fmt, CsvFormat):
        _raise_problems(csv_problems(fmt))
        return _write_csv(stream, columns, rows, fmt)
    _raise_problems(xml_problems(fmt))
    bad = [c for c in columns if not _XML_NAME.fullmatch(c)]
    if bad:
        raise _bad_options(
            [FieldProblem("columns", f"{c!r} is not an XML element name", "E600") for c in bad]
        )
    return _write_xml(stream, columns, rows, fmt)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _write_csv(
    stream: BinaryIO, columns: list[str], rows: Iterable[Mapping[str, Any]], fmt: CsvFormat
) -> int:
    encoding = "utf-8-sig" if fmt.write_bom else fmt.encoding
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="", write_through=False)
    try:
        writer = csv.writer(text, delimiter=fmt.delimiter, quotechar=fmt.quotechar, lineterminator="\r\n")
        if fmt.header:
            writer.writerow(columns)
        count = 0
        for row in rows:
            writer.writerow([neutralise(_text(row.get(c))) for c in columns])
            count += 1
        text.flush()
    finally:
        text.detach()  # the caller owns and closes the stream
    return count


_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: Any) -> str:
    return _XML_ILLEGAL.sub("\ufffd", _text(value)).translate(_XML_ESCAPES)


def _write_xml(
    stream: BinaryIO, columns: list[str], rows: Iterable[Mapping[str, Any]], fmt: XmlFormat
) -> int:
    text = io.TextIOWrapper(stream, encoding=fmt.encoding, errors="xmlcharrefreplace", newline="")
    try:
        text.write(f'<?xml version="1.0" encoding="{codecs.lookup(fmt.encoding).name}"?>\n')
        text.write(f"<{fmt.root_element}>\n")
        open_, close = f"  <{fmt.record_element}>", f"</{fmt.record_element}>\n"
        count = 0
        for row in rows:
            cells = "".join(f"<{c}>{_xml_text(row.get(c))}</{c}>" for c in columns)
            text.write(f"{open_}{cells}{close}")
            count += 1
        text.write(f"</{fmt.root_element}>\n")
        text.flush()
    finally:
        text.detach()
    return count
