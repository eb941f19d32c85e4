"""Keyboard shortcuts: the one way a page binds a key (`shortcut`), each saying what it does, and the
Help ▸ Keyboard shortcuts dialog that lists them all — the window's menu actions and every page's
shortcuts, read from the widgets themselves, so the list cannot drift from what the keys do."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

# Keys that widgets handle themselves (no QShortcut to read them from).
BUILT_IN: tuple[tuple[str, str, str], ...] = (
    ("Runs", "Enter", "Open the selected run"),
    ("Runs", "Delete", "Move the selected runs to the trash (after asking)"),
    ("Runs", "F2", "Write the selected run's tags or notes"),
    ("Charts", "Ctrl+wheel", "Zoom a chart (the wheel alone scrolls the page; Reset view shows it whole)"),
    ("Fine-tune", "← →", "Move between the method cards"),
)


def shortcut(keys: str | QKeySequence | QKeySequence.StandardKey, widget: QWidget, slot: Callable[[], object],
             what: str) -> QShortcut:
    """Bind `keys` on `widget` and its children to `slot`; `what` says what it does (the Keyboard
    shortcuts dialog lists it)."""
    bound = QShortcut(QKeySequence(keys), widget)
    bound.setContext(Qt.WidgetWithChildrenShortcut)
    bound.setWhatsThis(what)
    bound.activated.connect(slot)
    return bound


def shortcut_rows(window: QWidget, pages: Iterable[tuple[str, QWidget]]) -> list[tuple[str, str, str]]:
    """(where, keys, what) for the window's actions, then each page's shortcuts, then the keys widgets
    handle themselves."""
    rows: list[tuple[str, str, str]] = []
    for action in window.actions():
        if isinstance(action, QAction) and not action.shortcut().isEmpty():
            rows.append(("Everywhere", action.shortcut().toString(QKeySequence.NativeText),
                         action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…")))
    for title, page in pages:
        seen = set()
        for bound in page.findChildren(QShortcut):
            keys = bound.key().toString(QKeySequence.NativeText)
            if (keys, bound.whatsThis()) not in seen:
                seen.add((keys, bound.whatsThis()))
                rows.append((title, keys, bound.whatsThis()))
    rows.extend(BUILT_IN)
    return rows


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut, by where it works. Public: `table`."""

    def __init__(self, rows: list[tuple[str, str, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "What it does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(720, 560)
