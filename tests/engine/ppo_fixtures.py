"""Fixtures of the PPO tests: a tiny policy and a reward model built by hand so that its score means
something, and a short PPO spec."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import with_overrides
from tests.tiny_models import save_model, tiny_byte_bpe, tiny_llama

REWARDED = set("ABCDEFGHIJKLMNOPQSTUVWXYZ0123456789")  # no "R": the prompts' "Reverse" must not score


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama policy (~41k parameters, byte-level tokenizer with a chatml template), the same
    policy without a chat template, a reward model on its tokenizer, and one on another tokenizer.

    The reward model (one layer, hidden size 8) is set by hand: each token's embedding says whether
    it is an upper-case letter or digit (dimension 0) or not (dimension 1); attention with zero
    queries and keys averages over the conversation, so its output is the share of rewarded
    tokens, which o_proj writes to dimension 2; the score reads dimension 2 after the final norm,
    8·share / √(1 + 8·share²)·2 — 0 for none, about 2.6 for an answer of eight such tokens."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from engine.specs.chat import CHAT_PRESETS
    from engine.tasks.generators import generate

    root = tmp_path_factory.mktemp("ppo-models")
    texts = [f"{r['instruction']}\n\n{r['input']}\n{r['output']}" for r in generate("reverse", 300, 0)]

    def reward_model(tok, folder: Path) -> Path:
        config = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                             num_attention_heads=1, max_position_embeddings=256, num_labels=1,
                             pad_token_id=tok.pad_token_id)
        model = LlamaForSequenceClassification(config)
        rewarded = [i for i in range(len(tok)) if (s := tok.decode([i])) and set(s) <= REWARDED]
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            embeddings = model.model.embed_tokens.weight
            embeddings[:, 1] = 1.0
            embeddings[rewarded, 1], embeddings[rewarded, 0] = 0.0, 1.0
            layer = model.model.layers[0]
            for norm in (layer.input_layernorm, layer.post_attention_layernorm, model.model.norm):
                norm.weight.fill_(1.0)
            layer.self_attn.v_proj.weight[0, 0] = 1.0
            layer.self_attn.o_proj.weight[2, 0] = 1.0
            model.score.weight[0, 2] = 2.0
        return save_model(folder, model, tok)

    tok = tiny_byte_bpe(texts, vocab_size=320, max_length=256)
    policy = tiny_llama(tok, max_positions=256)
    save_model(root / "policy", policy, tok)
    tok.chat_template = None
    save_model(root / "policy-no-template", policy, tok)
    tok.chat_template = CHAT_PRESETS["chatml"][0]
    other = tiny_byte_bpe([t.upper() for t in texts], vocab_size=300, max_length=256)
    return SimpleNamespace(policy=root / "policy", no_template=root / "policy-no-template",
                           reward=reward_model(tok, root / "reward"),
                           other_reward=reward_model(other, root / "other-reward"))


def ppo_spec(models: SimpleNamespace, **overrides) -> dict:
    spec = {"kind": "ppo", "name": "ppo", "policy": {"path": str(models.policy)}, "reward_model": str(models.reward),
            "prompts": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 64},
            "sampling": {"max_new_tokens": 8, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
            "ppo": {"kl_mode": "adaptive", "kl_coef": 0.05, "kl_target": 4.0, "kl_horizon": 200},
            "method": {"name": "full"},
            "train": {"iterations": 16, "rollout_batch_size": 16, "learning_rate": 0.01, "sample_every": 4,
                      "eval_every": 8, "checkpoint_every": 8},
            "evaluation": {"task": "reverse", "examples": 8, "max_new_tokens": 8},
            "resources": {"device": "cpu"}, "seed": 0}
    return with_overrides(spec, overrides)
