"""The Runs page: every run in the store, filtered by kind, state and name; open, compare, delete.

A thin view over `Store.runs()`. With a `RunTracker` it refreshes itself (coalesced on a timer) as
runs are added, change state or report progress.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (QAbstractTableModel, QEvent, QItemSelectionModel, QModelIndex, QObject,
                            QSortFilterProxyModel, Qt, QTimer, Signal)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QMessageBox, QPushButton, QStackedWidget, QStyledItemDelegate, QTableView,
                               QVBoxLayout, QWidget)

from engine.kinds import KINDS
from studio.models.engine_schema import kind_title
from studio.models.store import RunRecord, Store, headline_value
from studio.widgets import formatting

# The most telling first: on a laptop's screen the last ones scroll into view.
COLUMNS = ("Name", "ID", "Kind", "State", "Result", "Step", "Duration", "Created", "Tags", "Notes")
NAME, RUN_ID, KIND, STATE, RESULT, STEP, DURATION, CREATED, TAGS, NOTES = range(len(COLUMNS))
EDITABLE = {TAGS: "tags", NOTES: "notes"}  # the user's own columns: F2, or a click on a selected cell
NUMERIC = (STEP, DURATION)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 2

STATE_FILTERS = (("Any state", None), ("Active", "active"), ("Completed", "completed"),
                 ("Cancelled", "cancelled"), ("Failed", "failed"))
STATE_COLORS = {"running": "#2f7fd8", "starting": "#2f7fd8", "completed": "#2e9e5b",
                "cancelled": "#b08a2e", "failed": "#d64545"}

EMPTY_TEXT = ("No runs yet.\n\nStart one from a workflow in the sidebar (Pretrain, Fine-tune, …). "
              "Runs started with `studio-engine run` in this workspace appear here too.")
EMPTY_DEMO_TEXT = ("No runs yet.\n\n“Run the demo” (above) cleans the embedded corpus, pretrains a small model on "
                   "it and fine-tunes it; each stage appears here as it starts. Or start a run from a workflow "
                   "in the sidebar (Pretrain, Fine-tune, …); runs started with `studio-engine run` in this "
                   "workspace appear here too.")
NO_MATCH_TEXT = "No runs match these filters."


def move_to_trash(path: Path) -> bool:
    """Move a file or folder to the system trash; False when the platform or volume has none."""
    from PySide6.QtCore import QFile
    result = QFile.moveToTrash(str(path))
    return bool(result[0] if isinstance(result, tuple) else result)


@dataclass(frozen=True)
class RunResult:
    """What a run is judged by, for its row: the kind's headline figure, else its loss."""

    text: str
    value: float | None


def run_result(store: Store, record: RunRecord) -> RunResult:
    found = store.headline_series(record.run_id, record.kind)
    if found is not None:
        figure, values = found
        last = float(values[-1])
        return RunResult(f"{figure.caption} {headline_value(figure, last)}", last)
    loss = store.final_loss(record)
    return RunResult("—" if loss is None else f"loss {loss:.4f}", loss)


