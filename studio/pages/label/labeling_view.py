"""LabelingView: label a queue as fast as you can read, from the keyboard.

The prompt on top, the answers side by side (Markdown, or with their differences highlighted), one
key per verdict, the next item at once. Every verdict is committed to the label store in its own
transaction before the next item shows, so closing or killing the studio loses nothing committed.

Pair items: 1 or ← left better, 2 or → right better, 3 tie, 4 both bad, S skip.
Single-answer items (KTO labels): 1 or Y good, 2 or N bad, S skip.
Ranking items (K > 2 answers): press the answers' numbers best first; Backspace takes the last
pick back; the order is committed when only one answer is left. T tie, X all bad, S skip.
Everywhere: Ctrl+Z undo, C comment, G guidelines, D differences.

The answers are shown without their model names (blind labeling) and in an order the store drew at
random for this item and annotator; the store records that order so exports can undo it.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QSizePolicy, QTextBrowser,
    QVBoxLayout, QWidget,
)

from engine.labeling.store import LabelStore, LabelStoreError, Queue, Task
from studio.widgets.shortcuts import shortcut
from studio.widgets.text_diff import highlight_colours, spans_html, word_diff

PAIR_KEYS = (("1  ←", "Left better", "left"), ("2  →", "Right better", "right"), ("3", "Tie", "tie"),
             ("4", "Both bad", "both_bad"), ("S", "Skip", "skip"))
SINGLE_KEYS = (("1  Y", "Good", "good"), ("2  N", "Bad", "bad"), ("S", "Skip", "skip"))
RANK_KEYS = (("1–9", "Pick next best", "pick"), ("T", "Tie", "tie"), ("X", "All bad", "both_bad"),
             ("S", "Skip", "skip"))
VERDICT_NAMES = {"left": "left better", "right": "right better", "tie": "tie", "both_bad": "both bad",
                 "skip": "skipped", "rank": "ranked", "good": "good", "bad": "bad"}


class AnswerCard(QFrame):
    """One answer: a title with its key, the text as Markdown (or highlighted differences)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("answerCard")
        self.setFrameShape(QFrame.StyledPanel)
        self.title = QLabel()
        self.title.setObjectName("answerTitle")
        self.badge = QLabel()
        self.badge.setObjectName("rankBadge")
        self.badge.hide()
        self.body = QTextBrowser()
        self.body.setOpenExternalLinks(False)
        self.body.setFocusPolicy(Qt.NoFocus)  # the view keeps the keyboard; wheel and scrollbars still scroll
        self.body.setMinimumHeight(90)  # a laptop's height holds two rows of cards; long answers scroll
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.badge)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.addLayout(head)
        layout.addWidget(self.body, 1)

    def set_answer(self, title: str, text: str, diff_html: str | None = None) -> None:
        self.title.setText(f"<b>{html.escape(title)}</b>")
        if diff_html is not None:
            self.body.setHtml(diff_html)
        else:
            self.body.setMarkdown(text)
        self.set_rank(None)

    def set_rank(self, rank: int | None) -> None:
        self.badge.setVisible(rank is not None)
        if rank is not None:
            self.badge.setText(f"#{rank}")


