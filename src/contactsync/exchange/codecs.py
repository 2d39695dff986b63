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
from itertools import islice
from typing import Any, BinaryIO, NoReturn
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


#: bytes read from a CSV file at a time; each chunk is cut after its last line break
READ_SIZE = 256 * 1024
_END_OF_DATA = "unexpected end of data"  # the csv module's error for a record its input cut short
_BLANK_LINE = re.compile(rb"^\r*$", re.MULTILINE)  # a line the csv module reads as no record

#: one record of a CSV file: its fields, the csv module's error (or None), its raw text (without
#: the final line break), the physical line number of its first line not valid in the encoding
_Record = tuple[list[str], str | None, str, int | None]


class _CsvChunks:
    """A CSV file read as chunks of whole lines, each parsed by the csv module at C speed.

    A record is one line of its chunk (its raw text is that line, no copy) unless a quoted
    field holds a line break; one that the end of a chunk cuts short starts the next chunk.
    Every record is checked against the length limit (quoted line breaks included, in bytes
    of the file) before anything after it is handed on, and no more than about the limit plus
    a chunk is held, however long a line is.
    """

    def __init__(self, stream: BinaryIO, fmt: CsvFormat) -> None:
        self.stream = stream
        self.fmt = fmt
        self.limit = fmt.max_line_bytes
        self.encoding = codecs.lookup(fmt.encoding).name
        self.quote = fmt.quotechar.encode(self.encoding)
        self.buffer = b""
        self.keep = 0  # bytes at the buffer's start that must not be a chunk alone (a cut record)
        self.at_start = True  # the buffer starts at the file's first byte (a BOM may be there)
        self.eof = False
        self.line_base = 0  # physical lines before the buffer

    # -- chunks --------------------------------------------------------------------------------

    def chunks(self) -> Iterator[tuple[bytes, int | None]]:
        """Chunks of whole lines (the file's last line may be unterminated), each with the index
        of its first line past the limit; E601 as soon as a line grows past the limit before
        its line break is read."""
        while True:
            buffer = self.buffer
            while not self.eof:
                cut = buffer.rfind(b"\n")
                if cut >= self.keep and len(buffer) >= READ_SIZE:
                    break
                if len(buffer) - (cut + 1) > self.limit:  # the line after the last break
                    if cut >= self.keep:
                        break  # the lines before it first
                    self._reject(self.line_base + buffer.count(b"\n") + 1, record=False)
                data = self.stream.read(READ_SIZE)
                if not data:
                    self.eof = True
                buffer += data
            if not buffer:
                return
            cut = len(buffer) if self.eof else buffer.rfind(b"\n") + 1
            chunk, self.buffer, self.keep = buffer[:cut], buffer[cut:], 0
            yield chunk, (self._first_long_line(chunk) if len(chunk) > self.limit else None)

    def _first_long_line(self, chunk: bytes) -> int | None:
        """The index of the chunk's first line longer than the limit with its line break."""
        limit = self.limit
        lines = chunk.split(b"\n")
        last = len(lines) - 1
        for i, line in enumerate(lines):
            if len(line) + (i < last) > limit:
                return i
        return None

    def _reject(self, line: int, *, record: bool) -> NoReturn:
        what = "record (quoted line breaks included)" if record else "line"
        raise FileRejected(
            f"line {line}: a {what} is longer than {self.limit} bytes; nothing from this file is written",
            code="E601",
            data={"line": line, "limit": self.limit},
        )

    def _decode(self, chunk: bytes) -> tuple[str, set[int]]:
        """The chunk's text and the indexes of its lines that are not valid in the encoding."""
        encoding = self.encoding
        first = "utf-8-sig" if self.at_start and encoding == "utf-8" else encoding
        try:
            return chunk.decode(first), set()
        except UnicodeDecodeError:
            pass
        bad: set[int] = set()
        texts = []
        for i, line in enumerate(chunk.split(b"\n")):
            codec = first if i == 0 else encoding
            try:
                texts.append(line.decode(codec))
            except UnicodeDecodeError:
                bad.add(i)
                texts.append(line.decode(codec, "replace"))
        return "\n".join(texts), bad

    # -- records -------------------------------------------------------------------------------

    def records(self) -> Iterator[_Record]:
        for chunk, too_long in self.chunks():
            yield from self.parse(chunk, too_long)

    def parse(self, chunk: bytes, too_long: int | None) -> Iterator[_Record]:
        """The records of a chunk; one that its end cuts short goes back to the buffer."""
        fmt, limit, base = self.fmt, self.limit, self.line_base
        text, bad = self._decode(chunk)
        lines = text.split("\n")
        count = len(lines) - 1 if text.endswith("\n") else len(lines)  # physical lines
        final = self.eof and not self.buffer
        reader = csv.reader(
            io.StringIO(text, newline="\n"), delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True
        )
        offsets: list[int] | None = None  # byte offset of each line, for records over several
        done = 0  # lines of the chunk read so far
        while done < count:
            try:
                fields = next(reader)
                error = None
            except StopIteration:
                break
            except csv.Error as e:
                fields, error = [], str(e)
            end = reader.line_num
            if end - done > 1 or error is not None or (too_long is not None and end > too_long):
                if offsets is None:
                    offsets = [0]
                    for line in chunk.split(b"\n"):
                        offsets.append(offsets[-1] + len(line) + 1)
                    offsets[-1] = len(chunk)  # no line break after the last line
                for i in range(done, end):
                    if min(offsets[i + 1], len(chunk)) - offsets[done] > limit:
                        self._reject(base + i + 1, record=i > done)
                if error == _END_OF_DATA and end >= count and not final:
                    # the chunk ends inside this record: it starts the next chunk
                    self.buffer = chunk[offsets[done] :] + self.buffer
                    self.keep = len(chunk) - offsets[done]
                    self.line_base = base + done
                    self.at_start = self.at_start and done == 0
                    return
                raw = "\n".join(lines[done:end])
            else:
                raw = lines[done]
            if raw.endswith("\r"):
                raw = raw[:-1]
            bad_line = None
            if bad:
                bad_line = next((base + i + 1 for i in range(done, end) if i in bad), None)
            done = end
            yield fields, error, raw, bad_line
        self.line_base = base + count
        self.at_start = False

    def skim(self) -> Iterator[_Record | int]:
        """:meth:`records`, except that a chunk without a quote character (after the header) is
        not parsed: it has one record per line, so checking its lines against the limit is
        enough, and the number of its records stands for them (what :func:`check_csv` needs)."""
        header = self.fmt.header  # its record is still to come: parse until it is read
        for chunk, too_long in self.chunks():
            if header or self.quote in chunk:
                for record in self.parse(chunk, too_long):
                    header = header and not (record[0] or record[1] is not None)
                    yield record
                continue
            if too_long is not None:
                self._reject(self.line_base + too_long + 1, record=False)
            lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            self.line_base += lines
            self.at_start = False
            # the pattern also matches after the chunk's final line break
            yield lines - len(_BLANK_LINE.findall(chunk)) + chunk.endswith(b"\n")


