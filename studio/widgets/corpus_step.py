"""The corpus step of a SpecWizard: the form of the spec's sources, Add files/folder buttons, the
cleaned datasets of earlier clean runs, and a preview of a few documents of each source."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSplitter, QVBoxLayout, QWidget,
)

from studio.widgets.corpus_preview import source_preview
from studio.widgets.scrolled import scrolled


class CorpusStep:
    """Mixed into SpecWizard: the step `CORPUS_STEP`, showing the spec section `CORPUS_SECTION`. It
    uses the wizard's `_step_page`, `_form`, `steps`, `forms`, `go_to_step` and `validate`."""

    def _build_corpus_step(self, preview_height: int, sizes: list[int], offer_datasets: bool = True) -> None:
        """The corpus step: its form, Add files/folder buttons, the cleaned datasets of earlier runs,
        and a preview of the sources below."""
        page, layout = self._step_page(self.CORPUS_STEP)
        form = self._form(self.CORPUS_STEP)
        buttons = self._source_buttons()
        self.dataset_picker = None
        dataset_row = None
        if offer_datasets:
            from studio.widgets.dataset_picker import DatasetPicker

            self.dataset_picker = DatasetPicker(self.workspace)
            self.dataset_picker.chosen.connect(self.use_dataset)
            dataset_row = QHBoxLayout()
            dataset_row.addWidget(QLabel("Use a cleaned dataset"))
            dataset_row.addWidget(self.dataset_picker, 1)
        preview_box = QGroupBox("Preview")
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("Add a source to see a few of its documents.")
        self.preview.setMinimumHeight(preview_height)
        QVBoxLayout(preview_box).addWidget(self.preview)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 8, 0)
        if dataset_row is not None:
            top_layout.addLayout(dataset_row)  # first: the usual corpus once the Data page has cleaned one
        top_layout.addLayout(buttons)
        top_layout.addWidget(form)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(scrolled(top))
        splitter.addWidget(preview_box)
        splitter.setSizes(sizes)
        splitter.setStretchFactor(1, 1)  # a taller window shows more of the documents
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.steps.addWidget(page)

    # Whether "From dataset_info.json…" is offered: wizards whose job reads records (fine-tuning,
    # generate prompts) can take LLaMA-Factory registry entries; text corpora cannot.
    OFFER_REGISTRY = False
    # What the file dialog of "Add files…" offers (a wizard of other data changes it).
    SOURCE_FILES = ("Add text files", "Text corpora (*.txt *.jsonl *.json *.csv *.parquet);;All files (*)")

    def _source_buttons(self, *extra: QPushButton) -> QHBoxLayout:
        """Add files… and Add folder… (then `extra`), above the sources; the list's own Add becomes
        "Type…", for a path pattern, a hub id or a built-in source."""
        self.add_file_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_file_button.clicked.connect(self._add_files)
        self.add_folder_button.clicked.connect(self._add_folder)
        typed = self.forms[self.CORPUS_STEP].editor(f"{self.CORPUS_SECTION}.sources").add_button
        typed.setText("Type…")
        typed.setToolTip("Type a source: a path or pattern (data/**/*.jsonl), a hub dataset id, or a built-in one.")
        if self.OFFER_REGISTRY:
            from studio.widgets.registry_picker import registry_button

            extra = (*extra, registry_button(self, self.add_source))
        buttons = QHBoxLayout()
        for button in (self.add_file_button, self.add_folder_button, *extra):
            buttons.addWidget(button)
        buttons.addStretch(1)
        return buttons

    def _add_files(self) -> None:
        title, filters = self.SOURCE_FILES
        paths, _ = QFileDialog.getOpenFileNames(self, title, str(Path.home()), filters)
        for path in paths:
            self.add_source(path)

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of data files", str(Path.home()))
        if path:
            self.add_source(path)

    def add_source(self, source: str) -> None:
        """Add a file or folder to the sources; it replaces a built-in source (the wizard's default
        stand-in for data of one's own), which stays one click away."""
        editor = self.forms[self.CORPUS_STEP].editor(f"{self.CORPUS_SECTION}.sources")
        kept = [s for s in editor.value() or [] if not s.startswith("builtin:")]
        editor.set_value([*kept, str(source)])

    def use_dataset(self, path: str) -> None:
        """Make the folder of a cleaned dataset the corpus (the only source) and show the corpus step."""
        if not path:
            return
        form = self.forms[self.CORPUS_STEP]
        form.editor(f"{self.CORPUS_SECTION}.sources").set_value([str(path)])
        if f"{self.CORPUS_SECTION}.text_field" in form.fields:
            form.editor(f"{self.CORPUS_SECTION}.text_field").set_value("text")  # the column a clean run writes
        self.go_to_step(self.STEPS.index(self.CORPUS_STEP))
        self.update_preview()
        self.validate()

    def update_preview(self) -> None:
        values = self.forms[self.CORPUS_STEP].values()[self.CORPUS_SECTION]
        parts = []
        for source in (values.get("sources") or [])[:6]:
            preview = source_preview(source, values.get("text_field") or "text", limit=4)
            parts.append(f"■ {source}" + (f"  —  {preview.note}" if preview.note else ""))
            for doc in preview.documents:
                text = doc.text if len(doc.text) < 600 else doc.text[:600] + " …"
                parts.append(f"  [{doc.source}]\n" + "\n".join("  " + line for line in text.splitlines()))
            parts.append("")
        self.preview.setPlainText("\n".join(parts).rstrip())
