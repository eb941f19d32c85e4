"""The jobs dock: every active run with its progress bar and ETA, on any engine.

Fed by the run tracker's signals (`run_added`, `run_events`, `run_state_changed`) and seeded from
the store's active runs; a finished run leaves the list. Clicking a row asks to open that run.

Below the active runs, the runs waiting in each engine's queue, the local one's and every SSH engine's
(studio/widgets/queue_section.py: reorder, cancel, pause and resume them); a run the local queue starts
joins the active runs.

It takes room only while something runs or waits: it opens when a run starts and folds away when the last
one ends (View ▸ Active jobs, or the status bar's jobs button, opens and closes it by hand; closed
by hand while runs go on, it stays closed until another run starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout,
    QWidget,
)

from engine.rundir import ACTIVE_STATES
from studio.models.scheduler_state import slurm_line, slurm_tooltip
from studio.models.store import STEP_UNITS, event_step
from studio.widgets import formatting
from studio.widgets.elided_label import ElidedLabel
from studio.widgets.queue_section import QueueSection

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


class JobRow(QFrame):
    """One active run: name, stage, progress bar, ETA and an Open button."""

    open_requested = Signal(str)

    def __init__(self, run_id: str, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id = run_id
        self.setObjectName("jobRow")
        self.name_label = ElidedLabel(name or run_id)  # a long name ends in "…", whole in its tooltip
        self.name_label.setStyleSheet("font-weight: 600;")
        self.name_label.setMinimumWidth(0)
        self.stage_label = QLabel("starting")
        self.stage_label.setObjectName("help")
        self.stage_label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first progress event
        self.bar.setTextVisible(False)
        # A run submitted to Slurm: its job's state, which a pending run's progress cannot tell.
        self.scheduler_label = QLabel()
        self.scheduler_label.setObjectName("help")
        self.scheduler_label.setWordWrap(True)
        self.scheduler_label.hide()
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
        layout.addWidget(self.scheduler_label)

    def set_progress(self, stage: str | None, done: float | None, total: float | None, unit: str | None,
                     eta_s: float | None, step: int | None = None) -> None:
        """Show the latest progress event's figures; `step` (counted as the store and the monitor count it,
        `event_step`) stands for `done` while the run trains."""
        eta = f" · ETA {formatting.duration(eta_s)}" if eta_s is not None else ""
        if total and unit in STEP_UNITS:
            done = done if step is None else step
            self.bar.setRange(0, int(total))
            self.bar.setValue(int(min(done or 0, total)))
            noun = "iteration" if unit.startswith("iteration") else "step"
            text = f"{noun} {int(done or 0):,} / {int(total):,}"
        elif total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(max((done or 0) / total, 0.0), 1.0)))
            text = f"{stage or 'running'} {formatting.count(done or 0)} / {formatting.count(total)} {unit or ''}".rstrip()
        else:
            text = stage or "running"
        self.stage_label.setText(text + eta)
        self.stage_label.setToolTip(f"stage: {stage}" if stage else "")


    def set_scheduler(self, slurm: dict | None) -> None:
        """Show the Slurm job's state (`show --json`'s `slurm`), or nothing for a run not on Slurm."""
        self.scheduler_label.setVisible(slurm is not None)
        if slurm is not None:
            self.scheduler_label.setText(f"Slurm: {slurm_line(slurm)}")
            self.scheduler_label.setToolTip(slurm_tooltip(slurm))


class JobsDock(QDockWidget):
    """Dock listing active runs. `rows` maps run id to its JobRow (public for tests); `count_changed(n)`
    when a run joins or leaves it."""

    open_run = Signal(str)
    count_changed = Signal(int)

    def __init__(self, store: Any, tracker: Tracker | None = None, parent: QWidget | None = None):
        super().__init__("Active jobs", parent)
        self.setObjectName("jobsDock")
        self.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.store = store
        self.tracker = tracker
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
        self.queues: dict[str, QueueSection] = {}
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.setMinimumWidth(200)
        self.count_changed.connect(lambda _count: self._fold())
        self._closed_by_hand = False
        self.visibilityChanged.connect(self._visibility_changed)
        self._folding = False
        self.sync_queues()
        if tracker is not None:
            tracker.run_added.connect(self.on_run_added)
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self.on_state_changed)
            tracker.scheduler.changed.connect(self.on_scheduler_changed)
        self.reload()
        self._fold()

    def reload(self) -> None:
        """Show the store's active runs (at start-up, and after a re-attach)."""
        for record in self.store.runs(state="active"):
            row = self._row(record.run_id, record.name)
            row.set_progress(record.progress_stage, record.progress_done, record.progress_total,
                             record.progress_unit, record.eta_s, record.step)

    def _row(self, run_id: str, name: str = "") -> JobRow:
        row = self.rows.get(run_id)
        if row is None:
            row = JobRow(run_id, name)
            row.open_requested.connect(self.open_run)
            if self.tracker is not None:
                row.set_scheduler(self.tracker.scheduler.state(run_id))
            self.rows[run_id] = row
            self.list_layout.insertWidget(len(self.rows), row)  # after the label and the other runs, above the queues
            self.empty_label.hide()
            self._closed_by_hand = False  # a new run: shown again
            self.count_changed.emit(len(self.rows))
        return row

    def _fold(self) -> None:
        """Open while runs go on (unless closed by hand), folded away when none does."""
        self._folding = True
        try:
            self.setVisible(self._has_content() and not self._closed_by_hand)
        finally:
            self._folding = False

    def sync_queues(self) -> None:
        """One queue section per engine of the tracker (call again when its engines change): the local
        engine's, and each SSH engine's, asked over SSH. A Slurm engine has none: Slurm queues its jobs."""
        engines = {name: engine for name, engine in (self.tracker.engines.items() if self.tracker is not None else ())
                   if getattr(engine, "slurm", None) is None}
        for name in [n for n, section in self.queues.items() if engines.get(n) is not section.engine]:
            section = self.queues.pop(name)
            section.stop()
            section.setParent(None)
            section.deleteLater()
        for name, engine in engines.items():
            if name not in self.queues:
                section = QueueSection(engine)
                section.changed.connect(self._queue_changed)
                section.started.connect(self._queue_started)
                self.queues[name] = section
                self.list_layout.insertWidget(self.list_layout.count() - 1, section)  # above the stretch
        self._queue_changed()

    def shutdown(self) -> None:
        """Stop looking at the queues (on quit)."""
        for section in self.queues.values():
            section.stop()

    def _has_content(self) -> bool:
        return bool(self.rows) or any(q.has_content for q in self.queues.values())

    def _visibility_changed(self, visible: bool) -> None:
        if not self._folding and not visible and self._has_content():
            self._closed_by_hand = True

    def _queue_changed(self) -> None:
        self.empty_label.setVisible(not self._has_content())
        self._fold()

    def _queue_started(self, run_id: str) -> None:
        """A run the queue started outside the studio's launch: the tracker records and follows it."""
        if self.tracker is not None and self.store.get_run(run_id) is None:
            self.tracker.follow_new_runs()

    def on_run_added(self, run_id: str) -> None:
        record = self.store.get_run(run_id)
        if record is None or record.active:
            self._row(run_id, record.name if record else run_id)

    def on_events(self, run_id: str, events: list) -> None:
        if any(e.get("type") == "finished" for e in events):
            self.remove(run_id)
            return
        if any(e.get("type") == "progress" or event_step(e) is not None for e in events):
            # The store has taken these events in (the tracker stores them before it signals): its
            # record is the run's progress as the monitor's header shows it.
            record = self.store.get_run(run_id)
            if record is not None:
                self._row(run_id, record.name).set_progress(record.progress_stage, record.progress_done,
                                                            record.progress_total, record.progress_unit,
                                                            record.eta_s, record.step)

    def on_scheduler_changed(self, run_id: str, slurm: dict) -> None:
        row = self.rows.get(run_id)
        if row is not None:
            row.set_scheduler(slurm)

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
            self.count_changed.emit(len(self.rows))
        self.empty_label.setVisible(not self._has_content())
