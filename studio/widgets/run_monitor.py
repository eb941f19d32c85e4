"""The run monitor: live charts, logs, samples and artifacts of one run, with Stop and Resume.

Opening a run loads its history from the store (so the charts are complete after the app is
reopened), then appends the live events the run tracker forwards. Events only write into numpy
buffers and lists; a ~10 Hz timer redraws what changed, so a burst never blocks the event loop.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSlider,
    QTabWidget, QVBoxLayout, QWidget,
)

from engine.rundir import ACTIVE_STATES
from studio.store import STEP_UNITS, spec_total_steps
from studio.widgets import formatting
from studio.widgets.artifacts_view import ArtifactsView
from studio.widgets.elided_label import ElidedLabel
from studio.widgets.log_view import LogView
from studio.widgets.metric_chart import MetricChart
from studio.widgets.monitor_panels import UNCHARTED_SPLITS, Panels, panel_for, panels_for, scaled
from studio.widgets.samples_view import SamplesView

REDRAW_INTERVAL_MS = 100
REDRAW_BUDGET_S = 0.015  # a chart paint can take ~40 ms under software rendering: start few per tick
RESUMABLE_STATES = ("cancelled", "failed")


class RunMonitor(QWidget):
    """Monitor one run. `store` is a studio.store.Store, `tracker` a RunTracker (or None to watch).

    The panels of `kind` (`panels_for`) are built up front; opening a run of another kind rebuilds
    them (`set_panels`) before its history is drawn.

    Public for tests: `charts` (panel key -> MetricChart), `panels`, `stop_button`, `resume_button`,
    `log_view`, `samples_view`, `artifacts_view`, `redraw_timer`, `run_id`, `state`.
    """

    redrawn = Signal()

    def __init__(self, store: Any, tracker: Any = None, parent: QWidget | None = None, kind: str | None = None):
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

        # Header: name, state, progress, Stop/Resume.
        self.title = ElidedLabel("No run")
        self.title.setObjectName("pageTitle")
        self.title.setStyleSheet("font-size: 14pt;")
        self.state_badge = QLabel("")
        self.state_badge.setObjectName("badge")
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
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the last checkpoint under the same run id.")
        self.resume_button.clicked.connect(self.resume)
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.title)
        header.addWidget(self.state_badge)
        header.addStretch(1)
        header.addWidget(self.progress_label)
        header.addWidget(self.progress)
        header.addWidget(self.eta_label)
        header.addSpacing(8)
        header.addWidget(self.stop_button)
        header.addWidget(self.resume_button)

        # Chart controls.
        self.smoothing_slider = QSlider(Qt.Horizontal)
        self.smoothing_slider.setRange(0, 99)
        self.smoothing_slider.setValue(60)
        self.smoothing_slider.setFixedWidth(140)
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
        self.overlay_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.overlay_box.setMinimumContentsLength(18)
        self.overlay_box.setToolTip("Draw an earlier run's curves, dimmed, behind this run's.")
        self.overlay_box.activated.connect(self._on_overlay_chosen)
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
        for key, title, _ in self.panels:
            self._add_chart(key, title)
        charts_body = QWidget()
        charts_body.setObjectName("scrollBody")
        charts_body.setLayout(self.chart_grid)
        charts_scroll = QScrollArea()
        charts_scroll.setWidgetResizable(True)
        charts_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        charts_scroll.setWidget(charts_body)
        charts_page = QWidget()
        charts_layout = QVBoxLayout(charts_page)
        charts_layout.setContentsMargins(8, 8, 8, 0)
        charts_layout.addLayout(controls)
        charts_layout.addWidget(charts_scroll, 1)

        self.log_view = LogView()
        self.samples_view = SamplesView()
        self.artifacts_view = ArtifactsView()
        self.tabs = QTabWidget()
        self.tabs.addTab(charts_page, "Charts")
        self.tabs.addTab(self.log_view, "Logs")
        self.tabs.addTab(self.samples_view, "Samples")
        self.tabs.addTab(self.artifacts_view, "Artifacts")
        self.artifacts_view.copy_requested.connect(self.copy_artifact)

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

        if tracker is not None:
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self._on_state_changed)
        self._update_header()

    # -------------------------------------------------------------------------------- charts
    def _add_chart(self, key: str, title: str) -> MetricChart:
        chart = MetricChart(key, title)
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
        for key, title, _ in panels:
            self._add_chart(key, title)

    def chart_for(self, name: str) -> tuple[MetricChart, str | None]:
        key, own = panel_for(name)
        chart = self.charts.get(key) or self._add_chart(key, name.replace("_", " ").capitalize())
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
            remote = PurePosixPath(record.run_dir) / remote
        local = self.tracker.engines[self.tracker.default_engine].workspace
        destination = Path(local) / "remote-outputs" / self.run_id / remote.name
        view = self.artifacts_view
        view.copy_status.setText(f"Copying {remote.name} from {engine.target.host}…")
        pull = OutputPull(engine, str(remote), destination, parent=self)
        pull.finished.connect(lambda ok, message: view.copy_status.setText(message))
        return pull

    def load(self, run_id: str) -> None:
        """Show `run_id`: its stored history now, its live events as they come."""
        self.clear_overlays()
        self.run_id = run_id
        self.last_seq = -1
        self.step = self.total = self.eta_s = None
        for chart in self.charts.values():
            chart.clear()
        self.log_view.clear()
        self.samples_view.clear()
        self.artifacts_view.clear()
        self.error_label.hide()
        record = self.store.get_run(run_id)
        self.set_panels(panels_for(record.kind if record is not None else None))
        if record is not None:
            self.title.setText(record.name or run_id)
            self.setToolTip(run_id)
            self.state = record.state
            self.step, self.total, self.eta_s = record.step, record.total_steps, record.eta_s
            self.last_seq = record.last_seq
            engine = self.tracker.engine_for(record) if hasattr(self.tracker, "engine_for") else None
            self.artifacts_view.set_run_dir(record.run_dir or None, remote=getattr(engine, "is_remote", False))
            if record.error:
                self._show_error(record.error)
        else:
            self.title.setText(run_id)
            self.state = "starting"
        for split, name in self.store.metric_names(run_id):
            if split in UNCHARTED_SPLITS:
                continue
            steps, times, values = self.store.metric_series(run_id, split, name)
            chart, key = self._series_key(split, name)
            chart.set_series(key, steps, times, scaled(name, values))
        stored = self.store.events(run_id, ["log", "sample", "artifact"])
        self._route_events([e for e in stored if e.get("seq", -1) <= self.last_seq] if self.last_seq >= 0 else stored)
        self._fill_overlay_box()
        self.redraw()
        self._update_header()

    def _fill_overlay_box(self) -> None:
        self.overlay_box.clear()
        self.overlay_box.addItem("No other run", None)
        record = self.store.get_run(self.run_id) if self.run_id else None
        for other in self.store.runs(kind=record.kind if record and record.kind else None):
            if other.run_id != self.run_id:
                self.overlay_box.addItem(other.name or other.run_id, other.run_id)
                self.overlay_box.setItemData(self.overlay_box.count() - 1, other.run_id, Qt.ToolTipRole)

    def _on_overlay_chosen(self, index: int) -> None:
        run_id = self.overlay_box.itemData(index)
        self.clear_overlays()
        if run_id:
            self.add_overlay(run_id)

    def add_overlay(self, run_id: str) -> None:
        """Draw `run_id`'s stored series dimmed behind the current run's."""
        by_chart: dict[str, dict[str, tuple]] = {}
        for split, name in self.store.metric_names(run_id):
            if split in UNCHARTED_SPLITS:
                continue
            chart, key = self._series_key(split, name)
            steps, times, values = self.store.metric_series(run_id, split, name)
            by_chart.setdefault(chart.name, {})[key] = (steps, times, scaled(name, values))
        record = self.store.get_run(run_id)
        label = record.name if record else run_id
        for chart_name, series in by_chart.items():
            self.charts[chart_name].add_overlay(run_id, label, series)
        self._overlay_ids.append(run_id)
        index = self.overlay_box.findData(run_id)
        if index >= 0 and self.overlay_box.currentIndex() != index:
            self.overlay_box.setCurrentIndex(index)

    def clear_overlays(self) -> None:
        for run_id in self._overlay_ids:
            for chart in self.charts.values():
                chart.remove_overlay(run_id)
        self._overlay_ids.clear()
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

    def _route_events(self, events: list[dict]) -> None:
        logs, samples, artifacts = [], [], []
        # Metric points are gathered per series and appended as arrays: one numpy write per
        # series per batch instead of one Python call per value.
        points: dict[tuple[str, str], tuple[list, list, list]] = {}
        for event in events:
            kind = event.get("type")
            if kind == "metric":
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
                if split == "train":
                    self.step = int(step)
                self._pending_header = True
            elif kind == "progress":
                if event.get("unit") in STEP_UNITS:
                    self.step = int(event.get("done") or 0)
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

    def _on_state_changed(self, run_id: str, state: str) -> None:
        if run_id == self.run_id:
            self.state = state
            if state in ACTIVE_STATES:
                self.error_label.hide()
            self._update_header()

    def _show_error(self, error: dict) -> None:
        text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        if error.get("hint"):
            text += f"\n{error['hint']}"
        self.error_label.setText(text)
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
        self.stop_button.setEnabled(bool(self.run_id) and active and self.tracker is not None)
        self.resume_button.setEnabled(bool(self.run_id) and self.state in RESUMABLE_STATES
                                      and self.tracker is not None)

    # ------------------------------------------------------------------------------ actions
    def stop(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.cancel(self.run_id)
            self.stop_button.setEnabled(False)

    def resume(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.resume(self.run_id)
            self.resume_button.setEnabled(False)

    def run_dir(self) -> Path | None:
        return self.artifacts_view.run_dir
