"""A PEFT adapter folded into its base model: the base loaded with the adapter on top (the one loader of
engine/generate/models.py, which refuses an adapter that does not fit), PEFT's merge_and_unload, and
the result saved as a plain transformers folder with its tokenizer and the base's generation settings."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.models import ModelChoice

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def saved_dtype(folder: str) -> torch.dtype:
    """The dtype a model folder's config says its weights are in (float32 when it says none, or for a hub id)."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return torch.float32
    values = json.loads(config.read_text(encoding="utf-8"))
    return DTYPES.get(values.get("dtype") or values.get("torch_dtype") or "float32", torch.float32)


def fold_adapter(choice: ModelChoice, target: Path, log) -> None:
    """Write `choice` (a base model and its adapter) into `target` with the adapter merged in, in the
    base's own dtype."""
    from transformers import GenerationConfig

    from engine.generate.models import load

    model, tokenizer = load(choice, "cpu", saved_dtype(choice.base), log)
    merged = model.merge_and_unload()
    try:  # the loader replaced the generation settings with bare ones; the folder keeps the base's own
        merged.generation_config = GenerationConfig.from_pretrained(choice.base)
    except OSError:
        pass
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
