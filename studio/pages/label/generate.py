"""The Label page's Generate tab: the `generate` job's wizard, then its run.

Models → Prompts → Sampling → Where to run → Review. The models are a table (model, adapter, label)
filled from the models and adapters of earlier runs, folders, or typed hub ids. When the run ends,
`candidates_ready(run_id)` asks the page to import its candidates into the labeling queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.rundir import ACTIVE_STATES
from studio.models.finetune_results import find_base_models
from studio.pages.finetune.page import BaseModelPicker
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_wizard import SpecWizard
from studio.models.engine_schema import error_text

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

KIND = "generate"
STEPS = ("Models", "Prompts", "Sampling", "Where to run", "Review")
STEP_FIELDS = {"Models": ["name", "candidates_per_model", "chat_template", "seed"], "Prompts": ["prompts"],
               "Sampling": ["sampling"], "Where to run": ["resources"]}
STEP_INTROS = {
    "Models": "The models that answer: a base model, a checkpoint, or a base model with an adapter. Each gives "
              "its candidates to every prompt; annotators see them side by side without their names.",
    "Prompts": "The questions. The built-in tasks have checkable answers, so each candidate is also marked right "
               "or wrong (useful for the reward model later).",
    "Sampling": "How varied the candidates are. Every candidate's seed is recorded, so each can be drawn again.",
    "Where to run": "The engine and the device that generate.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
MODEL_COLUMNS = ("Model", "Adapter (optional)", "Label (optional)")


def find_adapters(workspace: str | Path | None) -> list[Path]:
    """The PEFT adapters of earlier fine-tuning runs (`output/adapter`), newest first."""
    if not workspace:
        return []
    found = [p.parent for p in (Path(workspace).expanduser() / "runs").glob("*/output/adapter/adapter_config.json")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class ModelsTable(QTableWidget):
    """The spec's `models` as editable rows."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(MODEL_COLUMNS), parent)
        self.setHorizontalHeaderLabels(MODEL_COLUMNS)
        self.horizontalHeaderItem(0).setToolTip("A run id, a run or model folder, a checkpoint folder, or a hub id")
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.setColumnWidth(1, 150)
        self.setColumnWidth(2, 120)
        # A model's folder is long: cut in the middle (its run and its end tell it apart), whole in its tooltip.
        self.setTextElideMode(Qt.ElideMiddle)
        self.setProperty("elidesCells", True)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setMinimumHeight(150)

    def models(self) -> list[dict]:
        rows = []
        for r in range(self.rowCount()):
            path, adapter, label = (self.item(r, c).text().strip() if self.item(r, c) else "" for c in range(3))
            if path:
                rows.append({"path": path, "adapter": adapter or None, "label": label or None})
        return rows

    def set_models(self, models: list[dict]) -> None:
        self.blockSignals(True)
        self.setRowCount(0)
        self.blockSignals(False)
        for model in models:
            self.add_model(model.get("path") or "", model.get("adapter") or "", model.get("label") or "")

    def add_model(self, path: str, adapter: str = "", label: str = "") -> None:
        row = self.rowCount()
        self.insertRow(row)
        for column, value in enumerate((path, adapter, label)):
            item = QTableWidgetItem(str(value))
            item.setToolTip(str(value))
            self.setItem(row, column, item)

    def set_adapter_of_selected(self, adapter: str) -> bool:
        rows = self.selectionModel().selectedRows()
        if not rows:
            return False
        self.item(rows[0].row(), 1).setText(adapter)
        return True

    def remove_selected(self) -> None:
        for index in sorted((i.row() for i in self.selectionModel().selectedRows()), reverse=True):
            self.removeRow(index)


