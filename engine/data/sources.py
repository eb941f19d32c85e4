"""Load the documents of a DataSpec into train and eval splits.

A source is one of:
- `builtin:python-docs`: docstrings of this Python's standard library (see builtin.py);
- a file, a glob or a folder (searched recursively) of .txt (one document per file), .jsonl,
  .json (a list of records or {"data": [...]}), .csv or .parquet (the text in `text_field`);
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (its train split, or its
  only split);
- a Hugging Face hub dataset id, `hub:owner/name` or `owner/name` (needs the network).

Bad input raises DataError naming the file, line and field, with a hint; never a raw traceback.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import datasets
import pyarrow.parquet as pq

from engine.data.builtin import SOURCE_NAME as BUILTIN_PYTHON_DOCS
from engine.data.builtin import python_docs_documents
from engine.errors import DataError
from engine.specs import DataSpec

Progress = Callable[[str, int, int | None], None]
FILE_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TEXT_FEATURES = datasets.Features({"text": datasets.Value("string")})


def load_documents(spec: DataSpec, seed: int, progress: Progress | None = None) -> datasets.DatasetDict:
    """Read every source of `spec`, shuffle with `seed`, cap at max_documents, hold out eval.

    Returns splits "train" and "eval" with one column "text" of non-empty strings. "eval" is empty
    when eval_fraction is 0 (or there is a single document); otherwise it has at least one.
    `progress(message, done, total)` is called as each source is read.
    """
    parts: list[datasets.Dataset] = []
    for i, source in enumerate(spec.sources):
        if progress:
            progress(f"reading {source}", i, len(spec.sources))
        parts.append(_load_source(source, spec.text_field))
    if progress:
        progress("documents read", len(spec.sources), len(spec.sources))

    documents = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    documents = documents.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True)
    if len(documents) == 0:
        raise DataError(f"The corpus is empty: no document in {', '.join(spec.sources)} has any text.",
                        f"Check that the files hold text in the field '{spec.text_field}' (data.text_field).")

    # keep_in_memory: the shuffle's index table must not be written next to a user's saved dataset.
    documents = documents.shuffle(seed=seed, keep_in_memory=True)
    if spec.max_documents is not None and spec.max_documents < len(documents):
        documents = documents.select(range(spec.max_documents), keep_in_memory=True)

    n = len(documents)
    n_eval = 0
    if spec.eval_fraction > 0 and n >= 2:
        n_eval = min(n - 1, max(1, round(n * spec.eval_fraction)))
    return datasets.DatasetDict({
        "train": documents.select(range(n_eval, n), keep_in_memory=True),
        "eval": documents.select(range(n_eval), keep_in_memory=True),
    })


def _load_source(source: str, text_field: str) -> datasets.Dataset:
    if source == BUILTIN_PYTHON_DOCS:
        return _texts_dataset([doc["text"] for doc in python_docs_documents()])
    if source.startswith("builtin:"):
        raise DataError(f"Unknown built-in corpus '{source}'.", f"The built-in corpus is {BUILTIN_PYTHON_DOCS}.")
    if source.startswith("hub:"):
        return _load_hub(source[len("hub:"):], text_field)

    path = Path(source).expanduser()
    if glob.has_magic(source):
        matches = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not matches:
            raise DataError(f"The pattern {source} matches no file.",
                            "Check the folder and the pattern (e.g. data/**/*.jsonl for subfolders).")
        return _load_files([Path(m) for m in matches], text_field)
    if path.is_dir():
        return _load_folder(path, text_field)
    if path.is_file():
        return _load_files([path], text_field)
    if _HUB_ID.match(source) and "/" in source and path.suffix.lower() not in FILE_SUFFIXES:
        return _load_hub(source, text_field, also_missing_locally=True)
    raise DataError(f"The data source {source} does not exist (no such file or folder).",
                    "Check the path; relative paths start from the folder the engine runs in.")


def _load_folder(folder: Path, text_field: str) -> datasets.Dataset:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        return _load_saved(folder, text_field)
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise DataError(f"The folder {folder} holds no data file ({' '.join(FILE_SUFFIXES)}).",
                        "Put text files in it, or point data.sources at the files themselves.")
    return _load_files(files, text_field)


def _load_files(paths: list[Path], text_field: str) -> datasets.Dataset:
    # Texts of consecutive small files are gathered into one table: a folder of thousands of .txt
    # files must not become thousands of one-row datasets.
    parts: list[datasets.Dataset] = []
    texts: list[str] = []
    for path in paths:
        loaded = _load_file(path, text_field)
        if isinstance(loaded, list):
            texts.extend(loaded)
            continue
        if texts:
            parts.append(_texts_dataset(texts))
            texts = []
        parts.append(loaded)
    if texts or not parts:
        parts.append(_texts_dataset(texts))
    return _concat(parts)


def _load_file(path: Path, text_field: str) -> list[str] | datasets.Dataset:
    """The documents of one file: a list of texts, or a dataset for columnar files."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _load_parquet(path, text_field)
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type '{suffix or '(none)'}'.",
                        f"Use one of {' '.join(FILE_SUFFIXES)}, or convert the file to .txt.")
    text = _read_utf8(path)
    if suffix == ".txt":
        return [text]  # one file, one document, paragraphs and all
    if suffix == ".jsonl":
        return _jsonl_texts(path, text, text_field)
    if suffix == ".json":
        return _json_texts(path, text, text_field)
    return _csv_texts(path, text, text_field)


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path} is not UTF-8 text: undecodable byte 0x{data[e.start]:02x} at byte offset {e.start} "
            f"(line {line}).",
            f"Convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}`."
        ) from None


