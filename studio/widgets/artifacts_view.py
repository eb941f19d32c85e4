"""What a run produced (`artifact` events): checkpoints, models, tokenizers… with Open folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget


def _meta_text(meta: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (meta or {}).items() if not isinstance(v, (dict, list)))


class ArtifactsView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Kind", "Path", "Details"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setColumnWidth(0, 110)
        self.tree.setColumnWidth(1, 460)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemDoubleClicked.connect(lambda *_: self.open_selected())
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip("Open the selected artifact's folder in the file manager.")
        self.open_button.clicked.connect(self.open_selected)
        self.open_run_button = QPushButton("Open run folder")
        self.open_run_button.clicked.connect(self.open_run_folder)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.open_run_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def clear(self) -> None:
        self.tree.clear()
        self._update_buttons()

    def set_run_dir(self, path: str | Path | None) -> None:
        self.run_dir = Path(path) if path else None
        self._update_buttons()

    def add_events(self, events: list[dict]) -> None:
        for event in events:
            path = str(event.get("path", ""))
            item = QTreeWidgetItem([str(event.get("kind", "")), path, _meta_text(event.get("meta") or {})])
            item.setToolTip(1, path)
            self.tree.addTopLevelItem(item)
        self._update_buttons()

    def paths(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(1) for i in range(self.tree.topLevelItemCount())]

    def folder_of(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute() and self.run_dir is not None:
            p = self.run_dir / p
        return p if p.is_dir() else p.parent

    def open_selected(self) -> bool:
        items = self.tree.selectedItems()
        if not items:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder_of(items[0].text(1)))))

    def open_run_folder(self) -> bool:
        if self.run_dir is None:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.run_dir)))

    def _update_buttons(self) -> None:
        self.open_button.setEnabled(bool(self.tree.selectedItems()))
        self.open_run_button.setEnabled(self.run_dir is not None)