class GenerateRun(QWidget):
    """The generate run: progress with ETA, then what it wrote and the import into the queue."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id: str | None = None
        self.title = QLabel("")
        self.title.setObjectName("pageTitle")
        self.state_label = QLabel("")
        self.state_label.setObjectName("badge")
        self.progress = QProgressBar()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.new_button = QPushButton("Generate more")
        self.stop_button = QPushButton("Stop")
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.state_label)
        head.addStretch(1)
        head.addWidget(self.stop_button)
        head.addWidget(self.new_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.addLayout(head)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addStretch(1)


class GenerateTab(SpecWizard):
    """The wizard of a `generate` run; `candidates_ready(run_id)` when such a run completed."""

    candidates_ready = Signal(str)

    KIND = KIND
    STEPS = STEPS
    STEP_INTROS = STEP_INTROS
    STEP_FIELDS = STEP_FIELDS
    TITLE = "Generate candidate answers"
    SUBTITLE = "Sample several answers per prompt from your models; they are added to the labeling queue."
    LAUNCH_LABEL = "Generate"
    CORPUS_STEP = "Prompts"
    CORPUS_SECTION = "prompts"

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 engine: Any = None, parent: QWidget | None = None):
        self.engine_given = engine
        self.queue_name: str | None = None
        self._imported: set[str] = set()
        super().__init__(store, tracker, workspace, parent)
        if tracker is not None:  # the wizard connected its own slots
            tracker.run_events.connect(self._on_events)
            tracker.run_state_changed.connect(self._on_state)

    # ------------------------------------------------------------------------------- hooks

    def _build_run_view(self) -> None:
        self.run_view = GenerateRun()
        self.run_view.new_button.clicked.connect(self.show_wizard)
        self.run_view.stop_button.clicked.connect(self._stop)
        self.stack.addWidget(self.run_view)

    def _build_steps(self) -> None:
        self._build_models_step()
        self._build_corpus_step(preview_height=140, sizes=[380, 220], offer_datasets=False)
        self._build_form_step("Sampling")
        self._build_where_step()

    def _tracker_slots(self, tracker: Tracker) -> list[tuple[Any, Any]]:
        return super()._tracker_slots(tracker) + [(tracker.run_events, self._on_events),
                                                   (tracker.run_state_changed, self._on_state)]

    def _values_set(self) -> None:
        self._models_note()

    def _workspace_changed(self) -> None:
        self.model_picker.set_workspace(self.workspace)

    def set_queue(self, name: str | None) -> None:
        """The queue the candidates go to when the run ends (shown on the Models step)."""
        self.queue_name = name
        self._models_note()

    # ------------------------------------------------------------------------------- models
    def _build_models_step(self) -> None:
        page, layout = self._step_page("Models")
        box = QGroupBox("Models")
        self.models_table = ModelsTable()
        self.models_table.itemChanged.connect(lambda _item: self._models_changed())
        self.model_picker = BaseModelPicker(self.workspace, none_label="Add a model of an earlier run…")
        self.model_picker.setMinimumWidth(160)
        self.model_picker.chosen.connect(self.add_model)
        self.adapter_button = QPushButton("Adapter…")
        self.adapter_button.setToolTip("Put a PEFT adapter folder (a fine-tuning run's output/adapter) on the "
                                       "selected model")
        self.adapter_button.clicked.connect(self._choose_adapter)
        remove_button = QPushButton("Remove")
        remove_button.clicked.connect(lambda: (self.models_table.remove_selected(), self._models_changed()))
        row = QHBoxLayout()
        row.addWidget(self.model_picker, 1)
        row.addWidget(self.adapter_button)
        row.addWidget(remove_button)
        self.models_note = QLabel("")
        self.models_note.setObjectName("help")
        self.models_note.setWordWrap(True)
        self.models_problem = QLabel("")
        self.models_problem.setObjectName("fieldError")
        self.models_problem.setWordWrap(True)
        box_layout = QVBoxLayout(box)
        box_layout.addLayout(row)
        box_layout.addWidget(self.models_table)
        box_layout.addWidget(self.models_problem)
        box_layout.addWidget(self.models_note)
        layout.addWidget(box)
        layout.addWidget(self._form("Models"))
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    def add_model(self, path: str, adapter: str = "", label: str = "") -> None:
        if path:
            self.models_table.add_model(str(path), adapter, label)
            self.model_picker.select(None, emit=False)
            self._models_note()
            self.validate()

    def _choose_adapter(self) -> None:
        adapters = find_adapters(self.workspace)
        start = str(adapters[0]) if adapters else str(self.workspace)
        path = QFileDialog.getExistingDirectory(self, "Choose an adapter folder (adapter_config.json)", start)
        if path and not self.models_table.set_adapter_of_selected(path):
            self.models_note.setText("Select the model the adapter goes on first.")
        self._models_changed()

    def _models_changed(self) -> None:
        self._models_note()
        self._validate_timer.start()

    def _models_note(self) -> None:
        found = len(find_base_models(self.workspace))
        count = len(self.models_table.models())
        queue = f"“{self.queue_name}”" if self.queue_name else "a new queue named after the run"
        self.models_note.setText(
            f"{count} model{'s' if count != 1 else ''} chosen; {found} model{'s' if found != 1 else ''} of earlier "
            f"runs in this workspace. Two models (say, before and after fine-tuning) or one model with 2+ candidates "
            f"each make the pairs. The candidates go to {queue} when the run ends.")

    def spec_values(self) -> dict:
        data = super().spec_values()
        data["models"] = self.models_table.models()
        return data

    def set_spec_data(self, data: dict) -> None:
        if "models" in data:
            self.models_table.set_models(list(data["models"] or []))
        super().set_spec_data({k: v for k, v in data.items() if k != "models"})

    def validate(self) -> list:
        problems = super().validate()
        shown = [str(p) for p in problems if str(p).startswith("models")]
        if not self.models_table.models():
            shown = ["Add a model: pick one of an earlier run above, add a folder, or type a hub id in the table."]
        self.models_problem.setText("\n".join(shown))
        self.models_problem.setVisible(bool(shown))
        if shown:
            item = self.step_list.item(0)
            item.setText(f"1.  {STEPS[0]}  ⚠")
        return problems

    def reset(self) -> None:
        if hasattr(self, "models_table"):
            self.models_table.set_models([])
        super().reset()

    # ------------------------------------------------------------------------------- prompts
    def update_preview(self) -> None:
        """A few prompts of each source: generated tasks for `builtin:tasks`, else the files' records."""
        from engine.tasks.generators import generate
        from studio.widgets.corpus_preview import source_preview

        values = self.forms[self.CORPUS_STEP].values()[self.CORPUS_SECTION]
        parts = []
        for source in (values.get("sources") or [])[:6]:
            if source == "builtin:tasks":
                task = values.get("task") or "addition"
                seed = values.get("task_seed")
                if seed is None:  # the job's seed, as the engine does
                    seed = self.forms["Models"].values().get("seed") or 0
                records = generate(task, 4, seed)
                parts.append(f"■ {source}  —  {task}, {values.get('task_examples')} prompts")
                parts += [f"  {r['instruction']} {r['input']}   →  {r['output']}" for r in records]
            else:
                preview = source_preview(source, values.get("field") or "prompt", limit=4)
                parts.append(f"■ {source}" + (f"  —  {preview.note}" if preview.note else ""))
                parts += ["  " + doc.text[:300] for doc in preview.documents]
            parts.append("")
        self.preview.setPlainText("\n".join(parts).rstrip())

    # ------------------------------------------------------------------------------- the run
    def show_run(self, run_id: str) -> None:
        view = self.run_view
        view.run_id = run_id
        view.title.setText(run_id)
        view.state_label.setText("starting")
        view.progress.setRange(0, 0)
        view.status_label.setText("Loading the first model…")
        view.stop_button.setEnabled(True)
        self.stack.setCurrentWidget(view)

    def _on_events(self, run_id: str, events: list) -> None:
        view = self.run_view
        if run_id != view.run_id:
            return
        for event in events:
            if event.get("type") == "progress" and event.get("total"):
                view.progress.setRange(0, int(event["total"]))
                view.progress.setValue(int(event.get("done") or 0))
                eta = event.get("eta_s")
                view.status_label.setText(f"{event.get('stage', 'generating')}: {event.get('done')} of "
                                          f"{event.get('total')} {event.get('unit') or ''}"
                                          + (f" · about {eta:.0f} s left" if eta else ""))
            elif event.get("type") == "finished" and event.get("status") == "failed":
                view.status_label.setText("Failed: " + error_text(event.get("error") or {}, "generate", STEP_FIELDS))

    def _on_state(self, run_id: str, state: str) -> None:
        view = self.run_view
        if run_id != view.run_id:
            return
        view.state_label.setText(state)
        view.stop_button.setEnabled(state in ACTIVE_STATES)
        if state == "completed" and run_id not in self._imported:
            self._imported.add(run_id)
            view.progress.setRange(0, 1)
            view.progress.setValue(1)
            view.status_label.setText("Done. Adding the candidates to the labeling queue…")
            self.candidates_ready.emit(run_id)
        elif state == "cancelled":
            view.status_label.setText("Stopped. Nothing was added to the queue.")

    def _stop(self) -> None:
        if self.tracker is not None and self.run_view.run_id:
            self.tracker.cancel(self.run_view.run_id)
