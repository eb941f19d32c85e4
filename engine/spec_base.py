"""What every job spec module shares: the strict base model and the marker for Advanced fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

ADVANCED = {"advanced": True}
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
