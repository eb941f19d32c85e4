"""The one registry of job kinds: for each `kind:`, its spec model, its recipe, its preview, what it
writes, its docs page, and what the studio shows of its runs.

Everything that needs to know the kinds reads them here — the spec union (engine.specs), the runner,
the CLI, hub upload, the studio's monitor and RLHF chain. Adding a kind is one entry here plus its
spec module and its recipe. Light: pydantic models and plain data, no torch (the studio imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.specs.base import StrictModel
from engine.specs.clean import CleanSpec
from engine.specs.dpo import DPOSpec
from engine.specs.evaluate import EvaluateSpec
from engine.specs.export import ExportSpec
from engine.specs.finetune import FinetuneSpec
from engine.specs.generate import GenerateSpec
from engine.specs.grpo import GRPOSpec
from engine.specs.kto import KTOSpec
from engine.specs.merge import MergeSpec
from engine.specs.ppo import PPOSpec
from engine.specs.pretrain import PretrainSpec
from engine.specs.reward import RewardSpec
from engine.specs.sweep import SweepSpec
from engine.specs.tokenizer import TokenizerJobSpec

# Where a kind sits in the chain a model is made along; the studio groups and links runs by it.
Stage = Literal["data", "tokenizer", "pretrain", "sft", "candidates", "reward", "policy", "evaluate", "ship", "sweep"]
# What `studio-engine push` uploads from a run when --what is not given (a folder of the run's output/).
Upload = Literal["model", "adapter", "policy", "reward_model", "tokenizer", "dataset"]

# Monitor panels (metric keys, in grid order): a training run's usual signals, and those of the
# kinds judged by something else first.
TRAINING_CHARTS = ("loss", "lr", "grad_norm", "tokens_per_s", "memory", "perplexity", "samples_per_s", "tflops",
                   "epoch")
POLICY_SIGNALS = ("reward_mean", "kl", "task_accuracy")


@dataclass(frozen=True)
class Headline:
    """A figure a run of the kind is judged by: the metric `metric` of split `split`, shown as
    `caption`, as a percentage when `share`."""

    split: str
    metric: str
    caption: str
    share: bool


@dataclass(frozen=True)
class Kind:
    name: str  # the spec's `kind:`
    title: str  # as a person writes it ("Fine-tune", "PPO")
    spec: type[StrictModel]
    job: str  # the module whose `run(ctx)` is the recipe
    docs: str  # the user-guide page, relative to docs/
    stage: Stage
    trains: bool = False  # optimizer steps on a model: may run under a launcher with several processes
    packs: bool = False  # batches records of varying length through engine/training/batches.py (train.packing)
    # Why train.packing: on cannot apply to a kind that does not pack, as the refusal says it.
    unpacked_because: str = "its trainer batches its records itself."
    preview: str | None = None  # a module with `preview(spec, workspace, sample)` and `preview_text(result)`
    upload: Upload | None = None
    charts: tuple[str, ...] = TRAINING_CHARTS
    headlines: tuple[Headline, ...] = ()  # the first one a run has is its headline
    # Its metric events are evaluation cells (a variant or task × a model, one point each, with standard
    # errors): the monitor shows them as a table of scores, not as charts.
    scores: bool = False
    loss: str | None = None  # what its `loss` metric measures, where compared runs' losses may differ
    # It runs other runs and uses no device itself: the queue gives it no slot (engine/queue.py).
    coordinates: bool = False


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("clean", "Clean", CleanSpec, "engine.jobs.clean", "cleaning.md", "data",
         preview="engine.cleaning.preview", upload="dataset"),
    Kind("tokenizer", "Tokenizer", TokenizerJobSpec, "engine.jobs.tokenizer", "tokenizers.md", "tokenizer",
         upload="tokenizer"),
    Kind("pretrain", "Pretrain", PretrainSpec, "engine.jobs.pretrain", "pretraining.md", "pretrain", trains=True,
         unpacked_because="its documents are already joined end to end into full blocks, with no padding to remove.",
         upload="model", loss="next-token loss"),
    Kind("finetune", "Fine-tune", FinetuneSpec, "engine.jobs.finetune", "finetuning.md", "sft", trains=True, packs=True,
         preview="engine.finetune.preview", upload="adapter",
         charts=("loss", "exact_match", "bleu", "rouge_l", "lr", "grad_norm", "tokens_per_s", "trained_tokens_per_s",
                 "padding_efficiency", "memory", "perplexity"),
         headlines=(Headline("eval", "exact_match", "exact match", True),), loss="next-token loss"),
    Kind("generate", "Generate", GenerateSpec, "engine.jobs.generate", "labeling.md", "candidates"),
    Kind("reward", "Reward model", RewardSpec, "engine.jobs.reward", "rlhf.md", "reward", trains=True, packs=True,
         preview="engine.rlhf.preview", upload="reward_model",
         charts=("loss", "pairwise_accuracy", "mean_margin", "lr", "grad_norm", "tokens_per_s", "padding_efficiency",
                 "memory"),
         headlines=(Headline("eval", "pairwise_accuracy", "pairwise accuracy", True),), loss="pairwise ranking loss"),
    Kind("dpo", "DPO", DPOSpec, "engine.jobs.dpo", "rlhf.md", "policy", trains=True, packs=True,
         preview="engine.rlhf.preview", upload="policy",
         charts=("loss", "reward_accuracy", "reward_margin", "task_accuracy", "chosen_reward", "rejected_reward",
                 "lr", "grad_norm", "tokens_per_s", "trained_tokens_per_s", "padding_efficiency"),
         headlines=(Headline("eval", "task_accuracy", "task accuracy", True),
                    Headline("eval", "reward_accuracy", "preference accuracy", True)), loss="DPO loss"),
    Kind("kto", "KTO", KTOSpec, "engine.jobs.kto", "rlhf.md", "policy", trains=True, packs=True,
         preview="engine.rlhf.preview", upload="policy",
         charts=("loss", "reward_margin", "task_accuracy", "chosen_reward", "rejected_reward", "kl", "lr", "grad_norm",
                 "tokens_per_s", "trained_tokens_per_s", "padding_efficiency"),
         headlines=(Headline("eval", "task_accuracy", "task accuracy", True),
                    Headline("eval", "reward_margin", "good − bad reward", False)), loss="KTO loss"),
    Kind("grpo", "GRPO", GRPOSpec, "engine.jobs.grpo", "rlhf.md", "policy", trains=True, packs=True, upload="policy",
         charts=(*POLICY_SIGNALS, "loss", "reward_std", "response_length", "entropy", "lr", "grad_norm", "tokens_per_s",
                 "trained_tokens_per_s", "padding_efficiency"),
         headlines=(Headline("eval", "task_accuracy", "task accuracy", True),
                    Headline("train", "reward_mean", "mean reward", False)), loss="GRPO policy loss"),
    # PPO's loop is ours (engine/rlhf), not a Trainer: one process, counted in iterations.
    Kind("ppo", "PPO", PPOSpec, "engine.jobs.ppo", "rlhf.md", "policy", packs=True, upload="policy",
         charts=(*POLICY_SIGNALS, "entropy", "policy_loss", "value_loss", "clip_fraction", "approx_kl",
                 "response_length", "reward_std", "kl_coef", "padding_efficiency"),
         # A policy's held-out task accuracy comes first: its per-iteration train reward is noisy (new
         # prompts every iteration), and a reward model's score can climb while the answers get worse.
         headlines=(Headline("eval", "task_accuracy", "task accuracy", True),
                    Headline("eval", "reward_mean", "held-out reward", False),
                    Headline("train", "reward_mean", "mean reward", False)), loss="PPO loss"),
    Kind("evaluate", "Evaluate", EvaluateSpec, "engine.jobs.evaluate", "evaluation.md", "evaluate",
         preview="engine.playground.preview", charts=(), scores=True),
    # Shipping a model: files for llama.cpp and Ollama, and models made of several. No training curves.
    Kind("merge", "Merge", MergeSpec, "engine.jobs.merge", "export.md", "ship", upload="model", charts=()),
    Kind("export", "Export", ExportSpec, "engine.jobs.export", "export.md", "ship", charts=()),
    # Trials of any other kind, each its own run: the studio shows a sweep as a table of its trials.
    Kind("sweep", "Sweep", SweepSpec, "engine.jobs.sweep", "cluster.md", "sweep", charts=(), coordinates=True),
)}


def kind_of(name: str) -> Kind:
    """The registered kind `name`; KeyError with the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown kind '{name}'; known kinds: {', '.join(KINDS)}") from None


def kinds_at(stage: Stage) -> list[Kind]:
    """The kinds of one stage of the chain, in registry order (the policy kinds: dpo, grpo, ppo)."""
    return [kind for kind in KINDS.values() if kind.stage == stage]