class LabelingView(QWidget):
    """Labels one queue as one annotator. Open it with `open_queue`; it asks the store for work."""

    labeled = Signal(object)  # Label, after it is committed
    undone = Signal(object)  # Task handed back by undo
    exhausted = Signal()  # nothing left for this annotator

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.store: LabelStore | None = None
        self.queue: Queue | None = None
        self.annotator = ""
        self.task: Task | None = None
        self.picks: list[int] = []  # ranking so far, as display positions
        self.show_diff = False
        self._shown_at = time.monotonic()
        self._session_labels = 0
        self.setFocusPolicy(Qt.StrongFocus)
        self._build()
        self._build_shortcuts()

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_text = QLabel()
        self.progress_text.setObjectName("muted")
        top = QHBoxLayout()
        top.addWidget(self.progress_bar, 2)
        top.addWidget(self.progress_text, 3)

        self.guidelines = QTextBrowser()
        self.guidelines.setFocusPolicy(Qt.NoFocus)
        self.guidelines.setMaximumHeight(160)
        self.guidelines.hide()

        self.prompt_title = QLabel("<b>Prompt</b>")
        self.prompt = QTextBrowser()
        self.prompt.setFocusPolicy(Qt.NoFocus)
        self.prompt.setObjectName("promptView")
        self.prompt.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.prompt.setMinimumHeight(48)

        self.cards: list[AnswerCard] = []
        self.cards_grid = QGridLayout()
        self.cards_grid.setSpacing(10)

        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setObjectName("emptyState")
        self.empty.hide()

        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (C), saved with your next verdict")
        self.comment.setToolTip("Saved with your next verdict; Enter goes back to labeling.")
        self.comment.returnPressed.connect(self.setFocus)
        self.pair_row = self._verdict_row(PAIR_KEYS)
        self.rank_row = self._verdict_row(RANK_KEYS)
        self.single_row = self._verdict_row(SINGLE_KEYS)
        self.key_buttons: dict[str, QPushButton] = {}
        self.status = QLabel()
        self.status.setObjectName("muted")
        self.diff_legend = QLabel()
        self.diff_legend.setObjectName("help")
        self.diff_legend.setWordWrap(True)
        self.diff_legend.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.guidelines)
        layout.addWidget(self.prompt_title)
        layout.addWidget(self.prompt)
        layout.addLayout(self.cards_grid, 1)
        layout.addWidget(self.diff_legend)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.pair_row)
        layout.addWidget(self.rank_row)
        layout.addWidget(self.single_row)
        layout.addLayout(self._aux_buttons())
        layout.addWidget(self.status)

    def _verdict_row(self, keys: tuple[tuple[str, str, str], ...]) -> QWidget:
        """A row of verdict buttons (built once per mode; show_task shows the row of the item's mode)."""
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        for key, text, verdict in keys:
            button = QPushButton(f"{text}   {key}")
            button.setObjectName("verdict")
            button.setFocusPolicy(Qt.NoFocus)
            button.setMinimumHeight(34)
            if verdict == "pick":
                button.setEnabled(False)  # a hint: the answers' numbers pick
            else:
                button.clicked.connect(lambda _=False, v=verdict: self.give(v))
            layout.addWidget(button, 1)
        return row

    def _aux_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(self.comment, 1)
        for key, text, slot in (("Ctrl+Z", "Undo", self.undo), ("G", "Guidelines", self.toggle_guidelines),
                                ("D", "Differences", self.toggle_diff)):
            button = QPushButton(f"{text}  {key}")
            button.setFocusPolicy(Qt.NoFocus)
            button.clicked.connect(slot)
            row.addWidget(button)
            self.key_buttons[text.lower()] = button
        return row

    def _build_shortcuts(self) -> None:
        def bind(keys: str, slot, what: str) -> None:
            shortcut(keys, self, slot, what)

        bind("Left", lambda: self.press("left"), "Left answer better")
        bind("Right", lambda: self.press("right"), "Right answer better")
        bind("Y", lambda: self.press("good"), "Single answer: good")
        bind("N", lambda: self.press("bad"), "Single answer: bad")
        for digit in range(1, 10):
            what = {1: "Left answer better; single answer: good; ranking: pick answer 1",
                    2: "Right answer better; single answer: bad; ranking: pick answer 2",
                    3: "Tie; ranking: pick answer 3", 4: "Both bad; ranking: pick answer 4"}.get(
                digit, f"Ranking: pick answer {digit}")
            bind(str(digit), lambda d=digit: self.press_digit(d), what)
        bind("S", lambda: self.give("skip"), "Skip: someone else gets the item")
        bind("T", lambda: self.press("tie"), "Tie")
        bind("X", lambda: self.press("both_bad"), "Both (all) bad")
        bind("Backspace", self.unpick, "Take back the last pick of a ranking")
        bind("Ctrl+Z", self.undo, "Undo your last label")
        bind("C", self.comment.setFocus, "Write a comment (saved with the next verdict)")
        bind("G", self.toggle_guidelines, "Show or hide the guidelines")
        bind("D", self.toggle_diff, "Highlight the differences between the two answers")
        bind("Escape", self.setFocus, "Back to labeling from the comment")

    # ------------------------------------------------------------------------------ state
    def open_queue(self, store: LabelStore, queue: Queue | str, annotator: str) -> None:
        self.store = store
        self.queue = store.queue(queue) if not isinstance(queue, Queue) else queue
        self.annotator = annotator.strip()
        self.guidelines.setMarkdown(self.queue.guidelines or "_This queue has no guidelines._")
        self._session_labels = 0
        self.status.setText("")
        self.next_item()

    @property
    def single_mode(self) -> bool:
        return self.task is not None and len(self.task.item.candidates) == 1

    @property
    def ranking_mode(self) -> bool:
        return self.task is not None and len(self.task.item.candidates) > 2

    def next_item(self) -> None:
        if self.store is None or self.queue is None:
            return
        try:
            self.show_task(self.store.next_task(self.queue, self.annotator))
        except LabelStoreError as e:
            self.status.setText(str(e))

    def show_task(self, task: Task | None) -> None:
        self.task = task
        self.picks = []
        if task is None:
            self._show_empty()
            self.exhausted.emit()
            return
        self.empty.hide()
        self.prompt_title.show()
        self.prompt.show()
        self.prompt.setMarkdown(task.item.prompt)
        self._fit_prompt()
        self._layout_cards(len(task.shown))
        self._fill_cards()
        self.pair_row.setVisible(len(task.shown) == 2)
        self.rank_row.setVisible(len(task.shown) > 2)
        self.single_row.setVisible(len(task.shown) == 1)
        self._shown_at = time.monotonic()
        self._update_progress()
        self.setFocus()

    def _fit_prompt(self) -> None:
        """As tall as the prompt needs, up to a third of the view: short prompts leave room for the answers."""
        document = self.prompt.document()
        document.setTextWidth(self.prompt.viewport().width())
        wanted = int(document.size().height()) + 2 * self.prompt.frameWidth() + 8
        self.prompt.setFixedHeight(max(48, min(wanted, max(120, self.height() // 3))))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.task is not None:
            self._fit_prompt()

    def _layout_cards(self, count: int) -> None:
        while len(self.cards) < count:
            self.cards.append(AnswerCard(self))
        columns = count if count <= 4 else 3  # up to four answers side by side: one row, and one glance
        for index, card in enumerate(self.cards):
            self.cards_grid.removeWidget(card)
            card.setVisible(index < count)
            if index < count:
                self.cards_grid.addWidget(card, index // columns, index % columns)

    def _fill_cards(self) -> None:
        task = self.task
        answers = task.shown_candidates()
        diff = word_diff(answers[0].text, answers[1].text) if self.show_diff and len(answers) == 2 else None
        for position, (card, answer) in enumerate(zip(self.cards, answers)):
            if len(answers) == 1:
                title = "Answer  ·  1 or Y good, 2 or N bad"
            elif len(answers) == 2:
                title = ("Left  ·  1 or ←", "Right  ·  2 or →")[position]
            else:
                title = f"Answer {position + 1}  ·  key {position + 1}"
            spans_side = None if diff is None else spans_html(diff.left if position == 0 else diff.right, neutral=True)
            card.set_answer(title, answer.text, spans_side)
            card.set_rank(self.picks.index(position) + 1 if position in self.picks else None)
        shade = highlight_colours(neutral=True)["insert"]
        self.diff_legend.setText(f"<span style='background-color:{shade}'>&nbsp;highlighted&nbsp;</span> words are "
                                 "in one answer and not the other; the colour says nothing about which is better. "
                                 "D hides it.")
        self.diff_legend.setVisible(diff is not None)

    def _show_empty(self) -> None:
        self.diff_legend.hide()
        for card in self.cards:
            card.hide()
        self.prompt_title.hide()
        self.prompt.hide()
        self.pair_row.hide()
        self.rank_row.hide()
        self.single_row.hide()
        if self.store is None or self.queue is None:
            self.empty.setText("Choose a labeling queue.")
        else:
            progress = self.store.progress(self.queue)
            self.empty.setText(
                f"<h3>Nothing left for you in “{html.escape(self.queue.name)}”</h3>"
                f"<p>{progress.done} of {progress.items} items have all their labels; you gave "
                f"{progress.per_annotator.get(self.annotator, 0)}.</p>"
                "<p>Generate more candidates or import a file to add items. Ctrl+Z takes your last label back.</p>")
        self.empty.show()
        self._update_progress()

    def _update_progress(self) -> None:
        if self.store is None or self.queue is None:
            return
        progress = self.store.progress(self.queue)
        self.progress_bar.setRange(0, max(progress.items, 1))
        self.progress_bar.setValue(progress.done)
        self.progress_bar.setFormat(f"{progress.done} / {progress.items} items done")
        rate = self.store.rate_per_minute(self.queue, self.annotator)
        parts = [f"{html.escape(self.annotator)}: {progress.per_annotator.get(self.annotator, 0)} labeled"]
        parts.append(f"{rate:.1f} items/min" if rate is not None else "items/min after two labels")
        if progress.skipped:
            parts.append(f"{progress.skipped} skipped")
        if self.task is not None and self.task.item.required > 1:
            parts.append(f"overlap item: {self.task.item.required} annotators label it")
        self.progress_text.setText("  ·  ".join(parts))

    # ------------------------------------------------------------------------------ actions
    def press(self, verdict: str) -> None:
        """A verdict key, where the item's mode has it: ←/→ for pairs, good/bad (Y/N) for single answers,
        tie and all bad for pairs and rankings."""
        if self.task is None:
            return
        if self.single_mode:
            allowed = verdict in ("good", "bad")
        else:
            allowed = verdict not in ("good", "bad") and not (verdict in ("left", "right") and self.ranking_mode)
        if allowed:
            self.give(verdict)

    def press_digit(self, digit: int) -> None:
        if self.task is None:
            return
        if self.single_mode:
            verdict = {1: "good", 2: "bad"}.get(digit)
            if verdict:
                self.give(verdict)
            return
        if not self.ranking_mode:
            verdict = {1: "left", 2: "right", 3: "tie", 4: "both_bad"}.get(digit)
            if verdict:
                self.give(verdict)
            return
        position = digit - 1
        if position >= len(self.task.shown) or position in self.picks:
            return
        self.picks.append(position)
        if len(self.picks) == len(self.task.shown) - 1:
            last = next(p for p in range(len(self.task.shown)) if p not in self.picks)
            self.picks.append(last)
            self.give("rank")
            return
        self._fill_ranks()

    def unpick(self) -> None:
        if self.picks:
            self.picks.pop()
            self._fill_ranks()

    def _fill_ranks(self) -> None:
        for position, card in enumerate(self.cards[:len(self.task.shown)]):
            card.set_rank(self.picks.index(position) + 1 if position in self.picks else None)
        picked = ", ".join(f"answer {p + 1}" for p in self.picks)
        self.status.setText(f"Ranking so far: {picked} (Backspace takes the last one back)" if picked else "")

    def give(self, verdict: str) -> None:
        """Commit a verdict for the item on screen, then show the next one."""
        if self.task is None or self.store is None:
            return
        ranking = [self.task.shown[p] for p in self.picks] if verdict == "rank" else None
        try:
            label = self.store.add_label(self.task, verdict, ranking=ranking, comment=self.comment.text(),
                                         seconds=round(time.monotonic() - self._shown_at, 3), source="gui")
        except LabelStoreError as e:
            self.status.setText(str(e))
            self.picks = []
            return
        self.comment.clear()
        self._session_labels += 1
        self.status.setText(f"Saved: item {self.task.item.position + 1} {VERDICT_NAMES[verdict]}.")
        self.labeled.emit(label)
        self.next_item()

    def undo(self) -> None:
        if self.store is None or self.queue is None:
            return
        if self.task is not None and self.picks:
            self.picks = []
            self._fill_ranks()
            return
        if self.task is not None:
            self.store.release(self.task)
        task = self.store.undo_last(self.queue, self.annotator)
        if task is None:
            self.status.setText("Nothing to undo: you have no labels in this queue.")
            self.next_item()
            return
        self.show_task(task)
        self.status.setText(f"Took back your label on item {task.item.position + 1}; label it again.")
        self.undone.emit(task)

    def toggle_guidelines(self) -> None:
        self.guidelines.setVisible(not self.guidelines.isVisible())

    def toggle_diff(self) -> None:
        self.show_diff = not self.show_diff
        if self.task is not None:
            self._fill_cards()
        if self.task is not None and len(self.task.shown) > 2 and self.show_diff:
            self.status.setText("Differences are highlighted for pairs only.")

    def shown_texts(self) -> list[str]:
        """The answers in display order (for tests and screenshots)."""
        return [c.text for c in self.task.shown_candidates()] if self.task else []

