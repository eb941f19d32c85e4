"""The Batch tab: the grid's variants × models on a whole file of examples with expected answers, and
benchmark tasks of lm-evaluation-harness on the same models, as a normal `kind: evaluate` run (spec
written to the workspace, launched through the run tracker, shown in the jobs dock); when it ends,
its results (studio/pages/playground/results.py), the scores with their standard errors
(studio/widgets/scores_view.py) and the table as CSV."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QSpinBox,
    QSplitter, QVBoxLayout, QWidget,
)

from engine.specs import SpecError, parse_spec, spec_to_yaml
from studio.pages.playground.results import METRIC_LABELS, EvaluationResults, write_csv
from studio.models.playground_session import Session, evaluate_spec_data, problem_text
from studio.widgets.scores_view import ScoresView
from studio.models.engine_schema import error_text

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


class BatchTab(QWidget):
    """Public: the settings (`data_path`, `input_field`, `expected_field`, `limit`, `max_new_tokens`,
    `greedy`, `metric_boxes`, `tasks`), `evaluate_button`, `status`, `progress`, `earlier`,
    `metrics_table`, `results_table`, `detail`, `scores`, `export_button`, `run_id`, `record`
    (metrics.json), `results`, and `write_spec()`, `launch()`, `show_results(run_id)`, `export_csv(path)`."""

    message = Signal(str)
    session_edited = Signal()

    def __init__(self, store: Any, tracker: Tracker | None, workspace: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker, self.workspace = store, tracker, workspace
        self.session = Session()
        self.run_id = ""
        self.record: dict = {}
        self.results: list[dict] = []
        intro = QLabel("Every variant × model of the grid answers every example of a file with expected answers, "
                       "and every model runs the benchmark tasks you list, as a <b>kind: evaluate</b> run (in the "
                       "jobs dock too); its scores and answers show here.")
        intro.setObjectName("help")
        intro.setWordWrap(True)
        self.data_path = QLineEdit()
        self.data_path.setPlaceholderText("A .jsonl or .csv file: one example per record, e.g. "
                                          "{\"input\": \"cat red sun\", \"expected\": \"sun red cat\"}")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.input_field, self.expected_field = QLineEdit(), QLineEdit()
        self.limit = QSpinBox()
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(1, 32768)
        self.greedy = QCheckBox("Greedy")
        self.greedy.setToolTip("The likeliest answer (comparable and reproducible); off = the first column's sampling")
        self.metric_boxes = {name: QCheckBox(label) for name, label in METRIC_LABELS.items()}
        self.tasks = QLineEdit()
        self.tasks.setPlaceholderText("Benchmark tasks (lm-evaluation-harness), comma-separated: names such as "
                                      "arc_easy (need the network once), or task .yaml files of your own")
        task_file = QPushButton("Task file…")
        task_file.setToolTip("Add a task .yaml in the harness's format; its data file is named in it, relative "
                             "to the YAML")
        task_file.clicked.connect(self._add_task_file)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setObjectName("primary")
        self.evaluate_button.clicked.connect(self.launch)
        for widget in (self.data_path, self.input_field, self.expected_field, self.tasks):
            widget.textEdited.connect(self._edited)
        for box in (self.limit, self.max_new_tokens):
            box.valueChanged.connect(self._edited)
        for box in (self.greedy, *self.metric_boxes.values()):
            box.toggled.connect(self._edited)
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.addWidget(QLabel("Data file"), 0, 0)
        path_row = QHBoxLayout()
        path_row.addWidget(self.data_path, 1)
        path_row.addWidget(browse)
        form.addLayout(path_row, 0, 1, 1, 7)
        for i, (caption, widget) in enumerate((("Input field", self.input_field), ("Expected", self.expected_field),
                                               ("Examples", self.limit), ("Answer length", self.max_new_tokens))):
            form.addWidget(QLabel(caption), 1, i * 2)
            form.addWidget(widget, 1, i * 2 + 1)
        form.addWidget(QLabel("Benchmarks"), 2, 0)
        tasks_row = QHBoxLayout()
        tasks_row.addWidget(self.tasks, 1)
        tasks_row.addWidget(task_file)
        form.addLayout(tasks_row, 2, 1, 1, 7)
        metrics = QHBoxLayout()
        metrics.addWidget(QLabel("Metrics"))
        for box in self.metric_boxes.values():
            metrics.addWidget(box)
        metrics.addWidget(self.greedy)
        metrics.addStretch(1)
        metrics.addWidget(self.evaluate_button)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.earlier = QComboBox()
        self.earlier.currentTextChanged.connect(self.earlier.setToolTip)  # a long run id, whole when hovered
        self.earlier.setMinimumContentsLength(34)
        self.earlier.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.earlier.activated.connect(lambda i: self.show_results(self.earlier.itemData(i)) if i > 0 else None)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.export_button.setEnabled(False)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.progress)
        status_row.addWidget(self.earlier)
        status_row.addWidget(self.export_button)

        self.view = EvaluationResults()
        self.metrics_table, self.results_table, self.detail = (self.view.metrics_table, self.view.results_table,
                                                               self.view.detail)
        self.scores = ScoresView()
        self.scores.hide()
        results = QSplitter(Qt.Vertical)
        results.addWidget(self.scores)
        results.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(metrics)
        layout.addLayout(status_row)
        layout.addWidget(results, 1)
        if tracker is not None:
            tracker.run_events.connect(self._on_events)
            tracker.run_state_changed.connect(self._on_state)
        self._loading = False

    # ------------------------------------------------------------------------------ session
    def set_session(self, session: Session) -> None:
        self.session, batch = session, session.batch
        self._loading = True
        self.data_path.setText(batch.data_path)
        self.input_field.setText(batch.input_field)
        self.expected_field.setText(batch.expected_field)
        self.limit.setValue(batch.limit or 0)
        self.max_new_tokens.setValue(batch.max_new_tokens)
        self.greedy.setChecked(batch.greedy)
        for name, box in self.metric_boxes.items():
            box.setChecked(name in batch.metrics)
        self.tasks.setText(", ".join(batch.tasks))
        self._loading = False
        self.refresh_runs()
        if batch.run_id:
            self.show_results(batch.run_id)
        self.update_button()

    def _edited(self, *_) -> None:
        if self._loading:
            return
        batch = self.session.batch
        batch.data_path = self.data_path.text().strip()
        batch.input_field = self.input_field.text().strip() or "input"
        batch.expected_field = self.expected_field.text().strip() or "expected"
        batch.limit = self.limit.value() or None
        batch.max_new_tokens = self.max_new_tokens.value()
        batch.greedy = self.greedy.isChecked()
        batch.metrics = [name for name, box in self.metric_boxes.items() if box.isChecked()]
        batch.tasks = [t.strip() for t in self.tasks.text().split(",") if t.strip()]
        self.update_button()
        self.session_edited.emit()

    def update_button(self) -> None:
        batch = self.session.batch
        variants, models, tasks = len(self.session.variants), len(self.session.models), len(batch.tasks)
        asked = ([f"{variants}"] if batch.data_path else []) + ([f"{tasks} task{'s' if tasks != 1 else ''}"]
                                                               if tasks else [])
        self.evaluate_button.setText(f"Evaluate {' + '.join(asked) or variants} × {models}")
        self.evaluate_button.setEnabled(bool(models and (batch.data_path or batch.tasks)))

    def _add_task_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A benchmark task (lm-evaluation-harness YAML)",
                                              str(self.workspace), "Task files (*.yaml *.yml);;All files (*)")
        if path:
            listed = [t.strip() for t in self.tasks.text().split(",") if t.strip()]
            self.tasks.setText(", ".join([*listed, path]))
            self._edited()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Examples with expected answers", str(self.workspace),
                                              "Examples (*.jsonl *.json *.csv *.parquet);;All files (*)")
        if path:
            self.data_path.setText(path)
            self._edited()

    def refresh_runs(self) -> None:
        self.earlier.clear()
        self.earlier.blockSignals(True)
        self.earlier.addItem("Evaluation runs…", "")
        for run in self.store.runs(kind="evaluate") if self.store is not None else []:
            self.earlier.addItem(f"{run.run_id}  ·  {run.state}", run.run_id)
        self.earlier.setCurrentIndex(max(0, self.earlier.findData(self.run_id)))
        self.earlier.blockSignals(False)

    # ------------------------------------------------------------------------------ the run
    def write_spec(self) -> Path | None:
        """The evaluate spec of the grid, validated and written to <workspace>/specs; None (and the
        problems said) when it is not valid."""
        try:
            spec = parse_spec(evaluate_spec_data(self.session), "the playground's evaluation")
        except SpecError as e:
            self.message.emit("The evaluation cannot start:\n" + "\n".join(f"• {p}" for p in e.problems))
            return None
        except Exception as e:  # noqa: BLE001 - a variant whose template does not parse
            self.message.emit(f"The evaluation cannot start: {problem_text(e)[0]}")
            return None
        path = self.workspace / "specs" / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_to_yaml(spec), encoding="utf-8")
        return path

    def launch(self) -> Path | None:
        path = self.write_spec()
        if path is None:
            return None
        if self.tracker is None:
            self.status.setText(f"Spec written to {path}; no engine is connected to run it.")
            return path
        self.status.setText(f"Starting the evaluation ({path.name})…")
        self.evaluate_button.setEnabled(False)
        command = self.tracker.launch(path)
        command.succeeded.connect(self._launched)
        command.failed.connect(lambda message: (self.status.setText("The evaluation did not start."),
                                                self.message.emit(message), self.update_button()))
        return path

    def _launched(self, info: Any) -> None:
        self.update_button()
        if isinstance(info, dict) and info.get("run_id"):
            self.run_id = self.session.batch.run_id = info["run_id"]
            self.status.setText(f"{self.run_id}: loading the first model…")
            self.progress.setRange(0, 0)
            self.progress.show()
            self.session_edited.emit()

    def _on_events(self, run_id: str, events: list) -> None:
        if run_id != self.run_id:
            return
        for event in events:
            if event.get("type") == "progress" and event.get("total"):
                self.progress.setRange(0, int(event["total"]))
                self.progress.setValue(int(event.get("done") or 0))
                eta = event.get("eta_s")
                doing = event.get("variant") or event.get("task")
                self.status.setText(f"{run_id}: {event.get('model')} / {doing} — {event.get('done'):g} of "
                                    f"{event['total']} {event.get('unit') or ''}"
                                    + (f", about {eta:.0f} s left" if eta else ""))
            elif event.get("type") == "finished" and event.get("status") == "failed":
                self.status.setText(f"{run_id} failed: " + error_text(event.get("error") or {}, "evaluate"))

    def _on_state(self, run_id: str, state: str) -> None:
        if run_id != self.run_id:
            return
        if state == "completed":
            self.show_results(run_id)
            self.refresh_runs()
        elif state == "cancelled":
            self.progress.hide()
            self.status.setText(f"{run_id} was stopped; it wrote no results.")

    # ------------------------------------------------------------------------------ results
    def output_dir(self, run_id: str) -> Path:
        record = self.store.get_run(run_id) if self.store is not None else None
        run_dir = Path(record.run_dir) if record is not None and record.run_dir else self.workspace / "runs" / run_id
        return run_dir / "output"

    def show_results(self, run_id: str) -> bool:
        """The scores, metrics and answers of a completed evaluate run; False when it has none (yet)."""
        self.run_id = run_id
        out = self.output_dir(run_id)
        record = self.store.get_run(run_id) if self.store is not None else None
        scored = self.store.events(run_id, "metric") if self.store is not None else []
        self.scores.show_run(run_id, scored, record.name if record is not None else run_id)
        tasks = any("task" in event for event in scored)
        self.scores.setVisible(tasks)
        try:
            self.record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
            self.results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8")
                            .splitlines() if line.strip()]
        except (OSError, ValueError):
            self.record, self.results = {}, []
        self.view.setVisible(bool(self.record))
        self.export_button.setEnabled(bool(self.record))
        if not self.record and not tasks:
            self.status.setText(f"{run_id}: no results yet (they are written when the run completes).")
            return False
        self.progress.hide()
        said = []
        if tasks:
            said.append(f"{len({e['task'] for e in scored if 'task' in e})} benchmark tasks scored (± standard error)")
        if self.record:
            self.view.show_results(self.record, self.results)
            said.append(f"{len(self.results)} answers in {len(self.record.get('table', []))} cells; pick a row to "
                        f"read them")
        self.status.setText("; ".join(said) + ".")
        self.earlier.setCurrentIndex(max(0, self.earlier.findData(run_id)))
        return True

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        """The metrics table (one row per variant × model) as CSV."""
        if not self.record:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the metrics", str(Path.home() / f"{self.run_id}.csv"),
                                                  "CSV (*.csv)")
            if not path:
                return None
        write_csv(self.record, path)
        self.message.emit(f"Wrote the metrics of {self.run_id} to {path} (every answer is in "
                          f"{self.output_dir(self.run_id) / 'results.csv'}).")
        return Path(path)
