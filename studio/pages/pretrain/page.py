"""The pretraining wizard: Corpus → Tokenizer → Model → Training → Where to run → Review → Launch.

Every parameter form is generated from the `pretrain` spec's JSON schema (one sub-model per step);
this page only adds what a schema cannot say: the corpus preview, the size presets with their
parameter and memory estimates, and the review of the YAML and the equivalent CLI command. Launch
writes the spec into the workspace, hands it to the run tracker, and shows the run monitor.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.sizing import MODEL_PRESETS, training_memory
from engine.specs.pretrain import ModelSpec
from studio.widgets import formatting
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_wizard import SpecWizard

STEPS = ("Corpus", "Tokenizer", "Model", "Training", "Where to run", "Review")
# Which top-level spec properties each step's form shows.
# A hub tokenizer's size is not known before the run downloads it: a common size stands in for it.
HUB_VOCABULARY = 32_000
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


class PretrainPage(SpecWizard):
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

    open_run = Signal(str)

    KIND = "pretrain"
    STEPS = STEPS
    STEP_INTROS = STEP_INTROS
    STEP_FIELDS = STEP_FIELDS
    TITLE = "Pretrain a language model"
    SUBTITLE = "From raw text to a model trained from scratch: pick a corpus, a tokenizer and a size."
    LAUNCH_LABEL = "Launch"

    # ------------------------------------------------------------------------------- hooks
    def _build_run_view(self) -> None:
        self.monitor = None  # the RunMonitor, built when a run is first shown

    def _build_steps(self) -> None:
        self._build_corpus_step(preview_height=160, sizes=[390, 240])
        self._build_tokenizer_step()
        self._build_model_step()
        self._build_form_step("Training")
        self._build_where_step()

    def _connect_forms(self) -> None:
        for name in ("Model", "Tokenizer", "Training", "Where to run"):
            self.forms[name].changed.connect(self.update_estimate)
        self.forms["Model"].changed.connect(self._sync_preset)

    def _entering_step(self, name: str) -> None:
        if name == "Tokenizer":
            self.tokenizer_picker.refresh()

    def _values_set(self) -> None:
        self._sync_preset()
        self.update_estimate()
        self.update_token_preview()

    def _workspace_changed(self) -> None:
        self.tokenizer_picker.set_workspace(self.workspace)

    def _tracker_changed(self) -> None:
        if self.monitor is not None:
            self.monitor.tracker = self.tracker

    # ------------------------------------------------------------------------------- steps
    def _build_tokenizer_step(self) -> None:
        from studio.widgets.token_view import TokenView
        from studio.widgets.tokenizer_picker import TokenizerPicker

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
        self.steps.addWidget(scrolled(page))

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
        self.steps.addWidget(scrolled(page))

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
        vocab, source = self.vocabulary(values.get("tokenizer") or {})
        batch = int(train.get("batch_size") or 1)
        precision = (values.get("resources") or {}).get("precision", "auto")
        estimate = training_memory(model, vocab, batch, mixed_precision=precision in ("bf16", "fp16"),
                                   gradient_checkpointing=bool(train.get("gradient_checkpointing")))
        self.estimate_label.setText(f"{formatting.count(estimate.parameters)} parameters · "
                                    f"~{formatting.gib(estimate.training_bytes)} to train")
        self.estimate_detail.setText(
            f"Weights {formatting.gib(estimate.weights_bytes)} (fp32); training memory counts weights, gradients, "
            f"AdamW state and activations for a batch of {batch} × {model.context_length} tokens with {source}.")

    def vocabulary(self, tokenizer: dict) -> tuple[int, str]:
        """The vocabulary size the model will get from the chosen tokenizer, and where that figure
        comes from: the saved tokenizer's own, or the size the new one is trained to."""
        from studio.widgets.token_view import vocabulary_size  # with the Tokenizer step, not at start-up

        path = tokenizer.get("path")
        if path:
            size = vocabulary_size(path)
            if size is not None:
                return size, f"the {size:,}-token vocabulary of {Path(path).name or path}"
            return HUB_VOCABULARY, (f"a vocabulary of {HUB_VOCABULARY:,} tokens, a guess: {path} is not a tokenizer "
                                    "on this computer, and the run reads its real size when it starts")
        size = (tokenizer.get("train") or {}).get("vocab_size") or 8192
        return size, f"the {size:,}-token vocabulary the new tokenizer is trained to"

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

def _first_line(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        message = errors()[0]["msg"]
        return message.removeprefix("Value error, ")
    text = str(error).strip().splitlines()
    return text[-1].strip() if text else type(error).__name__
