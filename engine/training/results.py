"""Figures read back from a finished transformers Trainer, shared by the training jobs."""

from __future__ import annotations

from transformers import Trainer


def final_eval_loss(trainer: Trainer) -> float:
    """The eval loss at the last step: reuse the evaluation the schedule just ran, if any (the
    events callback emits the metric either way)."""
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry and entry.get("step") == trainer.state.global_step:
            return entry["eval_loss"]
    return trainer.evaluate()["eval_loss"]


def last_train_loss(trainer: Trainer) -> float | None:
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses[-1] if losses else None
