"""Tokenized text as coloured chips: each token's characters (whitespace made visible) above its id,
neighbouring tokens in alternating soft colours, special and unknown tokens outlined, and in a
rendered training record the trained tokens green and the masked ones grey; a tooltip tells each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from studio import theme

VISIBLE_WHITESPACE = {" ": "·", "\n": "⏎", "\t": "→", "\r": "␍"}


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

