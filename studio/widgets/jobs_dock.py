"""The jobs dock: every active run with its progress bar and ETA, on any engine.

Fed by the run tracker's signals (`run_added`, `run_events`, `run_state_changed`) and seeded from
the store's active runs; a finished run leaves the list. Clicking a row asks to open that run.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
    QWidget,
)

from engine.rundir import ACTIVE_STATES
from studio.widgets import formatting


class JobRow(QFrame):
    """One active run: name, stage, progress bar, ETA and an Open button."""

    open_requested = Signal(str)

    def __init__(self, run_id: str, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id = run_id
        self.setObjectName("jobRow")
        self.name_label = QLabel(name or run_id)
        self.name_label.setStyleSheet("font-weight: 600;")
        self.name_label.setToolTip(run_id)
        self.name_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.stage_label = QLabel("starting")
        self.stage_label.setObjectName("help")
        self.stage_label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first progress event
        self.bar.setTextVisible(False)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self.open_requested.emit(self.run_id))
        top = QHBoxLayout()
        top.addWidget(self.name_label, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.stage_label)

    def set_progress(self, stage: str | None, done: float | None, total: float | None, unit: str | None,
                     eta_s: float | None) -> None:
        eta = f" · ETA {formatting.duration(eta_s)}" if eta_s is not None else ""
        if total and unit in ("step", "steps"):
            self.bar.setRange(0, int(total))
            self.bar.setValue(int(min(done or 0, total)))
            text = f"step {int(done or 0):,} / {int(total):,}"
        elif total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(max((done or 0) / total, 0.0), 1.0)))
            text = f"{stage or 'running'} {formatting.count(done or 0)} / {formatting.count(total)} {unit or ''}".rstrip()
        else:
            text = stage or "running"
        self.stage_label.setText(text + eta)
        self.stage_label.setToolTip(f"stage: {stage}" if stage else "")


class JobsDock(QDockWidget):
    """Dock listing active runs. `rows` maps run id to its JobRow (public for tests)."""

    open_run = Signal(str)

    def __init__(self, store: Any, tracker: Any = None, parent: QWidget | None = None):
        super().__init__("Active jobs", parent)
        self.setObjectName("jobsDock")
        self.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.store = store
        self.rows: dict[str, JobRow] = {}
        self.empty_label = QLabel("No job is running.\nRuns you launch appear here with their progress.")
        self.empty_label.setObjectName("help")
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)
        body = QWidget()
        body.setObjectName("scrollBody")
        self.list_layout = QVBoxLayout(body)
        self.list_layout.setContentsMargins(8, 8, 8, 8)
        self.list_layout.setSpacing(8)
        self.list_layout.addWidget(self.empty_label)
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.setMinimumWidth(220)
        if tracker is not None:
            tracker.run_added.connect(self.on_run_added)
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self.on_state_changed)
        self.reload()

    def reload(self) -> None:
        """Show the store's active runs (at start-up, and after a re-attach)."""
        for record in self.store.runs(state="active"):
            row = self._row(record.run_id, record.name)
            row.set_progress(record.progress_stage, record.progress_done, record.progress_total,
                             record.progress_unit, record.eta_s)

    def _row(self, run_id: str, name: str = "") -> JobRow:
        row = self.rows.get(run_id)
        if row is None:
            row = JobRow(run_id, name)
            row.open_requested.connect(self.open_run)
            self.rows[run_id] = row
            self.list_layout.insertWidget(self.list_layout.count() - 1, row)
            self.empty_label.hide()
        return row

    def on_run_added(self, run_id: str) -> None:
        record = self.store.get_run(run_id)
        if record is None or record.active:
            self._row(run_id, record.name if record else run_id)

    def on_events(self, run_id: str, events: list) -> None:
        progress = [e for e in events if e.get("type") == "progress"]
        finished = [e for e in events if e.get("type") == "finished"]
        if finished:
            self.remove(run_id)
            return
        if progress:
            e = progress[-1]
            self._row(run_id).set_progress(e.get("stage"), e.get("done"), e.get("total"), e.get("unit"),
                                           e.get("eta_s"))

    def on_state_changed(self, run_id: str, state: str) -> None:
        if state in ACTIVE_STATES:
            record = self.store.get_run(run_id)
            self._row(run_id, record.name if record else run_id)
        else:
            self.remove(run_id)

    def remove(self, run_id: str) -> None:
        row = self.rows.pop(run_id, None)
        if row is not None:
            row.setParent(None)
            row.deleteLater()
        self.empty_label.setVisible(not self.rows)
