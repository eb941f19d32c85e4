"""What an evaluate run scored, as a table: each benchmark task and prompt variant × metric a row, each
run × model a column, each cell a score with its standard error. Read from the run's metric events
that name a `model` (one per variant × model and per task × model; the store keeps them whole), so a
run on another engine shows the same as one here, live or reopened. Qt-free: the run monitor's
Scores tab and the Playground's Batch tab render it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# measured in every prompt-variant cell beside its metrics: figures, not scores
FIGURES = ("latency_s", "tokens", "prompt_tokens", "stopped")
# metrics where less is better; every other score reads higher = better
LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter", "loss")


@dataclass(frozen=True)
class Score:
    run: str  # the run's id
    model: str
    kind: str  # "task" (a benchmark task or group) or "variant" (a prompt variant)
    subject: str  # the task's or the variant's name
    metric: str
    value: float | None
    stderr: float | None
    examples: int | None


@dataclass
class ScoreTable:
    """Rows (kind, subject, metric) and columns (run, model) in the order they first appear."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)
    cells: dict[tuple[tuple[str, str, str], tuple[str, str]], Score] = field(default_factory=dict)

    def best(self, row: tuple[str, str, str]) -> set[tuple[str, str]]:
        """The columns holding the row's best score (none when fewer than two columns have one)."""
        scored = {column: self.cells[row, column].value for column in self.columns
                  if (row, column) in self.cells and self.cells[row, column].value is not None}
        if len(scored) < 2:
            return set()
        pick = min if row[2].split(" (")[0] in LOWER_IS_BETTER else max
        top = pick(scored.values())
        return {column for column, value in scored.items() if value == top}


def cell_scores(events: Iterable[dict], run: str) -> list[Score]:
    """The scores of a run's evaluation cells (metric events naming a model), in event order."""
    found = []
    for event in events:
        if event.get("type") != "metric" or event.get("model") is None:
            continue
        kind, subject = ("task", event["task"]) if event.get("task") is not None else ("variant",
                                                                                        event.get("variant", ""))
        values = event.get("values") or {}
        errors = event.get("stderr") if isinstance(event.get("stderr"), dict) else None
        names = list(errors) if errors is not None else [n for n in values if n not in FIGURES]
        examples = event.get("examples")
        for name in names:
            value = values.get(name)
            error = (errors or {}).get(name)
            found.append(Score(run, str(event["model"]), kind, str(subject), name,
                               float(value) if isinstance(value, (int, float)) else None,
                               float(error) if isinstance(error, (int, float)) else None,
                               examples if isinstance(examples, int) else None))
    return found


def score_table(scores: Iterable[Score]) -> ScoreTable:
    table = ScoreTable()
    for score in scores:
        row, column = (score.kind, score.subject, score.metric), (score.run, score.model)
        if row not in table.rows:
            table.rows.append(row)
        if column not in table.columns:
            table.columns.append(column)
        table.cells[row, column] = score
    # Tasks first, then the prompt variants, each in the order they came.
    table.rows.sort(key=lambda r: r[0] != "task")
    return table


def score_text(score: Score | None) -> str:
    """'0.500 ± 0.167'; scores on a 0-100 scale (BLEU) with one decimal; '—' for none."""
    if score is None or score.value is None:
        return "—"
    digits = 1 if abs(score.value) >= 10 else 3
    text = f"{score.value:.{digits}f}"
    return text if score.stderr is None else f"{text} ± {score.stderr:.{digits}f}"
