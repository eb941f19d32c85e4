"""PPO's arithmetic (engine/rlhf/ppo_math.py) against values worked out by hand, padding included."""

from __future__ import annotations

import math

import pytest
import torch

from engine.rlhf.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_penalized_rewards,
    masked_mean,
    masked_var,
    policy_loss,
    value_loss,
    whiten,
)


def close(tensor: torch.Tensor, expected) -> None:
    torch.testing.assert_close(tensor, torch.tensor(expected, dtype=tensor.dtype), atol=1e-5, rtol=1e-5)


# Two answers: the first has 3 tokens, the second 2 (its third position is padding).
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_masked_mean_and_var_skip_padding():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    # (1 + 2 + 3 + 4 + 5) / 5 = 3; the 99 is padding.
    close(masked_mean(values, MASK), 3.0)
    # Per row: (1 + 2 + 3) / 3 = 2, (4 + 5) / 2 = 4.5.
    close(masked_mean(values, MASK, dim=1), [2.0, 4.5])
    # Squared deviations from 3: 4 + 1 + 0 + 1 + 4 = 10; biased 10 / 5 = 2, unbiased 10 / 4 = 2.5.
    close(masked_var(values, MASK, unbiased=False), 2.0)
    close(masked_var(values, MASK), 2.5)


def test_whiten_centres_and_scales_over_the_real_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    # mean 3, unbiased variance 2.5 (above): (x − 3) / √2.5, and 0 on the padding.
    s = math.sqrt(2.5)
    close(whiten(values, MASK), [[-2 / s, -1 / s, 0.0], [1 / s, 2 / s, 0.0]])
    # shift_mean=False keeps the mean: (x − 3) / √2.5 + 3.
    close(whiten(values, MASK, shift_mean=False), [[3 - 2 / s, 3 - 1 / s, 3.0], [3 + 1 / s, 3 + 2 / s, 0.0]])


def test_kl_penalty_per_token_and_the_score_at_the_last_token():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.2, -7.0]])
    ref_logprobs = torch.tensor([[-1.2, -1.0, -0.5], [-1.0, -0.4, -3.0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, MASK, kl_coef=0.1)
    # kl = logp − logp_ref: row 0: 0.2, −1.0, 0.0; row 1: −0.5, 0.2, (padding) 0.
    close(kl, [[0.2, -1.0, 0.0], [-0.5, 0.2, 0.0]])
    # rewards = −0.1·kl, and the score at the last real token: row 0 at t=2 (0 + 2), row 1 at t=1 (−0.02 − 1).
    close(rewards, [[-0.02, 0.1, 2.0], [0.05, -1.02, 0.0]])
    # The KL of each answer (the controller's input) is the row sum: −0.8 and −0.3.
    close(kl.sum(1), [-0.8, -0.3])


def test_gae_by_hand_with_discount_and_padding():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 5.0]])  # the 5.0 is padding: ignored
    values = torch.tensor([[0.5, 0.2, 0.4], [1.0, 1.0, 9.0]])  # the 9.0 too
    advantages, returns = gae(rewards, values, MASK, gamma=0.9, lam=0.5)
    # Row 0, backwards (V after the answer = 0; γλ = 0.45):
    #   t=2: δ = 1.0 + 0.9·0 − 0.4 = 0.6;             A = 0.6
    #   t=1: δ = 0.0 + 0.9·0.4 − 0.2 = 0.16;          A = 0.16 + 0.45·0.6 = 0.43
    #   t=0: δ = 0.0 + 0.9·0.2 − 0.5 = −0.32;         A = −0.32 + 0.45·0.43 = −0.1265
    # Row 1 (t=2 is padding: A = 0, and the value after t=1 is 0):
    #   t=1: δ = 2.0 + 0 − 1.0 = 1.0;                 A = 1.0
    #   t=0: δ = 0.5 + 0.9·1.0 − 1.0 = 0.4;           A = 0.4 + 0.45·1.0 = 0.85
    close(advantages, [[-0.1265, 0.43, 0.6], [0.85, 1.0, 0.0]])
    # returns = A + V: 0.3735, 0.63, 1.0; 1.85, 2.0, (padding) 0.
    close(returns, [[0.3735, 0.63, 1.0], [1.85, 2.0, 0.0]])


