"""The cleaning steps of a clean spec as a checklist: a check box per step (bound to the spec's
`<step>.enabled`), what each would do on the dry run's sample, and the selected step's settings.

The settings are SpecForms generated from the schema, one per step; the wizard that owns the widget
registers them (`forms`) so their values reach the spec and their problems show at their fields.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPushButton, QStackedWidget, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from studio.models.clean_results import DryRun, short_rule, step_title
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_form import SpecForm

CLEANING_STEPS = ("repair", "normalize", "quality", "language", "pii", "exact_dedup", "near_dedup")


class CleaningSteps(QWidget):
    """Public: `forms` (step -> SpecForm), `checklist` (a row per step: check box and title, what it
    would do on the sample, the rules that remove most), `settings` (stack of the steps' forms),
    `status_label`, `details_button`, `enabled(step)`, `set_enabled(step, on)`, `show_effects(...)`."""

    def __init__(self, schema: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.forms: dict[str, SpecForm] = {}
        self.checklist = QTreeWidget()
        self.checklist.setHeaderLabels(["Step", "On the sample", "Rules that remove most"])
        self.checklist.setRootIsDecorated(False)
        self.checklist.setUniformRowHeights(True)
        # palette(): follows the light/dark theme when it changes.
        self.checklist.setStyleSheet(
            "QTreeWidget::item { padding: 3px 2px; }"
            "QTreeWidget::indicator { width: 14px; height: 14px; border: 1px solid palette(mid); border-radius: 3px;"
            " background: palette(base); }"
            "QTreeWidget::indicator:checked { background: palette(highlight); border-color: palette(highlight);"
            " image: url(:/qt-project.org/styles/commonstyle/images/standardbutton-apply-16.png); }")
        self.checklist.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.checklist.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.settings = QStackedWidget()
        self.items: dict[str, QTreeWidgetItem] = {}
        self._notes: dict[str, QLabel] = {}
        for step in CLEANING_STEPS:
            form = self._form(schema, step)
            item = QTreeWidgetItem([self._title(step), "—", ""])
            item.setData(0, Qt.UserRole, step)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Checked)
            item.setToolTip(0, self._description(step))
            self.checklist.addTopLevelItem(item)
            self.items[step] = item
            self.settings.addWidget(self._settings_page(step, form))
        for column in (0, 1):
            self.checklist.resizeColumnToContents(column)
            self.checklist.setColumnWidth(column, self.checklist.columnWidth(column) + 16)
        self.checklist.setColumnWidth(1, max(self.checklist.columnWidth(1), 170))
        rows = self.checklist.visualItemRect(self.items["repair"]).height() * len(CLEANING_STEPS)
        self.checklist.setFixedHeight(rows + self.checklist.header().sizeHint().height() + 6)
        self.checklist.itemChanged.connect(self._item_changed)
        self.checklist.currentItemChanged.connect(self._item_selected)
        for step, form in self.forms.items():
            form.changed.connect(lambda s=step: self._sync_check(s))

        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        self.details_button = QPushButton("Dry run details →")
        status_row = QHBoxLayout()
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(self.details_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.checklist)
        layout.addLayout(status_row)
        layout.addWidget(self.settings, 1)
        self.checklist.setCurrentItem(self.items["quality"])

    def _form(self, schema: dict, step: str) -> SpecForm:
        form = SpecForm(schema, [step])
        self.forms[step] = form
        section = form.section.children_sections[step]
        section.form.setRowVisible(section.rows["enabled"].container, False)  # the checklist is its check box
        form.groups[step].setTitle("Settings")
        return form

    def _enabled_schema(self, step: str) -> dict:
        return self.forms[step].fields[f"{step}.enabled"].schema

    def _title(self, step: str) -> str:
        return self._enabled_schema(step).get("title") or step_title(step)

    def _description(self, step: str) -> str:
        return self._enabled_schema(step).get("description", "")

    def _settings_page(self, step: str, form: SpecForm) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 8, 0)
        title = QLabel(self._title(step))
        title.setStyleSheet("font-size: 13pt; font-weight: 600;")
        description = QLabel(self._description(step))
        description.setObjectName("subtitle")
        description.setWordWrap(True)
        note = QLabel("")
        note.setObjectName("help")
        note.setWordWrap(True)
        self._notes[step] = note
        layout.addWidget(title)
        layout.addWidget(description)
        layout.addWidget(note)
        layout.addWidget(form)
        layout.addStretch(1)
        return scrolled(page)

    # ------------------------------------------------------------------------------ state
    def enabled(self, step: str) -> bool:
        return bool(self.forms[step].editor(f"{step}.enabled").value())

    def set_enabled(self, step: str, on: bool) -> None:
        """Tick or untick a step, as a click on its check box does."""
        self.items[step].setCheckState(0, Qt.Checked if on else Qt.Unchecked)

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        step = item.data(0, Qt.UserRole)
        if column == 0 and step:
            on = item.checkState(0) == Qt.Checked
            if on != self.enabled(step):
                self.forms[step].editor(f"{step}.enabled").set_value(on)  # -> the form's changed

    def _item_selected(self, item: QTreeWidgetItem | None, _previous: Any = None) -> None:
        if item is not None:
            self.settings.setCurrentIndex(CLEANING_STEPS.index(item.data(0, Qt.UserRole)))

    def _sync_check(self, step: str) -> None:
        on = self.enabled(step)
        self.checklist.blockSignals(True)
        self.items[step].setCheckState(0, Qt.Checked if on else Qt.Unchecked)
        self.checklist.blockSignals(False)
        self.forms[step].groups[step].setEnabled(on)
        self._notes[step].setText("" if on else "Switched off: tick it in the list above to use it.")

    def show_effects(self, result: DryRun | None, pending: bool) -> None:
        """What each enabled step does on the sample of `result`; "…" while a newer dry run is `pending`."""
        self.checklist.blockSignals(True)
        for step, item in self.items.items():
            self._sync_check(step)
            effect = result.effect(step) if result is not None else None
            if not self.enabled(step):
                text = "off"
            elif pending:
                text = "…"
            elif effect is not None:
                text = effect.summary()
            else:
                text = "—"
            item.setText(1, text)
            shown = effect is not None and text not in ("off", "…")
            rules = sorted(((r, n) for r, n in effect.rules.items() if r != step), key=lambda kv: -kv[1]) \
                if shown else []
            changes = list(effect.changes.items()) if shown else []
            shown_rules = [f"{short_rule(r)} {n:,}" for r, n in rules] + [f"{short_rule(k)} ×{n:,}" for k, n in changes]
            # The one that does most; the rest in the tooltip (a narrow page shows the column whole).
            more = f" (+{len(shown_rules) - 1})" if len(shown_rules) > 1 else ""
            item.setText(2, " · ".join(shown_rules[:1]) + more)
            item.setToolTip(2, "\n".join([f"{r}: {n:,} removed" for r, n in rules]
                                         + [f"{k}: ×{n:,}" for k, n in changes]))
        self.checklist.blockSignals(False)
