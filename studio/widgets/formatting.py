"""Small text formats shared by the widgets (durations, counts, byte sizes)."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """`1h 05m`, `3m 20s`, `12s`; an em dash when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def count(value: float | None) -> str:
    """1234567 -> `1.23M`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def gib(num_bytes: float) -> str:
    value = num_bytes / 2**30
    return f"{value:.2f} GiB" if value < 10 else f"{value:.1f} GiB"


def memory(num_bytes: float) -> str:
    """`340 MiB` below a GiB (a small model's estimate would read 0.00 GiB), else as `gib`."""
    if num_bytes < 2**30:
        return f"{max(num_bytes / 2**20, 0.1):.3g} MiB"
    return gib(num_bytes)
