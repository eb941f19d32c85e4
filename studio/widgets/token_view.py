"""The live token preview: text split into coloured chips with their ids, and two tokenizers side by side.

Tokenizers are loaded from a saved `tokenizer.json` with the light Rust `tokenizers` package (never
transformers), which takes milliseconds; encoding is debounced while the user types and capped at
`MAX_PREVIEW_CHARS`, so the GUI never waits on it.
"""

from __future__ import annotations

from functools import lru_cache

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QScrollArea, QVBoxLayout, QWidget,
)

from studio import theme
from studio.widgets.elided_label import ElidedLabel
from studio.widgets.token_chips import TokenChips, TokenPiece, encode_pieces
from studio.widgets.tokenizer_picker import TokenizerPicker, tokenizer_name

MAX_PREVIEW_CHARS = 10_000
DEBOUNCE_MS = 100
SAMPLE_TEXT = (
    'def greet(name: str) -> str:\n'
    '\t"""Say hello politely."""\n'
    '    return f"Hello, {name}!"  # two spaces before the comment\n'
    '\n'
    'The tokenizer splits naïve café text, numbers like 3.14159 and 2026, and Grüße, € and ½ too.'
)


class TokenizerLoadError(Exception):
    """A tokenizer folder that cannot be loaded; the message is a sentence for the user."""


def load_tokenizer(path: str | Path):
    """A `tokenizers.Tokenizer` from a folder holding `tokenizer.json` (or that file itself)."""
    from tokenizers import Tokenizer

    path = Path(path).expanduser()
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise TokenizerLoadError(f"No tokenizer.json in {path}: choose a folder saved by a tokenizer or "
                                 "pretraining run (or by save_pretrained).")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # noqa: BLE001 - any unreadable file: say which and why
        raise TokenizerLoadError(f"{file} is not a tokenizer the preview can read ({e}).") from e


def vocabulary_size(path: str | Path) -> int | None:
    """The vocabulary of the tokenizer at `path` with its added tokens (what a model built on it gets,
    `len(tokenizer)`); None when there is no tokenizer to read there (a hub id, a wrong folder)."""
    path = Path(path).expanduser()
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        return _vocabulary_size(str(file), file.stat().st_mtime)
    except (OSError, TokenizerLoadError):
        return None


@lru_cache(maxsize=8)
def _vocabulary_size(file: str, _mtime: float) -> int:
    return load_tokenizer(file).get_vocab_size(with_added_tokens=True)