def _jsonl_texts(path: Path, text: str, text_field: str) -> list[str]:
    texts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno}).",
                            "Each line of a .jsonl file must be one JSON object, e.g. {\"text\": \"...\"}.") from None
        texts.append(_record_text(record, text_field, f"{path}, line {number}"))
    return texts


def _json_texts(path: Path, text: str, text_field: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg} at column {e.colno}).",
                        "A .json file must hold a list of records, or {\"data\": [records]}.") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records or {{\"data\": [...]}}, found {type(data).__name__}.",
                        "Write the records as a JSON list, or as one record per line in a .jsonl file.")
    return [_record_text(record, text_field, f"{path}, record {i}") for i, record in enumerate(data)]


def _record_text(record: Any, text_field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with a '{text_field}' field, found {type(record).__name__}.",
                        "Write each record as an object, e.g. {\"text\": \"...\"}.")
    if text_field not in record:
        fields = ", ".join(f"'{k}'" for k in record) or "none"
        raise DataError(f"{where}: no field '{text_field}' (fields: {fields}).",
                        "Set data.text_field to the field that holds the text.")
    value = record[text_field]
    if value is None:
        return ""  # missing text is an empty document, dropped later
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{text_field}' is a {type(value).__name__}, not text.",
                        "Set data.text_field to a field that holds strings.")
    return value


def _csv_texts(path: Path, text: str, text_field: str) -> list[str]:
    csv.field_size_limit(sys.maxsize)  # documents are often longer than the 128 KiB default
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if text_field not in columns:
        names = ", ".join(f"'{c}'" for c in columns) or "none"
        raise DataError(f"{path}: no column '{text_field}' in the header row (columns: {names}).",
                        "Set data.text_field to the column that holds the text; the first row must be the header.")
    try:
        return [row[text_field] or "" for row in reader]
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({e}).",
                        "Check the quoting on that line.") from None


def _load_parquet(path: Path, text_field: str) -> datasets.Dataset:
    try:
        columns = pq.read_schema(path).names
        if text_field not in columns:
            names = ", ".join(f"'{c}'" for c in columns) or "none"
            raise DataError(f"{path}: no column '{text_field}' (columns: {names}).",
                            "Set data.text_field to the column that holds the text.")
        table = pq.read_table(path, columns=[text_field])
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise DataError(f"{path} is not a readable Parquet file: {_first_line(e)}",
                        "Check that the file was fully written, or export it again.") from None
    return _text_column(datasets.Dataset(table), text_field, str(path))


def _load_saved(folder: Path, text_field: str) -> datasets.Dataset:
    try:
        # In memory: later map/shuffle cache files must not be written into the user's folder.
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=True)
    except Exception as e:  # noqa: BLE001 - a damaged save_to_disk folder raises many types
        raise DataError(f"{folder} looks like a saved dataset but cannot be read: {_first_line(e)}",
                        "Save it again with Dataset.save_to_disk.") from None
    return _text_column(_one_split(loaded, str(folder)), text_field, str(folder))


def _load_hub(name: str, text_field: str, also_missing_locally: bool = False) -> datasets.Dataset:
    try:
        loaded = datasets.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - offline, unknown id, gated repo: all are the user's to fix
        local = f" There is no local file or folder named {name} either." if also_missing_locally else ""
        raise DataError(f"Could not load the hub dataset '{name}': {_first_line(e)}.{local}",
                        "Check the dataset id and the network (HF_HUB_OFFLINE=1 forbids downloads), "
                        "or use local files.") from None
    return _text_column(_one_split(loaded, name), text_field, f"hub dataset {name}")


def _one_split(loaded: datasets.Dataset | datasets.DatasetDict, where: str) -> datasets.Dataset:
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if "train" in loaded:
        return loaded["train"]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise DataError(f"{where} has several splits and none is called 'train' ({', '.join(loaded)}).",
                    "Save the split to use on its own, or name it 'train'.")


def _text_column(dataset: datasets.Dataset, text_field: str, where: str) -> datasets.Dataset:
    if text_field not in dataset.column_names:
        names = ", ".join(f"'{c}'" for c in dataset.column_names) or "none"
        raise DataError(f"{where}: no column '{text_field}' (columns: {names}).",
                        "Set data.text_field to the column that holds the text.")
    feature = dataset.features[text_field]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise DataError(f"{where}: column '{text_field}' holds {feature}, not text.",
                        "Set data.text_field to a column of strings.")
    dataset = dataset.select_columns([text_field])
    if text_field != "text":
        dataset = dataset.rename_column(text_field, "text")
    return dataset.cast(_TEXT_FEATURES) if dataset.features != _TEXT_FEATURES else dataset


def _texts_dataset(texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": texts}, features=_TEXT_FEATURES)


def _concat(parts: list[datasets.Dataset]) -> datasets.Dataset:
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
