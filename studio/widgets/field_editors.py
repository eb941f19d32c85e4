"""One editor widget per JSON-schema field shape (integer, number, boolean, enum, string, list of
strings, free JSON), and `editor_for` choosing among them. Used by `studio.widgets.spec_form`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout,
    QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout,
    QWidget,
)

INT_MIN, INT_MAX = -(2**31) + 1, 2**31 - 1
EMPTY_TEXT = "(empty)"


def resolve(schema: dict, root: dict) -> dict:
    """Follow a local `$ref` ("#/$defs/Name"), merging the referring node's own keys on top."""
    if "$ref" not in schema:
        return schema
    target: Any = root
    for part in schema["$ref"].lstrip("#/").split("/"):
        target = target[part]
    merged = dict(resolve(target, root))
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def split_nullable(schema: dict, root: dict) -> tuple[dict, bool]:
    """(the non-null branch, whether null is allowed) for `anyOf [X, {"type": "null"}]`."""
    options = schema.get("anyOf")
    if not options:
        return resolve(schema, root), False
    non_null = [o for o in options if o.get("type") != "null"]
    nullable = len(non_null) < len(options)
    inner = dict(resolve(non_null[0], root)) if len(non_null) == 1 else {}
    for key in ("title", "description", "default", "advanced"):
        if key in schema:
            inner[key] = schema[key]
    return inner, nullable


def is_object(schema: dict) -> bool:
    """A sub-model (a group of fields); a mapping (`dict[int, float]`: additionalProperties is a schema)
    is a value, edited as text."""
    if "properties" in schema:
        return True
    return schema.get("type") == "object" and not isinstance(schema.get("additionalProperties"), dict)


# ---------------------------------------------------------------------------------------------
# Field editors: one small class per JSON-schema shape, all with value()/set_value()/changed.


