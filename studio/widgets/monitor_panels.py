"""The one table of metrics the studio charts: each metric's panel, title, unit, the names engines
give it, and whether it is a schedule (a value the run sets, never smoothed); which panels a run of
each kind shows; and what a compared series means where two runs' figures of one name differ.

The panels of a kind are built up front (building one while events stream costs a layout pass on the
GUI thread); a metric no panel names gets a chart of its own, titled from its name. Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.kinds import KINDS, TRAINING_CHARTS


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    aliases: tuple[str, ...]  # the metric names (as engines spell them) it shows
    unit: str = ""
    schedule: bool = False  # set by the run (learning rate, epoch, KL coefficient): drawn as it is, never smoothed

    @property
    def caption(self) -> str:
        """The chart's title: "Memory (MB)", "Approx. KL"."""
        return f"{self.title} ({self.unit})" if self.unit else self.title


# Which of them a run of a kind gets, and in what order, is the kind's `charts` in engine.kinds.
PANEL_TABLE: tuple[Panel, ...] = (
    Panel("loss", "Loss", ("loss", "train_loss", "eval_loss")),
    Panel("lr", "Learning rate", ("lr", "learning_rate"), schedule=True),
    Panel("grad_norm", "Gradient norm", ("grad_norm", "gradient_norm")),
    Panel("tokens_per_s", "Throughput", ("tokens_per_s", "tokens_per_second", "tokens_per_sec", "tokens/s"),
          unit="tokens/s"),
    Panel("memory", "Memory", ("memory_mb", "memory_gib", "memory_gb", "memory", "gpu_memory_gib", "max_memory_gib"),
          unit="MB"),
    Panel("perplexity", "Perplexity", ("perplexity",)),
    # Tokens with a loss on them per second, and real tokens over the slots the batches computed (1 when
    # packed padding-free): what the fast path changes (engine/training/batches.py).
    Panel("trained_tokens_per_s", "Trained throughput", ("trained_tokens_per_s",), unit="trained tokens/s"),
    Panel("padding_efficiency", "Padding efficiency", ("padding_efficiency",), unit="real tokens / batch slots"),
    Panel("samples_per_s", "Throughput", ("samples_per_s",), unit="samples/s"),
    Panel("tflops", "Compute", ("tflops",), unit="TFLOP/s"),
    Panel("epoch", "Epoch", ("epoch",), schedule=True),
    # fine-tuning: the task scores of its generated answers (docs/protocol.md)
    Panel("exact_match", "Exact match", ("exact_match",)),
    Panel("bleu", "BLEU", ("bleu",)),
    Panel("rouge_l", "ROUGE-L", ("rouge_l",)),
    # reward models
    Panel("pairwise_accuracy", "Pairwise accuracy", ("pairwise_accuracy",)),
    Panel("mean_margin", "Mean margin", ("mean_margin",)),
    Panel("mean_reward", "Mean reward", ("mean_reward",)),
    # policies (PPO, DPO, GRPO; docs/rlhf.md)
    Panel("reward_mean", "Reward (mean)", ("reward_mean", "reward")),
    Panel("kl", "KL to reference", ("kl", "objective/kl")),
    Panel("task_accuracy", "Task accuracy", ("task_accuracy",)),
    Panel("task_accuracy_sampled", "Task accuracy, sampled", ("task_accuracy_sampled",)),
    Panel("entropy", "Entropy", ("entropy",), unit="nats"),
    Panel("policy_loss", "Policy loss", ("policy_loss",)),
    Panel("value_loss", "Value loss", ("value_loss",)),
    Panel("clip_fraction", "Clip fraction", ("clip_fraction", "clip_ratio")),
    Panel("value_clip_fraction", "Value clip fraction", ("value_clip_fraction",)),
    Panel("approx_kl", "Approx. KL", ("approx_kl",)),
    Panel("response_length", "Response length", ("response_length", "completion_length"), unit="tokens"),
    Panel("stopped", "Answers that stopped", ("stopped",)),
    Panel("clipped_ratio", "Answers cut at the length limit", ("clipped_ratio",)),
    Panel("reward_std", "Reward (std)", ("reward_std",)),
    Panel("zero_std_groups", "Groups with one reward", ("zero_std_groups",)),
    Panel("kl_coef", "KL coefficient", ("kl_coef",), schedule=True),
    Panel("reward_accuracy", "Preference accuracy", ("reward_accuracy",)),
    Panel("reward_margin", "Reward margin", ("reward_margin",)),
    Panel("chosen_reward", "Chosen reward", ("chosen_reward",)),
    Panel("rejected_reward", "Rejected reward", ("rejected_reward",)),
)
Panels = tuple[Panel, ...]
_BY_KEY = {panel.key: panel for panel in PANEL_TABLE}
_ALIASES = {alias: panel.key for panel in PANEL_TABLE for alias in panel.aliases}
# Splits of one-off counts rather than curves (the fine-tuning job's `data` split: records kept,
# truncated, dropped at step 0): not charted; the pages that care show them as figures.
UNCHARTED_SPLITS = ("data",)
# The memory panel is in MB (the engine's `memory_mb`); metrics other engines log in GiB/GB are
# converted so that two runs overlay on one axis.
UNIT_SCALE = {"memory_gib": 1024.0, "gpu_memory_gib": 1024.0, "max_memory_gib": 1024.0, "memory_gb": 1000.0}


