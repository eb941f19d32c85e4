"""SweepView: a sweep run's trials side by side — a table (each trial's values, state and objective, the
best in bold) and a parallel-coordinates plot (one line per trial across its parameters to its objective,
coloured from best to worst) — with "Open best spec" one click away."""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)
from PySide6.QtCore import Qt

from studio.models.sweep_trials import BEST_SPEC, SweepTrials, read_sweep

EMPTY_TEXT = "No trials yet: each trial shows here as the sweep queues it, with its objective once it ends."
BEST_COLOR, WORST_COLOR, UNFINISHED_COLOR = (46, 158, 91), (216, 67, 47), (150, 150, 150)


class SweepView(QWidget):
    """Public: `table`, `plot`, `best_button`, `note`, `sweep` (the SweepTrials shown), `lines` (the plot's
    line of each trial shown, by trial number), `show_run(run_dir)` / `refresh()` (read output/sweep.json
    again), `clear()`; `open_spec_requested(path)` is emitted (and the file opened) by Open best spec."""

    open_spec_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.sweep: SweepTrials | None = None
        self.lines: dict[int, pg.PlotDataItem] = {}
        self.note = QLabel(EMPTY_TEXT)
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        self.best_button = QPushButton("Open best spec")
        self.best_button.setToolTip("Open output/best_spec.yaml: the best trial's spec, runnable as it is")
        self.best_button.setEnabled(False)
        self.best_button.clicked.connect(self.open_best_spec)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.plot = pg.PlotWidget()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.getAxis("left").setTicks([[(0, "low"), (1, "high")]])
        top = QHBoxLayout()
        top.addWidget(self.note, 1)
        top.addWidget(self.best_button)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

    def clear(self) -> None:
        self.run_dir, self.sweep = None, None
        self._render()

    def show_run(self, run_dir: str | Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.refresh()

    def refresh(self) -> None:
        """Read the sweep's summary again (the engine rewrites it as trials end)."""
        self.sweep = read_sweep(self.run_dir) if self.run_dir is not None else None
        self._render()

    @property
    def best_spec(self) -> Path | None:
        path = self.run_dir / BEST_SPEC if self.run_dir is not None else None
        return path if path is not None and path.is_file() else None

    def open_best_spec(self) -> None:
        if self.best_spec is None:
            return
        self.open_spec_requested.emit(str(self.best_spec))
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.best_spec)))

    def _render(self) -> None:
        sweep = self.sweep
        self.best_button.setEnabled(self.best_spec is not None)
        self.table.clear()
        self.plot.clear()
        self.lines = {}
        if sweep is None or not sweep.trials:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            self.note.setText(EMPTY_TEXT)
            return
        done = sum(t["state"] not in ("queued", "running") for t in sweep.trials)
        best = next((t for t in sweep.trials if t["number"] == sweep.best), None)
        self.note.setText(f"{len(sweep.trials)} trial(s), {done} ended; {sweep.goal} {sweep.metric}"
                          + (f"; best: trial {best['number']} ({sweep.metric} {best['value']:.4g})" if best else ""))
        headers = ["trial", "state", *sweep.parameters, sweep.metric, "run"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(sweep.trials))
        bold = QFont()
        bold.setBold(True)
        for row, trial in enumerate(sweep.trials):
            value = trial.get("value")
            cells = [str(trial["number"]), trial["state"],
                     *(_shown(trial["values"].get(p)) for p in sweep.parameters),
                     "" if value is None else f"{value:.4g}", trial["run_id"]]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if trial["number"] == sweep.best:
                    item.setFont(bold)
                self.table.setItem(row, column, item)
        self._draw_lines(sweep)

    def _draw_lines(self, sweep: SweepTrials) -> None:
        axes = sweep.axes
        self.plot.getAxis("bottom").setTicks([[(i, axis) for i, axis in enumerate(axes)]])
        for i in range(len(axes)):
            self.plot.addItem(pg.InfiniteLine(pos=i, angle=90, pen=pg.mkPen((120, 120, 120), width=1)))
        values = [t["value"] for t in sweep.trials if isinstance(t.get("value"), (int, float)) and math.isfinite(t["value"])]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        for trial, heights in sweep.positions():
            xs = [i for i, h in enumerate(heights) if not math.isnan(h)]
            ys = [h for h in heights if not math.isnan(h)]
            value = trial.get("value")
            if isinstance(value, (int, float)) and math.isfinite(value) and trial["state"] == "completed":
                share = (value - low) / (high - low) if high > low else 0.0
                goodness = 1 - share if sweep.goal == "minimize" else share
                color = tuple(int(w + (b - w) * goodness) for b, w in zip(BEST_COLOR, WORST_COLOR))
            else:
                color = UNFINISHED_COLOR
            width = 3 if trial["number"] == sweep.best else 1.5
            line = self.plot.plot(xs, ys, pen=pg.mkPen(color, width=width), symbol="o", symbolSize=5,
                                  symbolBrush=color, symbolPen=None, name=f"trial {trial['number']}")
            self.lines[trial["number"]] = line
        self.plot.setXRange(-0.2, len(axes) - 0.8, padding=0)
        self.plot.setYRange(-0.05, 1.05, padding=0)


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
