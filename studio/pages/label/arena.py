"""The Label page's Arena tab: the models whose answers a queue compares, ranked by the votes given on
the Label tab (engine/labeling/ratings.py): rating, confidence interval, wins, losses, ties and win
rate, from everyone's votes or one annotator's, beside the annotators' agreement. "New arena…" sets
the Generate tab up for one answer per model per prompt.

It reads the label store when shown and holds no state of its own; the bootstrap (1000 resamples,
numpy) takes a fraction of a second.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.labeling.ratings import ArenaReport, Ratings, arena
from engine.labeling.store import LabelStore, Queue
from studio.pages.label.overview import fill_table, kappa_text, percent, read_only_table

EVERYONE = ""
COLUMNS = ["#", "Model", "Rating", "95% interval", "Wins", "Losses", "Ties", "Win rate", "Votes"]


class ArenaView(QWidget):
    """Public: `who` (everyone or one annotator), `method`, `table`, `note`, `report`, `new_arena_button`,
    and `show_queue(store, queue)`. Emits `new_arena` when asked to set one up."""

    new_arena = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.store: LabelStore | None = None
        self.queue: Queue | None = None
        self.report: ArenaReport | None = None
        self.who = QComboBox()
        self.who.setMinimumWidth(160)
        self.who.currentIndexChanged.connect(self._render)
        self.method = QComboBox()
        self.method.addItem("Bradley–Terry", "bt")
        self.method.addItem("Elo (in voting order)", "elo")
        self.method.setToolTip("Bradley–Terry: the maximum-likelihood fit of every vote, whatever their order. "
                               "Elo: updated vote by vote, so the order matters.")
        self.method.currentIndexChanged.connect(lambda _: self.refresh())
        self.new_arena_button = QPushButton("New arena…")
        self.new_arena_button.setToolTip("Pick two or more models and a prompt set; each answers every prompt once "
                                         "(seeds recorded), and the answers come here as blind pairs")
        self.new_arena_button.clicked.connect(self.new_arena.emit)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Votes of"))
        bar.addWidget(self.who)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Rating"))
        bar.addWidget(self.method)
        bar.addStretch(1)
        bar.addWidget(self.new_arena_button)
        self.table = read_only_table(COLUMNS, stretch=1)
        self.note = QLabel()
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)

    def show_queue(self, store: LabelStore, queue: Queue | None) -> None:
        self.store, self.queue = store, queue
        self.refresh()

    def refresh(self) -> None:
        self.report = arena(self.store, self.queue, method=self.method.currentData()) \
            if self.store is not None and self.queue is not None else None
        chosen = self.who.currentData()
        self.who.blockSignals(True)
        self.who.clear()
        self.who.addItem("Everyone", EVERYONE)
        for name in (self.report.per_annotator if self.report else {}):
            self.who.addItem(name, name)
        self.who.setCurrentIndex(max(0, self.who.findData(chosen)))
        self.who.blockSignals(False)
        self._render()

    def ratings(self) -> Ratings | None:
        if self.report is None:
            return None
        who = self.who.currentData()
        return self.report.overall if not who else self.report.per_annotator.get(who)

    def _render(self) -> None:
        shown = self.ratings()
        fill_table(self.table, [[str(rank), r.model, f"{r.rating:.0f}", f"{r.low:.0f} – {r.high:.0f}", str(r.wins),
                            str(r.losses), str(r.ties), percent(r.win_rate), str(r.votes)]
                           for rank, r in enumerate(shown.ratings if shown else [], start=1)])
        self.note.setText(self._note(shown))

    def _note(self, shown: Ratings | None) -> str:
        report = self.report
        if report is None:
            return "No queue yet."
        if shown is None or not shown.ratings:
            return ("No votes between two models' answers in this queue yet. An arena queue holds the answers of two "
                    "or more models to the same prompts: “New arena…” generates them; label them on the Label tab "
                    "(the same keys as any pair) and the ratings show here.")
        left_out = [f"{n} {what}" for n, what in ((report.same_model_pairs, "pairs of one model's answers"),
                                                  (report.unattributed_pairs, "pairs with an unnamed answer")) if n]
        table = report.agreement
        agreement = (f"Annotators agree on {percent(table.percent)} of {table.items} items labeled by several "
                     f"(κ {kappa_text(table.kappa)})." if table.pairs else
                     "Agreement shows once two annotators have labeled the same items (give the queue an overlap).")
        return (f"{shown.method} ratings from {shown.votes} votes (a tie or “both bad” is half a win each); "
                f"{shown.confidence:.0%} intervals from {shown.bootstrap} bootstrap resamples"
                + (f"; left out: {', '.join(left_out)}" if left_out else "") + f". {agreement} These votes are "
                f"preference data too: reward and DPO runs read them as queue:{report.queue}.")
