"""Stream the documents of a clean job's input, one at a time, with an id and where each came from.

Unlike engine/data/sources.py (which loads a training corpus into memory and stops at the first
bad record), this reader is for corpora that may not fit in memory and may be dirty: it reads
files line by line or batch by batch, decodes each piece with repair (mixed encodings in one file
are common in scraped data), and hands broken records to `on_problem`, which skips them or stops
the run as `input.on_bad_record` says.

Document ids: the record's `input.id_field` when set, else its place: `file.jsonl:12` (line 12),
`file.csv:12` (line), `file.parquet:#3` (row), `file.json:#3` (record), `file.txt`, or the
built-in corpus's `module:qualname`.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.clean_specs import CleanInput, RepairStep
from engine.cleaning.repair import decode_bytes, looks_binary
from engine.data.builtin import SOURCE_NAME as BUILTIN_PYTHON_DOCS
from engine.errors import DataError

FILE_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
_SNIFF_BYTES = 8192
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


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


class CorpusReader:
    """Iterate over Documents; `bytes_read` and `total_bytes` drive the progress bar."""

    def __init__(self, spec: CleanInput, repair: RepairStep, problems: Problems):
        self.spec = spec
        self.detect_encoding = repair.enabled and repair.detect_encoding
        self.problems = problems
        self.files = 0
        self.bytes_read = 0
        self.repairs: dict[str, int] = {}
        self._plan = [self._resolve(source) for source in spec.sources]  # a typo fails before any work
        self.total_bytes = sum(size for _, _, size in self._plan)

    def __iter__(self) -> Iterator[Document]:
        count = 0
        for source, paths, _ in self._plan:
            documents = self._builtin() if source == BUILTIN_PYTHON_DOCS else (
                self._saved(source) if paths is None else self._files(paths))
            for document in documents:
                for key, n in document.repairs.items():
                    self.repairs[key] = self.repairs.get(key, 0) + n
                yield document
                count += 1
                if self.spec.max_documents is not None and count >= self.spec.max_documents:
                    return

    # --- where the documents are --------------------------------------------------------------

    def _resolve(self, source: str) -> tuple[str, list[Path] | None, int]:
        """(source, files or None for a dataset, bytes) for one entry of input.sources."""
        if source == BUILTIN_PYTHON_DOCS:
            return source, None, 0
        if source.startswith("builtin:"):
            raise DataError(f"Unknown built-in corpus '{source}' (input.sources).",
                            f"The built-in corpus is {BUILTIN_PYTHON_DOCS}.")
        path = Path(source).expanduser()
        if glob.has_magic(source):
            files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not files:
                raise DataError(f"The pattern {source} (input.sources) matches no file.",
                                "Check the folder and the pattern (e.g. data/**/*.jsonl for subfolders).")
        elif path.is_dir():
            if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
                return source, None, _folder_bytes(path)
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise DataError(f"The folder {path} (input.sources) holds no data file ({' '.join(FILE_SUFFIXES)}).",
                                "Put text files in it, or point input.sources at the files themselves.")
        elif path.is_file():
            files = [path]
        elif source.startswith("hub:") or ("/" in source and path.suffix.lower() not in FILE_SUFFIXES
                                           and not path.parent.exists()):
            return source, None, 0
        else:
            raise DataError(f"The input source {source} does not exist (no such file or folder).",
                            "Check the path in input.sources; relative paths start from the folder the engine runs in.")
        return source, files, sum(p.stat().st_size for p in files)

    def _builtin(self) -> Iterator[Document]:
        from engine.data.builtin import python_docs_documents
        documents = python_docs_documents()
        self.total_bytes = self.total_bytes or sum(len(d["text"]) for d in documents)
        for doc in documents:
            self.bytes_read += len(doc["text"])
            yield Document(doc["source"], BUILTIN_PYTHON_DOCS, doc["text"])

    def _saved(self, source: str) -> Iterator[Document]:
        """A `save_to_disk` folder or a hub dataset, read batch by batch with `datasets`."""
        import datasets
        from engine.data.sources import _one_split

        try:
            if Path(source).expanduser().is_dir():
                loaded = datasets.load_from_disk(str(Path(source).expanduser()))
            else:
                loaded = datasets.load_dataset(source.removeprefix("hub:"))
        except Exception as e:  # noqa: BLE001 - offline, unknown id, damaged folder: the user's to fix
            raise DataError(f"Could not load the dataset {source} (input.sources): {_first_line(e)}.",
                            "Check the path or dataset id and the network (HF_HUB_OFFLINE=1 forbids downloads), "
                            "or use local files.") from None
        dataset = _one_split(loaded, source)
        self._check_columns(source, dataset.column_names)
        columns = [self.spec.text_field] + ([self.spec.id_field] if self.spec.id_field else [])
        self.files += 1
        for start in range(0, len(dataset), 1000):
            batch = dataset[start:start + 1000]
            for i, text in enumerate(batch[self.spec.text_field]):
                row = start + i
                record = {c: batch[c][i] for c in columns}
                document = self._document(record, f"{source}:#{row}", source, f"{source}, row {row}")
                if document is not None:
                    self.bytes_read += len(document.text)
                    yield document

    def _files(self, paths: list[Path]) -> Iterator[Document]:
        for path in paths:
            suffix = path.suffix.lower()
            if suffix not in FILE_SUFFIXES:
                self.problems(str(path), f"unsupported file type '{suffix or '(none)'}'",
                              f"Use one of {' '.join(FILE_SUFFIXES)}, or leave the file out of input.sources.")
                self.bytes_read += path.stat().st_size
                continue
            self.files += 1
            before = self.bytes_read
            if suffix == ".parquet":
                yield from self._parquet(path)
            else:
                with path.open("rb") as f:
                    head = f.read(_SNIFF_BYTES)
                if looks_binary(head):
                    self.problems(str(path), "a binary file, not text (skipped)",
                                  "Remove it from input.sources, or convert it to text.")
                elif suffix == ".txt":
                    yield from self._txt(path)
                elif suffix == ".jsonl":
                    yield from self._jsonl(path, head)
                elif suffix == ".json":
                    yield from self._json(path)
                else:
                    yield from self._csv(path, head)
            self.bytes_read = before + path.stat().st_size

    # --- one reader per format ------------------------------------------------------------------

    def _txt(self, path: Path) -> Iterator[Document]:
        text, repairs = decode_bytes(path.read_bytes(), self.detect_encoding)
        yield Document(path.name, str(path), text, repairs)

    def _jsonl(self, path: Path, head: bytes) -> Iterator[Document]:
        if head.startswith(_UTF16_BOMS):  # UTF-16 cannot be split on b"\n": decode the whole file
            text, repairs = decode_bytes(path.read_bytes(), self.detect_encoding)
            lines = ((line, repairs if n == 1 else {}) for n, line in enumerate(text.splitlines(), start=1))
        else:
            lines = self._decoded_lines(path)
        fields_checked = False
        for number, (line, repairs) in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                self.problems(where, f"not valid JSON ({e.msg} at column {e.colno})",
                              "Each line of a .jsonl file must be one JSON object, e.g. {\"text\": \"...\"}; fix the "
                              "line, or set input.on_bad_record: skip.")
                continue
            if not fields_checked and isinstance(record, dict):
                self._check_columns(f"{path}, line {number}", list(record))
                fields_checked = True
            document = self._document(record, f"{path.name}:{number}", str(path), where)
            if document is not None:
                document.repairs = repairs
                yield document

    def _decoded_lines(self, path: Path) -> Iterator[tuple[str, dict[str, int]]]:
        # Lines are decoded one by one: a file may mix UTF-8 with a legacy encoding. Detecting the
        # encoding costs milliseconds a line, so the first guess in a file is reused for its other
        # invalid lines (a file written in one legacy encoding then reads at full speed).
        legacy: str | None = None
        with path.open("rb") as f:
            for n, raw in enumerate(f):
                self.bytes_read += len(raw)
                if n == 0 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                    yield raw.decode("utf-8", "replace"), {"repair.bom": 1}
                    continue
                try:
                    yield raw.decode("utf-8"), {}
                    continue
                except UnicodeDecodeError:
                    pass
                if legacy is not None:
                    yield raw.decode(legacy, "replace"), {f"repair.encoding.{legacy}": 1}
                    continue
                text, repairs = decode_bytes(raw, self.detect_encoding)
                legacy = next((k.removeprefix("repair.encoding.") for k in repairs
                               if k.startswith("repair.encoding.")), None)
                yield text, repairs

    def _json(self, path: Path) -> Iterator[Document]:
        # A .json file is one value: it has to be parsed whole (JSONL streams; say so in the docs).
        text, repairs = decode_bytes(path.read_bytes(), self.detect_encoding)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            self.problems(f"{path}, line {e.lineno}", f"not valid JSON ({e.msg} at column {e.colno})",
                          "A .json file must hold a list of records, or {\"data\": [records]}.")
            return
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            self.problems(str(path), f"expected a list of records or {{\"data\": [...]}}, found {type(data).__name__}",
                          "Write the records as a JSON list, or one record per line in a .jsonl file.")
            return
        if data and isinstance(data[0], dict):
            self._check_columns(f"{path}, record 0", list(data[0]))
        for i, record in enumerate(data):
            document = self._document(record, f"{path.name}:#{i}", str(path), f"{path}, record {i}")
            if document is not None:
                document.repairs = repairs if i == 0 else {}
                yield document

    def _csv(self, path: Path, head: bytes) -> Iterator[Document]:
        csv.field_size_limit(sys.maxsize)  # documents are often longer than the 128 KiB default
        text, repairs = decode_bytes(path.read_bytes(), self.detect_encoding)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        self._check_columns(f"{path} (header row)", list(reader.fieldnames or []))
        try:
            for row in reader:
                document = self._document(row, f"{path.name}:{reader.line_num}", str(path),
                                          f"{path}, line {reader.line_num}")
                if document is not None:
                    document.repairs, repairs = repairs, {}
                    yield document
        except csv.Error as e:
            self.problems(f"{path}, line {reader.line_num}", f"not valid CSV ({e}); the rest of the file is skipped",
                          "Check the quoting on that line.")

    def _parquet(self, path: Path) -> Iterator[Document]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            self._check_columns(str(path), parquet.schema_arrow.names)
            columns = [self.spec.text_field] + ([self.spec.id_field] if self.spec.id_field else [])
            row = 0
            for batch in parquet.iter_batches(batch_size=1000, columns=columns):
                data = batch.to_pydict()
                for i in range(batch.num_rows):
                    record = {c: data[c][i] for c in columns}
                    document = self._document(record, f"{path.name}:#{row}", str(path), f"{path}, row {row}")
                    row += 1
                    if document is not None:
                        yield document
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
            self.problems(str(path), f"not a readable Parquet file ({_first_line(e)})",
                          "Check that the file was fully written, or export it again.")

    # --- records ------------------------------------------------------------------------------

    def _check_columns(self, where: str, columns: list[str]) -> None:
        """A text field missing from a file's first record is a setting to fix, not a broken record."""
        if self.spec.text_field not in columns:
            names = ", ".join(f"'{c}'" for c in columns) or "none"
            raise DataError(f"{where}: no field '{self.spec.text_field}' (fields: {names}).",
                            "Set input.text_field to the field that holds the text.")

    def _document(self, record: Any, place: str, source: str, where: str) -> Document | None:
        if not isinstance(record, dict):
            self.problems(where, f"expected an object with a '{self.spec.text_field}' field, "
                                 f"found {type(record).__name__}")
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
            self.problems(where, f"field '{self.spec.text_field}' is a {type(text).__name__}, not text")
            return None
        doc_id = place
        if self.spec.id_field:
            value = record.get(self.spec.id_field)
            if value is None:
                self.problems(where, f"no value in the id field '{self.spec.id_field}'",
                              "Give every record an id, or leave input.id_field empty to use file:line ids.")
                return None
            doc_id = str(value)
        return Document(doc_id, source, text)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.arrow"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
