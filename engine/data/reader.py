"""The one reader of data files: the records of each file, and where each record is.

Formats: .jsonl (one JSON value a line), .json (a list of records, {"data": [records]}, or JSON
lines), .csv (a header row, then one record a row), .parquet, .txt (the whole file one record, or, as
the caller asks, each paragraph or each line). Where the files of a spec's source are (folders, globs,
saved and hub datasets) is locate.py's.

Records come with where they are, for messages: `data.jsonl, line 12` and `data.csv, line 3` (lines
as an editor counts them, from 1), `data.json, record 2 (line 9)`, `data.parquet, row 4` (records and
rows counted from 1), `notes.txt, paragraph 3 (line 9)`, or the .txt file itself; and a short id,
`data.jsonl:12`, `data.json:#1`, `data.parquet:#3` (`#n` counts from 0, as ids written by earlier runs
do).

Problems are `DataError`s that name the file, the line (or record, or row) and what to do. A broken
record — a .jsonl line that is not JSON, or JSON that no record can be: nested deeper than
MAX_DEPTH, a number too long to convert, an unpaired surrogate escape — goes to the caller's
`on_problem` when it gives one, so that it can skip the record and report it; without one it stops
the reading. A file that cannot be read on (bytes that are not UTF-8, a JSON array cut by a syntax
error, a damaged Parquet file) raises `UnreadableFile`, which a caller that reads many files may
catch to skip the file.

Light: the standard library only at import time (the GUI reads preference files with it); pyarrow
is imported by the functions that need it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.errors import DataError, first_line

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")
OnProblem = Callable[[str, str, str], None]  # (where, problem, hint) of one broken record
# Lists and objects inside one another that a record may have. Real records stay under ten levels;
# deeper ones are hostile or broken, and past ~1000 levels the JSON parser and everything that walks
# a value (json.dumps, pyarrow) run out of stack.
MAX_DEPTH = 100

_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_JSONL_HINT = "Each line of a .jsonl file must be one JSON object, e.g. {\"text\": \"...\"}."
_JSON_HINT = "A .json file must hold a list of records, or {\"data\": [records]}."
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a \uD800-\uDFFF escape in JSON text
_SURROGATE = re.compile("[\ud800-\udfff]")  # left unpaired after decoding: no character
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
BATCH = 1000  # rows a Parquet file or a dataset is read by


class UnreadableFile(DataError):
    """A file that cannot be read on from some point: the message says where and why."""

    def __init__(self, where: str, problem: str, hint: str):
        super().__init__(f"{where}: {problem}.", hint)
        self.where, self.problem = where, problem


@dataclass(frozen=True)
class Record:
    """One record of a source: its value (usually a dict of fields) and where it is."""

    value: Any
    source: str  # the file as the caller names it, a saved dataset's folder, or "hub dataset owner/name"
    unit: Literal["line", "record", "row", "file", "paragraph", "example"]
    number: int  # from 1
    line: int | None = None  # the line a JSON array's record or a paragraph starts on

    @property
    def position(self) -> str:
        """"line 12", "record 2 (line 9)", "row 4", "paragraph 3 (line 9)"; empty for a whole file."""
        if self.unit == "file":
            return ""
        return f"{self.unit} {self.number}" + (f" (line {self.line})" if self.line is not None else "")

    @property
    def where(self) -> str:
        return f"{self.source}, {self.position}" if self.position else self.source

    @property
    def place(self) -> str:
        """A short id: `name.jsonl:12` for a line, `name.json:#1` for a record, row or paragraph (from 0)."""
        name = Path(self.source).name
        if self.unit == "file":
            return name
        return f"{name}:{self.number}" if self.unit == "line" else f"{name}:#{self.number - 1}"


# -- decoding ---------------------------------------------------------------------------------------

class Decoding:
    """How a file's bytes become text: strict UTF-8 (a byte-order mark is dropped); other bytes make
    the file unreadable, named with their offset and line. The cleaning job's decoding repairs them
    instead (engine/cleaning/reader.py)."""

    def text(self, data: bytes, name: str) -> str:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _not_utf8(name, data[e.start], e.start, data.count(b"\n", 0, e.start) + 1) from None

    def line(self, raw: bytes, name: str, number: int, offset: int) -> str:
        """Line `number` (from 1) of a file, whose first byte is at `offset` in the file."""
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw, offset = raw[len(codecs.BOM_UTF8):], offset + len(codecs.BOM_UTF8)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(name, raw[e.start], offset + e.start, number) from None


def _not_utf8(name: str, byte: int, offset: int, line: int) -> UnreadableFile:
    return UnreadableFile(name, f"not UTF-8 text: undecodable byte 0x{byte:02x} at byte offset {offset} (line {line})",
                          f"Convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 {name} > "
                          f"{Path(name).stem}.utf8{Path(name).suffix}`.")


STRICT = Decoding()


def read_text(path: Path | str, source: str | None = None) -> str:
    """The text of a UTF-8 file (`source`: how messages name it; the path by default)."""
    return STRICT.text(Path(path).read_bytes(), source or str(path))


# -- the records of one file ------------------------------------------------------------------------

def iter_records(path: Path | str, *, source: str | None = None, on_problem: OnProblem | None = None,
                 decoding: Decoding = STRICT, columns: Sequence[str] | None = None,
                 text_field: str = "text",
                 txt_documents: Literal["file", "paragraph", "line"] = "file") -> Iterator[Record]:
    """The records of one data file, in order, read as they are needed (JSON lines, Parquet and the
    lines or paragraphs of a .txt file stream; other formats are parsed whole).

    `source` is how messages name the file (its path by default). `on_problem(where, problem,
    hint)` receives each broken record, which is then skipped; without it the first one raises
    DataError. `columns` reads only those of a Parquet file's columns (the others are left out of
    the records). A .txt file gives {text_field: text} records: the whole file as one
    (`txt_documents` "file"), or each paragraph (blank lines between them) or each line that holds
    any text ("paragraph", "line").
    """
    path = Path(path)
    name = source or str(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet(path, name, columns)
        return
    if suffix not in FILE_SUFFIXES:
        raise UnreadableFile(name, f"unsupported file type '{suffix or '(none)'}'", f"Use one of {' '.join(FILE_SUFFIXES)}.")
    if txt_documents not in ("file", "paragraph", "line"):
        raise ValueError(f"txt_documents is {txt_documents!r}")
    if suffix == ".jsonl" and not _starts_with(path, b"["):
        yield from _parsed_lines(_lines(path, name, decoding), name, on_problem)
        return
    if suffix == ".txt" and txt_documents != "file":
        yield from _txt_parts(_lines(path, name, decoding), name, text_field, txt_documents == "line")
        return
    text = decoding.text(path.read_bytes(), name)
    if suffix == ".txt":
        yield Record({text_field: text}, name, "file", 1)
    elif suffix == ".csv":
        yield from _csv(text, name)
    else:
        yield from _json(text, name, on_problem)


def read_records(path: Path | str, **options: Any) -> list[Record]:
    """Every record of one data file (the options of `iter_records`)."""
    return list(iter_records(path, **options))


def parquet_columns(path: Path | str, source: str | None = None) -> list[str]:
    """The column names of a Parquet file, read from its footer."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise _bad_parquet(source or str(path), e) from None


