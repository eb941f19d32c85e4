"""The fine-tuning methods as cards: what each trades for memory, and what it would need for this
model (the engine preview's estimate), with a red warning where a run would not fit or needs CUDA.
Choosing a card is choosing `method.name`; arrow keys move between cards, Space or Enter chooses."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QCheckBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget,
)

from studio.models.finetune_results import MethodMemory
from studio.widgets import formatting


@dataclass(frozen=True)
class MethodInfo:
    name: str  # method.name
    title: str
    trade_off: str


METHODS: tuple[MethodInfo, ...] = (
    MethodInfo("full", "Full fine-tuning",
               "Every weight learns: the most capacity and the most memory (weights, gradients and optimizer "
               "state for all of them). Writes a whole model."),
    MethodInfo("lora", "LoRA",
               "Small low-rank adapters beside frozen weights: a fraction of the memory, and an adapter of a "
               "few megabytes that can be merged into the model."),
    MethodInfo("qlora", "QLoRA",
               "LoRA over a 4-bit copy of the base model: the least memory of the adapter methods. Needs a "
               "CUDA GPU."),
    MethodInfo("adalora", "AdaLoRA",
               "LoRA that moves rank to the layers that need it as it trains: LoRA's memory, a little slower."),
    MethodInfo("prefix", "Prefix tuning",
               "Learned key/value vectors in front of every layer: a tiny adapter, weaker at new skills."),
    MethodInfo("prompt", "Prompt tuning",
               "Learned virtual tokens at the input only: the smallest adapter; works best on large models."),
    MethodInfo("ptuning", "P-tuning",
               "Virtual tokens produced by a small encoder: steadier than prompt tuning, still a tiny adapter."),
)
METHOD_TITLES = {m.name: m.title for m in METHODS}
ADAPTER_METHODS = ("lora", "qlora", "adalora")  # those whose adapter can be merged into the model


def memory_text(memory: MethodMemory | None, parameters: int | None) -> str:
    """"≈ 0.42 GiB · 1.2M trainable (3.1%)", or what stands in for it."""
    if memory is None or memory.gb is None:
        return "Memory: estimated once the base model is previewed"
    text = f"≈ {formatting.memory(memory.gb * 2**30)}"
    if memory.trainable is not None:
        text += f"  ·  {formatting.count(memory.trainable)} trainable"
        if parameters:
            share = memory.trainable / parameters
            text += f" ({share:.0%})" if share >= 0.1 else f" ({share:.2%})"
    return text


def warning_text(memory: MethodMemory | None, available_gb: float | None, device: str) -> str:
    """Why this method cannot run here, or "" when it can (as far as the estimate knows)."""
    if memory is None:
        return ""
    if memory.needs_cuda:
        return f"Needs a CUDA GPU (this run: {device})."
    if not memory.fits:
        needed = formatting.memory(memory.gb * 2**30) if memory.gb is not None else "more"
        have = formatting.memory(available_gb * 2**30) if available_gb is not None else "less"
        return f"Will not fit: needs about {needed}, {device} has {have} free."
    return ""


class MethodCard(QFrame):
    """One method: title, trade-off, memory estimate and warning. Click, Space or Enter chooses it."""

    activated = Signal(str)
    step = Signal(int)  # arrow key: move the choice by this many cards

    def __init__(self, info: MethodInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.info = info
        self.setObjectName("methodCard")
        self.setProperty("selected", False)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setCursor(Qt.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.title_label = QLabel(f"<b>{info.title}</b>")
        self.trade_off_label = QLabel(info.trade_off)
        self.trade_off_label.setObjectName("help")
        self.trade_off_label.setWordWrap(True)
        self.memory_label = QLabel("")
        self.memory_label.setWordWrap(True)
        self.warning_label = QLabel("")
        self.warning_label.setObjectName("fieldError")
        self.warning_label.setWordWrap(True)
        self.warning_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 9, 12, 10)
        layout.setSpacing(3)
        head = QHBoxLayout()
        head.addWidget(self.title_label, 1)
        layout.addLayout(head)
        layout.addWidget(self.trade_off_label)
        layout.addStretch(1)
        layout.addWidget(self.memory_label)
        layout.addWidget(self.warning_label)
        self.setToolTip(info.trade_off)

    def set_selected(self, selected: bool) -> None:
        if self.property("selected") != selected:
            self.setProperty("selected", selected)
            self.style().unpolish(self)
            self.style().polish(self)

    @property
    def selected(self) -> bool:
        return bool(self.property("selected"))

    def set_estimate(self, memory: MethodMemory | None, parameters: int | None, available_gb: float | None,
                     device: str) -> None:
        self.memory_label.setText(memory_text(memory, parameters))
        warning = warning_text(memory, available_gb, device)
        self.warning_label.setText(warning)
        self.warning_label.setVisible(bool(warning))
        tip = self.info.trade_off + (f"\n{memory.note}" if memory and memory.note else "")
        self.setToolTip(tip)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() == Qt.LeftButton:
            self.setFocus(Qt.MouseFocusReason)
            self.activated.emit(self.info.name)
            event.accept()
            return
        super().mousePressEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        key = event.key()
        if key in (Qt.Key_Space, Qt.Key_Return, Qt.Key_Enter):
            self.activated.emit(self.info.name)
        elif key in (Qt.Key_Left, Qt.Key_Up):
            self.step.emit(-1 if key == Qt.Key_Left else -MethodCards.COLUMNS)
        elif key in (Qt.Key_Right, Qt.Key_Down):
            self.step.emit(1 if key == Qt.Key_Right else MethodCards.COLUMNS)
        else:
            super().keyPressEvent(event)
            return
        event.accept()


class MethodCards(QWidget):
    """Every method as a card, in a grid. `chosen(name)` fires when the user picks one.

    Public for tests: `cards` (name -> MethodCard), `selected`, `select(name, emit)`,
    `set_estimates(methods, parameters, available_gb, device)` (None clears them), `summary_label`.
    """

    chosen = Signal(str)
    COLUMNS = 2

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.selected = ""
        self.cards: dict[str, MethodCard] = {}
        grid = QGridLayout()
        grid.setSpacing(10)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, info in enumerate(METHODS):
            card = MethodCard(info)
            card.activated.connect(lambda name: self.select(name, emit=True))
            card.step.connect(self._step)
            self.cards[info.name] = card
            row, column = divmod(i, self.COLUMNS)
            grid.addWidget(card, row, column)
        for column in range(self.COLUMNS):
            grid.setColumnStretch(column, 1)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("help")
        self.summary_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.summary_label)
        layout.addLayout(grid)
        self.set_estimates(None)

    def select(self, name: str, emit: bool = False) -> None:
        if name not in self.cards:
            return
        changed = name != self.selected
        self.selected = name
        for key, card in self.cards.items():
            card.set_selected(key == name)
        if emit and changed:
            self.chosen.emit(name)

    def _step(self, delta: int) -> None:
        names = list(self.cards)
        index = names.index(self.selected) if self.selected in names else 0
        target = names[min(max(index + delta, 0), len(names) - 1)]
        self.select(target, emit=True)
        self.cards[target].setFocus(Qt.TabFocusReason)

    def set_estimates(self, methods: dict[str, MethodMemory] | None, parameters: int | None = None,
                      available_gb: float | None = None, device: str = "") -> None:
        """Show the preview's memory estimate on every card (None: no preview yet)."""
        for name, card in self.cards.items():
            card.set_estimate((methods or {}).get(name), parameters, available_gb, device)
        if methods is None:
            self.summary_label.setText("Memory estimates appear once the base model and data are previewed.")
        else:
            free = f", {available_gb:.1f} GiB free" if available_gb is not None else ""
            self.summary_label.setText(f"Estimated training memory on {device}{free}, for this model, batch size and "
                                       "maximum length (good to about a third).")

    def warning(self) -> str:
        """The selected method's warning, or ""."""
        card = self.cards.get(self.selected)
        return card.warning_label.text() if card is not None else ""


