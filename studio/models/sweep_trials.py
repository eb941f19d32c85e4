"""A sweep run's trials, read from its `output/sweep.json` (engine/jobs/sweep.py writes it as trials end):
the rows of the sweep view's table and the lines of its parallel-coordinates plot. Qt-free."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUMMARY = Path("output") / "sweep.json"
BEST_SPEC = Path("output") / "best_spec.yaml"


@dataclass
class SweepTrials:
    parameters: dict[str, str]  # dotted path -> scale: linear | log | categorical
    metric: str
    goal: str  # minimize | maximize
    trials: list[dict[str, Any]] = field(default_factory=list)  # as sweep.json holds them
    best: int | None = None  # the best trial's number

    @property
    def axes(self) -> list[str]:
        """The plot's axes, left to right: each parameter, then the objective."""
        return [*self.parameters, self.metric]

    def value(self, trial: dict[str, Any], axis: str) -> Any:
        return trial.get("value") if axis == self.metric else trial.get("values", {}).get(axis)

    def positions(self) -> list[tuple[dict[str, Any], list[float]]]:
        """Each trial with its height on every axis (0 = lowest value of the axis, 1 = highest; a log axis
        on a log scale; a categorical one by its values' order of appearance); NaN where it has none."""
        scales: dict[str, Any] = {}
        for axis in self.axes:
            scale = self.parameters.get(axis, "linear")
            seen = [self.value(t, axis) for t in self.trials if self.value(t, axis) is not None]
            if scale == "categorical" or any(not isinstance(v, (int, float)) for v in seen):
                order = list(dict.fromkeys(json.dumps(v) for v in seen))
                scales[axis] = ("categorical", order)
                continue
            numbers = [math.log10(v) if scale == "log" and v > 0 else v for v in seen if math.isfinite(v)]
            scales[axis] = (scale, (min(numbers), max(numbers)) if numbers else (0.0, 1.0))
        rows = []
        for trial in self.trials:
            heights = []
            for axis in self.axes:
                kind, spread = scales[axis]
                value = self.value(trial, axis)
                if value is None:
                    heights.append(math.nan)
                elif kind == "categorical":
                    index = spread.index(json.dumps(value))
                    heights.append(index / (len(spread) - 1) if len(spread) > 1 else 0.5)
                elif not math.isfinite(value) or (kind == "log" and value <= 0):
                    heights.append(math.nan)
                else:
                    low, high = spread
                    x = math.log10(value) if kind == "log" else value
                    heights.append((x - low) / (high - low) if high > low else 0.5)
            rows.append((trial, heights))
        return rows


def read_sweep(run_dir: Path | str) -> SweepTrials | None:
    """The trials of the sweep run in `run_dir`; None until its summary is written (or when unreadable)."""
    try:
        data = json.loads((Path(run_dir) / SUMMARY).read_text(encoding="utf-8"))
        parameters = data["parameters"]
        if isinstance(parameters, list):
            parameters = {name: "linear" for name in parameters}
        return SweepTrials(parameters=dict(parameters), metric=data["objective"]["metric"],
                           goal=data["objective"]["goal"], trials=list(data["trials"]), best=data.get("best"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
