"""A few documents from each corpus source, read cheaply for the wizard's live preview.

Reads at most a few hundred kilobytes per source and never imports the engine's data stack:
`builtin:python-docs` parses a handful of stdlib modules with `ast` (as the engine does, without
importing them), .txt/.jsonl/.json/.csv files are read directly, and hub datasets are described
rather than downloaded.
"""

from __future__ import annotations

import ast
import csv
import glob
import inspect
import io
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

BUILTIN = "builtin:python-docs"
READ_LIMIT = 256 * 1024
TEXT_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
# Modules with friendly prose docstrings, read in this order for the builtin preview.
_PREVIEW_MODULES = ("textwrap.py", "heapq.py", "bisect.py", "fractions.py", "statistics.py", "json/__init__.py")


@dataclass
class PreviewDocument:
    source: str  # where it came from (file, or module:qualname)
    text: str


@dataclass
class SourcePreview:
    source: str
    documents: list[PreviewDocument]
    note: str = ""  # why there are no documents, or what the engine will do


def builtin_documents(limit: int = 5, min_chars: int = 40) -> list[PreviewDocument]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs: list[PreviewDocument] = []
    for rel in _PREVIEW_MODULES:
        path = stdlib / rel
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        nodes = [("", tree)] + [(n.name, n) for n in tree.body
                                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        for name, node in nodes:
            doc = ast.get_docstring(node, clean=False)
            if doc and len(inspect.cleandoc(doc)) >= min_chars:
                docs.append(PreviewDocument(f"{module}:{name}" if name else module, inspect.cleandoc(doc)))
                break  # one document per module: the preview shows variety
        if len(docs) >= limit:
            break
    return docs


class NotText(ValueError):
    """A file whose first bytes are not text (an image, an archive, a model file named .txt)."""


_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def _read_head(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(READ_LIMIT)
    text = data.decode("utf-8", errors="replace")
    sample = text[:8192]
    # Control characters, or mostly bytes that are no UTF-8 (text in another encoding has a few: its accents).
    size = max(len(sample), 1)
    controls = sum(1 for ch in sample if ch < " " and ch not in _TEXT_CONTROLS)
    undecoded = sample.count("\ufffd")
    if "\x00" in sample or controls > 0.01 * size or undecoded > 0.3 * size:
        raise NotText(f"⚠ {path.name} does not look like text: {controls + undecoded:,} of its first {len(sample):,} "
                      "characters are control characters or no text at all. Read as text it would be garbled; pick "
                      "a text file (UTF-8), or convert it first.")
    return text


def file_documents(path: Path, text_field: str = "text", limit: int = 5) -> SourcePreview:
    suffix = path.suffix.lower()
    docs: list[PreviewDocument] = []
    try:
        if suffix == ".txt":
            text = _read_head(path)
            paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
            docs = [PreviewDocument(path.name, p) for p in paragraphs[:limit]]
        elif suffix == ".jsonl":
            for line in _read_head(path).splitlines():
                if len(docs) >= limit:
                    break
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line may be cut by the read limit
                if isinstance(record, dict) and isinstance(record.get(text_field), str):
                    docs.append(PreviewDocument(path.name, record[text_field]))
            if not docs:
                return SourcePreview(str(path), [], f"no `{text_field}` key in the first records")
        elif suffix == ".json":
            if path.stat().st_size > 8 * READ_LIMIT:
                return SourcePreview(str(path), [], "large JSON file: the engine reads it when the run starts")
            records = json.loads(path.read_text(encoding="utf-8"))
            records = records if isinstance(records, list) else [records]
            docs = [PreviewDocument(path.name, r[text_field]) for r in records
                    if isinstance(r, dict) and isinstance(r.get(text_field), str)][:limit]
        elif suffix == ".csv":
            reader = csv.DictReader(io.StringIO(_read_head(path)))
            for row in reader:
                if len(docs) >= limit:
                    break
                if row.get(text_field):
                    docs.append(PreviewDocument(path.name, row[text_field]))
        elif suffix == ".parquet":
            return parquet_documents(path, text_field, limit)
        else:
            return SourcePreview(str(path), [], f"unsupported file type {suffix or '(none)'}")
    except NotText as e:
        return SourcePreview(str(path), [], str(e))
    except (OSError, UnicodeError, json.JSONDecodeError, csv.Error) as e:
        return SourcePreview(str(path), [], f"could not read: {e}")
    return SourcePreview(str(path), docs, "" if docs else "no documents found in the first part of the file")


def parquet_documents(path: Path, text_field: str = "text", limit: int = 5) -> SourcePreview:
    """The first rows of a Parquet file (one row group at most), when pyarrow is installed."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return SourcePreview(str(path), [], "Parquet is read by the engine (pyarrow is not installed with the studio)")
    try:
        parquet = pq.ParquetFile(path)
        if text_field not in parquet.schema_arrow.names:
            return SourcePreview(str(path), [], f"no `{text_field}` column (columns: "
                                                f"{', '.join(parquet.schema_arrow.names[:8])})")
        batch = next(parquet.iter_batches(batch_size=limit, columns=[text_field]), None)
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        return SourcePreview(str(path), [], f"could not read: {e}")
    texts = batch.column(0).to_pylist() if batch is not None else []
    docs = [PreviewDocument(path.name, t) for t in texts if isinstance(t, str)]
    return SourcePreview(str(path), docs, "" if docs else "no rows")


def source_preview(source: str, text_field: str = "text", limit: int = 5) -> SourcePreview:
    """Up to `limit` documents of one `data.sources` entry, or a note saying why there are none."""
    source = source.strip()
    if not source:
        return SourcePreview(source, [], "empty source")
    if source == BUILTIN:
        return SourcePreview(source, builtin_documents(limit),
                             "docstrings of this Python's standard library (about 1.7 MB of prose)")
    if source.startswith("builtin:"):
        return SourcePreview(source, [], "unknown builtin corpus; the only one is builtin:python-docs")
    path = Path(source).expanduser()
    if path.is_file():
        return file_documents(path, text_field, limit)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return SourcePreview(source, [], "a saved dataset folder: the engine loads it when the run starts")
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
        if not files:
            return SourcePreview(source, [], "no .txt .jsonl .json .csv or .parquet files in this folder")
        preview = file_documents(files[0], text_field, limit)
        shown = f"{len(files)} file{'s' if len(files) != 1 else ''}; showing {files[0].name}"
        preview.note = f"{shown}: {preview.note}" if preview.note else shown
        return preview
    if any(c in source for c in "*?["):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            return SourcePreview(source, [], "the pattern matches no file")
        preview = file_documents(Path(matches[0]), text_field, limit)
        shown = f"{len(matches)} matching files; showing {Path(matches[0]).name}"
        preview.note = f"{shown}: {preview.note}" if preview.note else shown
        return preview
    if source.startswith("hub:") or (source.count("/") == 1 and not source.startswith((".", "/", "~"))):
        return SourcePreview(source, [], "a Hugging Face hub dataset: downloaded by the engine when the run starts "
                                         "(needs network access)")
    return SourcePreview(source, [], "not found: no such file or folder")