def test_gae_with_gamma_and_lambda_one_is_the_reward_to_go_minus_the_value():
    rewards = torch.tensor([[0.1, -0.2, 1.0]])
    values = torch.tensor([[0.3, 0.1, 0.6]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    # Reward to go: 0.9, 0.8, 1.0; minus V: 0.6, 0.7, 0.4. Returns are the rewards to go.
    close(advantages, [[0.6, 0.7, 0.4]])
    close(returns, [[0.9, 0.8, 1.0]])


def test_clipped_surrogate_by_hand():
    old = torch.zeros(2, 3)
    # Ratios r = exp(new − old): row 0: 1.5, 0.5, 1.1; row 1: 0.7, 1.0, (padding) 3.0.
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1], [0.7, 1.0, 3.0]]))
    advantages = torch.tensor([[1.0, 1.0, -2.0], [-1.0, 0.5, 4.0]])
    result = policy_loss(new, old, advantages, MASK, clip_range=0.2)
    # Per token max(−A·r, −A·clip(r, 0.8, 1.2)):
    #   r=1.5, A=1:  max(−1.5, −1.2) = −1.2   (clipped term larger)
    #   r=0.5, A=1:  max(−0.5, −0.8) = −0.5
    #   r=1.1, A=−2: max(2.2, 2.2)   = 2.2    (inside the range: equal, not counted as clipped)
    #   r=0.7, A=−1: max(0.7, 0.8)   = 0.8    (clipped term larger)
    #   r=1.0, A=.5: max(−0.5, −0.5) = −0.5
    # mean over the 5 tokens: (−1.2 − 0.5 + 2.2 + 0.8 − 0.5) / 5 = 0.16; clipped 2 of 5.
    close(result.loss, 0.16)
    assert result.clip_fraction == pytest.approx(0.4)
    # approx KL = ½·mean(log r²) over the 5 real tokens.
    logs = [math.log(x) for x in (1.5, 0.5, 1.1, 0.7, 1.0)]
    assert result.approx_kl == pytest.approx(0.5 * sum(x * x for x in logs) / 5, rel=1e-5)


def test_the_clipped_surrogate_stops_the_gradient_outside_the_range():
    new = torch.log(torch.tensor([[1.5, 0.9]])).requires_grad_()
    result = policy_loss(new, torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2), clip_range=0.2)
    result.loss.backward()
    # Token 0 is clipped (r = 1.5 > 1.2 with A > 0): no gradient. Token 1: d/dlogp of −A·r/2 = −0.9/2.
    close(new.grad, [[0.0, -0.45]])


def test_clipped_value_loss_by_hand():
    old = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    new = torch.tensor([[1.5, 0.9, 2.0], [0.1, -1.0, 50.0]])  # the 50 is padding
    returns = torch.tensor([[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    loss, fraction = value_loss(new, old, returns, MASK, clip_range=0.2)
    # V_clip = old + clip(new − old, ±0.2): 1.2, 0.9, 1.2; 0.1, −0.2.
    # max((V − R)², (V_clip − R)²):
    #   (1.5−2)² = 0.25 vs (1.2−2)² = 0.64 → 0.64 (clipped larger)
    #   (0.9−0)² = 0.81 vs (0.9−0)² = 0.81 → 0.81
    #   (2.0−1)² = 1.0  vs (1.2−1)² = 0.04 → 1.0
    #   (0.1−1)² = 0.81 vs (0.1−1)² = 0.81 → 0.81
    #   (−1−0)²  = 1.0  vs (−0.2−0)² = 0.04 → 1.0
    # ½·(0.64 + 0.81 + 1.0 + 0.81 + 1.0) / 5 = ½·4.26 / 5 = 0.426; clipped larger at 1 of 5 tokens.
    close(loss, 0.426)
    assert fraction == pytest.approx(0.2)


def test_entropy_of_uniform_and_certain_distributions():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    close(entropy_from_logits(logits), [math.log(4), 0.0])


def test_adaptive_kl_controller_follows_ziegler():
    controller = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    # KL 9 over a target of 6: error 0.5, clipped to 0.2; 100 answers: β·(1 + 0.2·100/1000) = 0.1·1.02.
    controller.update(9.0, 100)
    assert controller.value == pytest.approx(0.102)
    # KL 4.5: error −0.25 → −0.2; 500 answers: 0.102·(1 − 0.2·0.5) = 0.0918.
    controller.update(4.5, 500)
    assert controller.value == pytest.approx(0.0918)
    # KL 6.6: error 0.1 (inside the clip); 1000 answers: 0.0918·1.1 = 0.10098.
    controller.update(6.6, 1000)
    assert controller.value == pytest.approx(0.10098)
    restored = AdaptiveKLController(0.5, target=6.0, horizon=1000)
    restored.load_state_dict(controller.state_dict())
    assert restored.value == pytest.approx(0.10098)


def test_fixed_kl_controller_stays():
    controller = FixedKLController(0.05)
    controller.update(100.0, 64)
    assert controller.value == 0.05
