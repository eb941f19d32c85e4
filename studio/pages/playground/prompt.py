"""What the playground asks: a small table of template variables (each row one set of values; the
chosen row is what the grid answers) and the prompt variants (preset, Jinja template, system prompt,
few-shot examples)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
    QLineEdit, QListWidget, QPlainTextEdit, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
    QWidget,
)

from engine.playground.sandbox import syntax_problem
from studio.models.playground_session import PRESETS, Row, Session, Variant

PRESET_TIPS = {"zero-shot": "The input alone.",
               "few-shot": "Solved examples (Input/Output pairs) before the input: from a file, or the table's other "
                           "rows that have an expected answer.",
               "chain-of-thought": "Asks for step-by-step reasoning ending in a line “Answer: …”."}


def _small_button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.setStyleSheet("padding: 3px 8px;")
    return button


class VariablesTable(QWidget):
    """The template variables: a column per variable, a row per set of values. `row_chosen(index)`
    when another row is selected; `edited()` when a value, row or variable changes."""

    row_chosen = Signal(int)
    edited = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = Session()
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setToolTip("Each row fills the templates' variables ({{ input }}, …); the selected row is asked")
        self.table.itemChanged.connect(self._item_changed)
        self.table.currentCellChanged.connect(lambda row, *_: self._chosen(row))
        add_row = _small_button("+ Row", "Another set of values")
        add_row.clicked.connect(lambda: self.add_row())
        remove_row = _small_button("− Row", "Remove the selected row")
        remove_row.clicked.connect(self.remove_row)
        add_variable = _small_button("+ Variable…", "Another template variable (a column)")
        add_variable.clicked.connect(lambda: self.add_variable())
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in (add_row, remove_row, add_variable):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    def set_session(self, session: Session) -> None:
        self.session = session
        self.table.blockSignals(True)
        self.table.clear()
        self.table.setColumnCount(len(session.variables))
        self.table.setHorizontalHeaderLabels(session.variables)
        self.table.setRowCount(len(session.rows))
        for r, row in enumerate(session.rows):
            for c, name in enumerate(session.variables):
                self.table.setItem(r, c, QTableWidgetItem(str(row.values.get(name, ""))))
        self.table.blockSignals(False)
        self.table.setCurrentCell(session.current_row, 0)

    def set_value(self, row: int, name: str, value: str) -> None:
        self.table.item(row, self.session.variables.index(name)).setText(value)

    def add_row(self, values: dict | None = None) -> None:
        self.session.rows.append(Row({name: str((values or {}).get(name, "")) for name in self.session.variables}))
        self.set_session(self.session)
        self.table.setCurrentCell(len(self.session.rows) - 1, 0)
        self.edited.emit()

    def remove_row(self) -> None:
        row = self.table.currentRow()
        if len(self.session.rows) <= 1 or row < 0:
            return
        del self.session.rows[row]
        self.session.current_row = min(self.session.current_row, len(self.session.rows) - 1)
        self.set_session(self.session)
        self._chosen(self.session.current_row)
        self.edited.emit()

    def add_variable(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, "New variable", "Name (templates use it as {{ name }}):")
            if not ok:
                return
        name = name.strip()
        if not name or name in self.session.variables:
            return
        self.session.variables.append(name)
        self.set_session(self.session)
        self.edited.emit()

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if 0 <= item.row() < len(self.session.rows):
            self.session.rows[item.row()].values[self.session.variables[item.column()]] = item.text()
            self.edited.emit()

    def _chosen(self, row: int) -> None:
        if 0 <= row < len(self.session.rows) and row != self.session.current_row:
            self.session.current_row = row
            self.row_chosen.emit(row)


class VariantsEditor(QWidget):
    """The prompt variants: a list, and the selected one's preset, template, system prompt and few-shot
    examples. `variant_edited(id)` on every edit; `variants_changed()` when one is added or removed."""

    variant_edited = Signal(str)
    variants_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = Session()
        self.list = QListWidget()
        self.list.setFixedWidth(132)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.ElideRight)
        self.list.currentRowChanged.connect(self._selected)
        add = _small_button("+", "Add a variant")
        add.clicked.connect(lambda: self.add_variant())
        remove = _small_button("−", "Remove the selected variant")
        remove.clicked.connect(self.remove_variant)
        list_buttons = QHBoxLayout()
        list_buttons.setSpacing(4)
        list_buttons.addWidget(add)
        list_buttons.addWidget(remove)
        list_buttons.addStretch(1)
        list_column = QVBoxLayout()
        list_column.setSpacing(4)
        list_column.addWidget(self.list, 1)
        list_column.addLayout(list_buttons)

        self.name = QLineEdit()
        self.preset = QComboBox()
        for preset in PRESETS:
            self.preset.addItem(preset, preset)
            self.preset.setItemData(self.preset.count() - 1, PRESET_TIPS[preset], Qt.ToolTipRole)
        self.system = QLineEdit()
        self.system.setPlaceholderText("Optional system prompt (Jinja too)")
        self.template = QPlainTextEdit()
        self.template.setMinimumHeight(52)
        self.template.setToolTip("Jinja: {{ input }} and the table's other variables; empty = the preset's template")
        self.examples_file = QLineEdit()
        self.examples_file.setPlaceholderText("the table's rows")
        self.examples_file.setToolTip("A .jsonl/.csv file of solved examples (input and expected fields); empty = "
                                      "the table's other rows that have an expected answer")
        browse = _small_button("…", "Choose a file of solved examples")
        browse.clicked.connect(self._browse)
        self.examples_k = QSpinBox()
        self.examples_k.setRange(1, 64)
        self.examples_k.setPrefix("k = ")
        self.examples_row = QWidget()
        examples = QHBoxLayout(self.examples_row)
        examples.setContentsMargins(0, 0, 0, 0)
        examples.addWidget(self.examples_file, 1)
        examples.addWidget(browse)
        examples.addWidget(self.examples_k)
        self.problem = QLabel("")
        self.problem.setObjectName("fieldError")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.name.setMinimumWidth(110)
        head = QHBoxLayout()
        head.addWidget(self.name, 3)
        head.addWidget(self.preset, 2)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(4)
        form.addRow("Name", head)
        form.addRow("System", self.system)
        form.addRow("Template", self.template)
        self.examples_label = QLabel("Examples")
        form.addRow(self.examples_label, self.examples_row)
        form.addRow("", self.problem)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(list_column)
        layout.addLayout(form, 1)
        self.name.textEdited.connect(self._edited)
        self.preset.currentIndexChanged.connect(self._edited)
        self.system.textEdited.connect(self._edited)
        self.template.textChanged.connect(self._edited)
        self.examples_file.textEdited.connect(self._edited)
        self.examples_k.valueChanged.connect(self._edited)
        self._loading = False

    @property
    def current(self) -> Variant | None:
        row = self.list.currentRow()
        return self.session.variants[row] if 0 <= row < len(self.session.variants) else None

    def set_session(self, session: Session, select: int = 0) -> None:
        self.session = session
        self.list.blockSignals(True)
        self.list.clear()
        for variant in session.variants:
            self.list.addItem(variant.name)
        self.list.blockSignals(False)
        self.list.setCurrentRow(min(select, len(session.variants) - 1))
        self._selected(self.list.currentRow())

    def add_variant(self, preset: str = "zero-shot", name: str | None = None, template: str = "",
                    system: str = "") -> Variant:
        variant = Variant(self.session.unique_variant_name(name or preset), preset, template, system)
        self.session.variants.append(variant)
        self.set_session(self.session, select=len(self.session.variants) - 1)
        self.variants_changed.emit()
        return variant

    def remove_variant(self) -> None:
        row = self.list.currentRow()
        if len(self.session.variants) <= 1 or row < 0:
            return
        del self.session.variants[row]
        self.set_session(self.session, select=max(0, row - 1))
        self.variants_changed.emit()

    def _selected(self, row: int) -> None:
        variant = self.current
        if variant is None:
            return
        self._loading = True
        self.name.setText(variant.name)
        self.name.setCursorPosition(0)
        self.preset.setCurrentIndex(max(0, self.preset.findData(variant.preset)))
        self.system.setText(variant.system)
        self.system.setCursorPosition(0)
        self.template.setPlainText(variant.template)
        self.examples_file.setText(variant.examples_source)
        self.examples_k.setValue(variant.examples_k)
        self._loading = False
        self._show_preset(variant)

    def _show_preset(self, variant: Variant) -> None:
        self.template.setPlaceholderText(variant.template_source(self.session.input_field()))
        self.examples_row.setVisible(variant.preset == "few-shot")
        self.examples_label.setVisible(variant.preset == "few-shot")
        problem = syntax_problem(variant.template) if variant.template else None
        problem = problem or (syntax_problem(variant.system) if variant.system else None)
        self.problem.setText(problem or "")
        self.problem.setVisible(bool(problem))

    def _edited(self, *_) -> None:
        variant = self.current
        if variant is None or self._loading:
            return
        name = self.name.text().strip()
        if name and name not in {v.name for v in self.session.variants if v is not variant}:
            variant.name = name
            self.list.currentItem().setText(name)
        variant.preset = self.preset.currentData()
        variant.system = self.system.text()
        variant.template = self.template.toPlainText()
        variant.examples_source = self.examples_file.text().strip()
        variant.examples_k = self.examples_k.value()
        self._show_preset(variant)
        self.variant_edited.emit(variant.id)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Few-shot examples", "",
                                              "Examples (*.jsonl *.json *.csv *.parquet);;All files (*)")
        if path:
            self.examples_file.setText(path)
            self._edited()
