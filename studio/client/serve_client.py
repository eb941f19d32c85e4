"""The studio's side of `studio-engine serve` (docs/protocol.md, "serve"): one long-lived inference
process driven through QProcess, never blocking the event loop.

- The process starts lazily, with the first request, using the same interpreter, workspace and
  environment as the `LocalEngine` it is given; requests wait for its `ready` line.
- Responses are JSON lines on its stdout: partial lines are buffered, lines that are not JSON
  objects are logged and skipped, and every response is routed by its `id` to the `Generation`
  handle that asked.
- When the process dies, every generation still open fails with a sentence that says so (and the
  tail of its stderr); the next request starts a fresh process.

Requests are checked with the server's own pydantic models (`engine.serve.protocol`) before they
are sent, so a bad setting fails at once and names its field.
"""

from __future__ import annotations

import json
import logging
from itertools import count
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from engine.protocol import PROTOCOL_VERSION, ProtocolMismatch, check_version
from studio.client.engine import STDERR_LIMIT, engine_environment

log = logging.getLogger(__name__)

RESTART_HINT = "It starts again with the next request."


class Generation(QObject):
    """One generate request until its `done` or `error`.

    Signals: `loaded(dict)` (its model was loaded for it), `started(dict)` (it left the queue),
    `token(str)` (each text delta, in order), `log(str, str)` (level, message), then exactly one of
    `done(dict)` (the server's done message) or `failed(str, str)` (message, hint), then `ended()`.
    Public: `id`, `text` (streamed so far), `tokens`, `result` (the done message), `error`, `active`.
    """

    loaded = Signal(dict)
    started = Signal(dict)
    token = Signal(str)
    log = Signal(str, str)
    done = Signal(dict)
    failed = Signal(str, str)
    ended = Signal()

    def __init__(self, client: ServeClient, request_id: str, parent: QObject | None = None):
        super().__init__(parent)
        self.client = client
        self.id = request_id
        self.text = ""
        self.tokens = 0
        self.result: dict | None = None
        self.error: str | None = None
        self.cancel_requested = False

    @property
    def active(self) -> bool:
        return self.result is None and self.error is None

    def cancel(self) -> None:
        """Ask the server to stop this generation; its `done` then says finish: cancelled."""
        self.client.cancel(self.id)

    # Called by the client, which routes the server's messages.
    def _receive(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "token":
            text = str(message.get("text") or "")
            self.tokens += 1
            self.text += text
            self.token.emit(text)
        elif kind == "started":
            self.started.emit(message)
        elif kind == "loaded":
            self.loaded.emit(message)
        elif kind == "log":
            self.log.emit(str(message.get("level") or "info"), str(message.get("message") or ""))
        elif kind == "unloaded":
            self.log.emit("info", f"{message.get('model_id')} was unloaded to make room ({message.get('reason')}).")
        elif kind == "done":
            self._finish(result=message)
        elif kind == "error":
            self._fail(str(message.get("message") or "The server refused the request."), str(message.get("hint") or ""))
        else:
            log.info("serve: unknown response type %r for %s", kind, self.id)

    def _fail(self, message: str, hint: str = "") -> None:
        if not self.active:
            return
        self.error = message
        self.failed.emit(message, hint)
        self.ended.emit()

    def _finish(self, result: dict) -> None:
        if not self.active:
            return
        self.result = result
        # The done text is the whole answer (it may end with U+FFFD the deltas held back).
        self.text = str(result.get("text") if result.get("text") is not None else self.text)
        self.done.emit(result)
        self.ended.emit()


class ServeClient(QObject):
    """`studio-engine serve` for the playground. Public: `state` ("stopped", "starting", "ready"),
    `info` (the `ready` message), `generations` (open ones by id), `last_error`.

    Signals: `state_changed(str)`, `server_error(str)` (a sentence: it died, could not start, speaks
    another protocol version).
    """

    state_changed = Signal(str)
    server_error = Signal(str)

    def __init__(self, engine: Any, serve_args: list[str] | tuple[str, ...] = (), parent: QObject | None = None):
        super().__init__(parent)
        self.engine = engine
        self.serve_args = list(serve_args)
        self.state = "stopped"
        self.info: dict = {}
        self.generations: dict[str, Generation] = {}
        self.last_error = ""
        self._process: QProcess | None = None
        self._pending: list[bytes] = []  # lines written once the server says ready
        self._stdout = b""
        self._stderr = bytearray()
        self._startup_error = ""  # an `error` with no id before `ready`: why it will not come
        self._stopping = False
        self._ids = count(1)

    # ------------------------------------------------------------------------------ requests
    def generate(self, *, model: dict | None = None, model_id: str | None = None, prompt: str | None = None,
                 messages: list[dict] | None = None, sampling: dict | None = None,
                 chat_template: str = "auto", tools: list[dict] | None = None) -> Generation:
        """Start a generation (the process too, if it is not running); connect to the handle's
        signals right away: nothing is emitted before control returns to the event loop."""
        from pydantic import ValidationError

        from engine.serve.protocol import GenerateRequest

        handle = Generation(self, f"g{next(self._ids)}", parent=self)
        request = {"op": "generate", "id": handle.id, "model": model, "model_id": model_id, "prompt": prompt,
                   "messages": messages, "sampling": sampling or {}, "chat_template": chat_template, "tools": tools}
        request = {k: v for k, v in request.items() if v is not None}
        try:
            GenerateRequest.model_validate(request)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'request'}: "
                                 f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())
            QTimer.singleShot(0, self, lambda: handle._fail(f"The request is not valid: {problems}.",
                                                            "Fix the setting and run it again."))
            return handle
        self.generations[handle.id] = handle
        handle.ended.connect(lambda: self._forget(handle))
        self._send(request)
        return handle

    def cancel(self, request_id: str) -> None:
        handle = self.generations.get(request_id)
        if handle is None or handle.cancel_requested:
            return
        handle.cancel_requested = True
        if self.state == "ready":
            self._write({"op": "cancel", "id": request_id})
        else:  # still waiting for the server: never sent, so nothing to stop there
            self._pending = [line for line in self._pending if json.loads(line).get("id") != request_id]
            QTimer.singleShot(0, self, lambda: handle._finish({"text": handle.text, "tokens": 0, "finish": "cancelled"}))

    def cancel_all(self) -> None:
        for request_id in list(self.generations):
            self.cancel(request_id)

    def shutdown(self, wait_ms: int = 0) -> None:
        """Ask the server to end (its generations are cancelled); kill it if it lingers. `wait_ms` > 0
        blocks that long for it (only when the window closes)."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        if self.state == "ready":
            self._write({"op": "shutdown", "id": "shutdown"})
        process.closeWriteChannel()  # the server also ends when its stdin closes
        if wait_ms > 0:
            if not process.waitForFinished(wait_ms):
                process.kill()
                process.waitForFinished(wait_ms)
        else:
            QTimer.singleShot(5000, self, lambda: self._kill(process))

    @property
    def running(self) -> bool:
        return self._process is not None

    # ------------------------------------------------------------------------------ process
    def _send(self, request: dict) -> None:
        line = (json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8")
        if self.state == "ready":
            self._process.write(line)
            return
        self._pending.append(line)
        if self._process is None:
            self._start()

    def _write(self, request: dict) -> None:
        if self._process is not None:
            self._process.write((json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8"))

    def _start(self) -> None:
        argv = self.engine.command_line("serve", *self.serve_args)
        self.engine.workspace.mkdir(parents=True, exist_ok=True)
        process = QProcess(self)
        process.setProgram(argv[0])
        process.setArguments(argv[1:])
        process.setProcessEnvironment(engine_environment(getattr(self.engine, "extra_env", {})))
        process.setWorkingDirectory(str(self.engine.workspace))
        process.readyReadStandardOutput.connect(lambda: self._read_stdout(process))
        process.readyReadStandardError.connect(lambda: self._read_stderr(process))
        process.finished.connect(lambda code, status: self._ended(process, code, status))
        process.errorOccurred.connect(lambda error: self._process_error(process, error))
        self._process, self._stdout, self._stderr, self._startup_error = process, b"", bytearray(), ""
        self._stopping = False
        self._set_state("starting")
        process.start()

    def _read_stdout(self, process: QProcess) -> None:
        if process is not self._process:
            return
        self._stdout += bytes(process.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            if not isinstance(message, dict) or "type" not in message:
                log.warning("serve: skipped a line that is not a response: %r", raw[:200])
                continue
            self._route(message)

    def _read_stderr(self, process: QProcess) -> None:
        self._stderr += bytes(process.readAllStandardError())
        if len(self._stderr) > STDERR_LIMIT:
            del self._stderr[: len(self._stderr) - STDERR_LIMIT]

    def _route(self, message: dict) -> None:
        kind, request_id = message.get("type"), message.get("id")
        if kind == "ready":
            self._ready(message)
            return
        handle = self.generations.get(request_id) if isinstance(request_id, str) else None
        if handle is not None:
            if kind == "error" and handle.cancel_requested:
                # A cancel is answered under the generation's own id: "nothing to cancel" means it
                # ended (its done may follow). Close it as stopped, keeping what streamed.
                handle._finish({"text": handle.text, "tokens": handle.tokens, "finish": "cancelled"})
                return
            handle._receive(message)
        elif kind == "error" and request_id is None and self.state == "starting":
            self._startup_error = f"{message.get('message', '')} {message.get('hint', '')}".strip()
        elif kind == "error":
            log.warning("serve: %s", message.get("message"))

    def _ready(self, message: dict) -> None:
        try:
            check_version(message)
        except ProtocolMismatch as e:
            self._report(str(e).replace("event protocol", "serve protocol"))
            self._fail_open(str(e), "Use a studio and an engine of the same version.")
            self.shutdown()
            return
        self.info = message
        self._set_state("ready")
        pending, self._pending = self._pending, []
        for line in pending:
            self._process.write(line)

    def _process_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if process is self._process and error == QProcess.ProcessError.FailedToStart:
            self._ended(process, -1, QProcess.ExitStatus.CrashExit,
                        f"Could not start the inference server with {process.program()}: {process.errorString()}.")

    def _ended(self, process: QProcess, code: int, status: QProcess.ExitStatus, why: str = "") -> None:
        if process is not self._process:
            return
        self._read_stderr(process)
        tail = "\n".join(bytes(self._stderr).decode("utf-8", errors="replace").strip().splitlines()[-8:])
        expected = self._stopping
        self._process, self._pending, self.info = None, [], {}
        self._set_state("stopped")
        process.deleteLater()
        if expected and not self.generations:
            return
        how = "crashed" if status == QProcess.ExitStatus.CrashExit else f"stopped (exit code {code})"
        message = why or self._startup_error or f"The inference server {how}."
        if tail and not why:
            message += f"\n{tail}"
        self._report(message)
        self._fail_open(message.splitlines()[0] if self._startup_error else message, RESTART_HINT)

    def _fail_open(self, message: str, hint: str) -> None:
        for handle in list(self.generations.values()):
            if handle.cancel_requested:
                handle._finish({"text": handle.text, "tokens": handle.tokens, "finish": "cancelled"})
            else:
                handle._fail(message, hint)

    def _report(self, message: str) -> None:
        self.last_error = message
        self.server_error.emit(message)

    def _forget(self, handle: Generation) -> None:
        self.generations.pop(handle.id, None)
        # Outside the signal that ended it: Python owns the handle from now on, so it is freed
        # once its callers let go of it.
        QTimer.singleShot(0, self, lambda: handle.setParent(None))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    @staticmethod
    def _kill(process: QProcess) -> None:
        try:
            if process.state() != QProcess.ProcessState.NotRunning:
                process.kill()
        except RuntimeError:  # already deleted with its parent
            pass


__all__ = ["Generation", "ServeClient", "PROTOCOL_VERSION"]
