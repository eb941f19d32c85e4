"""Load the documents of a DataSpec (a pretraining or tokenizer corpus) into train and eval splits.

A source is `builtin:python-docs` (docstrings of this Python's standard library, see builtin.py) or
anything the data layer finds and reads (locate.py, reader.py): files (.txt, one document per file,
paragraph or line as data.txt_documents says;
.jsonl, .json, .csv or .parquet, the text in `text_field`), globs, folders, saved datasets (their
train split, or their only split) and hub dataset ids. Columnar sources (Parquet, saved and hub
datasets) stay in Arrow.

Bad input raises DataError naming the file, line and field, with a hint; never a raw traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import datasets

from engine.data.builtin import SOURCE_NAME as BUILTIN_PYTHON_DOCS
from engine.data.builtin import python_docs_documents
from engine.data.locate import open_dataset, resolve_source
from engine.data.reader import iter_records, kind_of, parquet_columns, parquet_table
from engine.errors import DataError
from engine.specs.corpus import DataSpec

Progress = Callable[[str, int, int | None], None]
FIELD = "data.sources"
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
        parts.append(_load_source(source, spec))
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


def _load_source(source: str, spec: DataSpec) -> datasets.Dataset:
    found = resolve_source(source, FIELD, [BUILTIN_PYTHON_DOCS])
    if found.kind == "builtin":
        return _texts_dataset([doc["text"] for doc in python_docs_documents()])
    if found.kind == "files":
        return _load_files(list(found.files), spec)
    return _text_column(open_dataset(found, FIELD), spec.text_field, found.name)


def _load_files(paths: list[Path], spec: DataSpec) -> datasets.Dataset:
    # Texts of consecutive small files are gathered into one table: a folder of thousands of .txt
    # files must not become thousands of one-row datasets.
    parts: list[datasets.Dataset] = []
    texts: list[str] = []
    for path in paths:
        if path.suffix.lower() == ".parquet":
            if texts:
                parts.append(_texts_dataset(texts))
                texts = []
            parts.append(_load_parquet(path, spec.text_field))
            continue
        texts.extend(_record_text(record.value, spec.text_field, record.where)
                     for record in iter_records(path, text_field=spec.text_field, txt_documents=spec.txt_documents))
    if texts or not parts:
        parts.append(_texts_dataset(texts))
    return _concat(parts)


def _record_text(record: Any, text_field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with a '{text_field}' field, found {kind_of(record)}.",
                        "Write each record as an object, e.g. {\"text\": \"...\"}.")
    if text_field not in record:
        fields = ", ".join(f"'{k}'" for k in record) or "none"
        raise DataError(f"{where}: no field '{text_field}' (fields: {fields}).",
                        "Set data.text_field to the field that holds the text.")
    value = record[text_field]
    if value is None:
        return ""  # missing text is an empty document, dropped later
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{text_field}' is {kind_of(value)}, not text.",
                        "Set data.text_field to a field that holds strings.")
    return value


def _load_parquet(path: Path, text_field: str) -> datasets.Dataset:
    _check_column(parquet_columns(path), text_field, str(path))  # before reading only that column
    return _text_column(datasets.Dataset(parquet_table(path, [text_field])), text_field, str(path))


def _check_column(columns: list[str], text_field: str, where: str) -> None:
    if text_field not in columns:
        names = ", ".join(f"'{c}'" for c in columns) or "none"
        raise DataError(f"{where}: no column '{text_field}' (columns: {names}).",
                        "Set data.text_field to the column that holds the text.")


def _text_column(dataset: datasets.Dataset, text_field: str, where: str) -> datasets.Dataset:
    _check_column(dataset.column_names, text_field, where)
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

