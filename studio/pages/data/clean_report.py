"""The report of a finished clean run: what each step and rule removed (with the removed documents
to read), document lengths before and after, and the duplicate clusters side by side.

Reads `output/report.json` and `output/removed/<rule>.jsonl` of the run folder. Imports pyqtgraph
(through the histogram; slow to import): the Data page loads this module when it first shows a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QHeaderView, QLabel, QListWidget, QPlainTextEdit, QSplitter,
    QStackedWidget, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from studio import theme
from studio.models.clean_results import percent_change, read_examples, short_rule, step_title
from studio.widgets import formatting
from studio.pages.data.clean_preview import data_table
from studio.pages.data.length_histogram import LengthHistogram
from studio.widgets.text_diff import TextDiffView


EXAMPLE_TEXT_CHARS = 50_000  # a removed example is shown up to here


def _stat(value: str, caption: str) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 12, 0)
    layout.setSpacing(0)
    number = QLabel(value)
    number.setObjectName("stat")
    label = QLabel(caption)
    label.setObjectName("help")
    layout.addWidget(number)
    layout.addWidget(label)
    box.value_label = number  # type: ignore[attr-defined]
    return box


def _empty(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("subtitle")
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)
    return label


class CleanReport(QWidget):
    """The report of one clean run. `load(run_dir, report)` fills it.

    Tabs: Steps (what each step and rule removed), Removed documents (a rule's examples to read),
    Lengths (histogram before/after), Duplicates (clusters; opening one shows the kept document
    beside a removed member with the differences highlighted), Input (files, broken records).
    Public for tests: `report`, `tabs`, `stats` (caption -> value label), `steps_table`,
    `rules_table`, `rule_box`, `examples_table`, `example_view`, `histogram`, `clusters_table`,
    `member_box`, `cluster_diff`, `open_cluster(row)`, `show_rule(rule)`, `input_label`.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.report: dict = {}
        self.run_dir: Path | None = None
        self.stats: dict[str, QLabel] = {}
        self.stats_row = QHBoxLayout()
        self.stats_row.setSpacing(18)

        # Steps: what each step and rule removed.
        self.steps_table = data_table(["Step", "Removed", "Characters removed", "Modified", "Changes"])
        self.rules_table = data_table(["Rule", "Removed", "Characters"])
        self.rules_table.horizontalHeader().setStretchLastSection(False)
        self.rules_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.rules_table.cellClicked.connect(lambda row, _c: self._rule_clicked(row))
        self.rules_table.itemActivated.connect(lambda item: self._rule_clicked(item.row()))
        rules_hint = QLabel("Click a rule to read documents it removed.")
        rules_hint.setObjectName("help")
        steps_tab = QWidget()
        steps_layout = QVBoxLayout(steps_tab)
        steps_layout.setContentsMargins(10, 10, 10, 10)
        steps_layout.addWidget(self.steps_table)
        steps_layout.addWidget(self.rules_table, 1)
        steps_layout.addWidget(rules_hint)

        # Removed documents: the examples a rule kept.
        self.rule_box = QComboBox()
        self.rule_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.rule_box.setMinimumContentsLength(20)
        self.rule_box.currentIndexChanged.connect(lambda _i: self.show_rule(self.rule_box.currentData()))
        self.examples_table = data_table(["Document", "Why it was removed"])
        self.examples_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Interactive)
        self.examples_table.setColumnWidth(0, 230)
        self.examples_table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.examples_table.setProperty("elidesCells", True)  # the selected example shows whole below
        self.examples_table.itemSelectionChanged.connect(
            lambda: self._example_selected(self.examples_table.currentRow()))
        self.example_reason = QLabel("")
        self.example_reason.setWordWrap(True)
        self.example_reason.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.example_view = QPlainTextEdit()
        self.example_view.setReadOnly(True)
        self.examples_note = _empty("")
        reading = QWidget()
        reading_layout = QVBoxLayout(reading)
        reading_layout.setContentsMargins(0, 4, 0, 0)
        reading_layout.addWidget(self.example_reason)
        reading_layout.addWidget(self.example_view, 1)
        examples_body = QSplitter(Qt.Vertical)
        examples_body.addWidget(self.examples_table)
        examples_body.addWidget(reading)
        examples_body.setSizes([150, 330])
        examples_body.setChildrenCollapsible(False)
        self.examples_stack = QStackedWidget()
        self.examples_stack.addWidget(self.examples_note)
        self.examples_stack.addWidget(examples_body)
        self.examples_count = QLabel("")
        self.examples_count.setObjectName("help")
        rule_row = QHBoxLayout()
        rule_row.addWidget(QLabel("Rule"))
        rule_row.addWidget(self.rule_box, 1)
        rule_row.addWidget(self.examples_count)
        examples_tab = QWidget()
        examples_layout = QVBoxLayout(examples_tab)
        examples_layout.setContentsMargins(10, 10, 10, 10)
        examples_layout.addLayout(rule_row)
        examples_layout.addWidget(self.examples_stack, 1)

        # Lengths.
        self.histogram = LengthHistogram()
        lengths_tab = QWidget()
        lengths_layout = QVBoxLayout(lengths_tab)
        lengths_layout.setContentsMargins(10, 10, 10, 10)
        lengths_layout.addWidget(self.histogram)

        # Duplicate clusters: the list over the opened cluster (the page is narrow beside the dock).
        self.clusters_table = data_table(["Kept document", "Removed", "Kind", "Similarity", "Text"])
        self.clusters_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Interactive)
        self.clusters_table.setColumnWidth(0, 200)
        self.clusters_table.horizontalHeader().setStretchLastSection(True)
        self.clusters_table.setSortingEnabled(True)
        self.clusters_table.setProperty("elidesCells", True)  # a document's start; the cluster opens below it
        self.clusters_table.itemSelectionChanged.connect(self._cluster_selected)
        self.cluster_label = QLabel("")
        self.cluster_label.setWordWrap(True)
        self.member_box = QComboBox()
        self.member_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.member_box.setMinimumContentsLength(26)
        self.member_box.currentIndexChanged.connect(self._member_chosen)
        self.cluster_diff = TextDiffView("Select a cluster to see its documents side by side.")
        cluster_view = QWidget()
        cluster_layout = QVBoxLayout(cluster_view)
        cluster_layout.setContentsMargins(0, 4, 0, 0)
        member_row = QHBoxLayout()
        member_row.addWidget(self.cluster_label, 1)
        member_row.addWidget(QLabel("Removed member"))
        member_row.addWidget(self.member_box)
        cluster_layout.addLayout(member_row)
        cluster_layout.addWidget(self.cluster_diff, 1)
        clusters_body = QSplitter(Qt.Vertical)
        clusters_body.addWidget(self.clusters_table)
        clusters_body.addWidget(cluster_view)
        clusters_body.setSizes([170, 380])
        clusters_body.setChildrenCollapsible(False)
        clusters_tab = QWidget()
        clusters_tab_layout = QVBoxLayout(clusters_tab)
        clusters_tab_layout.setContentsMargins(10, 10, 10, 10)
        clusters_tab_layout.addWidget(clusters_body)
        self.clusters_empty = _empty("")
        self.clusters_stack = QStackedWidget()
        self.clusters_stack.addWidget(self.clusters_empty)
        self.clusters_stack.addWidget(clusters_tab)

        # Input: files, broken records, repairs.
        self.input_label = QLabel("")
        self.input_label.setWordWrap(True)
        self.input_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.input_label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.skipped_list = QListWidget()
        input_tab = QWidget()
        input_layout = QVBoxLayout(input_tab)
        input_layout.setContentsMargins(12, 12, 12, 12)
        input_layout.addWidget(self.input_label)
        input_layout.addWidget(self.skipped_list, 1)
        input_layout.addStretch(0)

        self.tabs = QTabWidget()
        self.tabs.addTab(steps_tab, "Steps")
        self.tabs.addTab(examples_tab, "Removed documents")
        self.tabs.addTab(lengths_tab, "Lengths")
        self.tabs.addTab(self.clusters_stack, "Duplicates")
        self.tabs.addTab(input_tab, "Input")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addLayout(self.stats_row)
        layout.addWidget(self.tabs, 1)

    # -------------------------------------------------------------------------------- load
    def load(self, run_dir: Path | str | None, report: dict) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.report = report or {}
        self._fill_stats()
        self._fill_steps()
        self.histogram.set_histograms(self.report.get("histograms") or {})
        self._fill_clusters()
        self._fill_input()

    def _fill_stats(self) -> None:
        while self.stats_row.count():
            widget = self.stats_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.stats = {}
        inp, out = self.report.get("input") or {}, self.report.get("output") or {}
        docs_in, docs_out = inp.get("documents") or 0, out.get("documents") or 0
        chars_in, chars_out = inp.get("chars") or 0, out.get("chars") or 0
        tiles = [
            (f"{docs_out:,} of {docs_in:,}", f"documents kept ({percent_change(docs_in, docs_out)})"),
            (f"{formatting.count(chars_out)} of {formatting.count(chars_in)}",
             f"characters kept ({percent_change(chars_in, chars_out)})"),
            (formatting.duration(self.report.get("seconds")), f"{self.report.get('mb_per_s') or 0:.2f} MB/s"),
            (f"{inp.get('skipped') or 0:,}", "broken records skipped"),
        ]
        for value, caption in tiles:
            tile = _stat(value, caption)
            self.stats[caption] = tile.value_label  # type: ignore[attr-defined]
            self.stats_row.addWidget(tile)
        self.stats_row.addStretch(1)

    def _fill_steps(self) -> None:
        steps = self.report.get("steps") or []
        table = self.steps_table
        table.setRowCount(len(steps))
        for r, row in enumerate(steps):
            changes = ", ".join(f"{short_rule(k)} ×{n:,}" for k, n in (row.get("changes") or {}).items())
            cells = [step_title(row.get("step")), f"{row.get('removed', 0):,}", f"{row.get('removed_chars', 0):,}",
                     f"{row.get('modified', 0):,}", changes or "—"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (1, 2, 3):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                item.setToolTip(text)
                table.setItem(r, c, item)
        _fit_height(table)
        rules = self._rules()
        self.rules_table.setRowCount(len(rules))
        for r, (rule, info) in enumerate(rules):
            for c, text in enumerate((rule, f"{info.get('removed') or 0:,}", f"{info.get('chars') or 0:,}")):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, rule)
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.rules_table.setItem(r, c, item)
        self.rule_box.blockSignals(True)
        self.rule_box.clear()
        for rule, info in rules:
            self.rule_box.addItem(f"{rule}  ({info.get('removed') or 0:,} removed)", rule)
        self.rule_box.blockSignals(False)
        if rules:
            self.show_rule(rules[0][0])
        else:
            self.examples_note.setText("No document was removed: every step kept everything it saw.")
            self.examples_count.setText("")
            self.examples_stack.setCurrentWidget(self.examples_note)

    def _rules(self) -> list[tuple[str, dict]]:
        found = []
        for row in self.report.get("steps") or []:
            for rule, info in (row.get("rules") or {}).items():
                found.append((rule, info if isinstance(info, dict) else {"removed": info}))
        return sorted(found, key=lambda pair: -(pair[1].get("removed") or 0))

    def _rule_clicked(self, row: int) -> None:
        item = self.rules_table.item(row, 0)
        if item is not None:
            self.show_rule(item.data(Qt.UserRole))
            self.tabs.setCurrentIndex(1)

    def show_rule(self, rule: str | None) -> int:
        """List the removed documents kept as examples of `rule`; returns how many."""
        if not rule:
            return 0
        index = self.rule_box.findData(rule)
        if index >= 0 and self.rule_box.currentIndex() != index:
            self.rule_box.blockSignals(True)
            self.rule_box.setCurrentIndex(index)
            self.rule_box.blockSignals(False)
        info = dict(self._rules()).get(rule, {})
        relative = info.get("examples") or f"removed/{rule}.jsonl"
        examples = read_examples(self.run_dir / "output" / relative) if self.run_dir else []
        self.examples_count.setText(f"{len(examples):,} example{'s' if len(examples) != 1 else ''} of "
                                    f"{info.get('removed') or 0:,} removed")
        table = self.examples_table
        table.blockSignals(True)
        table.setRowCount(len(examples))
        for r, example in enumerate(examples):
            reason = example.get("reason") or ""
            for c, text in enumerate((str(example.get("id", "")), reason)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{example.get('id', '')} ({example.get('source', '')})\n{reason}")
                item.setData(Qt.UserRole, example)
                table.setItem(r, c, item)
        table.blockSignals(False)
        if examples:
            self.examples_stack.setCurrentIndex(1)
            table.selectRow(0)
            self._example_selected(0)
        else:
            self.examples_note.setText(f"No example of {rule} was kept (output.removed_examples is 0, or the "
                                       "removed/ folder is missing).")
            self.examples_stack.setCurrentWidget(self.examples_note)
        return len(examples)

    def _example_selected(self, row: int) -> None:
        item = self.examples_table.item(row, 0)
        if item is None:
            return
        example = item.data(Qt.UserRole) or {}
        self.example_reason.setText(f"<b>{_esc(example.get('id'))}</b> "
                                    f"<span style='color:{theme.current().muted}'>{_esc(example.get('source'))}</span>"
                                    f"<br>{_esc(example.get('reason'))}")
        text = example.get("text") or ""
        self.example_view.setPlainText(text[:EXAMPLE_TEXT_CHARS] + (" …" if len(text) > EXAMPLE_TEXT_CHARS else ""))

    # ---------------------------------------------------------------------------- clusters
    def _fill_clusters(self) -> None:
        clusters = self.report.get("clusters") or []
        table = self.clusters_table
        table.setSortingEnabled(False)
        table.blockSignals(True)
        table.setRowCount(len(clusters))
        for r, cluster in enumerate(clusters):
            members = cluster.get("members") or []
            kept = cluster.get("kept") or {}
            kinds = sorted({"near" if m.get("step") == "near_dedup" else "exact" for m in members if m.get("step")})
            similarity, lowest = _similarity(members)
            snippet = " ".join((kept.get("text") or "").split())
            cells = [(kept.get("id", ""), kept.get("id", "")), (f"{len(members):,}", len(members)),
                     (" + ".join(kinds) or "—", " + ".join(kinds)),
                     (similarity, lowest),
                     (snippet[:160], snippet[:160])]
            for c, (text, key) in enumerate(cells):
                item = _SortItem(text, key)
                item.setData(Qt.UserRole, r)
                item.setToolTip(f"{kept.get('id', '')} ({kept.get('source', '')})\n{snippet[:400]}" if c in (0, 4)
                                else text)
                if c in (1, 3):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                table.setItem(r, c, item)
        table.blockSignals(False)
        table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)  # the report's order until a click
        table.setSortingEnabled(True)
        dedup_on = any(row.get("step") in ("exact_dedup", "near_dedup") for row in self.report.get("steps") or [])
        self.tabs.setTabText(3, f"Duplicates ({len(clusters):,})")
        if clusters:
            self.clusters_stack.setCurrentIndex(1)
            self.open_cluster(0)
        else:
            self.clusters_empty.setText("No duplicates found: no two documents were the same or nearly the same at "
                                        "the chosen thresholds." if dedup_on else
                                        "Deduplication was switched off for this run.")
            self.clusters_stack.setCurrentWidget(self.clusters_empty)

    def open_cluster(self, index: int) -> None:
        """Open cluster `index` (in the report's order, largest first): the kept document beside a
        removed member, wherever the table's sorting put its row."""
        for row in range(self.clusters_table.rowCount()):
            item = self.clusters_table.item(row, 0)
            if item is not None and item.data(Qt.UserRole) == index:
                self.clusters_table.selectRow(row)
                self.clusters_table.scrollToItem(item)
                self._cluster_selected()
                return

    def _current_cluster(self) -> dict | None:
        items = self.clusters_table.selectedItems()
        clusters = self.report.get("clusters") or []
        index = items[0].data(Qt.UserRole) if items else None
        return clusters[index] if isinstance(index, int) and 0 <= index < len(clusters) else None

    def _cluster_selected(self) -> None:
        cluster = self._current_cluster()
        if cluster is None:
            return
        kept, members = cluster.get("kept") or {}, cluster.get("members") or []
        self.cluster_label.setText(f"<b>{_esc(kept.get('id'))}</b> kept; {len(members)} "
                                   f"duplicate{'s' if len(members) != 1 else ''} removed.")
        self.member_box.blockSignals(True)
        self.member_box.clear()
        for member in members:
            similarity = member.get("similarity")
            label = member.get("id", "") + (f"  ({similarity:.2f})" if isinstance(similarity, (int, float)) else "")
            self.member_box.addItem(label, member)
        self.member_box.blockSignals(False)
        self.member_box.setEnabled(len(members) > 1)
        self._member_chosen(0)

    def _member_chosen(self, index: int) -> None:
        cluster = self._current_cluster()
        if cluster is None:
            return
        kept = cluster.get("kept") or {}
        member = self.member_box.itemData(index) or {}
        similarity = member.get("similarity")
        how = f" ({similarity:.2f})" if isinstance(similarity, (int, float)) else ""
        self.cluster_diff.set_texts(kept.get("text") or "", member.get("text") or "",
                                    f"Kept: {kept.get('id', '')}", f"Removed: {member.get('id', '')}{how}")

    # ------------------------------------------------------------------------------- input
    def _fill_input(self) -> None:
        inp = self.report.get("input") or {}
        out = self.report.get("output") or {}
        near = self.report.get("near_dedup") or {}
        repairs = ", ".join(f"{short_rule(k)} ×{n:,}" for k, n in (inp.get("repairs") or {}).items())
        lines = [f"Read {inp.get('documents', 0):,} documents ({inp.get('chars', 0):,} characters, "
                 f"{(inp.get('bytes') or 0) / 1e6:,.2f} MB) from {inp.get('files', 0):,} "
                 f"file{'s' if inp.get('files') != 1 else ''}.",
                 f"Repairs while decoding: {repairs}." if repairs else "No text needed repairs while decoding.",
                 f"Wrote {out.get('documents', 0):,} documents as {out.get('format', '')} to {out.get('path', '')}."]
        if near.get("method"):
            lines.append(f"Near-duplicate index ({near['method']}): {formatting.count(near.get('index_bytes') or 0)}B, "
                         f"{near.get('bytes_per_document') or 0:,.0f} bytes per document.")
        skipped = inp.get("skipped") or 0
        lines.append(f"{skipped:,} broken record{'s' if skipped != 1 else ''} skipped"
                     + (", for example:" if skipped else "."))
        self.input_label.setText("\n".join(lines))
        self.skipped_list.clear()
        for example in inp.get("skipped_examples") or []:
            self.skipped_list.addItem(f"{example.get('where', '')}: {example.get('problem', '')}")
        self.skipped_list.setVisible(bool(inp.get("skipped_examples")))


def _similarity(members: list[dict]) -> tuple[str, float]:
    """How alike a cluster's removed members are to the kept document: "identical" for exact
    duplicates, else the (range of) estimated similarity; and a key to sort by."""
    near = [m["similarity"] for m in members
            if m.get("step") != "exact_dedup" and isinstance(m.get("similarity"), (int, float))]
    if not near:
        return ("identical", 1.0) if members else ("—", -1.0)
    low, high = min(near), max(near)
    return (f"{low:.2f}" if high - low < 0.005 else f"{low:.2f}–{high:.2f}"), low


class _SortItem(QTableWidgetItem):
    """A cell that sorts by a key (a number where the text is "1,234" or "≥ 0.86")."""

    def __init__(self, text: str, key: Any):
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _SortItem) and type(self.key) is type(other.key):
            return self.key < other.key
        return super().__lt__(other)


def _fit_height(table: QTableWidget) -> None:
    """No taller than its rows: the space goes to the table below."""
    height = table.horizontalHeader().sizeHint().height() + 4
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setMaximumHeight(height + 2 * table.frameWidth())


def _esc(value: Any) -> str:
    import html

    return html.escape(str(value or ""))

