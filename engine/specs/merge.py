"""The spec of `kind: merge`: one model made of several — an adapter folded into its base, the last
checkpoints of a run averaged, or models of one architecture merged linearly, by SLERP or by TIES
(docs/export.md). The result is a transformers model folder, output/merged, that export, generate,
evaluate and the playground take like any other.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, StrictModel, run_name
from engine.specs.export import SourceModel


class MergedModel(SourceModel):
    """One model of a merge, with its share."""

    weight: float = Field(1.0, ge=0.0, le=100.0, title="Weight",
                          description="linear and ties: this model's share (linear normalises the weights to sum 1).")
    density: float | None = Field(None, gt=0.0, le=1.0, title="Density", json_schema_extra=ADVANCED,
                                  description="ties: the share of this model's changes from the base kept (the "
                                              "largest ones). Empty = the spec's `density`.")


class CheckpointAverage(StrictModel):
    run: str = Field(..., min_length=1, title="Run",
                     description="A training run (id of this workspace, or its folder) whose checkpoints are averaged.")
    last: int = Field(3, ge=2, le=1000, title="Checkpoints",
                      description="Average its last this many checkpoints (all it kept, if fewer).")


class MergeSpec(StrictModel):
    kind: Literal["merge"] = Field(
        "merge", title="Kind",
        description="Make one model of several: fold an adapter in, average checkpoints, or merge models.")
    name: str = run_name("merge")
    method: Literal["fold", "average", "linear", "slerp", "ties"] = Field(
        "fold", title="Method",
        description="fold: the adapter of `models[0]` folded into its base (PEFT); average: the last checkpoints of "
                    "`checkpoints.run`, weight by weight (adapters: their updates); linear: the weighted mean of "
                    "`models`; slerp: between the two `models` along the sphere, at `t`; ties: `models`' changes "
                    "from `base_model`, trimmed to `density`, signs agreed, added to it (mergekit for the last three "
                    "and for averaging whole checkpoints).")
    models: list[MergedModel] = Field([], title="Models",
                                      description="fold: one model with its adapter; linear: two or more; slerp: "
                                                  "two; ties: the fine-tuned models of `base_model`.")
    base_model: SourceModel | None = Field(None, title="Base model",
                                           description="ties: the model the others were fine-tuned from.")
    checkpoints: CheckpointAverage | None = Field(None, title="Checkpoints", description="average: which ones.")
    t: float = Field(0.5, ge=0.0, le=1.0, title="SLERP position",
                     description="slerp: 0 = the first model, 1 = the second.")
    density: float = Field(0.5, gt=0.0, le=1.0, title="Density",
                           description="ties: the share of each model's changes kept, the largest ones.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", title="Precision", json_schema_extra=ADVANCED,
        description="The merged weights' type; auto = that of the first model.")

    @model_validator(mode="after")
    def _consistent(self) -> MergeSpec:
        count = len(self.models)
        needs = {"fold": (count == 1, "one model (with its adapter)"),
                 "linear": (count >= 2, "two or more models"),
                 "slerp": (count == 2, "exactly two models"),
                 "ties": (count >= 1, "one or more fine-tuned models besides base_model"),
                 "average": (count == 0, "no models (the checkpoints of checkpoints.run are averaged)")}
        ok, wanted = needs[self.method]
        if not ok:
            raise ValueError(f"models: method {self.method} takes {wanted}; the spec lists {count}")
        if self.method == "average" and self.checkpoints is None:
            raise ValueError("checkpoints: method average needs checkpoints.run, the run whose checkpoints are averaged")
        if self.method == "ties" and self.base_model is None:
            raise ValueError("base_model: method ties needs the model the others were fine-tuned from")
        return self
