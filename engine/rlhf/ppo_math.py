"""The arithmetic of PPO for language models, on padded batches of answers (torch only, no models).

Tensors are (batch, answer tokens); `mask` is 1 on the tokens of each answer (a prefix of its row,
the stop token included) and 0 on the padding after it. The formulation is the standard one of
Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences") and Ouyang et al. 2022,
as in OpenAI's lm-human-preferences and TRL's former PPO trainer:

- reward of token t: −β·(log π(a_t) − log π_ref(a_t)), plus the reward model's score of the whole
  answer at its last token;
- advantages by GAE(γ, λ) over the answer's tokens, returns = advantages + values;
- the clipped surrogate on the probability ratio, and the clipped value loss.

Written here because TRL removed its PPO trainer in 1.13 (see engine/rlhf/ppo_trainer.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `values` where `mask` is 1; unbiased divides by n − 1 (n = the mask's sum)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count > 1:
            variance = variance * count / (count - 1)
    return variance


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values − mean) / std over the masked entries (mean kept when `shift_mean` is false); masked-out
    entries come back as 0."""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards and per-token KL estimates.

    The KL estimate of a token is log π(a_t) − log π_ref(a_t) of the sampled token (the "k1"
    estimator: unbiased for KL(π‖π_ref) summed over the answer, though single tokens can be
    negative). Its sum over an answer is the KL the adaptive controller steers. The score of
    answer i (`scores[i]`) is added at its last token (the last 1 of its mask row).
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores * (mask.sum(dim=1) > 0)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each answer: (advantages, returns), 0 on padding.

    δ_t = r_t + γ·V_{t+1} − V_t (V after the last token is 0: the answer is over),
    A_t = δ_t + γλ·A_{t+1}, returns_t = A_t + V_t.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


@dataclass
class PolicyLoss:
    loss: torch.Tensor  # differentiable
    clip_fraction: float  # share of tokens where the clipped term was the larger loss
    approx_kl: float  # ½·mean((log π_new − log π_old)²): how far this update moved from the rollout's policy


def policy_loss(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> PolicyLoss:
    """The clipped surrogate: mean over tokens of max(−A·r, −A·clip(r, 1 − ε, 1 + ε)),
    r = exp(log π_new − log π_old)."""
    log_ratio = new_logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask).item()
        approx_kl = (0.5 * masked_mean(log_ratio ** 2, mask)).item()
    return PolicyLoss(loss, clip_fraction, approx_kl)


def value_loss(new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float) -> tuple[torch.Tensor, float]:
    """(½·mean over tokens of max((V − R)², (V_clip − R)²), share of tokens where the clipped term
    was larger), with V_clip = V_old + clip(V − V_old, −c, c)."""
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_range, clip_range)
    unclipped = (new_values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        fraction = masked_mean((clipped > unclipped).float(), mask).item()
    return loss, fraction


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each position's distribution: −Σ p·log p over the vocabulary."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


class FixedKLController:
    """A KL coefficient that stays where it was set."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, kl: float, answers: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019, §2.2: after each batch of `answers` with mean KL `kl` (nats per answer),
    β ← β·(1 + clip(kl / target − 1, −0.2, 0.2)·answers / horizon)."""

    def __init__(self, kl_coef: float, target: float, horizon: int):
        super().__init__(kl_coef)
        self.target, self.horizon = target, horizon

    def update(self, kl: float, answers: int) -> None:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * answers / self.horizon
