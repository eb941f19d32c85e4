"""What a playground session holds, without Qt: prompt variants (rows of the grid), models with their
own sampling (columns), a small table of template variables, every answer given, the chat, and the
batch evaluation's settings. The Playground page renders and edits it; the store saves it whole.

Prompts are rendered with the engine's own template code (engine/playground/templates.py), so a
variant reads here exactly as the `evaluate` job will read it, and `evaluate_spec_data` turns the
grid into that job's spec.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.finetune.tool_calls import calls_in, normalise_tools
from engine.playground.metrics import exact_match
from engine.playground.templates import (
    RenderedPrompt, compile_variant, extract_answer, pick_examples, preset_template, render,
)
from engine.specs.chat import PROMPT_TEMPLATE_CHOICES
from engine.specs.evaluate import PromptVariant

PRESETS = ("zero-shot", "few-shot", "chain-of-thought")
LAYOUTS = PROMPT_TEMPLATE_CHOICES  # a serve request's chat_template
INPUT_FIELD, EXPECTED_FIELD = "input", "expected"
PICK_TWO = "Pick two answers first: tick the boxes in their top-left corners."
EXAMPLES_SEED = 0  # the few-shot examples of a row, as the evaluate job's default seed picks them


def new_id() -> str:
    return secrets.token_hex(4)


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in (data or {}).items() if k in names}


@dataclass
class Variant:
    """One way of asking: a preset, a Jinja template (empty = the preset's) and a system prompt."""

    name: str
    preset: str = "zero-shot"
    template: str = ""
    system: str = ""
    examples_source: str = ""  # few-shot: a file of solved examples; empty = the table's rows
    examples_k: int = 3
    id: str = field(default_factory=new_id)

    def template_source(self, input_field: str = INPUT_FIELD, expected_field: str = EXPECTED_FIELD) -> str:
        return self.template or preset_template(self.preset, input_field, expected_field)

    def prompt_variant(self) -> PromptVariant:
        """The evaluate spec's variant (raises pydantic's ValidationError on a Jinja syntax error)."""
        data: dict[str, Any] = {"name": self.name, "preset": self.preset, "template": self.template or None,
                                "system": self.system or None}
        if self.preset == "few-shot":
            data["examples"] = {"source": self.examples_source or None, "k": self.examples_k}
        return PromptVariant(**data)


@dataclass
class Sampling:
    """A column's sampling (serve's `sampling`); seed None = a fresh one each time."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    seed: int | None = None

    def request(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary(self, short: bool = False) -> str:
        """"T 0.8 · top-p 0.95 · top-k 50 · ≤256 tokens · random seed" (`short`: "T 0.8 · p 0.95 · k 50 · …")."""
        p, k, tokens = ("p", "k", "tok") if short else ("top-p", "top-k", "tokens")
        parts = ["greedy" if self.temperature == 0 else f"T {self.temperature:g}"]
        if self.temperature:
            parts += [f"{p} {self.top_p:g}", f"{k} {self.top_k}"]
        parts.append(f"≤{self.max_new_tokens} {tokens}")
        if self.repetition_penalty != 1:
            parts.append(f"rep. {self.repetition_penalty:g}")
        parts.append(f"seed {self.seed}" if self.seed is not None else "random seed")
        return " · ".join(parts)


@dataclass
class ModelColumn:
    """A model that answers (a folder, a run id, a hub id; optionally with a PEFT adapter)."""

    path: str
    adapter: str = ""
    label: str = ""
    chat_template: str = "auto"
    sampling: Sampling = field(default_factory=Sampling)
    id: str = field(default_factory=new_id)

    def source(self) -> dict:
        """serve's and the evaluate spec's `model`."""
        return {"path": self.path, "adapter": self.adapter or None, "label": self.label or None}

    @classmethod
    def from_dict(cls, data: dict) -> ModelColumn:
        data = _known(cls, data)
        data["sampling"] = Sampling(**_known(Sampling, data.get("sampling") or {}))
        return cls(**data)


@dataclass
class CellOutput:
    """One answer: what it said, how it ended and its figures (the server's `done`)."""

    status: str = "idle"  # idle, waiting, streaming, done, cancelled, error
    text: str = ""
    prompt: str = ""  # the rendered user message it answered
    system: str = ""
    messages: list[dict] = field(default_factory=list)  # what was sent (chat: the whole history)
    tokens: int = 0
    prompt_tokens: int | None = None
    finish: str | None = None
    seed: int | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    total_s: float | None = None
    error: str = ""
    hint: str = ""

    @property
    def running(self) -> bool:
        return self.status in ("waiting", "streaming")

    def figures(self) -> str:
        """Tokens, prompt tokens, time to first token (TTFT), speed and latency, as far as known."""
        parts = [f"{self.tokens} token{'s' if self.tokens != 1 else ''}"]
        if self.prompt_tokens is not None:
            parts.append(f"prompt {self.prompt_tokens}")
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.total_s is not None:
            parts.append(f"{self.total_s:.2f} s")
        return " · ".join(parts)

    def apply_done(self, done: dict) -> None:
        self.text = str(done.get("text") if done.get("text") is not None else self.text)
        self.finish = done.get("finish")
        self.status = "cancelled" if self.finish == "cancelled" else "done"
        self.tokens = int(done.get("tokens") or self.tokens)
        for name in ("prompt_tokens", "seed", "ttft_s", "tokens_per_s", "total_s"):
            if done.get(name) is not None:
                setattr(self, name, done[name])

    @classmethod
    def from_dict(cls, data: dict) -> CellOutput:
        cell = cls(**_known(cls, data))
        if cell.running:  # saved while streaming: that answer will never end now
            cell.status = "cancelled"
        return cell


@dataclass
class Row:
    """A row of the variables table: the values a template reads ({{ input }}, {{ expected }}, …)."""

    values: dict = field(default_factory=dict)
    id: str = field(default_factory=new_id)


@dataclass
class ChatState:
    column: str = ""  # the id of the model column that answers
    system: str = ""
    turns: list[dict] = field(default_factory=list)  # {"role", "content"} in order; an answer's calls in "tool_calls"
    tools: str = ""  # the Tools box as typed: a JSON list of tool definitions offered with every turn


TOOLS_HINT = ('Write a JSON list of definitions: [{"name": "add", "description": "…", "parameters": {"type": '
              '"object", "properties": {…}}}] (OpenAI\'s {"type": "function", "function": {…}} works too).')


def read_tools(text: str) -> tuple[list[dict] | None, str]:
    """The Tools box's definitions as serve takes them (None when the box is empty), and what is
    wrong with them in words ("" when nothing is), read as fine-tuning reads a record's tools."""
    if not text.strip():
        return None, ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"Tools: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}."
    if not isinstance(value, list):
        return None, f"Tools: a {type(value).__name__ if not isinstance(value, dict) else 'single object'}, not a list."
    try:
        return normalise_tools(value, "Tools"), ""
    except DataError as e:
        return None, e.message


def answer_turn(text: str, model: str, offered_tools: bool) -> dict:
    """The chat turn of a finished answer: with the calls it makes (OpenAI's spelling, as serve takes
    them back) when tools were offered and it makes some."""
    turn = {"role": "assistant", "content": text, "model": model}
    calls = calls_in(text) if offered_tools else []
    if calls:
        turn["tool_calls"] = [{"type": "function", "function": call} for call in calls]
    return turn


def serve_messages(system: str, turns: list[dict]) -> list[dict]:
    """The conversation as serve takes it: an answer that calls tools is sent as its calls alone (the
    chat template writes them in its own markup; the text would repeat them)."""
    messages = [{"role": "system", "content": system}] if system.strip() else []
    for turn in turns:
        if turn.get("tool_calls"):
            messages.append({"role": "assistant", "content": None, "tool_calls": turn["tool_calls"]})
        else:
            messages.append({"role": turn["role"], "content": turn["content"]})
    return messages


@dataclass
class BatchSettings:
    data_path: str = ""
    input_field: str = INPUT_FIELD
    expected_field: str = EXPECTED_FIELD
    limit: int | None = None
    max_new_tokens: int = 64
    greedy: bool = True
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "contains", "bleu", "rouge_l"])
    tasks: list[str] = field(default_factory=list)  # benchmark tasks (the harness's names or task .yaml files)
    run_id: str = ""  # the last evaluation started from this session


