"""Load the instruction records of a FinetuneData into train and eval lists of normalised records.

A source is one of:
- `builtin:tasks`: generated tasks with checkable answers (data.task, data.task_examples);
- a file, a glob or a folder (searched recursively) of .jsonl, .json (a list of records or
  {"data": [...]}), .csv, .parquet, or .txt (one text record per file, for the text format);
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (its train split, or its
  only split);
- a Hugging Face hub dataset id, `hub:owner/name` or `owner/name` (needs the network).

Each file (or dataset) has one format, detected from its first record unless data.format names
it; all sources must share it. A normalised record is {"messages": [{"role", "content"}, ...],
"reference": the last assistant answer, "where": "file, line n", "fields": the source record's
field names} or, for the text format, {"text": str, "reference": None, "where", "fields"}.
Bad input raises DataError naming the file, the record and the fields; a broken record stops the
run (it is a setting or data problem to fix).

datasets and pyarrow are imported only to read the sources that need them.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.errors import DataError
from engine.finetune.formats import detect_format, to_messages
from engine.finetune_specs import FinetuneData

Progress = Callable[[str, int, int | None], None]
BUILTIN_TASKS = "builtin:tasks"
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class _Part:
    """The raw records of one file or dataset, and how to name record i in messages."""

    name: str
    rows: list[Any]
    unit: str  # "line", "record", "row", "example"
    numbers: list[int] | None = None  # the line of each row when unit is "line"

    def where(self, i: int) -> str:
        return f"{self.name}, {self.unit} {self.numbers[i] if self.numbers else i}"


def load_records(data: FinetuneData, seed: int,
                 progress: Progress | None = None) -> tuple[list[dict], list[dict], str]:
    """Read every source, normalise its records, shuffle with `seed`, cap at max_records, hold out eval.

    Returns (train, eval, format): eval is empty when eval_fraction is 0 or there is a single
    record, and has at least one record otherwise; format is the one given or detected.
    `progress(message, done, total)` is called as each source is read.
    """
    parts: list[_Part] = []
    for i, source in enumerate(data.sources):
        if progress:
            progress(f"reading {source}", i, len(data.sources))
        parts.extend(_load_source(source, data, seed))
    if progress:
        progress("records read", len(data.sources), len(data.sources))

    format = _common_format(parts, data.format)
    records = []
    for part in parts:
        for i, row in enumerate(part.rows):
            record = _normalise(row, format, part.where(i), data.system_prompt)
            if record is not None:
                records.append(record)
    if not records:
        raise DataError(f"No records in {', '.join(data.sources)}.",
                        "Check that the files hold records (text records must not be empty).")

    random.Random(seed).shuffle(records)
    if data.max_records is not None:
        records = records[:data.max_records]
    n = len(records)
    n_eval = min(n - 1, max(1, round(n * data.eval_fraction))) if data.eval_fraction > 0 and n >= 2 else 0
    return records[n_eval:], records[:n_eval], format


def _normalise(row: Any, format: str, where: str, system_prompt: str | None) -> dict | None:
    converted = to_messages(row, format, where)
    fields = list(row)
    if isinstance(converted, str):
        return {"text": converted, "reference": None, "where": where, "fields": fields} if converted.strip() else None
    if system_prompt and not any(m["role"] == "system" for m in converted):
        converted.insert(0, {"role": "system", "content": system_prompt})
    reference = next(m["content"] for m in reversed(converted) if m["role"] == "assistant")
    return {"messages": converted, "reference": reference, "where": where, "fields": fields}


def _common_format(parts: list[_Part], chosen: str) -> str:
    if chosen != "auto":
        return chosen
    detected: dict[str, str] = {}  # format -> the first part that has it
    for part in parts:
        if part.rows:
            detected.setdefault(detect_format(part.rows[0], part.where(0)), part.name)
    if not detected:
        raise DataError("The data sources hold no records.", "Check the files: they are empty.")
    if len(detected) > 1:
        found = "; ".join(f"{name} is {format}" for format, name in detected.items())
        raise DataError(f"The data sources are in different formats: {found}.",
                        "Convert them to one format (messages suits all chat data), or train on them "
                        "in separate runs.")
    return next(iter(detected))


def _load_source(source: str, data: FinetuneData, seed: int) -> list[_Part]:
    if source == BUILTIN_TASKS:
        from engine.tasks.generators import generate
        return [_Part(f"{BUILTIN_TASKS} ({data.task})", generate(data.task, data.task_examples, seed), "example")]
    if source.startswith("builtin:"):
        raise DataError(f"Unknown built-in data '{source}'.",
                        f"The built-in instruction data is {BUILTIN_TASKS} (choose the task with data.task).")
    if source.startswith("hub:"):
        return [_load_hub(source[len("hub:"):])]

    path = Path(source).expanduser()
    if glob.has_magic(source):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not matches:
            raise DataError(f"The pattern {source} matches no file.",
                            "Check the folder and the pattern (e.g. data/**/*.jsonl for subfolders).")
        return [_load_file(p) for p in matches]
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return [_load_saved(path)]
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"The folder {path} holds no data file ({' '.join(FILE_SUFFIXES)}).",
                            "Put record files in it, or point data.sources at the files themselves.")
        return [_load_file(p) for p in files]
    if path.is_file():
        return [_load_file(path)]
    if _HUB_ID.match(source) and "/" in source and path.suffix.lower() not in FILE_SUFFIXES:
        return [_load_hub(source, also_missing_locally=True)]
    raise DataError(f"The data source {source} does not exist (no such file or folder).",
                    "Check the path; relative paths start from the folder the engine runs in.")


def _load_file(path: Path) -> _Part:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _load_parquet(path)
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type '{suffix or '(none)'}'.",
                        f"Use one of {' '.join(FILE_SUFFIXES)}.")
    text = _read_utf8(path)
    if suffix == ".txt":
        return _Part(str(path), [{"text": text}], "record")
    if suffix == ".jsonl":
        return _jsonl(path, text)
    if suffix == ".json":
        return _json(path, text)
    return _csv(path, text)


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path} is not UTF-8 text: undecodable byte 0x{data[e.start]:02x} at byte offset "
                        f"{e.start} (line {line}).",
                        "Convert the file to UTF-8 (e.g. with iconv) and try again.") from None


def _jsonl(path: Path, text: str) -> _Part:
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno}).",
                            "Each line of a .jsonl file must be one JSON object, e.g. "
                            "{\"instruction\": \"...\", \"output\": \"...\"}.") from None
        numbers.append(number)
    return _Part(str(path), rows, "line", numbers)


def _json(path: Path, text: str) -> _Part:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg} at column {e.colno}).",
                        "A .json file must hold a list of records, or {\"data\": [records]}.") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records or {{\"data\": [...]}}, found {type(data).__name__}.",
                        "Write the records as a JSON list, or one record per line in a .jsonl file.")
    return _Part(str(path), data, "record")


def _csv(path: Path, text: str) -> _Part:
    csv.field_size_limit(sys.maxsize)  # answers are often longer than the 128 KiB default
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, numbers = [], []
    try:
        for row in reader:
            rows.append(row)
            numbers.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({e}).", "Check the quoting on that line.") from None
    return _Part(str(path), rows, "line", numbers)


def _load_parquet(path: Path) -> _Part:
    import pyarrow.parquet as pq
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise DataError(f"{path} is not a readable Parquet file: {_first_line(e)}",
                        "Check that the file was fully written, or export it again.") from None
    return _Part(str(path), rows, "row")


def _load_saved(folder: Path) -> _Part:
    import datasets
    try:
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=True)
    except Exception as e:  # noqa: BLE001 - a damaged save_to_disk folder raises many types
        raise DataError(f"{folder} looks like a saved dataset but cannot be read: {_first_line(e)}",
                        "Save it again with Dataset.save_to_disk.") from None
    return _Part(str(folder), _one_split(loaded, str(folder)).to_list(), "row")


def _load_hub(name: str, also_missing_locally: bool = False) -> _Part:
    import datasets
    try:
        loaded = datasets.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - offline, unknown id, gated repo: all are the user's to fix
        local = f" There is no local file or folder named {name} either." if also_missing_locally else ""
        raise DataError(f"Could not load the hub dataset '{name}': {_first_line(e)}.{local}",
                        "Check the dataset id and the network (HF_HUB_OFFLINE=1 forbids downloads), "
                        "or use local files.") from None
    return _Part(f"hub dataset {name}", _one_split(loaded, name).to_list(), "row")


def _one_split(loaded: Any, where: str) -> Any:
    if not hasattr(loaded, "keys"):  # a Dataset, not a DatasetDict
        return loaded
    if "train" in loaded:
        return loaded["train"]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise DataError(f"{where} has several splits and none is called 'train' ({', '.join(loaded)}).",
                    "Save the split to use on its own, or name it 'train'.")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")

