"""PPO's forwards on prompt + answer (engine/rlhf/ppo_rollout.py) packed give what the padded ones give: each answer
token's log-probability and entropy under the policy, each value of the value model, and every gradient of a loss
on them, for llama and GPT-2 policies (the padded forward already numbers each record's positions from 0)."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_byte_bpe, tiny_gpt2, tiny_llama

torch = pytest.importorskip("torch")

REL = 1e-4
TEXTS = ["Tell me about the sea. The sea is wide and blue.", "A short one.", "Say hi. hi",
         "Sort these words: pear apple fig banana cherry date grape. apple banana cherry date fig grape pear"]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_byte_bpe(TEXTS * 4, vocab_size=300, max_length=256)


def answers(tokenizer):
    """Prompts left-padded and answers right-padded, as `answer` lays out a rollout."""
    from engine.rlhf.ppo_rollout import Answers

    pad = tokenizer.pad_token_id
    records = [(tokenizer(q + ". ", add_special_tokens=False)["input_ids"],
                tokenizer(a or "yes", add_special_tokens=False)["input_ids"])
               for q, _, a in (t.partition(". ") for t in TEXTS)]
    width, length = (max(len(r[i]) for r in records) for i in (0, 1))
    query = torch.tensor([[pad] * (width - len(p)) + p for p, _ in records])
    query_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in records])
    response = torch.tensor([a + [pad] * (length - len(a)) for _, a in records])
    mask = torch.tensor([[1.0] * len(a) + [0.0] * (length - len(a)) for _, a in records])
    return Answers([None] * len(records), query, query_mask, response, mask, [""] * len(records), [True] * len(records))


def figures_and_gradients(policy, value, rollout, packing):
    from engine.rlhf.ppo_rollout import token_logprobs, token_values

    policy.zero_grad()
    value.zero_grad()
    rows = torch.arange(len(rollout))
    logprobs, entropy = token_logprobs(policy, rollout, rows, temperature=0.7, with_entropy=True, packing=packing)
    values = token_values(value, rollout, rows, packing)
    mask = rollout.mask
    ((logprobs * mask).sum() + (entropy * mask).sum() + (values.square() * mask).sum()).backward()
    kept = mask.bool()
    return ([t[kept].detach() for t in (logprobs, entropy, values)],
            {n: p.grad.clone() for m in (policy, value) for n, p in m.named_parameters() if p.grad is not None})


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_packed_ppo_forwards_give_the_padded_figures_and_gradients(tokenizer, architecture):
    from engine.rlhf.ppo_models import ScalarHeadModel
    from engine.training.batches import Packing

    build = {"llama": tiny_llama, "gpt2": tiny_gpt2}[architecture]
    policy = build(tokenizer).to(torch.float32).eval()
    value = ScalarHeadModel(build(tokenizer, seed=1).to(torch.float32).base_model.eval(), torch.nn.Linear(32, 1))
    rollout = answers(tokenizer)
    assert rollout.query_mask.sum(1).unique().numel() > 2 and rollout.mask.sum(1).unique().numel() > 2

    widths = []
    hooks = [m.get_input_embeddings().register_forward_pre_hook(lambda m, args: widths.append(args[0].shape))
             for m in (policy, value.body)]
    padded, padded_grads = figures_and_gradients(policy, value, rollout, Packing(False))
    assert widths == [rollout.query.shape[:1] + (rollout.query.shape[1] + rollout.response.shape[1],)] * 2
    widths.clear()
    packed, packed_grads = figures_and_gradients(policy, value, rollout, Packing(True))
    for hook in hooks:
        hook.remove()
    real = int(rollout.query_mask.sum() + rollout.mask.sum())
    assert widths == [torch.Size([1, real])] * 2  # one row each, no padding

    for got, expected in zip(packed, padded):
        assert torch.allclose(got, expected, rtol=REL, atol=REL * expected.abs().max().item())
    assert padded_grads.keys() == packed_grads.keys() and len(padded_grads) > 10
    for name, grad in padded_grads.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert ((packed_grads[name] - grad).abs().max() / scale).item() <= REL, name
