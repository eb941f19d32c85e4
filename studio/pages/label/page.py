"""The Label page: preference queues, the keyboard-first labeling view, and what feeds and leaves it.

A bar on top picks the queue and the annotator's name and holds the queue's actions (new queue,
import a preference file, export, share the queue in a browser). Below, tabs: Label (the view),
Overview (progress, per-annotator counts, agreement), Conflicts (items annotators disagree on),
Arena (the models whose answers the queue compares, rated from the votes) and Generate (the
`generate` job's wizard; its candidates are imported into the queue when it ends).

Labels live in the label store inside the studio's `store.db`; imports and exports run through the
engine's `labels` command so they never block the window and behave exactly as from a terminal.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QMessageBox, QPlainTextEdit, QPushButton, QSpinBox, QTabWidget, QVBoxLayout, QWidget,
)

from engine.labeling.store import LabelStore, LabelStoreError, Progress, Queue
from studio.pages.label.labeling_view import LabelingView
from studio.widgets.shortcuts import shortcut

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

ANNOTATOR_SETTING = "label.annotator"
QUEUE_SETTING = "label.queue"
EXPORT_FORMATS = (("trl", "TRL preference JSONL (prompt / chosen / rejected)"),
                  ("trl-chat", "TRL conversational JSONL (messages)"),
                  ("hh", "HH-RLHF transcripts (Human: … Assistant: …)"))
IMPORT_FORMATS = (("auto", "Detect from the file"), *EXPORT_FORMATS,
                  ("llamafactory", "LLaMA-Factory preference JSON"))


class QueueDialog(QDialog):
    """Create a queue, or edit the guidelines and overlap of an existing one."""

    def __init__(self, queue: Queue | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Edit queue" if queue else "New labeling queue")
        self.name = QLineEdit(queue.name if queue else "")
        self.name.setPlaceholderText("e.g. reverse-words-v1")
        self.name.setEnabled(queue is None)
        self.mode = QComboBox()
        self.mode.addItem("Pairs: which of two answers is better", "pair")
        self.mode.addItem("Ranking: order K answers best first", "rank")
        self.mode.addItem("Single answers: good or bad, one at a time (for KTO)", "single")
        if queue:
            self.mode.setCurrentIndex(max(0, self.mode.findData(queue.mode)))
            self.mode.setEnabled(False)
        self.guidelines = QPlainTextEdit(queue.guidelines if queue else "")
        self.guidelines.setPlaceholderText("What makes an answer better? (Markdown; annotators open it with G)")
        self.guidelines.setTabChangesFocus(True)  # Tab goes on to the next field, as in every other field
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0, 100)
        self.overlap.setSuffix(" % of items")
        self.overlap.setValue((queue.overlap if queue else 0.0) * 100)
        self.overlap_annotators = QSpinBox()
        self.overlap_annotators.setRange(2, 20)
        self.overlap_annotators.setValue(queue.overlap_annotators if queue else 2)
        self.overlap_annotators.setSuffix(" annotators each")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Mode", self.mode)
        form.addRow("Guidelines", self.guidelines)
        form.addRow("Overlap", self.overlap)
        form.addRow("", self.overlap_annotators)
        help_label = QLabel("Overlap items are labeled by several people so the Overview can measure their "
                            "agreement; the other items by one person each.")
        help_label.setObjectName("help")
        help_label.setWordWrap(True)
        form.addRow("", help_label)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(520, 420)

    def values(self) -> dict:
        return {"name": self.name.text().strip(), "mode": self.mode.currentData(),
                "guidelines": self.guidelines.toPlainText(), "overlap": self.overlap.value() / 100,
                "overlap_annotators": self.overlap_annotators.value()}


class LabelPage(QWidget):
    """Queues, labeling, overview, conflicts and candidate generation for preference data."""

    queue_changed = Signal(str)

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 engine: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.tracker = tracker
        self.workspace = Path(workspace or ".")
        self.engine = engine or _local_engine(tracker, self.workspace, self)
        self.labels = LabelStore(self.workspace / "store.db")
        self.server = None  # the label-server process when the queue is shared
        self._command = None
        self._build()
        self.refresh_queues()

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        title = QLabel("Label preferences")
        title.setObjectName("pageTitle")
        subtitle = QLabel("Pick the better answer, one key per verdict. Every label is saved the moment you give it.")
        subtitle.setObjectName("subtitle")
        self.queue_box = QComboBox()
        self.queue_box.setMinimumWidth(200)
        self.queue_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.queue_box.currentIndexChanged.connect(self._queue_chosen)
        self.annotator = QLineEdit(self._setting(ANNOTATOR_SETTING, _default_annotator()))
        self.annotator.setFixedWidth(130)
        self.annotator.setToolTip("Your name on the labels you give")
        self.annotator.editingFinished.connect(self._annotator_changed)
        self.new_button = QPushButton("New queue…")
        self.new_button.clicked.connect(self.new_queue)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setToolTip("The queue's guidelines and overlap")
        self.edit_button.clicked.connect(self.edit_queue)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add a preference file (TRL, HH-RLHF, LLaMA-Factory) to this queue")
        self.import_button.clicked.connect(self.import_file)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_file)
        self.checker_button = QPushButton("Let the task's checker label…")
        self.checker_button.setToolTip("Let a built-in task's checker label this queue's pairs (candidates of "
                                       "builtin:tasks prompts): the right answer beats a wrong one")
        self.checker_button.clicked.connect(lambda: self.label_by_checker())
        self.share_button = QPushButton("Share…")
        self.share_button.setToolTip("Serve this queue as a web page so others label in their browser")
        self.share_button.clicked.connect(self.share)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Queue"))
        bar.addWidget(self.queue_box)
        bar.addSpacing(4)
        bar.addWidget(self.new_button)
        bar.addWidget(self.edit_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Annotator"))
        bar.addWidget(self.annotator)
        bar.addStretch(1)
        actions = QWidget()
        actions_layout = QHBoxLayout(actions)
        actions_layout.setContentsMargins(0, 0, 0, 4)
        for button in (self.import_button, self.export_button, self.share_button):
            actions_layout.addWidget(button)
        self.message = QLabel()
        self.message.setObjectName("help")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.message.setOpenExternalLinks(True)
        self.message.hide()

        self.view = LabelingView()
        self.view.labeled.connect(lambda _label: self._labels_changed())
        self.view.undone.connect(lambda _task: self._labels_changed())
        self.tabs = QTabWidget()
        self.tabs.addTab(self.view, "Label")
        self.tabs.setCornerWidget(actions, Qt.TopRightCorner)
        self._build_extra_tabs()
        self.tabs.currentChanged.connect(self._tab_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 14)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(self.tabs, 1)
        shortcut("Ctrl+L", self, self.start_labeling, "Back to labeling the chosen queue")

    def _build_extra_tabs(self) -> None:
        """Overview, Conflicts and Generate: built by their own modules."""
        from studio.pages.label.overview import ConflictsView, OverviewView

        self.overview = OverviewView()
        self.conflicts = ConflictsView()
        self.tabs.addTab(self.overview, "Overview")
        self.overview.annotator_actions.addWidget(self.checker_button)
        self.overview.annotator_actions.addStretch(1)
        self.tabs.addTab(self.conflicts, "Conflicts")
        from studio.pages.label.arena import ArenaView

        self.arena = ArenaView()
        self.arena.new_arena.connect(self.new_arena)
        self.tabs.addTab(self.arena, "Arena")
        from studio.pages.label.generate import GenerateTab

        self.generate = GenerateTab(self.store, self.tracker, self.workspace, engine=self.engine)
        self.generate.candidates_ready.connect(self.import_batch)
        self.tabs.addTab(self.generate, "Generate candidates")

    # ------------------------------------------------------------------------------ state
    def say(self, text: str) -> None:
        """A line under the bar for results and errors (hidden when there is nothing to say)."""
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _setting(self, key: str, default: Any) -> Any:
        return self.store.get_setting(key, default) if self.store is not None else default

    def _set_setting(self, key: str, value: Any) -> None:
        if self.store is not None:
            self.store.set_setting(key, value)

    @property
    def queue(self) -> Queue | None:
        name = self.queue_box.currentData()
        if not name:
            return None
        try:
            return self.labels.queue(name)
        except LabelStoreError:
            return None

    def refresh_queues(self, select: str | None = None) -> None:
        select = select or self.queue_box.currentData() or self._setting(QUEUE_SETTING, None)
        self.queue_box.blockSignals(True)
        self.queue_box.clear()
        for queue in self.labels.queues():
            self.queue_box.addItem(queue_caption(queue.name, self.labels.progress(queue)), queue.name)
        index = self.queue_box.findData(select) if select else -1
        self.queue_box.setCurrentIndex(index if index >= 0 else self.queue_box.count() - 1)
        self.queue_box.blockSignals(False)
        self._queue_chosen()

    def _queue_chosen(self) -> None:
        queue = self.queue
        for button in (self.edit_button, self.import_button, self.checker_button, self.export_button,
                       self.share_button):
            button.setEnabled(queue is not None)
        if queue is None:
            self.view.show_task(None)
            self.say("No labeling queue yet. Create one with “New queue…”, then import a preference "
                                 "file or generate candidate answers from your models.")
            self._refresh_tabs()
            return
        self._set_setting(QUEUE_SETTING, queue.name)
        self.say("")
        self.start_labeling()
        self._refresh_tabs()
        self.queue_changed.emit(queue.name)

    def _annotator_changed(self) -> None:
        name = self.annotator.text().strip()
        if not name:
            self.annotator.setText(self._setting(ANNOTATOR_SETTING, _default_annotator()))
            return
        self._set_setting(ANNOTATOR_SETTING, name)
        if self.queue is not None and name != self.view.annotator:
            self.start_labeling()

    def start_labeling(self) -> None:
        queue = self.queue
        if queue is None:
            return
        if self.view.task is not None and self.view.annotator and self.view.annotator != self.annotator.text().strip():
            self.labels.release(self.view.task)
        self.view.open_queue(self.labels, queue, self.annotator.text().strip() or _default_annotator())
        self.tabs.setCurrentWidget(self.view)
        self.view.setFocus()

    def _labels_changed(self) -> None:
        queue = self.queue
        if queue is not None:
            self.queue_box.setItemText(self.queue_box.currentIndex(), queue_caption(queue.name, self.labels.progress(queue)))
            if self.tabs.currentWidget() is not self.view:
                self._refresh_tabs()

    def _tab_changed(self) -> None:
        self._refresh_tabs()
        if self.tabs.currentWidget() is self.view:
            self.view.setFocus()

    def _refresh_tabs(self) -> None:
        queue = self.queue
        self.overview.show_queue(self.labels, queue)
        self.conflicts.show_queue(self.labels, queue)
        if self.tabs.currentWidget() is self.arena:  # its bootstrap runs only where it is seen
            self.arena.show_queue(self.labels, queue)
        self.generate.set_queue(queue.name if queue else None)

    # ------------------------------------------------------------------------------ queues
    def new_queue(self) -> Queue | None:
        dialog = QueueDialog(parent=self)
        if dialog.exec() != QDialog.Accepted:
            return None
        return self.create_queue(**dialog.values())

    def create_queue(self, **values: Any) -> Queue | None:
        try:
            queue = self.labels.create_queue(values.pop("name"), **values)
        except LabelStoreError as e:
            self.say(str(e))
            return None
        self.refresh_queues(select=queue.name)
        return queue

    def edit_queue(self) -> None:
        queue = self.queue
        if queue is None:
            return
        dialog = QueueDialog(queue, parent=self)
        if dialog.exec() != QDialog.Accepted:
            return
        values = dialog.values()
        try:
            self.labels.set_guidelines(queue, values["guidelines"])
            self.labels.set_overlap(queue, values["overlap"], values["overlap_annotators"])
        except LabelStoreError as e:
            self.say(str(e))
            return
        self.refresh_queues(select=queue.name)

    def new_arena(self) -> None:
        """The Generate tab set up for an arena: one answer per model per prompt (each with its recorded
        seed), into a new queue named after the run; the models are for the user to pick."""
        self.queue_box.setCurrentIndex(-1)
        self.generate.show_wizard()
        self.generate.go_to_step(0)
        self.generate.set_spec_data({"name": "arena", "candidates_per_model": 1})
        self.generate.set_queue(None)
        self.tabs.setCurrentWidget(self.generate)
        self.say("New arena: add two or more models on the Models step (say, before and after fine-tuning), pick "
                 "the prompts, and Generate. Each model answers each prompt once; the answers become blind pairs "
                 "in a new queue named after the run, and the Arena tab rates the models from your votes.")

    # ------------------------------------------------------------------------------ import / export
    def import_file(self, path: str | None = None, fmt: str = "auto", unlabeled: bool | None = None) -> None:
        queue = self.queue
        if queue is None:
            return
        if path is None:
            single = queue.mode == "single"
            title = "Import judged answers" if single else "Import preferences"
            path, _ = QFileDialog.getOpenFileName(
                self, title, str(Path.home()),
                ("Judged answers: TRL unpaired, LLaMA-Factory kto_tag (*.jsonl *.json)" if single else
                 "Preference pairs: TRL, TRL chat, HH, LLaMA-Factory ranking (*.jsonl *.json)") + ";;All files (*)")
            if not path:
                return
            question = ("Keep the file's good/bad verdicts as labels (so the answers export again as they are)?\n\n"
                        "No: import only the answers, to judge them here." if single else
                        "Keep the file's choices as labels (so the pairs export again as they are)?\n\n"
                        "No: import only the pairs, to label them here.")
            answer = QMessageBox.question(self, title, question, QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel)
            if answer == QMessageBox.Cancel:
                return
            unlabeled = answer == QMessageBox.No
        args = ["import", str(path), "--queue", queue.name, "--format", fmt] + (["--unlabeled"] if unlabeled else [])
        self._labels_command(args, f"import {Path(path).name}", self._imported)

    def import_batch(self, run_or_file: str) -> None:
        """Import a generate run's candidates into the current queue (a new one named after the run if none)."""
        queue = self.queue
        args = ["import-batch", run_or_file]
        args += ["--queue", queue.name] if queue else ["--queue", Path(run_or_file).name, "--create"]
        self._labels_command(args, f"import the candidates of {run_or_file}", self._imported)

    def label_by_checker(self, confirm: bool = True) -> None:
        """`labels auto-label`: the task checker labels every pair whose two answers it judged. Its labels
        are of kind "checker", never yours: exports can leave them out (`--kind human`)."""
        queue = self.queue
        if queue is None:
            return
        if confirm and QMessageBox.question(
                self, "Label by checker",
                f"Let the task's checker label the pairs of queue '{queue.name}'?\n\n"
                "It labels pairs of answers to built-in task prompts (Generate with prompts from builtin:tasks): "
                "the right answer beats a wrong one; two right answers tie; two wrong ones are both bad. Its labels "
                "are marked as the checker's, not as a person's, and items it labeled are not offered to "
                "it again.") != QMessageBox.Yes:
            return
        self._labels_command(["auto-label", "--queue", queue.name], f"label {queue.name} by checker", self._imported)

    def export_file(self, path: str | None = None, fmt: str | None = None) -> None:
        queue = self.queue
        if queue is None:
            return
        if path is None:
            filters = ";;".join(f"{label} (*.jsonl)" for _, label in EXPORT_FORMATS)
            path, chosen = QFileDialog.getSaveFileName(self, "Export preferences",
                                                       str(Path.home() / f"{queue.name}.jsonl"), filters)
            if not path:
                return
            fmt = next((key for key, label in EXPORT_FORMATS if chosen.startswith(label)), "trl")
        args = ["export", "--queue", queue.name, "--format", fmt or "trl", "--out", str(path)]
        self._labels_command(args, f"export {queue.name}", self._exported)

    def _labels_command(self, args: list[str], action: str, done) -> None:
        if self.engine is None:
            self.say("No engine is configured, so files cannot be imported or exported here.")
            return
        self.say(f"Working: {action}…")
        command = self.engine.labels(args + ["--store", str(self.labels.path)], action)
        command.succeeded.connect(done)
        command.failed.connect(self.message.setText)
        self._command = command

    def _imported(self, result: dict) -> None:
        self.refresh_queues(select=result.get("queue"))
        self.say(result.get("message") or "Imported.")

    def _exported(self, result: dict) -> None:
        self.say(result.get("message") or f"Exported to {result.get('path')}.")

    # ------------------------------------------------------------------------------ web page
    def share(self) -> None:
        from studio.pages.label.share import ShareDialog

        queue = self.queue
        if queue is None or self.engine is None:
            return
        dialog = ShareDialog(self.engine, self.labels.path, queue.name, self.server, parent=self)
        dialog.exec()
        self.server = dialog.server

    def shutdown(self) -> None:
        """Stop the web page (the window closes) and give the item on screen back to the queue."""
        if self.server is not None:
            self.server.stop()
        if self.view.task is not None:
            self.labels.release(self.view.task)


def _local_engine(tracker: Tracker | None, workspace: Path, parent: QWidget) -> Any:
    if tracker is not None and tracker.engines:
        return tracker.engines[tracker.default_engine]
    from studio.client.engine import LocalEngine

    return LocalEngine(workspace=workspace, parent=parent)


def _default_annotator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def queue_caption(name: str, progress: Progress) -> str:
    """A queue as the queue list shows it: its done items and its labels, which move with every label
    (an overlap item is done only when its second annotator has labeled it)."""
    labels = progress.labels - progress.skipped
    return f"{name}  ({progress.done}/{progress.items} done, {labels:,} label{'s' if labels != 1 else ''})"
