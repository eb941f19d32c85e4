"""The embedded default (DESIGN §8): a full run with no network and no data of the user's own.

The demo pipeline cleans the docstrings of the local Python standard library (they hold real
duplicates: `_pydecimal` repeats `decimal`, `_pyio` repeats `io`), then pretrains on what the
cleaning kept, then fine-tunes that model on a generated task with checkable answers (reversing a
few words) and reports its exact-match accuracy before and after; last, RLHF on that task: the
fine-tuned model's answers labeled by the task's checker, a reward model, PPO and GRPO
(engine/demo_pipeline.py runs the stages in order).
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


# Stage 4, RLHF. The checker of the reverse task stands in for a person: it labels pairs of answers of
# the fine-tuning run's halfway checkpoint (kind `checker` in the store), a reward model learns from
# them, and PPO (against that reward model) and GRPO (against the checker) improve on that checkpoint.
DEMO_TASK = "reverse"
DEMO_EVALUATION = {"task": DEMO_TASK, "examples": 300, "seed": 1234, "max_new_tokens": 16}


def demo_candidates_spec_data(policy: str, prompts: int = 26000) -> dict:
    """Four answers per prompt from the policy PPO starts from, sampled as PPO samples (temperature
    1): the reward model learns to rank the very answers PPO will produce — on-policy labels, as
    InstructGPT's labelers ranked its SFT policy's outputs. Their wrong answers are mostly near
    misses (one word swapped or misspelt), hard for a model this small to spot: it takes ~20,000
    pairs to rank over 90% of held-out ones right (6,000 prompts give 4,500 pairs and 76%,
    18,000 give 14,000 and 89–91%; docs/rlhf.md)."""
    return {
        "kind": "generate",
        "name": "demo-reverse-candidates",
        "models": [{"path": policy, "label": "sft"}],
        "prompts": {"sources": ["builtin:tasks"], "task": DEMO_TASK, "task_examples": prompts, "task_seed": 1},
        "candidates_per_model": 4,
        "sampling": {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 16,
                     "batch_size": 128},
        "chat_template": "auto",
        "resources": {"device": "auto"},
        "seed": 0,
    }


def demo_reward_spec_data(sft_model: str, queue: str) -> dict:
    """On the final SFT model's body (the one that knows the task best); batches of 64 pairs: with
    16, held-out accuracy stalls 10 points lower."""
    return {
        "kind": "reward",
        "name": "demo-reverse-reward",
        "model": {"path": sft_model},
        "data": {"sources": [f"queue:{queue}"], "eval_fraction": 0.1, "max_length": 64},
        "method": {"name": "full"},
        "train": {"max_steps": 1200, "batch_size": 64, "learning_rate": 3e-4, "warmup_steps": 10,
                  "eval_every": 200, "checkpoint_every": 600, "log_every": 10},
        "resources": {"device": "auto"},
        "seed": 0,
    }


def demo_ppo_spec_data(sft_model: str, reward_model: str, iterations: int = 40) -> dict:
    """Short PPO on a fixed KL leash: past ~40 iterations the reward keeps climbing while exact match
    stops (the reward model's remaining errors get exploited; docs/rlhf.md)."""
    return {
        "kind": "ppo",
        "name": "demo-reverse-ppo",
        "policy": {"path": sft_model},
        "reward_model": reward_model,
        "value_model": "reward",
        "prompts": {"sources": ["builtin:tasks"], "task": DEMO_TASK, "task_examples": 4000, "task_seed": 2},
        "chat_template": "auto",
        "sampling": {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 16, "batch_size": 64},
        "ppo": {"kl_mode": "fixed", "kl_coef": 0.1, "ppo_epochs": 4, "minibatches": 2},
        "method": {"name": "full"},
        "train": {"iterations": iterations, "rollout_batch_size": 64, "learning_rate": 4e-5,
                  "sample_every": 5, "eval_every": max(1, iterations // 2), "checkpoint_every": iterations},
        "evaluation": DEMO_EVALUATION,
        "resources": {"device": "auto"},
        "seed": 0,
    }


def demo_grpo_spec_data(sft_model: str, steps: int = 80) -> dict:
    return {
        "kind": "grpo",
        "name": "demo-reverse-grpo",
        "model": {"path": sft_model},
        "prompts": {"sources": ["builtin:tasks"], "task": DEMO_TASK, "task_examples": 1000, "task_seed": 7},
        "reward": {"source": "checker"},
        "group_size": 8,
        "beta": 0.04,
        "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 16},
        "chat_template": "auto",
        "method": {"name": "full"},
        "train": {"max_steps": steps, "batch_size": 8, "learning_rate": 3e-4, "warmup_steps": 0,
                  "schedule": "constant", "eval_every": max(1, steps // 2), "checkpoint_every": steps, "log_every": 5},
        "evaluation": DEMO_EVALUATION,
        "resources": {"device": "auto"},
        "seed": 0,
    }
