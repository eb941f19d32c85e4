"""A fine-tuning run on the Fine-tune page: the task scores of its answers before training and now,
what it wrote (adapter, merged or full model), and the run monitor's live charts below.

Built the first time the page shows a run (the monitor imports pyqtgraph).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.rundir import RunDirectory
from engine.workspace_paths import artifact_path
from studio import theme
from studio.models.finetune_results import TASK_METRICS, TaskScores, format_score
from studio.widgets.run_monitor import RunMonitor

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


class FinetuneRunView(QWidget):
    """One fine-tuning run: scores before → after, outputs, then the monitor.

    Signals: `use_model(folder)` — fine-tune further from this run's model (merged or full).
    Public for tests: `run_id`, `run_dir`, `scores` (TaskScores), `score_labels` (metric -> QLabel),
    `data_label`, `outputs` (kind -> path: adapter, merged, model), `outputs_label`,
    `open_button`, `use_button`, `new_button`, `monitor` (RunMonitor), `load(run_id)`.
    """

    use_model = Signal(str)

    def __init__(self, store: Any, tracker: Tracker | None, workspace: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker, self.workspace = store, tracker, Path(workspace)
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.scores = TaskScores()
        self.outputs: dict[str, str] = {}
        self._data_counts: dict[str, float] = {}

        self.new_button = QPushButton("New fine-tuning run")
        self.new_button.setToolTip("Back to the wizard, with this run's settings kept.")
        self.score_labels: dict[str, QLabel] = {}
        scores_row = QHBoxLayout()
        scores_row.setSpacing(22)
        for name, title in (*TASK_METRICS, ("eval_loss", "Eval loss")):
            label = QLabel("")
            label.setTextFormat(Qt.RichText)
            label.setToolTip(_SCORE_TIPS.get(name, ""))
            self.score_labels[name] = label
            scores_row.addWidget(label)
        scores_row.addStretch(1)
        scores_row.addWidget(self.new_button, 0, Qt.AlignTop)
        self.data_label = QLabel("")
        self.data_label.setObjectName("help")
        self.data_label.setWordWrap(True)
        self.outputs_label = QLabel("")
        self.outputs_label.setObjectName("help")
        self.outputs_label.setWordWrap(True)
        self.outputs_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_button = QPushButton("Open output folder")
        self.open_button.setToolTip("The adapter (PEFT layout) or model (transformers layout) in the file manager.")
        self.open_button.clicked.connect(self._open_output)
        self.use_button = QPushButton("Fine-tune it further")
        self.use_button.setToolTip("Start a new fine-tuning run from this run's model (merged or full).")
        self.use_button.clicked.connect(self._use_model)
        outputs_row = QHBoxLayout()
        outputs_row.addWidget(self.outputs_label, 1)
        outputs_row.addWidget(self.open_button)
        outputs_row.addWidget(self.use_button)

        strip = QFrame()
        strip.setObjectName("scoreStrip")
        strip_layout = QVBoxLayout(strip)
        strip_layout.setContentsMargins(16, 10, 16, 10)
        strip_layout.setSpacing(6)
        strip_layout.addLayout(scores_row)
        strip_layout.addWidget(self.data_label)
        strip_layout.addLayout(outputs_row)
        self.strip = strip
        self._style_strip()

        self.monitor = RunMonitor(store, tracker, kind="finetune")
        self.monitor.layout().insertWidget(1, strip)  # under the run's name, state and progress
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.monitor, 1)
        if tracker is not None:
            tracker.run_events.connect(self.on_events)
        self._show()

    def _style_strip(self) -> None:
        t = theme.current()
        self.strip.setStyleSheet(f"QFrame#scoreStrip {{ border: 1px solid {t.border}; border-radius: 8px; "
                                 f"background: {t.base}; }}")

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() in (event.Type.PaletteChange, event.Type.StyleChange) and hasattr(self, "strip"):
            self._style_strip()
            self._show()
        super().changeEvent(event)

    # ------------------------------------------------------------------------------ loading
    def load(self, run_id: str) -> None:
        """Show `run_id`: its stored history now, its live events as they come."""
        self.run_id = run_id
        record = self.store.get_run(run_id) if self.store is not None else None
        self.run_dir = Path(record.run_dir) if record and record.run_dir else self.workspace / "runs" / run_id
        self.scores = TaskScores()
        self.outputs = {}
        self._data_counts: dict[str, float] = {}
        self.monitor.load(run_id)
        if self.store is not None:
            for split, name in self.store.metric_names(run_id):
                if split not in ("eval", "data"):
                    continue
                steps, _, values = self.store.metric_series(run_id, split, name)
                for step, value in zip(steps, values):
                    self._metric(split, int(step), {name: float(value)})
            self._route(self.store.events(run_id, ["artifact", "finished"]))
        if record is not None and record.summary:
            self.scores.add_summary(record.summary)
        self._show()

    def on_events(self, run_id: str, events: list) -> None:
        if run_id != self.run_id:
            return
        for event in events:
            if event.get("type") == "metric" and isinstance(event.get("step"), (int, float)):
                self._metric(event.get("split") or "train", int(event["step"]), event.get("values") or {})
        self._route(events)
        self._show()

    def _metric(self, split: str, step: int, values: dict) -> None:
        if split == "eval":
            self.scores.add_eval(step, values)
        elif split == "data":
            self._data_counts.update({k: v for k, v in values.items() if isinstance(v, (int, float))})

    def _route(self, events: list) -> None:
        for event in events:
            kind = event.get("type")
            if kind == "artifact" and event.get("kind") in ("adapter", "model"):
                meta = event.get("meta") or {}
                key = "merged" if event.get("kind") == "model" and meta.get("merged") else event["kind"]
                self.outputs[key] = str(event.get("path", ""))
            elif kind == "finished" and isinstance(event.get("summary"), dict):
                self.scores.add_summary(event["summary"])

    # ------------------------------------------------------------------------------ showing
    def _show(self) -> None:
        t = theme.current()
        for name, title in (*TASK_METRICS, ("eval_loss", "Eval loss")):
            if name == "eval_loss":
                title = self.scores.eval_loss_caption()
                before, after = self.scores.eval_loss
                before_text = "—" if before is None else f"{before:.3f}"
                after_text = "…" if after is None or after == before else f"{after:.3f}"
            else:
                before, after = self.scores.before.get(name), self.scores.after.get(name)
                before_text = format_score(name, before)
                after_text = "…" if after is None else format_score(name, after)
            self.score_labels[name].setText(
                f"<span style='color:{t.muted}'>{title}</span><br>"
                f"<span style='font-size:13pt'>{before_text} → <b>{after_text}</b></span>")
        counts = self._data_counts
        if counts:
            parts = [f"{int(counts.get('train_records', 0)):,} records trained on",
                     f"{int(counts.get('eval_records', 0)):,} held out"]
            if counts.get("truncated"):
                parts.append(f"{int(counts['truncated']):,} truncated")
            if counts.get("dropped"):
                parts.append(f"{int(counts['dropped']):,} dropped as too long")
            self.data_label.setText("Before training → latest, on answers generated for held-out records.  "
                                    + " · ".join(parts) + ".")
        else:
            self.data_label.setText("Before training → latest, on answers generated for held-out records "
                                    "(exact match and ROUGE-L as shares, BLEU 0–100).")
        described = []
        for key, title in (("adapter", "Adapter (PEFT)"), ("merged", "Merged model"), ("model", "Model")):
            if key in self.outputs:
                described.append(f"{title}: {self._absolute(self.outputs[key])}")
        self.outputs_label.setText("   ·   ".join(described) if described else
                                   "The adapter or model is written to output/ when the run finishes.")
        self.open_button.setEnabled(bool(self.outputs))
        self.use_button.setEnabled(self.model_folder() is not None)

    def _absolute(self, path: str) -> str:
        return artifact_path(path, self.workspace if self.run_dir is None else RunDirectory(self.run_dir).workspace)

    def model_folder(self) -> str | None:
        """This run's whole model (merged adapter or full fine-tuning), if it wrote one."""
        for key in ("merged", "model"):
            if key in self.outputs:
                return self._absolute(self.outputs[key])
        return None

    def _open_output(self) -> None:
        if self.run_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.run_dir / "output")))

    def _use_model(self) -> None:
        folder = self.model_folder()
        if folder:
            self.use_model.emit(folder)


_SCORE_TIPS = {
    "exact_match": "Share of held-out answers that match the reference exactly (numbers compared as numbers).",
    "bleu": "Corpus BLEU of the answers against the references (0–100).",
    "rouge_l": "Mean ROUGE-L F1: the longest common word sequence of answer and reference.",
    "eval_loss": "Loss on the held-out records' answers: first evaluation → latest.",
}
