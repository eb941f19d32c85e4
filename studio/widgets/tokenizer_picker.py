"""Choosing a tokenizer: the tokenizers saved by earlier runs in the workspace, newest first, in a
combo box with "Choose folder…" (which the fine-tuning page's base-model picker reuses)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QWidget


@dataclass(frozen=True)
class FoundTokenizer:
    """A tokenizer folder produced by an earlier run in the workspace."""

    path: Path
    run_id: str
    source: str  # "tokenizer run" or "pretraining run"
    modified: float

    @property
    def label(self) -> str:
        return f"{self.run_id}  ({self.source})"


def find_tokenizers(workspace: str | Path | None) -> list[FoundTokenizer]:
    """Tokenizers saved by earlier runs, newest first: `runs/*/output/tokenizer` (tokenizer runs)
    and `runs/*/tokenizer` (pretraining runs)."""
    if not workspace:
        return []
    runs = Path(workspace).expanduser() / "runs"
    found = []
    for pattern, source in (("*/output/tokenizer/tokenizer.json", "tokenizer run"),
                            ("*/tokenizer/tokenizer.json", "pretraining run")):
        for file in runs.glob(pattern):
            run_dir = file.parent.parent if source == "pretraining run" else file.parent.parent.parent
            try:
                modified = file.stat().st_mtime
            except OSError:
                continue
            found.append(FoundTokenizer(file.parent, run_dir.name, source, modified))
    return sorted(found, key=lambda f: f.modified, reverse=True)


def tokenizer_name(path: str | Path | None) -> str:
    """How a tokenizer folder is named: by its run for a run's tokenizer, else by the folder."""
    if not path:
        return ""
    p = Path(path)
    if p.name in ("tokenizer", "tokenizer.json"):
        run = p.parent.parent if p.parent.name == "output" else p.parent
        return run.name or str(p)
    return p.name


class TokenizerPicker(QWidget):
    """A combo box of the workspace's tokenizers (newest first) and "Choose folder…"; emits the
    chosen folder. `add_path(path)` adds (and selects) any folder, as choosing one does."""

    chosen = Signal(str)
    CHOOSE = "Choose folder…"
    CHOOSE_TITLE = "Choose a tokenizer folder"

    def __init__(self, workspace: str | Path | None = None, none_label: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.none_label = none_label
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(18)
        self.combo.currentTextChanged.connect(self.combo.setToolTip)  # a long run id, whole when hovered
        self.combo.activated.connect(self._activated)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        self._extra: list[str] = []
        self.refresh()

    def set_workspace(self, workspace: str | Path | None) -> None:
        self.workspace = workspace
        self.refresh()

    def refresh(self) -> None:
        current = self.current_path()
        self.combo.blockSignals(True)
        self.combo.clear()
        if self.none_label:
            self.combo.addItem(self.none_label, "")
        seen = set()
        for found in self._found():
            self.combo.addItem(found.label, str(found.path))
            self.combo.setItemData(self.combo.count() - 1, str(found.path), Qt.ToolTipRole)
            seen.add(str(found.path))
        for path in self._extra:
            if path not in seen:
                self.combo.addItem(self._extra_label(path), path)
                self.combo.setItemData(self.combo.count() - 1, path, Qt.ToolTipRole)
        self.combo.addItem(self.CHOOSE, None)
        if current:
            index = self.combo.findData(current)
            if index >= 0:
                self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self.combo.setToolTip(self.combo.currentText())

    # A subclass offering other folders (base models) overrides these two.
    def _found(self) -> list:
        """The folders of earlier runs, newest first: items with `.label` and `.path`."""
        return find_tokenizers(self.workspace)

    def _extra_label(self, path: str) -> str:
        return tokenizer_name(path) or path

    def paths(self) -> list[str]:
        return [self.combo.itemData(i) for i in range(self.combo.count()) if self.combo.itemData(i)]

    def current_path(self) -> str | None:
        data = self.combo.currentData() if self.combo.count() else None
        return data or None

    def add_path(self, path: str | Path, select: bool = True) -> None:
        path = str(path)
        if path not in self.paths():
            self._extra.append(path)
            self.refresh()
        if select:
            self.select(path)

    def select(self, path: str | Path | None, emit: bool = True) -> None:
        index = self.combo.findData(str(path) if path else "")
        if index >= 0:
            self.combo.setCurrentIndex(index)
            if emit:
                self.chosen.emit(str(path) if path else "")

    def _activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data is None:  # "Choose folder…"
            folder = QFileDialog.getExistingDirectory(self, self.CHOOSE_TITLE, str(self.workspace or Path.home()))
            if folder:
                self.add_path(folder)
            else:
                self.refresh()
            return
        self.chosen.emit(data)
