"""The log of a run (its `log` events) with a minimum-level filter."""

from __future__ import annotations

import time

from PySide6.QtGui import QFont, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

LEVELS = ("debug", "info", "warning", "error")


def level_rank(level: str) -> int:
    level = (level or "info").lower()
    if level in ("warn",):
        level = "warning"
    if level in ("critical", "fatal"):
        level = "error"
    return LEVELS.index(level) if level in LEVELS else 1


class LogView(QWidget):
    """Appends log lines as they arrive; the level box hides lines below the chosen level."""

    MAX_LINES = 20_000

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.records: list[tuple[int, str]] = []
        self.level_box = QComboBox()
        for level in LEVELS:
            self.level_box.addItem(level.capitalize(), LEVELS.index(level))
        self.level_box.setCurrentIndex(1)
        self.level_box.currentIndexChanged.connect(self._rebuild)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(self.MAX_LINES)
        self.text.setLineWrapMode(QPlainTextEdit.NoWrap)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        mono.setPointSizeF(max(QFont().pointSizeF() - 0.5, 9))
        self.text.setFont(mono)
        self.text.setPlaceholderText("No log messages yet.")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show from level"))
        bar.addWidget(self.level_box)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)

    @property
    def min_level(self) -> int:
        return self.level_box.currentData()

    def set_min_level(self, level: str) -> None:
        self.level_box.setCurrentIndex(level_rank(level))

    def clear(self) -> None:
        self.records.clear()
        self.text.clear()

    def add_events(self, events: list[dict]) -> None:
        lines = []
        for event in events:
            rank = level_rank(event.get("level", "info"))
            stamp = time.strftime("%H:%M:%S", time.localtime(event.get("t") or 0))
            line = f"{stamp}  {LEVELS[rank].upper():<7}  {event.get('message', '')}"
            self.records.append((rank, line))
            if rank >= self.min_level:
                lines.append(line)
        if len(self.records) > self.MAX_LINES:
            del self.records[: len(self.records) - self.MAX_LINES]
        if lines:
            self.text.appendPlainText("\n".join(lines))
            self.text.moveCursor(QTextCursor.End)

    def visible_lines(self) -> list[str]:
        text = self.text.toPlainText()
        return text.splitlines() if text else []

    def _rebuild(self) -> None:
        self.text.setPlainText("\n".join(line for rank, line in self.records if rank >= self.min_level))
        self.text.moveCursor(QTextCursor.End)
