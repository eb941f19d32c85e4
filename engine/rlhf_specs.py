"""Pieces shared by the specs of the preference and RL jobs (`reward`, `dpo`, `grpo`, `ppo`).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.finetune_specs import LoraSettings
from engine.spec_base import ADVANCED, StrictModel


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
        description="Preference pairs: `queue:NAME` (a labeling queue of this workspace's store, by majority of its "
                    "labels), or files in TRL (prompt/chosen/rejected, plain or conversational), HH-RLHF or "
                    "LLaMA-Factory format, detected per file.")
    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, title="Held-out fraction",
                                 description="Share of pairs held out to measure pairwise accuracy (split by prompt, "
                                             "so a prompt's pairs are all on one side).")
    max_length: int = Field(512, ge=16, le=131072, title="Maximum length",
                            description="Tokens of prompt + answer; longer pairs are dropped and counted.")
    chat_template: Literal["auto", "model", "chatml", "plain"] = Field(
        "auto", title="Chat template",
        description="auto: the model's own chat template when it has one (an error if the data has several turns and "
                    "the model none); model: its own (required); chatml or plain: that template.")


class RLMethod(StrictModel):
    name: Literal["full", "lora"] = Field(
        "lora", title="Method", description="full: every weight; lora: low-rank adapters (less memory; the reference "
                                            "model is the same weights with the adapter switched off).")
    lora: LoraSettings = Field(default_factory=LoraSettings, title="LoRA")
