"""The run monitor: live charts, logs, samples and artifacts of one run, with Stop and Resume.

Opening a run loads its history from the store (so the charts are complete after the app is
reopened), then appends the live events the run tracker forwards. Events only write into numpy
buffers and lists; a ~10 Hz timer redraws what changed, so a burst never blocks the event loop.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSlider,
    QTabWidget, QVBoxLayout, QWidget,
)

from engine.kinds import KINDS
from engine.rundir import ACTIVE_STATES
from studio.models.scheduler_state import slurm_line, slurm_tooltip
from studio.models.store import STEP_UNITS, event_step, spec_total_steps
from studio.widgets import formatting
from studio.widgets.artifacts_view import ArtifactsView
from studio.widgets.elided_label import ElidedLabel
from studio.widgets.log_view import LogView
from studio.widgets.metric_chart import MetricChart
from studio.widgets.monitor_panels import UNCHARTED_SPLITS, Panel, Panels, meaning, panel, panel_for, panels_for, scaled
from studio.widgets.samples_view import SamplesView
from studio.widgets.scores_view import ScoresView
from studio.widgets.sweep_view import SweepView
from studio.models.engine_schema import error_text

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

REDRAW_INTERVAL_MS = 100
REDRAW_BUDGET_S = 0.015  # a chart paint can take ~40 ms under software rendering: start few per tick
RESUMABLE_STATES = ("cancelled", "failed")


class RunMonitor(QWidget):
    """Monitor one run. `store` is a studio.models.store.Store, `tracker` a RunTracker (or None to watch).

    The panels of `kind` (`panels_for`) are built up front; opening a run of another kind rebuilds
    them (`set_panels`) before its history is drawn.

    Public for tests: `charts` (panel key -> MetricChart), `panels`, `stop_button`, `resume_button`,
    `log_view`, `samples_view`, `artifacts_view`, `redraw_timer`, `run_id`, `state`, `ship_dialog`.
    """

    redrawn = Signal()

    def __init__(self, store: Any, tracker: Tracker | None = None, parent: QWidget | None = None, kind: str | None = None):
        super().__init__(parent)
        self.store = store
        self.tracker = tracker
        self.run_id: str | None = None
        self.state = ""
        self.last_seq = -1
        self.step: int | None = None
        self.total: int | None = None
        self.eta_s: float | None = None
        self.charts: dict[str, MetricChart] = {}
        self._pending_header = False
        self._next_chart = 0
        self._overlay_ids: list[str] = []
        self.ship_dialog: Any = None  # the last Export… or Merge… dialog opened
        self._views: dict[str, tuple] = {}  # run id -> (charts' scroll position, their zoomed ranges)

        # Header: name, state, progress, Stop/Resume.
        self.title = ElidedLabel("No run")
        self.title.setObjectName("pageTitle")
        self.title.setStyleSheet("font-size: 14pt;")
        self.state_badge = QLabel("")
        self.state_badge.setObjectName("badge")
        # A run submitted to Slurm: its job's state (pending and why, running where, requeued).
        self.scheduler_label = QLabel("")
        self.scheduler_label.setObjectName("subtitle")
        self.scheduler_label.hide()
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("stat")
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("subtitle")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(90)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Cancel gracefully: the engine saves a checkpoint, then stops.")
        self.stop_button.clicked.connect(self.stop)
        self.force_stop_button = QPushButton("Force stop")
        self.force_stop_button.setToolTip("Stop at once, without waiting for the checkpoint: the run resumes from "
                                          "its last one.")
        self.force_stop_button.clicked.connect(self.force_stop)
        self.force_stop_button.hide()
        self._stopping = False  # Stop was asked of the run shown
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the last checkpoint under the same run id.")
        self.resume_button.clicked.connect(self.resume)
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.title)
        header.addWidget(self.state_badge)
        header.addWidget(self.scheduler_label)
        header.addStretch(1)
        header.addWidget(self.progress_label)
        header.addWidget(self.progress)
        header.addWidget(self.eta_label)
        header.addSpacing(8)
        header.addWidget(self.stop_button)
        header.addWidget(self.force_stop_button)
        header.addWidget(self.resume_button)

        # Chart controls.
        self.smoothing_slider = QSlider(Qt.Horizontal)
        self.smoothing_slider.setRange(0, 99)
        self.smoothing_slider.setValue(60)
        self.smoothing_slider.setFixedWidth(110)
        self.smoothing_slider.setToolTip("Exponential moving average of the training curves (0 = raw).")
        self.smoothing_value = QLabel("0.60")
        self.smoothing_slider.valueChanged.connect(lambda v: self.smoothing_value.setText(f"{v / 100:.2f}"))
        self.smoothing_slider.sliderReleased.connect(self._apply_smoothing)
        self.smoothing_slider.valueChanged.connect(
            lambda _: None if self.smoothing_slider.isSliderDown() else self._apply_smoothing())
        self.x_axis_box = QComboBox()
        self.x_axis_box.addItem("Step", "step")
        self.x_axis_box.addItem("Time", "time")
        self.x_axis_box.currentIndexChanged.connect(lambda _: self.set_x_mode(self.x_axis_box.currentData()))
        self.log_check = QCheckBox("Log scale")
        self.log_check.toggled.connect(self.set_log_y)
        self.overlay_box = QComboBox()
        self.overlay_box.setMinimumWidth(170)
        self.overlay_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.overlay_box.activated.connect(self._on_overlay_chosen)
        self.overlay_box.currentTextChanged.connect(self.overlay_box.setToolTip)
        controls = QHBoxLayout()
        controls.setSpacing(10)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing_slider)
        controls.addWidget(self.smoothing_value)
        controls.addSpacing(12)
        controls.addWidget(QLabel("X axis"))
        controls.addWidget(self.x_axis_box)
        controls.addWidget(self.log_check)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Compare with"))
        controls.addWidget(self.overlay_box)
        controls.addStretch(1)

        # Charts: the fixed panels, then one panel per other metric name as it appears.
        self.chart_grid = QGridLayout()
        self.chart_grid.setSpacing(14)
        self.chart_grid.setContentsMargins(8, 8, 8, 8)
        self.panels: Panels = panels_for(kind)
        for each in self.panels:
            self._add_chart(each)
        charts_body = QWidget()
        charts_body.setObjectName("scrollBody")
        charts_body.setLayout(self.chart_grid)
        charts_scroll = QScrollArea()
        charts_scroll.setWidgetResizable(True)
        charts_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        charts_scroll.setWidget(charts_body)
        self.charts_scroll = charts_scroll
        charts_page = self.charts_page = QWidget()
        charts_layout = QVBoxLayout(charts_page)
        charts_layout.setContentsMargins(8, 8, 8, 0)
        charts_layout.addLayout(controls)
        charts_layout.addWidget(charts_scroll, 1)

        self.log_view = LogView()
        self.samples_view = SamplesView()
        self.artifacts_view = ArtifactsView()
        self.scores_view = ScoresView()
        self.sweep_view = SweepView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.sweep_view, "Trials")
        self.tabs.addTab(self.scores_view, "Scores")
        self.tabs.addTab(charts_page, "Charts")
        self.tabs.addTab(self.log_view, "Logs")
        self.tabs.addTab(self.samples_view, "Samples")
        self.tabs.addTab(self.artifacts_view, "Artifacts")
        self.artifacts_view.copy_requested.connect(self.copy_artifact)
        self.artifacts_view.ship_requested.connect(self.open_ship_dialog)

        self.error_label = QLabel()
        self.error_label.setObjectName("fieldError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        layout.addLayout(header)
        layout.addWidget(self.error_label)
        layout.addWidget(self.tabs, 1)

        self.redraw_timer = QTimer(self)
        self.redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self.redraw_timer.timeout.connect(self.redraw)
        self.redraw_timer.start()

        self.scored = False
        self._show_scores(kind)
        if tracker is not None:
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self._on_state_changed)
            tracker.scheduler.changed.connect(self._on_scheduler_changed)
        self._update_header()

    def _show_scores(self, kind: str | None) -> None:
        """A kind whose metrics are evaluation cells gets the Scores tab (first) instead of charts."""
        self.scored = kind in KINDS and KINDS[kind].scores
        # A kind that runs other runs (a sweep) shows them side by side instead of charts of its own.
        self.sweeping = kind in KINDS and KINDS[kind].coordinates
        self.tabs.setTabVisible(self.tabs.indexOf(self.sweep_view), self.sweeping)
        self.tabs.setTabVisible(self.tabs.indexOf(self.scores_view), self.scored)
        self.tabs.setTabVisible(self.tabs.indexOf(self.charts_page), not (self.scored or self.sweeping))
        self.tabs.setCurrentWidget(self.sweep_view if self.sweeping else self.scores_view if self.scored
                                   else self.charts_page)

    # -------------------------------------------------------------------------------- charts
    def _add_chart(self, shown: Panel) -> MetricChart:
        key = shown.key
        chart = MetricChart(key, shown.caption, schedule=shown.schedule)
        index = len(self.charts)
        self.charts[key] = chart
        if index == 0:
            self.chart_grid.addWidget(chart, 0, 0, 1, 2)
        elif index == 1:
            self.chart_grid.addWidget(chart, 0, 2)
        else:
            row, col = divmod(index - 2, 3)
            self.chart_grid.addWidget(chart, row + 1, col)
        for r in range(self.chart_grid.rowCount()):
            self.chart_grid.setRowMinimumHeight(r, 215)
        chart.set_smoothing(self.smoothing_slider.value() / 100)
        chart.set_x_mode(self.x_axis_box.currentData())
        chart.set_log_y(self.log_check.isChecked())
        return chart

    def set_panels(self, panels: Panels) -> None:
        """Rebuild the grid with `panels` (opening a run of another kind; never while events stream)."""
        if panels == self.panels:
            return
        for chart in self.charts.values():
            self.chart_grid.removeWidget(chart)
            chart.hide()
            chart.deleteLater()
        self.charts.clear()
        self._next_chart = 0
        self.panels = panels
        for each in panels:
            self._add_chart(each)

    def chart_for(self, name: str) -> tuple[MetricChart, str | None]:
        key, own = panel_for(name)
        chart = self.charts.get(key) or self._add_chart(panel(key))
        return chart, None if own else name

    def _series_key(self, split: str, name: str) -> tuple[MetricChart, str]:
        chart, suffix = self.chart_for(name)
        return chart, split if suffix is None else f"{split} {suffix}"

    def _apply_smoothing(self) -> None:
        for chart in self.charts.values():
            chart.set_smoothing(self.smoothing_slider.value() / 100)

    def set_x_mode(self, mode: str) -> None:
        for chart in self.charts.values():
            chart.set_x_mode(mode)

    def set_log_y(self, log_y: bool) -> None:
        for chart in self.charts.values():
            chart.set_log_y(log_y)

    # --------------------------------------------------------------------------------- loading
    def copy_artifact(self, path: str) -> Any:
        """Copy an artifact of a run on an SSH engine to `<local workspace>/remote-outputs/<run>/<name>`
        (in a QProcess; the artifacts view says when it is there). Returns the `OutputPull`."""
        from pathlib import PurePosixPath

        from studio.client.transfers import OutputPull

        record = self.store.get_run(self.run_id) if self.run_id else None
        if record is None or self.tracker is None:
            return None
        engine = self.tracker.engine_for(record)
        remote = PurePosixPath(path)
        if not remote.is_absolute() and record.run_dir:
            remote = PurePosixPath(record.run_dir).parent.parent / remote  # relative to the engine's workspace
        local = self.tracker.engines[self.tracker.default_engine].workspace
        destination = Path(local) / "remote-outputs" / self.run_id / remote.name
        view = self.artifacts_view
        view.copy_status.setText(f"Copying {remote.name} from {engine.target.host}…")
        pull = OutputPull(engine, str(remote), destination, parent=self)
        pull.finished.connect(lambda ok, message: view.copy_status.setText(message))
        return pull

    def ship_values(self, kind: str) -> dict:
        """What Export… or Merge… starts from for this run: its model; for a merge, the average of its
        checkpoints when it wrote two or more, else its adapter folded in."""
        record = self.store.get_run(self.run_id) if self.run_id else None
        stem = ((record.name if record else None) or "run")[:50]
        if kind == "export":
            return {"name": f"{stem}-gguf", "model": {"path": self.run_id}}
        checkpoints = sum(self.artifacts_view.tree.topLevelItem(i).text(0) == "checkpoint"
                          for i in range(self.artifacts_view.tree.topLevelItemCount()))
        if checkpoints >= 2:
            return {"name": f"{stem}-average", "method": "average", "checkpoints": {"run": self.run_id}}
        return {"name": f"{stem}-merged", "method": "fold", "models": [{"path": self.run_id}]}

    def open_ship_dialog(self, kind: str) -> Any:
        """The Export… or Merge… dialog of this run (open, not blocking); the run it starts is shown here."""
        from studio.widgets.ship_dialog import ShipDialog

        record = self.store.get_run(self.run_id) if self.run_id else None
        workspace = engine = None
        if self.tracker is not None:
            workspace = self.tracker.engines[self.tracker.default_engine].workspace
            engine = self.tracker.engine_for(record).name if record is not None else None
        dialog = ShipDialog(kind, self.ship_values(kind), self.store, self.tracker, workspace, engine, parent=self)
        dialog.launched.connect(self.load)
        dialog.open()
        self.ship_dialog = dialog
        return dialog

    def load(self, run_id: str) -> None:
        """Show `run_id`: its stored history now, its live events as they come; where it was scrolled
        and zoomed to when it was shown before, or from the top with whole curves."""
        if self.run_id is not None:
            self._views[self.run_id] = (self.charts_scroll.verticalScrollBar().value(),
                                        {key: chart.view_state() for key, chart in self.charts.items()})
        self.clear_overlays()
        self.run_id = run_id
        self._stopping = False
        self.last_seq = -1
        self.step = self.total = self.eta_s = None
        for chart in self.charts.values():
            chart.clear()
        self.log_view.clear()
        self.samples_view.clear()
        self.artifacts_view.clear()
        self.scores_view.clear()
        self.sweep_view.clear()
        self.error_label.hide()
        self._show_scheduler(self.tracker.scheduler.state(run_id) if self.tracker is not None else None)
        record = self.store.get_run(run_id)
        self.set_panels(panels_for(record.kind if record is not None else None))
        self._show_scores(record.kind if record is not None else None)
        if record is not None:
            self.title.setText(record.name or run_id)
            self.setToolTip(run_id)
            self.state = record.state
            self.step, self.total, self.eta_s = record.step, record.total_steps, record.eta_s
            self.last_seq = record.last_seq
            engine = self.tracker.engine_for(record) if self.tracker is not None else None
            self.artifacts_view.set_run_dir(record.run_dir or None, remote=engine is not None and engine.is_remote)
            if record.error:
                self._show_error(record.error)
        else:
            self.title.setText(run_id)
            self.state = "starting"
        if self.scored:
            self.scores_view.show_run(run_id, self.store.events(run_id, "metric"), self._run_label(run_id))
        if self.sweeping and record is not None:
            self.sweep_view.show_run(record.run_dir or None)
        for split, name in [] if self.scored else self.store.metric_names(run_id):
            if split in UNCHARTED_SPLITS:
                continue
            steps, times, values = self.store.metric_series(run_id, split, name)
            chart, key = self._series_key(split, name)
            chart.set_series(key, steps, times, scaled(name, values))
        stored = self.store.events(run_id, ["started", "log", "sample", "artifact", "finished"])
        step, state = self.step, self.state
        self._route_events([e for e in stored if e.get("seq", -1) <= self.last_seq] if self.last_seq >= 0 else stored)
        # The store's, from every event: the stored ones above are only some of them.
        self.step, self.state = step, state
        self._fill_overlay_box()
        self.redraw()
        self._update_header()
        scroll, views = self._views.get(run_id, (0, {}))
        for key, chart in self.charts.items():
            chart.restore_view(views.get(key))
        self.charts_scroll.verticalScrollBar().setValue(scroll)

    def _fill_overlay_box(self) -> None:
        self.overlay_box.clear()
        self.overlay_box.addItem("No other run", None)
        record = self.store.get_run(self.run_id) if self.run_id else None
        for other in self.store.runs(kind=record.kind if record and record.kind else None):
            if other.run_id != self.run_id:
                self._add_overlay_choice(other)

    def _add_overlay_choice(self, record: Any) -> None:
        self.overlay_box.addItem(f"{record.name or record.run_id}  ·  {record.when}", record.run_id)
        self.overlay_box.setItemData(self.overlay_box.count() - 1, record.run_id, Qt.ToolTipRole)

    def _on_overlay_chosen(self, index: int) -> None:
        run_id = self.overlay_box.itemData(index)
        self.clear_overlays()
        if run_id:
            self.add_overlay(run_id)

    def _run_label(self, run_id: str) -> str:
        record = self.store.get_run(run_id)
        return record.name or run_id if record is not None else run_id

    def add_overlay(self, run_id: str) -> None:
        """Draw `run_id`'s stored series dimmed behind the current run's (its scores beside this run's,
        for a kind whose metrics are scores)."""
        if self.scored:
            self.scores_view.add_run(run_id, self.store.events(run_id, "metric"), self._run_label(run_id))
            self._overlay_ids.append(run_id)
            return
        by_chart: dict[str, dict[str, tuple]] = {}
        for split, name in self.store.metric_names(run_id):
            if split in UNCHARTED_SPLITS:
                continue
            chart, key = self._series_key(split, name)
            steps, times, values = self.store.metric_series(run_id, split, name)
            by_chart.setdefault(chart.name, {})[key] = (steps, times, scaled(name, values))
        record = self.store.get_run(run_id)
        label = (record.name or run_id) if record else run_id
        shown = [self.store.get_run(other) for other in [self.run_id, *self._overlay_ids]]
        if record is not None and any(r is not None and r.name == record.name for r in shown):
            label = f"{label} ({record.when})"  # runs of one name, told apart by when they started
        for chart_name, series in by_chart.items():
            self.charts[chart_name].add_overlay(run_id, label, series)
        self._overlay_ids.append(run_id)
        self._explain_differences()
        index = self.overlay_box.findData(run_id)
        if index < 0 and record is not None:  # a run of another kind, compared from the Runs page
            self._add_overlay_choice(record)
            index = self.overlay_box.count() - 1
        if index >= 0 and self.overlay_box.currentIndex() != index:
            self.overlay_box.setCurrentIndex(index)

    def _explain_differences(self) -> None:
        """Say on each chart whose compared series measure different things (a reward model's reward
        beside a checker's, a DPO loss beside a language model's) what each is."""
        runs = [self.run_id, *self._overlay_ids]
        about = {run_id: (self.store.get_run(run_id), self._spec_of(run_id)) for run_id in runs}
        for key, chart in self.charts.items():
            meanings = {}
            for run_id, (record, spec) in about.items():
                what = meaning(key, record.kind if record else None, spec)
                if what is not None and (run_id == self.run_id or run_id in chart._overlays):
                    meanings[run_id] = (record.name if record else run_id, what)
            if len({what for _, what in meanings.values()}) > 1:
                chart.set_note("Not measured alike: " + "; ".join(f"{name}: {what}" for name, what in meanings.values())
                               + ". Compare their shapes, not their values.")
            else:
                chart.set_note("")

    def _spec_of(self, run_id: str) -> dict:
        started = self.store.events(run_id, "started")
        return (started[-1].get("spec") or {}) if started else {}

    def clear_overlays(self) -> None:
        if self.scored and self.run_id:
            self.scores_view.remove_runs(keep=self.run_id)
        for run_id in self._overlay_ids:
            for chart in self.charts.values():
                chart.remove_overlay(run_id)
        self._overlay_ids.clear()
        for chart in self.charts.values():
            chart.set_note("")
        if self.overlay_box.currentData() is not None:
            self.overlay_box.setCurrentIndex(0)

    # ---------------------------------------------------------------------------------- live
    def on_events(self, run_id: str, events: list[dict]) -> None:
        """Tracker slot: append this run's new events (seq past what is shown) to the buffers."""
        if run_id != self.run_id or not events:
            return
        fresh = [e for e in events if e.get("seq", self.last_seq + 1) > self.last_seq]
        if not fresh:
            return
        self.last_seq = max(self.last_seq, max(e.get("seq", -1) for e in fresh))
        self._route_events(fresh)
        if self.sweeping:  # the sweep logs each trial it queues and ends: its summary has changed
            self.sweep_view.refresh()

    def _route_events(self, events: list[dict]) -> None:
        logs, samples, artifacts, scores = [], [], [], []
        # Metric points are gathered per series and appended as arrays: one numpy write per
        # series per batch instead of one Python call per value.
        points: dict[tuple[str, str], tuple[list, list, list]] = {}
        for event in events:
            kind = event.get("type")
            step = event_step(event)
            if step is not None:
                self.step = step
                self._pending_header = True
            lifecycle = lifecycle_line(event)
            if lifecycle:
                logs.append({"seq": event.get("seq"), "t": event.get("t"), "type": "log", "level": "info",
                             "message": lifecycle})
            if kind == "metric" and self.scored:
                scores.append(event)
            elif kind == "metric":
                step, t = event.get("step"), event.get("t") or 0.0
                split = event.get("split") or "train"
                if not isinstance(step, (int, float)) or split in UNCHARTED_SPLITS:
                    continue
                for name, value in (event.get("values") or {}).items():
                    if value is None or isinstance(value, (int, float)):
                        series = points.get((split, name))
                        if series is None:
                            series = points[(split, name)] = ([], [], [])
                        series[0].append(step)
                        series[1].append(t)
                        series[2].append(math.nan if value is None else value)
            elif kind == "progress":
                if event.get("unit") in STEP_UNITS:
                    self.total = int(event["total"]) if event.get("total") else self.total
                self.eta_s = event.get("eta_s")
                self._pending_header = True
            elif kind == "log":
                logs.append(event)
            elif kind == "sample":
                samples.append(event)
            elif kind == "artifact":
                artifacts.append(event)
            elif kind == "started":
                self.state = "running"
                spec = event.get("spec") or {}
                self.total = spec_total_steps(spec) or self.total
                self._pending_header = True
            elif kind == "finished":
                status = event.get("status")
                self.state = status if status in ("completed", "cancelled", "failed") else "failed"
                self.eta_s = None
                if event.get("error"):
                    self._show_error(event["error"])
                self._pending_header = True
        for (split, name), (steps, times, values) in points.items():
            chart, key = self._series_key(split, name)
            chart.extend(key, steps, times, scaled(name, values))
        if logs:
            self.log_view.add_events(logs)
        if samples:
            self.samples_view.add_events(samples)
        if artifacts:
            self.artifacts_view.add_events(artifacts)
        if scores and self.run_id:
            self.scores_view.add_events(self.run_id, scores)

    def _on_state_changed(self, run_id: str, state: str) -> None:
        if run_id == self.run_id:
            self.state = state
            if state in ACTIVE_STATES:
                self.error_label.hide()
            self._update_header()

    def _show_error(self, error: dict) -> None:
        record = self.store.get_run(self.run_id) if self.run_id else None
        self.error_label.setText(f"{error.get('type', 'Error')}: " + error_text(error, record.kind if record else None))
        self.error_label.show()

    def redraw(self) -> None:
        """Timer slot: redraw the charts whose buffers changed, and the header.

        Charts that are not on screen (another tab, scrolled away) stay dirty until they are.
        Each tick paints charts until REDRAW_BUDGET_S is spent and leaves the rest to the next
        tick, so a burst of new points never freezes the window for long.
        """
        drawn = False
        start = time.perf_counter()
        charts = list(self.charts.values())
        n = len(charts)
        for i in range(n):
            chart = charts[(self._next_chart + i) % n]
            if not chart.dirty or (self.isVisible() and chart.visibleRegion().isEmpty()):
                continue
            if time.perf_counter() - start > REDRAW_BUDGET_S:
                self._next_chart = (self._next_chart + i) % n
                break
            if chart.refresh():
                drawn = True
                if self.isVisible():
                    # Paint now, inside the budget, not in one big flush later. The scene posts
                    # its "changed" notice; delivering it first lets this paint consume it
                    # (otherwise every chart paints twice).
                    QCoreApplication.sendPostedEvents(chart.plot.scene(), QEvent.MetaCall)
                    chart.plot.viewport().repaint()
        if self._pending_header:
            self._update_header()
            self._pending_header = False
        if drawn:
            self.redrawn.emit()

    def _on_scheduler_changed(self, run_id: str, slurm: dict) -> None:
        if run_id == self.run_id:
            self._show_scheduler(slurm)

    def _show_scheduler(self, slurm: dict | None) -> None:
        """The Slurm job's state beside the run's (`show --json`'s `slurm`; None: not a Slurm run)."""
        self.scheduler_label.setVisible(slurm is not None)
        self.scheduler_label.setText(f"Slurm: {slurm_line(slurm)}" if slurm is not None else "")
        self.scheduler_label.setToolTip(slurm_tooltip(slurm) if slurm is not None else "")

    def _update_header(self) -> None:
        self.state_badge.setText(self.state or "—")
        self.state_badge.setVisible(bool(self.run_id))
        if self.step is not None and self.total:
            self.progress_label.setText(f"step {self.step:,} / {self.total:,}")
            self.progress.setRange(0, self.total)
            self.progress.setValue(min(self.step, self.total))
            self.progress.show()
        else:
            self.progress_label.setText("" if self.step is None else f"step {self.step:,}")
            self.progress.hide()
        active = self.state in ACTIVE_STATES
        self.eta_label.setText(f"ETA {formatting.duration(self.eta_s)}" if active and self.eta_s else "")
        if not active:
            self._stopping = False
        stoppable = bool(self.run_id) and active and self.tracker is not None
        # After Stop the run saves a checkpoint first; Force stop is there for a run that takes too long to.
        self.stop_button.setEnabled(stoppable and not self._stopping)
        self.stop_button.setVisible(not (stoppable and self._stopping))
        self.force_stop_button.setVisible(stoppable and self._stopping)
        self.resume_button.setEnabled(bool(self.run_id) and self.state in RESUMABLE_STATES
                                      and self.tracker is not None)

    # ------------------------------------------------------------------------------ actions
    def stop(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.cancel(self.run_id)
            self._stopping = True
            self.log_view.add_events([{"seq": None, "t": time.time(), "type": "log", "level": "info",
                                       "message": "Stop asked: the run saves a checkpoint, then stops (Force stop "
                                                  "stops it at once)."}])
            self._update_header()

    def force_stop(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.cancel(self.run_id, force=True)
            self.force_stop_button.setEnabled(False)
            self.log_view.add_events([{"seq": None, "t": time.time(), "type": "log", "level": "warning",
                                       "message": "Force stop asked: the run ends at once, without a new checkpoint."}])

    def resume(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.resume(self.run_id)
            self.resume_button.setEnabled(False)

    def run_dir(self) -> Path | None:
        return self.artifacts_view.run_dir


def lifecycle_line(event: dict) -> str:
    """The line the log gets for a turn in a run's life told by an event that is no log line: a
    checkpoint saved, a resume, the end (stopped, forced, completed, failed) and at which step."""
    kind = event.get("type")
    if kind == "artifact" and event.get("kind") == "checkpoint":
        step = event_step(event)
        name = str(event.get("path") or "").rstrip("/").rsplit("/", 1)[-1]
        return f"Checkpoint saved at step {step:,} ({name})." if step is not None else f"Checkpoint saved ({name})."
    if kind == "started" and event.get("resumed_from_step") is not None:
        return f"Resumed at step {event['resumed_from_step']:,}, from its checkpoint."
    if kind == "finished":
        summary = event.get("summary") or {}
        at = f" at step {summary['step']:,}" if isinstance(summary.get("step"), int) else ""
        status = event.get("status")
        if status == "cancelled":
            return (f"Stopped at once{at} (forced): Resume goes on from the last checkpoint saved." if summary.get("forced")
                    else f"Stopped{at}, after saving a checkpoint: Resume goes on from it.")
        if status == "completed":
            return f"Completed{at}."
        return f"Failed{at}."
    return ""