@dataclass
class Session:
    name: str = ""
    variables: list[str] = field(default_factory=lambda: [INPUT_FIELD, EXPECTED_FIELD])
    rows: list[Row] = field(default_factory=lambda: [Row({INPUT_FIELD: "", EXPECTED_FIELD: ""})])
    current_row: int = 0
    variants: list[Variant] = field(default_factory=lambda: [Variant("zero-shot")])
    models: list[ModelColumn] = field(default_factory=list)
    outputs: dict[str, CellOutput] = field(default_factory=dict)  # by cell_key
    chat: ChatState = field(default_factory=ChatState)
    batch: BatchSettings = field(default_factory=BatchSettings)

    # ------------------------------------------------------------------------------ cells
    @property
    def row(self) -> Row:
        self.current_row = min(max(self.current_row, 0), len(self.rows) - 1)
        return self.rows[self.current_row]

    def cell_key(self, variant: Variant, model: ModelColumn, row: Row | None = None) -> str:
        return f"{(row or self.row).id}/{variant.id}/{model.id}"

    def output(self, variant: Variant, model: ModelColumn) -> CellOutput | None:
        return self.outputs.get(self.cell_key(variant, model))

    def check(self, key: str) -> tuple[bool, str] | None:
        """(whether the answer of cell `key` is its row's expected one, that expected text), judged as
        the evaluate job's exact match judges it: the final answer the variant's preset extracts,
        compared after normalising; None while there is no finished answer or no expected value."""
        row_id, variant_id, _ = key.split("/")
        row = next((r for r in self.rows if r.id == row_id), None)
        variant, output = self.variant(variant_id), self.outputs.get(key)
        expected = str((row.values if row else {}).get(self.expected_field()) or "").strip()
        if not expected or variant is None or output is None or output.status != "done":
            return None
        return exact_match(extract_answer(output.text, variant.preset), expected), expected

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    def model(self, column_id: str) -> ModelColumn | None:
        return next((m for m in self.models if m.id == column_id), None)

    def describe_key(self, key: str) -> str:
        """"model / variant" for the cell `key`."""
        _, variant_id, column_id = key.split("/")
        variant, model = self.variant(variant_id), self.model(column_id)
        return f"{model.label if model else '?'} / {variant.name if variant else '?'}"

    def input_field(self) -> str:
        return INPUT_FIELD if INPUT_FIELD in self.variables else (self.variables[0] if self.variables else INPUT_FIELD)

    def expected_field(self) -> str:
        return EXPECTED_FIELD

    def render(self, variant: Variant) -> RenderedPrompt:
        """`variant`'s prompt for the current row. Raises TemplateError (a variable the row lacks,
        a bad template) or DataError (a few-shot examples file that cannot be read)."""
        compiled = compile_variant(variant.prompt_variant(), self.variants.index(variant), self.input_field(),
                                   self.expected_field())
        values = self.row.values
        examples = None
        if variant.preset == "few-shot":
            examples = pick_examples(self._examples_pool(variant), variant.examples_k, EXAMPLES_SEED,
                                     self.current_row, values.get(self.input_field()), self.input_field())
        return render(compiled, values, f"row {self.current_row + 1}", examples)

    def _examples_pool(self, variant: Variant) -> list[dict]:
        if variant.examples_source:
            from engine.playground.data import load_shots
            from engine.specs.evaluate import EvaluationData

            data = EvaluationData(path=variant.examples_source, input_field=self.input_field(),
                                  expected_field=self.expected_field())
            return load_shots(variant.examples_source, data, f"the examples file of variant '{variant.name}'")
        # Without a file, the table's other rows that have an expected answer are the solved examples.
        expected = self.expected_field()
        return [r.values for r in self.rows if r is not self.row and str(r.values.get(expected) or "").strip()]

    # ------------------------------------------------------------------------------ labels
    def unique_label(self, label: str, column: ModelColumn | None = None) -> str:
        taken = {m.label for m in self.models if m is not column}
        unique, n = label, 2
        while unique in taken:
            unique, n = f"{label} #{n}", n + 1
        return unique

    def unique_variant_name(self, name: str) -> str:
        taken = {v.name for v in self.variants}
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        return unique

    # ------------------------------------------------------------------------------ storage
    def to_parts(self) -> dict:
        """The store's columns: variants, models, rows, outputs, and the rest as extra."""
        return {"variants": [asdict(v) for v in self.variants], "models": [asdict(m) for m in self.models],
                "rows": [asdict(r) for r in self.rows],
                "outputs": {k: asdict(v) for k, v in self.outputs.items()},
                "extra": {"variables": list(self.variables), "current_row": self.current_row,
                          "chat": asdict(self.chat), "batch": asdict(self.batch)}}

    @classmethod
    def from_parts(cls, name: str, variants: list, models: list, rows: list, outputs: dict,
                   extra: dict) -> Session:
        extra = extra or {}
        session = cls(name=name)
        session.variables = list(extra.get("variables") or session.variables)
        session.rows = [Row(**_known(Row, r)) for r in rows or []] or session.rows
        session.current_row = int(extra.get("current_row") or 0)
        session.variants = [Variant(**_known(Variant, v)) for v in variants or []] or session.variants
        session.models = [ModelColumn.from_dict(m) for m in models or []]
        session.outputs = {k: CellOutput.from_dict(v) for k, v in (outputs or {}).items()}
        session.chat = ChatState(**_known(ChatState, extra.get("chat") or {}))
        session.batch = BatchSettings(**_known(BatchSettings, extra.get("batch") or {}))
        return session


