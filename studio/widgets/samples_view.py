"""Generations made during training (`sample` events): step, prompt, generated text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget


class SamplesView(QWidget):
    """Newest samples first, the generated text wrapped so that it reads as prose."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Step", "Prompt", "Generated text"])
        self.table.verticalHeader().hide()
        self.table.setWordWrap(True)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.setColumnWidth(1, 160)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.table)

    def clear(self) -> None:
        self.table.setRowCount(0)

    def add_events(self, events: list[dict]) -> None:
        for event in events:
            self.table.insertRow(0)
            step = QTableWidgetItem(str(event.get("step", "")))
            step.setTextAlignment(Qt.AlignRight | Qt.AlignTop)
            asked = str(event.get("prompt", ""))
            prompt = QTableWidgetItem(asked.strip("\n"))  # its lines as lines, not escaped as \n
            prompt.setTextAlignment(Qt.AlignLeft | Qt.AlignTop)
            prompt.setToolTip(asked)
            generated = str(event.get("text", ""))
            text = QTableWidgetItem(generated.strip("\n") if generated.strip() else "(nothing generated yet)")
            text.setTextAlignment(Qt.AlignLeft | Qt.AlignTop)
            if not generated.strip():
                text.setForeground(self.palette().placeholderText())
            text.setToolTip(generated)
            for column, item in enumerate((step, prompt, text)):
                self.table.setItem(0, column, item)
        if events:
            self.table.resizeRowsToContents()

    def rows(self) -> list[tuple[str, str, str]]:
        return [tuple(self.table.item(r, c).text() for c in range(3)) for r in range(self.table.rowCount())]
