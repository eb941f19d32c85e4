"""The spec of `kind: reward`: a reward model (a sequence-classification head giving one score) trained
on preference pairs with the Bradley–Terry loss, measured by pairwise accuracy on held-out pairs.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.rlhf_specs import PolicyModel, PreferenceData, RLMethod
from engine.spec_base import ADVANCED, RUN_NAME_PATTERN, Resources, StrictModel, TrainingSettings


class RewardTraining(TrainingSettings):
    max_steps: int = Field(200, ge=1, le=10_000_000, title="Steps", description="Optimizer steps to train for.")
    batch_size: int = Field(16, ge=1, le=65536, title="Batch size", description="Preference pairs per step per device.")
    gradient_accumulation: int = Field(1, ge=1, le=4096, title="Gradient accumulation",
                                       description="Micro-batches summed before each optimizer step.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, title="Learning rate",
                                 description="Peak learning rate (LoRA ~1e-4; full training of a large model ~1e-5).")
    warmup_steps: int = Field(10, ge=0, title="Warmup steps", description="Steps of linear warmup to the peak.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", title="Schedule",
                                                              description="How the learning rate decays after warmup.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, title="Weight decay", json_schema_extra=ADVANCED,
                                description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    center_rewards: float | None = Field(
        None, ge=0.0, title="Reward centring", json_schema_extra=ADVANCED,
        description="Coefficient of a penalty keeping scores centred on zero (TRL's center_rewards_coefficient); "
                    "empty = off.")
    gradient_checkpointing: bool = Field(False, title="Gradient checkpointing", json_schema_extra=ADVANCED,
                                         description="Recompute activations in the backward pass: less memory, "
                                                     "about a third slower.")
    eval_every: int = Field(50, ge=1, title="Evaluate every",
                            description="Steps between measurements of pairwise accuracy and margin on held-out pairs.")
    checkpoint_every: int = Field(100, ge=1, title="Checkpoint every", description="Steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")
    log_every: int = Field(10, ge=1, title="Log every", json_schema_extra=ADVANCED,
                           description="Steps between training metric events.")


class RewardSpec(StrictModel):
    kind: Literal["reward"] = Field("reward", title="Kind",
                                    description="Train a reward model on preference pairs (Bradley–Terry).")
    name: str = Field("reward", min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    model: PolicyModel = Field(..., title="Base model",
                               description="The model the reward model starts from (usually the SFT model); a "
                                           "one-score head is put on it.")
    data: PreferenceData = Field(..., title="Preferences")
    method: RLMethod = Field(default_factory=lambda: RLMethod(name="full"), title="Method")
    train: RewardTraining = Field(default_factory=RewardTraining, title="Training")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for the split, data order and the head.")
