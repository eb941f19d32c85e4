"""Runs the playground's answers through the serve client and keeps each one's `CellOutput` up to
date, whether or not a widget shows it (the grid may be rebuilt, or another row shown, while an
answer streams). Widgets listen: `streamed(key, text)` for each token, `changed(key)` otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.models.playground_session import CellOutput, ModelColumn


class CellRunner(QObject):
    """Public: `handles` (open generations by cell key), `running(key)`, `any_running`."""

    changed = Signal(str)
    streamed = Signal(str, str)

    def __init__(self, serve: Callable[[], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._serve = serve  # the client, made on first use (no process before the first answer)
        self.handles: dict[str, Any] = {}

    def start(self, key: str, output: CellOutput, model: ModelColumn, messages: list[dict],
              tools: list[dict] | None = None) -> None:
        """Ask `model` for the answer to `messages` (offering `tools`, when given) into `output` (a
        running answer there is stopped)."""
        self.stop(key)
        output.status, output.text, output.tokens, output.error, output.hint = "waiting", "", 0, "", ""
        output.finish = output.prompt_tokens = output.ttft_s = output.tokens_per_s = output.total_s = None
        output.seed = model.sampling.seed
        output.messages = list(messages)
        self.changed.emit(key)
        request = {"tools": tools} if tools else {}
        handle = self._serve().generate(model=model.source(), messages=messages, sampling=model.sampling.request(),
                                         chat_template=model.chat_template, **request)
        self.handles[key] = handle
        # An answer asked again replaces the one before: what the old handle still says (its
        # cancelled `done`) must not land in the new answer's output.
        current = lambda: self.handles.get(key) is handle  # noqa: E731
        handle.started.connect(lambda message: current() and self._started(key, output, message))
        handle.token.connect(lambda text: current() and self._token(key, output, text))
        handle.done.connect(lambda message: current() and self._done(key, output, message))
        handle.failed.connect(lambda message, hint: current() and self._failed(key, output, message, hint))
        handle.ended.connect(lambda: self._ended(key, handle))

    def fail(self, key: str, output: CellOutput, message: str, hint: str = "") -> None:
        """Mark an answer failed before it was asked (a template the row cannot fill)."""
        self.stop(key)
        output.status, output.text, output.error, output.hint = "error", "", message, hint
        output.tokens, output.finish = 0, None
        self.changed.emit(key)

    def stop(self, key: str) -> None:
        handle = self.handles.get(key)
        if handle is not None:
            handle.cancel()

    def stop_all(self) -> None:
        for key in list(self.handles):
            self.stop(key)

    def running(self, key: str) -> bool:
        return key in self.handles

    @property
    def any_running(self) -> bool:
        return bool(self.handles)

    # ------------------------------------------------------------------------------ events
    def _started(self, key: str, output: CellOutput, message: dict) -> None:
        output.status = "streaming"
        output.prompt_tokens = message.get("prompt_tokens")
        output.seed = message.get("seed", output.seed)
        self.changed.emit(key)

    def _token(self, key: str, output: CellOutput, text: str) -> None:
        output.status = "streaming"
        output.text += text
        output.tokens += 1
        self.streamed.emit(key, text)

    def _done(self, key: str, output: CellOutput, message: dict) -> None:
        output.apply_done(message)
        self.changed.emit(key)

    def _failed(self, key: str, output: CellOutput, message: str, hint: str) -> None:
        output.status, output.error, output.hint = "error", message, hint
        self.changed.emit(key)

    def _ended(self, key: str, handle: Any) -> None:
        if self.handles.get(key) is handle:
            del self.handles[key]
            self.changed.emit(key)  # no longer running: Stop buttons go