def panels_for(kind: str | None) -> Panels:
    """The panels built up front for a run of `kind` (an unknown kind gets a training run's)."""
    charts = KINDS[kind].charts if kind in KINDS else TRAINING_CHARTS
    return tuple(_BY_KEY[key] for key in charts)


def panel_for(name: str) -> tuple[str, bool]:
    """(panel key, whether `name` is the panel's own metric) for a metric name."""
    if name in _ALIASES:
        return _ALIASES[name], True
    if "mem" in name.lower():
        return "memory", False
    return name, True


def panel(key: str) -> Panel:
    """The table's panel of `key`; a metric no panel names gets one titled from its name."""
    return _BY_KEY.get(key) or Panel(key, key.replace("_", " ").capitalize(), (key,))


def metric_title(name: str) -> str:
    """A metric's title as every chart and figure shows it ("exact_match" -> "Exact match")."""
    return panel(panel_for(name)[0]).caption


def scaled(name: str, values):
    """`values` of metric `name` in the unit of its panel."""
    factor = UNIT_SCALE.get(name)
    return values if factor is None else np.asarray(values, dtype=np.float64) * factor


# What a figure of one name measures, where runs of different kinds or settings measure different
# things under it: a loss is a language model's, a reward model's or DPO's; a reward comes from a
# reward model (which one) or a task's checker. Charts say so when they overlay series that differ.
_REWARDS = ("reward_mean", "reward_std")


def meaning(key: str, kind: str | None, spec: dict | None) -> str | None:
    """What panel `key` of a run of `kind` with `spec` measures, when that depends on the run; None
    when the figure means the same in every run."""
    spec = spec if isinstance(spec, dict) else {}
    if key == "loss":
        if kind == "dpo" and spec.get("loss_type") in ("orpo", "simpo"):  # the DPO kind's reference-free losses
            return {"orpo": "ORPO loss", "simpo": "SimPO loss"}[spec["loss_type"]]
        return KINDS[kind].loss if kind in KINDS else None
    if key in _REWARDS:
        if kind == "ppo":
            return f"reward model {spec.get('reward_model') or '?'}"
        if kind == "grpo":
            reward = spec.get("reward") if isinstance(spec.get("reward"), dict) else {}
            if reward.get("source") == "reward_model":
                return f"reward model {reward.get('reward_model') or '?'}"
            return "the task's checker"
    return None
