"""Saved playground sessions (the bar that opens, saves and deletes them) and "Send to labeling": two
answers to the same prompt become a pair item of a labeling queue (the LabelStore in store.db)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QPushButton,
    QRadioButton, QWidget,
)

from engine.labeling.store import LabelStore, LabelStoreError
from studio.models.playground_session import PICK_TWO, CellOutput, Session

UNSAVED = "Unsaved session"


class SessionBar(QWidget):
    """A combo of saved sessions with New, Save and Delete. Signals: `open_requested(name)`,
    `new_requested()`, `save_requested(name)` (the name to save under), `delete_requested(name)`."""

    open_requested = Signal(str)
    new_requested = Signal()
    save_requested = Signal(str)
    delete_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(16)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setToolTip("Saved sessions: variants, models and their sampling, variables and answers")
        self.combo.activated.connect(self._activated)
        self.new_button = QPushButton("New")
        self.new_button.clicked.connect(self.new_requested)
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("Save this session (Ctrl+S)")
        self.save_button.clicked.connect(lambda: self.ask_save(self.current or None))
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.current and self.delete_requested.emit(self.current))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(QLabel("Session"))
        layout.addWidget(self.combo)
        for button in (self.new_button, self.save_button, self.delete_button):
            layout.addWidget(button)
        self.current = ""

    def set_sessions(self, names: list[str], current: str) -> None:
        self.current = current
        self.combo.blockSignals(True)
        self.combo.clear()
        if not current:
            self.combo.addItem(UNSAVED, "")
        for name in names:
            self.combo.addItem(name, name)
        self.combo.setCurrentIndex(max(0, self.combo.findData(current)))
        self.combo.blockSignals(False)
        self.delete_button.setEnabled(bool(current))

    def ask_save(self, name: str | None) -> None:
        if not name:
            name, ok = QInputDialog.getText(self, "Save the session", "Name:")
            if not ok or not name.strip():
                return
        self.save_requested.emit(name.strip())

    def _activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name and name != self.current:
            self.open_requested.emit(name)


def pair_item(session: Session, keys: list[str]) -> dict:
    """The labeling item of two answers to the same prompt; ValueError with a sentence otherwise."""
    if len(keys) != 2:
        raise ValueError(PICK_TWO)
    outputs = [session.outputs.get(k) or CellOutput() for k in keys]
    if any(o.status not in ("done", "cancelled") or not o.text.strip() for o in outputs):
        raise ValueError("Both picked answers must be complete: run them first (an empty or failed answer "
                         "cannot be labeled).")
    if (outputs[0].prompt, outputs[0].system) != (outputs[1].prompt, outputs[1].system):
        raise ValueError("The two picked answers answer different prompts; pick two answers in the same row "
                         "(the same variant) so annotators compare like with like.")
    candidates = []
    for key, output in zip(keys, outputs):
        _, variant_id, column_id = key.split("/")
        model, variant = session.model(column_id), session.variant(variant_id)
        candidates.append({"text": output.text, "model": model.label if model else "", "seed": output.seed,
                           "meta": {"variant": variant.name if variant else "", "finish": output.finish,
                                    "sampling": model.sampling.request() if model else {},
                                    "chat_template": model.chat_template if model else "auto"}})
    meta = {"source": "playground", "session": session.name}
    if outputs[0].system:
        meta["system"] = outputs[0].system
    return {"prompt": outputs[0].prompt, "candidates": candidates, "meta": meta}


def send_pair(labels: LabelStore, queue: str, item: dict, create: bool = False) -> str:
    """Add `item` to `queue` (created first when `create`); a sentence saying what happened."""
    if create:
        labels.create_queue(queue, mode="pair")
    if labels.queue(queue).mode != "pair":
        raise LabelStoreError(f"The queue {queue!r} ranks several answers; pick a pair queue or create one.")
    result = labels.add_items(queue, [item])
    if result.duplicates:
        return f"That pair is already in the queue “{queue}”."
    return f"Added the pair to the labeling queue “{queue}” (Label page)."


class SendToLabelingDialog(QDialog):
    """Pick a pair queue, or name a new one. `choice()` → (queue name, create)."""

    def __init__(self, labels: LabelStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Send to labeling")
        queues = [q.name for q in labels.queues() if q.mode == "pair"]
        self.existing = QRadioButton("Add to the queue")
        self.queue = QComboBox()
        self.queue.addItems(queues)
        self.new = QRadioButton("Create the queue")
        self.name = QLineEdit("playground-pairs")
        (self.existing if queues else self.new).setChecked(True)
        self.existing.setEnabled(bool(queues))
        form = QFormLayout(self)
        form.addRow(self.existing, self.queue)
        form.addRow(self.new, self.name)
        note = QLabel("Annotators see the prompt and the two answers side by side, without the models' names.")
        note.setObjectName("help")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def choice(self) -> tuple[str, bool]:
        if self.new.isChecked():
            return self.name.text().strip(), True
        return self.queue.currentText(), False
