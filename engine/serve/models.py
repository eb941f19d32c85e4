"""The models `serve` holds: loaded on request (a base model, a checkpoint, a base model with a PEFT
adapter, a run), kept while they fit a memory budget, the least recently used idle one unloaded
first when a new one needs room. A model with generations queued or running on it is busy and never
unloaded. Loading goes through engine/generate/models.py, as the generate job loads.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.devices import Placement
from engine.errors import ModelError, ResourceError
from engine.generate.models import load, prompt_template, stop_ids
from engine.models import ModelChoice, resolve_choice
from engine.specs.generate import ModelSource

GIB = 2**30
Log = Callable[[str, str], None]


@dataclass
class LoadedModel:
    model_id: str
    choice: ModelChoice
    model: Any
    tokenizer: Any
    memory_bytes: int
    load_s: float
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0  # generations queued or running on it
    _layouts: dict[str, tuple[str | None, list[int]]] = field(default_factory=dict)

    def layout(self, chat_template: str, log: Log) -> tuple[str | None, list[int]]:
        """(the Jinja template prompts get, or None for the text as is; the stop token ids)."""
        if chat_template not in self._layouts:
            template = prompt_template(self.tokenizer, chat_template, self.choice.label, log)
            self._layouts[chat_template] = template, stop_ids(self.model, self.tokenizer, template)
        return self._layouts[chat_template]

    @property
    def has_chat_template(self) -> bool:
        own = getattr(self.tokenizer, "chat_template", None)
        return bool(own.get("default") if isinstance(own, dict) else own)

    def describe(self) -> dict:
        return {"model_id": self.model_id, "label": self.choice.label, "base": self.choice.base,
                "adapter": self.choice.adapter, "memory_bytes": self.memory_bytes,
                "memory_gib": round(self.memory_bytes / GIB, 4), "chat_template": self.has_chat_template,
                "busy": self.busy, "load_s": round(self.load_s, 3)}


def memory_bytes(model) -> int:
    """What the model's weights and buffers take on its device (the KV cache of a generation comes on top)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def estimated_bytes(choice: ModelChoice) -> int:
    """What loading `choice` will take, from its weight files (0 for a hub id not on disk): room is
    made before loading, so that two big models are never in memory at once for a moment."""
    total = 0
    for folder in (choice.base, choice.adapter):
        if folder and Path(folder).is_dir():
            total += sum(p.stat().st_size for p in Path(folder).iterdir()
                         if p.suffix in (".safetensors", ".bin") and p.is_file())
    return total


class ModelPool:
    """Loaded models by id, least recently used first. Thread-safe; loads one at a time."""

    def __init__(self, placement: Placement, budget_bytes: int, workspace: Path | None):
        self.placement = placement
        self.budget_bytes = budget_bytes
        self.workspace = workspace
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()  # the dict and the busy counts
        self._loading = threading.Lock()  # one load at a time: the memory sums stay true

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(m.memory_bytes for m in self._models.values())

    def describe(self) -> list[dict]:
        with self._lock:
            return [m.describe() for m in sorted(self._models.values(), key=lambda m: -m.last_used)]

    def load(self, source: ModelSource, log: Log, evicted: Callable[[LoadedModel], None],
             pin: bool = False) -> tuple[LoadedModel, bool]:
        """(the model, whether it was loaded already); `pin` marks it busy before anyone can evict it.
        Raises ModelError (a bad path, a model that does not load) or ResourceError (over the budget)."""
        choice = resolve_choice(source, self.workspace, "model")
        with self._loading:
            with self._lock:
                existing = next((m for m in self._models.values()
                                 if (m.choice.base, m.choice.adapter) == (choice.base, choice.adapter)), None)
                if existing is not None:
                    self._touch(existing, pin)
                    return existing, True
                self._make_room(estimated_bytes(choice), choice.label, evicted)
            started = time.perf_counter()
            torch.manual_seed(0)  # what loading initialises at random (new embedding rows) is the same each time
            model, tokenizer = load(choice, self.placement.device, self.placement.dtype, log)
            size = memory_bytes(model)
            with self._lock:
                try:
                    self._make_room(size, choice.label, evicted)
                except ResourceError:
                    del model
                    self._free()
                    raise
                loaded = LoadedModel(self._unique_id(source.label or choice.label), choice, model, tokenizer, size,
                                     time.perf_counter() - started)
                self._models[loaded.model_id] = loaded
                self._touch(loaded, pin)
                return loaded, False

    def acquire(self, model_id: str) -> LoadedModel:
        """The model, marked busy (release it when the generation ends)."""
        with self._lock:
            if model_id not in self._models:
                loaded = ", ".join(self._models) or "none"
                raise ModelError(f"No loaded model has model_id {model_id!r} (loaded: {loaded}).",
                                 "Load it first (op load), or give the model to load in the generate request's "
                                 "model field; a model unloaded to make room must be loaded again.")
            loaded = self._models[model_id]
            self._touch(loaded, pin=True)
            return loaded

    def release(self, loaded: LoadedModel) -> None:
        with self._lock:
            loaded.busy -= 1
            loaded.last_used = time.monotonic()

    def unload(self, model_id: str) -> None:
        with self._lock:
            loaded = self._models.get(model_id)
            if loaded is None:
                raise ModelError(f"No loaded model has model_id {model_id!r} (model_id).",
                                 "Op models lists the loaded ones.")
            if loaded.busy:
                raise ResourceError(f"The model {model_id!r} has {loaded.busy} generation(s) queued or running.",
                                    "Cancel them (op cancel) or wait for their done, then unload it.")
            del self._models[model_id]
            loaded.model = loaded.tokenizer = None
        self._free()

    def _touch(self, loaded: LoadedModel, pin: bool) -> None:
        loaded.last_used = time.monotonic()
        loaded.busy += 1 if pin else 0

    def _make_room(self, needed: int, label: str, evicted: Callable[[LoadedModel], None]) -> None:
        """Unload idle models, least recently used first, until `needed` more bytes fit the budget."""
        if needed > self.budget_bytes:
            raise ResourceError(f"{label} needs {needed / GIB:.2f} GiB, more than the whole memory budget "
                                f"({self.budget_bytes / GIB:.2f} GiB).",
                                "Start serve with a larger --memory-budget-gib, or load a smaller model.")
        idle = sorted((m for m in self._models.values() if not m.busy), key=lambda m: m.last_used)
        freed = False
        while self.used_bytes + needed > self.budget_bytes and idle:
            victim = idle.pop(0)
            del self._models[victim.model_id]
            victim.model = victim.tokenizer = None  # idle, so nothing else holds them: the memory goes now
            evicted(victim)
            freed = True
        if freed:
            self._free()
        if self.used_bytes + needed > self.budget_bytes:
            busy = ", ".join(m.model_id for m in self._models.values() if m.busy)
            raise ResourceError(f"{label} needs {needed / GIB:.2f} GiB, and the models busy generating ({busy}) "
                                f"leave {(self.budget_bytes - self.used_bytes) / GIB:.2f} GiB of the "
                                f"{self.budget_bytes / GIB:.2f} GiB budget.",
                                "Wait for their generations to end (or cancel them), or start serve with a larger "
                                "--memory-budget-gib.")

    def _unique_id(self, label: str) -> str:
        unique, n = label, 2
        while unique in self._models:
            unique, n = f"{label} #{n}", n + 1
        return unique

    def _free(self) -> None:
        gc.collect()
        if self.placement.device == "cuda":
            torch.cuda.empty_cache()
