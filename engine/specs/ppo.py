"""The spec of `kind: ppo`: RLHF with proximal policy optimisation against a reward model — a policy
(optionally LoRA), a frozen reference, the reward model, and a value model; a KL penalty to the
reference (fixed or adaptive), GAE, the clipped surrogate and value clipping.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from engine.specs.base import ADVANCED, Resources, StrictModel, TrainingSettings, run_name, seed_field
from engine.specs.chat import PRESET_NAMES, PromptTemplateChoice
from engine.specs.generate import PromptSource, Sampling
from engine.specs.rlhf import PolicyModel, RLMethod, TaskEvaluation


class PPOSettings(StrictModel):
    kl_mode: Literal["fixed", "adaptive"] = Field(
        "adaptive", title="KL control",
        description="fixed: the KL coefficient stays; adaptive: it moves so the KL to the reference tracks the target "
                    "(Ziegler et al. 2019).")
    kl_coef: float = Field(0.05, ge=0.0, le=10.0, title="KL coefficient",
                           description="Weight of the per-token KL penalty to the reference model in the reward.")
    kl_target: float = Field(6.0, gt=0.0, title="KL target", json_schema_extra=ADVANCED,
                             description="Adaptive control: the KL (nats per answer) the coefficient steers to.")
    kl_horizon: int = Field(10000, ge=1, title="KL horizon", json_schema_extra=ADVANCED,
                            description="Adaptive control: how slowly the coefficient moves (in answers).")
    gamma: float = Field(1.0, ge=0.0, le=1.0, title="γ (discount)", json_schema_extra=ADVANCED,
                         description="Discount of future rewards in GAE.")
    lam: float = Field(0.95, ge=0.0, le=1.0, title="λ (GAE)", json_schema_extra=ADVANCED,
                       description="GAE's bias–variance trade-off: 1 = Monte Carlo returns, 0 = one-step TD.")
    clip_range: float = Field(0.2, gt=0.0, le=1.0, title="Clip range ε",
                              description="The policy ratio is clipped to [1 − ε, 1 + ε] in the surrogate objective.")
    value_clip_range: float = Field(0.2, gt=0.0, title="Value clip range", json_schema_extra=ADVANCED,
                                    description="New values are clipped to within this of the rollout's values.")
    value_coef: float = Field(0.1, ge=0.0, title="Value loss weight", json_schema_extra=ADVANCED,
                              description="Weight of the value loss against the policy loss.")
    entropy_coef: float = Field(0.0, ge=0.0, title="Entropy bonus", json_schema_extra=ADVANCED,
                                description="Weight of an entropy bonus that keeps the policy exploring (0 = off).")
    ppo_epochs: int = Field(4, ge=1, le=100, title="PPO epochs",
                            description="Passes over each batch of rollouts.")
    minibatches: int = Field(2, ge=1, le=1024, title="Minibatches", json_schema_extra=ADVANCED,
                             description="Each batch of rollouts is split into this many minibatches per epoch.")
    whiten_advantages: bool = Field(True, title="Whiten advantages", json_schema_extra=ADVANCED,
                                    description="Normalise advantages to mean 0, variance 1 within a batch.")
    missing_eos_penalty: float | None = Field(
        None, ge=0.0, title="Missing end penalty", json_schema_extra=ADVANCED,
        description="Subtracted from the reward of answers cut at the length limit; empty = none.")


class PPOTraining(TrainingSettings):
    iterations: int = Field(100, ge=1, le=1_000_000, title="Iterations",
                            description="Rounds of rollouts and PPO updates.")
    rollout_batch_size: int = Field(16, ge=1, le=65536, title="Prompts per rollout",
                                    description="Prompts answered by the policy in each iteration.")
    learning_rate: float = Field(1e-5, gt=0.0, le=1.0, title="Learning rate",
                                 description="Learning rate of the policy and the value model (LoRA ~1e-4).")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    sample_every: int = Field(5, ge=1, title="Samples every",
                              description="Iterations between `sample` events showing answers with their rewards.")
    eval_every: int = Field(10, ge=1, title="Evaluate every", description="Iterations between task evaluations.")
    checkpoint_every: int = Field(25, ge=1, title="Checkpoint every", description="Iterations between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")


class PPOSpec(StrictModel):
    # The studio builds this kind's wizard from its schema: these steps (the fields they leave out go
    # in the last one), then where to run and a review.
    model_config = ConfigDict(json_schema_extra={"wizard": {
        "title": "Improve the policy with PPO",
        "subtitle": "Answers scored by the reward model, a KL leash to the reference model, GAE and the "
                    "clipped objective; reward, KL and samples live.",
        "steps": [
            {"name": "Models", "fields": ["name", "policy", "reward_model", "value_model"],
             "intro": "The policy to improve, the reward model that scores its answers, and where the value "
                      "model starts."},
            {"name": "Prompts", "fields": ["prompts", "sampling"],
             "intro": "The prompts the policy answers while it learns, and how its answers are sampled."},
            {"name": "PPO", "fields": ["ppo", "method", "train", "evaluation", "seed"],
             "intro": "The PPO objective and the training loop. The defaults follow the usual RLHF settings."},
        ],
    }})

    kind: Literal["ppo"] = Field("ppo", title="Kind",
                                 description="RLHF: improve a policy against a reward model with PPO and a KL leash.")
    name: str = run_name("ppo")
    policy: PolicyModel = Field(..., title="Policy", description="The model to improve (usually the SFT model); a "
                                                                 "frozen copy is the reference.")
    reward_model: str = Field(..., min_length=1, title="Reward model",
                              description="A reward run id of this workspace or a reward model folder.")
    value_model: Literal["reward", "policy"] = Field(
        "reward", title="Value model starts from",
        description="reward: a copy of the reward model (already scores answers); policy: the policy with a new head.")
    prompts: PromptSource = Field(default_factory=PromptSource, title="Prompts")
    chat_template: PromptTemplateChoice = Field(
        "auto", title="Chat template",
        description="How a prompt is laid out for the policy: auto = its own chat template when it has one, else the "
                    "prompt text as is (an error for prompts of several turns); model = its own (an error if it has "
                    "none); " + PRESET_NAMES + " = that preset; none = the prompt text as is. The reward model scores "
                    "prompt + answer in the template it was trained with (a reward run saves it), else in this one.")
    # A default instance, not a factory: the schema then shows these values (the studio's forms read them).
    sampling: Sampling = Field(Sampling(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=32), title="Sampling")
    ppo: PPOSettings = Field(default_factory=PPOSettings, title="PPO")
    method: RLMethod = Field(default_factory=RLMethod, title="Method")
    train: PPOTraining = Field(default_factory=PPOTraining, title="Training")
    evaluation: TaskEvaluation = Field(default_factory=TaskEvaluation, title="Evaluation")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for prompts, sampling and data order.")

    @model_validator(mode="after")
    def _consistent(self) -> PPOSpec:
        if not self.sampling.do_sample:
            raise ValueError("sampling.do_sample is false: PPO learns from answers drawn from the policy, and greedy "
                             "decoding gives one fixed answer per prompt; set sampling.do_sample: true")
        if self.ppo.minibatches > self.train.rollout_batch_size:
            raise ValueError(f"ppo.minibatches ({self.ppo.minibatches}) is more than train.rollout_batch_size "
                             f"({self.train.rollout_batch_size}): a minibatch needs at least one answer; lower "
                             f"ppo.minibatches or raise train.rollout_batch_size")
        if self.resources.gpus > 1 or self.resources.nodes > 1:
            raise ValueError("PPO runs in one process on one device: set resources.gpus and resources.nodes to 1")
        return self
