"""The cleaned datasets of earlier clean runs, offered as a corpus by the tokenizer and pretraining
wizards: a clean run writes `runs/<id>/output/dataset/` (Parquet or JSONL, column `text`) and its
figures in `output/report.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QWidget

DATA_SUFFIXES = (".parquet", ".jsonl")


@dataclass(frozen=True)
class FoundDataset:
    path: Path  # the dataset folder
    run_id: str
    documents: int | None
    format: str
    modified: float

    @property
    def label(self) -> str:
        count = f"{self.documents:,} documents, " if self.documents is not None else ""
        return f"{self.run_id}  ({count}{self.format})"


def find_datasets(workspace: str | Path | None) -> list[FoundDataset]:
    """Datasets written by earlier clean runs (`runs/*/output/dataset`), newest first."""
    if not workspace:
        return []
    found = []
    for folder in (Path(workspace).expanduser() / "runs").glob("*/output/dataset"):
        files = [p for p in folder.iterdir() if p.suffix in DATA_SUFFIXES] if folder.is_dir() else []
        if not files:
            continue
        try:
            report = json.loads((folder.parent / "report.json").read_text(encoding="utf-8"))
            output = report.get("output") or {}
        except (OSError, ValueError, AttributeError):
            output = {}
        documents = output.get("documents") if isinstance(output.get("documents"), int) else None
        fmt = output.get("format") or files[0].suffix.lstrip(".")
        found.append(FoundDataset(folder, folder.parent.parent.name, documents, str(fmt),
                                  max(p.stat().st_mtime for p in files)))
    return sorted(found, key=lambda f: f.modified, reverse=True)


class DatasetPicker(QWidget):
    """A combo box of the workspace's cleaned datasets; emits `chosen(folder)` when one is picked.

    The first entry (`none_label`) chooses nothing; with no cleaned dataset the box says so and is
    disabled. `refresh()` rescans (the wizards call it as their corpus step is shown).
    """

    chosen = Signal(str)

    def __init__(self, workspace: str | Path | None = None,
                 none_label: str = "Cleaned datasets of earlier runs…", parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.none_label = none_label
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(24)
        self.combo.setToolTip("Use the dataset written by a clean run (Data page) as the corpus.")
        self.combo.activated.connect(self._activated)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        self.refresh()

    def set_workspace(self, workspace: str | Path | None) -> None:
        self.workspace = workspace
        self.refresh()

    def refresh(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        datasets = find_datasets(self.workspace)
        self.combo.addItem(self.none_label if datasets else "No cleaned datasets yet (clean one on the Data page)", "")
        for found in datasets:
            self.combo.addItem(found.label, str(found.path))
            self.combo.setItemData(self.combo.count() - 1, str(found.path), Qt.ToolTipRole)
        self.combo.setEnabled(bool(datasets))
        self.combo.blockSignals(False)

    def paths(self) -> list[str]:
        return [self.combo.itemData(i) for i in range(self.combo.count()) if self.combo.itemData(i)]

    def choose(self, path: str | Path) -> None:
        """Pick `path` as if the user had chosen it (tests, and the report's Use buttons)."""
        self.chosen.emit(str(path))

    def _activated(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path:
            self.chosen.emit(path)
        # The box is an action, not a state: back to its label, so the sources list is the one truth.
        self.combo.setCurrentIndex(0)
