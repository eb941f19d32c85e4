"""`kind: sweep`: trials of another spec with some of its fields varied (a grid, random draws, or Optuna's
Bayesian search), each trial an ordinary run, judged by a metric its events report."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, StrictModel, run_name, seed_field

MAX_GRID = 10_000


class Parameter(StrictModel):
    """One field's values: a list to pick from (`values`), or a range (`low`, `high`; whole numbers when
    both are, `log` for a log scale, `step` for a grid of a range)."""

    values: list[Any] | None = Field(None, min_length=1, title="Values",
                                     description="The values to try (a grid tries each; a search picks among them).")
    low: float | None = Field(None, title="Low", description="The range's lowest value.")
    high: float | None = Field(None, title="High", description="The range's highest value.")
    log: bool = Field(False, title="Log scale", description="Draw the range on a log scale (learning rates).")
    step: float | None = Field(None, gt=0, title="Step",
                               description="Only values low, low+step, … (needed for a range in a grid).")
    integer: bool = Field(False, title="Whole numbers",
                          description="The range holds whole numbers (set by itself when low and high are).")

    @model_validator(mode="before")
    @classmethod
    def _whole_range(cls, data: Any) -> Any:
        if isinstance(data, dict) and all(type(data.get(k)) is int for k in ("low", "high")) \
                and type(data.get("step", 1)) is int:
            data = {**data, "integer": True}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Parameter:
        ranged = self.low is not None or self.high is not None
        if self.values is not None and ranged:
            raise ValueError("give either `values` or `low` and `high`, not both")
        if self.values is None and (self.low is None or self.high is None):
            raise ValueError("give `values: [...]`, or both `low` and `high`")
        if ranged and self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if ranged and self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low above 0 (it is {self.low})")
        return self

    def grid(self) -> list[Any]:
        """The values a grid tries."""
        if self.values is not None:
            return list(self.values)
        if self.step is None:
            raise ValueError("a range in a grid needs `step` (or give `values: [...]`)")
        count = int((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(round(v)) for v in values] if self.integer else values


class Objective(StrictModel):
    metric: str = Field("loss", min_length=1, title="Metric",
                        description="The metric of the trials' events that judges them (e.g. loss, exact_match).")
    split: Literal["eval", "train"] = Field("eval", title="Split", description="Whose metric: eval or train events.")
    goal: Literal["minimize", "maximize"] = Field("minimize", title="Goal",
                                                  description="Lower is better (loss) or higher is better (accuracy).")


class Pruning(StrictModel):
    enabled: bool = Field(False, title="Stop bad trials early",
                          description="Cancel a trial whose metric is worse than the median of earlier trials at the "
                                      "same step (Optuna's median pruner).")
    startup_trials: int = Field(2, ge=0, le=1000, title="Trials before pruning", json_schema_extra=ADVANCED,
                                description="Trials that always run to the end, to have a median to compare with.")
    warmup_steps: int = Field(0, ge=0, title="Steps before pruning", json_schema_extra=ADVANCED,
                              description="A trial is not pruned on reports before this step.")


class SweepSpec(StrictModel):
    """Runs trials of a base spec with some fields varied and writes which did best, with its spec."""

    kind: Literal["sweep"] = "sweep"
    name: str = run_name("sweep")
    base: dict[str, Any] | str = Field(
        ..., title="Base spec",
        description="The spec every trial starts from: a mapping (a whole spec, with its kind) or the path of a "
                    "spec file. A trial is this spec with the trial's values set.")
    method: Literal["grid", "random", "bayes"] = Field(
        "grid", title="Method",
        description="grid: every combination of the values, in order; random: random draws; bayes: Optuna's TPE "
                    "search, which draws near the best trials so far.")
    parameters: dict[str, Parameter] = Field(
        ..., min_length=1, title="Parameters",
        description="The fields to vary, by dotted path in the base spec (train.learning_rate), each with its values "
                    "or range.")
    trials: int | None = Field(None, ge=1, le=10_000, title="Trials",
                               description="How many trials (random and bayes: needed; grid: at most this many of "
                                           "the combinations, default all).")
    objective: Objective = Field(default_factory=Objective, title="Objective")
    pruning: Pruning = Field(default_factory=Pruning, title="Early stopping")
    parallel: int = Field(1, ge=1, le=256, title="Trials at once",
                          description="Trials in the queue at once; the engine's queue starts them as its GPUs free.")
    seed: int = seed_field("Seeds the random and Bayesian draws.")

    @model_validator(mode="after")
    def _searchable(self) -> SweepSpec:
        if self.method != "grid" and self.trials is None:
            raise ValueError(f"trials: a {self.method} search needs the number of trials (e.g. trials: 8)")
        if self.method == "grid":
            for path, parameter in self.parameters.items():
                try:
                    parameter.grid()
                except ValueError as e:
                    raise ValueError(f"parameters.{path}: {e}") from None
            if len(self.grid()) > MAX_GRID:
                raise ValueError(f"parameters: the grid has {len(self.grid()):,} combinations (at most {MAX_GRID:,}); "
                                 "give fewer values, or use method: random with trials")
        if isinstance(self.base, dict):
            try:
                trial_spec_data(self.base, self.parameters)
            except ValueError as e:
                raise ValueError(f"base: {e}") from None
        return self

    def nested_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """The specs inside this one, each checked by `parse_spec` as a spec of its own (a module of the
        spec union cannot call it): the inline base with the first trial's values."""
        return [("base", trial_spec_data(self.base, self.parameters))] if isinstance(self.base, dict) else []

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the parameters' grid values, the first parameter varying slowest."""
        names = list(self.parameters)
        combos = itertools.product(*(self.parameters[n].grid() for n in names))
        return [dict(zip(names, combo)) for combo in combos]



def with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with each dotted path of `values` set (parents made as needed)."""
    import copy

    spec = copy.deepcopy(base)
    for dotted, value in values.items():
        node = spec
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"{dotted}: {key} is not a mapping in the base spec")
            node = child
        node[leaf] = value
    return spec


def first_values(parameters: dict[str, Parameter]) -> dict[str, Any]:
    """A value of each parameter: what the base spec is checked with."""
    return {path: p.values[0] if p.values is not None else (int(p.low) if p.integer else p.low)
            for path, p in parameters.items()}


def trial_spec_data(base: dict[str, Any], parameters: dict[str, Parameter]) -> dict[str, Any]:
    """The base with the first values set, as a spec to check; a ValueError when the base cannot be one."""
    if base.get("kind") == "sweep":
        raise ValueError("a sweep's base is the spec of its trials, not another sweep")
    return with_values(base, first_values(parameters))
