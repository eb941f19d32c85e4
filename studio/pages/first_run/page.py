"""The first-run experience: find a Python that runs the engine, or say in one screen how to get one;
then offer to run the demo.

- `EngineProbe` checks the candidates of `studio.models.engine_setup` one after the other (the studio's own
  interpreter in-process, any other through `PYTHON -m engine.cli doctor --json` in a QProcess with
  a timeout) and reports the first that works, or every reason none did.
- `DemoProcess` / `DemoPanel`: `studio-engine demo` with the configured engine in a QProcess; its
  plain lines and progress events become one status line, and each run it starts is handed to the
  run tracker (`follow_new_runs`) so it appears on the Runs page and in the jobs dock at once.
- `FirstRunPage`: what was checked, the install command, a field to point at another Python,
  "Check again", and (once an engine is found) "Run the demo".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.models import engine_setup
from studio.client.engine import (
    EngineCommand,
    ProcessExit,
    _EngineProcess,
    engine_environment,
)
from studio.models.engine_setup import EngineCheck

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


class EngineProbe(QObject):
    """Checks interpreters in order; `finished(object)` with the first `EngineCheck` that is ok, or
    None. `checks` holds every answer so far (`checked(object)` signals each)."""

    checked = Signal(object)
    finished = Signal(object)

    def __init__(self, workspace: Path, timeout_s: float = engine_setup.CHECK_TIMEOUT_S,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.workspace = Path(workspace)
        self.timeout_s = timeout_s
        self.checks: list[EngineCheck] = []
        self._queue: list[tuple[str, str]] = []
        self._command: EngineCommand | None = None
        self._timed_out = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._timeout)

    @property
    def running(self) -> bool:
        return self._command is not None or bool(self._queue)

    def start(self, candidates: list[tuple[str, str]]) -> None:
        """Check these (python, source) pairs; answers come through the signals (maybe at once)."""
        self.cancel()
        self.checks = []
        self._queue = list(candidates)
        self._next()

    def cancel(self) -> None:
        self._queue = []
        command, self._command = self._command, None
        self._timer.stop()
        if command is not None:
            command.stop()

    def _next(self) -> None:
        while self._queue:
            python, source = self._queue.pop(0)
            answer = engine_setup.precheck(python, source)
            if answer is None:
                self._run_doctor(python, source)
                return
            if self._record(answer):
                return
        self.finished.emit(None)

    def _record(self, check: EngineCheck) -> bool:
        self.checks.append(check)
        self.checked.emit(check)
        if check.ok:
            self._queue = []
            self.finished.emit(check)
        return check.ok

    def _run_doctor(self, python: str, source: str) -> None:
        argv = engine_setup.doctor_command(python)
        self.workspace.mkdir(parents=True, exist_ok=True)
        command = EngineCommand(argv[0], argv[1:], self.workspace, engine_environment(),
                                action="check the engine", parent=self)
        self._command, self._timed_out = command, False
        command.done.connect(lambda: self._answered(command, python, source))
        self._timer.start(int(self.timeout_s * 1000))

    def _timeout(self) -> None:
        if self._command is not None:
            self._timed_out = True
            self._command.stop()

    def _answered(self, command: EngineCommand, python: str, source: str) -> None:
        if command is not self._command:
            return  # cancelled
        self._timer.stop()
        self._command = None
        exit = command.exit or ProcessExit(-1, True, "")
        if self._timed_out:
            check = engine_setup.read_doctor_answer(python, source, -2, "", exit.stderr)
        elif exit.code == 0 and isinstance(command.result, dict):
            check = engine_setup.read_doctor_answer(python, source, 0, json.dumps(command.result), "")
        else:
            check = engine_setup.read_doctor_answer(python, source, exit.code if exit.code else 1, "", exit.stderr)
        if not self._record(check):
            self._next()


class DemoProcess(_EngineProcess):
    """`studio-engine demo`: plain lines (the stage headers and summaries) and JSON-line events.

    Signals: `status(str)` — a short line for the user; `run_started(str)` — a stage's run id;
    `ended(object)` — the `ProcessExit`. `lines` keeps the plain text it printed.
    """

    status = Signal(str)
    run_started = Signal(str)
    ended = Signal(object)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lines: list[str] = []
        self.stage = ""
        self._buffer = b""

    def _on_stdout(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self._line(raw.decode("utf-8", errors="replace").rstrip())

    def _line(self, text: str) -> None:
        if not text.strip():
            return
        event = None
        if text.startswith("{"):
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                event = None
        if not isinstance(event, dict):
            self.lines.append(text)
            if text.startswith("Atelier demo, stage"):
                self.stage = text.split(":", 1)[0].removeprefix("Atelier demo, ").capitalize()
                self.status.emit(text)
            return
        kind = event.get("type")
        if kind == "started" and event.get("run_id"):
            self.run_started.emit(str(event["run_id"]))
        elif kind == "progress" and event.get("total"):
            what = event.get("stage") or ""
            unit = event.get("unit") or ""
            self.status.emit(f"{self.stage}: {what} {event.get('done', 0):,.0f} / {event['total']:,.0f} {unit}".strip())

    def _on_exit(self, exit: ProcessExit) -> None:
        if self._buffer:
            self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        self.ended.emit(exit)


class DemoPanel(QWidget):
    """The "Run the demo" button, a status line while it runs, and Stop. Needs the run tracker (its
    default engine runs the demo; the runs it starts are followed through it)."""

    started = Signal()
    ended = Signal(object)

    def __init__(self, tracker: Tracker | None, demo_args: tuple[str, ...] = (), compact: bool = False,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.tracker = tracker
        self.demo_args = tuple(demo_args)
        self.process: DemoProcess | None = None
        self.button = QPushButton("&Run the demo")
        self.button.setToolTip("Clean the embedded corpus, pretrain a small model on it and fine-tune it "
                               "(`studio-engine demo`); each stage appears as a run")
        self.stop_button = QPushButton("Stop demo")
        self.stop_button.setVisible(False)
        self.status = QLabel("" if compact else "Every stage of the demo becomes a run of this workspace: "
                             "it needs no network and no data of your own.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.stop_button)
        layout.addWidget(self.status, 1)
        self.button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)

    @property
    def running(self) -> bool:
        return self.process is not None

    def engine(self) -> Any:
        return self.tracker.engines[self.tracker.default_engine]

    def command_line(self) -> list[str]:
        return self.engine().command_line("demo", *self.demo_args)

    def start(self) -> DemoProcess | None:
        if self.process is not None or self.tracker is None:
            return None
        engine = self.engine()
        argv = self.command_line()
        engine.workspace.mkdir(parents=True, exist_ok=True)
        process = DemoProcess(argv[0], argv[1:], engine.workspace, engine_environment(engine.extra_env), parent=self)
        self.process = process
        process.status.connect(self.status.setText)
        process.run_started.connect(self._follow)
        process.ended.connect(lambda exit: self._ended(process, exit))
        self.button.setEnabled(False)
        self.stop_button.setVisible(True)
        self.status.setText("Starting the demo…")
        self.started.emit()
        return process

    def stop(self) -> None:
        if self.process is not None:
            self.status.setText("Stopping the demo…")
            self.process.stop()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """On quit: ask the demo to stop (its stage checkpoints and ends as cancelled) and wait a
        little; the demo runs inside the studio's process tree, so it cannot outlive the window."""
        process = self.process
        if process is not None and process.process.state() != process.process.ProcessState.NotRunning:
            process.process.terminate()
            if not process.process.waitForFinished(wait_ms):
                process.process.kill()
                process.process.waitForFinished(wait_ms)

    def _follow(self, _run_id: str) -> None:
        self.tracker.follow_new_runs()

    def _ended(self, process: DemoProcess, exit: ProcessExit) -> None:
        self._follow("")
        self.process = None
        self.button.setEnabled(True)
        self.stop_button.setVisible(False)
        if process.stopped:
            self.status.setText("Demo stopped. Its runs stay in the workspace.")
        elif exit.code == 0:
            self.status.setText("Demo finished: its runs are on the Runs page. " + _last_paths(process.lines))
        else:
            detail = exit.stderr.strip().splitlines()
            self.status.setText(f"The demo stopped with exit code {exit.code}"
                                + (f": {detail[-1]}" if detail else ".") + " Each run's engine.log has the details.")
        self.ended.emit(exit)


