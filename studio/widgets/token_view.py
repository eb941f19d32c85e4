"""The live token preview: text split into coloured chips with their ids, and two tokenizers side by side.

Tokenizers are loaded from a saved `tokenizer.json` with the light Rust `tokenizers` package (never
transformers), which takes milliseconds; encoding is debounced while the user types and capped at
`MAX_PREVIEW_CHARS`, so the GUI never waits on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QScrollArea, QSizePolicy,
    QToolTip, QVBoxLayout, QWidget,
)

from studio import theme
from studio.widgets.elided_label import ElidedLabel

MAX_PREVIEW_CHARS = 10_000
DEBOUNCE_MS = 100
SAMPLE_TEXT = (
    'def greet(name: str) -> str:\n'
    '\t"""Say hello politely."""\n'
    '    return f"Hello, {name}!"  # two spaces before the comment\n'
    '\n'
    'The tokenizer splits naïve café text, numbers like 3.14159 and 2026, and Grüße, € and ½ too.'
)
VISIBLE_WHITESPACE = {" ": "·", "\n": "⏎", "\t": "→", "\r": "␍"}


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


def visible(text: str) -> str:
    """Whitespace and control characters made visible (· space, ⏎ newline, → tab)."""
    out = []
    for ch in text:
        if ch in VISIBLE_WHITESPACE:
            out.append(VISIBLE_WHITESPACE[ch])
        elif ord(ch) < 0x20:
            out.append(chr(0x2400 + ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class TokenPiece:
    """One chip of the preview: a token (with its id) or a stretch of text no token covers (`gap`)."""

    text: str  # the characters of the input this piece stands for ("" when it shares them with the previous)
    token: str  # the vocabulary string ("" for a gap)
    id: int | None
    start: int
    end: int
    special: bool = False
    unknown: bool = False
    trained: bool | None = None  # in a rendered training record: learned (in the loss) or masked; None elsewhere

    @property
    def gap(self) -> bool:
        return self.id is None

    @property
    def label(self) -> str:
        return visible(self.text) if self.text else visible(self.token)

    @property
    def ends_line(self) -> bool:
        return self.text.endswith("\n")


def _unknown_id(tokenizer) -> int | None:
    token = getattr(getattr(tokenizer, "model", None), "unk_token", None)
    if token:
        return tokenizer.token_to_id(token)
    unk_id = getattr(getattr(tokenizer, "model", None), "unk_id", None)
    return unk_id if isinstance(unk_id, int) else None


def encode_pieces(tokenizer, text: str, add_special_tokens: bool = False) -> list[TokenPiece]:
    """The text as tokens (with what each covers) and the gaps between them, in order."""
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    unk = _unknown_id(tokenizer)
    pieces: list[TokenPiece] = []
    cursor = 0
    for token_id, token, (start, end), special in zip(encoding.ids, encoding.tokens, encoding.offsets,
                                                      encoding.special_tokens_mask):
        if special and start == end:
            pieces.append(TokenPiece("", token, token_id, start, end, special=True))
            continue
        if start > cursor:
            pieces.append(TokenPiece(text[cursor:start], "", None, cursor, start))
        # Byte-level tokens that split one character share its offsets: show the character once.
        shown = text[max(start, cursor):end]
        pieces.append(TokenPiece(shown, token, token_id, start, end, special=bool(special),
                                 unknown=unk is not None and token_id == unk))
        cursor = max(cursor, end)
    if cursor < len(text):
        pieces.append(TokenPiece(text[cursor:], "", None, cursor, len(text)))
    return pieces


def _mix(base: QColor, colour: QColor, share: float) -> QColor:
    return QColor(round(base.red() + (colour.red() - base.red()) * share),
                  round(base.green() + (colour.green() - base.green()) * share),
                  round(base.blue() + (colour.blue() - base.blue()) * share))


def chip_colours(t: theme.Theme) -> list[QColor]:
    """Soft backgrounds for alternating chips, mixed from the theme's series colours."""
    share = 0.22 if t.name == "light" else 0.38
    return [_mix(QColor(t.base), QColor(name), share) for name in t.series[:5]]


def trained_colours(t: theme.Theme) -> tuple[list[QColor], list[QColor]]:
    """(trained, masked) chip backgrounds of a rendered training record, two shades each so that
    neighbouring tokens stay apart: trained ones in the theme's green, masked ones grey."""
    base, green, grey = QColor(t.base), QColor(t.series[2]), QColor(t.muted)
    light = t.name == "light"
    trained = [_mix(base, green, s) for s in ((0.20, 0.32) if light else (0.34, 0.48))]
    masked = [_mix(base, grey, s) for s in ((0.10, 0.17) if light else (0.16, 0.24))]
    return trained, masked


