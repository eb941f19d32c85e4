"""The trainer of a reward job: TRL's RewardTrainer (Bradley–Terry loss on chosen/rejected scores)
configured from the spec, with the events callback and the live held-out measurement.

Imports transformers, TRL and datasets (seconds): the reward job imports this module only once its
preference data has loaded, so that bad data is reported at once.
"""

from __future__ import annotations

import datasets
from transformers import TrainerCallback
from trl import RewardConfig, RewardTrainer

from engine.devices import Placement
from engine.distributed_config import trainer_arguments
from engine.launch import inside_launcher
from engine.rlhf.reward_scoring import PairScorer
from engine.runner import JobContext
from engine.training.events_callback import EventsCallback
from engine.training.reporting import trainer_reporting


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


def build_trainer(ctx: JobContext, placement: Placement, model, tokenizer, train_rows: list[dict],
                  scorer: PairScorer, parameters: int) -> RewardTrainer:
    """A RewardTrainer on pre-tokenized pairs ({"chosen_ids", "rejected_ids"}), checkpointing into the run."""
    spec, train = ctx.spec, ctx.spec.train
    datasets.disable_progress_bars()
    args = RewardConfig(
        output_dir=str(ctx.run.checkpoints_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.schedule if train.schedule != "constant" else "constant_with_warmup",
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm or None,
        optim="adamw_torch",
        activation_checkpointing=train.gradient_checkpointing,  # TRL's default is on; ours is the spec's
        bf16=placement.bf16,  # TRL's default is bf16 whenever fp16 is off; ours is the placement's
        fp16=placement.fp16,
        use_cpu=placement.device == "cpu",
        ddp_backend="gloo" if placement.device == "cpu" and inside_launcher() else None,
        ddp_find_unused_parameters=False,
        logging_strategy="steps",
        logging_steps=train.log_every,
        eval_strategy="no",  # the held-out pairs are measured by PairwiseEvalCallback, over every pair
        save_strategy="steps",
        save_steps=train.checkpoint_every,
        save_total_limit=train.keep_checkpoints,
        seed=spec.seed,
        data_seed=spec.seed,
        **trainer_reporting(ctx),
        disable_tqdm=True,
        max_length=None,  # too-long pairs were dropped (and counted) before
        center_rewards_coefficient=train.center_rewards,
        **trainer_arguments(spec.resources),
    )
    lengths = [len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in train_rows]
    events = EventsCallback(ctx, sequences_per_step=2 * train.batch_size * train.gradient_accumulation,
                            tokens_per_sequence=int(sum(lengths) / (2 * len(lengths))), parameters=parameters)
    return RewardTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(train_rows),
                         processing_class=tokenizer, callbacks=[events, PairwiseEvalCallback(ctx, scorer)])
