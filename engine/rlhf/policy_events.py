"""Events of the preference and RL trainers: TRL's logged figures under readable metric names.

TRL logs `rewards/accuracies`, `completions/mean_length` and the like; the studio charts and the
summaries use the names below (`reward_accuracy`, `completion_length`, …), split train or eval.
"""

from __future__ import annotations

from engine.training.batches import TokenCounts
from engine.training.events_callback import EventsCallback, memory_mb

DPO_METRICS = {
    "loss": "loss",
    "rewards/accuracies": "reward_accuracy",  # share of pairs whose chosen answer gets the higher implicit reward
    "rewards/margins": "reward_margin",
    "rewards/chosen": "chosen_reward",
    "rewards/rejected": "rejected_reward",
    "logps/chosen": "chosen_logp",
    "logps/rejected": "rejected_logp",
    "entropy": "entropy",
}
KTO_METRICS = {
    "loss": "loss",
    "rewards/chosen": "chosen_reward",  # mean implicit reward of the good answers
    "rewards/rejected": "rejected_reward",  # of the bad ones
    "rewards/margins": "reward_margin",
    "logps/chosen": "chosen_logp",
    "logps/rejected": "rejected_logp",
    "kl": "kl",  # KTO's reference point: the policy's KL from the reference on mismatched answers
    "entropy": "entropy",
}
GRPO_METRICS = {
    "loss": "loss",
    "reward": "reward",  # mean reward of the step's answers
    "reward_std": "reward_std",
    "frac_reward_zero_std": "zero_std_groups",  # groups whose answers all scored the same: nothing to learn there
    "kl": "kl",
    "entropy": "entropy",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "clipped_ratio",  # answers cut at sampling.max_new_tokens
    "clip_ratio/region_mean": "clip_ratio",
}


def readable(logs: dict, names: dict[str, str], prefix: str = "") -> dict[str, float]:
    return {name: logs[prefix + key] for key, name in names.items()
            if isinstance(logs.get(prefix + key), (int, float))}


class PolicyEventsCallback(EventsCallback):
    """EventsCallback (progress, checkpoints, cancel) with TRL's figures added to the metric events:
    one train event per log step (loss, lr, grad_norm, throughput and the mapped figures) and one
    eval event per evaluation. Throughput counts the batches' tokens where the trainer counts them
    (`counts`: DPO, KTO and GRPO, with padding efficiency), otherwise the tokens TRL reports (`num_tokens`,
    ORPO and SimPO): the lengths of preference pairs and sampled answers vary from step to step."""

    def __init__(self, ctx, names: dict[str, str], sequences_per_step: int, parameters: int,
                 counts: TokenCounts | None = None):
        super().__init__(ctx, sequences_per_step=sequences_per_step, tokens_per_sequence=0, parameters=parameters,
                         counts=counts)
        self.names = names
        self.last: dict[str, dict[str, float]] = {"train": {}, "eval": {}}
        self.first_train: dict[str, float] = {}
        self._tokens_seen: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs:
            values = readable(logs, self.names, "eval_")
            self.last["eval"] = values
            self.ctx.events.metric(state.global_step, "eval", values)
            return
        if "loss" not in logs:  # the Trainer's end-of-training summary: the job reports its own
            return
        values = {"lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"), "epoch": logs.get("epoch"),
                  "memory_mb": round(memory_mb(), 1), **readable(logs, self.names)}
        seen = logs.get("num_tokens")
        if self._step_seconds > 0:
            steps = self._steps_since_log
            values["samples_per_s"] = round(self.sequences_per_step * steps / self._step_seconds, 2)
            tokens_per_s = None
            if self.counts is not None:  # batches counted as they train: padding efficiency too
                real, trained, slots = self.counts.take()
                tokens_per_s = real / self._step_seconds
                values["trained_tokens_per_s"] = round(trained / self._step_seconds, 1)
                values["padding_efficiency"] = round(real / slots, 4) if slots else None
            elif isinstance(seen, (int, float)) and self._tokens_seen is not None and seen > self._tokens_seen:
                tokens_per_s = (seen - self._tokens_seen) / self._step_seconds
            if tokens_per_s is not None:
                values["tokens_per_s"] = round(tokens_per_s, 1)
                values["tflops"] = round(6 * self.parameters * tokens_per_s / 1e12, 4)
        if isinstance(seen, (int, float)):
            self._tokens_seen = seen
        self._step_seconds, self._steps_since_log = 0.0, 0
        self.last["train"] = values
        self.first_train = self.first_train or values
        self.ctx.events.metric(state.global_step, "train", values)
        self.ctx.update_status(step=state.global_step)

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens_seen = None  # TRL's counters may restart on resume: rates start from the first log
        return super().on_train_begin(args, state, control, **kwargs)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        pass  # eval figures are sent from on_log, where TRL has added its own to the Trainer's
