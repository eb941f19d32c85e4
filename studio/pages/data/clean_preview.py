"""The dry run of a clean spec: what each cleaning step would remove or change on a random sample.

`CleanPreview` shows a `DryRun` (studio.models.clean_results, read from `studio-engine preview SPEC
--json`): a table of what each step would do, the sample's documents filterable by fate, step and
rule, and for the selected document the reason it was removed, the text before and after the steps
that changed it, or the document it duplicates, side by side with the differences highlighted.
The page that owns the view runs the engine command and hands the result over.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton,
    QSpinBox, QSplitter, QStackedWidget, QTableView, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
    QWidget,
)

from studio import theme
from studio.models.clean_results import DEDUP_STEPS, FATES, DryRun, SampleDocument, parse_dry_run, short_rule, step_title
from studio.widgets.text_diff import TextDiffView

FATE_FILTERS = (("changed", "Removed or modified"), ("removed", "Removed"), ("modified", "Modified"),
                ("kept", "Kept unchanged"), ("all", "All documents"))


def fate_colours() -> dict[str, QColor]:
    t = theme.current()
    return {"removed": QColor(t.error), "modified": QColor(t.series[1]), "kept": QColor(t.muted)}


class SampleTableModel(QAbstractTableModel):
    """The documents of a dry run that pass the filters: fate, document id, why, length."""

    HEADERS = ("Fate", "Document", "Why", "Characters")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[SampleDocument] = []

    def set_rows(self, rows: list[SampleDocument]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return len(self.HEADERS)

    def headerData(self, section: int, orientation, role: int = Qt.DisplayRole):  # noqa: N802 - Qt's name
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid():
            return None
        doc, column = self.rows[index.row()], index.column()
        if role == Qt.DisplayRole:
            return (doc.fate, doc.id, doc.why(), f"{len(doc.text):,}")[column]
        if role == Qt.ToolTipRole:
            return (doc.fate, f"{doc.id}\n{doc.source}", doc.why(), None)[column]
        if role == Qt.ForegroundRole and column == 0:
            return fate_colours().get(doc.fate)
        if role == Qt.TextAlignmentRole and column == 3:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None


def data_table(headers: list[str]) -> QTableWidget:
    """A read-only table of figures: whole rows selected, columns fitted to their contents."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setWordWrap(False)
    table.verticalHeader().setDefaultSectionSize(24)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    return table