class TokenChips(QWidget):
    """Paints pieces as wrapped chips (token text above, id beneath); a tooltip tells each one."""

    PAD_X, PAD_Y, GAP_X, GAP_Y = 4, 2, 3, 5

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.pieces: list[TokenPiece] = []
        self.show_ids = True
        self.placeholder = ""
        self.text_font = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.text_font.setPointSizeF(10.5)
        self.id_font = QFont(self.font())
        self.id_font.setPointSizeF(7.5)
        self._rects: list[tuple[QRectF, TokenPiece]] = []
        self._layout_width = -1
        self._height = 0
        sp = QSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        sp.setHeightForWidth(True)
        self.setSizePolicy(sp)
        self.setMouseTracking(True)

    def set_pieces(self, pieces: list[TokenPiece]) -> None:
        self.pieces = pieces
        self._layout_width = -1
        self._relayout()

    def set_show_ids(self, show: bool) -> None:
        self.show_ids = show
        self._layout_width = -1
        self._relayout()

    def _layout(self, width: int) -> tuple[list[tuple[QRectF, TokenPiece]], int]:
        tm, im = QFontMetrics(self.text_font), QFontMetrics(self.id_font)
        line_h = tm.height() + 2 * self.PAD_Y + (im.height() if self.show_ids else 0)
        x = y = 0.0
        rects = []
        width = max(width, 40)
        for piece in self.pieces:
            label = piece.label
            if piece.gap:
                # Text no token covers (e.g. spaces a WordPiece tokenizer drops): shown, but without a chip.
                for part in _split_keep_newlines(label):
                    w = tm.horizontalAdvance(part) + 2
                    if x > 0 and x + w > width:
                        x, y = 0.0, y + line_h + self.GAP_Y
                    rects.append((QRectF(x, y, w, line_h), TokenPiece(part, "", None, piece.start, piece.end)))
                    x += w + self.GAP_X
                    if part.endswith("⏎"):
                        x, y = 0.0, y + line_h + self.GAP_Y
                continue
            w = max(tm.horizontalAdvance(label), im.horizontalAdvance(str(piece.id)) if self.show_ids else 0)
            w = min(w + 2 * self.PAD_X, width)
            if x > 0 and x + w > width:
                x, y = 0.0, y + line_h + self.GAP_Y
            rects.append((QRectF(x, y, w, line_h), piece))
            x += w + self.GAP_X
            if piece.ends_line:
                x, y = 0.0, y + line_h + self.GAP_Y
        height = int(y + (line_h if x > 0 or not rects else 0)) + 4
        return rects, height

    def _relayout(self) -> None:
        width = self.width()
        if width != self._layout_width:
            self._rects, self._height = self._layout(width)
            self._layout_width = width
            self.setMinimumHeight(max(self._height, 40))
            self.updateGeometry()
        self.update()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        return max(self._layout(width)[1], 40)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(400, max(self._height, 40))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._relayout()

    def piece_at(self, pos: QPoint) -> TokenPiece | None:
        for rect, piece in self._rects:
            if rect.contains(pos.x(), pos.y()):
                return piece
        return None

    def event(self, event) -> bool:
        if event.type() == event.Type.ToolTip:
            piece = self.piece_at(event.pos())
            if piece is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), describe(piece), self)
            return True
        return super().event(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._layout_width != self.width():
            self._relayout()
        t = theme.current()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        if not self._rects:
            painter.setPen(QColor(t.muted))
            painter.drawText(self.rect().adjusted(4, 4, -4, -4), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                             self.placeholder)
            return
        colours = chip_colours(t)
        trained, masked = trained_colours(t)
        tm = QFontMetrics(self.text_font)
        text_h = tm.height() + self.PAD_Y
        index = 0
        for rect, piece in self._rects:
            if piece.gap:
                painter.setFont(self.text_font)
                painter.setPen(QColor(t.muted))
                painter.drawText(rect.adjusted(1, self.PAD_Y, 0, 0), Qt.AlignLeft | Qt.AlignTop, piece.label)
                continue
            if piece.trained is None:
                background = colours[index % len(colours)]
            else:
                shades = trained if piece.trained else masked
                background = shades[index % len(shades)]
            index += 1
            painter.setPen(Qt.NoPen)
            painter.setBrush(background)
            if piece.unknown:
                painter.setPen(QPen(QColor(t.error), 1.5))
            elif piece.special:
                painter.setPen(QPen(QColor(t.accent), 1.2, Qt.DashLine))
            painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)
            painter.setFont(self.text_font)
            painter.setPen(QColor(t.text) if piece.text and piece.trained is not False else QColor(t.muted))
            text_rect = QRectF(rect.x() + self.PAD_X, rect.y() + self.PAD_Y, rect.width() - 2 * self.PAD_X, text_h)
            painter.drawText(text_rect, Qt.AlignLeft | Qt.AlignTop,
                             tm.elidedText(piece.label, Qt.ElideRight, int(text_rect.width()) + 1))
            if self.show_ids:
                painter.setFont(self.id_font)
                painter.setPen(QColor(t.muted))
                painter.drawText(QRectF(rect.x(), rect.y() + text_h, rect.width(), rect.height() - text_h),
                                 Qt.AlignHCenter | Qt.AlignTop, str(piece.id))


def _split_keep_newlines(label: str) -> list[str]:
    parts, current = [], ""
    for ch in label:
        current += ch
        if ch == "⏎":
            parts.append(current)
            current = ""
    if current:
        parts.append(current)
    return parts


def describe(piece: TokenPiece) -> str:
    """The tooltip of a chip."""
    if piece.gap:
        return f"Not part of any token (characters {piece.start}–{piece.end})"
    kind = "special token" if piece.special else "unknown token" if piece.unknown else "token"
    text = f"“{visible(piece.text)}”  " if piece.text else ""
    described = f"{kind} id {piece.id}\n{text}vocabulary entry {piece.token!r}\ncharacters {piece.start}–{piece.end}"
    if piece.trained is not None:
        described += "\ntrained: the loss learns to predict it" if piece.trained else \
            "\nmasked: context only, no loss on it"
    return described


def tokenizer_name(path: str | Path | None) -> str:
    if not path:
        return ""
    p = Path(path)
    if p.name in ("tokenizer", "tokenizer.json"):
        run = p.parent.parent if p.parent.name == "output" else p.parent
        return run.name or str(p)
    return p.name


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
