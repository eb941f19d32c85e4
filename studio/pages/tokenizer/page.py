"""The tokenizer wizard: Corpus → Tokenizer → Report → Review → Launch, then the results.

The forms are generated from the `tokenizer` spec's JSON schema; this page adds the corpus preview,
the live token preview of saved tokenizers, and the results view: the run's progress while it
trains, then the new tokenizer side by side with another one and the report's figures as a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSplitter,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine.rundir import ACTIVE_STATES
from engine.workspace_paths import resolve_path
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_wizard import SpecWizard
from studio.widgets.token_view import TokenCompareView
from studio.widgets.tokenizer_picker import TokenizerPicker
from studio.models.engine_schema import error_text

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

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

    def __init__(self, store: Any, tracker: Tracker | None, workspace: Path, parent: QWidget | None = None):
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
        # A figure per row, a tokenizer per column: as many figures as there are fit on a laptop's screen.
        figures = REPORT_COLUMNS[1:]
        self.report_table = QTableWidget(len(figures), 0)
        self.report_table.setVerticalHeaderLabels([title for _, title in figures])
        self.report_table.verticalHeaderItem(4).setToolTip("Fertility: tokens per whitespace-separated word.")
        self.report_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.report_table.setSelectionMode(QAbstractItemView.NoSelection)
        self.report_table.setTextElideMode(Qt.ElideRight)
        self.report_table.setProperty("elidesCells", True)  # the longest tokens: all of them in the tooltip
        self.report_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
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
            self.status_label.setText(error_text(error, "tokenizer") or f"The run ended {state}.")
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
            folder = Path(resolve_path(str(path), self.workspace)).expanduser()  # run specs: workspace-relative
            if (folder / "tokenizer.json").is_file():
                return str(folder)
        return None

    def fill_report(self, report: dict | None) -> None:
        """One column per tokenizer (named in its header), one row per figure."""
        rows = (report or {}).get("tokenizers") or []
        self.report_table.setColumnCount(len(rows))
        self.report_table.setHorizontalHeaderLabels([format_figure("name", row.get("name")) for row in rows])
        for c, row in enumerate(rows):
            for r, (key, _) in enumerate(REPORT_COLUMNS[1:]):
                item = QTableWidgetItem(format_figure(key, row.get(key)))
                if key != "longest_tokens":
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


class TokenizerPage(SpecWizard):
    """The wizard, then the results of the run it launched.

    Driving it from a test: `set_spec_data(dict)`, `spec_data()`, `build_spec()`, `validate()`,
    `go_to_review()`, `launch_button.click()` (or `launch()`); `launched(run_id)` fires once the
    engine accepted the run and `results` (TokenizerResults) then shows it. `show_run(run_id)`
    opens any tokenizer run's results. Also public: `forms`, `step_list`, `steps`, `preview`,
    `compare_picker`, `yaml_view`, `command_label`, `problems_label`, `status_label`,
    `last_spec_path`, `set_workspace(path, tracker)`.
    """

    KIND = KIND
    STEPS = STEPS
    STEP_INTROS = STEP_INTROS
    TITLE = "Build a tokenizer"
    SUBTITLE = "Train a tokenizer on your text, see how it splits anything you type, and measure it."
    LAUNCH_LABEL = "Train tokenizer"

    # ------------------------------------------------------------------------------- hooks
    def _step_fields(self) -> dict[str, list[str]]:
        return step_fields(self.schema)

    def _build_run_view(self) -> None:
        self.results = TokenizerResults(self.store, self.tracker, self.workspace)
        self.results.new_button.clicked.connect(self.show_wizard)
        self.stack.addWidget(self.results)

    def _build_steps(self) -> None:
        self._build_corpus_step(preview_height=140, sizes=[380, 240])
        self._build_form_step("Tokenizer")
        self._build_report_step()

    def _entering_step(self, name: str) -> None:
        if name == "Report":
            self.compare_picker.refresh()

    def _workspace_changed(self) -> None:
        self.results.workspace = self.workspace
        self.compare_picker.set_workspace(self.workspace)

    def _tracker_slots(self, tracker: Tracker) -> list[tuple[Any, Any]]:
        return super()._tracker_slots(tracker) + [(tracker.run_events, self.results.on_events),
                                                   (tracker.run_state_changed, self.results.on_state_changed)]

    def _tracker_changed(self) -> None:
        self.results.tracker = self.tracker

    # ------------------------------------------------------------------------------- steps
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
        self.steps.addWidget(scrolled(page))

    # ------------------------------------------------------------------------------ compare
    def add_comparison(self, path: str) -> None:
        """Add a tokenizer folder to `report.compare_with` (once)."""
        if not path:
            return
        editor = self.forms["Report"].editor("report.compare_with")
        if path not in (editor.value() or []):
            editor.add_item(path)
        self.compare_picker.select(None, emit=False)
        self.validate()

    def show_run(self, run_id: str) -> None:
        self.results.load(run_id)
        self.stack.setCurrentWidget(self.results)

    def show_wizard(self) -> None:
        self.compare_picker.refresh()
        self.stack.setCurrentWidget(self.wizard)
