"""The spec of `kind: evaluate`: batch evaluation of prompt variants × models on a file of inputs
with expected outputs, scored by exact match, contains, regex match, BLEU and ROUGE-L, with latency
and token counts (docs/playground.md).

Imported by the GUI: pydantic only (the Jinja and regex checks import what they need when they run).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.generate_specs import ModelSource, Sampling
from engine.spec_base import ADVANCED, RUN_NAME_PATTERN, InferenceResources, StrictModel

PRESETS = ("zero-shot", "few-shot", "chain-of-thought")
METRICS = ("exact_match", "contains", "regex_match", "bleu", "rouge_l")


def regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as e:
        return f"not a valid regular expression: {e.msg} at position {e.pos}"
    return None


class FewShotExamples(StrictModel):
    """Where a few-shot variant finds its solved examples, and how many each prompt shows."""

    source: str | None = Field(
        None, title="Examples file",
        description="A .jsonl .json .csv or .parquet file of solved examples, with the same input and expected "
                    "fields as the data. Empty = the evaluation data itself (an example whose input is the row's "
                    "own is never shown with it).")
    k: int = Field(3, ge=1, le=64, title="Examples per prompt",
                   description="Examples put before each input, picked at random from the file with a seed "
                               "derived from the job's seed and the row (so every variant and model sees the same).")


class PromptVariant(StrictModel):
    """One way of asking: a preset, its Jinja template (or the preset's), an optional system prompt."""

    name: str = Field(..., min_length=1, max_length=64, title="Name",
                      description="What reports, the metrics table and the playground call this variant.")
    preset: Literal["zero-shot", "few-shot", "chain-of-thought"] = Field(
        "zero-shot", title="Preset",
        description="zero-shot: the input alone; few-shot: solved examples (input/output pairs) before the input; "
                    "chain-of-thought: asks for step-by-step reasoning ending in a line `Answer: …`, and the metrics "
                    "compare only that final answer.")
    template: str | None = Field(
        None, title="Template",
        description="Jinja template of the user message. Every field of a data row is a variable ({{ input }}, "
                    "{{ context }}, …; {{ row['a field'] }} for names that are not identifiers); few-shot also gets "
                    "`examples`, a list of example rows. A variable the row lacks is an error. Empty = the "
                    "preset's template.")
    system: str | None = Field(
        None, title="System prompt",
        description="A system message before the prompt (a Jinja template too). Without a chat template it is "
                    "put before the prompt text, separated by a blank line.")
    examples: FewShotExamples = Field(default_factory=FewShotExamples, title="Few-shot examples",
                                      description="For the few-shot preset: the examples file and how many to show.")
    answer_pattern: str | None = Field(
        None, title="Answer pattern", json_schema_extra=ADVANCED,
        description="A regular expression (Python syntax) that finds the final answer in the model's text: its first "
                    "group, or the whole match; the last match counts. Empty = the preset's rule (the whole answer; "
                    "for chain-of-thought the text after the last `Answer:`). No match: the whole answer "
                    "(chain-of-thought: its last non-empty line).")
    regex: str | None = Field(
        None, title="Regex to match",
        description="For the regex_match metric: a pattern (Python syntax) searched for in the final answer. "
                    "A row's own pattern (data.regex_field) takes precedence.")

    @field_validator("template", "system")
    @classmethod
    def _jinja_parses(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from engine.playground.templates import syntax_problem  # imports jinja2, only when checked

        problem = syntax_problem(value)
        if problem:
            raise ValueError(f"{problem}; fix the template (Jinja syntax: {{{{ variable }}}}, {{% for … %}}…"
                             f"{{% endfor %}})")
        return value

    @field_validator("answer_pattern", "regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        problem = None if value is None else regex_problem(value)
        if problem:
            raise ValueError(f"{problem}; fix the pattern (Python `re` syntax; escape . * + ? ( ) [ ] with \\)")
        return value

    @model_validator(mode="after")
    def _examples_only_for_few_shot(self) -> PromptVariant:
        if self.preset != "few-shot" and "examples" in self.model_fields_set:
            raise ValueError(f"examples is only used by the few-shot preset (this variant is {self.preset}); "
                             f"set preset: few-shot or remove examples")
        return self


class EvaluationData(StrictModel):
    """The examples: a file with one record per example, its input field(s) and its expected output."""

    path: str = Field(..., min_length=1, title="Data file",
                      description="A .jsonl, .json, .csv or .parquet file: one example per record, with the fields "
                                  "the templates use and the expected answer.")
    input_field: str = Field("input", min_length=1, title="Input field",
                             description="The field the presets ask about ({{ input }} in their templates). "
                                         "Custom templates may use any field of the row.")
    expected_field: str = Field("expected", min_length=1, title="Expected-output field",
                                description="The field holding the answer each example expects.")
    regex_field: str | None = Field(
        None, title="Regex field", json_schema_extra=ADVANCED,
        description="A field holding a regular expression per row for the regex_match metric (rows where it is "
                    "empty use the variant's `regex`). Empty = none.")
    id_field: str = Field("id", min_length=1, title="Id field", json_schema_extra=ADVANCED,
                          description="The field naming each example in the results; rows without it are named "
                                      "by file and line.")
    limit: int | None = Field(None, ge=1, title="Maximum examples",
                              description="Use at most this many examples (the first ones); empty = all.")


class EvaluationSampling(Sampling):
    """How answers are generated. Greedy by default: an evaluation compares prompts and models,
    not luck; with sampling on, each answer has its own seed (recorded in results.jsonl)."""

    do_sample: bool = Field(False, title="Sample",
                            description="Draw each token at random (shaped by the settings below), each answer "
                                        "from its own recorded seed; off = greedy, the model's most likely answer.")
    max_new_tokens: int = Field(64, ge=1, le=32768, title="Answer length",
                                description="Most tokens generated per answer (chain-of-thought needs more).")
    batch_size: int = Field(1, ge=1, le=4096, title="Batch size", json_schema_extra=ADVANCED,
                            description="Answers generated together. The latency of an answer is the time of its "
                                        "batch, so 1 measures each request alone; more is faster overall.")


class Scoring(StrictModel):
    """Which metrics the table shows, and how answers are normalised before comparing."""

    metrics: list[Literal["exact_match", "contains", "regex_match", "bleu", "rouge_l"]] = Field(
        ["exact_match", "contains", "bleu", "rouge_l"], min_length=1, title="Metrics",
        description="exact_match: the answer equals the expected one; contains: the expected text is in the answer; "
                    "regex_match: the answer matches the row's or variant's pattern; bleu: sacrebleu BLEU (0-100); "
                    "rouge_l: ROUGE-L F1 (0-1). Latency and tokens are always measured.")
    case_sensitive: bool = Field(False, title="Case sensitive",
                                 description="Compare letter case too. Off: exact_match, contains, BLEU and ROUGE-L "
                                             "ignore case (regex_match follows its pattern; use (?i) for that).")


class EvaluateSpec(StrictModel):
    kind: Literal["evaluate"] = Field(
        "evaluate", title="Kind",
        description="Score prompt variants × models on a file of inputs with expected outputs.")
    name: str = Field("evaluate", min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    models: list[ModelSource] = Field(..., min_length=1, title="Models",
                                      description="The models that answer, each loaded in turn.")
    data: EvaluationData = Field(..., title="Data", description="The examples and the names of their fields.")
    variants: list[PromptVariant] = Field(
        default_factory=lambda: [PromptVariant(name="zero-shot")], min_length=1, title="Prompt variants",
        description="The ways of asking compared; every model answers every example with each.")
    sampling: EvaluationSampling = Field(default_factory=EvaluationSampling, title="Sampling",
                                         description="How each answer is generated (greedy by default).")
    chat_template: Literal["auto", "model", "chatml", "plain", "none"] = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for a model: auto = the model's own chat template when it has one, "
                    "else the prompt text as is; model = its own template (an error if it has none); chatml or "
                    "plain = that template; none = the prompt text as is (base models that continue text).")
    scoring: Scoring = Field(default_factory=Scoring, title="Scoring",
                             description="The metrics of the table and how answers are compared.")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed",
                      description="Picks the few-shot examples of each row, and seeds each answer when sampling.")
    resources: InferenceResources = Field(default_factory=InferenceResources, title="Resources",
                                          description="The device and precision the models run with.")

    @model_validator(mode="after")
    def _consistent(self) -> EvaluateSpec:
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variants: the name {repeated[0]!r} is given to several variants; each needs its own, "
                             f"so the metrics table can tell them apart")
        labels = [m.label for m in self.models if m.label]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"models: the label {repeated[0]!r} is given to several models; each needs its own, "
                             f"so the metrics table can tell them apart")
        wants_regex = "regex_match" in self.scoring.metrics
        patterns = [i for i, v in enumerate(self.variants) if v.regex is not None]
        if wants_regex and not patterns and self.data.regex_field is None:
            raise ValueError("scoring.metrics lists regex_match, but no pattern is given: set `regex` on a variant, "
                             "or data.regex_field to a field holding each row's pattern")
        if self.data.regex_field is not None and not wants_regex:
            raise ValueError("data.regex_field is set, but scoring.metrics lacks regex_match, so its patterns would "
                             "be ignored; add regex_match to scoring.metrics or remove data.regex_field")
        if patterns and not wants_regex:
            raise ValueError(f"scoring.metrics lacks regex_match, so the pattern of variants[{patterns[0]}].regex "
                             f"would be ignored; add regex_match to scoring.metrics or remove the pattern")
        return self
