"""The contract of the per-document cleaning steps and the table that builds them from a spec.

Each step is a picklable callable `text -> StepResult` (the pipeline ships them to worker
processes), built from its section of the spec: repair, normalize, quality, language, pii.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.clean_specs import CleanSpec


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


def build_steps(spec: CleanSpec) -> list[tuple[str, Callable[[str], StepResult]]]:
    """The enabled per-document steps in spec.order, each a picklable callable (text -> StepResult)."""
    # Imported here: the step modules import StepResult from this one.
    from engine.cleaning.language import Language
    from engine.cleaning.normalize import Normalize
    from engine.cleaning.pii import Pii
    from engine.cleaning.quality import Quality
    from engine.cleaning.repair import Repair

    classes = {"repair": Repair, "normalize": Normalize, "quality": Quality, "language": Language, "pii": Pii}
    return [(name, classes[name](getattr(spec, name))) for name in spec.document_steps()]
