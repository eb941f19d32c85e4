"""The Chat tab: a conversation with one model of the grid (with that column's sampling), the whole
history sent with each turn, the answer streaming in. Tools typed in the Tools box (a JSON list of
definitions, checked as typed) are offered with every turn; an answer's calls are shown as calls,
and the reply to them is sent back as a tool turn."""

from __future__ import annotations

import html
import json

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QTextBrowser, QVBoxLayout, QWidget,
)

from studio import theme
from studio.pages.playground.runner import CellRunner
from studio.models.playground_session import CellOutput, Session, answer_turn, read_tools, serve_messages
from studio.widgets.shortcuts import shortcut

CHAT_KEY = "chat"
REDRAW_MS = 40  # tokens are drawn at most this often: the whole transcript is laid out again each time


class ChatTab(QWidget):
    """Public: `model_box`, `system`, `tools`, `tools_problem`, `transcript`, `input`, `send_button`,
    `result_button`, `stop_button`, `new_button`, `figures`, `output` (the answer being written), and
    `send(text)`, `send_result(text)`, `stop()`, `new_chat()`."""

    session_edited = Signal()
    message = Signal(str)

    def __init__(self, runner: CellRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.session = Session()
        self.output: CellOutput | None = None
        self._tools_offered = False  # whether the answer being written was offered tools
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
        self.tools = QPlainTextEdit()
        self.tools.setPlaceholderText('Tools (optional): a JSON list of definitions offered with every turn, e.g. '
                                      '[{"name": "add", "parameters": {"type": "object", "properties": '
                                      '{"a": {"type": "number"}}}}]')
        self.tools.setFixedHeight(56)
        self.tools.textChanged.connect(self._tools_edited)
        self.tools_problem = QLabel("")
        self.tools_problem.setObjectName("fieldError")
        self.tools_problem.setWordWrap(True)
        self.tools_problem.hide()
        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Your message — Ctrl+Enter sends")
        self.input.setFixedHeight(84)
        self.send_button = QPushButton("Send   Ctrl+Enter")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(lambda: self.send())
        self.result_button = QPushButton("Send as tool result")
        self.result_button.setToolTip("Send the box's text as the result of the tool the model called; the model "
                                      "answers it")
        self.result_button.clicked.connect(lambda: self.send_result())
        self.stop_button = QPushButton("Stop   Esc")
        self.stop_button.clicked.connect(self.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.result_button)
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
        layout.addWidget(self.tools)
        layout.addWidget(self.tools_problem)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(entry)
        layout.addWidget(self.figures)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut(keys, self, lambda: self.send(), "Send the message (Chat)")
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
        self.tools.setPlainText(session.chat.tools)
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

    def _tools_edited(self) -> None:
        text = self.tools.toPlainText()
        if text == self.session.chat.tools:
            return
        self.session.chat.tools = text
        _, problem = read_tools(text)
        self.tools_problem.setText(problem)
        self.tools_problem.setVisible(bool(problem))
        self._update_buttons()
        self.session_edited.emit()

    # ------------------------------------------------------------------------------ turns
    def send(self, text: str | None = None, role: str = "user") -> None:
        """Send `text` (the input box's when None) as the user's turn, or as a tool's result."""
        text = (self.input.toPlainText() if text is None else text).strip()
        if self.model is None:
            self.refresh_models()  # models added on the Compare tab since
        model = self.model
        if not text or model is None or self.runner.running(CHAT_KEY):
            if model is None:
                self.message.emit("Add a model on the Compare tab first; the chat uses its sampling settings.")
            return
        tools, problem = read_tools(self.session.chat.tools)
        if problem:
            self.message.emit(f"{problem} Fix the Tools box, or empty it, to send.")
            return
        self.input.clear()
        chat = self.session.chat
        chat.turns.append({"role": role, "content": text})
        self.output = CellOutput(prompt=text, system=chat.system)
        self._tools_offered = bool(tools)
        self.runner.start(CHAT_KEY, self.output, model, serve_messages(chat.system, chat.turns), tools)
        self.draw()
        self.session_edited.emit()

    def send_result(self, text: str | None = None) -> None:
        """Send `text` (the input box's when None) as the result of the calls the last answer made."""
        if self._awaiting_result():
            self.send(text, role="tool")

    def _awaiting_result(self) -> bool:
        turns = self.session.chat.turns
        return bool(turns) and bool(turns[-1].get("tool_calls"))

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
            self.session.chat.turns.append(answer_turn(output.text, self.model.label if self.model else "",
                                                       self._tools_offered))
            seed = f" · seed {output.seed}" if output.seed is not None else ""
            self.figures.setText(output.figures() + seed + (" · stopped" if output.status == "cancelled" else ""))
            self.output = None
            self.session_edited.emit()
        elif output.status == "error":
            # The question goes back into the box, to ask again once the problem is fixed.
            turns = self.session.chat.turns
            if turns and turns[-1]["role"] in ("user", "tool"):
                self.input.setPlainText(turns.pop()["content"])
            self.figures.setText("")
            self.message.emit(f"{output.error} {output.hint}".strip())
            self.output = None
        self.draw()

    def draw(self) -> None:
        t = theme.current()
        blocks = []
        for turn in self.session.chat.turns:
            blocks.append(self._block(turn["role"], turn.get("model") or "", turn["content"], t,
                                      calls=turn.get("tool_calls") or ()))
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
    def _block(role: str, model: str, text: str, t, live: bool = False, calls=()) -> str:
        who = {"user": "You", "tool": "Tool result"}.get(role) or model or "Model"
        colour = {"user": t.accent, "tool": t.series[1]}.get(role, t.series[2])
        body = html.escape(text).replace("\n", "<br>")
        if calls:  # the calls, not the markup they were written in
            body = "<br>".join(
                f"<span style='color:{t.muted}'>calls</span> <b>{html.escape(c['function']['name'])}</b>"
                f"<code>({html.escape(json.dumps(c['function']['arguments'], ensure_ascii=False))})</code>"
                for c in calls)
        tail = f" <span style='color:{t.muted}'>▍</span>" if live else ""
        return (f"<p style='margin:10px 4px 2px 4px'><b style='color:{colour}'>{html.escape(who)}</b></p>"
                f"<p style='margin:0 4px 8px 14px; white-space:pre-wrap'>{body}{tail}</p>")

    def _update_buttons(self) -> None:
        running = self.runner.running(CHAT_KEY)
        self.send_button.setEnabled(self.model is not None and not running)
        self.result_button.setEnabled(self.model is not None and not running and self._awaiting_result())
        self.stop_button.setEnabled(running)
