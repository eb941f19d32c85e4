"""The Data wizard: Input → Steps → Dry run → Output → Review → Launch, then the cleaning report.

The forms come from the `clean` spec's JSON schema. This page adds what a schema cannot say: a
random sample of the corpus, a checklist of the cleaning steps with what each would do on that
sample, the dry run (`studio-engine preview`, run in the background and re-run, debounced, as the
settings change), and the run's progress and report (`studio.pages.data.run`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.specs import SpecError
from studio.models.clean_results import DryRun
from studio.pages.data.clean_preview import CleanPreview
from studio.pages.data.clean_steps import CleaningSteps
from studio.widgets.scrolled import scrolled
from studio.widgets.shortcuts import shortcut
from studio.widgets.spec_form import SpecForm
from studio.widgets.spec_wizard import SpecWizard, spec_yaml

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

KIND = "clean"
STEPS = ("Input", "Steps", "Dry run", "Output", "Review")
STEP_FIELDS = {"Input": ["input"], "Output": ["name", "output", "workers", "shards", "batch_documents", "order", "seed"]}
STEP_INTROS = {
    "Input": "What to clean: files, folders, globs, a saved dataset or a hub dataset; below, a look at its documents.",
    "Steps": "Switch cleaning steps on and off and tune them. The table says what each would do to a random sample "
             "of the corpus, and follows your changes (Ctrl+R runs the dry run again).",
    "Dry run": "What each enabled step would remove or change on a random sample, and why.",
    "Output": "Where the cleaned dataset goes and how it is written. The Tokenizer and Pretrain wizards offer it "
              "as a corpus once the run has finished.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
DRY_RUN_DEBOUNCE_MS = 700
SAMPLE_SHOWN = 8
# Settings that do not change what a dry run shows: changing them does not run it again.
_NOT_IN_DRY_RUN = ("name", "output", "workers", "shards", "batch_documents")


class DataPage(SpecWizard):
    """The wizard of a cleaning run, then its progress and report.

    Driving it from a test: `set_spec_data(dict)`, `spec_data()`, `build_spec()`, `go_to_step(i)`,
    `run_dry_run(force=True)` (a background `studio-engine preview`; `dry_run_finished(object)` fires
    with the DryRun, or `dry_run_failed(str)`), `apply_dry_run(data)` (show a result given as the
    engine's JSON), `set_step_enabled(step, on)`, `launch()`. `use_dataset(kind, path)` fires when
    the report's "Use in Tokenizer/Pretraining" is pressed.

    Also public: `cleaning_steps` (CleaningSteps), `step_checklist` (its QTreeWidget: a checkable row
    per step, what it would do in column 1), `dry_run` (CleanPreview), `dry_result`,
    `dry_run_running`, `sample_button`, `first_button`, `run_view` (CleanRunView, built on first
    show_run) and the SpecWizard attributes.
    """

    use_dataset_in = Signal(str, str)  # (page key "tokenizer" | "pretrain", dataset folder)
    dry_run_finished = Signal(object)
    dry_run_failed = Signal(str)

    KIND = KIND
    STEPS = STEPS
    STEP_INTROS = STEP_INTROS
    STEP_FIELDS = STEP_FIELDS
    TITLE = "Clean a corpus"
    SUBTITLE = ("Repair, normalise, filter, redact and deduplicate text, see what each step removes, then write "
                "a dataset.")
    LAUNCH_LABEL = "Clean corpus"
    CORPUS_STEP = "Input"
    CORPUS_SECTION = "input"

    dry_result: DryRun | None = None
    run_view = None

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 engine: Any = None, parent: QWidget | None = None):
        self.engine_given = engine
        self._dry_command = None
        self._dry_key: str | None = None  # the settings of the result shown
        self._running_key: str | None = None
        self._sample_mode = "first"
        self._sample_seed = 0
        super().__init__(store, tracker, workspace, parent)
        self._dry_timer = QTimer(self)
        self._dry_timer.setSingleShot(True)
        self._dry_timer.setInterval(DRY_RUN_DEBOUNCE_MS)
        self._dry_timer.timeout.connect(self.run_dry_run)
        for form in self.forms.values():
            form.changed.connect(self._settings_changed)
        self.dry_run.sample_spin.valueChanged.connect(self._settings_changed)
        self.dry_run.sample_spin.valueChanged.connect(self._validate_timer.start)
        self.dry_run.rerun_requested.connect(lambda: self.run_dry_run(force=True))
        self.dry_run_shortcut = shortcut("Ctrl+R", self.wizard, lambda: self.run_dry_run(force=True),
                                         "Run the dry run again on a new sample")
        shortcut(QKeySequence.Find, self.dry_run, self.dry_run.focus_search, "Search the dry run's documents")

    # ------------------------------------------------------------------------------- hooks
    def _build_steps(self) -> None:
        self._build_corpus_step(preview_height=150, sizes=[330, 260], offer_datasets=False)
        self._add_sample_buttons()
        self._build_cleaning_steps()
        self._build_dry_run_step()
        self._build_output_step()

    def _step_forms(self, name: str) -> list[SpecForm]:
        if name == "Steps":
            return list(self.cleaning_steps.forms.values())
        return super()._step_forms(name)

    def _entering_step(self, name: str) -> None:
        if name in ("Steps", "Dry run") and self.isVisible():
            self.run_dry_run()

    def _values_set(self) -> None:
        self._sync_checklist()

    def _tracker_slots(self, tracker: Tracker) -> list[tuple[Any, Any]]:
        slots = super()._tracker_slots(tracker)
        if self.run_view is not None:
            slots += [(tracker.run_events, self.run_view.on_events),
                      (tracker.run_state_changed, self.run_view.on_state_changed)]
        return slots

    def _tracker_changed(self) -> None:
        if self.run_view is not None:
            self.run_view.tracker = self.tracker

    def _workspace_changed(self) -> None:
        self._own_engine = None
        if self.run_view is not None:
            self.run_view.workspace = self.workspace

    # ------------------------------------------------------------------------------ values
    def spec_values(self) -> dict:
        data = super().spec_values()
        data["preview"] = {"sample_documents": self.dry_run.sample_spin.value()}
        return data

    def set_spec_data(self, data: dict) -> None:
        sample = (data.get("preview") or {}).get("sample_documents")
        if isinstance(sample, int):
            self.dry_run.sample_spin.setValue(sample)
        super().set_spec_data(data)

    def reset(self) -> None:
        self.dry_run.sample_spin.setValue(self.default_values()["preview"]["sample_documents"])
        super().reset()

    # ------------------------------------------------------------------------------ Input
    def _add_sample_buttons(self) -> None:
        self.sample_button = QPushButton("Random sample")
        self.sample_button.setToolTip("Documents drawn at random from the whole input by the engine (the dry run's "
                                      "sample); press again for others.")
        self.first_button = QPushButton("First documents")
        self.first_button.setToolTip("The first documents of each source, read here without the engine.")
        for button in (self.sample_button, self.first_button):
            button.setCheckable(True)
        self.sample_button.clicked.connect(self.show_random_sample)
        self.first_button.clicked.connect(lambda: self._set_sample_mode("first"))
        self.sample_note = QLabel("")
        self.sample_note.setObjectName("help")
        self.sample_note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.sample_note, 1)
        row.addWidget(self.first_button)
        row.addWidget(self.sample_button)
        self.preview.parentWidget().layout().insertLayout(0, row)
        self._set_sample_mode("first")

    def show_random_sample(self) -> None:
        """Show documents of the dry run's random sample (running it first when needed)."""
        if self._sample_mode == "random" and self.dry_result is not None:
            self._sample_seed += 1  # pressed again: other documents of the same sample
        self._set_sample_mode("random")
        if self.dry_result is None or self._dry_key != self._dry_run_key():
            self.run_dry_run()

    def _set_sample_mode(self, mode: str) -> None:
        self._sample_mode = mode
        self.sample_button.setChecked(mode == "random")
        self.first_button.setChecked(mode == "first")
        self.update_preview()

    def update_preview(self) -> None:
        if self._sample_mode != "random" or not hasattr(self, "sample_note"):
            if hasattr(self, "sample_note"):
                self.sample_note.setText("The first documents of each source.")
            super().update_preview()
            return
        result = self.dry_result
        if result is None or not result.documents:
            self.sample_note.setText("Drawing documents at random through the engine…"
                                     if self.dry_run_running else "No random sample yet.")
            self.preview.setPlainText("")
            return
        documents = random.Random(self._sample_seed).sample(result.documents, min(SAMPLE_SHOWN, len(result.documents)))
        documents.sort(key=lambda d: result.documents.index(d))
        self.sample_note.setText(f"{len(documents)} of {len(result.documents):,} documents drawn at random "
                                 "(press Random sample again for others).")
        parts = []
        for doc in documents:
            text = doc.text if len(doc.text) < 600 else doc.text[:600] + " …"
            parts.append(f"■ {doc.id}\n" + "\n".join("  " + line for line in text.splitlines()) + "\n")
        self.preview.setPlainText("\n".join(parts).rstrip())

    # ------------------------------------------------------------------------------ Steps
    def _build_cleaning_steps(self) -> None:
        page, layout = self._step_page("Steps")
        self.cleaning_steps = CleaningSteps(self.schema)
        for step, form in self.cleaning_steps.forms.items():
            self.forms[f"step:{step}"] = form
        self.cleaning_steps.details_button.clicked.connect(lambda: self.go_to_step(STEPS.index("Dry run")))
        self.step_checklist = self.cleaning_steps.checklist
        self.steps_status = self.cleaning_steps.status_label
        layout.addWidget(self.cleaning_steps, 1)
        self.steps.addWidget(page)

    def step_enabled(self, step: str) -> bool:
        return self.cleaning_steps.enabled(step)

    def set_step_enabled(self, step: str, enabled: bool) -> None:
        """Tick or untick a cleaning step, as a click on its check box does."""
        self.cleaning_steps.set_enabled(step, enabled)

    def _sync_checklist(self) -> None:
        if hasattr(self, "cleaning_steps"):
            timer = getattr(self, "_dry_timer", None)
            pending = self.dry_run_running or (timer is not None and timer.isActive())
            fresh = self.dry_result is not None and self._dry_key == self._dry_run_key()
            self.cleaning_steps.show_effects(self.dry_result if fresh or pending else None, pending=pending)

    # ---------------------------------------------------------------------------- Dry run
    def _build_dry_run_step(self) -> None:
        page, layout = self._step_page("Dry run")
        self.dry_run = CleanPreview()
        self.dry_run_command = QLabel("")
        self.dry_run_command.setObjectName("help")
        self.dry_run_command.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.dry_run_command.setWordWrap(True)  # a long spec path: on two lines rather than cut
        layout.addWidget(self.dry_run, 1)
        layout.addWidget(self.dry_run_command)
        self.steps.addWidget(page)

    def _build_output_step(self) -> None:
        page, layout = self._step_page("Output")
        layout.addWidget(self._form("Output"))
        note = QGroupBox("What the run writes")
        note_label = QLabel("In the run folder: <b>output/dataset/</b> (data-00000.parquet or .jsonl; columns text, "
                            "id, source), <b>output/report.json</b> and <b>report.html</b>, the removed documents "
                            "of each rule in <b>output/removed/</b>, and every document's fate in "
                            "<b>fates.sqlite</b>.")
        note_label.setWordWrap(True)
        QVBoxLayout(note).addWidget(note_label)
        layout.addWidget(note)
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    @property
    def dry_run_running(self) -> bool:
        return self._dry_command is not None

    def preview_key(self) -> str:
        return self._dry_run_key()

    def _dry_run_key(self) -> str:
        """The settings a dry run depends on, as a comparable string."""
        data = self.spec_values()
        for key in _NOT_IN_DRY_RUN:
            data.pop(key, None)
        return json.dumps(data, sort_keys=True, default=str)

    def _settings_changed(self) -> None:
        current = self.STEPS[self.steps.currentIndex()]
        auto = current in ("Steps", "Dry run") or (current == "Input" and self._sample_mode == "random")
        if auto and self.isVisible() and self._dry_run_key() != self._dry_key:
            self._dry_timer.start()
        self._sync_checklist()

    def run_dry_run(self, force: bool = False) -> bool:
        """Start the dry run of the current settings in the background (unless it already shows or
        runs them); returns whether one started."""
        self._dry_timer.stop()
        try:
            spec = self.build_spec()
        except SpecError as e:
            count = len(e.problems)
            self.dry_run.set_idle(f"The dry run waits until the settings are valid: {count} problem"
                                  f"{'s' if count != 1 else ''} to fix (marked ⚠).")
            return False
        key = self._dry_run_key()
        if not force and key in (self._dry_key, self._running_key):
            return False
        if self._dry_command is not None:
            old, self._dry_command = self._dry_command, None
            old.stop()
        path = self.workspace / "specs" / "dry-run" / f"{spec['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_yaml(spec), encoding="utf-8")
        sample = spec["preview"]["sample_documents"]
        command = self.engine().preview(path, sample)
        self._dry_command, self._running_key = command, key
        command.succeeded.connect(lambda result, c=command, k=key: self._dry_run_done(c, k, result))
        command.failed.connect(lambda message, c=command: self._dry_run_error(c, message))
        self.dry_run.set_running(sample)
        self.dry_run_command.setText(f"The same from a terminal:  studio-engine preview {path} --sample {sample}")
        self._sync_checklist()
        if self._sample_mode == "random":
            self.update_preview()
        return True

    def _dry_run_done(self, command: Any, key: str, data: Any) -> None:
        if command is not self._dry_command:
            return  # superseded by a newer dry run
        self._dry_command = self._running_key = None
        if not isinstance(data, dict):
            self._dry_run_error(command, f"the engine answered {type(data).__name__}, not a dry run", own=True)
            return
        self.apply_dry_run(data, key)

    def _dry_run_error(self, command: Any, message: str, own: bool = False) -> None:
        if not own and command is not self._dry_command:
            return
        refused = self._running_key
        self._dry_command = self._running_key = None
        message = self.in_controls(message.replace("studio-engine: ", ""))
        self.dry_result, self._dry_key = None, None  # an earlier corpus's figures must not stand under the error
        self.dry_run.set_error(message)
        self.steps_status.setText("The dry run failed; see Dry run.")
        self._sync_checklist()
        self.preview_refused(message, refused)
        if self._sample_mode == "random":
            self.sample_note.setText("The dry run failed: " + message.splitlines()[0])
        self.dry_run_failed.emit(message)

    def apply_dry_run(self, data: dict, key: str | None = None) -> DryRun:
        """Show a dry-run result (the engine's JSON) for the current settings, or those of `key`."""
        result = self.dry_run.set_result(data)
        self.dry_result = result
        self._dry_key = key if key is not None else self._dry_run_key()
        self.preview_accepted()
        counts = result.counts()
        self.steps_status.setText(
            f"On {result.drawn()}: {counts['removed']:,} removed, "
            f"{counts['modified']:,} modified, {counts['kept']:,} unchanged.")
        self._sync_checklist()
        if self._sample_mode == "random":
            self.update_preview()
        self.dry_run_finished.emit(result)
        return result

    # ------------------------------------------------------------------------------- run
    def ensure_run_view(self):
        if self.run_view is None:
            from studio.pages.data.run import CleanRunView  # pyqtgraph loads here, not at start-up

            self.run_view = CleanRunView(self.store, self.tracker, self.workspace)
            self.run_view.new_button.clicked.connect(self.show_wizard)
            self.run_view.use_dataset.connect(self.use_dataset_in)
            self.stack.addWidget(self.run_view)
        return self.run_view

    def show_run(self, run_id: str) -> None:
        view = self.ensure_run_view()
        view.load(run_id)
        self.stack.setCurrentWidget(view)

