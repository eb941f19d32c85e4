"""The examples of an evaluate job, and its plan: every variant's prompt for every example, rendered
before any model loads, so a bad file, row or template stops the run at once with its place named.

An example is a record of a .jsonl, .json, .csv or .parquet file (read by engine/data/reader.py:
the same messages for broken files as every other data file). Every field of the record is a template variable;
data.expected_field holds the expected answer (numbers are taken as text), data.regex_field an
optional pattern per row, data.id_field the name results give it (else `file:line`, or `file:#n`
for record n of a .json or .parquet file, from 0).

A record with tool definitions in `tools` (as fine-tuning reads them: engine/finetune/tool_calls.py)
is asked with them through the chat template; when its expected answer is a call (an object, a list
of calls, or either as a JSON string) the answer is scored by the calls it makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.reader import Record, kind_of, read_records
from engine.errors import DataError
from engine.finetune.tool_calls import call_list, calls_text, normalise_calls, normalise_tools
from engine.playground.templates import CompiledVariant, RenderedPrompt, compile_variant, pick_examples, render
from engine.specs.evaluate import EvaluateSpec, EvaluationData, regex_problem

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Example:
    index: int
    id: str
    fields: dict  # the record: the template's variables
    expected: str
    where: str  # "data.jsonl, line 3", for messages
    pattern: str | None = None  # the row's regex_match pattern (data.regex_field)
    tools: list[dict] | None = None  # tool definitions, as chat templates take them
    calls: list[dict] | None = None  # the {"name", "arguments"} calls expected instead of a text answer


@dataclass
class Plan:
    """What an evaluate job asks: prompts[v][i] is variant v's prompt for example i."""

    examples: list[Example]
    variants: list[CompiledVariant]
    prompts: list[list[RenderedPrompt]]
    notes: list[str] = field(default_factory=list)  # warnings for the run's log

    @property
    def calls(self) -> bool:
        """Whether some example expects tool calls (the table then has a call_accuracy column)."""
        return any(e.calls for e in self.examples)


def load_examples(data: EvaluationData) -> list[Example]:
    """The examples of `data.path`, cut to `data.limit`. Raises DataError naming the file, the line
    and the field when the file is missing or a row lacks its expected answer or has a bad pattern."""
    records = _read(data.path, "data.path")
    examples = []
    for i, record in enumerate(records[:data.limit] if data.limit else records):
        row, where = record.value, record.where
        _check_record(row, where, "data.path")
        tools = normalise_tools(row.get("tools"), f"{where}, field 'tools'")
        calls = _expected_calls(row.get(data.expected_field), where, data.expected_field) if tools else None
        expected = calls_text(calls) if calls else _text(
            row, data.expected_field, where, "data.expected_field",
            "Give every row its expected answer in that field, or set data.expected_field to the field that "
            "holds it (a tool call is expected only of rows that offer tools in 'tools').")
        pattern = None
        if data.regex_field is not None and row.get(data.regex_field) not in (None, ""):
            pattern = str(row[data.regex_field])
            problem = regex_problem(pattern)
            if problem:
                raise DataError(f"{where}: the pattern in field '{data.regex_field}' (data.regex_field) is {problem}.",
                                "Fix the pattern on that row (Python `re` syntax; escape . * + ? ( ) [ ] with \\).")
        given = row.get(data.id_field)
        has_id = isinstance(given, (str, int)) and not isinstance(given, bool) and str(given).strip()
        examples.append(Example(i, str(given) if has_id else record.place, row, expected, where, pattern, tools,
                                calls))
    if not examples:
        raise DataError(f"The data file {data.path} (data.path) holds no examples.",
                        "Put one example per record in it: its input field(s) and the expected answer.")
    return examples


