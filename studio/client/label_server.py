"""The web labeling page as a child process: `studio-engine label-server …`, its address and token."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal

from studio.client.engine import ProcessExit, _EngineProcess

URL_PREFIX = "label-server: "
TOKEN_PREFIX = "label-server token: "


class LabelServerProcess(_EngineProcess):
    """Signals: `ready(url)` once the page serves, `said(line)` for each line it prints (where it is
    bound, who can open it), `ended(message)` when it stops (empty when stopped on purpose)."""

    ready = Signal(str)
    said = Signal(str)
    ended = Signal(str)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url: str | None = None
        self.token: str | None = None
        self.lines: list[str] = []
        self._buffer = b""

    def _on_stdout(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            if line.startswith(TOKEN_PREFIX):
                self.token = line[len(TOKEN_PREFIX):].strip()
            elif line.startswith(URL_PREFIX):
                self.url = line[len(URL_PREFIX):].strip()
                self.ready.emit(self.url)
                continue
            self.lines.append(line)
            self.said.emit(line)

    def _on_exit(self, exit: ProcessExit) -> None:
        if self.stopped:
            self.ended.emit("")
            return
        tail = "\n".join(exit.stderr.strip().splitlines()[-6:])
        self.ended.emit(f"The labeling page stopped (exit code {exit.code}).\n{tail}".strip())


def start_label_server(engine: Any, store_path: str, queue: str, host: str, port: int,
                       token: str | None = None) -> LabelServerProcess:
    """Start the page for `queue` with the local engine `engine` (its interpreter and workspace)."""
    from studio.client.engine import engine_environment

    args = ["label-server", "--store", str(store_path), "--queue", queue, "--host", host, "--port", str(port)]
    env = {"ATELIER_LABEL_TOKEN": token} if token else {}
    argv = engine.command_line(*args)
    engine.workspace.mkdir(parents=True, exist_ok=True)
    return LabelServerProcess(argv[0], argv[1:], engine.workspace, engine_environment({**engine.extra_env, **env}),
                              parent=engine)
