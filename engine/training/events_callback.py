"""A transformers TrainerCallback that turns the Trainer's life into protocol events.

Shape after trl's RichProgressCallback: the Trainer owns the loop, the callback only observes (and
asks the loop to save and stop when the user cancels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import psutil
import torch
from transformers import TrainerCallback

from engine.progress import ProgressMeter
from engine.runner import JobContext
from engine.training.batches import TokenCounts


def memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return psutil.Process().memory_info().rss / 2**20


def optimizer_chain(optimizer) -> str:
    """The optimizer as the run uses it, wrappers first: "DeepSpeedZeroOptimizer_Stage3 over DeepSpeedCPUAdam"
    (accelerate's own wrapper, in every run, is left out)."""
    names = []
    while optimizer is not None and len(names) < 4:
        if type(optimizer).__name__ != "AcceleratedOptimizer":
            names.append(type(optimizer).__name__)
        optimizer = getattr(optimizer, "optimizer", None)
    return " over ".join(names)


class EventsCallback(TrainerCallback):
    def __init__(self, ctx: JobContext, sequences_per_step: int, tokens_per_sequence: int, parameters: int,
                 sample: Callable[[object], list[tuple[str, str]]] | None = None, sample_every: int = 0,
                 counts: TokenCounts | None = None):
        """`tokens_per_sequence` estimates tokens/s for a kind whose batches are not counted; `counts`
        (the tokens of each batch, engine/training/batches.py) measures them instead and adds trained
        tokens/s and padding efficiency."""
        self.ctx = ctx
        self.counts = counts
        self.sequences_per_step = sequences_per_step
        self.tokens_per_step = sequences_per_step * tokens_per_sequence
        self.parameters = parameters
        self.sample = sample
        self.sample_every = sample_every
        self._step_started = 0.0
        self._step_seconds = 0.0  # time inside training steps since the last log (no eval, no sampling)
        self._steps_since_log = 0
        self._busy_seconds = 0.0  # time inside training steps since training began, for the ETA
        self.progress: ProgressMeter | None = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.progress = ProgressMeter(self.ctx, "train", state.max_steps, "steps")
        self.progress.update(state.global_step, force=True)
        if optimizer is not None:
            self.ctx.events.log("info", f"Optimizer: {optimizer_chain(optimizer)}.")

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        elapsed = time.perf_counter() - self._step_started
        self._step_seconds += elapsed
        self._busy_seconds += elapsed
        self._steps_since_log += 1
        self.ctx.step = state.global_step
        if self._cancel_agreed(args):
            control.should_save = True
            control.should_training_stop = True
        elif self.sample and self.sample_every and state.global_step % self.sample_every == 0:
            for prompt, text in self.sample(kwargs["model"]):
                self.ctx.events.sample(state.global_step, prompt, text)
        self.progress.update(state.global_step, busy_s=self._busy_seconds)

    def _cancel_agreed(self, args) -> bool:
        """Whether to stop now. With several processes, a cancel reaches rank 0 only (its pid is the
        run's): every rank must stop at the same step, or the others wait forever in the next
        collective, so the flag is shared with one tiny all-reduce per step."""
        cancel = self.ctx.cancel_requested.is_set()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(cancel)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() and not cancel:
                self.ctx.cancel_requested.set()
            cancel = bool(flag.item())
        return cancel

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # eval logs are handled in on_evaluate, the final summary by the job
            return
        values = {"loss": logs["loss"], "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                  "epoch": logs.get("epoch"), "memory_mb": round(memory_mb(), 1)}
        if self._step_seconds > 0:
            tokens_per_s = self.tokens_per_step * self._steps_since_log / self._step_seconds
            if self.counts is not None:
                real, trained, slots = self.counts.take()
                tokens_per_s = real / self._step_seconds
                values["trained_tokens_per_s"] = round(trained / self._step_seconds, 1)
                # Real tokens over the slots the batches computed: 1.0 when packed, less with padding.
                values["padding_efficiency"] = round(real / slots, 4) if slots else None
            values["tokens_per_s"] = round(tokens_per_s, 1)
            values["samples_per_s"] = round(self.sequences_per_step * self._steps_since_log / self._step_seconds, 2)
            # Training FLOPs ≈ 6 × parameters × tokens (Kaplan et al.); MFU needs the device peak, which
            # only a GPU report knows, so the studio computes it from this figure when it has one.
            values["tflops"] = round(6 * self.parameters * tokens_per_s / 1e12, 4)
        self._step_seconds, self._steps_since_log = 0.0, 0
        self.ctx.events.metric(state.global_step, "train", values)
        self.ctx.update_status(step=state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        if "eval_loss" not in metrics:
            return
        loss = metrics["eval_loss"]
        values = {"loss": loss, "perplexity": math.exp(loss) if loss < 50 else None}
        self.ctx.events.metric(state.global_step, "eval", values)

    def on_save(self, args, state, control, **kwargs):
        path = f"{args.output_dir}/checkpoint-{state.global_step}"
        self.ctx.events.artifact("checkpoint", path, {"step": state.global_step})
        self.ctx.update_status(step=state.global_step)
