"""The Label page's Overview (progress, annotators, agreement) and Conflicts (disagreements) tabs.

Both read the label store when shown; they hold no state of their own.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QSplitter, QTableWidget,
    QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget,
)

from engine.labeling.agreement import agreement, conflicts, readable_preference
from engine.labeling.store import LabelStore, Queue


def read_only_table(headers: list[str], stretch: int = 0) -> QTableWidget:
    """A read-only table whose column `stretch` takes the room left (its text gives way to the others,
    which fit their contents)."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.Stretch)
    header.setStretchLastSection(False)
    return table


def fill_table(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            cell = QTableWidgetItem(value)
            if value.replace("%", "").replace(".", "").replace("-", "").replace("/", "").replace(" ", "").isdigit():
                cell.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            table.setItem(r, c, cell)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def kappa_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


# Who counts as an annotator in agreement: people. A task's checker (kind "checker") stands in for one
# in the demo and is compared with them apart; imported labels came from a file, not from an annotator here.
ANNOTATOR_KINDS = ("human",)
KIND_WORDS = {"human": "person", "checker": "task checker (not a person)", "import": "imported file"}


class OverviewView(QWidget):
    """Items done, labels, skips, position bias; labels per annotator; agreement between the people
    who labeled, and apart from it, how often each agreed with a task's checker."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.stats: dict[str, QLabel] = {}
        grid = QGridLayout()
        for column, (key, caption) in enumerate((("done", "items done"), ("labels", "labels"),
                                                 ("skipped", "skipped"), ("left", "chose the left answer"),
                                                 ("agreement", "agreement"), ("kappa", "Cohen's κ"))):
            value = QLabel("—")
            value.setObjectName("stat")
            label = QLabel(caption)
            label.setObjectName("help")
            grid.addWidget(value, 0, column)
            grid.addWidget(label, 1, column)
            self.stats[key] = value
        stats_box = QGroupBox("Progress")
        stats_box.setLayout(grid)
        self.annotators = read_only_table(["Annotator", "Labels", "Skipped", "Kind"])
        self.pairs = read_only_table(["Annotators", "Shared items", "Agreed", "Agreement", "Cohen's κ"])
        self.note = QLabel()
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        annotators_box = QGroupBox("Annotators")
        annotators_layout = QVBoxLayout(annotators_box)
        annotators_layout.addWidget(self.annotators)
        self.annotator_actions = QHBoxLayout()  # the page's buttons that add an annotator (the task checker)
        annotators_layout.addLayout(self.annotator_actions)
        pairs_box = QGroupBox("Agreement on overlap items")
        pairs_layout = QVBoxLayout(pairs_box)
        pairs_layout.addWidget(self.pairs)
        pairs_layout.addWidget(self.note)
        tables = QHBoxLayout()
        tables.addWidget(annotators_box, 2)
        tables.addWidget(pairs_box, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(stats_box)
        layout.addLayout(tables, 1)

    def show_queue(self, store: LabelStore, queue: Queue | None) -> None:
        if queue is None:
            for value in self.stats.values():
                value.setText("—")
            fill_table(self.annotators, [])
            fill_table(self.pairs, [])
            self.note.setText("")
            return
        progress = store.progress(queue)
        table = agreement(store, queue, kinds=ANNOTATOR_KINDS)
        with_checker = [p for p in agreement(store, queue, kinds=(*ANNOTATOR_KINDS, "checker")).pairs
                        if p not in table.pairs]
        self.stats["done"].setText(f"{progress.done} / {progress.items}")
        self.stats["labels"].setText(str(progress.labels - progress.skipped))
        self.stats["skipped"].setText(str(progress.skipped))
        self.stats["left"].setText(percent(progress.left_share))
        self.stats["agreement"].setText(percent(table.percent))
        self.stats["kappa"].setText(kappa_text(table.kappa))
        skipped: dict[str, int] = {}
        kinds: dict[str, str] = {}
        for label in store.labels(queue):
            kinds.setdefault(label.annotator, label.kind)
            if label.verdict == "skip":
                skipped[label.annotator] = skipped.get(label.annotator, 0) + 1
        names = sorted(set(progress.per_annotator) | set(skipped), key=lambda n: -progress.per_annotator.get(n, 0))
        fill_table(self.annotators, [[name, str(progress.per_annotator.get(name, 0)), str(skipped.get(name, 0)),
                                 KIND_WORDS.get(kinds.get(name, ""), kinds.get(name, ""))] for name in names])
        fill_table(self.pairs, [[f"{p.annotator_a} · {p.annotator_b}", str(p.items), str(p.agreed), percent(p.percent),
                            kappa_text(p.kappa)] for p in table.pairs]
              + [[f"{p.annotator_a} · {p.annotator_b}  (with the checker)", str(p.items), str(p.agreed),
                  percent(p.percent), kappa_text(p.kappa)] for p in with_checker])
        checker = (" Rows marked “with the checker” compare a person with the task's checker; they are not in the "
                   "agreement above, which counts people only.") if with_checker else ""
        if table.pairs:
            self.note.setText(f"{table.items} items labeled by several people. κ corrects agreement for chance: "
                              f"above 0.6 is substantial, below 0.2 is slight.{checker}")
        elif queue.overlap <= 0:
            self.note.setText("This queue has no overlap items, so no item is labeled by two people and agreement "
                              f"cannot be measured. Set an overlap with the queue's “Edit…” button.{checker}")
        else:
            self.note.setText(f"{queue.overlap:.0%} of the items go to {queue.overlap_annotators} annotators each; "
                              f"agreement shows once two people have labeled the same items.{checker}")


class ConflictsView(QWidget):
    """Items the people who labeled disagree on (a checker's verdicts are not votes here): a list, and
    the chosen item's prompt, answers and votes."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.found = []
        self.table = read_only_table(["Item", "Prompt", "Verdicts"], stretch=1)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.detail = QTextBrowser()
        self.empty = QLabel()
        self.empty.setObjectName("help")
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setSizes([240, 360])
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(splitter, 1)

    def show_queue(self, store: LabelStore, queue: Queue | None) -> None:
        self.found = conflicts(store, queue, kinds=ANNOTATOR_KINDS) if queue is not None else []
        rows = []
        for conflict in self.found:
            verdicts = ";  ".join(f"{v.annotator}: {readable_preference(v.preference)}" for v in conflict.votes)
            rows.append([str(conflict.item.position + 1), conflict.item.prompt.replace("\n", " ")[:160], verdicts])
        fill_table(self.table, rows)
        self.empty.setText(f"{len(self.found)} item{'s' if len(self.found) != 1 else ''} where people disagree."
                           if self.found else "No disagreements: every item labeled by several people got the same "
                                              "verdict from each.")
        self.detail.clear()
        if self.found:
            self.table.selectRow(0)
            self._show_selected()  # also when row 0 was selected already (no selection change then)

    def _show_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        conflict = self.found[rows[0].row()]
        parts = [f"<h3>Item {conflict.item.position + 1}</h3><p><b>Prompt</b></p>"
                 f"<pre style='white-space: pre-wrap'>{html.escape(conflict.item.prompt)}</pre>"]
        for index, candidate in enumerate(conflict.item.candidates):
            origin = f" — {html.escape(candidate.model)}" if candidate.model else ""
            parts.append(f"<p><b>Answer {chr(65 + index)}</b>{origin}</p>"
                         f"<pre style='white-space: pre-wrap'>{html.escape(candidate.text)}</pre>")
        parts.append("<p><b>Verdicts</b></p><ul>")
        for vote in conflict.votes:
            comment = f" — “{html.escape(vote.comment)}”" if vote.comment else ""
            parts.append(f"<li>{html.escape(vote.annotator)}: {readable_preference(vote.preference)}{comment}</li>")
        parts.append("</ul>")
        self.detail.setHtml("".join(parts))
