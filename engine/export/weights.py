"""The weights of a model folder, one tensor at a time: names and shapes first (from the files'
headers, nothing loaded), then each tensor read when it is asked for, so that exporting a model holds
one tensor in memory, not the model.

safetensors files (one, or shards listed by model.safetensors.index.json) are read with safetensors'
`safe_open`; PyTorch .bin files with `torch.load(mmap=True)`, which maps the file instead of reading it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from engine.errors import ModelError


class FolderWeights:
    """The tensors of a `save_pretrained` folder. Use as a context manager: files stay open inside."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._stack = ExitStack()
        self._where: dict[str, object] = {}  # tensor name -> an open safetensors file or a mapped state dict

    def __enter__(self) -> FolderWeights:
        from safetensors import safe_open

        for file in self._files(".safetensors"):
            handle = self._stack.enter_context(safe_open(str(file), framework="pt"))
            self._where.update(dict.fromkeys(handle.keys(), handle))
        if not self._where:
            for file in self._files(".bin"):
                state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
                self._where.update(dict.fromkeys(state, state))
        if not self._where:
            raise ModelError(f"{self.folder} holds no weights (no .safetensors or pytorch_model.bin file).",
                             "Point the spec at a folder saved with save_pretrained.")
        return self

    def __exit__(self, *exc) -> None:
        self._where.clear()
        self._stack.close()

    def _files(self, suffix: str) -> list[Path]:
        index = next(iter(sorted(self.folder.glob(f"*{suffix}.index.json"))), None)
        if index is not None:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            return [self.folder / name for name in names]
        return sorted(self.folder.glob(f"*{suffix}"))

    def names(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        source = self._where[name]
        if isinstance(source, dict):
            return tuple(source[name].shape)
        return tuple(source.get_slice(name).get_shape())

    def read(self, name: str) -> np.ndarray:
        """The tensor as float32 numpy (bf16 and f16 widened: numpy has no bf16, and quantizing wants f32)."""
        source = self._where[name]
        tensor = source[name] if isinstance(source, dict) else source.get_tensor(name)
        return tensor.to(torch.float32).numpy()

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)
