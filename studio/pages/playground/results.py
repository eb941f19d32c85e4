"""An evaluate run's results on the Batch tab: its metrics per variant × model (output/metrics.json),
the examples of the chosen row (output/results.jsonl), and one example's prompt and whole answer."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QPlainTextEdit, QSplitter, QTableWidget, QTableWidgetItem

METRIC_LABELS = {"exact_match": "exact match", "contains": "contains", "bleu": "BLEU", "rouge_l": "ROUGE-L"}
SHORT_LABELS = {"exact_match": "exact", "contains": "contains", "bleu": "BLEU", "rouge_l": "ROUGE-L"}
SHARES = ("exact_match", "contains", "regex_match", "rouge_l", "stopped")


def figure(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in SHARES:
        return f"{value:.0%}" if name != "rouge_l" else f"{value:.3f}"
    if name == "latency_s":
        return f"{value:.2f} s"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _table(columns: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def write_csv(record: dict, path: str | Path) -> None:
    """metrics.json's table as CSV, its columns in order."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=record.get("columns") or [], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(record.get("table") or [])


class EvaluationResults(QSplitter):
    """Public: `metrics_table`, `results_table`, `detail`, and `show_results(record, results)`."""

    def __init__(self, parent=None):
        super().__init__(Qt.Vertical, parent)
        self.record: dict = {}
        self.results: list[dict] = []
        self.metrics_table = _table(["variant", "model"])
        self.metrics_table.itemSelectionChanged.connect(self._cell_chosen)
        self.results_table = _table(["id", "expected", "final answer", "score", "latency"])
        header = self.results_table.horizontalHeader()
        header.setStretchLastSection(False)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.Stretch)
        self.results_table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.results_table.itemSelectionChanged.connect(self._result_chosen)
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setPlaceholderText("Pick an example to read its prompt and the whole answer.")
        lower = QSplitter(Qt.Horizontal)
        lower.addWidget(self.results_table)
        lower.addWidget(self.detail)
        lower.setSizes([520, 300])
        self.addWidget(self.metrics_table)
        self.addWidget(lower)
        self.setSizes([150, 260])

    def show_results(self, record: dict, results: list[dict]) -> None:
        self.record, self.results = record, results
        columns = [c for c in record.get("columns", []) if c != "prompt_tokens"]
        self.metrics_table.clearSelection()
        self.metrics_table.setColumnCount(len(columns))
        self.metrics_table.setHorizontalHeaderLabels([METRIC_LABELS.get(c, c.replace("_", " ")) for c in columns])
        rows = record.get("table", [])
        self.metrics_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, name in enumerate(columns):
                item = QTableWidgetItem(figure(name, row.get(name)) if c >= 2 else str(row.get(name, "")))
                item.setData(Qt.UserRole, (row.get("variant"), row.get("model")))
                self.metrics_table.setItem(r, c, item)
        if rows:
            self.metrics_table.selectRow(0)

    def _cell_chosen(self) -> None:
        rows = self.metrics_table.selectionModel().selectedRows()
        if not rows:
            return
        variant, model = self.metrics_table.item(rows[0].row(), 0).data(Qt.UserRole)
        metric = (self.record.get("metrics") or ["exact_match"])[0]
        self.results_table.setHorizontalHeaderLabels(["id", "expected", "final answer",
                                                      SHORT_LABELS.get(metric, metric), "latency"])
        chosen = [r for r in self.results if r.get("variant") == variant and r.get("model") == model]
        self.results_table.clearSelection()
        self.results_table.setRowCount(len(chosen))
        for i, result in enumerate(chosen):
            score = (result.get("scores") or {}).get(metric)
            values = (result.get("id"), result.get("expected"), result.get("final_answer"),
                      ("✓" if score else "✗") if isinstance(score, bool) else figure(metric, score),
                      figure("latency_s", result.get("latency_s")))
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setData(Qt.UserRole, result)
                self.results_table.setItem(i, c, item)
        self.detail.clear()
        if chosen:
            self.results_table.selectRow(0)

    def _result_chosen(self) -> None:
        rows = self.results_table.selectionModel().selectedRows()
        if not rows:
            return
        result = self.results_table.item(rows[0].row(), 0).data(Qt.UserRole)
        scores = ", ".join(f"{METRIC_LABELS.get(k, k)} {figure(k, v)}" for k, v in (result.get("scores") or {}).items())
        self.detail.setPlainText(
            f"{result.get('model')} / {result.get('variant')} · {result.get('where')}\n{scores}\n\n"
            f"— What the model read —\n{result.get('model_input') or result.get('prompt')}\n\n"
            f"— Its answer ({result.get('tokens')} tokens, {result.get('finish')}) —\n{result.get('answer')}\n\n"
            f"— Expected —\n{result.get('expected')}")
