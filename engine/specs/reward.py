"""The spec of `kind: reward`: a reward model (a sequence-classification head giving one score) trained
on preference pairs with the Bradley–Terry loss, measured by pairwise accuracy on held-out pairs.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from engine.specs.base import ADVANCED, Resources, StepTraining, StrictModel, override, run_name, seed_field
from engine.specs.rlhf import PolicyModel, PreferenceData, RLMethod


class RewardTraining(StepTraining):
    max_steps: int = override(StepTraining, "max_steps", 200)
    batch_size: int = override(StepTraining, "batch_size", 16, "Preference pairs per step per device.")
    learning_rate: float = override(StepTraining, "learning_rate", 1e-4,
                                    "Peak learning rate (LoRA ~1e-4; full training of a large model ~1e-5).")
    eval_every: int = override(StepTraining, "eval_every", 50,
                               "Steps between measurements of pairwise accuracy and margin on held-out pairs.")
    center_rewards: float | None = Field(
        None, ge=0.0, title="Reward centring", json_schema_extra=ADVANCED,
        description="Coefficient of a penalty keeping scores centred on zero (TRL's center_rewards_coefficient); "
                    "empty = off.")


class RewardSpec(StrictModel):
    # The studio builds this kind's wizard from its schema: these steps (the fields they leave out go
    # in the last one), then where to run and a review.
    model_config = ConfigDict(json_schema_extra={"wizard": {
        "title": "Train a reward model",
        "subtitle": "A one-score head on your model learns which answer people preferred (Bradley–Terry); its "
                    "pairwise accuracy on held-out pairs shows live.",
        "steps": [
            {"name": "Model & preferences", "fields": ["name", "model", "data"],
             "intro": "The model to start from (usually your fine-tuned model) and the preference pairs: "
                      "queue:NAME for a labeling queue of this workspace, or preference files."},
            {"name": "Training", "fields": ["method", "train", "seed"],
             "intro": "How long and how fast it trains, with or without LoRA, and what is measured "
                      "on the way."},
        ],
    }})

    kind: Literal["reward"] = Field("reward", title="Kind",
                                    description="Train a reward model on preference pairs (Bradley–Terry).")
    name: str = run_name("reward")
    model: PolicyModel = Field(..., title="Base model",
                               description="The model the reward model starts from (usually the SFT model); a "
                                           "one-score head is put on it.")
    data: PreferenceData = Field(..., title="Preferences")
    # A default instance, not a factory: the schema then shows full (the studio's forms read it).
    method: RLMethod = Field(RLMethod(name="full"), title="Method")
    train: RewardTraining = Field(default_factory=RewardTraining, title="Training")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for the split, data order and the head.")