class MiddleElided(QStyledItemDelegate):
    """Cuts a cell's text in the middle: a run id's end (its date, time and tag) tells it apart."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


class RunsTableModel(QAbstractTableModel):
    """Rows of RunRecord with the result of each, for the runs table; tags and notes are edited in
    place and written to the store."""

    def __init__(self, store: Store | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.records: list[RunRecord] = []
        self.results: dict[str, RunResult] = {}

    def set_records(self, records: list[RunRecord], results: dict[str, RunResult]) -> None:
        self.beginResetModel()
        self.records, self.results = records, results
        self.endResetModel()

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsEditable if index.isValid() and index.column() in EDITABLE else flags

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or index.column() not in EDITABLE or self.store is None:
            return False
        record = self.records[index.row()]
        self.store.set_run_notes(record.run_id, **{EDITABLE[index.column()]: str(value)})
        self.records[index.row()] = self.store.get_run(record.run_id) or record
        self.dataChanged.emit(index, index)
        return True

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.TextAlignmentRole:
            if section in NUMERIC:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section in EDITABLE:
            return "Yours to write: F2, or click a selected row's cell. The filter searches them too."
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        record, column = self.records[index.row()], index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._text(record, column)
        if role == SORT_ROLE:
            return self._sort_key(record, column)
        if role == RUN_ID_ROLE:
            return record.run_id
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (NAME, RUN_ID):
                return f"{record.run_id}\n{record.run_dir}"
            if column == STATE and record.error:
                return record.error.get("message") or str(record.error)
            if column in (TAGS, NOTES) and self._text(record, column):
                return self._text(record, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE and record.state in STATE_COLORS:
            return QColor(STATE_COLORS[record.state])
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, record: RunRecord, column: int) -> str:
        if column == NAME:
            return record.name or record.run_id
        if column == RUN_ID:
            return record.run_id
        if column == KIND:
            return kind_title(record.kind) if record.kind else "—"
        if column == STATE:
            return record.state.capitalize()
        if column == STEP:
            if record.step is None:
                return "—"
            return f"{record.step:,} / {record.total_steps:,}" if record.total_steps else f"{record.step:,}"
        if column == CREATED:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created)) if record.created else ""
        if column == DURATION:
            return formatting.duration(record.duration_s)
        if column == RESULT:
            result = self.results.get(record.run_id)
            return result.text if result else "—"
        if column == TAGS:
            return record.tags
        if column == NOTES:
            return record.notes
        return ""

    def _sort_key(self, record: RunRecord, column: int):
        if column == STEP:
            return record.step if record.step is not None else -1
        if column == CREATED:
            return record.created or 0.0
        if column == DURATION:
            return record.duration_s if record.duration_s is not None else -1.0
        if column == RESULT:
            result = self.results.get(record.run_id)
            return float("inf") if result is None or result.value is None else result.value
        return self._text(record, column).lower()


class RunsPage(QWidget):
    """The table of runs.

    Signals: `open_run(run_id)` (Enter, double click, Open), `compare_runs(list[run_id])` (two or
    more selected, Compare), `runs_deleted(list[run_id])` after a delete.
    """

    open_run = Signal(str)
    compare_runs = Signal(list)
    runs_deleted = Signal(list)

    def __init__(self, store: Store, tracker: QObject | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.tracker = tracker
        self.setObjectName("RunsPage")

        title = QLabel("Runs")
        title.setObjectName("pageTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(200)
        self.kind_filter = QComboBox()
        self.state_filter = QComboBox()
        for label, value in STATE_FILTERS:
            self.state_filter.addItem(label, value)
        self.open_button = QPushButton("Open")
        self.compare_button = QPushButton("Compare")
        self.delete_button = QPushButton("Delete…")
        self.open_button.setToolTip("Open the selected run (Enter)")
        self.compare_button.setToolTip("Overlay the charts of the selected runs (select two or more)")
        self.delete_button.setToolTip("Move the selected runs' folders to the trash (Delete)")

        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        filters.addWidget(self.kind_filter)
        filters.addWidget(self.state_filter)
        filters.addStretch(1)
        filters.addWidget(self.open_button)
        filters.addWidget(self.compare_button)
        filters.addWidget(self.delete_button)

        self.model = RunsTableModel(store, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.SelectedClicked)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        # Room between a right-aligned column (Step) and the left-aligned one after it (Created).
        self.table.setStyleSheet("QTableView::item { padding-left: 6px; padding-right: 10px; }"
                                 "QHeaderView::section { padding-left: 6px; padding-right: 10px; }")
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setFrameShape(QFrame.Shape.NoFrame)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        # The kind column fits the longest title a kind has ("Reward model").
        kind_width = max(self.table.fontMetrics().horizontalAdvance(kind.title) for kind in KINDS.values()) + 28
        for column, width in ((NAME, 170), (RUN_ID, 150), (KIND, max(95, kind_width)), (STATE, 105), (RESULT, 185),
                              (STEP, 120), (DURATION, 80), (CREATED, 135), (TAGS, 110), (NOTES, 160)):
            self.table.setColumnWidth(column, max(width, header.sectionSizeHint(column)))
        # A long name ends in "…", an id is cut in its middle (both whole in their tooltips); ten columns
        # scroll sideways on a laptop's screen.
        self.id_delegate = MiddleElided(self.table)
        self.table.setItemDelegateForColumn(RUN_ID, self.id_delegate)
        self.table.setProperty("scrollsSideways", True)
        self.table.installEventFilter(self)
        self.table.doubleClicked.connect(self._double_clicked)

        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)  # drawn in the muted text colour of the theme
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        # The demo needs an engine to run it: without a tracker, no button.
        self.demo = None
        if tracker is not None:
            from studio.pages.first_run.page import DemoPanel

            self.demo = DemoPanel(tracker, compact=True)
            self.demo.started.connect(self.refresh)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addSpacing(16)
        if self.demo is not None:
            header.addWidget(self.demo, 1)
        else:
            header.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addLayout(filters)
        layout.addWidget(self.stack, 1)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(500)
        self._refresh_timer.timeout.connect(self.refresh)

        self.search.textChanged.connect(self.refresh)
        self.kind_filter.currentIndexChanged.connect(self.refresh)
        self.state_filter.currentIndexChanged.connect(self.refresh)
        self.open_button.clicked.connect(self.open_current)
        self.compare_button.clicked.connect(self.compare_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        if tracker is not None:
            tracker.run_added.connect(self.schedule_refresh)
            tracker.run_state_changed.connect(self.schedule_refresh)
            tracker.run_events.connect(self.schedule_refresh)
        self.refresh()

    # ------------------------------------------------------------------------------ contents
    def schedule_refresh(self, *_: object) -> None:
        """Refresh soon; many calls in a burst make one refresh."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def refresh(self) -> None:
        if self.table.state() == QAbstractItemView.State.EditingState:
            self.schedule_refresh()  # a note being typed is not thrown away by a run's progress
            return
        selected = set(self.selected_run_ids())
        self._refresh_kinds()
        records = self.store.runs(kind=self.kind_filter.currentData(), state=self.state_filter.currentData(),
                                  text=self.search.text().strip() or None)
        self.model.set_records(records, {r.run_id: run_result(self.store, r) for r in records})
        if records:
            self.stack.setCurrentWidget(self.table)
        else:
            filtered = bool(self.search.text().strip() or self.kind_filter.currentData()
                            or self.state_filter.currentData())
            self.empty.setText(NO_MATCH_TEXT if filtered else EMPTY_DEMO_TEXT if self.demo is not None else EMPTY_TEXT)
            self.stack.setCurrentWidget(self.empty)
        if selected:
            self.select_runs(selected)
        self._update_buttons()

    def _refresh_kinds(self) -> None:
        kinds = self.store.kinds()
        current = self.kind_filter.currentData()
        have = [self.kind_filter.itemData(i) for i in range(1, self.kind_filter.count())]
        if self.kind_filter.count() and have == kinds:
            return
        self.kind_filter.blockSignals(True)
        self.kind_filter.clear()
        self.kind_filter.addItem("All kinds", None)
        for kind in kinds:
            self.kind_filter.addItem(kind_title(kind), kind)
        index = self.kind_filter.findData(current) if current else 0
        self.kind_filter.setCurrentIndex(max(index, 0))
        self.kind_filter.blockSignals(False)

    def run_ids(self) -> list[str]:
        """The run ids shown, top to bottom."""
        return [self.proxy.index(row, 0).data(RUN_ID_ROLE) for row in range(self.proxy.rowCount())]

    def selected_run_ids(self) -> list[str]:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [self.proxy.index(row, 0).data(RUN_ID_ROLE) for row in rows]

    def select_runs(self, run_ids: set[str] | list[str]) -> None:
        wanted = set(run_ids)
        selection = self.table.selectionModel()
        selection.clearSelection()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(RUN_ID_ROLE) in wanted:
                selection.select(index, flags)
                if not selection.currentIndex().isValid():
                    selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _update_buttons(self, *_: object) -> None:
        count = len(self.selected_run_ids())
        self.open_button.setEnabled(count == 1)
        self.compare_button.setEnabled(count >= 2)
        self.delete_button.setEnabled(count >= 1)

    # ------------------------------------------------------------------------------- actions
    def _double_clicked(self, index: QModelIndex) -> None:
        if index.column() in EDITABLE:
            self.table.edit(index)  # the user's own notes and tags
        else:
            self.open_run.emit(index.data(RUN_ID_ROLE))

    def open_current(self) -> None:
        selected = self.selected_run_ids()
        current = self.table.currentIndex()
        run_id = current.data(RUN_ID_ROLE) if current.isValid() else (selected[0] if selected else None)
        if run_id:
            self.open_run.emit(run_id)

    def compare_selected(self) -> None:
        selected = self.selected_run_ids()
        if len(selected) >= 2:
            self.compare_runs.emit(selected)

    def delete_selected(self) -> None:
        self.delete_runs(self.selected_run_ids())

    def delete_runs(self, run_ids: list[str]) -> list[str]:
        """Ask, then move the runs' folders to the trash (or, if asked again, delete them for good)
        and forget them. Returns the run ids deleted."""
        records = [r for r in (self.store.get_run(i) for i in run_ids) if r is not None]
        if not records:
            return []
        active = [r for r in records if r.active]
        if active:
            names = ", ".join(r.name or r.run_id for r in active)
            self.inform("Runs still running", f"Stop {names} before deleting: a running run keeps writing "
                                              "to its folder.")
            return []
        if len(records) == 1:
            question = (f"Delete the run “{records[0].name or records[0].run_id}”?\n\n"
                        "Its folder (checkpoints, outputs, logs) moves to the trash.")
        else:
            question = f"Delete {len(records)} runs?\n\nTheir folders (checkpoints, outputs, logs) move to the trash."
        if not self.confirm("Delete runs", question):
            return []
        deleted = []
        for record in records:
            if self._remove_folder(record):
                self.store.delete_run(record.run_id)
                deleted.append(record.run_id)
        self.refresh()
        if deleted:
            self.runs_deleted.emit(deleted)
        return deleted

    def _remove_folder(self, record: RunRecord) -> bool:
        path = Path(record.run_dir) if record.run_dir else None
        if path is None or not path.exists():
            return True
        if move_to_trash(path):
            return True
        if not self.confirm("Delete for good?",
                            f"The folder {path} could not be moved to the trash (this disk may have none).\n\n"
                            "Delete it permanently? This cannot be undone.", destructive=True):
            return False
        try:
            shutil.rmtree(path)
        except OSError as exc:
            self.inform("Could not delete", f"Could not delete {path}: {exc.strerror or exc}. "
                                            "Check its permissions, then try again.")
            return False
        return True

    # Dialogs are methods so tests (and embedding code) can answer them without a modal loop.
    def confirm(self, title: str, text: str, destructive: bool = False) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Delete permanently" if destructive else "Delete")
        return box.exec() == QMessageBox.StandardButton.Yes

    def inform(self, title: str, text: str) -> None:
        QMessageBox.information(self, title, text)

    # ------------------------------------------------------------------------------ keyboard
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.open_current()
                return True
            if key == Qt.Key.Key_Delete:
                self.delete_selected()
                return True
        return super().eventFilter(watched, event)
