"""The spec of `kind: dpo`: direct preference optimisation on labeled pairs, no reward model (TRL).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from engine.specs.base import ADVANCED, Resources, StrictModel, run_name, seed_field
from engine.specs.rlhf import PolicyModel, PolicyTraining, PreferenceData, RLMethod, TaskEvaluation


class DPOSpec(StrictModel):
    # The studio builds this kind's wizard from its schema: these steps (the fields they leave out go
    # in the last one), then where to run and a review.
    model_config = ConfigDict(json_schema_extra={"wizard": {
        "title": "Direct preference optimisation",
        "subtitle": "Learn from the labeled pairs directly, no reward model: DPO or IPO against a reference, or ORPO "
                    "and SimPO without one.",
        "steps": [
            {"name": "Model & preferences", "fields": ["name", "model", "data", "loss_type", "beta"],
             "intro": "The model to start from (usually your fine-tuned model) and the preference pairs: "
                      "queue:NAME for a labeling queue of this workspace, or preference files."},
            {"name": "Training", "fields": ["method", "train", "evaluation", "seed"],
             "intro": "How long and how fast it trains, with or without LoRA, and what is measured "
                      "on the way."},
        ],
    }})

    kind: Literal["dpo"] = Field("dpo", title="Kind",
                                 description="Direct preference optimisation of a policy on labeled pairs (no reward "
                                             "model): DPO, IPO, ORPO or SimPO (loss_type).")
    name: str = run_name("dpo")
    model: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model).")
    data: PreferenceData = Field(..., title="Preferences")
    beta: float = Field(0.1, gt=0.0, le=10.0, title="β",
                        description="sigmoid, ipo: how far the policy may move from the reference (small β lets it "
                                    "move more; ~0.1). orpo: λ, the weight of the odds-ratio term beside the SFT loss "
                                    "(~0.1). simpo: the reward scale (~2–2.5).")
    loss_type: Literal["sigmoid", "ipo", "orpo", "simpo"] = Field(
        "sigmoid", title="Loss",
        description="sigmoid: the DPO paper's loss; ipo: identity preference optimisation (less prone to overfitting "
                    "deterministic preferences); orpo: odds-ratio preference optimisation (an SFT loss on the chosen "
                    "answer plus an odds-ratio penalty: no reference model, can start from a base model); simpo: "
                    "simple preference optimisation (length-normalised rewards with a target margin, no reference "
                    "model; TRL's CPO trainer). orpo and simpo need less memory: no reference model runs.")
    simpo_gamma: float = Field(0.5, ge=0.0, le=10.0, title="SimPO γ/β", json_schema_extra=ADVANCED,
                               description="simpo only: the target reward margin as a share of β (the SimPO "
                                           "paper's γ/β, usually 0.3–0.8).")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: PolicyTraining = Field(default_factory=PolicyTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for the split, data order and sampling.")

    @property
    def reference_free(self) -> bool:
        """ORPO and SimPO run no reference model (TRL's ORPO and CPO trainers, which read every position's logits of
        padded rows)."""
        return self.loss_type in ("orpo", "simpo")

    @model_validator(mode="after")
    def _packing_needs_a_reference_loss(self):
        if self.train.packing == "on" and self.reference_free:
            raise ValueError(f"train.packing: on cannot apply to loss_type {self.loss_type}: it reads every position's "
                             "logits of padded rows (TRL's ORPO and CPO trainers). Set train.packing to auto (packs "
                             "sigmoid and ipo, pads orpo and simpo) or off.")
        return self
