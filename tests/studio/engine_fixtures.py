"""Another version of the engine, for the studio's tests of version skew: this checkout's engine,
started through a wrapper that changes its specs first — the reward spec has a field more (`margin`,
with a check across fields) and there is a kind more (`distill`, with a wizard layout). It is the real engine process
(`schema`, `validate`, `doctor` answer as they do), only its registry differs."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRAPPER = textwrap.dedent('''
    import dataclasses, sys
    sys.path.insert(0, {root!r})
    from typing import Literal
    from pydantic import ConfigDict, Field, model_validator
    from engine import kinds, specs
    from engine.specs.base import StrictModel, run_name
    from engine.specs.reward import RewardSpec

    class RewardSpecNext(RewardSpec):
        margin: float = Field(0.5, ge=0.0, title="Margin",
                              description="Smallest score gap the loss asks between the better and the worse answer.")

        @model_validator(mode="after")
        def _margin_needs_steps(self):
            if self.margin > 0 and self.train.max_steps < 10:
                raise ValueError(f"train.max_steps ({{self.train.max_steps}}) is too few for a margin: give 10 or more")
            return self

    class DistillSpec(StrictModel):
        model_config = ConfigDict(json_schema_extra={{"wizard": {{
            "title": "Distil a model", "subtitle": "A smaller model learns to answer as the teacher does.",
            "steps": [{{"name": "Teacher", "fields": ["name", "teacher"], "intro": "The model to learn from."}}]}}}})
        kind: Literal["distill"] = Field("distill", title="Kind")
        name: str = run_name("distill")
        teacher: str = Field(..., min_length=1, title="Teacher")

    kinds.KINDS["reward"] = dataclasses.replace(kinds.KINDS["reward"], spec=RewardSpecNext)
    kinds.KINDS["distill"] = dataclasses.replace(kinds.KINDS["reward"], name="distill", title="Distill", spec=DistillSpec)
    specs._adapter.cache_clear()
    from engine.cli import main
    sys.exit(main())
''')


def next_engine_entry(folder: Path) -> list[str]:
    """The `entry` of a LocalEngine that runs the changed engine (a real process)."""
    script = folder / "next_engine.py"
    script.write_text(WRAPPER.format(root=str(ROOT)), encoding="utf-8")
    return [sys.executable, str(script)]
