"""What a run produced (`artifact` events): checkpoints, models, tokenizers… with Open folder, or, for a
run on an SSH engine, Copy to this computer (`copy_requested(path)`; the monitor copies it)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)


def _meta_text(meta: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (meta or {}).items() if not isinstance(v, (dict, list)))


class ArtifactsView(QWidget):
    copy_requested = Signal(str)  # the selected artifact's path (on the engine's host)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.remote = False
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
        self.copy_button = QPushButton("Copy to this computer")
        self.copy_button.setToolTip("Copy the selected artifact from the SSH engine's host into this "
                                    "workspace's remote-outputs/ folder (rsync, else scp).")
        self.copy_button.clicked.connect(self._copy_selected)
        self.copy_button.hide()
        self.copy_status = QLabel("")
        self.copy_status.setObjectName("help")
        self.copy_status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.open_run_button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.copy_status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def clear(self) -> None:
        self.tree.clear()
        self._update_buttons()

    def set_run_dir(self, path: str | Path | None, remote: bool = False) -> None:
        """The run's folder; `remote`: it is on an SSH engine's host (Copy instead of Open)."""
        self.run_dir = Path(path) if path else None
        self.remote = remote
        self.copy_status.setText("")
        self.open_button.setVisible(not remote)
        self.open_run_button.setVisible(not remote)
        self.copy_button.setVisible(remote)
        self._update_buttons()

    def _copy_selected(self) -> None:
        items = self.tree.selectedItems()
        if items:
            self.copy_requested.emit(items[0].text(1))

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
        self.copy_button.setEnabled(bool(self.tree.selectedItems()))
