"""The embedded default (DESIGN §8): a full run with no network and no data of the user's own.

Today the demo pipeline is its pretraining stage on the docstrings of the local Python standard
library; later stages (fine-tuning, labeling, RLHF) join it as their jobs land.
"""

from __future__ import annotations


def demo_spec_data(steps: int = 300) -> dict:
    """The demo's pretraining spec as plain data (validated by the caller); sized for a CPU."""
    every = max(1, steps // 3)
    return {
        "kind": "pretrain",
        "name": "demo-python-docs",
        "data": {"sources": ["builtin:python-docs"], "text_field": "text", "eval_fraction": 0.05},
        "tokenizer": {"train": {"algorithm": "byte-bpe", "vocab_size": 4096}},
        "model": {"architecture": "llama", "hidden_size": 128, "layers": 4, "heads": 4, "context_length": 256},
        "train": {
            "max_steps": steps, "batch_size": 16, "learning_rate": 1e-3, "warmup_steps": min(30, steps // 10),
            "schedule": "cosine", "checkpoint_every": every, "eval_every": every, "sample_every": every,
            "log_every": 10, "sample_prompts": ["Return the ", "This function "],
        },
        "resources": {"device": "auto"},
        "seed": 0,
    }
