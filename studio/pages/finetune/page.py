"""The fine-tuning wizard: Base model → Data → Method → Training → Where to run → Review → Launch,
then the run (`studio.pages.finetune.run`).

The forms come from the `finetune` spec's JSON schema. This page adds what a schema cannot say: the
models of earlier runs to start from, the engine's preview (`studio-engine preview SPEC --json`, run
in the background and again, debounced, as the settings change) — the detected data format, records
rendered through the chat template with their trained tokens, the base model's layers, the memory of
every method — and the method cards (`studio.pages.finetune.method`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.specs import SpecError, SpecProblem
from studio.client.engine import LatestCommand
from studio.models.learning_rate import suggested
from studio.models.finetune_results import FinetunePreview, find_base_models
from studio.pages.finetune.method import MethodStep
from studio.widgets import formatting
from studio.pages.finetune.record_view import RenderedRecordView
from studio.widgets.scrolled import scrolled
from studio.widgets.shortcuts import shortcut
from studio.widgets.spec_wizard import SpecWizard, spec_yaml
from studio.widgets.tokenizer_picker import TokenizerPicker

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

KIND = "finetune"
STEPS = ("Base model", "Data", "Method", "Training", "Where to run", "Review")
STEP_FIELDS = {"Base model": ["model"], "Data": ["data"], "Method": ["method", "output"],
               "Training": ["name", "train", "evaluation", "seed"], "Where to run": ["resources"]}
STEP_INTROS = {
    "Base model": "The pretrained model to adapt: one of your pretraining runs, a folder saved with "
                  "save_pretrained, or a hub id (needs the network).",
    "Data": "Instruction or chat data in any common format (detected, and yours to override). Below, a record as "
            "training sees it: the green tokens are the ones the loss learns from.",
    "Method": "How much of the model learns. Each card says what it trades, and the memory it needs for this model "
              "here; red means the run would not fit.",
    "Training": "How long and how fast to train, and how often to measure the answers.",
    "Where to run": "The engine that runs the job and the hardware it uses.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
BUILTIN_TASKS = "builtin:tasks"
PREVIEW_STEPS = ("Base model", "Data", "Method")
PREVIEW_DEBOUNCE_MS = 800


class BaseModelPicker(TokenizerPicker):
    """The models of earlier runs (pretrained, fine-tuned, merged), newest first, and "Choose folder…"."""

    CHOOSE_TITLE = "Choose a model folder (config.json and weights, as save_pretrained writes)"

    def _found(self) -> list:
        return find_base_models(self.workspace)

    def add_path(self, path: str | Path, select: bool = True) -> None:
        """Offer `path` beside the runs' models: the one path typed or chosen elsewhere (a hub id
        typed letter by letter leaves one entry, not one per letter)."""
        path = str(path)
        self._extra = [] if path in {str(f.path) for f in self._found()} else [path]
        self.refresh()
        if select:
            self.select(path)

    def _extra_label(self, path: str) -> str:
        p = Path(path)
        if p.parent.name == "output":  # a run's output/model or output/merged
            return f"{p.parent.parent.name}  ({p.name})"
        return f"{p.parent.name}/{p.name}" if p.is_absolute() else path


class FinetunePage(SpecWizard):
    """The wizard of a fine-tuning run, then the run.

    Driving it from a test: `set_spec_data(dict)`, `spec_data()`, `build_spec()`, `go_to_step(i)`,
    `use_model(path)`, `use_builtin_tasks()`, `choose_method(name)`, `run_preview(force=True)` (a
    background `studio-engine preview`; `preview_finished(object)` fires with the FinetunePreview, or
    `preview_failed(str)`), `cancel_preview()`, `apply_preview(data)` (show a result given as the
    engine's JSON), `launch()`.

    Also public: `model_picker`, `model_summary`, `model_detail`, `data_summary`, `record_view`
    (RenderedRecordView), `method_step` (MethodStep) and its `method_cards`, `target_modules`,
    `method_warning` and `method_note`, `review_warning`, `preview_result`, `preview_running`,
    `run_view` (FinetuneRunView, built on first show_run) and the SpecWizard attributes.
    """

    preview_finished = Signal(object)
    preview_failed = Signal(str)

    KIND = KIND
    STEPS = STEPS
    STEP_INTROS = STEP_INTROS
    STEP_FIELDS = STEP_FIELDS
    TITLE = "Fine-tune a model"
    SUBTITLE = "Adapt a pretrained model to your instructions (full, LoRA, QLoRA…) and score its answers."
    LAUNCH_LABEL = "Start fine-tuning"
    CORPUS_STEP = "Data"
    CORPUS_SECTION = "data"
    SOURCE_FILES = ("Add instruction data", "Instruction data (*.jsonl *.json *.csv *.parquet);;All files (*)")
    OFFER_REGISTRY = True

    preview_result: FinetunePreview | None = None
    run_view = None

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 engine: Any = None, parent: QWidget | None = None):
        self.engine_given = engine
        self._preview = LatestCommand()
        self._preview_key: str | None = None  # the settings of the preview shown
        self._format_help = ""
        super().__init__(store, tracker, workspace, parent)
        self._preview.setParent(self)
        self._preview.succeeded.connect(self._preview_done)
        self._preview.failed.connect(self._preview_error)
        self._preview_debounce = QTimer(self)
        self._preview_debounce.setSingleShot(True)
        self._preview_debounce.setInterval(PREVIEW_DEBOUNCE_MS)
        self._preview_debounce.timeout.connect(self.run_preview)
        for form in self.forms.values():
            form.changed.connect(self._settings_changed)
        shortcut("Ctrl+R", self.wizard, lambda: self.run_preview(force=True), "Preview the model and the data again")
        shortcut("Alt+Right", self._data_page, self.record_view.next_record, "Next rendered record (Data step)")
        shortcut("Alt+Left", self._data_page, self.record_view.previous_record, "Previous rendered record (Data step)")

    # ------------------------------------------------------------------------------- hooks
    def default_values(self) -> dict:
        """The spec's defaults, with no base model yet and the built-in tasks as data."""
        values = super().default_values()
        values["data"]["sources"] = [BUILTIN_TASKS]
        return values

    def _build_steps(self) -> None:
        self._build_model_step()
        self._build_data_step()
        self._build_method_step()
        self._build_form_step("Training")
        self._build_where_step()

    def _build_review_step(self) -> None:
        super()._build_review_step()
        layout = self.steps.widget(self.steps.count() - 1).layout()
        self.review_warning = QLabel("")
        self.review_warning.setObjectName("fieldError")
        self.review_warning.setWordWrap(True)
        self.review_warning.hide()
        layout.insertWidget(1, self.review_warning)
        self.review_expectation = QLabel("")
        self.review_expectation.setObjectName("help")
        self.review_expectation.setWordWrap(True)
        layout.insertWidget(2, self.review_expectation)
        self.review_path = QLabel("")
        self.review_path.setObjectName("help")
        self.review_path.setWordWrap(True)
        layout.insertWidget(3, self.review_path)

    def refresh_review(self) -> None:
        super().refresh_review()
        self.review_expectation.setText(self.learning_rate_expectation())
        self.review_path.setText(self.training_path_sentence())

    def training_path_sentence(self) -> str:
        """What the Review says of the training path: packed or padded, the loss kernel, compiled or not,
        as the engine's preview chose them for this model (the run checks again when it starts)."""
        preview = self.preview_result
        if preview is None or not preview.training_path:
            return "Training path: chosen when the run starts (packed, padding-free where the model allows it)."
        why = f" Not packed: {preview.why_padded}" if preview.why_padded else ""
        return f"Training path: {preview.training_path}.{why}"

    def learning_rate_expectation(self) -> str:
        """What the Review says of the learning rate: why this one, and what the run should show."""
        method = self.forms["Method"].editor("method.name").value()
        parameters = self.preview_result.model.parameters if self.preview_result and self.preview_result.model else None
        advice = suggested(method, parameters)
        rate = self.forms["Training"].editor("train.learning_rate").value()
        if rate is None or float(rate) == advice.value:
            return advice.expectation()
        return f"Learning rate {float(rate):g}: your own; {advice.value:g} is {advice.reason()}. {advice.outlook()}"

    def _connect_forms(self) -> None:
        self.forms["Base model"].editor("model.path").changed.connect(self._model_path_changed)
        self.forms["Data"].editor("data.sources").changed.connect(self._sources_changed)

    def _entering_step(self, name: str) -> None:
        if name == "Base model":
            self.model_picker.refresh()
        if name in PREVIEW_STEPS and self.isVisible():
            self.run_preview()

    def _values_set(self) -> None:
        self.method_step.sync_from_spec()
        self._model_path_changed()
        self._sources_changed()

    def _workspace_changed(self) -> None:
        self.model_picker.set_workspace(self.workspace)
        if self.run_view is not None:
            self.run_view.workspace = self.workspace

    def _tracker_slots(self, tracker: Tracker) -> list[tuple[Any, Any]]:
        slots = super()._tracker_slots(tracker)
        if self.run_view is not None:
            slots += [(tracker.run_events, self.run_view.on_events)]
        return slots

    def _tracker_changed(self) -> None:
        if self.run_view is not None:
            self.run_view.tracker = self.tracker
            self.run_view.monitor.tracker = self.tracker

    def reset(self) -> None:
        """Back to the defaults, starting from the newest model of an earlier run when there is one."""
        self.method_step.forget_learning_rate(self.default_values()["train"]["learning_rate"])
        self.preview_result, self._preview_key = None, None  # of the settings before
        self.method_step.set_preview(None)
        super().reset()
        self.choose_method(self.forms["Method"].editor("method.name").value())
        found = find_base_models(self.workspace)
        if found:
            self.use_model(str(found[0].path))

    def spec_problems(self, data: dict) -> list[SpecProblem]:
        problems = super().spec_problems(data)
        if not ((data.get("model") or {}).get("path") or "").strip():
            # Say what to do rather than "at least 1 character".
            problems = [SpecProblem("model.path", "Pick a base model: a run above, a folder or a hub id.")
                        if p.field == "model.path" else p for p in problems]
        return problems

    def update_preview(self) -> None:
        """The records shown are the engine's (`run_preview`); nothing is read here."""

    # -------------------------------------------------------------------------- Base model
    def _build_model_step(self) -> None:
        page, layout = self._step_page("Base model")
        start = QGroupBox("Start from")
        self.model_picker = BaseModelPicker(self.workspace, none_label="Models of earlier runs…")
        self.model_picker.chosen.connect(self.use_model)
        self.model_folder_button = QPushButton("Choose folder…")
        self.model_folder_button.setToolTip("A folder with config.json and weights (.safetensors), as "
                                            "save_pretrained writes it.")
        self.model_folder_button.clicked.connect(self._choose_model_folder)
        row = QHBoxLayout()
        row.addWidget(self.model_picker, 1)
        row.addWidget(self.model_folder_button)
        self.model_picker_note = QLabel("")
        self.model_picker_note.setObjectName("help")
        self.model_picker_note.setWordWrap(True)
        start_layout = QVBoxLayout(start)
        start_layout.addLayout(row)
        start_layout.addWidget(self.model_picker_note)
        layout.addWidget(start)
        layout.addWidget(self._form("Base model"))
        info = QGroupBox("The model")
        self.model_summary = QLabel("")
        self.model_summary.setObjectName("stat")
        self.model_summary.setWordWrap(True)
        self.model_detail = QLabel("")
        self.model_detail.setObjectName("help")
        self.model_detail.setWordWrap(True)
        self.model_detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        info_layout = QVBoxLayout(info)
        info_layout.addWidget(self.model_summary)
        info_layout.addWidget(self.model_detail)
        layout.addWidget(info)
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    def _choose_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, BaseModelPicker.CHOOSE_TITLE, str(self.workspace))
        if path:
            self.use_model(path)

    def use_model(self, path: str) -> None:
        """Fine-tune from `path` (a model folder, a run id or a hub id)."""
        if path:
            self.forms["Base model"].editor("model.path").set_value(str(path))

    def _model_path_changed(self) -> None:
        path = (self.forms["Base model"].editor("model.path").value() or "").strip()
        picker = self.model_picker
        if path and path not in picker.paths():
            picker.add_path(path, select=False)
        picker.select(path or None, emit=False)
        found = len(find_base_models(self.workspace))
        self.model_picker_note.setText(
            f"{found} model{'s' if found != 1 else ''} of earlier runs in this workspace. Or type a folder or a hub "
            "id below." if found else
            "No models from earlier runs yet: pretrain one on the Pretrain page, choose a folder, or type a hub id "
            "below.")
        if not path:
            self.model_summary.setText("No base model yet")
            self.model_detail.setText("Pick one above. Its architecture, size and layers show here, and the Data "
                                      "step renders records with its tokenizer and chat template.")
        elif self.preview_result is None or self._preview_key != self._preview_settings():
            self.model_summary.setText("Not read yet")
            self._set_status(self.model_detail, "The engine reads the model when this step, Data or Method shows "
                                                "(Ctrl+R reads it again): its architecture, size and layers show here.")

    # -------------------------------------------------------------------------------- Data
    def _build_data_step(self) -> None:
        page, layout = self._step_page("Data")
        self._data_page = page
        form = self._form("Data")
        self._format_help = form.fields["data.format"].help.text()
        self.builtin_button = QPushButton("Use built-in tasks")
        self.builtin_button.setToolTip("Generated tasks with checkable answers (addition, reversing or sorting words): "
                                       "the answers are scored, so you see what the model learned.")
        self.builtin_button.clicked.connect(self.use_builtin_tasks)
        buttons = self._source_buttons(self.builtin_button)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 8, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(form)
        preview_box = QGroupBox("How training sees a record")
        self.data_summary = QLabel("")
        self.data_summary.setObjectName("help")
        self.data_summary.setWordWrap(True)
        self.record_view = RenderedRecordView()
        self.record_view.setMinimumHeight(170)
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.addWidget(self.data_summary)
        preview_layout.addWidget(self.record_view, 1)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(scrolled(top))
        splitter.addWidget(preview_box)
        splitter.setSizes([330, 310])  # the data's settings before a record: a laptop shows both
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.steps.addWidget(page)

    def use_builtin_tasks(self) -> None:
        """Train on the generated tasks (the only source), their settings shown."""
        self.forms["Data"].editor("data.sources").set_value([BUILTIN_TASKS])

    def _sources_changed(self) -> None:
        sources = self.forms["Data"].editor("data.sources").value() or []
        if BUILTIN_TASKS in sources:
            # The task and its size are Advanced fields: show them while they matter.
            for section in self.forms["Data"].advanced_sections():
                section.set_expanded(True)

    # ------------------------------------------------------------------------------ Method
    def _build_method_step(self) -> None:
        page, layout = self._step_page("Method")
        self.method_step = MethodStep(self._form("Method"),
                                      lambda: self.forms["Training"].editor("train.learning_rate"))
        self.method_step.warning_changed.connect(self._method_warning_changed)
        step = self.method_step
        self.method_cards, self.method_warning, self.method_note = step.cards, step.warning_label, step.note_label
        self.target_modules = step.target_modules
        layout.addWidget(step)
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    def choose_method(self, name: str) -> None:
        """Make `name` the method (as clicking its card does)."""
        self.method_step.choose(name)

    def _method_warning_changed(self, text: str) -> None:
        self.review_warning.setText(text)
        self.review_warning.setVisible(bool(text))

    def launch_config(self, resources: dict) -> dict | None:
        """The FSDP settings or DeepSpeed config the fine-tuning job gives the trainer."""
        from engine.training.strategy import trainer_arguments
        from studio.widgets.launch_plan import resources_of

        return trainer_arguments(resources_of(resources)) or None

    # ----------------------------------------------------------------------------- preview
    @property
    def preview_running(self) -> bool:
        return self._preview.running

    def _preview_settings(self) -> str:
        """The settings a preview depends on, as a comparable string."""
        data = self.spec_values()
        for key in ("name", "evaluation", "output"):
            data.pop(key, None)
        train = data.get("train") or {}
        data["train"] = {k: train.get(k) for k in ("batch_size", "gradient_checkpointing")}
        (data.get("method") or {}).pop("name", None)
        return json.dumps(data, sort_keys=True, default=str)

    def _settings_changed(self) -> None:
        current = self.STEPS[self.steps.currentIndex()]
        if current in PREVIEW_STEPS and self.isVisible() and self._preview_settings() != self._preview_key:
            self._preview_debounce.start()

    def cancel_preview(self) -> None:
        """Forget a pending preview and stop a running one (its answer is then ignored)."""
        self._preview_debounce.stop()
        self._preview.stop()

    def run_preview(self, force: bool = False) -> bool:
        """Start the preview of the current settings in the background (unless it already shows or
        runs them); returns whether one started."""
        self._preview_debounce.stop()
        try:
            spec = self.build_spec()
        except SpecError as e:
            if any(p.field == "model.path" for p in e.problems):
                self._show_preview_message("Pick a base model first (step 1): records are rendered with its "
                                           "tokenizer and chat template, and memory is estimated for it.")
            else:
                count = len(e.problems)
                self._show_preview_message(f"The preview waits until the settings are valid: {count} problem"
                                           f"{'s' if count != 1 else ''} to fix (marked ⚠).")
            return False
        key = self._preview_settings()
        if not force and key in (self._preview_key, self._preview.key):
            return False
        path = self.workspace / "specs" / "preview" / f"{spec['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_yaml(spec), encoding="utf-8")
        self._preview.start(self.engine().preview(path, action="preview the base model and the data"), key)
        self._set_status(self.data_summary, "Previewing with the engine: reading the data and the model "
                                             "(Ctrl+R previews again)…")
        if self.preview_result is None:
            self.model_summary.setText("Reading the model…")
            self.model_detail.setText("")
            self.record_view.set_message("Rendering a few records through the chat template…")
        return True

    def _preview_done(self, data: Any, key: str) -> None:
        if not isinstance(data, dict):
            self._preview_error(f"the engine answered {type(data).__name__}, not a preview")
            return
        self.apply_preview(data, key)

    def _preview_error(self, message: str, key: str = "") -> None:
        message = self.in_controls(message.replace("studio-engine: ", ""))
        self.preview_result = None
        self._preview_key = None
        self._show_preview_message(message, error=True)
        self.preview_refused(message, key or None)
        self.preview_failed.emit(message)

    def preview_key(self) -> str:
        return self._preview_settings()

    def _show_preview_message(self, text: str, error: bool = False) -> None:
        """No preview to show: say why on every step that shows one."""
        self._set_status(self.data_summary, text, error)
        self.record_view.set_message(text)
        self.method_step.set_preview(None)
        path = (self.forms["Base model"].editor("model.path").value() or "").strip()
        if path:
            self.model_summary.setText("The model could not be read" if error else "Not previewed yet")
            self.model_detail.setText(text)
            self._set_status(self.model_detail, text, error)
        self.forms["Data"].fields["data.format"].help.setText(self._format_help)

    @staticmethod
    def _set_status(label: QLabel, text: str, error: bool = False) -> None:
        label.setText(text)
        name = "fieldError" if error else "help"
        if label.objectName() != name:
            label.setObjectName(name)
            label.style().unpolish(label)
            label.style().polish(label)

    def apply_preview(self, data: dict, key: str | None = None) -> FinetunePreview:
        """Show a preview (the engine's JSON) for the current settings, or those of `key`."""
        self._preview.stop()  # a result given from outside replaces one on its way
        preview = FinetunePreview.from_json(data)
        self.preview_result = preview
        self._preview_key = key if key is not None else self._preview_settings()
        self.preview_accepted()
        self.review_path.setText(self.training_path_sentence())
        model = preview.model
        if model is not None:
            self.model_summary.setText(f"{model.architecture}  ·  {formatting.count(model.parameters)} parameters")
            template = {"model": "the model's own", "chatml": "ChatML", "llama3": "Llama 3", "plain": "plain"}.get(
                model.chat_template, model.chat_template or "?")
            chosen = (self.spec_values().get("data") or {}).get("chat_template")
            if chosen == "auto":
                template += (" (auto: the model has a template of its own)" if model.chat_template == "model" else
                             " (auto: the model has no template of its own, so it learns ChatML's)")
            self._set_status(self.model_detail,
                             f"{model.path}\nLinear layers (LoRA's targets): {', '.join(model.linear_modules) or '—'}"
                             f"\nChat template: {template}; “Chat template” on the Data step changes it.")
        self.forms["Data"].fields["data.format"].help.setText(
            f"Reading the data as {preview.format_sentence()}. {self._format_help}")
        self._set_status(self.data_summary, f"Format {preview.format_sentence()}.  {preview.records_sentence()}")
        self.record_view.set_records(preview.examples)
        self.method_step.set_preview(preview)
        self.update_launch_plan()
        self.preview_finished.emit(preview)
        return preview

    # ------------------------------------------------------------------------------- run
    def ensure_run_view(self):
        if self.run_view is None:
            from studio.pages.finetune.run import FinetuneRunView  # pyqtgraph loads here, not at start-up

            self.run_view = FinetuneRunView(self.store, self.tracker, self.workspace)
            self.run_view.new_button.clicked.connect(self.show_wizard)
            self.run_view.use_model.connect(self._continue_from)
            self.stack.addWidget(self.run_view)
        return self.run_view

    def show_run(self, run_id: str) -> None:
        view = self.ensure_run_view()
        view.load(run_id)
        self.stack.setCurrentWidget(view)

    def show_wizard(self) -> None:
        self.model_picker.refresh()
        super().show_wizard()

    def _continue_from(self, folder: str) -> None:
        self.show_wizard()
        self.use_model(folder)
        self.go_to_step(STEPS.index("Base model"))
