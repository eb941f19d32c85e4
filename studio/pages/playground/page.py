"""The Playground page: compare prompt variants × models side by side as the answers stream, chat with
one model, evaluate the grid on a whole file, save sessions, and send pairs of answers to labeling.

The page composes its tabs (Compare, Chat, Batch evaluation) around one `Session` (Qt-free, in
studio/models/playground_session.py) and one `CellRunner`, which drives `studio-engine serve` through the
`ServeClient` (studio/client/serve_client.py); the server process starts with the first answer
asked, not with the page. Shortcuts: Ctrl+Enter runs the grid (sends in Chat), Esc stops every
answer, Ctrl+S saves the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from engine.labeling.store import LabelStore, LabelStoreError
from studio.pages.playground.batch import BatchTab
from studio.pages.playground.chat import ChatTab
from studio.pages.playground.compare import CompareTab
from studio.pages.playground.runner import CellRunner
from studio.pages.playground.sessions import SendToLabelingDialog, SessionBar, pair_item, send_pair
from studio.models.playground_session import Session
from studio.widgets.shortcuts import shortcut

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

SESSION_SETTING = "playground.session"


class PlaygroundPage(QWidget):
    """Public: `session`, `runner`, `compare`, `chat`, `batch`, `tabs`, `sessions` (the bar), `message`,
    `serve` (the client, made on first use), and `new_session`, `open_session`, `save_session`,
    `delete_session`, `send_to_labeling`, `run_all`, `stop_all`, `say`, `shutdown`."""

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 serve: Any = None, engine: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker = store, tracker
        self.workspace = Path(workspace or ".")
        self._serve, self._engine = serve, engine
        self.session = Session()
        self.runner = CellRunner(lambda: self.serve, self)
        self._build()
        if serve is not None and hasattr(serve, "state_changed"):
            self._watch(serve)
        last = self.store.get_setting(SESSION_SETTING, "") if self.store is not None else ""
        if last and self.store.playground_session(last) is not None:
            self.open_session(last)
        else:
            self.new_session()

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        title = QLabel("Playground")
        title.setObjectName("pageTitle")
        subtitle = QLabel("Ask several models with several prompts side by side; the answers stream as they are "
                          "written.")
        subtitle.setObjectName("subtitle")
        subtitle.setWordWrap(True)
        self.sessions = SessionBar()
        self.sessions.open_requested.connect(self.open_session)
        self.sessions.new_requested.connect(self.new_session)
        self.sessions.save_requested.connect(self.save_session)
        self.sessions.delete_requested.connect(self.delete_session)
        top = QHBoxLayout()
        top.addWidget(title, 1)
        top.addWidget(self.sessions, 0, Qt.AlignBottom)
        self.message = QLabel("")
        self.message.setObjectName("help")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.hide()

        self.compare = CompareTab(self.runner, self.workspace)
        self.chat = ChatTab(self.runner)
        self.batch = BatchTab(self.store, self.tracker, self.workspace)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.chat, "Chat")
        self.tabs.addTab(self.batch, "Batch evaluation")
        self.tabs.currentChanged.connect(self._tab_changed)
        for tab in (self.compare, self.chat, self.batch):
            tab.message.connect(self.say)
        self.compare.label_button.clicked.connect(lambda: self.send_to_labeling())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 14)
        layout.setSpacing(8)
        layout.addLayout(top)
        layout.addWidget(subtitle)
        layout.addWidget(self.message)
        layout.addWidget(self.tabs, 1)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut(keys, self.compare, self.compare.run_all, "Answer with every model (Compare)")
        shortcut("Esc", self, self.stop_all, "Stop every answer being written")
        shortcut("Ctrl+S", self, lambda: self.sessions.ask_save(self.session.name or None), "Save the session")

    # ------------------------------------------------------------------------------ server
    @property
    def serve(self) -> Any:
        """The serve client, made (not started) on first use with the tracker's engine."""
        if self._serve is None:
            from studio.client.serve_client import ServeClient
            from studio.pages.label.page import _local_engine

            engine = self._engine or _local_engine(self.tracker, self.workspace, self)
            self._serve = ServeClient(engine, parent=self)
            self._watch(self._serve)
        return self._serve

    def _watch(self, serve: Any) -> None:
        serve.state_changed.connect(self._server_state)
        serve.server_error.connect(lambda message: self.say(message.splitlines()[0] + " It starts again with the "
                                                                                       "next request."))

    def _server_state(self, state: str) -> None:
        info = getattr(self._serve, "info", {}) or {}
        text = {"starting": "Starting the inference server…",
                "ready": f"Server ready on {info.get('device', '?')} ({info.get('precision', '?')})",
                "stopped": "Server stopped"}.get(state, state)
        self.compare.server_label.setText(text)

    # ------------------------------------------------------------------------------ sessions
    def say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _show(self, session: Session) -> None:
        self.runner.stop_all()
        self.session = session
        self.compare.set_session(session)
        self.chat.set_session(session)
        self.batch.set_session(session)
        self._refresh_bar()

    def _refresh_bar(self) -> None:
        names = self.store.playground_sessions() if self.store is not None else []
        self.sessions.set_sessions(names, self.session.name)

    def new_session(self) -> None:
        self._show(Session())
        self.say("")

    def open_session(self, name: str) -> bool:
        record = self.store.playground_session(name) if self.store is not None else None
        if record is None:
            self.say(f"No saved session named “{name}”.")
            return False
        self._show(Session.from_parts(record.name, record.variants, record.models, record.rows, record.outputs,
                                      record.extra))
        self.store.set_setting(SESSION_SETTING, name)
        self.say("")
        return True

    def save_session(self, name: str | None = None) -> bool:
        if self.store is None:
            return False
        name = (name or self.session.name).strip()
        if not name:
            self.sessions.ask_save(None)
            return False
        self.session.name = name
        self.store.save_playground_session(name, **self.session.to_parts())
        self.store.set_setting(SESSION_SETTING, name)
        self._refresh_bar()
        self.say(f"Saved the session “{name}”.")
        return True

    def delete_session(self, name: str) -> None:
        if self.store is not None:
            self.store.delete_playground_session(name)
            self.store.set_setting(SESSION_SETTING, "")
        self.session.name = ""
        self._refresh_bar()
        self.say(f"Deleted the session “{name}”; what is on screen stays until you close it.")

    # ------------------------------------------------------------------------------ actions
    def run_all(self) -> None:
        self.compare.run_all()

    def stop_all(self) -> None:
        self.runner.stop_all()

    def send_to_labeling(self, queue: str | None = None, create: bool = False) -> bool:
        """The two picked answers as a pair item of a labeling queue (asks which one when `queue` is None)."""
        try:
            item = pair_item(self.session, self.compare.grid.picks)
        except ValueError as e:
            self.say(str(e))
            return False
        labels = LabelStore(self.workspace / "store.db")
        if queue is None:
            dialog = SendToLabelingDialog(labels, self)
            if dialog.exec() != QDialog.Accepted:
                return False
            queue, create = dialog.choice()
        try:
            self.say(send_pair(labels, queue, item, create))
        except LabelStoreError as e:
            self.say(str(e))
            return False
        return True

    def _tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if widget is self.chat:
            self.chat.refresh_models()
            self.chat.input.setFocus()
        elif widget is self.batch:
            self.batch.update_button()
            self.batch.refresh_runs()

    def shutdown(self) -> None:
        """The window closes: stop every answer and the server."""
        self.runner.stop_all()
        if self._serve is not None and hasattr(self._serve, "shutdown"):
            self._serve.shutdown(wait_ms=2000)
