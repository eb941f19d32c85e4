"""The playground grid: a column per model (its name, its own sampling settings), a row per prompt
variant, and in each cell that model's answer to that variant's prompt for the chosen table row."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QScrollArea, QSpinBox, QToolButton,
    QVBoxLayout, QWidget,
)

from studio.pages.playground.cell import AnswerCell
from studio.models.playground_session import LAYOUTS, ModelColumn, Sampling, Session, Variant
from studio.widgets.elided_label import ElidedLabel

# Three models side by side on a laptop's screen (with the jobs dock open); more scroll sideways.
COLUMN_WIDTH = 240
COLUMNS_THAT_FIT = 3
LAYOUT_TIPS = {"auto": "its own chat template when it has one, else the text as is",
               "model": "its own chat template (an error without one)", "chatml": "the ChatML template",
               "llama3": "the Llama 3 template",
               "plain": "“User: … / Assistant:” lines", "none": "the text as is, for base models that continue text"}


class SamplingEditor(QWidget):
    """A column's sampling: temperature, top-p, top-k, max new tokens, repetition penalty, seed,
    and how prompts are laid out (the chat template). Emits `changed` on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.temperature = self._double(0, 10, 0.05, "0 = greedy: the likeliest token every time")
        self.top_p = self._double(0.01, 1, 0.05, "Nucleus sampling; 1 = all tokens")
        self.top_k = self._int(0, 1_000_000, "0 = no limit")
        self.max_new_tokens = self._int(1, 32768, "Most tokens in the answer")
        self.repetition_penalty = self._double(0.5, 5, 0.05, "1 = off")
        self.seed = self._int(-1, 2**31 - 1, "The same seed, settings and prompt give the same answer")
        self.seed.setSpecialValueText("random")
        self.layout_choice = QComboBox()
        for name in LAYOUTS:
            self.layout_choice.addItem(name, name)
            self.layout_choice.setItemData(self.layout_choice.count() - 1, LAYOUT_TIPS[name], Qt.ToolTipRole)
        self.layout_choice.setToolTip("How the prompt reaches the model (chat template)")
        self.layout_choice.currentIndexChanged.connect(lambda _: self.changed.emit())
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 4, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        pairs = (("Temp.", self.temperature), ("Top-p", self.top_p), ("Top-k", self.top_k),
                 ("Max new", self.max_new_tokens), ("Rep. pen.", self.repetition_penalty), ("Seed", self.seed))
        for i, (caption, box) in enumerate(pairs):
            label = QLabel(caption)
            label.setToolTip(box.toolTip())
            grid.addWidget(label, i // 2, (i % 2) * 2)
            grid.addWidget(box, i // 2, (i % 2) * 2 + 1)
        grid.addWidget(QLabel("Template"), 3, 0)
        grid.addWidget(self.layout_choice, 3, 1, 1, 3)

    def _double(self, low: float, high: float, step: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setDecimals(2)
        box.setToolTip(tip)
        box.valueChanged.connect(lambda _: self.changed.emit())
        return box

    def _int(self, low: int, high: int, tip: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setToolTip(tip)
        box.valueChanged.connect(lambda _: self.changed.emit())
        return box

    def set_values(self, sampling: Sampling, layout: str) -> None:
        boxes = (self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.repetition_penalty, self.seed,
                 self.layout_choice)
        for box in boxes:
            box.blockSignals(True)
        self.temperature.setValue(sampling.temperature)
        self.top_p.setValue(sampling.top_p)
        self.top_k.setValue(sampling.top_k)
        self.max_new_tokens.setValue(sampling.max_new_tokens)
        self.repetition_penalty.setValue(sampling.repetition_penalty)
        self.seed.setValue(-1 if sampling.seed is None else sampling.seed)
        self.layout_choice.setCurrentIndex(max(0, self.layout_choice.findData(layout)))
        for box in boxes:
            box.blockSignals(False)

    def sampling(self) -> Sampling:
        return Sampling(round(self.temperature.value(), 4), round(self.top_p.value(), 4), self.top_k.value(),
                        self.max_new_tokens.value(), round(self.repetition_penalty.value(), 4),
                        None if self.seed.value() < 0 else self.seed.value())

    def layout_name(self) -> str:
        return self.layout_choice.currentData()


class ModelHeader(QFrame):
    """A model column's head: its name and source, a remove button, and its sampling settings
    (a one-line summary; "Sampling" unfolds the editor)."""

    removed = Signal(str)
    changed = Signal(str)

    def __init__(self, column: ModelColumn, workspace: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.column = column
        self.setObjectName("methodCard")
        self.title = ElidedLabel(column.label)
        self.title.setStyleSheet("font-weight: 600;")
        self.source = _shown(column.path, workspace) + (f" + {_shown(column.adapter, workspace)}" if column.adapter
                                                         else "")
        self.title.setToolTip(f"{column.label}\n{self.source}")
        remove = QToolButton()
        remove.setText("✕")
        remove.setToolTip("Remove this model from the grid")
        remove.clicked.connect(lambda: self.removed.emit(column.id))
        self.toggle = QToolButton()
        self.toggle.setText("Sampling ▸")
        self.toggle.setCheckable(True)
        self.toggle.setToolTip("This model's own sampling settings")
        self.toggle.toggled.connect(self.unfold)
        self.summary = ElidedLabel(column.sampling.summary(short=True))
        self.summary.setObjectName("help")
        self.summary.setToolTip(column.sampling.summary())
        self.editor = SamplingEditor()
        self.editor.set_values(column.sampling, column.chat_template)
        self.editor.changed.connect(self._edited)
        self.editor.hide()
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.title, 1)
        top.addWidget(self.toggle)
        top.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 6, 4)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.editor)

    def unfold(self, on: bool = True) -> None:
        self.toggle.blockSignals(True)
        self.toggle.setChecked(on)
        self.toggle.blockSignals(False)
        self.toggle.setText("Sampling ▾" if on else "Sampling ▸")
        self.editor.setVisible(on)

    def _edited(self) -> None:
        self.column.sampling = self.editor.sampling()
        self.column.chat_template = self.editor.layout_name()
        self.summary.setText(self.column.sampling.summary(short=True))
        self.summary.setToolTip(self.column.sampling.summary())
        self.changed.emit(self.column.id)


def _shown(path: str, workspace: Path | None) -> str:
    """A model's path as the header shows it: relative to the workspace when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(workspace).resolve())) if workspace else path
    except (ValueError, OSError):
        return path


class AnswerGrid(QScrollArea):
    """The grid of cells. `rebuild(session)` lays it out again (models or variants changed);
    `refresh(session)` redraws every cell from the session's outputs (another row chosen).

    Signals: `stop_requested(key)`, `prompt_requested(key)`, `picks_changed()`, `model_removed(id)`,
    `model_changed(id)`. Public: `cells` (by key), `headers` (by column id), `row_labels` (by variant id),
    `picks` (picked cell keys, oldest first; at most two)."""

    stop_requested = Signal(str)
    prompt_requested = Signal(str)
    picks_changed = Signal()
    model_removed = Signal(str)
    model_changed = Signal(str)

    def __init__(self, workspace: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.cells: dict[str, AnswerCell] = {}
        self.headers: dict[str, ModelHeader] = {}
        self.row_labels: dict[str, QLabel] = {}
        self.picks: list[str] = []
        self._body: QWidget | None = None

    def rebuild(self, session: Session) -> None:
        body = QWidget()
        body.setObjectName("scrollBody")
        grid = QGridLayout(body)
        grid.setContentsMargins(0, 0, 4, 0)
        grid.setSpacing(6)
        self.cells, self.headers, self.row_labels = {}, {}, {}
        for c, column in enumerate(session.models):
            header = ModelHeader(column, self.workspace)
            header.setMinimumWidth(COLUMN_WIDTH - 40)
            header.removed.connect(self.model_removed)
            header.changed.connect(self.model_changed)
            self.headers[column.id] = header
            grid.addWidget(header, 0, c + 1)
            grid.setColumnStretch(c + 1, 1)
        for r, variant in enumerate(session.variants):
            label = QLabel()
            label.setWordWrap(True)
            label.setFixedWidth(92)
            label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
            self.row_labels[variant.id] = label
            self.set_row_label(variant)
            grid.addWidget(label, r + 1, 0, Qt.AlignTop)
            grid.setRowStretch(r + 1, 1)
            for c, column in enumerate(session.models):
                key = session.cell_key(variant, column)
                cell = AnswerCell(key)
                cell.stop_requested.connect(self.stop_requested)
                cell.prompt_requested.connect(self.prompt_requested)
                cell.picked.connect(self._picked)
                self.cells[key] = cell
                grid.addWidget(cell, r + 1, c + 1)
        self.picks = [k for k in self.picks if k in self.cells]
        self.setProperty("scrollsSideways", len(session.models) > COLUMNS_THAT_FIT)  # asked for: many models
        self.setWidget(body)  # the old body is deleted with its widgets
        self._body = body
        self.refresh(session)

    def set_row_label(self, variant: Variant) -> None:
        label = self.row_labels.get(variant.id)
        if label is not None:
            preset = f"<br><span style='font-size:9pt'>{variant.preset}</span>" if variant.preset != variant.name else ""
            label.setText(f"<b>{html.escape(variant.name)}</b>{preset}")

    def refresh(self, session: Session) -> None:
        """Every cell drawn again from the outputs of the session's current row."""
        keys = {session.cell_key(v, m): (v, m) for v in session.variants for m in session.models}
        if set(keys) != set(self.cells):
            # The row changed: the cells are the same widgets under the new row's keys.
            self.cells = {new: self.cells[old] for new, old in zip(keys, list(self.cells))}
            for key, cell in self.cells.items():
                cell.key = key
            self.picks = []
            self.picks_changed.emit()
        for key, cell in self.cells.items():
            cell.show_output(session.outputs.get(key), session.check(key))
            cell.set_picked(key in self.picks)

    def _picked(self, key: str, on: bool) -> None:
        if on and key not in self.picks:
            self.picks.append(key)
            while len(self.picks) > 2:  # the oldest pick makes room
                dropped = self.picks.pop(0)
                if dropped in self.cells:
                    self.cells[dropped].set_picked(False)
        elif not on and key in self.picks:
            self.picks.remove(key)
        self.picks_changed.emit()

    def pick(self, *keys: str) -> None:
        """Pick these cells (and only these)."""
        for key in self.picks:
            if key in self.cells:
                self.cells[key].set_picked(False)
        self.picks = []
        for key in keys:
            self.cells[key].set_picked(True)
            self._picked(key, True)