def _read_csv(stream: BinaryIO, fmt: CsvFormat) -> Iterator[InputRow]:
    columns: list[str] | None = None if fmt.header else list(fmt.columns)
    width = len(columns) if columns is not None else 0
    number = 0
    for fields_, error, raw, bad_line in _CsvChunks(stream, fmt).records():
        if not fields_ and error is None:
            continue  # a blank line
        if columns is None:
            columns = _header(fields_, error, bad_line, raw, fmt)
            width = len(columns)
            continue
        number += 1
        if bad_line is None and error is None and len(fields_) == width:
            yield InputRow(number, dict(zip(columns, fields_, strict=True)), raw)
            continue
        if bad_line is not None:
            problem = RowProblem(
                "E605",
                f"line {bad_line} is not valid {fmt.encoding}: save the file in {fmt.encoding} "
                "or set the job's encoding to the file's",
            )
        elif error is not None:
            problem = RowProblem("E604", f"malformed row: {error}")
        else:
            problem = RowProblem("E604", f"malformed row: {len(fields_)} fields where the header has {width}")
        yield InputRow(number, None, raw, problem)


@dataclass
class CsvCheck:
    columns: list[str]  # the header's (or the format's) columns
    rows: int  # records after the header, blank lines not counted


def check_csv(stream: BinaryIO, fmt: CsvFormat) -> CsvCheck:
    """What reading the whole file would refuse, found without parsing every row: a header the
    file cannot be read with (E603), a line or record past the limit (E601), as FileRejected.

    A chunk of the file without a quote character has one record per line: its lines are
    checked against the limit at the speed of a byte search. The others are parsed as
    :func:`read_rows` parses them, so that records over several lines are measured whole.
    """
    _raise_problems(csv_problems(fmt))
    columns: list[str] | None = None if fmt.header else list(fmt.columns)
    rows = 0
    for record in _CsvChunks(stream, fmt).skim():
        if isinstance(record, int):
            rows += record
            continue
        fields_, error, raw, bad_line = record
        if not fields_ and error is None:
            continue
        if columns is None:
            columns = _header(fields_, error, bad_line, raw, fmt)
            continue
        rows += 1
    return CsvCheck(columns or [], rows)


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


