"""Which charts the run monitor shows for a run of each kind, and which metric names each chart takes.

The panels of a kind are built up front (building one while events stream costs a layout pass on the
GUI thread); a metric no panel names gets a chart of its own.
"""

from __future__ import annotations

import numpy as np

# The fixed panels, in grid order, with the metric names (as engines spell them) each one shows.
PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("loss", "Loss", ("loss", "train_loss", "eval_loss")),
    ("lr", "Learning rate", ("lr", "learning_rate")),
    ("grad_norm", "Gradient norm", ("grad_norm", "gradient_norm")),
    ("tokens_per_s", "Tokens / s", ("tokens_per_s", "tokens_per_second", "tokens_per_sec", "tokens/s")),
    ("memory", "Memory (MB)", ("memory_mb", "memory_gib", "memory_gb", "memory", "gpu_memory_gib", "max_memory_gib")),
    # The rest of what the pretraining job reports (docs/protocol.md). Built up front with the
    # others: building a panel while events stream in costs a layout pass (~100 ms) on the GUI thread.
    ("perplexity", "Perplexity", ("perplexity",)),
    ("samples_per_s", "Samples / s", ("samples_per_s",)),
    ("tflops", "TFLOP/s", ("tflops",)),
    ("epoch", "Epoch", ("epoch",)),
)
Panels = tuple[tuple[str, str, tuple[str, ...]], ...]
# A fine-tuning run: the task scores of its generated answers (docs/protocol.md) beside the loss.
FINETUNE_PANELS: Panels = (
    PANELS[0],
    ("exact_match", "Exact match", ("exact_match",)),
    ("bleu", "BLEU", ("bleu",)),
    ("rouge_l", "ROUGE-L", ("rouge_l",)),
    *(panel for panel in PANELS[1:] if panel[0] in ("lr", "grad_norm", "tokens_per_s", "memory", "perplexity")),
)
# The preference and RL jobs (docs/rlhf.md): what each is judged by first, then its training signals.
REWARD_PANELS: Panels = (
    PANELS[0],
    ("pairwise_accuracy", "Pairwise accuracy", ("pairwise_accuracy",)),
    ("mean_margin", "Mean margin", ("mean_margin",)),
    *(panel for panel in PANELS[1:] if panel[0] in ("lr", "grad_norm", "memory")),
)
PPO_PANELS: Panels = (
    ("reward_mean", "Reward (mean)", ("reward_mean", "reward")),
    ("kl", "KL to reference", ("kl", "objective/kl")),
    ("task_accuracy", "Task accuracy", ("task_accuracy",)),
    ("entropy", "Entropy", ("entropy",)),
    ("policy_loss", "Policy loss", ("policy_loss",)),
    ("value_loss", "Value loss", ("value_loss",)),
    ("clip_fraction", "Clip fraction", ("clip_fraction",)),
    ("approx_kl", "Approx. KL", ("approx_kl",)),
    ("response_length", "Response length", ("response_length", "completion_length")),
    ("reward_std", "Reward (std)", ("reward_std",)),
    ("kl_coef", "KL coefficient", ("kl_coef",)),
)
DPO_PANELS: Panels = (
    PANELS[0],
    ("reward_accuracy", "Preference accuracy", ("reward_accuracy",)),
    ("reward_margin", "Reward margin", ("reward_margin",)),
    ("task_accuracy", "Task accuracy", ("task_accuracy",)),
    ("chosen_reward", "Chosen reward", ("chosen_reward",)),
    ("rejected_reward", "Rejected reward", ("rejected_reward",)),
    *(panel for panel in PANELS[1:] if panel[0] in ("lr", "grad_norm")),
)
GRPO_PANELS: Panels = (
    PPO_PANELS[0], PPO_PANELS[1], PPO_PANELS[2], PANELS[0], PPO_PANELS[9], PPO_PANELS[8], PPO_PANELS[3],
    *(panel for panel in PANELS[1:] if panel[0] in ("lr", "grad_norm")),
)
PANELS_BY_KIND: dict[str, Panels] = {"finetune": FINETUNE_PANELS, "reward": REWARD_PANELS, "ppo": PPO_PANELS,
                                     "dpo": DPO_PANELS, "grpo": GRPO_PANELS}
_ALIASES = {alias: key for panels in (PANELS, *PANELS_BY_KIND.values()) for key, _, aliases in panels
            for alias in aliases}
# Splits of one-off counts rather than curves (the fine-tuning job's `data` split: records kept,
# truncated, dropped at step 0): not charted; the pages that care show them as figures.
UNCHARTED_SPLITS = ("data",)
# The memory panel is in MB (the engine's `memory_mb`); metrics other engines log in GiB/GB are
# converted so that two runs overlay on one axis.
UNIT_SCALE = {"memory_gib": 1024.0, "gpu_memory_gib": 1024.0, "max_memory_gib": 1024.0, "memory_gb": 1000.0}


def panels_for(kind: str | None) -> Panels:
    """The panels built up front for a run of `kind`."""
    return PANELS_BY_KIND.get(kind or "", PANELS)


def panel_for(name: str) -> tuple[str, bool]:
    """(panel key, whether `name` is the panel's own metric) for a metric name."""
    if name in _ALIASES:
        return _ALIASES[name], True
    if "mem" in name.lower():
        return "memory", False
    return name, True


def scaled(name: str, values):
    """`values` of metric `name` in the unit of its panel."""
    factor = UNIT_SCALE.get(name)
    return values if factor is None else np.asarray(values, dtype=np.float64) * factor
