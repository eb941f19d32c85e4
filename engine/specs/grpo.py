"""The spec of `kind: grpo`: group-relative policy optimisation — several answers per prompt scored by a
reward model or by a task's checker (TRL).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from engine.specs.base import Resources, StrictModel, run_name, seed_field
from engine.specs.chat import PRESET_NAMES, PromptTemplateChoice
from engine.specs.generate import PromptSource, Sampling
from engine.specs.rlhf import PolicyModel, PolicyTraining, RLMethod, TaskEvaluation


class GRPOReward(StrictModel):
    source: Literal["checker", "reward_model"] = Field(
        "checker", title="Reward from",
        description="checker: 1 for an answer the built-in task's checker accepts, 0 otherwise (prompts must be "
                    "`builtin:tasks`); reward_model: the score of a reward model.")
    reward_model: str | None = Field(None, title="Reward model",
                                     description="A reward run id or its model folder (for source: reward_model).")


class GRPOSpec(StrictModel):
    # The studio builds this kind's wizard from its schema: these steps (the fields they leave out go
    # in the last one), then where to run and a review.
    model_config = ConfigDict(json_schema_extra={"wizard": {
        "title": "Group-relative policy optimisation",
        "subtitle": "Several answers per prompt, each scored against its group: by a reward model or by the "
                    "task's checker.",
        "steps": [
            {"name": "Model & reward", "fields": ["name", "model", "reward", "group_size", "beta"],
             "intro": "The policy to improve, and what scores its answers."},
            {"name": "Prompts", "fields": ["prompts", "sampling"],
             "intro": "The prompts the policy answers while it learns, and how its answers are sampled."},
            {"name": "Training", "fields": ["method", "train", "evaluation", "seed"],
             "intro": "How long and how fast it trains, with or without LoRA, and what is measured "
                      "on the way."},
        ],
    }})

    kind: Literal["grpo"] = Field("grpo", title="Kind",
                                  description="Group-relative policy optimisation: several answers per prompt, each "
                                              "scored against its group's mean.")
    name: str = run_name("grpo")
    model: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model).")
    prompts: PromptSource = Field(default_factory=PromptSource, title="Prompts")
    reward: GRPOReward = Field(default_factory=GRPOReward, title="Reward")
    group_size: int = Field(4, ge=2, le=256, title="Group size", description="Answers sampled per prompt.")
    beta: float = Field(0.04, ge=0.0, le=10.0, title="KL coefficient",
                        description="Weight of the KL penalty to the reference model (0 = no reference model).")
    # A default instance, not a factory: the schema then shows these values (the studio's forms read them).
    sampling: Sampling = Field(Sampling(temperature=1.0, max_new_tokens=32), title="Sampling",
                               description="How each group's answers are drawn (sampling.batch_size is not used: "
                                           "a step generates batch_size × group_size answers together).")
    chat_template: PromptTemplateChoice = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for the policy: auto = its own chat template when it has one, else the "
                    "prompt text as is (an error for prompts of several turns); model = its own (required); "
                    + PRESET_NAMES + " = that preset; none = the prompt text as is (base models that continue text).")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: PolicyTraining = Field(default_factory=PolicyTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for prompts, sampling and data order.")

    @model_validator(mode="after")
    def _consistent(self) -> GRPOSpec:
        if not self.sampling.do_sample:
            raise ValueError("sampling.do_sample is false, but GRPO compares several sampled answers per prompt "
                             "(greedy decoding gives a group identical answers, so nothing to learn from); set "
                             "sampling.do_sample: true")
        if self.reward.source == "checker" and self.prompts.sources != ["builtin:tasks"]:
            others = ", ".join(s for s in self.prompts.sources if s != "builtin:tasks")
            raise ValueError(f"reward.source is checker, which scores answers with the built-in task's checker, but "
                             f"prompts.sources has {others}, whose answers it cannot check; set prompts.sources: "
                             f"[builtin:tasks] (the task in prompts.task), or use reward.source: reward_model with "
                             f"reward.reward_model")
        if self.reward.source == "reward_model" and not self.reward.reward_model:
            raise ValueError("reward.source is reward_model but reward.reward_model is empty; give a reward run id or "
                             "its model folder, or use reward.source: checker with builtin:tasks prompts")
        return self
