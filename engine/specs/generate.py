"""The spec of `kind: generate`: sample several candidate answers per prompt from one or more models
(a base model, a checkpoint, a base model with a PEFT adapter), with a recorded seed per candidate,
and write them as a labeling batch that a labeling queue imports.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, InferenceResources, StrictModel, run_name, seed_field
from engine.specs.chat import PRESET_NAMES, PromptTemplateChoice


class ModelSource(StrictModel):
    """A model that answers: a base model, a checkpoint, or a base model with a PEFT adapter."""

    path: str = Field(
        ..., min_length=1, title="Model",
        description="A run id of this workspace (its merged model, model, or adapter on its base), a run or run "
                    "output folder, a Hugging Face model folder, a checkpoint folder (`runs/ID/checkpoints/"
                    "checkpoint-N`), a PEFT adapter folder (loaded on the base model it names), or a hub id such "
                    "as `Qwen/Qwen2.5-0.5B-Instruct` (needs the network).")
    adapter: str | None = Field(
        None, title="Adapter",
        description="A PEFT adapter put on this model: an adapter folder, or a fine-tuning run (id or folder) whose "
                    "output has one. Empty = the model alone.")
    label: str | None = Field(
        None, max_length=80, title="Label",
        description="The name annotators and reports see for this model's candidates. Empty = made from the run or "
                    "folder names (`run-id`, `run-id@checkpoint-200`, `base + adapter`).")
    trust_remote_code: bool = Field(False, title="Trust remote code", json_schema_extra=ADVANCED,
                                    description="Run the model repository's own Python code. Only for models you trust.")


class PromptSource(StrictModel):
    """The prompts every model answers, in source order."""

    sources: list[str] = Field(
        ["builtin:tasks"], min_length=1, title="Sources",
        description="Where the prompts come from: `builtin:tasks` (generated tasks with checkable answers), "
                    ".jsonl .json .csv .parquet files of records (a `prompt`, `messages`, `conversations`, or "
                    "`instruction` with optional `input`; an answer in the record is kept as its reference), .txt "
                    "files (one prompt per line), folders, saved datasets, or hub dataset ids (`hub:owner/name` "
                    "or `owner/name`).")
    field: str | None = Field(
        None, title="Prompt field", json_schema_extra=ADVANCED,
        description="The field (column) holding the prompt: text, or a list of chat messages. Empty = detected "
                    "from each record: prompt, messages, conversations, or instruction + input.")
    split: str = Field("train", min_length=1, title="Dataset split", json_schema_extra=ADVANCED,
                       description="The split read from hub datasets and from saved datasets that have several.")
    task: Literal["addition", "reverse", "sort"] = Field(
        "addition", title="Built-in task",
        description="For `builtin:tasks`: the task asked (multi-digit addition, reversing or sorting words); each "
                    "candidate is checked against the exact answer.")
    task_examples: int = Field(100, ge=1, le=1_000_000, title="Built-in task prompts",
                               description="For `builtin:tasks`: how many prompts to generate.")
    task_seed: int | None = Field(
        None, ge=0, le=2**32 - 1, title="Built-in task seed", json_schema_extra=ADVANCED,
        description="For `builtin:tasks`: the seed the prompts are generated with. Empty = the job's seed (the "
                    "same items a fine-tuning run with that seed trained on); pick another for unseen prompts.")
    system_prompt: str | None = Field(None, title="System prompt", json_schema_extra=ADVANCED,
                                      description="Prepended as a system message to every prompt that has none.")
    limit: int | None = Field(None, ge=1, title="Maximum prompts",
                              description="Use at most this many prompts (the first ones, in source order); "
                                          "empty = all.")


class Sampling(StrictModel):
    """How each candidate's tokens are drawn. These settings are the whole truth: a model's own
    generation defaults (its generation_config.json) are not applied."""

    do_sample: bool = Field(True, title="Sample",
                            description="Draw each token at random from the model's distribution (shaped by the "
                                        "settings below); off = greedy, one deterministic answer per model.")
    temperature: float = Field(0.8, gt=0.0, le=10.0, title="Temperature",
                               description="Below 1 sharpens the distribution (safer answers), above 1 flattens it "
                                           "(more varied ones).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, title="Top-p",
                         description="Sample among the most likely tokens whose probabilities add up to this "
                                     "(nucleus sampling); 1 = all tokens.")
    top_k: int = Field(50, ge=0, le=1_000_000, title="Top-k",
                       description="Sample among this many most likely tokens; 0 = no limit.")
    repetition_penalty: float = Field(1.0, ge=0.5, le=5.0, title="Repetition penalty", json_schema_extra=ADVANCED,
                                      description="Above 1 makes tokens already in the prompt or answer less likely; "
                                                  "1 = off.")
    max_new_tokens: int = Field(128, ge=1, le=32768, title="Answer length",
                                description="Most tokens generated per candidate; an answer cut here is marked "
                                            "finish: length.")
    batch_size: int = Field(16, ge=1, le=4096, title="Batch size", json_schema_extra=ADVANCED,
                            description="Candidates generated together. Each candidate draws from its own seeded "
                                        "generator, so the texts do not depend on it.")


class GenerateSpec(StrictModel):
    kind: Literal["generate"] = Field(
        "generate", title="Kind",
        description="Sample candidate answers to prompts from one or more models, as a batch for human labeling.")
    name: str = run_name("generate")
    models: list[ModelSource] = Field(..., min_length=1, title="Models",
                                      description="The models that answer, each loaded in turn.")
    prompts: PromptSource = Field(default_factory=PromptSource, title="Prompts")
    candidates_per_model: int = Field(2, ge=1, le=64, title="Candidates per model",
                                      description="Answers each model gives to each prompt.")
    sampling: Sampling = Field(default_factory=Sampling, title="Sampling")
    chat_template: PromptTemplateChoice = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for a model: auto = the model's own chat template when it has one, "
                    "else the prompt text as is; model = its own template (an error if it has none); "
                    + PRESET_NAMES + " = that preset; none = the prompt text as is (base models that continue text).")
    seed: int = seed_field("Base seed: candidate c of prompt p from model m is sampled with a seed derived from "
                           "(seed, m, p, c), recorded with it; the built-in task prompts use it too.")
    resources: InferenceResources = Field(default_factory=InferenceResources, title="Resources")

    @model_validator(mode="after")
    def _consistent(self) -> GenerateSpec:
        if not self.sampling.do_sample and self.candidates_per_model > 1:
            raise ValueError(f"sampling.do_sample is false, and greedy decoding gives a model one answer, so its "
                             f"{self.candidates_per_model} candidates (candidates_per_model) would all be the same; "
                             f"set sampling.do_sample: true or candidates_per_model: 1")
        if len(self.models) * self.candidates_per_model < 2:
            raise ValueError("candidates_per_model is 1 with a single model: a labeling item needs at least two "
                             "candidates to compare; raise candidates_per_model or add a model")
        labels = [m.label for m in self.models if m.label]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"models: the label {repeated[0]!r} is given to several models; each needs its own, "
                             f"so annotators and reports can tell their candidates apart")
        return self