def _last_paths(lines: list[str]) -> str:
    model = next((line for line in reversed(lines) if line.startswith("Fine-tuned model:")), "")
    return model


class FirstRunPage(QWidget):
    """Shown when no working engine was found (and after, until the user continues).

    Signals: `engine_ready(object)` — an `EngineCheck` that works (the user's choice is saved by the
    window); `continue_to_studio()`. Public for tests: `checks_label`, `command_field`, `python_field`,
    `check_button`, `status`, `demo` (a `DemoPanel`, shown once an engine works).
    """

    engine_ready = Signal(object)
    continue_to_studio = Signal()

    def __init__(self, workspace: Path, tracker: Tracker | None, store: Any = None, probe: EngineProbe | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("FirstRunPage")
        self.store = store
        self.probe = probe or EngineProbe(workspace, parent=self)
        self.probe.finished.connect(self._probed)

        self.title = QLabel("Set up the engine")
        self.title.setObjectName("pageTitle")
        self.intro = intro = QLabel("Atelier trains models with its <b>engine</b>: a separate Python process with PyTorch, "
                       "transformers and datasets. The studio looked for one that works and found none, so "
                       "it can show runs and label preferences, but not train yet.")
        intro.setWordWrap(True)

        checked = QGroupBox("What the studio checked")
        self.checks_label = QLabel("Nothing yet.")
        self.checks_label.setWordWrap(True)
        self.checks_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        QVBoxLayout(checked).addWidget(self.checks_label)

        self.install_box = install = QGroupBox("Install the engine")
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.command_field = QLineEdit(engine_setup.install_command())
        self.command_field.setReadOnly(True)
        self.command_field.setFont(mono)
        self.command_field.setAccessibleName("Install command")
        copy = QPushButton("&Copy")
        copy.setToolTip("Copy the command to the clipboard")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command_field.text()))
        row = QHBoxLayout()
        row.addWidget(self.command_field, 1)
        row.addWidget(copy)
        how = QLabel("Run it in a terminal, in a clone of Atelier (the engine installs from the clone; add "
                     "<code>-c constraints/cpu.txt</code> for the CPU build of PyTorch on a machine without a GPU), "
                     "then press <b>Check again</b>. In a clone, <code>make demo</code> does it all: it sets up "
                     "<code>.venv</code> with the engine, runs the demo, and the studio finds that "
                     "<code>.venv</code> by itself.")
        how.setWordWrap(True)
        install_layout = QVBoxLayout(install)
        install_layout.addLayout(row)
        install_layout.addWidget(how)

        other = QGroupBox("Or use a Python that has the engine")
        field_label = QLabel("&Python:")
        self.python_field = QLineEdit()
        self.python_field.setPlaceholderText("/path/to/venv/bin/python")
        self.python_field.setFont(mono)
        field_label.setBuddy(self.python_field)
        browse = QPushButton("&Browse…")
        browse.clicked.connect(self.browse)
        self.check_button = QPushButton("Check &again")
        self.check_button.setDefault(True)
        self.check_button.clicked.connect(self.check_again)
        self.python_field.returnPressed.connect(self.check_again)
        field_row = QHBoxLayout()
        field_row.addWidget(field_label)
        field_row.addWidget(self.python_field, 1)
        field_row.addWidget(browse)
        field_row.addWidget(self.check_button)
        self.status = QLabel("")
        self.status.setVisible(False)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        other_layout = QVBoxLayout(other)
        other_layout.addLayout(field_row)
        other_layout.addWidget(self.status)

        self.ready = QGroupBox("Try it")
        self.demo = DemoPanel(tracker)
        self.continue_button = QPushButton("C&ontinue to the studio")
        self.continue_button.clicked.connect(self.continue_to_studio)
        ready_layout = QVBoxLayout(self.ready)
        ready_layout.addWidget(self.demo)
        ready_row = QHBoxLayout()
        ready_row.addStretch(1)
        ready_row.addWidget(self.continue_button)
        ready_layout.addLayout(ready_row)
        self.ready.setVisible(False)

        body = QWidget()
        body.setMaximumWidth(900)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(14)
        for widget in (self.title, intro, checked, install, other, self.ready):
            layout.addWidget(widget)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # ------------------------------------------------------------------------------ contents
    def show_checks(self, checks: list[EngineCheck]) -> None:
        """List what was checked: ✓ for an interpreter that works, ✗ and the reason for the others."""
        if not checks:
            self.checks_label.setText("No Python interpreter to check was found.")
            return
        self.checks_label.setText("\n".join(("✓ " if c.ok else "✗ ") + c.summary for c in checks))

    def set_engine(self, check: EngineCheck) -> None:
        """An engine works: say so and offer the demo."""
        self.title.setText("The engine is ready")
        self.intro.setText("The studio trains with this Python from now on (it is saved in the settings when you "
                           "chose it). Try it on the demo, or go on to the workflows in the sidebar.")
        self.install_box.setVisible(False)
        self.say("✓ " + check.summary)
        self.ready.setVisible(True)
        self.demo.button.setFocus()

    def say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # ------------------------------------------------------------------------------- actions
    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose the engine's Python", str(Path.home()))
        if path:
            self.python_field.setText(path)
            self.check_again()

    def check_again(self) -> None:
        """Check the Python in the field (when filled), else every candidate again."""
        python = self.python_field.text().strip()
        self.say(f"Checking {python}…" if python else "Checking again…")
        self.check_button.setEnabled(False)
        if python:
            self.probe.start([(python, "chosen")])
        else:
            saved = self.store.get_setting(engine_setup.SETTING_KEY) if self.store is not None else None
            self.probe.start(engine_setup.candidates(saved))

    def _probed(self, found: EngineCheck | None) -> None:
        self.check_button.setEnabled(True)
        checks = list(self.probe.checks)
        if found is not None:
            self.set_engine(found)
            self.engine_ready.emit(found)
            return
        last = checks[-1] if checks else None
        if last is not None and last.source == "chosen":
            self.say(f"✗ {last.python} cannot run the engine: {last.reason}.")
        else:
            self.show_checks(checks)
            self.say("Still no engine: install it with the command above, or choose its Python.")
