"""Forms generated from a job spec's JSON schema (DESIGN §1: one source of truth for parameters).

`SpecForm(schema, fields=[...])` renders the chosen top-level properties of a spec schema: one
group box per sub-model, titles as labels, descriptions as tooltips and help text, defaults, spin
box bounds, enums as combo boxes, booleans as check boxes, lists of strings as editable lists,
optional (`anyOf [..., null]`) fields that may stay empty, and fields marked `"advanced": true` in
a collapsible Advanced section. A field added to the pydantic spec appears here with no GUI code.

`values()` returns plain data for `engine.specs.parse_spec`; `show_problems()` puts each
`SpecProblem` next to the field its path names.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QToolButton, QVBoxLayout, QWidget

from studio.widgets.field_editors import BoolEditor, FieldEditor, editor_for, is_object, split_nullable


_CODE = re.compile(r"`([^`\n]+)`")


def help_html(description: str) -> str:
    """A spec description as the form shows it: its `code` spans as code, not as backticks."""
    return _CODE.sub(r"<code>\1</code>", html.escape(description, quote=False)) if description else ""


class FieldRow:
    """One field: its label, editor, help text and error label, addressed by a dotted path."""

    def __init__(self, path: str, schema: dict, nullable: bool):
        self.path = path
        self.schema = schema
        self.editor = editor_for(schema, nullable)
        title = schema.get("title") or path.rsplit(".", 1)[-1]
        description = help_html(schema.get("description", ""))
        self.label = QLabel("" if isinstance(self.editor, BoolEditor) else title)
        self.label.setToolTip(description)
        self.editor.setToolTip(description)
        self.help = QLabel(description)
        self.help.setTextFormat(Qt.RichText)
        self.help.setObjectName("help")
        self.help.setWordWrap(True)
        self.help.setVisible(bool(description))
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        self.container = QWidget()
        box = QVBoxLayout(self.container)
        box.setContentsMargins(0, 0, 0, 2)
        box.setSpacing(2)
        box.addWidget(self.editor)
        box.addWidget(self.help)
        box.addWidget(self.error)

    def set_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))


class CollapsibleSection(QWidget):
    """An "Advanced" toggle that shows or hides a form below it."""

    def __init__(self, title: str = "Advanced", parent=None):
        super().__init__(parent)
        self.toggle = QToolButton()
        self.toggle.setObjectName("advanced")
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.RightArrow)
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        _style_form(self.form)
        self.body.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)
        self.toggle.toggled.connect(self.set_expanded)

    def set_expanded(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)
        self.body.setVisible(expanded)
        if self.toggle.isChecked() != expanded:
            self.toggle.setChecked(expanded)

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()


def _style_form(form: QFormLayout) -> None:
    form.setLabelAlignment(Qt.AlignRight | Qt.AlignTop)
    form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    form.setHorizontalSpacing(16)
    form.setVerticalSpacing(8)
    form.setContentsMargins(0, 0, 0, 0)


class ObjectSection(QWidget):
    """The fields of one object schema, basic ones first and advanced ones in a collapsible part.

    Nested objects become group boxes; an optional nested object (`anyOf [object, null]`) becomes a
    checkable group box whose unchecked state means null.
    """

    changed = Signal()

    def __init__(self, schema: dict, root: dict, path: str = "", fields: Iterable[str] | None = None,
                 parent=None):
        super().__init__(parent)
        self.schema = schema
        self.path = path
        self.rows: dict[str, FieldRow] = {}
        self.children_sections: dict[str, ObjectSection] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.constants: dict[str, Any] = {}
        self.advanced: CollapsibleSection | None = None
        properties: dict = schema.get("properties", {})
        names = list(fields) if fields is not None else list(properties)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        self.form = QFormLayout()
        _style_form(self.form)
        layout.addLayout(self.form)
        groups_layout = QVBoxLayout()
        groups_layout.setSpacing(12)

        for name in names:
            if name not in properties:
                continue
            raw = properties[name]
            inner, nullable = split_nullable(raw, root)
            sub_path = f"{path}.{name}" if path else name
            if "const" in inner and not nullable:
                self.constants[name] = inner["const"]
                continue
            if is_object(inner):
                title = raw.get("title") or inner.get("title") or name
                section = ObjectSection(inner, root, sub_path)
                box = QGroupBox(title)
                box.setToolTip(help_html(raw.get("description", inner.get("description", ""))))
                box_layout = QVBoxLayout(box)
                description = raw.get("description")
                if description:
                    help_label = QLabel(help_html(description))
                    help_label.setTextFormat(Qt.RichText)
                    help_label.setObjectName("help")
                    help_label.setWordWrap(True)
                    box_layout.addWidget(help_label)
                box_layout.addWidget(section)
                if nullable:
                    box.setCheckable(True)
                    box.setChecked(raw.get("default") is not None)
                    box.toggled.connect(self.changed)
                    section.setEnabled(box.isChecked())
                    box.toggled.connect(section.setEnabled)
                error = QLabel()
                error.setObjectName("fieldError")
                error.setWordWrap(True)
                error.hide()
                box_layout.addWidget(error)
                box.error_label = error  # type: ignore[attr-defined]
                section.changed.connect(self.changed)
                self.children_sections[name] = section
                self.groups[name] = box
                if raw.get("advanced"):
                    if self.advanced is None:
                        self.advanced = CollapsibleSection("Advanced")
                    self.advanced.form.addRow(box)
                else:
                    groups_layout.addWidget(box)
                continue
            row = FieldRow(sub_path, inner, nullable)
            row.editor.set_value(inner.get("default"))
            row.editor.changed.connect(self.changed)
            self.rows[name] = row
            if inner.get("advanced"):
                if self.advanced is None:
                    self.advanced = CollapsibleSection("Advanced")
                self.advanced.form.addRow(row.label, row.container)
            else:
                self.form.addRow(row.label, row.container)
        if self.advanced is not None:
            layout.addWidget(self.advanced)
        layout.addLayout(groups_layout)

    def values(self) -> dict:
        data: dict[str, Any] = dict(self.constants)
        for name, row in self.rows.items():
            data[name] = row.editor.value()
        for name, section in self.children_sections.items():
            box = self.groups[name]
            data[name] = None if box.isCheckable() and not box.isChecked() else section.values()
        return data

    def set_values(self, data: dict) -> None:
        for name, value in (data or {}).items():
            if name in self.rows:
                self.rows[name].editor.set_value(value)
            elif name in self.children_sections:
                box = self.groups[name]
                if box.isCheckable():
                    box.setChecked(value is not None)
                if value is not None:
                    self.children_sections[name].set_values(value)

    def all_rows(self) -> dict[str, FieldRow]:
        rows = {row.path: row for row in self.rows.values()}
        for section in self.children_sections.values():
            rows.update(section.all_rows())
        return rows

    def all_groups(self) -> dict[str, QGroupBox]:
        groups = {f"{self.path}.{n}" if self.path else n: box for n, box in self.groups.items()}
        for section in self.children_sections.values():
            groups.update(section.all_groups())
        return groups

    def all_advanced(self) -> list[CollapsibleSection]:
        found = [self.advanced] if self.advanced else []
        for section in self.children_sections.values():
            found += section.all_advanced()
        return found


class SpecForm(QWidget):
    """A form for some (or all) top-level properties of a spec's JSON schema.

    `fields` picks the top-level properties this form shows (a wizard step shows one sub-model);
    constants such as `kind` are kept in `values()` but not shown.
    """

    changed = Signal()

    def __init__(self, schema: dict, fields: Iterable[str] | None = None, parent=None):
        super().__init__(parent)
        self.schema = schema
        self.field_names = list(fields) if fields is not None else None
        self.section = ObjectSection(schema, schema, "", self.field_names)
        self.section.changed.connect(self.changed)
        self.general_error = QLabel()
        self.general_error.setObjectName("fieldError")
        self.general_error.setWordWrap(True)
        self.general_error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.general_error)
        layout.addWidget(self.section)
        layout.addStretch(1)

    def set_schema(self, schema: dict, fields: Iterable[str] | None = None) -> None:
        """Rebuild the form for another schema of the same kind (another engine's), showing `fields`
        (default: the same top-level fields as before); values of fields still there are kept."""
        values = self.values()
        self.schema = schema
        if fields is not None:
            self.field_names = list(fields)
        old = self.section
        self.section = ObjectSection(schema, schema, "", self.field_names)
        self.section.set_values(values)
        self.section.changed.connect(self.changed)
        self.layout().replaceWidget(old, self.section)
        old.hide()
        old.deleteLater()

    @property
    def fields(self) -> dict[str, FieldRow]:
        """Every field row by dotted path ("train.batch_size")."""
        return self.section.all_rows()

    @property
    def groups(self) -> dict[str, QGroupBox]:
        """Every sub-model group box by dotted path ("model", "tokenizer.train")."""
        return self.section.all_groups()

    def advanced_sections(self) -> list[CollapsibleSection]:
        return self.section.all_advanced()

    def editor(self, path: str) -> FieldEditor:
        return self.fields[path].editor

    def values(self) -> dict:
        return self.section.values()

    def set_values(self, data: dict) -> None:
        self.section.set_values(data)

    def clear_problems(self) -> None:
        for row in self.fields.values():
            row.set_error(None)
        for box in self.groups.values():
            box.error_label.hide()  # type: ignore[attr-defined]
        self.general_error.hide()

    def show_problems(self, problems: Iterable[Any]) -> list[Any]:
        """Show each problem (anything with `.field` and `.message`) at the field its path names.

        A path that names a group (a model-level check) goes under that group; a path below a
        list item ("data.sources.0") goes to the list. Returns the problems this form showed.
        """
        self.clear_problems()
        rows, groups = self.fields, self.groups
        shown, general = [], []
        messages: dict[str, list[str]] = {}
        for problem in problems:
            parts = problem.field.split(".") if problem.field else []
            target = None
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n])
                if candidate in rows or candidate in groups:
                    target = candidate
                    break
            if target is None:
                if parts and parts[0] not in self._top_level_names():
                    continue  # another form's field
                general.append(f"{problem.field or 'spec'}: {problem.message}")
            else:
                messages.setdefault(target, []).append(problem.message)
            shown.append(problem)
        for target, texts in messages.items():
            text = "\n".join(texts)
            if target in rows:
                rows[target].set_error(text)
                self._reveal(rows[target].container)
            else:
                label = groups[target].error_label  # type: ignore[attr-defined]
                label.setText(text)
                label.show()
                self._reveal(groups[target])
        if general:
            self.general_error.setText("\n".join(general))
            self.general_error.show()
        return shown

    def _top_level_names(self) -> set[str]:
        return set(self.section.rows) | set(self.section.children_sections) | set(self.section.constants)

    def _reveal(self, widget: QWidget) -> None:
        # An error inside a collapsed Advanced section opens it, so the message is seen.
        for section in self.advanced_sections():
            if section.body.isAncestorOf(widget):
                section.set_expanded(True)
