"""Two texts side by side with the words that differ highlighted.

`word_diff(a, b)` splits both texts into words, whitespace runs and punctuation, matches them with
`difflib.SequenceMatcher`, and returns each side as spans marked equal / delete / insert plus the
share of words the two have in common. `TextDiffView` renders that in two read-only panes that
scroll together. Used by the dry run (a document before and after the steps that changed it, a
duplicate beside the document it duplicates) and by the cleaning report's duplicate clusters.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from studio import theme
from studio.widgets.elided_label import ElidedLabel

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
# Above this many tokens a side is cut before matching: SequenceMatcher is quadratic in the worst case.
MAX_TOKENS = 12_000
# Whitespace that changed is drawn visibly, or a tidied line ending would be an invisible highlight.
_VISIBLE = {" ": "·", "\t": "→", "\r": "␍", "\u00a0": "⍽"}


@dataclass(frozen=True)
class DiffSpan:
    text: str
    kind: str  # "equal", "delete" (only on the left) or "insert" (only on the right)


@dataclass
class WordDiff:
    left: list[DiffSpan]
    right: list[DiffSpan]
    similarity: float  # share of word tokens the two texts have in common (0..1)
    changes: int  # passages that differ
    truncated: bool = False  # a side was longer than MAX_TOKENS and was cut


def tokens(text: str) -> list[str]:
    """Words, whitespace runs and single punctuation marks; joined they give `text` back."""
    return _TOKEN.findall(text)


def word_diff(left: str, right: str) -> WordDiff:
    a, b = tokens(left or ""), tokens(right or "")
    truncated = len(a) > MAX_TOKENS or len(b) > MAX_TOKENS
    a, b = a[:MAX_TOKENS], b[:MAX_TOKENS]
    # autojunk off: with it, frequent words ("the", " ") of long texts would never be matched.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left_spans: list[DiffSpan] = []
    right_spans: list[DiffSpan] = []
    changes = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            text = "".join(a[i1:i2])
            left_spans.append(DiffSpan(text, "equal"))
            right_spans.append(DiffSpan(text, "equal"))
            continue
        changes += 1
        if i2 > i1:
            left_spans.append(DiffSpan("".join(a[i1:i2]), "delete"))
        if j2 > j1:
            right_spans.append(DiffSpan("".join(b[j1:j2]), "insert"))
    words_a = sum(1 for t in a if not t.isspace())
    words_b = sum(1 for t in b if not t.isspace())
    same = sum(1 for s in left_spans if s.kind == "equal" for t in tokens(s.text) if not t.isspace())
    similarity = 2 * same / (words_a + words_b) if words_a + words_b else 1.0
    return WordDiff(_merge(left_spans), _merge(right_spans), similarity, changes, truncated)


def _merge(spans: list[DiffSpan]) -> list[DiffSpan]:
    merged: list[DiffSpan] = []
    for span in spans:
        if merged and merged[-1].kind == span.kind:
            merged[-1] = DiffSpan(merged[-1].text + span.text, span.kind)
        elif span.text:
            merged.append(span)
    return merged


def _mix(colour: str, share: float) -> str:
    base, c = QColor(theme.current().base), QColor(colour)
    mixed = QColor(round(base.red() + (c.red() - base.red()) * share),
                   round(base.green() + (c.green() - base.green()) * share),
                   round(base.blue() + (c.blue() - base.blue()) * share))
    return mixed.name()


def highlight_colours(neutral: bool = False) -> dict[str, str]:
    """Backgrounds of removed and added passages in the current theme; `neutral`: one colour for
    both sides, that says which words differ and nothing of which side is better (two answers an
    annotator judges)."""
    t = theme.current()
    strength = 0.42 if t.name == "dark" else 0.26
    if neutral:
        shade = _mix(t.accent, strength)
        return {"delete": shade, "insert": shade}
    return {"delete": _mix(t.error, strength), "insert": _mix(t.series[2], strength + 0.04)}


def spans_html(spans: list[DiffSpan], neutral: bool = False) -> str:
    colours = highlight_colours(neutral)
    parts = []
    for span in spans:
        if span.kind == "equal":
            parts.append(html.escape(span.text))
            continue
        text = span.text
        if text.isspace():
            text = "".join(_VISIBLE.get(ch, "⏎\n" if ch == "\n" else ch) for ch in text)
        parts.append(f'<span style="background-color:{colours[span.kind]}">{html.escape(text)}</span>')
    body = "".join(parts).replace("\n", "<br>")
    return f'<div style="white-space: pre-wrap">{body}</div>'


class TextDiffView(QWidget):
    """Two texts side by side, the differing passages highlighted, scrolling together.

    `set_texts(left, right, left_title, right_title)` compares; `set_single(text, title)` shows one
    text alone (nothing to compare it with); `clear(message)` shows a placeholder. Public for
    tests: `left_view`, `right_view`, `left_title`, `right_title`, `summary_label`, `diff` (the last
    WordDiff, None for a single text).
    """

    def __init__(self, placeholder: str = "Nothing to show.", parent: QWidget | None = None):
        super().__init__(parent)
        self.diff: WordDiff | None = None
        self.left_title, self.right_title = ElidedLabel(""), ElidedLabel("")
        self.left_view, self.right_view = QTextBrowser(), QTextBrowser()
        self.splitter = QSplitter(Qt.Horizontal)
        for title, view in ((self.left_title, self.left_view), (self.right_title, self.right_view)):
            title.setStyleSheet("font-weight: 600;")
            title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long ids must not widen a side
            view.setOpenLinks(False)
            view.setLineWrapMode(QTextBrowser.WidgetWidth)
            pane = QWidget()
            pane_layout = QVBoxLayout(pane)
            pane_layout.setContentsMargins(0, 0, 0, 0)
            pane_layout.setSpacing(4)
            pane_layout.addWidget(title)
            pane_layout.addWidget(view, 1)
            self.splitter.addWidget(pane)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("help")
        self.summary_label.setWordWrap(True)
        self.placeholder = QLabel(placeholder)
        self.placeholder.setObjectName("subtitle")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.splitter, 1)
        legend = QHBoxLayout()
        legend.addWidget(self.summary_label, 1)
        layout.addLayout(legend)
        self._syncing = False
        self.left_view.verticalScrollBar().valueChanged.connect(
            lambda v: self._sync(self.left_view, self.right_view))
        self.right_view.verticalScrollBar().valueChanged.connect(
            lambda v: self._sync(self.right_view, self.left_view))
        self.clear()

    def set_texts(self, left: str, right: str, left_title: str = "", right_title: str = "") -> WordDiff:
        self.diff = word_diff(left, right)
        self.left_view.setHtml(spans_html(self.diff.left))
        self.right_view.setHtml(spans_html(self.diff.right))
        self.left_title.setText(left_title)
        self.right_title.setText(right_title)
        colours = highlight_colours()
        if self.diff.changes == 0:
            summary = "The two texts are identical."
        else:
            summary = (f"{self.diff.similarity:.0%} of the words in common · {self.diff.changes:,} "
                       f"passage{'s' if self.diff.changes != 1 else ''} differ: "
                       f"<span style='background-color:{colours['delete']}'>&nbsp;only on the left&nbsp;</span> "
                       f"<span style='background-color:{colours['insert']}'>&nbsp;only on the right&nbsp;</span>")
        if self.diff.truncated:
            summary += f" · compared up to {MAX_TOKENS:,} words"
        self.summary_label.setText(summary)
        self._show(both=True)
        return self.diff

    def set_single(self, text: str, title: str = "") -> None:
        self.diff = None
        self.left_view.setPlainText(text or "")
        self.left_title.setText(title)
        self.summary_label.setText("")
        self._show(both=False)

    def clear(self, message: str | None = None) -> None:
        self.diff = None
        if message is not None:
            self.placeholder.setText(message)
        self.left_view.clear()
        self.right_view.clear()
        self.summary_label.setText("")
        self.placeholder.show()
        self.splitter.hide()

    def _show(self, both: bool) -> None:
        self.placeholder.hide()
        self.splitter.show()
        self.splitter.widget(1).setVisible(both)
        if both:
            self.splitter.setSizes([1000, 1000])  # halves, whatever the titles' lengths
        for view in (self.left_view, self.right_view):
            view.verticalScrollBar().setValue(0)

    def _sync(self, source: QTextBrowser, target: QTextBrowser) -> None:
        # Proportional: the two sides differ in length, so equal offsets would drift apart.
        if self._syncing or not target.isVisible():
            return
        self._syncing = True
        try:
            bar, other = source.verticalScrollBar(), target.verticalScrollBar()
            share = bar.value() / bar.maximum() if bar.maximum() else 0.0
            other.setValue(round(share * other.maximum()))
        finally:
            self._syncing = False
