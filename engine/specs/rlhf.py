"""Pieces shared by the specs of the preference and RL jobs (`reward`, `dpo`, `grpo`, `ppo`).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.specs.base import ADVANCED, StepTraining, StrictModel, override
from engine.specs.chat import PRESET_NAMES, ChatTemplateChoice
from engine.specs.finetune import LoraSettings


class PolicyModel(StrictModel):
    path: str = Field(
        ..., min_length=1, title="Model",
        description="The model to start from: a run id of this workspace (its merged model or model; a fine-tuning "
                    "run's adapter on its base), a model folder, a checkpoint folder, or a hub id (needs the network).")
    adapter: str | None = Field(
        None, title="Adapter",
        description="A PEFT adapter put on the model first (a fine-tuning run or its adapter folder): the SFT model "
                    "when it was trained with LoRA. Empty = the model alone.")
    trust_remote_code: bool = Field(False, title="Trust remote code", json_schema_extra=ADVANCED,
                                    description="Run the model repository's own Python code. Only for models you trust.")


class PreferenceData(StrictModel):
    sources: list[str] = Field(
        ..., min_length=1, title="Preferences",
        description="Preferences: `queue:NAME` (a labeling queue of this workspace's store, by majority of its "
                    "labels), or files of pairs in TRL (prompt/chosen/rejected, plain or conversational), HH-RLHF or "
                    "LLaMA-Factory format, or of judged answers (TRL unpaired prompt/completion/label, LLaMA-Factory "
                    "kto_tag), detected per file. Every preference kind reads both: a pair is a good and a bad "
                    "answer, and good and bad answers to one prompt make pairs.")
    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, title="Held-out fraction",
                                 description="Share of pairs held out to measure pairwise accuracy (split by prompt, "
                                             "so a prompt's pairs are all on one side).")
    max_length: int = Field(512, ge=16, le=131072, title="Maximum length",
                            description="Tokens of prompt + answer; longer pairs are dropped and counted.")
    chat_template: ChatTemplateChoice = Field(
        "auto", title="Chat template",
        description="auto: the model's own chat template when it has one (an error if the data has several turns and "
                    "the model none); model: its own (required); " + PRESET_NAMES + ": that preset.")


class RLMethod(StrictModel):
    name: Literal["full", "lora"] = Field(
        "lora", title="Method", description="full: every weight; lora: low-rank adapters (less memory; the reference "
                                            "model is the same weights with the adapter switched off).")
    lora: LoraSettings = Field(default_factory=LoraSettings, title="LoRA")


class PolicyTraining(StepTraining):
    max_steps: int = override(StepTraining, "max_steps", 200)
    batch_size: int = override(StepTraining, "batch_size", 8, "Pairs (DPO) or prompts (GRPO) per step.")
    learning_rate: float = override(StepTraining, "learning_rate", 5e-6,
                                    "Peak learning rate (full ~5e-7–5e-6; LoRA ~5e-5).")
    eval_every: int = override(StepTraining, "eval_every", 50)


class TaskEvaluation(StrictModel):
    task: Literal["none", "addition", "reverse", "sort"] = Field(
        "none", title="Checkable task",
        description="Measure the policy on held-out prompts of a built-in task (exact-answer accuracy of greedy "
                    "answers, and of sampled ones where the job samples) before training, every train.eval_every "
                    "steps and after it; none = loss and reward only.")
    examples: int = Field(100, ge=1, le=100_000, title="Held-out prompts",
                          description="Prompts of the task answered at each evaluation.")
    seed: int = Field(1234, ge=0, le=2**32 - 1, title="Held-out seed", json_schema_extra=ADVANCED,
                      description="Seed of the held-out prompts (differs from training prompts by default).")
    max_new_tokens: int = Field(32, ge=1, le=4096, title="Answer length", json_schema_extra=ADVANCED,
                                description="Tokens generated per answer.")
