"""The trainer of a reward job: TRL's RewardTrainer (Bradley–Terry loss on chosen/rejected scores)
configured from the spec, with the events callback and the live held-out measurement.

Imports transformers, TRL and datasets (seconds): the reward job imports this module only once its
preference data has loaded, so that bad data is reported at once.
"""

from __future__ import annotations

import datasets
import torch
from transformers import TrainerCallback
from trl import RewardConfig, RewardTrainer

from engine.devices import Placement
from engine.rlhf.reward_model import SCORE_HEADS
from engine.rlhf.reward_scoring import PairScorer
from engine.runner import JobContext
from engine.training.arguments import training_arguments
from engine.training.events_callback import EventsCallback
from engine.training.batches import CountingTokens, Packing, TokenCounts
from engine.training.pairs import PackedPairCollator, RecordScores


class PairwiseEvalCallback(TrainerCallback):
    """Held-out pairwise accuracy and mean margin every `eval_every` steps (the job measures the last
    step itself); the trainer's own batch accuracy and margin as train metrics of the same names."""

    def __init__(self, ctx: JobContext, scorer: PairScorer):
        self.ctx, self.scorer = ctx, scorer

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.ctx.spec.train.eval_every
        if (self.scorer.rows and model is not None and state.global_step % every == 0
                and state.global_step < state.max_steps and not self.ctx.cancel_requested.is_set()):
            self.ctx.events.metric(state.global_step, "eval", self.scorer.measure(model))

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs and "accuracy" in logs:  # a training log (eval logs carry eval_ names)
            self.ctx.events.metric(state.global_step, "train", {
                "pairwise_accuracy": logs["accuracy"], "mean_margin": logs.get("margin"),
                "mean_reward": logs.get("mean_reward")})


class CountingRewardTrainer(CountingTokens, RewardTrainer):
    """TRL's RewardTrainer counting its batches' tokens: tokens/s and padding efficiency, as fine-tuning's."""


class PackedRewardTrainer(CountingRewardTrainer):
    """TRL's RewardTrainer on packed pairs (PackedPairCollator): the model answers through RecordScores with one
    score per record, so TRL's own loss (Bradley–Terry, margin, centering) and metrics apply unchanged."""

    def __init__(self, *args, score_head: torch.nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.score_head = score_head

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        positions = inputs.pop("score_positions", None)  # None: a batch the collator left padded
        scorer = RecordScores(model, self.score_head, positions) if positions is not None else model
        return super().compute_loss(scorer, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def score_head(model) -> torch.nn.Module:
    """The module that makes the scores (PEFT's copy of it under LoRA): found before the Trainer wraps the model,
    as DDP and the other wrappers keep the module itself."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for name in SCORE_HEADS:
        if hasattr(base, name):
            return getattr(base, name)
    raise AttributeError(f"{type(base).__name__} has none of the score heads {SCORE_HEADS}")


def build_trainer(ctx: JobContext, placement: Placement, model, tokenizer, train_rows: list[dict],
                  scorer: PairScorer, parameters: int, packing: Packing = Packing(False)) -> CountingRewardTrainer:
    """A RewardTrainer on pre-tokenized pairs ({"chosen_ids", "rejected_ids"}), checkpointing into the run;
    where `packing` packs, a batch's pairs in one padding-free row."""
    train = ctx.spec.train
    args = RewardConfig(**training_arguments(
        ctx, placement, has_eval=False,  # the held-out pairs are measured by PairwiseEvalCallback, over every pair
        ddp_find_unused_parameters=False,
        max_length=None,  # too-long pairs were dropped (and counted) before
        center_rewards_coefficient=train.center_rewards))
    lengths = [len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in train_rows]
    counts = TokenCounts()
    events = EventsCallback(ctx, sequences_per_step=2 * train.batch_size * train.gradient_accumulation,
                            tokens_per_sequence=int(sum(lengths) / (2 * len(lengths))), parameters=parameters,
                            counts=counts)
    common = dict(model=model, args=args, train_dataset=datasets.Dataset.from_list(train_rows),
                  processing_class=tokenizer, callbacks=[events, PairwiseEvalCallback(ctx, scorer)], counts=counts)
    if not packing.packed:
        return CountingRewardTrainer(**common)
    collator = PackedPairCollator(tokenizer.pad_token_id, flash_attention=placement.device.startswith("cuda"),
                                  packing=packing)
    return PackedRewardTrainer(**common, data_collator=collator, score_head=score_head(model))
