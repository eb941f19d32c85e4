"""A model to load, as a spec's model entry names it: a model (`path`) and a PEFT adapter put on it
(`adapter`, or `path` itself when it is an adapter, loaded on the model it was trained on).

Light: the standard library and the specs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError
from engine.models.locate import has_tokenizer, locate_model
from engine.specs.generate import ModelSource
from engine.specs.rlhf import PolicyModel


@dataclass
class ModelChoice:
    """One model entry, resolved: what to load and what to call it."""

    label: str
    base: str  # a model folder or a hub id
    adapter: str | None  # a PEFT adapter folder
    trust_remote_code: bool
    entry: str  # where the spec names it, for messages: "models[0]", "model", "policy"
    adapter_field: str | None  # where the spec names the adapter: "models[0].adapter", or "models[0].path"
    index: int = 0  # its place in the spec's list of models

    @property
    def description(self) -> str:
        return f"{self.base} + adapter {self.adapter}" if self.adapter else self.base

    @property
    def tokenizer_source(self) -> tuple[str, str]:
        """(folder or hub id, field) of the tokenizer to load: the adapter's when it saved one (a
        fine-tuning run that added chat markers did), the base model's otherwise."""
        if self.adapter and self.adapter_field and has_tokenizer(self.adapter):
            return self.adapter, self.adapter_field
        return self.base, f"{self.entry}.path"


def resolve_choice(source: ModelSource | PolicyModel, workspace: Path | None, entry: str,
                   index: int = 0) -> ModelChoice:
    """The model and adapter `source` (the spec's `entry`) names, labelled: its own label, else the
    run or folder names (`run@checkpoint-200`, `base + adapter`). Raises ModelError naming the field."""
    location = locate_model(source.path, workspace, f"{entry}.path")
    given = source.label if isinstance(source, ModelSource) else None
    if location.kind == "adapter":
        if source.adapter:
            raise ModelError(f"{location.path} ({entry}.path) is itself a PEFT adapter, and {entry}.adapter names "
                             f"another one.",
                             f"Put the base model in {entry}.path and the adapter in {entry}.adapter, or leave "
                             f"{entry}.adapter empty to load {location.path} on the base model it was trained on.")
        return ModelChoice(given or location.label, location.require_base(), location.path, source.trust_remote_code,
                           entry, f"{entry}.path", index)
    if not source.adapter:
        return ModelChoice(given or location.label, location.path, None, source.trust_remote_code, entry, None, index)
    adapter = locate_model(source.adapter, workspace, f"{entry}.adapter")
    if adapter.kind != "adapter":
        raise ModelError(f"{adapter.path} ({entry}.adapter) is not a PEFT adapter: it has no adapter_config.json.",
                         f"Point {entry}.adapter at an adapter folder (a fine-tuning run's output/adapter) or at its "
                         f"run; a whole model belongs in {entry}.path, not in {entry}.adapter.")
    return ModelChoice(given or f"{location.label} + {adapter.label}", location.path, adapter.path,
                       source.trust_remote_code, entry, f"{entry}.adapter", index)