class TargetModules(QWidget):
    """LoRA's `target_modules` as a checklist of the model's linear layers (from the preview).

    `value()` is None while the checked layers are the architecture's defaults (the spec's "empty =
    every attention and MLP projection"), else the checked names. Layers named by the spec that the
    model does not list stay shown, so nothing is dropped silently. `changed` fires on a click only.
    """

    changed = Signal()
    COLUMNS = 4

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.boxes: dict[str, QCheckBox] = {}
        self.defaults: tuple[str, ...] = ()
        self._value: list[str] | None = None
        self.grid = QGridLayout()
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(14)
        self.grid.setVerticalSpacing(4)
        self.note = QLabel("")
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self.grid)
        layout.addWidget(self.note)
        self._update_note()

    def set_modules(self, modules: tuple[str, ...] | list[str], defaults: tuple[str, ...] | list[str]) -> None:
        """Offer `modules` (the model's linear layer names), `defaults` checked when the spec names none."""
        self.defaults = tuple(defaults)
        names = list(modules) + [m for m in (self._value or []) if m not in modules]
        if names == list(self.boxes):
            self.set_value(self._value)
            return
        for box in self.boxes.values():
            self.grid.removeWidget(box)
            box.deleteLater()
        self.boxes = {}
        for i, name in enumerate(names):
            box = QCheckBox(name)
            box.toggled.connect(self._toggled)
            self.boxes[name] = box
            self.grid.addWidget(box, *divmod(i, self.COLUMNS))
        self.set_value(self._value)

    def set_value(self, value: list[str] | None) -> None:
        """Check `value` (None: the defaults), without firing `changed`."""
        self._value = list(value) if value else None
        for name in self._value or []:
            if name not in self.boxes and self.boxes:
                box = QCheckBox(name)
                box.toggled.connect(self._toggled)
                self.boxes[name] = box
                self.grid.addWidget(box, *divmod(len(self.boxes) - 1, self.COLUMNS))
        checked = set(self._value or self.defaults)
        for name, box in self.boxes.items():
            with QSignalBlocker(box):
                box.setChecked(name in checked)
        self._update_note()

    def value(self) -> list[str] | None:
        if not self.boxes:
            return self._value
        checked = [name for name, box in self.boxes.items() if box.isChecked()]
        if not checked or set(checked) == set(self.defaults):
            return None
        return checked

    def _toggled(self, checked: bool) -> None:
        if not checked and not any(box.isChecked() for box in self.boxes.values()):
            box = self.sender()
            if isinstance(box, QCheckBox):  # the last one: adapters need at least one layer
                with QSignalBlocker(box):
                    box.setChecked(True)
                return
        self._value = self.value()
        self._update_note()
        self.changed.emit()

    def _update_note(self) -> None:
        if not self.boxes:
            named = f"Named in the spec: {', '.join(self._value)}. " if self._value else ""
            self.note.setText(named + "The model's linear layers are listed here once it is previewed; left empty, "
                              "every attention and MLP projection gets an adapter.")
            return
        checked = [name for name, box in self.boxes.items() if box.isChecked()]
        if self.value() is None:
            self.note.setText(f"All {len(checked)} attention and MLP projections get adapters (the default for "
                              "this architecture). Fewer layers: fewer trainable parameters, less memory.")
        else:
            self.note.setText(f"{len(checked)} of {len(self.boxes)} layer kinds get adapters.")