def parquet_table(path: Path | str, columns: Sequence[str] | None = None, source: str | None = None):
    """A Parquet file as a pyarrow Table (only `columns`, when given), for callers that keep the
    data in Arrow instead of Python records."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise _bad_parquet(source or str(path), e) from None


def _bad_parquet(name: str, error: BaseException) -> UnreadableFile:
    return UnreadableFile(name, f"not a readable Parquet file ({first_line(error)})",
                          "Check that the file was fully written, or export it again.")


def kind_of(value: Any) -> str:
    """What a JSON value is, in words for messages: "a text", "a number", "a list", "an object",
    "a boolean", "null"."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a text", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value)) or f"a {type(value).__name__}"


def _problem(on_problem: OnProblem | None, where: str, problem: str, hint: str) -> None:
    if on_problem is None:
        raise DataError(f"{where}: {problem}.", hint)
    on_problem(where, problem, hint)


def _starts_with(path: Path, first: bytes) -> bool:
    with path.open("rb") as f:
        head = f.read(4096)
    return head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(first)


def _lines(path: Path, name: str, decoding: Decoding) -> Iterator[tuple[int, str]]:
    """(number from 1, text) of each line of a file, decoded as they are read."""
    with path.open("rb") as f:
        if f.read(4).startswith(_WIDE_BOMS):  # UTF-16/32 cannot be split on b"\n": decode the whole file
            f.seek(0)
            yield from enumerate(decoding.text(f.read(), name).split("\n"), start=1)
            return
        f.seek(0)
        offset = 0
        for number, raw in enumerate(f, start=1):
            yield number, decoding.line(raw, name, number, offset)
            offset += len(raw)


