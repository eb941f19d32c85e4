"""The jobs dock's part for one engine's queue: the runs waiting to start, in order, with Move up,
Move down and Cancel, and Pause/Resume for the queue.

The queue's state lives on the engine's side (`studio-engine queue …`); this widget only shows what
`queue list --json` answers and calls the other verbs, then asks again. It asks when the queue's files
change (`LocalEngine.queue_stamp`, a look at two files a second), and at least every
`REFRESH_S` seconds while the queue has runs, so an idle studio starts no engine process. A remote
engine (`RemoteEngine`, over SSH) has no files here to look at: its queue is asked for every
`refresh_s` (REMOTE_REFRESH_S) seconds.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.client.engine import LatestCommand
from studio.widgets.elided_label import ElidedLabel

CHECK_MS = 1000
REFRESH_S = 30.0
# A remote engine's queue files are on its host: its queue is asked for every this many seconds (one short
# ssh command), and at once after each action.
REMOTE_REFRESH_S = 20.0


class QueuedRow(QFrame):
    """One waiting run: its place, name and GPUs, Move up / Move down / Cancel."""

    move_requested = Signal(str, int)  # run id, new position (1 = next to start)
    cancel_requested = Signal(str)

    def __init__(self, run_id: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id = run_id
        self.position = 0
        self.setObjectName("jobRow")
        self.name_label = ElidedLabel(run_id)
        self.name_label.setMinimumWidth(0)
        self.place_label = QLabel()
        self.place_label.setObjectName("help")
        self.up_button = QPushButton("▲")
        self.up_button.setToolTip("Move up: start earlier")
        self.down_button = QPushButton("▼")
        self.down_button.setToolTip("Move down: start later")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Take the run out of the queue (it ends as cancelled)")
        for button in (self.up_button, self.down_button):
            button.setFixedWidth(28)
        self.up_button.clicked.connect(lambda: self.move_requested.emit(self.run_id, self.position - 1))
        self.down_button.clicked.connect(lambda: self.move_requested.emit(self.run_id, self.position + 1))
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self.run_id))
        buttons = QHBoxLayout()
        buttons.addWidget(self.place_label, 1)
        for button in (self.up_button, self.down_button, self.cancel_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.name_label)
        layout.addLayout(buttons)

    def show_place(self, position: int, waiting: int, gpus: int) -> None:
        self.position = position
        self.place_label.setText(f"#{position} waiting · {gpus} GPU{'s' if gpus != 1 else ''}" if gpus
                                 else f"#{position} waiting")
        self.up_button.setEnabled(position > 1)
        self.down_button.setEnabled(position < waiting)


class QueueSection(QWidget):
    """One engine's queue. Public for tests: `rows` (run id → QueuedRow, in queue order), `paused`,
    `pause_button`, `message` (the last failure). Signals: `changed()` when the waiting runs or the
    paused state change; `started(run_id)` for a run the queue has started."""

    changed = Signal()
    started = Signal(str)

    def __init__(self, engine: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.engine = engine
        self.rows: dict[str, QueuedRow] = {}
        self.paused = False
        self._running: set[str] = set()
        self._stamp: tuple | None = None
        self._asked = float("-inf")
        self.refresh_s = REMOTE_REFRESH_S if engine.is_remote else REFRESH_S
        self._lister = LatestCommand(self)
        self._lister.succeeded.connect(lambda answer, _key: self._show(answer))
        self._lister.failed.connect(lambda message, _key: self._fail(message))
        self.title = QLabel(f"Queue ({engine.name})")
        self.title.setStyleSheet("font-weight: 600;")
        self.pause_button = QPushButton("Pause queue")
        self.pause_button.setToolTip("Start no more waiting runs (running ones go on)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.message = QLabel()
        self.message.setObjectName("help")
        self.message.setWordWrap(True)
        self.message.hide()
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.pause_button)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(8)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.message)
        layout.addLayout(self.rows_layout)
        self.setVisible(False)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._check)
        self._timer.start(CHECK_MS)
        self._check()

    @property
    def has_content(self) -> bool:
        return bool(self.rows) or self.paused

    def stop(self) -> None:
        """Ask no more (on quit): the timer stops, and so does a look under way."""
        self._timer.stop()
        self._lister.stop()

    def refresh(self) -> None:
        """Ask the engine for its queue now."""
        self._asked = time.monotonic()
        self._lister.start(self.engine.queue("list", "--json", action="read the queue", expect_json=True), "list")

    def _check(self) -> None:
        if self.engine.is_remote:
            if time.monotonic() - self._asked > self.refresh_s and not self._lister.running:
                self.refresh()
            return
        stamp = self.engine.queue_stamp()
        if stamp is None and not self.has_content:
            return
        stale = self.has_content and time.monotonic() - self._asked > self.refresh_s
        if (stamp != self._stamp or stale) and not self._lister.running:
            self._stamp = stamp
            self.refresh()

    def _show(self, answer: Any) -> None:
        if not isinstance(answer, dict) or not isinstance(answer.get("runs"), list):
            self._fail(f"The engine's queue answer is not what the studio expects: {str(answer)[:200]}")
            return
        self.message.hide()
        waiting = sorted((r for r in answer["runs"] if r.get("state") == "waiting"), key=lambda r: r["position"])
        running = {r["run_id"] for r in answer["runs"] if r.get("state") == "running"}
        for run_id in sorted(running - self._running):
            self.started.emit(run_id)
        self._running = running
        for run_id in [r for r in self.rows if r not in {w["run_id"] for w in waiting}]:
            row = self.rows.pop(run_id)
            row.setParent(None)
            row.deleteLater()
        ordered: dict[str, QueuedRow] = {}
        for index, run in enumerate(waiting):
            row = self.rows.get(run["run_id"]) or self._new_row(run["run_id"])
            self.rows_layout.insertWidget(index, row)  # moves an existing row to its place
            row.show_place(run["position"], len(waiting), run.get("gpus", 0))
            ordered[run["run_id"]] = row
        self.rows = ordered
        self.paused = bool(answer.get("paused"))
        self.pause_button.setText("Resume queue" if self.paused else "Pause queue")
        self.pause_button.setToolTip("Start waiting runs again" if self.paused
                                     else "Start no more waiting runs (running ones go on)")
        self.title.setText(f"Queue ({self.engine.name})" + (" · paused" if self.paused else ""))
        self.setVisible(self.has_content)
        self.changed.emit()

    def _new_row(self, run_id: str) -> QueuedRow:
        row = QueuedRow(run_id)
        row.move_requested.connect(self.move)
        row.cancel_requested.connect(self.cancel)
        return row

    def _fail(self, message: str) -> None:
        if self.engine.is_remote and not self.has_content:
            # A host out of reach with nothing known to wait there: no standing error in the dock (Test
            # connection in the Engines dialog says why); the next look may find it.
            return
        self.message.setText(message)
        self.message.show()
        self.setVisible(True)

    # ------------------------------------------------------------------------------ actions
    def move(self, run_id: str, position: int) -> None:
        self._act(self.engine.queue("move", run_id, "--to", str(position), action=f"move run {run_id}"))

    def cancel(self, run_id: str) -> None:
        self._act(self.engine.queue("cancel", run_id, action=f"cancel run {run_id}"))

    def toggle_pause(self) -> None:
        verb = "resume" if self.paused else "pause"
        self._act(self.engine.queue(verb, action=f"{verb} the queue"))

    def _act(self, command: Any) -> None:
        command.failed.connect(self._fail)
        command.done.connect(self.refresh)
