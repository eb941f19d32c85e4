"""How every training kind starts and trains: seeds, device and precision, trackers and the process
group announced once; then the training call, from the run's last checkpoint when resuming, ending at
exactly `train.max_steps`, and `Cancelled` when the user stopped it early."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.devices import Placement, resolve
from engine.errors import ResourceError, UserError
from engine.launch import inside_launcher, world_size
from engine.runner import Cancelled, JobContext
from engine.training.reporting import start_reporting
from engine.training.strategy import describe

log = logging.getLogger(__name__)


def begin_training(ctx: JobContext) -> Placement:
    """Seed everything from `seed`, resolve `resources` to a device and precision, check the trackers
    of `train.report_to`, and say where the run trains (and, under a launcher, in which group)."""
    import datasets
    from transformers import set_seed

    datasets.disable_progress_bars()  # progress reaches the user as events; bars would only fill engine.log
    set_seed(ctx.spec.seed)
    placement = resolve(ctx.spec.resources)
    check_strategy(ctx.spec, placement)
    check_packing(ctx.spec)
    start_reporting(ctx)
    ctx.events.log("info", f"Training on {placement.device} in {placement.precision}.")
    if inside_launcher():
        backend = "gloo" if placement.device == "cpu" else "nccl"
        ctx.events.log("info", f"{os.environ.get('WORLD_SIZE', '?')} processes in one {ctx.spec.resources.strategy} "
                               f"group over {backend}; rank 0 reports. {describe(ctx.spec.resources)}")
    return placement


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1])


def check_strategy(spec, placement: Placement) -> None:
    """Refuse a strategy for several processes that would not do what it says here, before anything loads."""
    if world_size(spec) <= 1 or spec.resources.strategy != "fsdp":
        return
    if placement.device == "cpu":
        # accelerate wraps a model in FSDP on GPUs only: on CPUs it would train plain DDP without a word.
        raise ResourceError("resources.strategy fsdp shards a model across GPUs; on this run's CPUs the Trainer would "
                            "train every process with the whole model (plain DDP) instead.",
                            "Use resources.strategy deepspeed-zero3 (it shards parameters on CPUs too) or "
                            "deepspeed-zero2, or ddp.")
    method = getattr(getattr(spec, "method", None), "name", "full")
    merging = method not in ("full", "prefix", "prompt", "ptuning") and (
        spec.kind != "finetune" or spec.output.merge)
    if merging:
        raise ResourceError(f"A {spec.kind} run with method {method} merges its LoRA adapter into the model at the end, "
                            f"which needs whole weights; FSDP keeps them sharded.",
                            "Use resources.strategy deepspeed-zero3 (its weights are gathered for the merge) or "
                            "deepspeed-zero2, or train with method full.")


def check_packing(spec) -> None:
    """Refuse `train.packing: on` for a kind whose batches are not made by engine/training/batches.py."""
    from engine.kinds import KINDS

    kind = KINDS[spec.kind]
    if getattr(spec.train, "packing", "auto") == "on" and not kind.packs:
        raise UserError(f"train.packing is on, but {spec.kind} runs do not pack records: {kind.unpacked_because}",
                        "Set train.packing to auto or off for this kind.")


def train(ctx: JobContext, trainer) -> None:
    """Train to `max_steps`: from scratch, or from `ctx.resume_from` (the last complete checkpoint),
    keeping `train.keep_checkpoints` of them (engine/training/checkpoints.py). A checkpoint already at
    the last step (the run was killed while saving its outputs) is restored instead of trained from:
    the Trainer would take one more step past the end."""
    from engine.training.checkpoints import KeepCheckpoints

    trainer.add_callback(KeepCheckpoints(ctx.run.checkpoints_dir, ctx.spec.train.keep_checkpoints))
    checkpoint = ctx.resume_from
    if checkpoint is not None and checkpoint_step(checkpoint) >= trainer.args.max_steps:
        restore_finished(ctx, trainer, checkpoint)
    else:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if ctx.cancel_requested.is_set() and trainer.state.global_step < trainer.args.max_steps:
        raise Cancelled()  # stopped early; a cancel that lands after the last step changes nothing


def restore_finished(ctx: JobContext, trainer, checkpoint: Path) -> None:
    """The weights and the trainer state (its log history: the final losses) of a checkpoint taken at
    the last step, so that the job's outputs are those of the run that was interrupted."""
    from transformers import TrainerState

    # The Trainer's own loader: it knows full models, sharded ones and PEFT adapters alike.
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    ctx.step = trainer.state.global_step
    ctx.events.log("info", f"The run had reached its last step ({trainer.state.global_step}) before it stopped: "
                           f"its outputs are written from checkpoint-{trainer.state.global_step}.")
