"""Fixtures of the reward-model tests: a tiny llama with a chatml tokenizer, a LoRA adapter for it (the
"SFT run"), preference pairs whose rule is easy to learn, and a short reward spec."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from tests.engine.conftest import with_overrides
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_llama


WORDS = ["apple", "bird", "blue", "boat", "book", "cake", "cat", "cloud", "cup", "dog", "door", "fish", "hat",
         "hill", "home", "key", "lake", "milk", "moon", "pen", "rain", "road", "sea", "ship", "sky", "star", "sun",
         "tea", "town", "tree"]


def marker_pairs(count: int, seed: int) -> list[dict]:
    """Prompt, chosen, rejected: the chosen answer has the word "good" among random words, the rejected
    one "bad" among other random words. A random head ranks them by chance; the rule is easy to learn."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        chosen, rejected = rng.sample(WORDS, 3), rng.sample(WORDS, 3)
        chosen.insert(rng.randint(0, 3), "good")
        rejected.insert(rng.randint(0, 3), "bad")
        pairs.append({"prompt": f"Tell me about the {' '.join(rng.sample(WORDS, 2))}.",
                      "chosen": " ".join(chosen), "rejected": " ".join(rejected)})
    return pairs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama (~46k parameters, 256 positions) with a byte-level tokenizer that has a chatml template, a
    LoRA adapter for it (the "SFT run"), a preference file, and two files that are not one."""
    root = tmp_path_factory.mktemp("reward-models")
    texts = [f"Tell me about the {' '.join(random.Random(i).sample(WORDS, 6))} good bad" for i in range(300)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=400, max_length=256)
    base = save_model(root / "base", tiny_llama(tokenizer, max_positions=256), tokenizer)
    adapter = random_lora_adapter(tiny_llama(tokenizer, max_positions=256), base, root / "adapter")

    prefs = root / "prefs.jsonl"
    rows = marker_pairs(200, seed=0)
    rows += [{"prompt": "Tell me everything.", "chosen": " ".join(["good"] + WORDS * 2), "rejected": "bad"}] * 3
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    not_prefs = root / "answers.jsonl"
    not_prefs.write_text("".join(json.dumps({"prompt": r["prompt"], "answer": r["chosen"]}) + "\n" for r in rows[:5]),
                         encoding="utf-8")
    instructions = root / "instructions.jsonl"  # fine-tuning data (alpaca), given where pairs belong
    instructions.write_text("".join(json.dumps({"instruction": r["prompt"], "input": "", "output": r["chosen"]}) + "\n"
                                    for r in rows[:5]), encoding="utf-8")
    return SimpleNamespace(base=base, adapter=adapter, prefs=prefs, not_prefs=not_prefs, instructions=instructions)


def reward_spec(tiny: SimpleNamespace, **overrides) -> dict:
    spec = {"kind": "reward", "name": "rm", "model": {"path": str(tiny.base)},
            "data": {"sources": [str(tiny.prefs)], "eval_fraction": 0.2, "max_length": 48},
            "method": {"name": "full"},
            "train": {"max_steps": 15, "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 2, "eval_every": 5,
                      "checkpoint_every": 15, "log_every": 5},
            "resources": {"device": "cpu"}}
    return with_overrides(spec, overrides)