def _txt_parts(lines: Iterable[tuple[int, str]], name: str, text_field: str, each_line: bool) -> Iterator[Record]:
    """The lines, or the paragraphs (runs of lines between blank ones), of a text file that hold text."""
    paragraph: list[str] = []
    start = count = 0  # the line the paragraph starts on; paragraphs so far
    for number, line in lines:
        line = line.rstrip("\r\n")
        if each_line:
            if line.strip():
                yield Record({text_field: line}, name, "line", number)
        elif line.strip():
            start = start or number
            paragraph.append(line)
        elif paragraph:
            count += 1
            yield Record({text_field: "\n".join(paragraph)}, name, "paragraph", count, start)
            paragraph, start = [], 0
    if paragraph:
        yield Record({text_field: "\n".join(paragraph)}, name, "paragraph", count + 1, start)


def _parsed_lines(lines: Iterable[tuple[int, str]], name: str, on_problem: OnProblem | None) -> Iterator[Record]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            value = _loads(line.rstrip("\r\n"))  # a cut string reads as unterminated, not as a control character
        except BrokenJSON as e:
            _problem(on_problem, f"{name}, line {number}", str(e), _JSONL_HINT if e.syntax else e.hint)
            continue
        yield Record(value, name, "line", number)


class BrokenJSON(ValueError):
    """JSON text that gives no record: a syntax error, or a value no record can be. The message is
    the problem, e.g. "not valid JSON (expecting value at column 3)"."""

    def __init__(self, problem: str, syntax: bool, hint: str = ""):
        super().__init__(problem)
        self.syntax = syntax  # a syntax error: where the value ends is not known
        self.hint = hint or "Fix or remove the record."


def json_error_text(error: json.JSONDecodeError, line: bool = False) -> str:
    """A JSON syntax error in words: "unterminated string starting at column 9"; with `line`,
    "unterminated string starting at line 3, column 9"."""
    what = error.msg[:1].lower() + error.msg[1:]
    place = f"line {error.lineno}, column {error.colno}" if line else f"column {error.colno}"
    return f"{what} {place}" if what.endswith(" at") else f"{what} at {place}"


