"""One cell of the playground grid (a model's answer to a variant's prompt) and the view of a cell's
prompt: its template, the rendered text, and what the model reads after its chat template."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSplitter, QToolButton, QVBoxLayout, QWidget,
)

from studio.models.playground_session import CellOutput
from studio.widgets.elided_label import ElidedLabel

STATUS_TEXT = {"idle": "not run yet", "waiting": "waiting for the model…", "streaming": "streaming…",
               "done": "done", "cancelled": "stopped", "error": "error"}
FINISH_TEXT = {"stop": "done", "length": "cut at the token limit", "cancelled": "stopped"}


def status_text(output: CellOutput | None) -> str:
    if output is None:
        return STATUS_TEXT["idle"]
    if output.status == "done" and output.finish:
        return FINISH_TEXT.get(output.finish, "done")
    return STATUS_TEXT.get(output.status, output.status)


def _unbroken(figures: str) -> str:
    """Lines break between the figures, never inside one ("89.5 tok/s" stays whole)."""
    return " · ".join(part.replace(" ", "\u00a0").replace("/", "/\u2060") for part in figures.split(" · "))


class AnswerText(QPlainTextEdit):
    """A read-only answer that asks for little height: the grid shares what there is between its rows."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMinimumHeight(48)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(240, 72)


class AnswerCell(QFrame):
    """A model's answer as it streams, with its figures, a Stop button and a pick box (two picked
    cells are compared, or sent to labeling). Public: `key`, `pick`, `status`, `text_view`,
    `error_label`, `figures`, `stop_button`, `prompt_button`."""

    picked = Signal(str, bool)
    stop_requested = Signal(str)
    prompt_requested = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.setObjectName("answerCard")
        self.setMinimumHeight(112)
        self.pick = QCheckBox()
        self.pick.setToolTip("Pick two answers to see their differences or send them to labeling")
        self.pick.toggled.connect(lambda on: self.picked.emit(self.key, on))
        self.status = QLabel(STATUS_TEXT["idle"])
        self.status.setObjectName("help")
        self.status.setWordWrap(True)  # status, seed and the check against the expected answer: two lines in a narrow cell
        self.prompt_button = QToolButton()
        self.prompt_button.setText("Prompt")
        self.prompt_button.setToolTip("The rendered prompt, and what this model reads after its chat template")
        self.prompt_button.clicked.connect(lambda: self.prompt_requested.emit(self.key))
        self.stop_button = QToolButton()
        self.stop_button.setText("Stop")
        self.stop_button.setToolTip("Stop this answer (Esc stops them all)")
        self.stop_button.clicked.connect(lambda: self.stop_requested.emit(self.key))
        self.stop_button.hide()
        head = QHBoxLayout()
        head.setContentsMargins(8, 6, 6, 0)
        head.setSpacing(6)
        head.addWidget(self.pick)
        head.addWidget(self.status, 1)
        head.addWidget(self.stop_button)
        head.addWidget(self.prompt_button)
        self.text_view = AnswerText()
        self.text_view.setPlaceholderText("Run (Ctrl+Enter) to ask this model.")
        self.error_label = QLabel("")
        self.error_label.setObjectName("fieldError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label.hide()
        self.figures = QLabel("")
        self.figures.setObjectName("help")
        self.figures.setToolTip("Tokens generated · tokens of the prompt · time to the first token (TTFT) · "
                                "decoding speed · total time")
        self.figures.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 6)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.error_label)
        layout.addWidget(self.text_view, 1)
        body = QHBoxLayout()
        body.setContentsMargins(8, 0, 8, 0)
        body.addWidget(self.figures)
        layout.addLayout(body)

    def show_output(self, output: CellOutput | None, check: tuple[bool, str] | None = None) -> None:
        """Draw the whole cell from its output (after a status change; tokens use `append`); `check`:
        whether the answer is the row's expected one, and that one (`Session.check`)."""
        output = output or CellOutput()
        if self.text_view.toPlainText() != output.text:
            self.text_view.setPlainText(output.text)
        seed = f" · seed {output.seed}" if output.seed is not None and output.status != "idle" else ""
        verdict = "" if check is None else "  ✓ expected" if check[0] else "  ✗ not the expected"
        self.status.setText(status_text(output) + seed + verdict)
        self.status.setToolTip("" if check is None else f"Expected: {check[1]} (exact match of the final answer, "
                                                        "as the Batch tab scores it)")
        self.stop_button.setVisible(output.running)
        failed = output.status == "error"
        self.error_label.setText(f"{output.error}\n{output.hint}".strip() if failed else "")
        self.error_label.setVisible(failed)
        self.text_view.setVisible(not failed or bool(output.text))
        self.figures.setText("" if output.status == "idle" else _unbroken(output.figures()))

    def append(self, text: str, output: CellOutput) -> None:
        """A streamed token: its text at the end, the running count below."""
        cursor = self.text_view.textCursor()
        cursor.movePosition(QTextCursor.End)
        cursor.insertText(text)
        self.text_view.ensureCursorVisible()
        self.status.setText(STATUS_TEXT["streaming"])
        self.stop_button.show()
        self.figures.setText(_unbroken(output.figures()))

    def set_picked(self, on: bool) -> None:
        self.pick.blockSignals(True)
        self.pick.setChecked(on)
        self.pick.blockSignals(False)


class PromptView(QWidget):
    """A cell's prompt: the variant's template, the rendered prompt, and what the model reads.
    Public: `title`, `template_view`, `rendered_view`, `reads_view`, `note`, `back_button`."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.back_button = QPushButton("← Grid")
        self.title = ElidedLabel("")
        self.title.setStyleSheet("font-weight: 600;")
        head = QHBoxLayout()
        head.addWidget(self.back_button)
        head.addWidget(self.title, 1)
        self.template_view, self.rendered_view, self.reads_view = QPlainTextEdit(), QPlainTextEdit(), QPlainTextEdit()
        captions = ("Template (Jinja)", "Rendered prompt", "What the model reads")
        panes = []
        for caption, view in zip(captions, (self.template_view, self.rendered_view, self.reads_view)):
            view.setReadOnly(True)
            view.setFont(mono)
            view.setLineWrapMode(QPlainTextEdit.WidgetWidth)
            pane = QWidget()
            pane_layout = QVBoxLayout(pane)
            pane_layout.setContentsMargins(0, 0, 0, 0)
            pane_layout.setSpacing(3)
            label = QLabel(caption)
            label.setStyleSheet("font-weight: 600;")
            pane_layout.addWidget(label)
            pane_layout.addWidget(view, 1)
            panes.append(pane)
        left = QSplitter(Qt.Vertical)
        left.addWidget(panes[0])
        left.addWidget(panes[1])
        left.setSizes([100, 200])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(panes[2])
        split.setSizes([1000, 1000])
        self.note = QLabel("")
        self.note.setObjectName("help")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(split, 1)
        layout.addWidget(self.note)

    def show_prompt(self, title: str, template: str, rendered: str, reads: str, note: str) -> None:
        self.title.setText(title)
        self.template_view.setPlainText(template)
        self.rendered_view.setPlainText(rendered)
        self.reads_view.setPlainText(reads)
        self.note.setText(note)
