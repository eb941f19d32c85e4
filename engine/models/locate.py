"""Where a model is: a reference as a spec writes it (a path, a run id, a hub id) made into a folder.

A reference is, in this order:
1. a folder on this machine — a path relative to the workspace (`runs/ID/output/model`, as run
   specs store them) or from before the workspace moved is read as engine.workspace_paths.resolve_path
   says — or a run id of the workspace (`<workspace>/runs/<id>`) when no such path exists;
2. in that folder: a model (`config.json` and weights: a `save_pretrained` folder or a checkpoint,
   `checkpoints/checkpoint-N`), else a PEFT adapter (`adapter_config.json`, loaded on the model its
   `base_model_name_or_path` names), else a run or its `output/` folder, whose outputs are searched
   in the one order of `RUN_OUTPUTS` for those the role takes;
3. a hub id `owner/name` (`from_pretrained` downloads it, or finds it in the cache offline).

Roles: `model` (a causal LM, or an adapter on its base: generation, evaluation, serving, policies,
the start of a reward model), `base` (a whole causal LM: the base of a fine-tuning run) and `reward`
(a sequence-classification reward model). Errors name the spec's field and say what to do.

Light: the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import ModelError
from engine.rundir import RunDirectory
from engine.workspace_paths import resolve_path

Role = Literal["model", "base", "reward"]
Kind = Literal["model", "adapter", "hub"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# The outputs a run writes under output/, in the order a run reference resolves them: a reward run's
# classifier; a fine-tuning run's merged model; a pretraining or full fine-tuning run's model; a
# PPO, DPO or GRPO policy; a fine-tuning run's adapter.
RUN_OUTPUTS = ("reward_model", "merged", "model", "policy", "adapter")
ROLE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "model": ("merged", "model", "policy", "adapter"),
    "base": ("merged", "model", "policy"),
    "reward": ("reward_model", "merged", "model"),
}
_GENERIC_NAMES = {"model", "merged", "adapter", "policy", "reward_model", "output"}  # say nothing about the model


@dataclass(frozen=True)
class ModelLocation:
    """A model reference, found."""

    kind: Kind
    path: str  # the folder, or the hub id
    label: str  # a readable name: the run id (`run@checkpoint-200` for a checkpoint), else the folder or hub id
    field: str  # where the spec names it, for messages: "models[0].path", "reward_model"
    base: str | None = None  # for an adapter: the folder or hub id it was trained on, when that is here
    trained_on: str | None = None  # for an adapter: its adapter_config.json's base_model_name_or_path

    def require_base(self) -> str:
        """The base model of an adapter; an error naming the field when the adapter does not say
        which it is, or that model is not on this machine."""
        if self.base is not None:
            return self.base
        entry = self.field.rsplit(".", 1)[0]
        hint = f"Give the base model in {entry}.path and the adapter in {entry}.adapter."
        if not self.trained_on:
            raise ModelError(f"The adapter {self.path} ({self.field}) does not say which model it was trained on "
                             f"(base_model_name_or_path is empty in its adapter_config.json).", hint)
        raise ModelError(f"The adapter {self.path} ({self.field}) was trained on {self.trained_on}, which is not on "
                         f"this machine.", hint)


def locate_model(reference: str, workspace: Path | None, field: str, role: Role = "model") -> ModelLocation:
    """Find the model `reference` (the spec's `field`) names, as the module's docstring says.
    Raises ModelError naming `field` and saying what to do when there is none."""
    folder = Path(resolve_path(reference, workspace) if workspace is not None else reference).expanduser()
    if not folder.exists() and workspace is not None and (Path(workspace) / "runs" / reference).is_dir():
        folder = Path(workspace) / "runs" / reference
    if folder.is_dir():
        return _in_folder(folder, reference, field, role, workspace)
    if folder.exists():
        raise ModelError(f"{folder} ({field}) is a file; a model is a folder.", f"Point {field} at the folder.")
    if is_hub_id(reference):
        return ModelLocation("hub", reference, reference, field)
    hint = ("Give a reward run id of this workspace, a reward model folder, or a hub id such as owner/name."
            if role == "reward" else "Give a run id of this workspace, a model, checkpoint or adapter folder, or a "
                                     "hub id such as owner/name.")
    raise ModelError(f"The {_noun(role)} {reference} ({field}) does not exist.", hint)


def has_weights(folder: Path | str) -> bool:
    return any((Path(folder) / name).exists() for name in WEIGHT_FILES)


def has_tokenizer(folder: Path | str) -> bool:
    return any((Path(folder) / name).exists() for name in TOKENIZER_FILES)


def is_hub_id(reference: str) -> bool:
    """`owner/name`, not a path (`./x`, `/x`, `~/x`)."""
    return "/" in reference and not reference.startswith((".", "/", "~"))


def trained_on(adapter: Path | str) -> str | None:
    """The base model an adapter folder says it was trained on."""
    config = Path(adapter) / "adapter_config.json"
    if not config.exists():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or None


def model_label(reference: str, location: str) -> str:
    """A readable name: the run id (`run@checkpoint-200` for a checkpoint), else the folder's name
    (past folders named model, merged, adapter…), else the reference itself (a hub id)."""
    if not Path(location).exists():
        return reference
    parts = Path(location).resolve().parts
    if "runs" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("runs")
        run = parts[at + 1]
        checkpoint = next((p for p in parts[at + 2:] if p.startswith("checkpoint-")), None)
        return f"{run}@{checkpoint}" if checkpoint else run
    folder = Path(location).resolve()
    while folder.name in _GENERIC_NAMES and folder.parent != folder:
        folder = folder.parent
    return folder.name or reference


def _in_folder(folder: Path, reference: str, field: str, role: Role, workspace: Path | None) -> ModelLocation:
    if (folder / "config.json").exists() and has_weights(folder):
        return ModelLocation("model", str(folder), model_label(reference, str(folder)), field)
    if (folder / "adapter_config.json").exists():
        return _adapter(folder, reference, field, role, workspace)
    if (folder / "config.json").exists():
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:12])
        raise ModelError(f"{folder} ({field}) has a config.json but no weights (it holds: {present}).",
                         "Copy the model's .safetensors files into the folder, or save it again with save_pretrained.")
    output = folder / "output" if (folder / "output").is_dir() else folder
    for name in ROLE_OUTPUTS[role]:
        found = output / name
        if name == "adapter" and (found / "adapter_config.json").exists():
            return _adapter(found, reference, field, role, workspace)
        if (found / "config.json").exists():
            return _in_folder(found, reference, field, role, workspace)
    if role != "model" and (output / "adapter" / "adapter_config.json").exists():
        return _adapter(output / "adapter", reference, field, role, workspace)  # refused, with what to do instead
    searched = ", ".join(f"output/{name}" for name in ROLE_OUTPUTS[role])
    run = RunDirectory(folder)
    if run.exists():
        status = run.effective_status()
        state = f" (the run is {status.state})" if status else ""
        raise ModelError(f"The run {run.run_id} ({field}) has no {_noun(role)} yet: none of {searched} is in "
                         f"{folder}{state}.",
                         f"Wait for the run to complete, or pick a completed {_runs(role)} run, or a model folder.")
    raise ModelError(f"{folder} ({field}) holds no {_noun(role)}: no config.json (a model or checkpoint folder), no "
                     f"adapter_config.json (a PEFT adapter), and no {searched} (a run).",
                     f"Pick a completed {_runs(role)} run, a model folder"
                     + (", or an adapter folder." if role == "model" else "."))


def _adapter(folder: Path, reference: str, field: str, role: Role, workspace: Path | None) -> ModelLocation:
    base_of = trained_on(folder)
    if role == "reward":
        raise ModelError(f"{folder} ({field}) holds a LoRA adapter, not a whole reward model.",
                         f"Point {field} at a reward run (it writes the whole model, LoRA merged in, to "
                         f"output/reward_model) or at a folder saved from AutoModelForSequenceClassification.")
    if role == "base":
        which = f" ({base_of})" if base_of else ""
        raise ModelError(f"{folder} ({field}) holds a PEFT adapter, not a whole model.",
                         f"Start from the model the adapter was trained on{which}, or from a fine-tuning run saved "
                         f"with output.merge: true (its output/merged is the adapter merged into its base).")
    base = None
    if base_of:
        # An adapter trained on a model of a workspace that has moved since names its old place.
        local = Path(resolve_path(base_of, workspace) if workspace is not None else base_of).expanduser()
        base = str(local) if local.is_dir() else base_of if is_hub_id(base_of) else None
    return ModelLocation("adapter", str(folder), model_label(reference, str(folder)), field, base, base_of)


def _noun(role: Role) -> str:
    return "reward model" if role == "reward" else "model"


def _runs(role: Role) -> str:
    return {"model": "pretraining, fine-tuning or RLHF", "base": "pretraining or fine-tuning", "reward": "reward"}[role]