def _loads(text: str) -> Any:
    """One JSON value (a .jsonl line); raises BrokenJSON."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BrokenJSON(f"not valid JSON ({json_error_text(e)})", syntax=True) from None
    except (RecursionError, ValueError) as e:
        raise _beyond_limits(e) from None
    _check_value(value, text)
    return value


def _beyond_limits(error: BaseException) -> BrokenJSON:
    """Valid JSON the parser cannot hold: nested past the stack, or an integer longer than Python
    converts (sys.get_int_max_str_digits, against quadratic-time conversions)."""
    if isinstance(error, RecursionError):
        return BrokenJSON(f"nested too deeply (more than {MAX_DEPTH} levels of lists and objects)", syntax=False,
                          hint=_DEEP_HINT)
    digits = re.search(r"has (\d+) digits", str(error))
    size = f"of {int(digits.group(1)):,} digits" if digits else "too long to read"
    return BrokenJSON(f"holds a number {size} (at most {sys.get_int_max_str_digits():,} digits are read)",
                      syntax=False, hint="Write such numbers as strings, or remove the record.")


_DEEP_HINT = f"Records may nest lists and objects at most {MAX_DEPTH} levels deep: flatten or remove the record."


def _check_value(value: Any, text: str | None = None) -> None:
    """Raise BrokenJSON for a value nested deeper than MAX_DEPTH or holding an unpaired surrogate.
    `text`, the JSON it was read from, lets most values skip the walk: fewer brackets than the
    limit cannot nest deeper, and no \\uD800-\\uDFFF escape gives no surrogate."""
    deep = text is None or text.count("[") + text.count("{") > MAX_DEPTH
    surrogates = text is None or ("\\u" in text and _SURROGATE_ESCAPE.search(text) is not None)
    if not (deep or surrogates):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates and _SURROGATE.search(item):
                raise _surrogate(item)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise BrokenJSON(f"nested too deeply (more than {MAX_DEPTH} levels of lists and objects)", syntax=False,
                             hint=_DEEP_HINT)
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def _surrogate(text: str) -> BrokenJSON:
    code = ord(_SURROGATE.search(text).group())
    return BrokenJSON(f"holds the escape \\u{code:04x}, half of a UTF-16 surrogate pair without its other half "
                      "(no character)", syntax=False,
                      hint="The program that wrote the file cut a character in two: write the file again, or "
                           "remove the record.")


def _json(text: str, name: str, on_problem: OnProblem | None) -> Iterator[Record]:
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return  # an empty file holds no records
    if text[start] == "[":
        yield from _array(text, start, name, on_problem)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one value a line: JSON lines under a .json name
            yield from _parsed_lines(enumerate(text.split("\n"), start=1), name, on_problem)
            return
        raise UnreadableFile(f"{name}, line {e.lineno}", f"not valid JSON ({json_error_text(e)})",
                             _JSON_HINT) from None
    except (RecursionError, ValueError) as e:
        broken = _beyond_limits(e)
        raise UnreadableFile(name, str(broken), broken.hint) from None
    if not (isinstance(data, dict) and isinstance(data.get("data"), list)):
        found = "an object without a \"data\" list" if isinstance(data, dict) else kind_of(data)
        raise UnreadableFile(name, f"expected a list of records or {{\"data\": [...]}}, found {found}",
                             "Write the records as a JSON list, or one record per line in a .jsonl file.")
    for i, value in enumerate(data["data"], start=1):
        try:
            _check_value(value)
        except BrokenJSON as e:
            _problem(on_problem, f"{name}, record {i}", str(e), e.hint)
            continue
        yield Record(value, name, "record", i)


def _array(text: str, start: int, name: str, on_problem: OnProblem | None) -> Iterator[Record]:
    """The elements of a JSON array, each with its number and the line it starts on. Parsed one
    element at a time, so that a syntax error is named with the record it is in, and a record that
    is valid JSON but no possible record is skipped alone."""
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")
    index = space.match(text, start + 1).end()
    number, line, counted = 0, 1 + text.count("\n", 0, start), start
    while index < len(text) and text[index] != "]":
        number += 1
        line, counted = line + text.count("\n", counted, index), index
        value, end, broken = None, None, None
        try:
            value, end = decoder.raw_decode(text, index)
            _check_value(value, text[index:end])
        except json.JSONDecodeError as e:
            raise UnreadableFile(name, f"not valid JSON in record {number}: {json_error_text(e, line=True)}",
                                 "Fix the JSON there (a missing comma or quote is the usual cause): the records of a "
                                 "JSON array cannot be read past a syntax error.") from None
        except (RecursionError, ValueError) as e:  # BrokenJSON included
            broken = e if isinstance(e, BrokenJSON) else _beyond_limits(e)
            if end is None:  # the parser gave up inside the value
                end = _value_end(text, index)
        if broken is None:
            yield Record(value, name, "record", number, line)
        else:
            _problem(on_problem, f"{name}, record {number} (line {line})", str(broken), broken.hint)
        index = space.match(text, end).end()
        if index < len(text) and text[index] == ",":
            index = space.match(text, index + 1).end()
        elif index >= len(text) or text[index] != "]":
            raise UnreadableFile(name, f"expected ',' or ']' after record {number}, at line "
                                       f"{line + text.count(chr(10), counted, index)}",
                                 "Fix the JSON array there.")
    if index >= len(text):
        raise UnreadableFile(name, f"the JSON array is not closed (no ']' after record {number})",
                             "The file may be cut short: check its end.")


def _value_end(text: str, index: int) -> int:
    """Where the JSON value starting at `index` ends, found without parsing it (the parser gave up on
    it: too deep, or a number too long): a number's last digit, or the bracket that closes the one
    it opens, strings skipped. The end of the text when it does not close."""
    if text[index] not in "[{":
        number = _NUMBER.match(text, index)
        return number.end() if number else index + 1
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text, index):
        token = match.group()  # a whole string, or one bracket
        if token == "[" or token == "{":
            depth += 1
        elif token == "]" or token == "}":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(text)


def _csv(text: str, name: str) -> Iterator[Record]:
    csv.field_size_limit(sys.maxsize)  # texts are often longer than the 128 KiB default
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield Record(row, name, "line", reader.line_num)
    except csv.Error as e:
        raise UnreadableFile(f"{name}, line {reader.line_num}", f"not valid CSV ({e})",
                             "Check the quoting on that line.") from None


def _parquet(path: Path, name: str, columns: Sequence[str] | None) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        present = parquet.schema_arrow.names
        batches = parquet.iter_batches(batch_size=BATCH, columns=None if columns is None else
                                       [c for c in columns if c in present])
        number = 0
        for batch in batches:
            data = batch.to_pydict()
            for i in range(batch.num_rows):
                number += 1
                yield Record({key: values[i] for key, values in data.items()}, name, "row", number)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise _bad_parquet(name, e) from None
