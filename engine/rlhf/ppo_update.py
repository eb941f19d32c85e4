"""PPO's update on one rollout, and the state that lives across iterations (optimizer, KL
controller), with its checkpoints.

Our own loop because TRL removed its PPO trainer in 1.13 (trl.experimental.ppo, last in 1.12);
pinning TRL at 1.12 would hold back the reward, DPO and GRPO trainers and transformers with it.
The formulation is the standard one (engine/rlhf/ppo_math.py); the loop is that of TRL's former
trainer and of "The N Implementation Details of RLHF with PPO" (Huang et al. 2023): rewards with
the KL penalty → GAE → whitened advantages → `ppo_epochs` passes over shuffled minibatches, each a
step of AdamW on the clipped surrogate + value_coef × clipped value loss − entropy_coef × entropy.
"""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.rlhf.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_penalized_rewards,
    masked_mean,
    policy_loss,
    value_loss,
    whiten,
)
from engine.rlhf.ppo_models import PPOModels
from engine.rlhf.ppo_rollout import Rollout, packed_rows, token_logprobs, token_values
from engine.errors import ModelError, first_line
from engine.rundir import CHECKPOINT_STATE, atomic_directory, rotate_checkpoints
from engine.specs.ppo import PPOSpec

STATE_FILE = CHECKPOINT_STATE  # the name RunDirectory.checkpoints() looks for


@dataclass
class IterationStats:
    kl: float  # mean KL to the reference per answer (nats, summed over its tokens)
    kl_coef: float  # the coefficient this iteration's rewards were penalised with
    policy_loss: float
    value_loss: float
    clip_fraction: float
    approx_kl: float
    value_clip_fraction: float
    padding_efficiency: float  # real tokens / token slots of the update's forwards (1: every minibatch packed)


class PPOUpdater:
    """The optimizer of the policy and value model, the KL controller, and the update itself."""

    def __init__(self, spec: PPOSpec, models: PPOModels):
        self.spec, self.models = spec, models
        self.optimizer = torch.optim.AdamW(models.trainable_parameters(), lr=spec.train.learning_rate)
        settings = spec.ppo
        self.kl = (AdaptiveKLController(settings.kl_coef, settings.kl_target, settings.kl_horizon)
                   if settings.kl_mode == "adaptive" else FixedKLController(settings.kl_coef))

    def step(self, rollout: Rollout, iteration: int) -> IterationStats:
        """Advantages of the rollout, then `ppo_epochs` × `minibatches` optimizer steps."""
        settings, mask = self.spec.ppo, rollout.mask
        kl_coef = self.kl.value
        rewards, kl = kl_penalized_rewards(rollout.scores, rollout.logprobs, rollout.ref_logprobs, mask, kl_coef)
        advantages, returns = gae(rewards, rollout.values, mask, settings.gamma, settings.lam)
        if settings.whiten_advantages:
            advantages = whiten(advantages, mask)
        kl_per_answer = kl.sum(1).mean().item()

        # The minibatch order depends only on (seed, iteration, epoch): a resumed run repeats it.
        order = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + iteration)
        figures: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clip_fraction": [],
                                           "approx_kl": [], "value_clip_fraction": []}
        temperature, models = self.spec.sampling.temperature, self.models
        real = slots = 0
        for _ in range(settings.ppo_epochs):
            permutation = torch.randperm(len(rollout), generator=order).to(mask.device)
            for rows in permutation.chunk(settings.minibatches):
                attention = rollout.inputs(rows)[1]
                tokens = attention.sum().item()
                real += tokens
                slots += tokens if packed_rows(attention, models.policy_packing) is not None else attention.numel()
                new_logprobs, entropy = token_logprobs(models.policy, rollout, rows, temperature,
                                                       with_entropy=settings.entropy_coef > 0,
                                                       packing=models.policy_packing)
                new_values = token_values(models.value, rollout, rows, models.value_packing)
                part = mask[rows]
                policy = policy_loss(new_logprobs, rollout.logprobs[rows], advantages[rows], part, settings.clip_range)
                value, value_clipped = value_loss(new_values, rollout.values[rows], returns[rows], part,
                                                  settings.value_clip_range)
                loss = policy.loss + settings.value_coef * value
                if entropy is not None:
                    loss = loss - settings.entropy_coef * masked_mean(entropy, part)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.spec.train.max_grad_norm:
                    # Each model's norm apart: the value loss's gradients must not shrink the policy's step.
                    for model in (self.models.policy, self.models.value):
                        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                       self.spec.train.max_grad_norm)
                self.optimizer.step()
                figures["policy_loss"].append(policy.loss.item())
                figures["value_loss"].append(value.item())
                figures["clip_fraction"].append(policy.clip_fraction)
                figures["approx_kl"].append(policy.approx_kl)
                figures["value_clip_fraction"].append(value_clipped)
        self.optimizer.zero_grad(set_to_none=True)
        self.kl.update(kl_per_answer, len(rollout))
        means = {name: sum(v) / len(v) for name, v in figures.items()}
        return IterationStats(kl=kl_per_answer, kl_coef=kl_coef, padding_efficiency=real / slots, **means)

    # Checkpoints: checkpoints/checkpoint-<iteration>/ with the policy in Hugging Face layout (the
    # LoRA adapter, or the whole model), the value model's trained weights, the optimizer, the KL
    # coefficient, the random states and the job's own record (`extra`).

    def save(self, folder: Path, iteration: int, extra: dict, keep: int) -> Path:
        target = folder / f"checkpoint-{iteration}"
        with atomic_directory(target) as tmp:
            self.models.policy.save_pretrained(tmp / "policy", safe_serialization=True)
            self.models.tokenizer.save_pretrained(tmp / "policy")
            value = {n: p.detach().cpu() for n, p in self.models.value.named_parameters() if p.requires_grad}
            torch.save(value, tmp / "value.pt")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save({"torch": torch.get_rng_state(), "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp / "rng.pt")
            state = {"iteration": iteration, "kl_controller": self.kl.state_dict(), **extra}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        rotate_checkpoints(folder, keep)
        return target

    def load(self, checkpoint: Path) -> dict:
        """Restore everything `save` wrote; returns its state record (iteration and `extra`)."""
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        policy = self.models.policy
        if self.models.reference is None:  # LoRA: the adapter's weights
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(policy, load_peft_weights(str(checkpoint / "policy"), device="cpu"))
        else:
            from transformers import AutoModelForCausalLM

            saved = AutoModelForCausalLM.from_pretrained(checkpoint / "policy", dtype=policy.dtype)
            policy.load_state_dict(saved.state_dict())
        value = _plain_data(checkpoint / "value.pt")
        missing = [n for n, p in self.models.value.named_parameters() if p.requires_grad and n not in value]
        if missing:
            raise ValueError(f"{checkpoint}/value.pt lacks {len(missing)} weights (e.g. {missing[0]})")
        self.models.value.load_state_dict(value, strict=False)
        self.optimizer.load_state_dict(_plain_data(checkpoint / "optimizer.pt"))
        rng = _plain_data(checkpoint / "rng.pt")
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.kl.load_state_dict(state["kl_controller"])
        return state


def _plain_data(path: Path):
    """What a checkpoint file written by `save` holds: tensors, numbers, strings and containers of them.
    Loaded without unpickling anything else (weights_only): a crafted checkpoint cannot run code here."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelError(f"{path} holds more than tensors and plain values, so it was not written by this engine's "
                         f"PPO checkpoints; it was not loaded ({first_line(e)}).",
                         "Resume only from checkpoints this engine wrote; delete that checkpoint folder to resume "
                         "from the one before it, or start the run again.") from None
