"""Training records as the model sees them: the chat-template text in token chips, the tokens the
loss learns from in green and the masked ones (system prompt, user turns, template markers) grey,
one record at a time with Previous/Next. The records come rendered by the engine's preview."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from studio import theme
from studio.models.finetune_results import RenderedRecord
from studio.widgets.token_chips import TokenPiece, trained_colours
from studio.widgets.token_view import TokenView


def record_pieces(record: RenderedRecord) -> list[TokenPiece]:
    """The record's tokens as chips, with the character span each covers in the rendered text."""
    pieces, cursor = [], 0
    for token in record.tokens:
        end = cursor + len(token.text)
        pieces.append(TokenPiece(token.text, token.text, token.id, cursor, end, trained=token.trained))
        cursor = end
    return pieces


class RenderedRecordView(TokenView):
    """Rendered records, one at a time, with their trained tokens marked.

    Public for tests: `set_records(records)`, `show_record(index)`, `next_record()`,
    `previous_record()`, `set_message(text)` (no records: say why), `records`, `index`, `pieces`,
    `token_count`, `position_label`, `stats_label`, `previous_button`, `next_button`, `legend`.
    """

    record_changed = Signal(int)

    records: tuple[RenderedRecord, ...] = ()
    index = 0

    def __init__(self, parent: QWidget | None = None):
        super().__init__(text="", editable=False, show_title=False, parent=parent)
        self.chips.placeholder = "No records to show yet."
        self.previous_button = QPushButton("‹ Previous")
        self.previous_button.setToolTip("The previous record (Alt+Left)")
        self.previous_button.clicked.connect(self.previous_record)
        self.next_button = QPushButton("Next ›")
        self.next_button.setToolTip("The next record (Alt+Right)")
        self.next_button.clicked.connect(self.next_record)
        self.position_label = QLabel("")
        self.position_label.setMinimumWidth(100)
        self.position_label.setAlignment(Qt.AlignCenter)
        # The navigation goes on the token view's header row, left of the counts and the Ids box.
        header = self.layout().itemAt(0).layout()
        for i, widget in enumerate((self.previous_button, self.position_label, self.next_button)):
            header.insertWidget(i, widget)
        self.ids_box.setChecked(False)  # the text matters here more than the ids (hover shows them)
        self.legend = QLabel("")
        self.legend.setObjectName("help")
        self.legend.setWordWrap(True)
        self.layout().addWidget(self.legend)
        self._paint_legend()
        self._update_navigation()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() in (event.Type.PaletteChange, event.Type.StyleChange) and hasattr(self, "legend"):
            self._paint_legend()
        super().changeEvent(event)

    def _paint_legend(self) -> None:
        trained, masked = trained_colours(theme.current())
        swatch = "<span style='background:{}; color:{};'>&nbsp;&nbsp;&nbsp;&nbsp;</span>"
        self.legend.setText(f"{swatch.format(trained[1].name(), trained[1].name())} trained (in the loss)"
                            f"&nbsp;&nbsp;&nbsp;{swatch.format(masked[1].name(), masked[1].name())} masked "
                            "(context only)&nbsp;&nbsp;&nbsp;Hover a token for its id.")

    # ------------------------------------------------------------------------------ records
    def set_records(self, records: list[RenderedRecord] | tuple[RenderedRecord, ...], keep_index: bool = True) -> None:
        self.records = tuple(records)
        index = self.index if keep_index else 0
        self.index = min(max(index, 0), max(len(self.records) - 1, 0))
        self.chips.placeholder = "The data has no records to show." if not self.records else ""
        self.encode_now()
        self._update_navigation()

    def set_message(self, text: str) -> None:
        """No records: show `text` where they would be."""
        self.records, self.index = (), 0
        self.chips.placeholder = text
        self.encode_now()
        self._update_navigation()

    def current_record(self) -> RenderedRecord | None:
        return self.records[self.index] if self.records else None

    def show_record(self, index: int) -> None:
        if not self.records:
            return
        index = min(max(index, 0), len(self.records) - 1)
        if index != self.index:
            self.index = index
            self.encode_now()
            self._update_navigation()
            self.record_changed.emit(index)

    def next_record(self) -> None:
        self.show_record(self.index + 1)

    def previous_record(self) -> None:
        self.show_record(self.index - 1)

    def _update_navigation(self) -> None:
        if not hasattr(self, "position_label"):
            return  # TokenView.__init__ encodes before the navigation row exists
        count = len(self.records)
        self.position_label.setText(f"Record {self.index + 1} of {count}" if count else "No records")
        self.previous_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(self.index < count - 1)

    def encode_now(self) -> None:
        """Show the current record (the engine tokenized it; nothing is encoded here)."""
        self._timer.stop()
        record = self.current_record()
        if record is None:
            self.pieces, self.token_count, self.chars_per_token = [], 0, None
            self.stats_label.setText("—")
        else:
            self.pieces = record_pieces(record)
            self.token_count = len(record.tokens)
            trained = record.trained_count
            stats = f"{self.token_count:,} tokens  ·  {trained:,} trained"
            if record.truncated:
                stats += f"  ·  cut from {record.length:,}"
            self.stats_label.setText(stats)
        self.chips.set_pieces(self.pieces)
        self.encoded.emit()