def load_shots(source: str, data: EvaluationData, field_path: str) -> list[dict]:
    """The solved examples of a few-shot file: records with data.input_field and data.expected_field."""
    records = _read(source, field_path)
    for record in records:
        row = record.value
        _check_record(row, record.where, field_path)
        for name, setting in ((data.input_field, "data.input_field"), (data.expected_field, "data.expected_field")):
            if row.get(name) is None:
                raise DataError(f"{record.where}: this few-shot example has no field '{name}' ({setting}); it has "
                                f"{_fields(row)}.",
                                f"Give every example of {source} ({field_path}) the same input and expected fields "
                                f"as the data.")
    if not records:
        raise DataError(f"The few-shot examples file {source} ({field_path}) holds no examples.",
                        "Put solved examples in it, or leave the field empty to pick them from the data.")
    return [record.value for record in records]


def prepare(spec: EvaluateSpec) -> Plan:
    """Read the examples, compile the variants and render every prompt (text only; the chat
    template is applied per model). Raises DataError or TemplateError before anything is generated."""
    data = spec.data
    examples = load_examples(data)
    variants = [compile_variant(v, i, data.input_field, data.expected_field) for i, v in enumerate(spec.variants)]
    plan = Plan(examples, variants, [])
    pools: dict[str | None, list[dict]] = {None: [e.fields for e in examples]}
    for variant in variants:
        pool: list[dict] = []
        if variant.preset == "few-shot":
            source = variant.examples_source
            if source not in pools:
                pools[source] = load_shots(source, data, f"{variant.field}.examples.source")
            pool = pools[source]
            if len(pool) < variant.examples_k + (source is None):
                plan.notes.append(f"Variant '{variant.name}' asks for {variant.examples_k} examples per prompt, but "
                                  f"{source or data.path} has only {len(pool)}: prompts show fewer.")
        plan.prompts.append([
            render(variant, e.fields, e.where,
                   pick_examples(pool, variant.examples_k, spec.seed, e.index, e.fields.get(data.input_field),
                                 data.input_field) if pool else None)
            for e in examples])
        for prompt, example in zip(plan.prompts[-1], examples):
            prompt.tools = example.tools
    return plan


def _expected_calls(value: Any, where: str, name: str) -> list[dict] | None:
    """The calls a row offering tools expects: its expected field as an object or a list (or a JSON
    string of one); None when it expects text. Raises DataError for a call that cannot be read."""
    if isinstance(value, str):
        if not value.strip().startswith(("{", "[")):
            return None
        try:
            return call_list(normalise_calls(value, f"{where}, field '{name}'"))
        except DataError:
            return None  # text that happens to start with a bracket
    if isinstance(value, (dict, list)):
        return call_list(normalise_calls(value, f"{where}, field '{name}' (data.expected_field)"))
    return None


def _read(path: str, field_path: str) -> list[Record]:
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"The file {path} ({field_path}) does not exist.",
                        "Check the path; relative paths start from the folder the engine runs in.")
    if file.is_dir() or file.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path} ({field_path}) is not a {', '.join(SUFFIXES)} file.",
                        "Point it at one file of examples: JSON lines, a JSON list, CSV with a header, or Parquet.")
    return read_records(file)


def _check_record(row: Any, where: str, field_path: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where} ({field_path}): expected a record (a JSON object with named fields), found "
                        f"{kind_of(row)}.",
                        "Write each example as an object: {\"input\": …, \"expected\": …}.")


def _text(row: dict, name: str, where: str, setting: str, hint: str) -> str:
    value = row.get(name)
    if value is None:
        raise DataError(f"{where}: no field '{name}' ({setting}); this row has {_fields(row)}.", hint)
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: field '{name}' ({setting}) is empty.", hint)
    if isinstance(value, (dict, list)):
        raise DataError(f"{where}: field '{name}' ({setting}) is {kind_of(value)}, not text.", hint)
    return value if isinstance(value, str) else str(value)


def _fields(record: dict) -> str:
    return ", ".join(f"'{k}'" for k in record) or "no fields"
