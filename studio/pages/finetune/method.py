"""The Method step of the fine-tuning wizard: the method cards with their memory estimates, the
chosen method's warning and what it writes, and its settings — only the groups that method uses,
LoRA's target modules as a checklist of the model's linear layers."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.models.finetune_results import FinetunePreview
from studio.models.learning_rate import LearningRate, suggested
from studio.widgets.field_editors import FieldEditor
from studio.pages.finetune.method_cards import ADAPTER_METHODS, METHOD_TITLES, MethodCards, TargetModules
from studio.widgets.spec_form import SpecForm

# Which settings groups each method uses (the others are hidden).
METHOD_GROUPS = {"full": (), "lora": ("lora",), "qlora": ("lora", "quantization"), "adalora": ("adalora", "lora"),
                 "prefix": ("prompt_learning",), "prompt": ("prompt_learning",), "ptuning": ("prompt_learning",)}
_LORA_ONLY_ROWS = ("rank", "use_dora", "use_rslora")  # AdaLoRA has its own ranks and neither variant


class MethodStep(QWidget):
    """The step's body over `form` (the SpecForm of `method` and `output`).

    `learning_rate` returns the Training step's `train.learning_rate` editor: its value follows the
    method and the model's size (`studio.models.learning_rate`) until the user sets one of their own.
    Signals: `warning_changed(str)` — the chosen method's warning ("" when it fits). Public: `cards`
    (MethodCards), `warning_label`, `note_label`, `target_modules` (TargetModules), `warning`,
    `learning_rate_advice` (the rate suggested now), `choose(name)`, `sync_from_spec()`,
    `set_preview(preview or None)`, `forget_learning_rate()`.
    """

    warning_changed = Signal(str)

    def __init__(self, form: SpecForm, learning_rate: Callable[[], FieldEditor], parent: QWidget | None = None):
        super().__init__(parent)
        self.form = form
        self._learning_rate = learning_rate
        self.preview: FinetunePreview | None = None
        self.warning = ""
        self.learning_rate_advice: LearningRate | None = None
        self._automatic_rates: set[float] = set()  # rates this step set (or the spec's default): not the user's
        self.cards = MethodCards()
        self.cards.chosen.connect(self.choose)
        self.warning_label = QLabel("")
        self.warning_label.setObjectName("fieldError")
        self.warning_label.setWordWrap(True)
        self.warning_label.hide()
        self.note_label = QLabel("")
        self.note_label.setObjectName("help")
        self.note_label.setWordWrap(True)

        method = form.section.children_sections["method"]
        method.form.setRowVisible(form.fields["method.name"].container, False)  # the cards choose it
        description = form.groups["method"].findChild(QLabel)
        if description is not None and description.objectName() == "help":
            description.hide()  # the cards say it better
        # LoRA's target modules: a checklist of the model's linear layers instead of a list to type.
        lora = method.children_sections["lora"]
        targets_row = form.fields["method.lora.target_modules"]
        lora.form.setRowVisible(targets_row.container, False)
        self.target_modules = TargetModules()
        self.target_modules.changed.connect(
            lambda: targets_row.editor.set_value(self.target_modules.value()))
        targets_row.editor.changed.connect(lambda: self.target_modules.set_value(targets_row.editor.value()))
        lora.form.addRow(QLabel(targets_row.label.text()), self.target_modules)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        layout.addWidget(self.cards)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.note_label)
        layout.addWidget(form)

    def choose(self, name: str) -> None:
        """Make `name` the method (as clicking its card does)."""
        self.form.editor("method.name").set_value(name)
        self.sync_from_spec(self._follow_learning_rate())

    def forget_learning_rate(self, default: float) -> None:
        """A new wizard: `default` (the spec's) is a rate to replace, not one the user chose."""
        self._automatic_rates = {float(default)}
        self.learning_rate_advice = None

    def _follow_learning_rate(self) -> str:
        """Set the learning rate suggested for the method and model size, unless the user typed their
        own; returns the sentence that says so ("" when nothing moved)."""
        name = self.form.editor("method.name").value()
        parameters = self.preview.model.parameters if self.preview and self.preview.model else None
        advice = suggested(name, parameters)
        self.learning_rate_advice = advice
        editor = self._learning_rate()
        current = editor.value()
        if current == advice.value or (current is not None and float(current) not in self._automatic_rates):
            return ""
        editor.set_value(advice.value)
        self._automatic_rates.add(advice.value)
        return f"Learning rate set to {advice.value:g}, {advice.reason()} (“Learning rate” on the Training step). "

    def sync_from_spec(self, moved: str = "") -> None:
        """Show the method the form holds: its card, its settings groups, its note and warning."""
        form = self.form
        name = form.editor("method.name").value()
        self.cards.select(name)
        self.target_modules.set_value(form.editor("method.lora.target_modules").value())
        used = METHOD_GROUPS.get(name, ())
        for group in ("lora", "quantization", "adalora", "prompt_learning"):
            form.groups[f"method.{group}"].setVisible(group in used)
        title = METHOD_TITLES.get(name, name)
        form.groups["method"].setVisible(bool(used))
        form.groups["method"].setTitle(f"{title} settings")
        lora = form.section.children_sections["method"].children_sections["lora"]
        for row in _LORA_ONLY_ROWS:
            container = lora.rows[row].container
            for layout in (lora.form, lora.advanced.form if lora.advanced else None):
                if layout is not None and layout.getWidgetPosition(container)[0] >= 0:
                    layout.setRowVisible(container, name != "adalora")
        merge = form.editor("output.merge")
        form.groups["output"].setVisible(name in ADAPTER_METHODS)
        if name not in ADAPTER_METHODS and merge.value():
            merge.set_value(False)  # only LoRA-style adapters merge; a hidden tick would block the launch
        if name == "full":
            note = "Full fine-tuning has no settings of its own; it writes a whole model to output/model."
        elif name in ADAPTER_METHODS:
            note = f"{title} writes an adapter to output/adapter (PEFT layout); tick Merge to also write the model " \
                   "with the adapter folded in."
        else:
            note = f"{title} writes an adapter to output/adapter (PEFT layout); it cannot be merged into the model."
        self.note_label.setText(moved + note)
        self._update_warning()

    def set_preview(self, preview: FinetunePreview | None) -> None:
        """Memory estimates and the model's linear layers from a preview (None: none yet)."""
        self.preview = preview
        if preview is None:
            self.cards.set_estimates(None)
        else:
            model = preview.model
            self.cards.set_estimates(preview.methods, model.parameters if model else None, preview.available_gb,
                                     preview.device)
            if model is not None:
                self.target_modules.set_modules(model.linear_modules, model.default_targets)
            moved = self._follow_learning_rate()
            if moved:
                self.sync_from_spec(moved)
        self._update_warning()

    def _update_warning(self) -> None:
        warning = self.cards.warning()
        name = self.cards.selected
        memory = self.preview.methods.get(name) if self.preview else None
        if memory is not None and memory.needs_cuda:
            advice = "Run it on a CUDA GPU (Where to run), or pick LoRA, which needs no GPU."
        else:
            advice = ("Pick a lighter method, lower the batch size or maximum length, or turn on gradient "
                      "checkpointing (Training, Advanced).")
        text = f"{METHOD_TITLES.get(name, name)}: {warning} {advice}" if warning else ""
        self.warning_label.setText(text)
        self.warning_label.setVisible(bool(text))
        if text != self.warning:
            self.warning = text
            self.warning_changed.emit(text)