class TokenView(QWidget):
    """A tokenizer applied to text as the user types: coloured chips with ids, the token count and
    characters per token.

    Public for tests: `set_tokenizer(tokenizer_or_folder)`, `set_text(text)` (debounced),
    `encode_now()`, `pieces`, `token_count`, `chars_per_token`, `editor` (None when the text comes
    from outside, as in the compare view), `stats_label`, `title_label`, `chips`, `error`.
    """

    encoded = Signal()

    def __init__(self, tokenizer: Any = None, text: str = SAMPLE_TEXT, editable: bool = True,
                 show_title: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.tokenizer = None
        self.tokenizer_path: Path | None = None
        self.text = text
        self.pieces: list[TokenPiece] = []
        self.token_count = 0
        self.chars_per_token: float | None = None
        self.truncated = False
        self.error = ""
        self.encode_ms = 0.0

        self.title_label = ElidedLabel("")
        self.title_label.setStyleSheet("font-weight: 600;")
        self.stats_label = QLabel("")
        self.stats_label.setObjectName("badge")
        self.ids_box = QCheckBox("Ids")
        self.ids_box.setChecked(True)
        self.ids_box.setToolTip("Show each token's id beneath it (hover a token for details).")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.title_label, 1)
        self.title_label.setVisible(show_title)
        self.title_label.setMinimumWidth(40)
        header.addWidget(self.stats_label)
        header.addWidget(self.ids_box)
        if not show_title:
            header.insertStretch(0, 1)

        self.editor: QPlainTextEdit | None = None
        if editable:
            self.editor = QPlainTextEdit(text)
            self.editor.setPlaceholderText("Type or paste text to see how it is split…")
            self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
            self.editor.setMaximumHeight(110)
            self.editor.textChanged.connect(lambda: self.set_text(self.editor.toPlainText()))

        self.chips = TokenChips()
        self.chips.placeholder = "No tokenizer yet."
        self.ids_box.toggled.connect(self.chips.set_show_ids)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        holder = QWidget()
        holder.setObjectName("tokenChipsHolder")
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(8, 8, 8, 8)
        holder_layout.addWidget(self.chips)
        holder_layout.addStretch(1)
        scroll.setWidget(holder)
        scroll.setMinimumHeight(90)
        self.scroll = scroll
        frame = QFrame()
        frame.setObjectName("tokenFrame")
        frame_layout = QVBoxLayout(frame)
        frame_layout.setContentsMargins(1, 1, 1, 1)
        frame_layout.addWidget(scroll)
        self.frame = frame
        self._style_frame()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        if self.editor is not None:
            layout.addWidget(self.editor)
        layout.addLayout(header)
        layout.addWidget(frame, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.encode_now)
        if tokenizer is not None:
            self.set_tokenizer(tokenizer)
        else:
            self.encode_now()

    def _style_frame(self) -> None:
        t = theme.current()
        self.frame.setStyleSheet(f"QFrame#tokenFrame {{ border: 1px solid {t.border}; border-radius: 6px; "
                                 f"background: {t.base}; }} QWidget#tokenChipsHolder {{ background: {t.base}; }}")

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() in (event.Type.PaletteChange, event.Type.StyleChange):
            self._style_frame()
        super().changeEvent(event)

    def set_tokenizer(self, tokenizer: Any, name: str | None = None) -> bool:
        """Use a `tokenizers.Tokenizer`, or load one from a folder; False (and `error` set) when it
        cannot be loaded. None clears the view."""
        self.error = ""
        if tokenizer is None:
            self.tokenizer, self.tokenizer_path = None, None
            self.chips.placeholder = "No tokenizer yet."
        elif isinstance(tokenizer, (str, Path)):
            try:
                self.tokenizer = load_tokenizer(tokenizer)
                self.tokenizer_path = Path(tokenizer)
            except TokenizerLoadError as e:
                self.tokenizer, self.tokenizer_path = None, None
                self.error = str(e)
                self.chips.placeholder = self.error
        else:
            self.tokenizer, self.tokenizer_path = tokenizer, None
        shown = name or tokenizer_name(self.tokenizer_path)
        if self.tokenizer is not None:
            shown = f"{shown}  ·  {self.tokenizer.get_vocab_size():,} tokens" if shown else \
                f"{self.tokenizer.get_vocab_size():,}-token vocabulary"
        self.title_label.setText(shown)
        self.encode_now()
        return self.tokenizer is not None

    def set_text(self, text: str, immediate: bool = False) -> None:
        self.text = text
        if self.editor is not None and self.editor.toPlainText() != text:
            blocked = self.editor.blockSignals(True)
            self.editor.setPlainText(text)
            self.editor.blockSignals(blocked)
        if immediate:
            self.encode_now()
        else:
            self._timer.start()

    def encode_now(self) -> None:
        self._timer.stop()
        text = self.text[:MAX_PREVIEW_CHARS]
        self.truncated = len(self.text) > MAX_PREVIEW_CHARS
        if self.tokenizer is None:
            self.pieces, self.token_count, self.chars_per_token = [], 0, None
            self.stats_label.setText("—")
        else:
            started = time.perf_counter()
            self.pieces = encode_pieces(self.tokenizer, text)
            self.encode_ms = (time.perf_counter() - started) * 1000
            self.token_count = sum(1 for p in self.pieces if not p.gap)
            self.chars_per_token = len(text) / self.token_count if self.token_count else None
            stats = f"{self.token_count:,} token{'s' if self.token_count != 1 else ''}"
            if self.chars_per_token is not None:
                stats += f"  ·  {self.chars_per_token:.2f} chars/token"
            if self.truncated:
                stats += f"  ·  first {MAX_PREVIEW_CHARS:,} of {len(self.text):,} characters"
            self.stats_label.setText(stats)
            if not text:
                self.chips.placeholder = "Type some text to see its tokens."
        self.chips.set_pieces(self.pieces)
        self.encoded.emit()


