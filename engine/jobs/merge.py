"""Merge models: the spec's models (or a run's last checkpoints) found → adapters folded into their bases
where a whole model is needed → the method (PEFT for folding and for averaging adapters, mergekit for
averaging whole checkpoints and for linear, SLERP and TIES) → output/merged, a transformers folder with
its tokenizer and a model card, written whole or not at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from engine.errors import ModelError
from engine.merge.fold import DTYPES, fold_adapter, saved_dtype
from engine.merge.methods import average_adapters, mergekit_merge
from engine.models import ModelChoice, locate_model, resolve_choice
from engine.rundir import RunDirectory, find_run
from engine.runner import JobContext
from engine.specs.merge import MergeSpec
from engine.training.model_card import model_card, usage
from engine.training.outputs import write_metrics, write_output

def run(ctx: JobContext) -> dict:
    spec: MergeSpec = ctx.spec
    workspace = ctx.run.path.parent.parent
    scratch = ctx.run.path / "merge-inputs"  # adapters folded for mergekit; removed at the end
    try:
        if spec.method == "fold":
            sources, library, make = fold(ctx, workspace)
        elif spec.method == "average":
            sources, library, make = average_checkpoints(ctx, workspace)
        else:
            sources, library, make = merge_models(ctx, workspace, scratch)

        def write(tmp: Path) -> None:
            make(tmp)
            (tmp / "README.md").write_text(card(spec, sources, library), encoding="utf-8")

        target = write_output(ctx, "merged", write)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ctx.events.artifact("model", str(target), {"method": spec.method, "library": library, "models": len(sources)})
    ctx.events.log("info", f"{spec.method} of {len(sources)} model{'s' if len(sources) > 1 else ''} ({library}) → "
                           f"{target}.")
    summary = {"method": spec.method, "library": library, "models": sources, "output": str(target)}
    write_metrics(ctx, summary)
    return summary


Plan = tuple[list[str], str, Callable[[Path], None]]  # what is merged, by which library, and how into a folder


def fold(ctx: JobContext, workspace: Path) -> Plan:
    choice = resolve_choice(ctx.spec.models[0], workspace, "models[0]")
    if not choice.adapter:
        raise ModelError(f"{choice.base} (models[0].path) has no adapter to fold in.",
                         "Name the adapter in models[0].adapter, or point models[0].path at a fine-tuning run or an "
                         "adapter folder.")
    return [choice.description], "PEFT", lambda tmp: fold_adapter(choice, tmp, ctx.events.log)


def whole_model(ctx: JobContext, choice: ModelChoice, scratch: Path) -> str:
    """A folder (or hub id) mergekit can read: the model itself, or it with its adapter folded in."""
    if not choice.adapter:
        return choice.base
    target = scratch / f"model-{choice.index}"
    target.mkdir(parents=True, exist_ok=True)
    ctx.events.log("info", f"Folding {choice.adapter} into {choice.base} for the merge.")
    fold_adapter(choice, target, ctx.events.log)
    return str(target)


def dtype_name(spec: MergeSpec, first: str) -> str:
    if spec.dtype != "auto":
        return spec.dtype
    found = saved_dtype(first)
    return next(name for name, value in DTYPES.items() if value == found)


def merge_models(ctx: JobContext, workspace: Path, scratch: Path) -> Plan:
    spec: MergeSpec = ctx.spec
    choices = [resolve_choice(m, workspace, f"models[{i}]", i) for i, m in enumerate(spec.models)]
    paths = [whole_model(ctx, c, scratch) for c in choices]
    base = None
    if spec.base_model is not None:
        base_choice = resolve_choice(spec.base_model, workspace, "base_model", len(choices))
        base = whole_model(ctx, base_choice, scratch)
    if spec.method == "linear":
        entries, parameters, base_for = [(p, {"weight": m.weight}) for p, m in zip(paths, spec.models)], {}, None
    elif spec.method == "slerp":
        entries, parameters, base_for = [(p, {}) for p in paths], {"t": spec.t}, paths[0]
    else:  # ties
        entries = [(p, {"weight": m.weight, "density": m.density or spec.density}) for p, m in zip(paths, spec.models)]
        parameters, base_for = {"normalize": True}, base
    trust = any(m.trust_remote_code for m in spec.models)
    dtype = dtype_name(spec, paths[0])
    return ([c.description for c in choices] + ([f"base {base}"] if base else []), "mergekit",
            lambda tmp: mergekit_merge(spec.method, entries, base_for, parameters, dtype, tmp, trust))


def average_checkpoints(ctx: JobContext, workspace: Path) -> Plan:
    """The mean of the last checkpoints of a run: whole models by mergekit, adapters by PEFT."""
    spec: MergeSpec = ctx.spec
    try:
        run = find_run(workspace, spec.checkpoints.run)
    except LookupError as e:
        raise ModelError(f"{e} (checkpoints.run)", "Give the id or folder of a training run of this workspace.") from None
    found = RunDirectory(run.path).checkpoints()[-spec.checkpoints.last:]
    if len(found) < 2:
        raise ModelError(f"The run {run.run_id} (checkpoints.run) has {len(found)} complete checkpoint"
                         f"{'s' if len(found) != 1 else ''}; averaging needs two or more.",
                         "Pick a run that kept several checkpoints (train.keep_checkpoints above 1).")
    locations = [locate_model(str(p), workspace, "checkpoints.run") for p in found]
    names = [p.name for p in found]
    ctx.events.log("info", f"Averaging {', '.join(names)} of {run.run_id}.")
    if locations[0].kind == "adapter":
        base = locations[0].require_base()
        dtype = DTYPES[spec.dtype] if spec.dtype != "auto" else saved_dtype(base)
        adapters = [Path(loc.path) for loc in locations]
        return ([f"{run.run_id}@{n}" for n in names], "PEFT",
                lambda tmp: average_adapters(base, adapters, dtype, tmp, ctx.events.log))
    entries = [(loc.path, {"weight": 1.0}) for loc in locations]
    dtype = dtype_name(spec, locations[0].path)
    return ([f"{run.run_id}@{n}" for n in names], "mergekit",
            lambda tmp: mergekit_merge("linear", entries, None, {"normalize": True}, dtype, tmp, False))


def card(spec: MergeSpec, sources: list[str], library: str) -> str:
    listed = "; ".join(f"`{s}`" for s in sources)
    return model_card(spec, {"method": spec.method, "models": len(sources)}, tags=["merge", spec.method],
                      description=f"Made by Atelier's `{spec.method}` merge ({library}) of {listed}.",
                      use=usage("AutoModelForCausalLM"))
