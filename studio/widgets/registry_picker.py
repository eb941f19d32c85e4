"""Sources from LLaMA-Factory's dataset_info.json: pick the registry file, then its entries
(`path#name` sources). Entries Atelier cannot read (hub and script datasets, images) are listed
greyed out with the reason, so a migrating user sees at once what carries over."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget,
)

from engine.data.llamafactory import SEPARATOR, registry_names
from engine.errors import DataError

UNUSABLE = "cannot be used: "


class RegistryEntriesDialog(QDialog):
    """The entries of one dataset_info.json, each checkable when Atelier can read it."""

    def __init__(self, registry: Path | str, parent: QWidget | None = None):
        super().__init__(parent)
        self.registry = Path(registry)
        self.setWindowTitle(f"Datasets of {self.registry.name}")
        self.list = QListWidget()
        self.note = QLabel(f"Entries of {self.registry}: check the ones to train on.")
        self.note.setWordWrap(True)
        self.note.setObjectName("help")
        try:
            names = registry_names(self.registry)
        except DataError as e:
            names = {}
            self.note.setText(str(e))
        for name, what in names.items():
            usable = not what.startswith(UNUSABLE)
            item = QListWidgetItem(f"{name}  —  {what}")
            item.setData(Qt.UserRole, name)
            item.setToolTip(what)
            if usable:
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Unchecked)
            else:
                item.setFlags(item.flags() & ~Qt.ItemIsEnabled)
            self.list.addItem(item)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)
        self.resize(620, 380)

    def chosen(self) -> list[str]:
        """The checked entries as sources: `path/dataset_info.json#name`."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [f"{self.registry}{SEPARATOR}{item.data(Qt.UserRole)}" for item in items
                if item.flags() & Qt.ItemIsUserCheckable and item.checkState() == Qt.Checked]


def registry_button(parent: QWidget, add_source, text: str = "From dataset_info.json…") -> QPushButton:
    """A button that adds each dataset_info.json entry picked with `add_source(source)` (a short `text`
    where it sits in a narrow column of buttons)."""
    button = QPushButton(text)
    button.setToolTip("Datasets registered in LLaMA-Factory's dataset_info.json: its file_name, formatting, "
                      "ranking, columns and tags are honoured.")

    def pick() -> None:
        path, _ = QFileDialog.getOpenFileName(parent, "LLaMA-Factory's dataset registry", str(Path.home()),
                                              "Dataset registry (dataset_info.json *.json);;All files (*)")
        if not path:
            return
        dialog = RegistryEntriesDialog(path, parent)
        if dialog.exec() == QDialog.Accepted:
            for source in dialog.chosen():
                add_source(source)
    button.clicked.connect(pick)
    return button
