"""Fixtures of the label-server tests: one real `studio-engine label-server` process, and an HTTP client of it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from gradio_client import Client

from tests.engine.conftest import ROOT


class LabelServer:
    """One `studio-engine label-server` process in its own process group, and what it printed."""

    def __init__(self, workspace: Path, *args: str, env: dict | None = None):
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr_path = workspace / f"label-server-{time.monotonic_ns()}.err"
        inherited = {k: v for k, v in os.environ.items() if k != "ATELIER_LABEL_TOKEN"}
        env = {**inherited, **(env or {}), "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1"}
        with open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "label-server", "--port", "0",
                 *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""

    def ready(self) -> LabelServer:
        self.url = self.wait_for_line("label-server: ").removeprefix("label-server: ")
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.stdout.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}; stdout: {self.stdout}; stderr: {self.stderr()}")

    def printed(self, prefix: str) -> str | None:
        return next((line.removeprefix(prefix) for line in self.stdout if line.startswith(prefix)), None)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self) -> None:
        # Once: a second SIGTERM could land while the server is already exiting (after Python put the
        # default handler back), and would read as a crash.
        if self.process.poll() is None and not getattr(self, "_terminated", False):
            self._terminated = True
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> int:
        """Stop the whole process group (SIGTERM, then SIGKILL after 10 s); the exit status."""
        self.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def client(url: str, auth: tuple[str, str] | None = None) -> Client:
    return Client(url, auth=auth, verbose=False, analytics_enabled=False, download_files=False)
