"""The specs of `kind: dpo` (direct preference optimisation on labeled pairs, no reward model) and
`kind: grpo` (group-relative policy optimisation: several answers per prompt scored by a reward
model or by a task's checker). Both run through TRL.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.generate_specs import PromptSource, Sampling
from engine.rlhf_specs import PolicyModel, PreferenceData, RLMethod
from engine.spec_base import ADVANCED, RUN_NAME_PATTERN, Resources, StrictModel, TrainingSettings


class PolicyTraining(TrainingSettings):
    max_steps: int = Field(200, ge=1, le=10_000_000, title="Steps", description="Optimizer steps to train for.")
    batch_size: int = Field(8, ge=1, le=65536, title="Batch size", description="Pairs (DPO) or prompts (GRPO) per step.")
    gradient_accumulation: int = Field(1, ge=1, le=4096, title="Gradient accumulation",
                                       description="Micro-batches summed before each optimizer step.")
    learning_rate: float = Field(5e-6, gt=0.0, le=1.0, title="Learning rate",
                                 description="Peak learning rate (full ~5e-7–5e-6; LoRA ~5e-5).")
    warmup_steps: int = Field(10, ge=0, title="Warmup steps", description="Steps of linear warmup to the peak.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", title="Schedule",
                                                              description="How the learning rate decays after warmup.")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    eval_every: int = Field(50, ge=1, title="Evaluate every", description="Steps between evaluations.")
    checkpoint_every: int = Field(100, ge=1, title="Checkpoint every", description="Steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")
    log_every: int = Field(10, ge=1, title="Log every", json_schema_extra=ADVANCED,
                           description="Steps between training metric events.")


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


class DPOSpec(StrictModel):
    kind: Literal["dpo"] = Field("dpo", title="Kind",
                                 description="Direct preference optimisation of a policy on labeled pairs (no reward model).")
    name: str = Field("dpo", min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    model: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model).")
    data: PreferenceData = Field(..., title="Preferences")
    beta: float = Field(0.1, gt=0.0, le=10.0, title="β",
                        description="How far the policy may move from the reference: small β lets it move more.")
    loss_type: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", title="Loss", description="sigmoid: the DPO paper's loss; ipo: identity preference optimisation "
                                             "(less prone to overfitting deterministic preferences).")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: PolicyTraining = Field(default_factory=PolicyTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for the split, data order and sampling.")


class GRPOReward(StrictModel):
    source: Literal["checker", "reward_model"] = Field(
        "checker", title="Reward from",
        description="checker: 1 for an answer the built-in task's checker accepts, 0 otherwise (prompts must be "
                    "`builtin:tasks`); reward_model: the score of a reward model.")
    reward_model: str | None = Field(None, title="Reward model",
                                     description="A reward run id or its model folder (for source: reward_model).")


class GRPOSpec(StrictModel):
    kind: Literal["grpo"] = Field("grpo", title="Kind",
                                  description="Group-relative policy optimisation: several answers per prompt, each "
                                              "scored against its group's mean.")
    name: str = Field("grpo", min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    model: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model).")
    prompts: PromptSource = Field(default_factory=PromptSource, title="Prompts")
    reward: GRPOReward = Field(default_factory=GRPOReward, title="Reward")
    group_size: int = Field(4, ge=2, le=256, title="Group size", description="Answers sampled per prompt.")
    beta: float = Field(0.04, ge=0.0, le=10.0, title="KL coefficient",
                        description="Weight of the KL penalty to the reference model (0 = no reference model).")
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=1.0, max_new_tokens=32), title="Sampling",
                               description="How each group's answers are drawn (sampling.batch_size is not used: "
                                           "a step generates batch_size × group_size answers together).")
    chat_template: Literal["auto", "model", "chatml", "plain", "none"] = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for the policy: auto = its own chat template when it has one, else the "
                    "prompt text as is (an error for prompts of several turns); model = its own (required); chatml "
                    "or plain = that template; none = the prompt text as is (base models that continue text).")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: PolicyTraining = Field(default_factory=PolicyTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for prompts, sampling and data order.")

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