class CleanPreview(QWidget):
    """The dry-run view. The owner calls `set_running()`, then `set_result(dict)` or `set_error(str)`.

    Signals: `rerun_requested()` (the Run button; Ctrl+R is the page's). Public for tests:
    `result` (DryRun), `sample_spin`, `run_button`, `status_label`, `steps_table`, `fate_filter`,
    `step_filter`, `rule_filter`, `search_edit`, `model` (the filtered documents), `documents_view`,
    `empty_label`, `reason_label`, `diff`, `problems_label`, `filter_step(step)`,
    `set_filters(fate, step, rule)`, `select_document(id)`.
    """

    rerun_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: DryRun | None = None
        self.sample_spin = QSpinBox()
        self.sample_spin.setRange(10, 100_000)
        self.sample_spin.setSingleStep(500)
        self.sample_spin.setValue(1000)
        self.sample_spin.setGroupSeparatorShown(True)
        self.sample_spin.setSuffix(" documents")
        self.sample_spin.setToolTip("How many documents the dry run draws at random from the corpus.")
        self.sample_spin.setMaximumWidth(170)
        self.run_button = QPushButton("Run dry run")
        self.run_button.setToolTip("Run the enabled steps on a new random sample (Ctrl+R).")
        self.run_button.clicked.connect(self.rerun_requested)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setFixedWidth(120)
        self.busy.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Sample"))
        top.addWidget(self.sample_spin)
        top.addWidget(self.run_button)
        top.addWidget(self.busy)
        top.addStretch(1)

        self.empty_state = QLabel("The dry run runs the enabled steps on a random sample of the corpus and shows what "
                                  "each would remove or change, and why, before the whole corpus is cleaned.\n\n"
                                  "Press Run dry run (Ctrl+R).")
        self.empty_state.setObjectName("subtitle")
        self.empty_state.setAlignment(Qt.AlignCenter)
        self.empty_state.setWordWrap(True)

        self.steps_table = data_table(["Step", "Removes", "Chars removed", "Modifies", "Top rules and changes"])
        self.steps_table.setToolTip("Click a step to list the documents it removes or changes.")
        self.steps_table.cellClicked.connect(lambda row, _column: self._step_row_selected(row))
        self.steps_table.itemActivated.connect(lambda item: self._step_row_selected(item.row()))
        steps_box = QWidget()
        steps_layout = QVBoxLayout(steps_box)
        steps_layout.setContentsMargins(10, 10, 10, 10)
        steps_hint = QLabel("Click a step to list the documents it would remove or change.")
        steps_hint.setObjectName("help")
        steps_layout.addWidget(self.steps_table, 1)
        steps_layout.addWidget(steps_hint)
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("fieldError")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        steps_layout.addWidget(self.problems_label)

        self.fate_filter = QComboBox()
        for key, label in FATE_FILTERS:
            self.fate_filter.addItem(label, key)
        self.step_filter = QComboBox()
        self.rule_filter = QComboBox()
        self.fate_filter.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.step_filter.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.rule_filter.setMinimumContentsLength(8)
        self.rule_filter.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search ids and text (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setMinimumWidth(130)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.apply_filters)
        self.search_edit.textChanged.connect(self._search_timer.start)
        for combo in (self.fate_filter, self.step_filter, self.rule_filter):
            combo.currentIndexChanged.connect(self.apply_filters)
        filters = QHBoxLayout()
        filters.addWidget(self.fate_filter)
        filters.addWidget(self.step_filter)
        filters.addWidget(self.rule_filter, 1)
        filters.addWidget(self.search_edit, 1)

        self.model = SampleTableModel(self)
        self.documents_view = QTableView()
        self.documents_view.setModel(self.model)
        self.documents_view.verticalHeader().hide()
        self.documents_view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.documents_view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.documents_view.setWordWrap(False)
        self.documents_view.setTextElideMode(Qt.ElideRight)
        self.documents_view.setAlternatingRowColors(True)
        self.documents_view.verticalHeader().setDefaultSectionSize(24)
        header = self.documents_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        for column, width in ((0, 80), (1, 150), (3, 80)):
            self.documents_view.setColumnWidth(column, max(width, header.sectionSizeHint(column)))
        self.documents_view.setProperty("elidesCells", True)  # a document's start; the selected one shows whole
        self.documents_view.selectionModel().currentRowChanged.connect(lambda *_: self._show_selected())
        self.empty_label = QLabel("")
        self.empty_label.setObjectName("subtitle")
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.documents_view)
        self.list_stack.addWidget(self.empty_label)

        self.reason_label = QLabel("")
        self.reason_label.setWordWrap(True)
        self.reason_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.diff = TextDiffView("Select a document to see why it would be removed or what would change.")
        self.detail = detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 4, 0, 0)
        detail_layout.addWidget(self.reason_label)
        detail_layout.addWidget(self.diff, 1)
        # The list over the selected document: the page is narrow beside the sidebar and the jobs dock.
        documents = QSplitter(Qt.Vertical)
        documents.addWidget(self.list_stack)
        documents.addWidget(detail)
        documents.setSizes([170, 330])
        documents.setChildrenCollapsible(False)
        documents_box = QWidget()
        documents_layout = QVBoxLayout(documents_box)
        documents_layout.setContentsMargins(10, 10, 10, 10)
        documents_layout.addLayout(filters)
        documents_layout.addWidget(documents, 1)

        self.content = QTabWidget()
        self.content.addTab(steps_box, "By step")
        self.content.addTab(documents_box, "Documents")
        self.body = QStackedWidget()
        self.body.addWidget(self.empty_state)
        self.body.addWidget(self.content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addWidget(self.body, 1)

    # ------------------------------------------------------------------------------ states
    def set_running(self, sample: int) -> None:
        self.busy.show()
        if self.result is None:
            self.empty_state.setText(f"Drawing {sample:,} documents at random and running the enabled steps on them…")
        self.status_label.setText(f"Running the enabled steps on {sample:,} documents drawn at random…")

    def set_error(self, message: str) -> None:
        """The dry run failed: the message, and no results (an earlier run's belong to other settings)."""
        self.busy.hide()
        self.result = None
        self.body.setCurrentWidget(self.empty_state)
        self.empty_state.setText("No dry run: it failed (see above). Fix the input or the settings, then press Run "
                                 "dry run (Ctrl+R).")
        self.status_label.setText(f"<span style='color:{theme.current().error}'>The dry run failed.</span> "
                                  + message.replace("\n", "<br>"))
        self.status_label.setToolTip(message)

    def set_idle(self, message: str) -> None:
        """Not running, with a sentence saying why (e.g. the spec has problems)."""
        self.busy.hide()
        self.status_label.setText(message)

    def set_result(self, data: dict | DryRun) -> DryRun:
        result = data if isinstance(data, DryRun) else parse_dry_run(data)
        self.result = result
        self.busy.hide()
        self.status_label.setToolTip("")
        counts = result.counts()
        n = max(1, len(result.documents))
        drawn = result.drawn()
        self.status_label.setText(
            f"<b>{drawn[0].upper() + drawn[1:]}</b> in {result.seconds:.1f} s: "
            f"keeps {counts['kept'] + counts['modified']:,} "
            f"({(counts['kept'] + counts['modified']) / n:.1%}), modifies {counts['modified']:,}, "
            f"removes {counts['removed']:,}.")
        self._fill_steps(result)
        self._fill_filters(result)
        self.body.setCurrentWidget(self.content)
        self.apply_filters()
        return result

    # ------------------------------------------------------------------------------ tables
    def _fill_steps(self, result: DryRun) -> None:
        table = self.steps_table
        table.blockSignals(True)
        table.setRowCount(len(result.steps) + 1)
        for r, effect in enumerate(result.steps):
            rules = sorted(effect.rules.items(), key=lambda kv: -kv[1])
            top = [f"{short_rule(rule)} {n:,}" for rule, n in rules[:3] if rule != effect.step]
            top += [f"{short_rule(k)} ×{n:,}" for k, n in effect.changes.items()]
            cells = [step_title(effect.step), f"{effect.removed:,}", f"{effect.removed_chars:,}",
                     f"{effect.modified:,}", " · ".join(top) or "—"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, effect.step)
                if c in (1, 2, 3):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 4:
                    item.setToolTip("\n".join(f"{rule}: {n:,} removed" for rule, n in rules)
                                    + "".join(f"\n{k}: ×{n:,}" for k, n in effect.changes.items()))
                table.setItem(r, c, item)
        counts = result.counts()
        removed_chars = sum(e.removed_chars for e in result.steps)
        total = ["All steps", f"{counts['removed']:,}", f"{removed_chars:,}", f"{counts['modified']:,}",
                 f"{counts['kept'] + counts['modified']:,} of {len(result.documents):,} documents kept"]
        for c, text in enumerate(total):
            item = QTableWidgetItem(text)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            item.setData(Qt.UserRole, None)
            if c in (1, 2, 3):
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            table.setItem(len(result.steps), c, item)
        table.blockSignals(False)
        if result.problem_count:
            shown = "; ".join(result.problems[:3])
            more = f" (and {result.problem_count - 3:,} more)" if result.problem_count > 3 else ""
            plural = "s" if result.problem_count != 1 else ""
            self.problems_label.setText(f"{result.problem_count:,} broken record{plural} "
                                        f"skipped while reading: {shown}{more}.")
            self.problems_label.setToolTip("\n".join(result.problems))
        self.problems_label.setVisible(bool(result.problem_count))

    def _fill_filters(self, result: DryRun) -> None:
        step, rule = self.step_filter.currentData(), self.rule_filter.currentData()
        for combo in (self.step_filter, self.rule_filter):
            combo.blockSignals(True)
            combo.clear()
        self.step_filter.addItem("All steps", None)
        for effect in result.steps:
            self.step_filter.addItem(step_title(effect.step), effect.step)
        self.rule_filter.addItem("All rules", None)
        rules = sorted({d.rule for d in result.documents if d.rule} |
                       {k for d in result.documents for k in d.changes})
        for name in rules:
            self.rule_filter.addItem(name, name)
        for combo, value in ((self.step_filter, step), (self.rule_filter, rule)):
            combo.setCurrentIndex(max(0, combo.findData(value)))
            combo.blockSignals(False)

    def _step_row_selected(self, row: int) -> None:
        item = self.steps_table.item(row, 0)
        if item is not None:
            self.filter_step(item.data(Qt.UserRole))

    def focus_search(self) -> None:
        """Ctrl+F: search the sample's documents."""
        self.content.setCurrentIndex(1)
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    def filter_step(self, step: str | None) -> None:
        """List what `step` removes or changes (on the Documents tab)."""
        self.set_filters("changed", step, None)
        self.content.setCurrentIndex(1)

    def set_filters(self, fate: str = "changed", step: str | None = None, rule: str | None = None) -> None:
        for combo, value in ((self.fate_filter, fate), (self.step_filter, step), (self.rule_filter, rule)):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            combo.blockSignals(False)
        self.apply_filters()

    def matching(self) -> list[SampleDocument]:
        if self.result is None:
            return []
        fate, step, rule = (self.fate_filter.currentData(), self.step_filter.currentData(),
                            self.rule_filter.currentData())
        needle = self.search_edit.text().strip().lower()
        rows = []
        for doc in self.result.documents:
            if fate == "changed" and doc.fate == "kept" or fate in FATES and doc.fate != fate:
                continue
            if step and doc.step != step and step not in doc.modified:
                continue
            if rule and doc.rule != rule and rule not in doc.changes:
                continue
            if needle and needle not in doc.id.lower() and needle not in doc.text.lower():
                continue
            rows.append(doc)
        return rows

    def apply_filters(self) -> None:
        current = self.current_document()
        rows = self.matching()
        self.model.set_rows(rows)
        total = len(self.result.documents) if self.result else 0
        self.content.setTabText(1, f"Documents ({len(rows):,} of {total:,})")
        if rows:
            self.list_stack.setCurrentWidget(self.documents_view)
            ids = [d.id for d in rows]
            row = ids.index(current.id) if current and current.id in ids else 0
            self.documents_view.selectRow(row)
            self.documents_view.scrollTo(self.model.index(row, 0))
        else:
            self.empty_label.setText(self._empty_message())
            self.list_stack.setCurrentWidget(self.empty_label)
            self.reason_label.setText("")
            self.diff.clear("")
        self.detail.setVisible(bool(rows))

    def _empty_message(self) -> str:
        if self.result is None:
            return ""
        n = len(self.result.documents)
        step, fate = self.step_filter.currentData(), self.fate_filter.currentData()
        if self.search_edit.text().strip() or self.rule_filter.currentData():
            return "No document of the sample matches these filters."
        if step in DEDUP_STEPS:
            kind = "exact" if step == "exact_dedup" else "near"
            return f"No {kind} duplicates found in the sample of {n:,} documents."
        if step:
            return f"{step_title(step)} would not remove or change any of the {n:,} documents of the sample."
        if fate in ("changed", "removed", "modified"):
            return f"No step would {'change' if fate == 'changed' else fate.removesuffix('d')} any of the {n:,} " \
                   "documents of the sample."
        return "No document of the sample matches these filters."

    # ------------------------------------------------------------------------------ detail
    def current_document(self) -> SampleDocument | None:
        index = self.documents_view.currentIndex()
        if not index.isValid() or index.row() >= len(self.model.rows):
            return None
        return self.model.rows[index.row()]

    def select_document(self, doc_id: str) -> bool:
        ids = [d.id for d in self.model.rows]
        if doc_id not in ids:
            self.set_filters("all")
            ids = [d.id for d in self.model.rows]
            if doc_id not in ids:
                return False
        row = ids.index(doc_id)
        self.documents_view.selectRow(row)
        self.documents_view.scrollTo(self.model.index(row, 0))
        self.content.setCurrentIndex(1)
        self._show_selected()
        return True

    def _show_selected(self) -> None:
        doc = self.current_document()
        if doc is None:
            return
        colour = fate_colours()[doc.fate].name()
        where = f"<span style='color:{theme.current().muted}'>{_escape(doc.source)}</span>"
        head = f"<b style='color:{colour}'>{doc.fate}</b> &nbsp;<b>{_escape(doc.id)}</b> &nbsp;{where}"
        original = self.result.by_id().get(doc.duplicate_of) if (self.result and doc.duplicate_of) else None
        if doc.fate == "removed":
            rule = f" · <code>{_escape(doc.rule)}</code>" if doc.rule else ""
            detail = f"Removed by {step_title(doc.step)}{rule}"
            detail += f": {_escape(doc.reason)}" if doc.reason else ""
            if doc.duplicate_of:
                similarity = f", similarity {doc.similarity:.2f}" if isinstance(doc.similarity, (int, float)) else ""
                detail += f"<br>Duplicate of <b>{_escape(doc.duplicate_of)}</b>{similarity}, which is kept."
        else:
            detail = _escape(doc.why()[0].upper() + doc.why()[1:]) + "."
        self.reason_label.setText(f"{head}<br>{detail}")
        if original is not None:
            self.diff.set_texts(original.text, doc.text, f"Kept: {original.id}", f"Removed: {doc.id}")
        elif doc.fate == "modified" and doc.final_text is not None:
            self.diff.set_texts(doc.text, doc.final_text, "Before", "After the steps")
        else:
            self.diff.set_single(doc.text, "Text" if doc.fate != "removed" else "Text (removed)")


def _escape(text: Any) -> str:
    import html

    return html.escape(str(text or ""))
