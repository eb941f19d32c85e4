"""ScoresView: an evaluate run's scores as a table (studio/models/evaluation_scores.py) — each benchmark
task and prompt variant × metric a row, each model (of each run compared) a column, every score with
its standard error, the best of a row in bold."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.models.evaluation_scores import Score, cell_scores, score_table, score_text

EMPTY_TEXT = "No scores yet: each task and prompt variant shows here as soon as a model has done it."


class ScoresView(QWidget):
    """Public: `table`, `note`, `scores`, and `show_run(run, events, label)`, `add_events(run, events)`
    (live), `add_run(run, events, label)` (a run compared), `remove_runs(keep)`, `clear()`. `run` is a
    run id (two runs may share a name); `label` is what column headers call it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.scores: list[Score] = []
        self.labels: dict[str, str] = {}
        self.note = QLabel(EMPTY_TEXT)
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        # Every column as wide as its scores: a comparison of many models scrolls rather than squeeze the last.
        header.setStretchLastSection(False)
        self.table.setProperty("scrollsSideways", True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)

    def clear(self) -> None:
        self.scores = []
        self._render()

    def show_run(self, run: str, events: list[dict], label: str | None = None) -> None:
        """The scores of one run (replacing whatever was shown)."""
        self.labels = {run: label or run}
        self.scores = cell_scores(events, run)
        self._render()

    def add_events(self, run: str, events: list[dict]) -> None:
        """Live events of a shown run: a cell scored again (a resumed run) replaces its earlier score."""
        fresh = cell_scores(events, run)
        if not fresh:
            return
        keys = {(s.run, s.model, s.kind, s.subject, s.metric) for s in fresh}
        self.scores = [s for s in self.scores if (s.run, s.model, s.kind, s.subject, s.metric) not in keys] + fresh
        self._render()

    def add_run(self, run: str, events: list[dict], label: str | None = None) -> None:
        """Another run's scores in columns of their own, beside the shown run's."""
        self.labels[run] = label or run
        self.scores = [s for s in self.scores if s.run != run] + cell_scores(events, run)
        self._render()

    def remove_runs(self, keep: str) -> None:
        self.scores = [s for s in self.scores if s.run == keep]
        self._render()

    def _render(self) -> None:
        table = score_table(self.scores)
        several_runs = len({run for run, _ in table.columns}) > 1
        runs = list(dict.fromkeys(run for run, _ in table.columns))
        names = {run: self.labels.get(run, run) for run in runs}
        # Two runs of one name (one spec run twice) are told apart by their ids.
        shown = {run: run if list(names.values()).count(name) > 1 else name for run, name in names.items()}
        headers = ["Task / variant", "Metric"] + [f"{model}\n{shown[run]}" if several_runs else model
                                                  for run, model in table.columns]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(table.rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for r, row in enumerate(table.rows):
            kind, subject, metric = row
            self.table.setItem(r, 0, QTableWidgetItem(subject if kind == "task" else f"{subject} (variant)"))
            self.table.setItem(r, 1, QTableWidgetItem(metric.replace("_", " ")))
            best = table.best(row)
            for c, column in enumerate(table.columns):
                score = table.cells.get((row, column))
                item = QTableWidgetItem(score_text(score))
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if score is not None and score.examples is not None:
                    item.setToolTip(f"{score.examples:,} examples")
                if column in best:
                    item.setFont(bold)
                self.table.setItem(r, c + 2, item)
        tasks = len({row[1] for row in table.rows if row[0] == "task"})
        variants = len({row[1] for row in table.rows if row[0] == "variant"})
        if not table.rows:
            self.note.setText(EMPTY_TEXT)
            return
        parts = [f"{n} {what}{'s' if n != 1 else ''}" for n, what in ((tasks, "benchmark task"),
                                                                      (variants, "prompt variant")) if n]
        self.note.setText(f"{' and '.join(parts)} × {len(table.columns)} model column"
                          f"{'s' if len(table.columns) != 1 else ''}. ± is the standard error; bold is the best "
                          "of a row.")
