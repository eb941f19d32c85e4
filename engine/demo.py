"""The embedded default (DESIGN §8): a full run with no network and no data of the user's own.

The demo pipeline cleans the docstrings of the local Python standard library (they hold real
duplicates: `_pydecimal` repeats `decimal`, `_pyio` repeats `io`), then pretrains on what the
cleaning kept, then fine-tunes that model on a generated task with checkable answers (reversing a
few words) and reports its exact-match accuracy before and after. Later stages (labeling, RLHF)
join it as their jobs land.
"""

from __future__ import annotations


DEMO_FINETUNE_STEPS = 400
DEMO_FINETUNE_METHOD: dict = {"name": "full"}


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


def demo_finetune_spec_data(base_model: str, steps: int = DEMO_FINETUNE_STEPS) -> dict:
    """Teach the demo's pretrained model to reverse 3–5 words: checkable, so the demo shows that it
    learned (exact match from ~0 to near 100% in a few CPU minutes), not only that it ran."""
    return {
        "kind": "finetune",
        "name": "demo-reverse-words",
        "model": {"path": base_model},
        "data": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 4000, "chat_template": "chatml",
                 "max_length": 64, "eval_fraction": 0.025},
        "method": DEMO_FINETUNE_METHOD,
        "train": {"max_steps": steps, "batch_size": 32, "learning_rate": 3e-3, "warmup_steps": 20,
                  "eval_every": max(1, steps // 2), "checkpoint_every": max(1, steps // 2), "log_every": 10},
        "evaluation": {"generate_examples": 100, "max_new_tokens": 16, "before_training": True},
        "resources": {"device": "auto"},
        "seed": 0,
    }
