"""The spec of `kind: evaluate`: models judged by two backends, on the same loaded model — prompt
variants on a file of inputs with expected outputs, scored by exact match, contains, regex match,
BLEU and ROUGE-L, with latency and token counts (`data`, `variants`, `scoring`; docs/playground.md),
and benchmark tasks run by lm-evaluation-harness, from its registry or from local YAML files
(`harness`; docs/evaluation.md).

Imported by the GUI: pydantic only (the Jinja and regex checks import what they need when they run).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.playground.sandbox import syntax_problem
from engine.specs.base import ADVANCED, InferenceResources, StrictModel, run_name, seed_field
from engine.specs.chat import PRESET_NAMES, PromptTemplateChoice
from engine.specs.generate import ModelSource, Sampling

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
        # Compared with the default, not with the fields given: a resolved spec (run/spec.yaml) holds them all.
        if self.preset != "few-shot" and self.examples != FewShotExamples():
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


LOCAL_TASK_SUFFIXES = (".yaml", ".yml")


def is_local_task(task: str) -> bool:
    """Whether a `harness.tasks` entry names a task file of ours rather than a task of the registry."""
    return task.lower().endswith(LOCAL_TASK_SUFFIXES) or "/" in task or "\\" in task


class HarnessTasks(StrictModel):
    """Benchmark tasks that lm-evaluation-harness runs on each model, scored by the task's own metrics
    with their standard errors."""

    tasks: list[str] = Field(
        ..., min_length=1, title="Tasks",
        description="Names of tasks, groups or tags of the harness's registry (`arc_easy`, `hellaswag`, `mmlu`; "
                    "their data comes from the Hugging Face hub, so they need the network the first time), or "
                    "task files of your own: a .yaml in the harness's format whose `dataset_path: json` (or csv, "
                    "parquet) reads a local data file named in `dataset_kwargs.data_files`, relative to the YAML.")
    num_fewshot: int | None = Field(
        None, ge=0, le=100, title="Few-shot examples",
        description="Solved examples put before each question. Empty = each task's own setting (0 for most).")
    limit: int | None = Field(None, ge=1, title="Examples per task",
                              description="Score at most this many examples of each task (the first ones); "
                                          "empty = all. A limited score is not comparable with published ones.")
    batch_size: int = Field(1, ge=1, le=1024, title="Batch size", json_schema_extra=ADVANCED,
                            description="Requests the model scores together.")
    bootstrap_iters: int = Field(
        1000, ge=0, le=100_000, title="Bootstrap resamples", json_schema_extra=ADVANCED,
        description="Resamples for the standard error of metrics that are not means (BLEU, F1 and the like); "
                    "means get theirs in closed form. 0 = no standard errors at all.")

    @field_validator("tasks")
    @classmethod
    def _named_once(cls, value: list[str]) -> list[str]:
        value = [task.strip() for task in value]
        if any(not task for task in value):
            raise ValueError("a task is empty; give a task name of the harness's registry or the path of a task .yaml")
        repeated = sorted({task for task in value if value.count(task) > 1})
        if repeated:
            raise ValueError(f"the task {repeated[0]!r} is listed twice; list each task once")
        return value


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
    name: str = run_name("evaluate")
    models: list[ModelSource] = Field(..., min_length=1, title="Models",
                                      description="The models that answer, each loaded in turn.")
    data: EvaluationData | None = Field(
        None, title="Data",
        description="The examples the prompt variants ask, and the names of their fields. Empty = no prompt "
                    "variants (benchmark tasks only).")
    harness: HarnessTasks | None = Field(
        None, title="Benchmark tasks",
        description="Tasks of lm-evaluation-harness run on each model after its prompt variants. Empty = none.")
    variants: list[PromptVariant] = Field(
        default_factory=lambda: [PromptVariant(name="zero-shot")], min_length=1, title="Prompt variants",
        description="The ways of asking compared; every model answers every example with each.")
    sampling: EvaluationSampling = Field(default_factory=EvaluationSampling, title="Sampling",
                                         description="How each answer is generated (greedy by default).")
    chat_template: PromptTemplateChoice = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for a model: auto = the model's own chat template when it has one, "
                    "else the prompt text as is; model = its own template (an error if it has none); "
                    + PRESET_NAMES + " = that preset; none = the prompt text as is (base models that continue text).")
    scoring: Scoring = Field(default_factory=Scoring, title="Scoring",
                             description="The metrics of the table and how answers are compared.")
    seed: int = seed_field("Picks the few-shot examples of each row, and seeds each answer when sampling.")
    resources: InferenceResources = Field(default_factory=InferenceResources, title="Resources",
                                          description="The device and precision the models run with.")

    @model_validator(mode="after")
    def _consistent(self) -> EvaluateSpec:
        if self.data is None and self.harness is None:
            raise ValueError("nothing to evaluate: give data (examples for prompt variants), harness.tasks "
                             "(benchmark tasks), or both")
        labels = [m.label for m in self.models if m.label]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"models: the label {repeated[0]!r} is given to several models; each needs its own, "
                             f"so the metrics table can tell them apart")
        if self.data is None:
            # Compared with the defaults, not with the fields given: a resolved spec (run/spec.yaml) holds them all.
            default = EvaluateSpec.model_fields
            unused = [name for name in ("variants", "scoring")
                      if getattr(self, name) != default[name].get_default(call_default_factory=True)]
            if unused:
                raise ValueError(f"{unused[0]} is only used with data (the examples the prompt variants ask); "
                                 f"add data or remove {unused[0]}")
            return self
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variants: the name {repeated[0]!r} is given to several variants; each needs its own, "
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