class FieldEditor(QWidget):
    changed = Signal()

    def __init__(self, schema: dict, nullable: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.schema = schema
        self.nullable = nullable
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._layout = layout

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class IntEditor(FieldEditor):
    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.spin = QSpinBox()
        low = schema.get("minimum", schema.get("exclusiveMinimum", INT_MIN - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", INT_MAX + 1) - 1)
        low, high = max(int(low), INT_MIN), min(int(high), INT_MAX)
        if nullable:
            # The value one below the minimum reads "(empty)": the field's bounds stay on the box.
            low -= 1
            self.spin.setSpecialValueText(EMPTY_TEXT)
        self.spin.setRange(low, high)
        self.spin.setMinimumWidth(120)
        self.spin.setAccelerated(True)
        self.spin.setGroupSeparatorShown(high >= 100_000)
        self.spin.valueChanged.connect(self.changed)
        self._layout.addWidget(self.spin)
        self._layout.addStretch(1)

    def value(self) -> int | None:
        if self.nullable and self.spin.value() == self.spin.minimum():
            return None
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        self.spin.setValue(self.spin.minimum() if value is None else int(value))


class ScientificSpinBox(QDoubleSpinBox):
    """A double spin box that shows 3e-4 as `0.0003` or `3e-04`, whichever is shorter, and steps by ~10%."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setMinimumWidth(120)

    def textFromValue(self, value: float) -> str:
        if value == self.minimum() and self.specialValueText():
            return self.specialValueText()
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        stripped = text.strip()
        if stripped == self.specialValueText():
            return QValidator.Acceptable, text, pos
        try:
            value = float(stripped)
        except ValueError:
            ok = all(c in "0123456789.eE+-" for c in stripped)
            return (QValidator.Intermediate if ok else QValidator.Invalid), text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.Acceptable, text, pos
        return QValidator.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        value = self.value()
        if abs(value) < 1e-12 or self.singleStep() >= 0.01 and abs(value) >= 0.1:
            super().stepBy(steps)
        else:
            self.setValue(value * (1.1 ** steps))


class FloatEditor(FieldEditor):
    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.spin = ScientificSpinBox()
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1e12))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 1e12))
        if nullable:
            low = low - max(1.0, abs(low))
            self.spin.setSpecialValueText(EMPTY_TEXT)
        self.spin.setRange(float(low), float(high))
        span = float(high) - float(low)
        self.spin.setSingleStep(0.01 if span <= 1 else 0.1)
        self.spin.valueChanged.connect(self.changed)
        self._layout.addWidget(self.spin)
        self._layout.addStretch(1)

    def value(self) -> float | None:
        if self.nullable and self.spin.value() == self.spin.minimum():
            return None
        value = self.spin.value()
        return float(f"{value:.10g}")  # drop binary noise: 0.0003 stays 0.0003

    def set_value(self, value: Any) -> None:
        self.spin.setValue(self.spin.minimum() if value is None else float(value))


class BoolEditor(FieldEditor):
    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.check = QCheckBox(schema.get("title", ""))
        self.check.toggled.connect(self.changed)
        self._layout.addWidget(self.check)
        self._layout.addStretch(1)

    def value(self) -> bool:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class EnumEditor(FieldEditor):
    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.combo = QComboBox()
        self.combo.setMinimumWidth(160)
        choices = list(schema.get("enum", [schema["const"]] if "const" in schema else []))
        if nullable:
            self.combo.addItem("(default)", None)
        for choice in choices:
            self.combo.addItem(str(choice), choice)
        self.combo.currentIndexChanged.connect(self.changed)
        self._layout.addWidget(self.combo)
        self._layout.addStretch(1)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = self.combo.findData(value)
        self.combo.setCurrentIndex(max(index, 0))


class StringEditor(FieldEditor):
    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.line = QLineEdit()
        self.line.setMinimumWidth(200)
        if nullable:
            self.line.setPlaceholderText("empty")
        if "maxLength" in schema:
            self.line.setMaxLength(int(schema["maxLength"]))
        self.line.textChanged.connect(self.changed)
        self._layout.addWidget(self.line, 1)

    def value(self) -> str | None:
        text = self.line.text()
        return None if self.nullable and not text.strip() else text

    def set_value(self, value: Any) -> None:
        self.line.setText("" if value is None else str(value))


class StringListEditor(FieldEditor):
    """An editable list (double-click or F2 to edit an item) with Add and Remove buttons."""

    def __init__(self, schema: dict, nullable: bool, parent=None):
        super().__init__(schema, nullable, parent)
        self.list = QListWidget()
        self.list.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
                                  | QAbstractItemView.SelectedClicked)
        self.list.setMinimumWidth(200)
        self.list.setMaximumHeight(84)
        self.list.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        # A long path is cut in its middle (its start and its file name stay), whole in its tooltip.
        self.list.setTextElideMode(Qt.ElideMiddle)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.itemChanged.connect(lambda item: item.setToolTip(item.text()))
        self.list.itemChanged.connect(self.changed)
        self.list.model().rowsRemoved.connect(self.changed)
        buttons = self.buttons = QVBoxLayout()  # wizards add source pickers below Add and Remove
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        self._layout.addWidget(self.list, 1)
        self._layout.addLayout(buttons)

    def add_item(self, text: str) -> QListWidgetItem:
        item = QListWidgetItem(text)
        item.setToolTip(text)
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        self.list.addItem(item)
        self.changed.emit()
        return item

    def _add(self) -> None:
        item = self.add_item("")
        self.list.setCurrentItem(item)
        self.list.editItem(item)

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))

    def value(self) -> list[str] | None:
        items = [self.list.item(i).text() for i in range(self.list.count())]
        return None if self.nullable and not items else items

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.list):
            self.list.clear()
            for text in value or []:
                item = QListWidgetItem(str(text))
                item.setToolTip(str(text))
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                self.list.addItem(item)
        self.changed.emit()


class JsonTextEditor(StringEditor):
    """Fallback for shapes the form does not know: the value as YAML/JSON text on one line."""

    def value(self) -> Any:
        import yaml

        text = self.line.text()
        if not text.strip():
            return None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text

    def set_value(self, value: Any) -> None:
        import json

        self.line.setText("" if value is None else json.dumps(value))


def editor_for(schema: dict, nullable: bool) -> FieldEditor:
    kind = schema.get("type")
    if "enum" in schema or "const" in schema:
        return EnumEditor(schema, nullable)
    if kind == "boolean":
        return BoolEditor(schema, nullable)
    if kind == "integer":
        return IntEditor(schema, nullable)
    if kind == "number":
        return FloatEditor(schema, nullable)
    if kind == "string":
        return StringEditor(schema, nullable)
    if kind == "array" and schema.get("items", {}).get("type") == "string":
        return StringListEditor(schema, nullable)
    return JsonTextEditor(schema, nullable)


# ---------------------------------------------------------------------------------------------
# Rows and sections.
