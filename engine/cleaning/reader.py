"""Stream the documents of a clean job's input, one at a time, with an id and where each came from.

Unlike a training corpus (engine/data/sources.py, loaded into memory and stopped at the first bad
record), a clean job's input may not fit in memory and may be dirty. Its files are read by the one
reader of data files (engine/data/reader.py), line by line or batch by batch, with a decoding that
repairs each piece instead of refusing it (mixed encodings in one file are common in scraped data);
broken records go to `Problems`, which skips them or stops the run as `input.on_bad_record` says.

Document ids: the record's `input.id_field` when set, else its place: `file.jsonl:12` (line 12),
`file.csv:12` (line), `file.parquet:#3` (row, from 0), `file.json:#3` (record, from 0),
`file.txt` (or, as input.txt_documents says, `file.txt:12` for line 12 and `file.txt:#3` for paragraph
3 from 0), or the built-in corpus's `module:qualname`.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.cleaning.repair import decode_bytes, looks_binary
from engine.data.builtin import SOURCE_NAME as BUILTIN_PYTHON_DOCS
from engine.data.locate import DataSource, dataset_records, open_dataset, resolve_source
from engine.data.reader import (FILE_SUFFIXES, Decoding, Record, UnreadableFile, iter_records, kind_of,
                                parquet_columns)
from engine.errors import DataError
from engine.specs.clean import CleanInput, RepairStep

FIELD = "input.sources"
_SNIFF_BYTES = 8192


@dataclass
class Document:
    id: str
    source: str
    text: str
    repairs: dict[str, int] = field(default_factory=dict)  # decoding repairs of this document's bytes


class Problems:
    """Broken records: counted, the first few kept for the report, or the run stopped at the first."""

    KEPT = 100

    def __init__(self, stop: bool):
        self.stop = stop
        self.count = 0
        self.examples: list[dict[str, str]] = []

    def __call__(self, where: str, problem: str, hint: str = "") -> None:
        if self.stop:
            raise DataError(f"{where}: {problem}.", hint or "Fix the record, or set input.on_bad_record: skip "
                                                             "to skip broken records and list them in the report.")
        self.count += 1
        if len(self.examples) < self.KEPT:
            self.examples.append({"where": where, "problem": problem})


class RepairingDecoding(Decoding):
    """Bytes to text for one file, repaired rather than refused (engine/cleaning/repair.py): a BOM,
    UTF-16/32, a legacy encoding when `detect_encoding`, else invalid bytes replaced and counted.
    The repairs wait in `pending` until the record they belong to takes them; `counted(n)` hears of
    every line's bytes, for the progress bar."""

    def __init__(self, detect_encoding: bool, counted: Callable[[int], None]):
        self.detect_encoding = detect_encoding
        self.counted = counted
        self.pending: dict[str, int] = {}
        self.legacy: str | None = None  # the encoding this file's first invalid line was decoded with

    def text(self, data: bytes, name: str) -> str:
        text, repairs = decode_bytes(data, self.detect_encoding)
        self._add(repairs)
        return text

    def line(self, raw: bytes, name: str, number: int, offset: int) -> str:
        # Lines are decoded one by one: a file may mix UTF-8 with a legacy encoding. Detecting the
        # encoding costs milliseconds a line, so the first guess in a file is reused for its other
        # invalid lines (a file written in one legacy encoding then reads at full speed).
        self.counted(len(raw))
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            self._add({"repair.bom": 1})
            return raw[len(codecs.BOM_UTF8):].decode("utf-8", "replace")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if self.legacy is not None:
            self._add({f"repair.encoding.{self.legacy}": 1})
            return raw.decode(self.legacy, "replace")
        text, repairs = decode_bytes(raw, self.detect_encoding)
        self.legacy = next((k.removeprefix("repair.encoding.") for k in repairs if k.startswith("repair.encoding.")),
                           None)
        self._add(repairs)
        return text

    def take(self) -> dict[str, int]:
        """The repairs since the last call: those of the record just read."""
        taken, self.pending = self.pending, {}
        return taken

    def _add(self, repairs: dict[str, int]) -> None:
        for key, n in repairs.items():
            self.pending[key] = self.pending.get(key, 0) + n


