"""Writing a run's outputs: from rank 0 only, each folder whole or not at all, with nothing left of an
earlier attempt that was killed while writing.

Under torchrun every process reaches the end of a recipe; the others hold the same weights, and if
they wrote too they would race rank 0 for the same folder (one of them could replace a complete
model with a copy that lacks its weights). Gathering sharded weights (DeepSpeed ZeRO-3, FSDP) is a
collective step: every process enters `whole_weights`, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.launch import rank
from engine.rundir import atomic_directory, atomic_write_text, remove_leftovers
from engine.runner import JobContext

log = logging.getLogger(__name__)


def write_output(ctx: JobContext, name: str, write: Callable[[Path], None]) -> Path:
    """output/<name>, written by `write(folder)` into a temporary folder renamed into place — by rank 0
    alone. Returns the target (on every rank)."""
    target = ctx.run.output_dir / name
    if not ctx.primary:
        return target
    with atomic_directory(target) as tmp:  # which first removes what an interrupted write left
        write(tmp)
    log.info("process %d (rank %d) wrote %s", os.getpid(), rank(), target)
    return target


def write_metrics(ctx: JobContext, summary: dict) -> None:
    """output/metrics.json: the run's summary (rank 0)."""
    if ctx.primary:
        target = ctx.run.output_dir / "metrics.json"
        remove_leftovers(target)
        atomic_write_text(target, json.dumps(summary, indent=1))


@contextlib.contextmanager
def whole_weights(trainer) -> Iterator[dict | None]:
    """A block in which the trained model can be saved whole. DeepSpeed ZeRO-3 partitions every
    parameter across the processes: inside, each is gathered onto every rank (so a LoRA adapter can be
    merged too). FSDP shards them likewise: the block gets a gathered state dict to save with. A
    collective step — every rank enters it; elsewhere the model is whole already and the block gets None."""
    if trainer.is_fsdp_enabled:
        yield trainer.accelerator.get_state_dict(trainer.model)
    elif trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(trainer.model.parameters()), modifier_rank=None):
            yield None
    else:
        yield None


def save_model_folder(ctx: JobContext, name: str, model, tokenizer, card: str, *, artifact: str = "model",
                      meta: dict | None = None, state_dict: dict | None = None) -> Path:
    """output/<name>: a save_pretrained folder (safetensors; a PEFT model saves its adapter), the
    tokenizer and a model card; announced as an `artifact` event of kind `artifact`."""

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")

    target = write_output(ctx, name, write)
    ctx.events.artifact(artifact, str(target), meta or {})  # other ranks' event writers write nowhere
    return target
