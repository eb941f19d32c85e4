"""Load the instruction records of a FinetuneData into train and eval lists of normalised records.

A source is `builtin:tasks` (generated tasks with checkable answers: data.task, data.task_examples)
or anything the data layer finds and reads (engine/data/locate.py, reader.py): files (.jsonl, .json,
.csv, .parquet, or .txt for the text format: one text record per file, paragraph or line, as
data.txt_documents says), globs, folders, entries of a LLaMA-Factory dataset_info.json, saved
datasets (their train split, or their only split) and hub dataset ids.

Each file (or dataset) has one format, detected from its first record unless data.format names
it; all sources must share it. A normalised record is {"messages": [{"role", "content"}, ...],
"reference": the last assistant answer, "where": "file, line n", "fields": the source record's
field names}, with "tools" (the definitions, as templates take them) when the record has some and
"reference_calls" ([{"name", "arguments"}]) when the last answer calls tools; or, for the text
format, {"text": str, "reference": None, "where", "fields"}.
Bad input raises DataError naming the file, the record and the fields; a broken record stops the
run (it is a setting or data problem to fix).
"""

from __future__ import annotations

import random
from typing import Any, Callable

from engine.data.locate import DataSource, dataset_records, open_dataset, resolve_source
from engine.data.reader import Record
from engine.errors import DataError
from engine.finetune.formats import detect_format, record_tools, to_messages
from engine.finetune.tool_calls import call_list, calls_text
from engine.specs.finetune import FinetuneData

Progress = Callable[[str, int, int | None], None]
BUILTIN_TASKS = "builtin:tasks"
FIELD = "data.sources"


def load_records(data: FinetuneData, seed: int,
                 progress: Progress | None = None) -> tuple[list[dict], list[dict], str]:
    """Read every source, normalise its records, shuffle with `seed`, cap at max_records, hold out eval.

    Returns (train, eval, format): eval is empty when eval_fraction is 0 or there is a single
    record, and has at least one record otherwise; format is the one given or detected.
    `progress(message, done, total)` is called as each source is read.
    """
    parts: list[list[Record]] = []  # the records of each file or dataset: each has one format
    for i, source in enumerate(data.sources):
        if progress:
            progress(f"reading {source}", i, len(data.sources))
        parts.extend(_read_source(resolve_source(source, FIELD, [BUILTIN_TASKS]), data, seed))
    if progress:
        progress("records read", len(data.sources), len(data.sources))

    format = _common_format(parts, data.format, data.sources)
    records = []
    for part in parts:
        for row in part:
            record = _normalise(row.value, format, row.where, data.system_prompt)
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
    record = {"messages": converted, "where": where, "fields": fields}
    tools = record_tools(row, format, where)
    if tools:
        record["tools"] = tools
    last = next(m for m in reversed(converted) if m["role"] == "assistant")
    if last.get("tool_calls"):  # scored by the calls an answer makes, not by its wording
        record["reference_calls"] = call_list(last["tool_calls"])
        record["reference"] = calls_text(record["reference_calls"])
    else:
        record["reference"] = last["content"]
    return record


def _common_format(parts: list[list[Record]], chosen: str, sources: list[str]) -> str:
    if chosen != "auto":
        return chosen
    detected: dict[str, str] = {}  # format -> the first source that has it
    for part in parts:
        if part:
            detected.setdefault(detect_format(part[0].value, part[0].where), part[0].source)
    if not detected:
        raise DataError(f"No records in {', '.join(sources)}: the files are empty.",
                        "Check data.sources: each file needs at least one record.")
    if len(detected) > 1:
        found = "; ".join(f"{name} is {format}" for format, name in detected.items())
        raise DataError(f"The data sources are in different formats: {found}.",
                        "Convert them to one format (messages suits all chat data), or train on them "
                        "in separate runs.")
    return next(iter(detected))


def _read_source(source: DataSource, data: FinetuneData, seed: int) -> list[list[Record]]:
    if source.kind == "builtin":
        from engine.tasks import generators, tool_use

        name = f"{BUILTIN_TASKS} ({data.task})"
        rows = (tool_use.generate(data.task_examples, seed) if data.task == "tools"
                else generators.generate(data.task, data.task_examples, seed))
        return [[Record(row, name, "example", i) for i, row in enumerate(rows, start=1)]]
    if source.kind == "files":
        return [list(source.records(path, txt_documents=data.txt_documents)) for path in source.files]
    return [list(dataset_records(open_dataset(source, FIELD), source.name))]