def problem_text(error: Exception) -> tuple[str, str]:
    """(message, hint) for a prompt that cannot be made: a template error, an examples file that
    cannot be read, a variant whose Jinja does not parse (pydantic's errors, said plainly)."""
    from engine.errors import UserError

    if isinstance(error, UserError):
        return error.message, error.hint
    if hasattr(error, "errors"):  # pydantic's ValidationError: the field validators' own sentences
        problems = [str(e.get("msg", "")).removeprefix("Value error, ") for e in error.errors()]
        return "A variant's template is not valid: " + "; ".join(problems), "Fix the template (Jinja syntax)."
    return str(error).splitlines()[0] if str(error) else type(error).__name__, ""


def run_name(text: str) -> str:
    """A run name (letters, digits, - _ .) made of a session name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:48]
    return cleaned or "playground"


def evaluate_spec_data(session: Session) -> dict:
    """The `kind: evaluate` spec of the grid: every variant × model on the batch settings' file, and
    the benchmark tasks on every model; either may be left out (no file, no tasks)."""
    batch = session.batch
    layouts = {m.chat_template for m in session.models}
    spec: dict[str, Any] = {
        "kind": "evaluate", "name": run_name(f"{session.name or 'playground'}-eval"),
        "models": [{k: v for k, v in m.source().items() if v is not None} for m in session.models],
        # One layout for every model: theirs when all columns agree, else each model's own (auto).
        "chat_template": layouts.pop() if len(layouts) == 1 else "auto"}
    if batch.tasks:
        spec["harness"] = {"tasks": [str(Path(t).expanduser()) if t.lower().endswith((".yaml", ".yml")) else t
                                     for t in batch.tasks]}
        if batch.limit:
            spec["harness"]["limit"] = batch.limit
    if not batch.data_path and batch.tasks:
        return spec
    data: dict[str, Any] = {"path": str(Path(batch.data_path).expanduser()) if batch.data_path else "",
                            "input_field": batch.input_field or INPUT_FIELD,
                            "expected_field": batch.expected_field or EXPECTED_FIELD}
    if batch.limit:
        data["limit"] = batch.limit
    first = session.models[0].sampling if session.models else Sampling()
    sampling: dict[str, Any] = {"do_sample": not batch.greedy, "max_new_tokens": batch.max_new_tokens}
    if not batch.greedy:
        sampling |= {"temperature": first.temperature or 0.8, "top_p": first.top_p, "top_k": first.top_k,
                     "repetition_penalty": first.repetition_penalty}
    return spec | {"data": data,
                   "variants": [v.prompt_variant().model_dump(mode="json", exclude_defaults=True) | {"name": v.name}
                                for v in session.variants],
                   "sampling": sampling, "scoring": {"metrics": list(batch.metrics) or ["exact_match"]}}
