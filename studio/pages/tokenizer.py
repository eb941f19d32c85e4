"""The tokenizer wizard: Corpus → Tokenizer → Report → Review → Launch, then the results.

The forms are generated from the `tokenizer` spec's JSON schema; this page adds the corpus preview,
the live token preview of saved tokenizers, and the results view: the run's progress while it
trains, then the new tokenizer side by side with another one and the report's figures as a table.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QListWidget, QPlainTextEdit,
    QProgressBar, QPushButton, QSplitter, QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine.rundir import ACTIVE_STATES
from engine.specs import SpecError, json_schema, parse_spec, spec_to_yaml
from studio.pages.pretrain import _deep_merge, _mono, _scrolled, spec_to_yaml_unvalidated
from studio.widgets.corpus_preview import source_preview
from studio.widgets.spec_form import SpecForm
from studio.widgets.token_view import TokenCompareView, TokenizerPicker

KIND = "tokenizer"
STEPS = ("Corpus", "Tokenizer", "Report", "Review")
# Which top-level spec properties each form step shows; "Tokenizer" takes every property the others do not.
FIXED_FIELDS = {"Corpus": ["name", "data", "seed"], "Report": ["report"]}
STEP_INTROS = {
    "Corpus": "The text the tokenizer learns from. The preview shows a few documents of each source.",
    "Tokenizer": "Algorithm and vocabulary size, special tokens, normalisation and the chat template.",
    "Report": "The held-out sample the quality figures are measured on, and tokenizers to compare with.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
REPORT_COLUMNS = (("name", "Tokenizer"), ("vocab_size", "Vocabulary"), ("tokens", "Tokens"),
                  ("bytes_per_token", "Bytes/token"), ("chars_per_token", "Chars/token"),
                  ("tokens_per_word", "Tokens/word"), ("unk_rate", "Unknown"),
                  ("vocab_used", "Vocab used"), ("longest_tokens", "Longest tokens"))


def step_fields(schema: dict) -> dict[str, list[str]]:
    taken = {"kind", *(f for fields in FIXED_FIELDS.values() for f in fields)}
    rest = [name for name in schema.get("properties", {}) if name not in taken]
    return {"Corpus": FIXED_FIELDS["Corpus"], "Tokenizer": rest, "Report": FIXED_FIELDS["Report"]}


def format_figure(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in ("unk_rate",):
        return f"{value:.2%}"
    if key == "vocab_used":
        return f"{value:.1%}"
    if key in ("vocab_size", "tokens") and isinstance(value, (int, float)):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return "  ".join(repr(v)[1:-1] if isinstance(v, str) else str(v) for v in value)
    return str(value)


class TokenizerResults(QWidget):
    """A tokenizer run: progress while it trains; then its tokens beside another tokenizer's and the
    report table. Public: `run_id`, `state`, `progress`, `status_label`, `compare`, `report_table`,
    `report`, `load(run_id)`."""

    def __init__(self, store: Any, tracker: Any, workspace: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker, self.workspace = store, tracker, workspace
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.state = ""
        self.report: dict | None = None
        self.title = QLabel("")
        self.title.setObjectName("pageTitle")
        self.state_label = QLabel("")
        self.state_label.setObjectName("badge")
        self.new_button = QPushButton("New tokenizer")
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._stop)
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.state_label)
        header.addStretch(1)
        header.addWidget(self.stop_button)
        header.addWidget(self.new_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        self.compare = TokenCompareView(workspace)
        compare_box = QGroupBox("Tokens")
        compare_layout = QVBoxLayout(compare_box)
        compare_layout.addWidget(self.compare)
        self.report_table = QTableWidget(0, len(REPORT_COLUMNS))
        self.report_table.setHorizontalHeaderLabels([title for _, title in REPORT_COLUMNS])
        self.report_table.horizontalHeaderItem(5).setToolTip("Fertility: tokens per whitespace-separated word.")
        self.report_table.verticalHeader().hide()
        self.report_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.report_table.setSelectionMode(QAbstractItemView.NoSelection)
        header_view = self.report_table.horizontalHeader()
        header_view.setSectionResizeMode(QHeaderView.ResizeToContents)
        header_view.setStretchLastSection(True)
        self.report_note = QLabel("")
        self.report_note.setObjectName("help")
        self.report_note.setWordWrap(True)
        report_box = QGroupBox("Quality on held-out text")
        report_layout = QVBoxLayout(report_box)
        report_layout.addWidget(self.report_table)
        report_layout.addWidget(self.report_note)
        self.results = QSplitter(Qt.Vertical)
        self.results.addWidget(compare_box)
        self.results.addWidget(report_box)
        self.results.setSizes([420, 200])
        self.results.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.results, 1)
        if tracker is not None:
            tracker.run_events.connect(self.on_events)
            tracker.run_state_changed.connect(self.on_state_changed)

    def load(self, run_id: str) -> None:
        """Show `run_id`: what the store has now, live events as they come."""
        self.run_id = run_id
        self.report = None
        record = self.store.get_run(run_id) if self.store is not None else None
        self.title.setText(record.name if record and record.name else run_id)
        self.title.setToolTip(run_id)
        self.run_dir = Path(record.run_dir) if record and record.run_dir else self.workspace / "runs" / run_id
        self.progress.setRange(0, 0)
        self.status_label.setText("Starting…")
        if record is not None:
            if record.progress_total:
                self._set_progress(record.progress_stage, record.progress_done, record.progress_total)
            logs = self.store.events(run_id, "log")
            if logs:
                self.status_label.setText(logs[-1].get("message", ""))
        self.set_state(record.state if record else "starting")

    def on_events(self, run_id: str, events: list) -> None:
        if run_id != self.run_id:
            return
        for event in events:
            kind = event.get("type")
            if kind == "progress":
                self._set_progress(event.get("stage"), event.get("done"), event.get("total"))
            elif kind == "log" and event.get("level") != "debug":
                self.status_label.setText(event.get("message", ""))
            elif kind == "finished":
                self.set_state(event.get("status") or "completed")

    def on_state_changed(self, run_id: str, state: str) -> None:
        if run_id == self.run_id:
            self.set_state(state)

    def _set_progress(self, stage: str | None, done: Any, total: Any) -> None:
        if isinstance(total, (int, float)) and total > 0 and isinstance(done, (int, float)):
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(done / total, 1.0)))
            self.progress.setFormat(f"{stage or ''}  {done:,.0f} / {total:,.0f}".strip())
        else:
            self.progress.setRange(0, 0)
        self.progress.setToolTip(stage or "")

    def set_state(self, state: str) -> None:
        self.state = state
        self.state_label.setText(state)
        active = state in ACTIVE_STATES
        self.progress.setVisible(active)
        self.stop_button.setVisible(active)
        self.results.setVisible(not active)
        if state == "completed":
            self.show_results()
        elif state in ("failed", "cancelled"):
            record = self.store.get_run(self.run_id) if self.store is not None and self.run_id else None
            error = (record.error or {}) if record else {}
            message = error.get("message") or f"The run ended {state}."
            self.status_label.setText(message + (f"\n{error['hint']}" if error.get("hint") else ""))
            self.show_results()

    def tokenizer_folder(self) -> Path | None:
        return self.run_dir / "output" / "tokenizer" if self.run_dir else None

    def show_results(self) -> None:
        """Load the new tokenizer into the compare view and the report into the table."""
        folder = self.tokenizer_folder()
        if folder is None or not (folder / "tokenizer.json").is_file():
            self.results.setVisible(False)
            return
        self.results.setVisible(True)
        self.compare.set_workspace(self.workspace)
        report = read_report(self.run_dir / "output" / "report.json")
        self.report = report
        other = self._comparison_folder()
        self.compare.set_tokenizers(str(folder), other)
        self.fill_report(report)
        if self.state == "completed":
            self.status_label.setText(f"Saved to {folder}. Type in the box to see how it splits any text.")

    def _comparison_folder(self) -> str | None:
        """The first compared tokenizer that is a folder here (hub ids are not loaded in the GUI)."""
        import yaml

        try:
            spec = yaml.safe_load((self.run_dir / "spec.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            spec = {}
        compare_with = (spec.get("report") or {}).get("compare_with") if isinstance(spec, dict) else None
        for path in compare_with or []:
            if (Path(path).expanduser() / "tokenizer.json").is_file():
                return str(Path(path).expanduser())
        return None

    def fill_report(self, report: dict | None) -> None:
        rows = (report or {}).get("tokenizers") or []
        self.report_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _) in enumerate(REPORT_COLUMNS):
                item = QTableWidgetItem(format_figure(key, row.get(key)))
                if key not in ("name", "longest_tokens"):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                item.setToolTip(format_figure(key, row.get(key)))
                self.report_table.setItem(r, c, item)
        sample = (report or {}).get("sample") or {}
        if rows:
            self.report_note.setText(
                f"Measured on {sample.get('documents', 0):,} held-out documents "
                f"({sample.get('characters', 0):,} characters). More bytes or characters per token and fewer "
                "tokens per word (fertility) mean shorter sequences for the same text.")
        else:
            self.report_note.setText("No report.json in this run.")

    def _stop(self) -> None:
        if self.tracker is not None and self.run_id:
            self.tracker.cancel(self.run_id)


def read_report(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class TokenizerPage(QWidget):
    """The wizard, then the results of the run it launched.

    Driving it from a test: `set_spec_data(dict)`, `spec_data()`, `build_spec()`, `validate()`,
    `go_to_review()`, `launch_button.click()` (or `launch()`); `launched(run_id)` fires once the
    engine accepted the run and `results` (TokenizerResults) then shows it. `show_run(run_id)`
    opens any tokenizer run's results. Also public: `forms`, `step_list`, `steps`, `preview`,
    `compare_picker`, `yaml_view`, `command_label`, `problems_label`, `status_label`,
    `last_spec_path`, `set_workspace(path, tracker)`.
    """

    launched = Signal(str)

    def __init__(self, store: Any = None, tracker: Any = None, workspace: Path | str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker = store, tracker
        self.workspace = Path(workspace) if workspace else Path.home() / "atelier"
        self.schema = json_schema(KIND)
        self.fields = step_fields(self.schema)
        self.forms: dict[str, SpecForm] = {}
        self.problems: list = []
        self.last_spec_path: Path | None = None
        self._launching = None

        self.stack = QStackedWidget()
        self.wizard = QWidget()
        self.results = TokenizerResults(store, tracker, self.workspace)
        self.results.new_button.clicked.connect(self.show_wizard)
        self.stack.addWidget(self.wizard)
        self.stack.addWidget(self.results)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        title = QLabel("Build a tokenizer")
        title.setObjectName("pageTitle")
        subtitle = QLabel("Train a tokenizer on your text, see how it splits anything you type, and measure it.")
        subtitle.setObjectName("subtitle")
        self.step_list = QListWidget()
        self.step_list.setObjectName("steps")
        self.step_list.setFixedWidth(170)
        for i, name in enumerate(STEPS, 1):
            self.step_list.addItem(f"{i}.  {name}")
        self.steps = QStackedWidget()
        self._build_corpus_step()
        self._build_form_step("Tokenizer")
        self._build_report_step()
        self._build_review_step()
        self.step_list.currentRowChanged.connect(self.go_to_step)

        self.back_button = QPushButton("Back")
        self.next_button = QPushButton("Next")
        self.next_button.setObjectName("primary")
        self.launch_button = QPushButton("Train tokenizer")
        self.launch_button.setObjectName("primary")
        self.launch_button.setToolTip("Write the spec into the workspace and start the run on the engine.")
        self.back_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() - 1))
        self.next_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() + 1))
        self.launch_button.clicked.connect(self.launch)
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        nav = QHBoxLayout()
        nav.addWidget(self.status_label, 1)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.launch_button)
        body = QHBoxLayout()
        body.setSpacing(18)
        body.addWidget(self.step_list)
        body.addWidget(self.steps, 1)
        outer = QVBoxLayout(self.wizard)
        outer.setContentsMargins(24, 18, 24, 16)
        outer.setSpacing(10)
        outer.addWidget(title)
        outer.addWidget(subtitle)
        outer.addSpacing(6)
        outer.addLayout(body, 1)
        outer.addLayout(nav)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(150)
        self._validate_timer.timeout.connect(self.validate)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(300)
        self._preview_timer.timeout.connect(self.update_preview)
        for form in self.forms.values():
            form.changed.connect(self._validate_timer.start)
        self.forms["Corpus"].changed.connect(self._preview_timer.start)
        if tracker is not None:
            tracker.launch_failed.connect(self._launch_failed)
        self.reset()

    # ------------------------------------------------------------------------------- steps
    def _step_page(self, name: str) -> tuple[QWidget, QVBoxLayout]:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(12)
        intro = QLabel(STEP_INTROS[name])
        intro.setObjectName("subtitle")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        return page, layout

    def _form(self, name: str) -> SpecForm:
        form = SpecForm(self.schema, self.fields[name])
        self.forms[name] = form
        return form

    def _build_form_step(self, name: str) -> None:
        page, layout = self._step_page(name)
        layout.addWidget(self._form(name))
        layout.addStretch(1)
        self.steps.addWidget(_scrolled(page))

    def _build_corpus_step(self) -> None:
        page, layout = self._step_page("Corpus")
        form = self._form("Corpus")
        add_files = QPushButton("Add files…")
        add_folder = QPushButton("Add folder…")
        add_files.clicked.connect(self._add_files)
        add_folder.clicked.connect(self._add_folder)
        buttons = QHBoxLayout()
        buttons.addWidget(add_files)
        buttons.addWidget(add_folder)
        buttons.addStretch(1)
        preview_box = QGroupBox("Preview")
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("Add a source to see a few of its documents.")
        self.preview.setMinimumHeight(140)
        QVBoxLayout(preview_box).addWidget(self.preview)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 8, 0)
        top_layout.addWidget(form)
        top_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(_scrolled(top))
        splitter.addWidget(preview_box)
        splitter.setSizes([380, 240])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.steps.addWidget(page)

    def _build_report_step(self) -> None:
        page, layout = self._step_page("Report")
        layout.addWidget(self._form("Report"))
        box = QGroupBox("Add a tokenizer to compare with")
        self.compare_picker = TokenizerPicker(self.workspace, none_label="Tokenizers of earlier runs…")
        self.compare_picker.chosen.connect(self.add_comparison)
        note = QLabel("Picked folders are added to Compare with; the report measures them on the same sample.")
        note.setObjectName("help")
        note.setWordWrap(True)
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(self.compare_picker)
        box_layout.addWidget(note)
        layout.addWidget(box)
        layout.addStretch(1)
        self.steps.addWidget(_scrolled(page))

    def _build_review_step(self) -> None:
        page, layout = self._step_page("Review")
        self.yaml_view = QPlainTextEdit()
        self.yaml_view.setReadOnly(True)
        _mono(self.yaml_view)
        self.command_label = QLabel("")
        self.command_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.command_label.setWordWrap(True)
        self.command_label.setFont(self.yaml_view.font())
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("fieldError")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        command_box = QGroupBox("Equivalent command")
        QVBoxLayout(command_box).addWidget(self.command_label)
        yaml_box = QGroupBox("Spec (YAML)")
        QVBoxLayout(yaml_box).addWidget(self.yaml_view)
        layout.addWidget(self.problems_label)
        layout.addWidget(command_box)
        layout.addWidget(yaml_box, 1)
        self.steps.addWidget(page)

    def go_to_step(self, index: int) -> None:
        index = max(0, min(index, len(STEPS) - 1))
        if STEPS[index] == "Review":
            self.refresh_review()
        if STEPS[index] == "Report":
            self.compare_picker.refresh()
        if self.steps.currentIndex() != index:
            self.steps.setCurrentIndex(index)
        if self.step_list.currentRow() != index:
            self.step_list.setCurrentRow(index)
        self.back_button.setEnabled(index > 0)
        self.next_button.setVisible(index < len(STEPS) - 1)
        self.launch_button.setVisible(index == len(STEPS) - 1)

    # ------------------------------------------------------------------------------ values
    def reset(self) -> None:
        defaults = self._spec_class()().model_dump(mode="json")
        for form in self.forms.values():
            form.set_values(defaults)
        self.go_to_step(0)
        self.update_preview()
        self.validate()

    @staticmethod
    def _spec_class():
        from engine.specs import SPEC_MODELS

        return SPEC_MODELS[KIND]

    def spec_data(self) -> dict:
        """The current values as a spec dict (not validated; `build_spec()` validates)."""
        data: dict = {"kind": KIND}
        for form in self.forms.values():
            data.update(form.values())
        return data

    def set_spec_data(self, data: dict) -> None:
        """Fill the forms from a spec dict; keys it leaves out keep their current values."""
        merged = _deep_merge(self.spec_data(), data)
        for form in self.forms.values():
            form.set_values(merged)
        self.validate()

    def build_spec(self):
        return parse_spec(self.spec_data(), "wizard")

    def validate(self) -> list:
        """Check the values; show each problem at its field and mark the steps that have one."""
        try:
            self.build_spec()
            self.problems = []
        except SpecError as e:
            self.problems = e.problems
        for i, name in enumerate(STEPS):
            form = self.forms.get(name)
            shown = form.show_problems(self.problems) if form else []
            item = self.step_list.item(i)
            item.setText(f"{i + 1}.  {name}" + ("  ⚠" if shown else ""))
            item.setToolTip("\n".join(str(p) for p in shown))
        count = len(self.problems)
        self.status_label.setText(f"{count} problem{'s' if count != 1 else ''} to fix before launching "
                                  "(marked ⚠)." if count else "")
        self.launch_button.setEnabled(not count and self._launching is None)
        if self.steps.currentIndex() == len(STEPS) - 1:
            self.refresh_review()
        return self.problems

    def go_to_review(self) -> None:
        self.go_to_step(len(STEPS) - 1)

    def set_workspace(self, workspace: Path | str, tracker: Any = None) -> None:
        self.workspace = Path(workspace)
        self.results.workspace = self.workspace
        self.compare_picker.set_workspace(self.workspace)
        if tracker is not None and tracker is not self.tracker:
            if self.tracker is not None:
                for signal, slot in ((self.tracker.launch_failed, self._launch_failed),
                                     (self.tracker.run_events, self.results.on_events),
                                     (self.tracker.run_state_changed, self.results.on_state_changed)):
                    try:
                        signal.disconnect(slot)
                    except (RuntimeError, TypeError):
                        pass
            self.tracker = self.results.tracker = tracker
            tracker.launch_failed.connect(self._launch_failed)
            tracker.run_events.connect(self.results.on_events)
            tracker.run_state_changed.connect(self.results.on_state_changed)
        if self.steps.currentIndex() == len(STEPS) - 1:
            self.refresh_review()

    def spec_path_for(self, spec) -> Path:
        return self.workspace / "specs" / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"

    def refresh_review(self) -> None:
        try:
            spec = self.build_spec()
        except SpecError as e:
            self.problems_label.setText("Fix these before launching:\n" + "\n".join(f"• {p}" for p in e.problems))
            self.problems_label.show()
            self.yaml_view.setPlainText(spec_to_yaml_unvalidated(self.spec_data()))
            self.command_label.setText("studio-engine run spec.yaml")
            return
        self.problems_label.hide()
        self.yaml_view.setPlainText(spec_to_yaml(spec))
        path = self.spec_path_for(spec)
        self.command_label.setText(
            f"studio-engine --workspace {shlex.quote(str(self.workspace))} run {shlex.quote(str(path))}\n"
            f"# in short, from the workspace:  studio-engine run spec.yaml")

    # ----------------------------------------------------------------------- corpus & compare
    def _add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add text files", str(Path.home()),
                                                "Text corpora (*.txt *.jsonl *.json *.csv *.parquet);;All files (*)")
        for path in paths:
            self.add_source(path)

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of text files", str(Path.home()))
        if path:
            self.add_source(path)

    def add_source(self, source: str) -> None:
        self.forms["Corpus"].editor("data.sources").add_item(str(source))

    def update_preview(self) -> None:
        values = self.forms["Corpus"].values()["data"]
        parts = []
        for source in (values.get("sources") or [])[:6]:
            preview = source_preview(source, values.get("text_field") or "text", limit=4)
            parts.append(f"■ {source}" + (f"  —  {preview.note}" if preview.note else ""))
            for doc in preview.documents:
                text = doc.text if len(doc.text) < 600 else doc.text[:600] + " …"
                parts.append(f"  [{doc.source}]\n" + "\n".join("  " + line for line in text.splitlines()))
            parts.append("")
        self.preview.setPlainText("\n".join(parts).rstrip())

    def add_comparison(self, path: str) -> None:
        """Add a tokenizer folder to `report.compare_with` (once)."""
        if not path:
            return
        editor = self.forms["Report"].editor("report.compare_with")
        if path not in (editor.value() or []):
            editor.add_item(path)
        self.compare_picker.select(None, emit=False)
        self.validate()

    # ---------------------------------------------------------------------------- launch
    def write_spec(self) -> Path:
        spec = self.build_spec()
        path = self.spec_path_for(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_to_yaml(spec), encoding="utf-8")
        self.last_spec_path = path
        return path

    def launch(self) -> Path | None:
        """Write the spec YAML into the workspace and start it through the tracker."""
        if self.validate():
            self.go_to_step(len(STEPS) - 1)
            return None
        path = self.write_spec()
        if self.tracker is None:
            self.status_label.setText(f"Spec written to {path}; no engine is connected to run it.")
            return path
        self.status_label.setText(f"Starting {path.name} on the local engine…")
        self.launch_button.setEnabled(False)
        command = self.tracker.launch(path)
        self._launching = command
        command.succeeded.connect(self._launch_succeeded)
        command.failed.connect(lambda _message: self._launch_done())
        return path

    def _launch_done(self) -> None:
        self._launching = None
        self.launch_button.setEnabled(not self.problems)

    def _launch_succeeded(self, info: Any) -> None:
        self._launch_done()
        if isinstance(info, dict) and info.get("run_id"):
            self.status_label.setText("")
            self.show_run(info["run_id"])
            self.launched.emit(info["run_id"])

    def _launch_failed(self, message: str) -> None:
        self._launch_done()
        self.go_to_step(len(STEPS) - 1)
        self.problems_label.setText(f"The run did not start:\n{message}")
        self.problems_label.show()
        self.status_label.setText("The run did not start; see Review.")

    def show_run(self, run_id: str) -> None:
        self.results.load(run_id)
        self.stack.setCurrentWidget(self.results)

    def show_wizard(self) -> None:
        self.compare_picker.refresh()
        self.stack.setCurrentWidget(self.wizard)