class CorpusReader:
    """Iterate over Documents; `bytes_read` and `total_bytes` drive the progress bar."""

    def __init__(self, spec: CleanInput, repair: RepairStep, problems: Problems):
        self.spec = spec
        self.detect_encoding = repair.enabled and repair.detect_encoding
        self.problems = problems
        self.files = 0
        self.whole_txt_files = 0  # .txt files read as one document each
        self.bytes_read = 0
        self.repairs: dict[str, int] = {}
        # Every source is found first: a typo fails before any work.
        self._plan = [resolve_source(source, FIELD, [BUILTIN_PYTHON_DOCS]) for source in spec.sources]
        self.total_bytes = sum(source.size_bytes for source in self._plan)

    def __iter__(self) -> Iterator[Document]:
        count = 0
        for source in self._plan:
            documents = self._builtin() if source.kind == "builtin" else (
                self._files(source.files) if source.kind == "files" else self._dataset(source))
            for document in documents:
                for key, n in document.repairs.items():
                    self.repairs[key] = self.repairs.get(key, 0) + n
                yield document
                count += 1
                if self.spec.max_documents is not None and count >= self.spec.max_documents:
                    return

    # --- where the documents are --------------------------------------------------------------

    def _builtin(self) -> Iterator[Document]:
        from engine.data.builtin import python_docs_documents
        documents = python_docs_documents()
        self.total_bytes = self.total_bytes or sum(len(d["text"]) for d in documents)
        for doc in documents:
            self.bytes_read += len(doc["text"])
            yield Document(doc["source"], BUILTIN_PYTHON_DOCS, doc["text"])

    def _dataset(self, source: DataSource) -> Iterator[Document]:
        """A `save_to_disk` folder or a hub dataset, read batch by batch."""
        dataset = open_dataset(source, FIELD, in_memory=False)
        self._check_columns(source.given, dataset.column_names)
        self.files += 1
        for record in dataset_records(dataset, source.given, self._columns()):
            document = self._document(record)
            if document is not None:
                self.bytes_read += len(document.text)
                yield document

    def _files(self, paths: tuple[Path, ...]) -> Iterator[Document]:
        for path in paths:
            suffix = path.suffix.lower()
            if suffix not in FILE_SUFFIXES:
                self.problems(str(path), f"unsupported file type '{suffix or '(none)'}'",
                              f"Use one of {' '.join(FILE_SUFFIXES)}, or leave the file out of input.sources.")
                self.bytes_read += path.stat().st_size
                continue
            self.files += 1
            self.whole_txt_files += suffix == ".txt" and self.spec.txt_documents == "file"
            before = self.bytes_read
            if suffix != ".parquet" and _binary(path):
                self.problems(str(path), "a binary file, not text (skipped)",
                              "Remove it from input.sources, or convert it to text.")
            else:
                yield from self._file(path)
            self.bytes_read = before + path.stat().st_size

    def _file(self, path: Path) -> Iterator[Document]:
        decoding = RepairingDecoding(self.detect_encoding, self._count)

        def broken(where: str, problem: str, hint: str) -> None:
            decoding.take()  # a skipped record's repairs are not a document's
            self.problems(where, problem, f"{hint} Fix the line, or set input.on_bad_record: skip.")

        parquet = path.suffix.lower() == ".parquet"
        read = 0
        try:
            if parquet:
                self._check_columns(str(path), parquet_columns(path))
            for record in iter_records(path, on_problem=broken, decoding=decoding,
                                       columns=self._columns() if parquet else None, text_field=self.spec.text_field,
                                       txt_documents=self.spec.txt_documents):
                if read == 0 and not parquet and isinstance(record.value, dict):
                    # A text field missing from a file's first record is a setting to fix.
                    self._check_columns(record.where, list(record.value))
                read += 1
                document = self._document(record)
                if document is not None:
                    document.repairs = decoding.take()
                    yield document
                else:
                    decoding.take()
        except UnreadableFile as e:
            rest = "; the rest of the file is skipped" if read else ""
            self.problems(e.where, e.problem + rest, e.hint)

    def _count(self, n: int) -> None:
        self.bytes_read += n

    def _columns(self) -> list[str]:
        return [self.spec.text_field] + ([self.spec.id_field] if self.spec.id_field else [])

    # --- records ------------------------------------------------------------------------------

    def _check_columns(self, where: str, columns: list[str]) -> None:
        """A text field missing from a file's first record is a setting to fix, not a broken record."""
        if self.spec.text_field not in columns:
            names = ", ".join(f"'{c}'" for c in columns) or "none"
            raise DataError(f"{where}: no field '{self.spec.text_field}' (fields: {names}).",
                            "Set input.text_field to the field that holds the text.")

    def _document(self, found: Record) -> Document | None:
        record, where = found.value, found.where
        if not isinstance(record, dict):
            self.problems(where, f"expected an object with a '{self.spec.text_field}' field, "
                                 f"found {kind_of(record)}")
            return None
        if self.spec.text_field not in record:
            names = ", ".join(f"'{k}'" for k in record) or "none"
            self.problems(where, f"no field '{self.spec.text_field}' (fields: {names})",
                          "Set input.text_field to the field that holds the text.")
            return None
        text = record[self.spec.text_field]
        if text is None:
            text = ""
        if not isinstance(text, str):
            self.problems(where, f"field '{self.spec.text_field}' is {kind_of(text)}, not text")
            return None
        doc_id = found.place
        if self.spec.id_field:
            value = record.get(self.spec.id_field)
            if value is None:
                self.problems(where, f"no value in the id field '{self.spec.id_field}'",
                              "Give every record an id, or leave input.id_field empty to use file:line ids.")
                return None
            doc_id = str(value)
        return Document(doc_id, found.source, text)


def _binary(path: Path) -> bool:
    with path.open("rb") as f:
        return looks_binary(f.read(_SNIFF_BYTES))
