"""The contract of the per-document cleaning steps: each is a picklable callable `text -> StepResult`
(the pipeline ships them to worker processes), built from its section of the spec (repair, normalize,
quality, language, pii; `engine.cleaning.pipeline.build_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepResult:
    """What one step made of one document.

    `rule` and `reason` are set when the document is removed: `rule` is the spec field that removed
    it (`quality.gopher.min_words`, `normalize.empty`, `language`), `reason` a sentence with the
    measured figure and the threshold. `changes` counts edits under keys that start with the step's
    name (`pii.email`, `repair.mojibake`, `quality.c4.lines_dropped`): the report groups them by it.
    """

    text: str | None
    rule: str | None = None
    reason: str | None = None
    changes: dict[str, int] = field(default_factory=dict)
