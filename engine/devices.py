"""What hardware a run can use, and which device and precision a spec resolves to.

Imports torch: used inside the engine process only (runner, doctor), never by the GUI.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from engine.errors import ResourceError
from engine.specs.base import Resources


@dataclass
class Placement:
    device: str  # "cuda" | "mps" | "cpu"
    bf16: bool
    fp16: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype to load weights in: the mixed-precision type, fp32 without one."""
        return torch.bfloat16 if self.bf16 else torch.float16 if self.fp16 else torch.float32


def resolve(resources: Resources) -> Placement:
    """The device and mixed precision for a spec; a clear error when the spec asks for what is absent."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    device = resources.device
    if device == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise ResourceError("The spec asks for `resources.device: cuda`, but this machine has no usable CUDA GPU.",
                            "Set `resources.device: auto` (or cpu), or run on an engine with a GPU; "
                            "`studio-engine doctor` shows what this machine has.")
    if device == "mps" and not mps:
        raise ResourceError("The spec asks for `resources.device: mps`, but Apple MPS is not available here.",
                            "Set `resources.device: auto`.")
    precision = resources.precision
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and device != "cuda":
        raise ResourceError(f"fp16 mixed precision needs a CUDA GPU; this run is on {device}.",
                            "Set `resources.precision: auto` or fp32 (or bf16 on a recent CPU).")
    return Placement(device=device, bf16=precision == "bf16", fp16=precision == "fp16")


def describe_devices() -> list[dict]:
    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append({"type": "cuda", "index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                            "capability": f"{p.major}.{p.minor}", "bf16": torch.cuda.is_bf16_supported()})
    if torch.backends.mps.is_available():
        devices.append({"type": "mps", "name": "Apple MPS"})
    devices.append({"type": "cpu", "name": platform.processor() or platform.machine(), "cores": os.cpu_count()})
    return devices


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def doctor_report(workspace: Path) -> dict:
    from engine import __version__
    from engine.protocol import PROTOCOL_VERSION

    usage = shutil.disk_usage(workspace if workspace.exists() else Path.home())
    return {
        "engine_version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": platform.node(),
        "cuda": {"available": torch.cuda.is_available(), "version": torch.version.cuda,
                 "devices": torch.cuda.device_count() if torch.cuda.is_available() else 0},
        "devices": describe_devices(),
        "packages": {name: _version(name) for name in (
            "torch", "transformers", "datasets", "tokenizers", "accelerate", "safetensors",
            "peft", "trl", "bitsandbytes", "deepspeed", "gradio", "pydantic")},
        "workspace": str(workspace),
        "disk_free_gib": round(usage.free / 2**30, 1),
    }


def available_memory_bytes(placement: Placement) -> int:
    """Free GPU memory on CUDA, else the RAM the system can still give."""
    if placement.device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return free
    import psutil
    return psutil.virtual_memory().available


PRETRAIN_MEMORY_HINT = ("Make the model smaller (model.hidden_size, model.layers), lower train.batch_size "
                        "(raise train.gradient_accumulation to keep the effective batch), shorten "
                        "model.context_length, or turn on train.gradient_checkpointing.")


def check_fits(needed_bytes: int, placement: Placement, what: str, hint: str = PRETRAIN_MEMORY_HINT) -> None:
    """Fail before allocating when the estimate clearly exceeds the memory that is free."""
    free = available_memory_bytes(placement)
    where = {"cuda": "free GPU memory", "cpu": "available RAM"}.get(placement.device, "available unified memory")
    if needed_bytes > free:
        raise ResourceError(
            f"Out of memory: {what} needs about {needed_bytes / 2**30:.1f} GiB to train, "
            f"but only {free / 2**30:.1f} GiB of {where} is left.", hint)
