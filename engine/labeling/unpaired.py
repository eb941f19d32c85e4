"""Unpaired preference records — a prompt, one answer and whether it is good — and how each file
format spells them (what KTO trains on; pairs give two such records each).

Formats:
- trl-unpaired: TRL's unpaired preference format, {"prompt", "completion", "label"} with `label`
  true for a good answer; prompt and completion as texts or as lists of {"role", "content"} messages;
- llamafactory-kto: LLaMA-Factory's KTO data, a record of its alpaca style {"instruction", "input",
  "output", optional "system", "history"} or sharegpt style {"conversations" (or "messages"):
  [{"from", "value"}, …] ending with the answer} with a boolean `kto_tag`.

Imported by light code: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.reader import Record, iter_records, kind_of
from engine.errors import DataError
from engine.labeling.records import (UNPAIRED_FIELDS, Problem, RecordError, answer, line_of, llamafactory_prompt,
                                     message_list, prompt_text, sharegpt_turn, text_field, user_prompt)

UNPAIRED_FORMATS = UNPAIRED_FIELDS


@dataclass(frozen=True)
class UnpairedRecord:
    prompt_messages: list[dict]
    completion: list[dict]  # the answer's messages
    good: bool
    where: str


@dataclass
class UnpairedRead:
    format: str
    records: list[UnpairedRecord]
    problems: list[Problem]
    total: int = 0  # records in the file, readable or not


def unpaired_format(raw: Any) -> str | None:
    """The unpaired format whose fields `raw` has, or None."""
    if not isinstance(raw, dict):
        return None
    if "kto_tag" in raw:
        return "llamafactory-kto"
    if "completion" in raw and "label" in raw:
        return "trl-unpaired"
    return None


def parse_unpaired(fmt: str, raw: Any) -> tuple[list[dict], list[dict], bool]:
    """(prompt messages, answer messages, good) of a `fmt` record; RecordError says what is wrong."""
    if not isinstance(raw, dict):
        raise RecordError(f"expected a JSON object, found {kind_of(raw)}")
    key = "label" if fmt == "trl-unpaired" else "kto_tag"
    good = raw.get(key)
    if not isinstance(good, bool):
        raise RecordError(f"{key} is {kind_of(good)}; it must be true (a good answer) or false (a bad one)")
    if fmt == "trl-unpaired":
        if isinstance(raw.get("prompt"), list):
            prompt, completion = message_list(raw, "prompt"), message_list(raw, "completion")
        else:
            prompt, completion = user_prompt(text_field(raw, "prompt")), answer(text_field(raw, "completion"))
    elif "instruction" in raw:  # LLaMA-Factory alpaca: the answer is `output`
        prompt = llamafactory_prompt(raw)[0]
        completion = answer(text_field(raw, "output"))
    else:  # LLaMA-Factory sharegpt: the conversation ends with the answer
        turns_key = "conversations" if "conversations" in raw else "messages"
        turns = raw.get(turns_key)
        if not isinstance(turns, list) or len(turns) < 2:
            raise RecordError(f"{turns_key} must be a list of turns ending with the answer being judged")
        last = sharegpt_turn(turns[-1], f"the last turn of {turns_key}")
        if last["role"] != "assistant":
            raise RecordError(f"the last turn of {turns_key} is {last['role']}; it must be the answer being judged")
        prompt = llamafactory_prompt({**raw, turns_key: turns[:-1]})[0]
        completion = [last]
    if not prompt_text(prompt).strip():
        raise RecordError("the prompt is empty")
    if not "".join(str(m.get("content") or "") for m in completion).strip():
        raise RecordError("the answer is empty")
    return prompt, completion, good


def read_unpaired_file(path: Path | str, fmt: str = "auto", reader=iter_records) -> UnpairedRead | None:
    """The records of a file of judged answers (`fmt` one of UNPAIRED_FORMATS, or "auto"), or None when
    `fmt` names a pair format, or is "auto" and the file's first record with a format holds a pair.
    `reader` reads the file's records (a DataSource's `records`, which maps a registry entry's fields).
    Raises DataError when the file cannot be read."""
    path = Path(path)
    if fmt != "auto" and fmt not in UNPAIRED_FORMATS:
        return None
    if not path.is_file():
        raise DataError(f"No preference file at {path}.", "Check the path (and that it is a file, not a folder).")
    problems: list[Problem] = []
    records = list(reader(path, source=path.name,
                          on_problem=lambda where, problem, hint: problems.append(Problem(where, problem))))
    return read_unpaired(records, problems, path, fmt)


def read_unpaired(records: list[Record], problems: list[Problem], path: Path, fmt: str = "auto") -> UnpairedRead | None:
    """The records of a file read as unpaired preferences (in `fmt`, or the format of the first record
    that has one), or None when that record says it holds pairs (or nothing it knows)."""
    if fmt == "auto":
        fmt = next((f for f in (unpaired_format(r.value) for r in records) if f), None)
    if fmt is None:
        return None
    total = len(records) + len(problems)
    found, problems = [], list(problems)
    for record in records:
        try:
            prompt, completion, good = parse_unpaired(fmt, record.value)
        except RecordError as e:
            problems.append(Problem(record.where, f"not a {fmt} record: {e}"))
            continue
        found.append(UnpairedRecord(prompt, completion, good, record.where))
    problems.sort(key=lambda p: line_of(p.where))
    return UnpairedRead(fmt, found, problems, total)

