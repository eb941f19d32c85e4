"""A clean run's results as plain data, for the Data page's views (no Qt here).

`parse_dry_run` reads the JSON of `studio-engine preview SPEC --json` (the dry run on a random
sample); `read_report` and `read_examples` read a finished run's `output/report.json` and
`output/removed/<rule>.jsonl`; the rest names steps and rules and formats lengths for display.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.specs.clean import CleanSpec

FATES = ("removed", "modified", "kept")
DEDUP_STEPS = ("exact_dedup", "near_dedup")


def step_title(step: str | None) -> str:
    """The spec's own title of a step ("near_dedup" -> "Near duplicates")."""
    if not step:
        return ""
    info = CleanSpec.model_fields.get(step)
    return (info.title if info and info.title else step.replace("_", " ").capitalize())


def short_rule(rule: str) -> str:
    """A rule without its step prefix: "quality.gopher.min_words" -> "gopher.min_words"."""
    head, _, rest = rule.partition(".")
    return rest if rest and head in CleanSpec.model_fields else rule


@dataclass
class StepEffect:
    step: str
    removed: int = 0
    removed_chars: int = 0
    modified: int = 0
    rules: dict[str, int] = field(default_factory=dict)  # rule -> documents removed
    changes: dict[str, int] = field(default_factory=dict)  # e.g. pii.email -> redactions

    def summary(self) -> str:
        """"removes 12 · modifies 3", or "no change"."""
        parts = []
        if self.removed:
            parts.append(f"removes {self.removed:,}")
        if self.modified:
            parts.append(f"modifies {self.modified:,}")
        return " · ".join(parts) or "no change"


@dataclass
class SampleDocument:
    id: str
    source: str
    text: str
    final_text: str | None
    fate: str
    step: str | None = None
    rule: str | None = None
    reason: str | None = None
    modified: list[str] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    similarity: float | None = None

    def why(self) -> str:
        """One line: why it was removed, or what changed."""
        if self.fate == "removed":
            return self.reason or f"removed by {step_title(self.step)}"
        if self.fate == "modified":
            changes = ", ".join(f"{short_rule(k)} ×{n}" for k, n in self.changes.items())
            steps = ", ".join(step_title(s) for s in self.modified)
            return f"changed by {steps or 'a step'}" + (f": {changes}" if changes else "")
        return "kept as it is"


@dataclass
class DryRun:
    sample: int
    read: int
    seconds: float
    steps: list[StepEffect]
    documents: list[SampleDocument]
    problems: list[str]
    problem_count: int

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FATES, 0)
        for doc in self.documents:
            counts[doc.fate] = counts.get(doc.fate, 0) + 1
        return counts

    def drawn(self) -> str:
        """How the sample was drawn: "all 63 documents of the input" or "1,000 documents drawn at random
        from the first 7,202"."""
        if self.read <= len(self.documents):
            return f"all {len(self.documents):,} documents of the input"
        return f"{len(self.documents):,} documents drawn at random from the first {self.read:,}"

    def effect(self, step: str) -> StepEffect | None:
        return next((s for s in self.steps if s.step == step), None)

    def by_id(self) -> dict[str, SampleDocument]:
        return {doc.id: doc for doc in self.documents}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def parse_dry_run(data: dict) -> DryRun:
    """The engine's dry-run JSON as a DryRun; a rule's count may be a number or {"removed": n, ...}."""
    steps = []
    for row in data.get("steps") or []:
        rules = {rule: _int(info.get("removed") if isinstance(info, dict) else info)
                 for rule, info in (row.get("rules") or {}).items()}
        steps.append(StepEffect(str(row.get("step", "")), _int(row.get("removed")), _int(row.get("removed_chars")),
                                _int(row.get("modified")), rules,
                                {k: _int(v) for k, v in (row.get("changes") or {}).items()}))
    documents = []
    for d in data.get("documents") or []:
        modified = d.get("modified")
        documents.append(SampleDocument(
            id=str(d.get("id", "")), source=str(d.get("source") or ""), text=d.get("text") or "",
            final_text=d.get("final_text"), fate=d.get("fate") or "kept", step=d.get("step"), rule=d.get("rule"),
            reason=d.get("reason"), modified=list(modified) if isinstance(modified, list) else [],
            changes={k: _int(v) for k, v in (d.get("changes") or {}).items()},
            duplicate_of=d.get("duplicate_of"), similarity=d.get("similarity")))
    problems = [str(p) for p in data.get("problems") or []]
    return DryRun(_int(data.get("sample")) or len(documents), _int(data.get("read")) or len(documents),
                  float(data.get("seconds") or 0.0), steps, documents, problems,
                  _int(data.get("problem_count")) or len(problems))


def read_report(path: Path | str) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_examples(path: Path, limit: int = 200) -> list[dict]:
    """The removed documents a rule kept as examples (removed/<rule>.jsonl); broken lines skipped."""
    examples = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    examples.append(record)
                if len(examples) >= limit:
                    break
    except OSError:
        return []
    return examples


def size_label(chars: float) -> str:
    """32 -> "32", 2048 -> "2K", 131072 -> "128K"."""
    for unit, size in (("M", 2**20), ("K", 2**10)):
        if chars >= size:
            return f"{chars / size:g}{unit}"
    return f"{chars:g}"


def median_bin(edges: list[int], counts: list[int]) -> str:
    """The length bin holding the median document, as "1K–2K"."""
    total = sum(counts)
    if not total:
        return "—"
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen * 2 >= total:
            upper = f"{size_label(edges[i + 1])}" if i + 1 < len(edges) else "…"
            return f"{size_label(edges[i])}–{upper}"
    return "—"


def percent_change(before: float, after: float) -> str:
    return f"{(after - before) / before:+.1%}" if before else ""
