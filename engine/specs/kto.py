"""The spec of `kind: kto`: Kahneman–Tversky optimisation on answers judged good or bad one at a
time (no pairs needed, no reward model; TRL's KTOTrainer).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from engine.specs.base import ADVANCED, Resources, StrictModel, override, run_name, seed_field
from engine.specs.rlhf import PolicyModel, PolicyTraining, PreferenceData, RLMethod, TaskEvaluation


class KTOTraining(PolicyTraining):
    batch_size: int = override(PolicyTraining, "batch_size", 8,
                               "Judged answers per step (at least 2: KTO estimates its reference point from the other "
                               "answers of the batch).")

    @field_validator("batch_size")
    @classmethod
    def _several_answers(cls, value: int) -> int:
        if value < 2:
            raise ValueError("KTO needs at least 2 answers per step (it compares each answer with the others of its "
                             "batch); set train.batch_size to 2 or more")
        return value


class KTOSpec(StrictModel):
    # The studio builds this kind's wizard from its schema: these steps (the fields they leave out go
    # in the last one), then where to run and a review.
    model_config = ConfigDict(json_schema_extra={"wizard": {
        "title": "Kahneman–Tversky optimisation",
        "subtitle": "Learn from answers judged good or bad one at a time: no pairs, no reward model. Pairs work too "
                    "(the chosen answer counts as good, the rejected one as bad).",
        "steps": [
            {"name": "Model & answers", "fields": ["name", "model", "data", "beta", "loss_type"],
             "intro": "The model to start from (usually your fine-tuned model) and the judged answers: queue:NAME "
                      "for a labeling queue of this workspace (good / bad or pairs), or files."},
            {"name": "Training", "fields": ["method", "train", "desirable_weight", "undesirable_weight", "evaluation",
                                            "seed"],
             "intro": "How long and how fast it trains, with or without LoRA, and what is measured on the way."},
        ],
    }})

    kind: Literal["kto"] = Field("kto", title="Kind",
                                 description="Kahneman–Tversky optimisation of a policy on answers judged good or bad.")
    name: str = run_name("kto")
    model: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model).")
    data: PreferenceData = Field(..., title="Judged answers")
    beta: float = Field(0.1, gt=0.0, le=10.0, title="β",
                        description="How far the policy may move from the reference: small β lets it move more.")
    loss_type: Literal["kto", "apo_zero_unpaired"] = Field(
        "kto", title="Loss", description="kto: the KTO paper's loss; apo_zero_unpaired: anchored preference "
                                         "optimisation (raises good answers' likelihood, lowers bad ones', without "
                                         "KTO's reference point).")
    desirable_weight: float = Field(
        1.0, gt=0.0, le=100.0, title="Weight of good answers", json_schema_extra=ADVANCED,
        description="Scales the loss of good answers. With more bad than good answers, raise it so that "
                    "weight × good answers is about 1 to 1.33 times the bad ones (the KTO paper's advice); the run's "
                    "log says when the balance is off.")
    undesirable_weight: float = Field(
        1.0, gt=0.0, le=100.0, title="Weight of bad answers", json_schema_extra=ADVANCED,
        description="Scales the loss of bad answers (the other way to balance unequal counts).")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: KTOTraining = Field(default_factory=KTOTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for the split, data order and sampling.")
