"""The Chat tab: a conversation with one model of the grid (with that column's sampling), the whole
history sent with each turn, the answer streaming in."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QTextBrowser, QVBoxLayout, QWidget,
)

from studio import theme
from studio.pages.playground_runner import CellRunner
from studio.playground_session import CellOutput, Session

CHAT_KEY = "chat"
REDRAW_MS = 40  # tokens are drawn at most this often: the whole transcript is laid out again each time


class ChatTab(QWidget):
    """Public: `model_box`, `system`, `transcript`, `input`, `send_button`, `stop_button`, `new_button`,
    `figures`, `output` (the answer being written), and `send(text)`, `stop()`, `new_chat()`."""

    session_edited = Signal()
    message = Signal(str)

    def __init__(self, runner: CellRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.session = Session()
        self.output: CellOutput | None = None
        self.model_box = QComboBox()
        self.model_box.setMinimumContentsLength(18)
        self.model_box.currentIndexChanged.connect(self._model_chosen)
        self.sampling = QLabel("")
        self.sampling.setObjectName("help")
        self.new_button = QPushButton("New chat")
        self.new_button.clicked.connect(self.new_chat)
        head = QHBoxLayout()
        head.addWidget(QLabel("Model"))
        head.addWidget(self.model_box)
        head.addWidget(self.sampling, 1)
        head.addWidget(self.new_button)
        self.system = QLineEdit()
        self.system.setPlaceholderText("System prompt (optional): how the model should behave in this chat")
        self.system.textEdited.connect(self._system_edited)
        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Your message — Ctrl+Enter sends")
        self.input.setFixedHeight(64)
        self.send_button = QPushButton("Send   Ctrl+Enter")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(lambda: self.send())
        self.stop_button = QPushButton("Stop   Esc")
        self.stop_button.clicked.connect(self.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        entry = QHBoxLayout()
        entry.addWidget(self.input, 1)
        entry.addLayout(buttons)
        self.figures = QLabel("")
        self.figures.setObjectName("help")
        self.figures.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(head)
        layout.addWidget(self.system)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(entry)
        layout.addWidget(self.figures)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda: self.send())
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.draw)
        runner.changed.connect(lambda key: self._changed() if key == CHAT_KEY else None)
        runner.streamed.connect(lambda key, _text: self._redraw.start() if key == CHAT_KEY else None)
        self._update_buttons()

    # ------------------------------------------------------------------------------ session
    def set_session(self, session: Session) -> None:
        if self.runner.running(CHAT_KEY):
            self.runner.stop(CHAT_KEY)
        self.session, self.output = session, None
        self.system.setText(session.chat.system)
        self.refresh_models()
        self.draw()

    def refresh_models(self) -> None:
        """The grid's models; the chat keeps its model while it is there."""
        chosen = self.session.chat.column
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for model in self.session.models:
            self.model_box.addItem(model.label, model.id)
        index = self.model_box.findData(chosen)
        self.model_box.setCurrentIndex(index if index >= 0 else 0)
        self.model_box.blockSignals(False)
        self._model_chosen()

    @property
    def model(self):
        return self.session.model(self.model_box.currentData() or "")

    def _model_chosen(self, *_) -> None:
        model = self.model
        self.session.chat.column = model.id if model else ""
        self.sampling.setText(model.sampling.summary() if model else "Add a model on the Compare tab to chat with it.")
        self.sampling.setToolTip("The sampling of this model's column on the Compare tab" if model else "")
        self._update_buttons()

    def _system_edited(self, text: str) -> None:
        self.session.chat.system = text
        self.session_edited.emit()

    # ------------------------------------------------------------------------------ turns
    def send(self, text: str | None = None) -> None:
        text = (self.input.toPlainText() if text is None else text).strip()
        if self.model is None:
            self.refresh_models()  # models added on the Compare tab since
        model = self.model
        if not text or model is None or self.runner.running(CHAT_KEY):
            if model is None:
                self.message.emit("Add a model on the Compare tab first; the chat uses its sampling settings.")
            return
        self.input.clear()
        chat = self.session.chat
        chat.turns.append({"role": "user", "content": text})
        system = [{"role": "system", "content": chat.system}] if chat.system.strip() else []
        self.output = CellOutput(prompt=text, system=chat.system)
        history = [{"role": t["role"], "content": t["content"]} for t in chat.turns]  # serve takes nothing else
        self.runner.start(CHAT_KEY, self.output, model, system + history)
        self.draw()
        self.session_edited.emit()

    def stop(self) -> None:
        self.runner.stop(CHAT_KEY)

    def new_chat(self) -> None:
        self.stop()
        self.session.chat.turns = []
        self.output = None
        self.figures.setText("")
        self.draw()
        self.session_edited.emit()

    def _changed(self) -> None:
        output = self.output
        if output is None:
            self._update_buttons()
            return
        if output.status in ("done", "cancelled"):
            # The answer joins the history (a stopped one too: the next turn continues from it).
            self.session.chat.turns.append({"role": "assistant", "content": output.text,
                                            "model": self.model.label if self.model else ""})
            seed = f" · seed {output.seed}" if output.seed is not None else ""
            self.figures.setText(output.figures() + seed + (" · stopped" if output.status == "cancelled" else ""))
            self.output = None
            self.session_edited.emit()
        elif output.status == "error":
            # The question goes back into the box, to ask again once the problem is fixed.
            turns = self.session.chat.turns
            if turns and turns[-1]["role"] == "user":
                self.input.setPlainText(turns.pop()["content"])
            self.figures.setText("")
            self.message.emit(f"{output.error} {output.hint}".strip())
            self.output = None
        self.draw()

    def draw(self) -> None:
        t = theme.current()
        blocks = []
        for turn in self.session.chat.turns:
            blocks.append(self._block(turn["role"], turn.get("model") or "", turn["content"], t))
        if self.output is not None:
            blocks.append(self._block("assistant", self.model.label if self.model else "",
                                      self.output.text or "…", t, live=True))
        if not blocks:
            blocks.append(f"<p style='color:{t.muted}'>Ask something below. Each turn sends the whole conversation "
                          "(and the system prompt) to the model.</p>")
        self.transcript.setHtml("".join(blocks))
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._update_buttons()

    @staticmethod
    def _block(role: str, model: str, text: str, t, live: bool = False) -> str:
        who = "You" if role == "user" else (model or "Model")
        colour = t.accent if role == "user" else t.series[2]
        body = html.escape(text).replace("\n", "<br>")
        tail = f" <span style='color:{t.muted}'>▍</span>" if live else ""
        return (f"<p style='margin:10px 4px 2px 4px'><b style='color:{colour}'>{html.escape(who)}</b></p>"
                f"<p style='margin:0 4px 8px 14px; white-space:pre-wrap'>{body}{tail}</p>")

    def _update_buttons(self) -> None:
        running = self.runner.running(CHAT_KEY)
        self.send_button.setEnabled(self.model is not None and not running)
        self.stop_button.setEnabled(running)
