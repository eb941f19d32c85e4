"""What a run produced (`artifact` events): checkpoints, models, tokenizers… with Open folder, or, for a
run on an SSH engine, Copy to this computer (`copy_requested(path)`; the monitor copies it); and, once
the run has a model, adapter or checkpoint, Export… and Merge… (`ship_requested(kind)`; the monitor
opens the dialog).

Events name the files of the run's workspace relative to it (engine.rundir): a run on this computer
shows them where they are now, in the workspace it was opened from."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from engine.rundir import RunDirectory
from engine.workspace_paths import artifact_path


def _meta_text(meta: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (meta or {}).items() if not isinstance(v, (dict, list)))


# Artifacts a model can be exported or merged from.
SHIPPABLE = ("model", "adapter", "checkpoint")


class ArtifactsView(QWidget):
    copy_requested = Signal(str)  # the selected artifact's path (on the engine's host)
    ship_requested = Signal(str)  # "export" or "merge": the user asked to make files or a merge of this run

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
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write the run's model as GGUF files (llama.cpp, LM Studio, Ollama) with an "
                                      "Ollama Modelfile, verified against the model.")
        self.export_button.clicked.connect(lambda: self.ship_requested.emit("export"))
        self.merge_button = QPushButton("Merge…")
        self.merge_button.setToolTip("Fold the run's adapter into its base, average its last checkpoints, or merge "
                                     "it with other models.")
        self.merge_button.clicked.connect(lambda: self.ship_requested.emit("merge"))
        self.copy_status = QLabel("")
        self.copy_status.setObjectName("help")
        self.copy_status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.open_run_button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.copy_status, 1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.merge_button)
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
            if self.run_dir is not None and not self.remote:
                path = artifact_path(path, RunDirectory(self.run_dir).workspace)
            item = QTreeWidgetItem([str(event.get("kind", "")), path, _meta_text(event.get("meta") or {})])
            item.setToolTip(1, path)
            self.tree.addTopLevelItem(item)
        self._update_buttons()

    def paths(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(1) for i in range(self.tree.topLevelItemCount())]

    def folder_of(self, path: str) -> Path:
        p = Path(path)
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

    def shippable(self) -> bool:
        """Whether the run has something to export or merge (a model, an adapter or a checkpoint)."""
        return any(self.tree.topLevelItem(i).text(0) in SHIPPABLE for i in range(self.tree.topLevelItemCount()))

    def _update_buttons(self) -> None:
        shippable = self.shippable()
        self.export_button.setEnabled(shippable)
        self.merge_button.setEnabled(shippable)
        self.open_button.setEnabled(bool(self.tree.selectedItems()))
        self.open_run_button.setEnabled(self.run_dir is not None)
        self.copy_button.setEnabled(bool(self.tree.selectedItems()))