#: a row to write: column → value, or the values in the order of the columns
OutputRow = Mapping[str, Any] | Sequence[Any]


def write_rows(stream: BinaryIO, columns: Sequence[str], rows: Iterable[OutputRow], fmt: Format) -> int:
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


def _csv_cell(value: Any) -> str:
    """``neutralise(_text(value))``, the common case first."""
    if type(value) is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return neutralise(_text(value))


def _values(columns: list[str], row: OutputRow) -> Sequence[Any]:
    return [row.get(c) for c in columns] if isinstance(row, Mapping) else row


def _write_csv(stream: BinaryIO, columns: list[str], rows: Iterable[OutputRow], fmt: CsvFormat) -> int:
    encoding = "utf-8-sig" if fmt.write_bom else fmt.encoding
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="", write_through=False)
    try:
        writer = csv.writer(text, delimiter=fmt.delimiter, quotechar=fmt.quotechar, lineterminator="\r\n")
        if fmt.header:
            writer.writerow(columns)
        count = 0
        it = iter(rows)
        while chunk := list(islice(it, 1000)):
            writer.writerows([list(map(_csv_cell, _values(columns, row))) for row in chunk])
            count += len(chunk)
        text.flush()
    finally:
        text.detach()  # the caller owns and closes the stream
    return count


_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: Any) -> str:
    return _XML_ILLEGAL.sub("\ufffd", _text(value)).translate(_XML_ESCAPES)


def _write_xml(stream: BinaryIO, columns: list[str], rows: Iterable[OutputRow], fmt: XmlFormat) -> int:
    text = io.TextIOWrapper(stream, encoding=fmt.encoding, errors="xmlcharrefreplace", newline="")
    try:
        text.write(f'<?xml version="1.0" encoding="{codecs.lookup(fmt.encoding).name}"?>\n')
        text.write(f"<{fmt.root_element}>\n")
        open_, close = f"  <{fmt.record_element}>", f"</{fmt.record_element}>\n"
        count = 0
        for row in rows:
            cells = "".join(
                f"<{c}>{_xml_text(v)}</{c}>" for c, v in zip(columns, _values(columns, row), strict=True)
            )
            text.write(f"{open_}{cells}{close}")
            count += 1
        text.write(f"</{fmt.root_element}>\n")
        text.flush()
    finally:
        text.detach()
    return count