class TokenCompareView(QWidget):
    """Two tokenizers on the same text, side by side, with their token counts compared.

    Public for tests: `editor`, `left` / `right` (TokenViews), `left_picker` / `right_picker`,
    `set_tokenizers(a, b)` (tokenizers or folders), `set_text(text)`, `summary_label`.
    """

    def __init__(self, workspace: str | Path | None = None, text: str = SAMPLE_TEXT,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.editor = QPlainTextEdit(text)
        self.editor.setPlaceholderText("Type or paste text to compare how each tokenizer splits it…")
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.editor.setMaximumHeight(110)
        self.left = TokenView(text=text, editable=False, show_title=False)  # the picker names it
        self.right = TokenView(text=text, editable=False, show_title=False)
        self.left_picker = TokenizerPicker(workspace)
        self.right_picker = TokenizerPicker(workspace, none_label="(none)")
        self.left_picker.chosen.connect(lambda path: self._load(self.left, path))
        self.right_picker.chosen.connect(lambda path: self._load(self.right, path))
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("help")
        self.summary_label.setWordWrap(True)
        self.editor.textChanged.connect(lambda: self.set_text(self.editor.toPlainText()))
        self.left.encoded.connect(self._update_summary)
        self.right.encoded.connect(self._update_summary)

        columns = QHBoxLayout()
        columns.setSpacing(14)
        for label, picker, view in (("A", self.left_picker, self.left), ("B", self.right_picker, self.right)):
            column = QVBoxLayout()
            column.setSpacing(6)
            row = QHBoxLayout()
            tag = QLabel(label)
            tag.setObjectName("badge")
            row.addWidget(tag)
            row.addWidget(picker, 1)
            column.addLayout(row)
            column.addWidget(view, 1)
            columns.addLayout(column, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.editor)
        layout.addLayout(columns, 1)
        layout.addWidget(self.summary_label)
        self._update_summary()

    def set_workspace(self, workspace: str | Path | None) -> None:
        self.left_picker.set_workspace(workspace)
        self.right_picker.set_workspace(workspace)

    def _load(self, view: TokenView, path: str) -> None:
        view.set_tokenizer(path or None)

    def set_tokenizers(self, left: Any = None, right: Any = None) -> None:
        for picker, view, value in ((self.left_picker, self.left, left), (self.right_picker, self.right, right)):
            if isinstance(value, (str, Path)):
                picker.add_path(value, select=False)
                picker.select(value, emit=False)
            view.set_tokenizer(value)

    def set_text(self, text: str, immediate: bool = False) -> None:
        if self.editor.toPlainText() != text:
            blocked = self.editor.blockSignals(True)
            self.editor.setPlainText(text)
            self.editor.blockSignals(blocked)
        self.left.set_text(text, immediate)
        self.right.set_text(text, immediate)

    def encode_now(self) -> None:
        self.left.encode_now()
        self.right.encode_now()

    def _update_summary(self) -> None:
        a, b = self.left, self.right
        if a.tokenizer is None or b.tokenizer is None or not a.token_count or not b.token_count:
            self.summary_label.setText("Pick a second tokenizer (B) to compare token counts on the same text.")
            return
        ratio = b.token_count / a.token_count
        if abs(ratio - 1) < 0.005:
            verdict = "the same number of tokens"
        elif ratio < 1:
            verdict = f"B needs {1 - ratio:.0%} fewer tokens than A"
        else:
            verdict = f"B needs {ratio - 1:.0%} more tokens than A"
        self.summary_label.setText(f"A: {a.token_count:,} tokens ({a.chars_per_token:.2f} chars/token)  ·  "
                                   f"B: {b.token_count:,} tokens ({b.chars_per_token:.2f} chars/token)  —  {verdict}.")
