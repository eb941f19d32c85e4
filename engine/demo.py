"""The embedded default (DESIGN §8): a full run with no network and no data of the user's own.

The demo pipeline cleans the docstrings of the local Python standard library (they hold real
duplicates: `_pydecimal` repeats `decimal`, `_pyio` repeats `io`), then pretrains on what the
cleaning kept. Later stages (fine-tuning, labeling, RLHF) join it as their jobs land.
"""

from __future__ import annotations


def demo_clean_spec_data() -> dict:
    """The demo's cleaning spec. Docstrings are short, wrapped prose mixed with code samples: the
    published web-text thresholds (50 words, lines ending in punctuation) would throw most of them
    away, so the quality rules are loosened to what suits documentation."""
    return {
        "kind": "clean",
        "name": "demo-clean",
        "input": {"sources": ["builtin:python-docs"]},
        "quality": {
            "gopher": {"min_words": 8, "min_stop_words": 1, "max_symbol_word_ratio": 0.2,
                       "min_alpha_words_fraction": 0.5, "max_mean_word_length": 12},
            "fineweb": {"min_line_punctuation_fraction": None, "max_short_line_fraction": None},
        },
        "output": {"format": "parquet"},
    }


def demo_spec_data(steps: int = 300, sources: list[str] | None = None) -> dict:
    """The demo's pretraining spec as plain data (validated by the caller); sized for a CPU."""
    every = max(1, steps // 3)
    return {
        "kind": "pretrain",
        "name": "demo-python-docs",
        "data": {"sources": sources or ["builtin:python-docs"], "text_field": "text", "eval_fraction": 0.05},
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
