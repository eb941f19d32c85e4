"""A clean run on the Data page: its progress with ETA while it reads the corpus, then its report.

Built the first time the Data page shows a run (it imports the report view, hence pyqtgraph).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from engine.rundir import ACTIVE_STATES
from engine.workspace_paths import resolve_path
from studio.widgets import formatting
from studio.models.clean_results import read_report
from studio.pages.data.clean_report import CleanReport
from studio.widgets.elided_label import ElidedLabel
from studio.models.engine_schema import error_text

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


class CleanRunView(QWidget):
    """One clean run: progress (MB of input read, ETA) and the last log line while it runs; the
    report once it has finished, with buttons to use the cleaned dataset in the other wizards.

    Signals: `use_dataset(page_key, folder)`. Public for tests: `run_id`, `run_dir`, `state`,
    `progress`, `progress_label`, `status_label`, `body` (running panel | `report_view`, a CleanReport),
    `dataset_path()`,
    `stop_button`, `new_button`, `tokenizer_button`, `pretrain_button`, `html_button`, `folder_button`,
    `load(run_id)`.
    """

    use_dataset = Signal(str, str)

    def __init__(self, store: Any, tracker: Tracker | None, workspace: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker, self.workspace = store, tracker, Path(workspace)
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.state = ""
        self.report: dict | None = None
        self._first_progress: tuple[float, float] | None = None  # (t, done) for an ETA the engine left out

        self.title = ElidedLabel("")
        self.title.setObjectName("pageTitle")
        self.state_label = QLabel("")
        self.state_label.setObjectName("badge")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Cancel the run; nothing is written (the output appears whole or not at all).")
        self.stop_button.clicked.connect(self._stop)
        self.html_button = QPushButton("HTML report")
        self.html_button.setToolTip("report.html: the same report as a page to share.")
        self.html_button.clicked.connect(lambda: self._open(self.run_dir / "output" / "report.html"))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip("Open the cleaned dataset's folder in the file manager.")
        self.folder_button.clicked.connect(lambda: self._open(self.dataset_path()))
        self.tokenizer_button = QPushButton("Use in Tokenizer")
        self.tokenizer_button.setToolTip("Open the tokenizer wizard with this cleaned dataset as its corpus.")
        self.tokenizer_button.clicked.connect(lambda: self.use_dataset.emit("tokenizer", str(self.dataset_path())))
        self.pretrain_button = QPushButton("Use in Pretraining")
        self.pretrain_button.setToolTip("Open the pretraining wizard with this cleaned dataset as its corpus.")
        self.pretrain_button.clicked.connect(lambda: self.use_dataset.emit("pretrain", str(self.dataset_path())))
        self.new_button = QPushButton("New cleaning run")
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.title, 1)
        header.addWidget(self.state_label)
        header.addSpacing(8)
        header.addWidget(self.stop_button)
        header.addWidget(self.new_button)
        self.dataset_label = ElidedLabel("")
        self.dataset_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        dataset_title = QLabel("Dataset")
        dataset_title.setStyleSheet("font-weight: 600;")
        self.dataset_row = QWidget()
        dataset_layout = QHBoxLayout(self.dataset_row)
        dataset_layout.setContentsMargins(0, 0, 0, 0)
        dataset_layout.addWidget(dataset_title)
        dataset_layout.addWidget(self.dataset_label, 1)
        for button in (self.tokenizer_button, self.pretrain_button, self.folder_button, self.html_button):
            dataset_layout.addWidget(button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("stat")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.progress_label)
        self.progress_box = QWidget()
        self.progress_box.setLayout(progress_row)
        progress_row.setContentsMargins(0, 0, 0, 0)
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        self.report_view = CleanReport()

        self.running_note = QLabel("The report appears here once the whole corpus is cleaned. The dataset is "
                                   "written whole or not at all: Stop leaves nothing half-written.")
        self.running_note.setObjectName("subtitle")
        self.running_note.setWordWrap(True)
        self.running_panel = QWidget()
        running_layout = QVBoxLayout(self.running_panel)
        running_layout.setContentsMargins(0, 12, 0, 0)
        running_layout.setSpacing(10)
        running_layout.addWidget(self.progress_box)
        running_layout.addWidget(self.status_label)
        running_layout.addWidget(self.running_note)
        running_layout.addStretch(1)
        self.body = QStackedWidget()
        self.body.addWidget(self.running_panel)
        self.body.addWidget(self.report_view)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addWidget(self.dataset_row)
        layout.addWidget(self.body, 1)
        if tracker is not None:
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self.on_state_changed)

    def load(self, run_id: str) -> None:
        """Show `run_id`: what the store has now, live events as they come."""
        self.run_id = run_id
        self.report = None
        self._first_progress = None
        record = self.store.get_run(run_id) if self.store is not None else None
        self.title.setText(record.name if record and record.name else run_id)
        self.title.setToolTip(run_id)
        self.run_dir = Path(record.run_dir) if record and record.run_dir else self.workspace / "runs" / run_id
        self.progress.setRange(0, 0)
        self.progress_label.setText("")
        self.status_label.setText("Starting…")
        if record is not None:
            if record.progress_total:
                self._set_progress(record.progress_done, record.progress_total, record.progress_unit, record.eta_s)
            logs = self.store.events(run_id, "log")
            if logs:
                self.status_label.setText(logs[-1].get("message", ""))
        self.set_state(record.state if record else "starting")

    def on_events(self, run_id: str, events: list) -> None:
        if run_id != self.run_id:
            return
        for event in events:
            kind = event.get("type")
            if kind == "progress":
                self._set_progress(event.get("done"), event.get("total"), event.get("unit"), event.get("eta_s"),
                                   event.get("t"))
            elif kind == "log" and event.get("level") != "debug" and self.state in ACTIVE_STATES:
                self.status_label.setText(event.get("message", "").splitlines()[0])
            elif kind == "finished":
                self.set_state(event.get("status") or "completed")

    def on_state_changed(self, run_id: str, state: str) -> None:
        if run_id == self.run_id:
            self.set_state(state)

    def _set_progress(self, done: Any, total: Any, unit: Any, eta_s: Any, t: Any = None) -> None:
        if not (isinstance(total, (int, float)) and total > 0 and isinstance(done, (int, float))):
            self.progress.setRange(0, 0)
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(done / total, 1.0)))
        if eta_s is None and isinstance(t, (int, float)):
            eta_s = self._estimate_eta(t, done, total)
        eta = f"  ·  ETA {formatting.duration(eta_s)}" if eta_s is not None else ""
        self.progress_label.setText(f"{done:,.1f} of {total:,.1f} {unit or ''}".rstrip() + eta)

    def _estimate_eta(self, t: float, done: float, total: float) -> float | None:
        if self._first_progress is None:
            self._first_progress = (t, done)
            return None
        t0, done0 = self._first_progress
        if t <= t0 or done <= done0:
            return None
        return (total - done) / ((done - done0) / (t - t0))

    def set_state(self, state: str) -> None:
        self.state = state
        self.state_label.setText(state)
        active = state in ACTIVE_STATES
        self.progress_box.setVisible(active)
        self.stop_button.setVisible(active)
        done = state == "completed"
        self.dataset_row.setVisible(done)
        self.running_note.setVisible(active)
        if done:
            self.show_report()
        else:
            self.body.setCurrentWidget(self.running_panel)
            if state in ("failed", "cancelled"):
                record = self.store.get_run(self.run_id) if self.store is not None and self.run_id else None
                error = (record.error or {}) if record else {}
                self.status_label.setText(error_text(error, "clean") or f"The run ended {state}; no dataset was written.")

    def dataset_path(self) -> Path:
        output = (self.report or {}).get("output") or {}
        if output.get("path"):  # absolute in the report: where the workspace was when the run wrote it
            return Path(resolve_path(str(output["path"]), self.workspace))
        return (self.run_dir or self.workspace) / "output" / "dataset"

    def show_report(self) -> None:
        report = read_report(self.run_dir / "output" / "report.json") if self.run_dir else None
        self.report = report
        if report is None:
            self.body.setCurrentWidget(self.running_panel)
            self.dataset_row.setVisible(False)
            self.status_label.setText("The run finished but its report (output/report.json) is missing.")
            return
        self.report_view.load(self.run_dir, report)
        self.body.setCurrentWidget(self.report_view)
        out = report.get("output") or {}
        self.dataset_label.setText(str(self.dataset_path()))
        self.dataset_label.setToolTip(f"{self.dataset_path()}  ({out.get('format', '')}; columns text, id, source)")

    def _open(self, path: Path) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def _stop(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.cancel(self.run_id)
