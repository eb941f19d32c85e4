"""The pretraining wizard: Corpus → Tokenizer → Model → Training → Where to run → Review → Launch.

Every parameter form is generated from the `pretrain` spec's JSON schema (one sub-model per step);
this page only adds what a schema cannot say: the corpus preview, the size presets with their
parameter and memory estimates, and the review of the YAML and the equivalent CLI command. Launch
writes the spec into the workspace, hands it to the run tracker, and shows the run monitor.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QPlainTextEdit,
    QPushButton, QScrollArea, QSplitter, QStackedWidget, QVBoxLayout, QWidget,
)

from engine.sizing import MODEL_PRESETS, training_memory
from engine.specs import ModelSpec, PretrainSpec, SpecError, json_schema, parse_spec, spec_to_yaml
from studio.widgets import formatting
from studio.widgets.corpus_preview import source_preview
from studio.widgets.spec_form import SpecForm

STEPS = ("Corpus", "Tokenizer", "Model", "Training", "Where to run", "Review")
# Which top-level spec properties each step's form shows.
STEP_FIELDS: dict[str, list[str]] = {
    "Corpus": ["data"],
    "Tokenizer": ["tokenizer"],
    "Model": ["model"],
    "Training": ["name", "train", "seed"],
    "Where to run": ["resources"],
}
STEP_INTROS = {
    "Corpus": "Where the training text comes from. The preview shows a few documents of each source.",
    "Tokenizer": "Train a tokenizer on the corpus, or use a saved one.",
    "Model": "The architecture and size. The estimates update as you change the values.",
    "Training": "How long and how fast to train, and how often to evaluate, sample and checkpoint.",
    "Where to run": "The engine that runs the job and the hardware it uses.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
CUSTOM_PRESET = "Custom"


def _scrolled(widget: QWidget) -> QScrollArea:
    widget.setObjectName("scrollBody")
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(widget)
    return scroll


def _mono(text_edit: QPlainTextEdit) -> None:
    text_edit.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))


class PretrainPage(QWidget):
    """The wizard, then the monitor of the run it launched.

    Driving it from a test: `set_spec_data(dict)` fills every form from a (partial) spec dict,
    `spec_data()` reads the values back as a plain dict, `build_spec()` validates them,
    `go_to_review()` shows the YAML and command, `launch_button.click()` (or `launch()`) writes
    the spec and starts it; the `launched(run_id)` signal fires once the engine has accepted it,
    and `monitor` is then the RunMonitor showing that run. `set_workspace(path, tracker)` points
    the page at another workspace (and run tracker) after construction.

    The Tokenizer step offers the tokenizers of earlier runs (`tokenizer_picker`; `use_tokenizer(path)`)
    and previews the chosen one as the user types (`token_view`, a TokenView).

    Also public: `forms` (step name -> SpecForm), `step_list`, `steps` (QStackedWidget),
    `next_button`, `back_button`, `preset_box`, `estimate_label`, `yaml_view`, `command_label`,
    `problems_label`, `status_label`, `last_spec_path`.
    """

    launched = Signal(str)  # run id
    open_run = Signal(str)

    def __init__(self, store: Any = None, tracker: Any = None, workspace: Path | str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.tracker = tracker
        self.workspace = Path(workspace) if workspace else Path.home() / "atelier"
        self.schema = json_schema("pretrain")
        self.forms: dict[str, SpecForm] = {}
        self.monitor = None
        self.last_spec_path: Path | None = None
        self.problems: list = []
        self._launching = None

        self.stack = QStackedWidget()  # wizard | monitor
        self.wizard = QWidget()
        self.stack.addWidget(self.wizard)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        title = QLabel("Pretrain a language model")
        title.setObjectName("pageTitle")
        subtitle = QLabel("From raw text to a model trained from scratch: pick a corpus, a tokenizer and a size.")
        subtitle.setObjectName("subtitle")
        self.step_list = QListWidget()
        self.step_list.setObjectName("steps")
        self.step_list.setFixedWidth(170)
        for i, name in enumerate(STEPS, 1):
            self.step_list.addItem(f"{i}.  {name}")
        self.steps = QStackedWidget()
        self._build_corpus_step()
        self._build_tokenizer_step()
        self._build_model_step()
        self._build_form_step("Training")
        self._build_where_step()
        self._build_review_step()
        self.step_list.currentRowChanged.connect(self.go_to_step)

        self.back_button = QPushButton("Back")
        self.next_button = QPushButton("Next")
        self.next_button.setObjectName("primary")
        self.launch_button = QPushButton("Launch")
        self.launch_button.setObjectName("primary")
        self.launch_button.setToolTip("Write the spec into the workspace and start the run on the engine.")
        self.back_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() - 1))
        self.next_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() + 1))
        self.launch_button.clicked.connect(self.launch)
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        nav = QHBoxLayout()
        nav.addWidget(self.status_label, 1)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.launch_button)

        body = QHBoxLayout()
        body.setSpacing(18)
        body.addWidget(self.step_list)
        body.addWidget(self.steps, 1)
        outer = QVBoxLayout(self.wizard)
        outer.setContentsMargins(24, 18, 24, 16)
        outer.setSpacing(10)
        outer.addWidget(title)
        outer.addWidget(subtitle)
        outer.addSpacing(6)
        outer.addLayout(body, 1)
        outer.addLayout(nav)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(150)
        self._validate_timer.timeout.connect(self.validate)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(300)
        self._preview_timer.timeout.connect(self.update_preview)
        for form in self.forms.values():
            form.changed.connect(self._validate_timer.start)
        self.forms["Corpus"].changed.connect(self._preview_timer.start)
        for name in ("Model", "Tokenizer", "Training", "Where to run"):
            self.forms[name].changed.connect(self.update_estimate)
        self.forms["Model"].changed.connect(self._sync_preset)

        if tracker is not None:
            tracker.launch_failed.connect(self._launch_failed)
        self.reset()

    # ------------------------------------------------------------------------------- steps
    def _step_page(self, name: str, extra_top: QWidget | None = None) -> tuple[QWidget, QVBoxLayout]:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(12)
        intro = QLabel(STEP_INTROS[name])
        intro.setObjectName("subtitle")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        return page, layout

    def _form(self, name: str) -> SpecForm:
        form = SpecForm(self.schema, STEP_FIELDS[name])
        self.forms[name] = form
        return form

    def _build_form_step(self, name: str) -> None:
        page, layout = self._step_page(name)
        layout.addWidget(self._form(name))
        layout.addStretch(1)
        self.steps.addWidget(_scrolled(page))

    def _build_corpus_step(self) -> None:
        page, layout = self._step_page("Corpus")
        form = self._form("Corpus")
        self.add_file_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_file_button.clicked.connect(self._add_files)
        self.add_folder_button.clicked.connect(self._add_folder)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_file_button)
        buttons.addWidget(self.add_folder_button)
        buttons.addStretch(1)
        preview_box = QGroupBox("Preview")
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("Add a source to see a few of its documents.")
        self.preview.setMinimumHeight(160)
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.addWidget(self.preview)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 8, 0)
        top_layout.addWidget(form)
        top_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(_scrolled(top))
        splitter.addWidget(preview_box)
        splitter.setSizes([390, 240])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.steps.addWidget(page)

    def _build_tokenizer_step(self) -> None:
        from studio.widgets.token_view import TokenizerPicker, TokenView

        page, layout = self._step_page("Tokenizer")
        saved_box = QGroupBox("Use a tokenizer from an earlier run")
        self.tokenizer_picker = TokenizerPicker(self.workspace, none_label="None: train a new one with this run")
        self.tokenizer_picker.chosen.connect(self.use_tokenizer)
        self.tokenizer_folder_button = QPushButton("Use a tokenizer folder…")
        self.tokenizer_folder_button.clicked.connect(self._choose_tokenizer_folder)
        saved_row = QHBoxLayout(saved_box)
        saved_row.addWidget(self.tokenizer_picker, 1)
        saved_row.addWidget(self.tokenizer_folder_button)
        layout.addWidget(saved_box)
        form = self._form("Tokenizer")
        layout.addWidget(form)
        preview_box = QGroupBox("Preview")
        self.token_view = TokenView()
        self.token_view.setMinimumHeight(280)
        QVBoxLayout(preview_box).addWidget(self.token_view)
        layout.addWidget(preview_box)
        layout.addStretch(1)
        # A folder and training exclude each other: typing a folder turns training off.
        form.editor("tokenizer.path").changed.connect(self._tokenizer_path_changed)
        self.steps.addWidget(_scrolled(page))

    def _build_model_step(self) -> None:
        page, layout = self._step_page("Model")
        self.preset_box = QComboBox()
        self.preset_box.addItem(CUSTOM_PRESET)
        self.preset_box.addItems(list(MODEL_PRESETS))
        self.preset_box.activated.connect(lambda _: self.apply_preset(self.preset_box.currentText()))
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("stat")
        self.estimate_detail = QLabel("")
        self.estimate_detail.setObjectName("help")
        self.estimate_detail.setWordWrap(True)
        size_box = QGroupBox("Size")
        grid = QGridLayout(size_box)
        grid.setHorizontalSpacing(16)
        grid.addWidget(QLabel("Preset"), 0, 0)
        grid.addWidget(self.preset_box, 0, 1)
        grid.addWidget(self.estimate_label, 1, 0, 1, 3)
        grid.addWidget(self.estimate_detail, 2, 0, 1, 3)
        grid.setColumnStretch(2, 1)
        layout.addWidget(size_box)
        layout.addWidget(self._form("Model"))
        layout.addStretch(1)
        self.steps.addWidget(_scrolled(page))

    def _build_where_step(self) -> None:
        page, layout = self._step_page("Where to run")
        engine_box = QGroupBox("Engine")
        self.engine_combo = QComboBox()
        self.engine_combo.addItem("Local engine (this computer)", "local")
        engine_note = QLabel("Remote GPU hosts over SSH arrive with the engine profiles; a run on the "
                             "local engine keeps going if the studio is closed.")
        engine_note.setObjectName("help")
        engine_note.setWordWrap(True)
        engine_layout = QVBoxLayout(engine_box)
        engine_layout.addWidget(self.engine_combo)
        engine_layout.addWidget(engine_note)
        layout.addWidget(engine_box)
        layout.addWidget(self._form("Where to run"))
        layout.addStretch(1)
        self.steps.addWidget(_scrolled(page))

    def _build_review_step(self) -> None:
        page, layout = self._step_page("Review")
        self.yaml_view = QPlainTextEdit()
        self.yaml_view.setReadOnly(True)
        _mono(self.yaml_view)
        self.command_label = QLabel("")
        self.command_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.command_label.setWordWrap(True)
        self.command_label.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("fieldError")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        command_box = QGroupBox("Equivalent command")
        command_layout = QVBoxLayout(command_box)
        command_layout.addWidget(self.command_label)
        yaml_box = QGroupBox("Spec (YAML)")
        yaml_layout = QVBoxLayout(yaml_box)
        yaml_layout.addWidget(self.yaml_view)
        layout.addWidget(self.problems_label)
        layout.addWidget(command_box)
        layout.addWidget(yaml_box, 1)
        self.steps.addWidget(page)

    def go_to_step(self, index: int) -> None:
        index = max(0, min(index, len(STEPS) - 1))
        if STEPS[index] == "Review":
            self.refresh_review()
        if STEPS[index] == "Tokenizer":
            self.tokenizer_picker.refresh()
        if self.steps.currentIndex() != index:
            self.steps.setCurrentIndex(index)
        if self.step_list.currentRow() != index:
            self.step_list.setCurrentRow(index)
        self.back_button.setEnabled(index > 0)
        self.next_button.setVisible(index < len(STEPS) - 1)
        self.launch_button.setVisible(index == len(STEPS) - 1)

    # ------------------------------------------------------------------------------ values
    def reset(self) -> None:
        """Back to the defaults of the spec (the resolved ones: a tokenizer is trained)."""
        defaults = PretrainSpec().model_dump(mode="json")
        for form in self.forms.values():
            form.set_values(defaults)
        self.go_to_step(0)
        self._sync_preset()
        self.update_estimate()
        self.update_preview()
        self.update_token_preview()
        self.validate()

    def spec_values(self) -> dict:
        data: dict = {"kind": "pretrain"}
        for form in self.forms.values():
            data.update(form.values())
        return data

    def spec_data(self) -> dict:
        """The current values as a spec dict (not validated; `build_spec()` validates)."""
        return self.spec_values()

    def set_spec_data(self, data: dict) -> None:
        """Fill the forms from a spec dict; keys it leaves out keep their current values."""
        current = self.spec_values()
        merged = _deep_merge(current, data)
        for form in self.forms.values():
            form.set_values(merged)
        self._sync_preset()
        self.update_estimate()
        self.update_token_preview()
        self.validate()

    def go_to_review(self) -> None:
        self.go_to_step(len(STEPS) - 1)

    def set_workspace(self, workspace: Path | str, tracker: Any = None) -> None:
        """Write specs into `workspace` from now on, and launch through `tracker` when given."""
        self.workspace = Path(workspace)
        self.tokenizer_picker.set_workspace(self.workspace)
        if tracker is not None and tracker is not self.tracker:
            if self.tracker is not None:
                try:
                    self.tracker.launch_failed.disconnect(self._launch_failed)
                except (RuntimeError, TypeError):
                    pass
            self.tracker = tracker
            tracker.launch_failed.connect(self._launch_failed)
            if self.monitor is not None:
                self.monitor.tracker = tracker
        if self.steps.currentIndex() == len(STEPS) - 1:
            self.refresh_review()

    def build_spec(self) -> PretrainSpec:
        """The validated spec of the current values; raises SpecError listing every problem."""
        return parse_spec(self.spec_values(), "wizard")

    def validate(self) -> list:
        """Check the values; show each problem at its field and mark the steps that have one."""
        try:
            self.build_spec()
            self.problems = []
        except SpecError as e:
            self.problems = e.problems
        for i, name in enumerate(STEPS):
            form = self.forms.get(name)
            shown = form.show_problems(self.problems) if form else []
            item = self.step_list.item(i)
            item.setText(f"{i + 1}.  {name}" + ("  ⚠" if shown else ""))
            item.setToolTip("\n".join(str(p) for p in shown))
        count = len(self.problems)
        self.status_label.setText(f"{count} problem{'s' if count != 1 else ''} to fix before launching "
                                  "(marked ⚠)." if count else "")
        self.launch_button.setEnabled(not count and self._launching is None)
        if self.steps.currentIndex() == len(STEPS) - 1:
            self.refresh_review()
        return self.problems

    def spec_path_for(self, spec: PretrainSpec) -> Path:
        return self.workspace / "specs" / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"

    def refresh_review(self) -> None:
        try:
            spec = self.build_spec()
        except SpecError as e:
            self.problems_label.setText("Fix these before launching:\n" + "\n".join(f"• {p}" for p in e.problems))
            self.problems_label.show()
            self.yaml_view.setPlainText(spec_to_yaml_unvalidated(self.spec_values()))
            self.command_label.setText("studio-engine run spec.yaml")
            return
        self.problems_label.hide()
        self.yaml_view.setPlainText(spec_to_yaml(spec))
        path = self.spec_path_for(spec)
        self.command_label.setText(
            f"studio-engine --workspace {shlex.quote(str(self.workspace))} run {shlex.quote(str(path))}\n"
            f"# in short, from the workspace:  studio-engine run spec.yaml")

    # ----------------------------------------------------------------------- corpus preview
    def _sources_editor(self):
        return self.forms["Corpus"].editor("data.sources")

    def _add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add text files", str(Path.home()),
                                                "Text corpora (*.txt *.jsonl *.json *.csv *.parquet);;All files (*)")
        for path in paths:
            self.add_source(path)

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of text files", str(Path.home()))
        if path:
            self.add_source(path)

    def add_source(self, source: str) -> None:
        self._sources_editor().add_item(str(source))

    def update_preview(self) -> None:
        values = self.forms["Corpus"].values()["data"]
        parts = []
        for source in (values.get("sources") or [])[:6]:
            preview = source_preview(source, values.get("text_field") or "text", limit=4)
            parts.append(f"■ {source}" + (f"  —  {preview.note}" if preview.note else ""))
            for doc in preview.documents:
                text = doc.text if len(doc.text) < 600 else doc.text[:600] + " …"
                parts.append(f"  [{doc.source}]\n" + "\n".join("  " + line for line in text.splitlines()))
            parts.append("")
        self.preview.setPlainText("\n".join(parts).rstrip())

    # ------------------------------------------------------------------------ tokenizer
    def _choose_tokenizer_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a saved tokenizer folder", str(Path.home()))
        if path:
            self.use_tokenizer(path)

    def use_tokenizer(self, path: str | None) -> None:
        """Use a saved tokenizer folder (training off), or train a new one when `path` is empty."""
        form = self.forms["Tokenizer"]
        if path:
            form.editor("tokenizer.path").set_value(str(path))
        else:
            form.editor("tokenizer.path").set_value(None)
            form.groups["tokenizer.train"].setChecked(True)
        self._tokenizer_path_changed()

    def _tokenizer_path_changed(self) -> None:
        path = self.forms["Tokenizer"].editor("tokenizer.path").value()
        box = self.forms["Tokenizer"].groups["tokenizer.train"]
        if path is not None and box.isChecked():
            box.setChecked(False)
        self.update_token_preview()

    def update_token_preview(self) -> None:
        """Preview the chosen tokenizer folder; a tokenizer still to be trained has nothing to show yet."""
        path = self.forms["Tokenizer"].editor("tokenizer.path").value()
        if path:
            if path not in self.tokenizer_picker.paths():
                self.tokenizer_picker.add_path(path, select=False)
            self.tokenizer_picker.select(path, emit=False)
            if Path(path).expanduser().exists():
                self.token_view.set_tokenizer(path)
            else:
                self.token_view.set_tokenizer(None)
                self.token_view.chips.placeholder = (f"{path} is not a folder on this computer (a hub id?): the engine "
                                                     "loads it when the run starts.")
                self.token_view.chips.update()
        else:
            self.tokenizer_picker.select(None, emit=False)
            self.token_view.set_tokenizer(None)
            self.token_view.chips.placeholder = ("A new tokenizer is trained when the run starts. Pick one from an "
                                                 "earlier run above to see how it splits your text.")
            self.token_view.chips.update()

    # ---------------------------------------------------------------------- model sizing
    def apply_preset(self, name: str) -> None:
        if name not in MODEL_PRESETS:
            return
        form = self.forms["Model"]
        for key, value in MODEL_PRESETS[name].items():
            form.editor(f"model.{key}").set_value(value)
        self.preset_box.setCurrentText(name)
        self.update_estimate()

    def _sync_preset(self) -> None:
        values = self.forms["Model"].values()["model"]
        match = next((name for name, preset in MODEL_PRESETS.items()
                      if all(values.get(k) == v for k, v in preset.items())), CUSTOM_PRESET)
        if self.preset_box.currentText() != match:
            self.preset_box.setCurrentText(match)

    def update_estimate(self) -> None:
        values = self.spec_values()
        try:
            model = ModelSpec(**values["model"])
        except Exception as e:  # noqa: BLE001 - any invalid model: say so instead of a number
            self.estimate_label.setText("—")
            self.estimate_detail.setText(f"No estimate until the model settings are valid ({_first_line(e)}).")
            return
        train = values.get("train") or {}
        tokenizer = values.get("tokenizer") or {}
        vocab = (tokenizer.get("train") or {}).get("vocab_size") or 8192
        batch = int(train.get("batch_size") or 1)
        precision = (values.get("resources") or {}).get("precision", "auto")
        estimate = training_memory(model, vocab, batch, mixed_precision=precision in ("bf16", "fp16"),
                                   gradient_checkpointing=bool(train.get("gradient_checkpointing")))
        self.estimate_label.setText(f"{formatting.count(estimate.parameters)} parameters · "
                                    f"~{formatting.gib(estimate.training_bytes)} to train")
        self.estimate_detail.setText(
            f"Weights {formatting.gib(estimate.weights_bytes)} (fp32); training memory counts weights, gradients, "
            f"AdamW state and activations for a batch of {batch} × {model.context_length} tokens with a "
            f"{vocab:,}-token vocabulary.")

    # ---------------------------------------------------------------------------- launch
    def write_spec(self) -> Path:
        spec = self.build_spec()
        path = self.spec_path_for(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_to_yaml(spec), encoding="utf-8")
        self.last_spec_path = path
        return path

    def launch(self) -> Path | None:
        """Write the spec YAML into the workspace and start it through the tracker."""
        if self.validate():
            self.go_to_step(len(STEPS) - 1)
            return None
        path = self.write_spec()
        if self.tracker is None:
            self.status_label.setText(f"Spec written to {path}; no engine is connected to run it.")
            return path
        self.status_label.setText(f"Starting {path.name} on the local engine…")
        self.launch_button.setEnabled(False)
        command = self.tracker.launch(path)
        self._launching = command
        command.succeeded.connect(self._launch_succeeded)
        command.failed.connect(lambda _message: self._launch_done())
        return path

    def _launch_done(self) -> None:
        self._launching = None
        self.launch_button.setEnabled(not self.problems)

    def _launch_succeeded(self, info: Any) -> None:
        self._launch_done()
        if isinstance(info, dict) and info.get("run_id"):
            self.status_label.setText("")
            self.show_run(info["run_id"])
            self.launched.emit(info["run_id"])

    def _launch_failed(self, message: str) -> None:
        self._launch_done()
        self.go_to_step(len(STEPS) - 1)
        self.problems_label.setText(f"The run did not start:\n{message}")
        self.problems_label.show()
        self.status_label.setText("The run did not start; see Review.")

    # --------------------------------------------------------------------------- monitor
    def ensure_monitor(self):
        if self.monitor is None:
            from studio.widgets.run_monitor import RunMonitor  # pyqtgraph loads here, not at start-up

            self.monitor = RunMonitor(self.store, self.tracker)
            back = QPushButton("New pretraining run")
            back.clicked.connect(lambda: self.stack.setCurrentWidget(self.wizard))
            self.new_run_button = back
            holder = QWidget()
            holder_layout = QVBoxLayout(holder)
            holder_layout.setContentsMargins(0, 0, 0, 0)
            holder_layout.setSpacing(0)
            bar = QHBoxLayout()
            bar.setContentsMargins(16, 10, 16, 0)
            bar.addStretch(1)
            bar.addWidget(back)
            holder_layout.addLayout(bar)
            holder_layout.addWidget(self.monitor, 1)
            self.stack.addWidget(holder)
            self._monitor_holder = holder
        return self.monitor

    def show_run(self, run_id: str) -> None:
        monitor = self.ensure_monitor()
        monitor.load(run_id)
        self.stack.setCurrentWidget(self._monitor_holder)

    def show_wizard(self) -> None:
        self.stack.setCurrentWidget(self.wizard)


def _first_line(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        message = errors()[0]["msg"]
        return message.removeprefix("Value error, ")
    text = str(error).strip().splitlines()
    return text[-1].strip() if text else type(error).__name__


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spec_to_yaml_unvalidated(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
