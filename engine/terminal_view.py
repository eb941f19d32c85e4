"""A readable live view of a run's events for a terminal: a progress bar with ETA and the latest
metrics on one redrawn line, with evaluations, samples, artifacts and warnings printed above it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import TextIO

from engine.protocol import Event
from engine.workspace_paths import artifact_path


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


class TerminalView:
    """A sink for EventWriter (or for events read back by `attach`) that draws on a terminal."""

    def __init__(self, stream: TextIO, color: bool = True, workspace: Path | None = None):
        self.stream = stream
        self.color = color
        self.workspace = workspace  # events name its files relative to it; a terminal shows where they are
        self.progress: Event | None = None
        self.latest: dict[str, float] = {}
        self.artifacts: set[str] = set()
        self._line_open = False

    def _c(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def _print(self, text: str) -> None:
        self._clear_line()
        self.stream.write(text + "\n")
        self._redraw()

    def _clear_line(self) -> None:
        if self._line_open:
            self.stream.write("\r\033[2K")
            self._line_open = False

    def _redraw(self) -> None:
        if self.progress is None:
            self.stream.flush()
            return
        p = self.progress
        width = shutil.get_terminal_size((100, 20)).columns
        done, total = p.get("done") or 0, p.get("total")
        if total:
            frac = min(1.0, done / total)
            bar_width = 24
            filled = int(frac * bar_width)
            bar = "█" * filled + "░" * (bar_width - filled)
            head = f"{p['stage']:<9} {bar} {int(done)}/{int(total)} {p.get('unit', '')} {frac:4.0%}"
        elif done:
            head = f"{p['stage']:<9} {int(done)} {p.get('unit', '')}"
        else:
            head = f"{p['stage']:<9} …"
        head += f"  ETA {format_duration(p.get('eta_s'))}"
        shown = [("loss", "loss"), ("lr", "lr"), ("grad_norm", "gnorm"), ("tokens_per_s", "tok/s")]
        metrics = "  ".join(f"{label} {_number(self.latest[k])}" for k, label in shown if k in self.latest)
        line = f"{head}  {metrics}" if metrics else head
        self.stream.write("\r\033[2K" + line[: width - 1])
        self.stream.flush()
        self._line_open = True

    def __call__(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "started":
            spec = event.get("spec", {})
            resumed = event.get("resumed_from_step")
            what = f"resumed from step {resumed}" if resumed is not None else "started"
            self._print(self._c(f"▶ {spec.get('kind', '')} run {event.get('run_id')} {what} "
                                f"on {event.get('host')} (pid {event.get('pid')})", "1"))
        elif kind == "progress":
            self.progress = event
            self._clear_line()
            self._redraw()
        elif kind == "metric":
            values = event.get("values", {})
            if event.get("split") == "eval":
                shown = "  ".join(f"{k} {_number(v)}" for k, v in values.items())
                self._print(self._c(f"  eval @ step {event.get('step')}: {shown}", "36"))
            else:
                self.latest.update({k: v for k, v in values.items() if v is not None})
                if self.progress and self.progress.get("stage") == "train":
                    self.progress = dict(self.progress, done=max(self.progress["done"], event.get("step", 0)))
                self._clear_line()
                self._redraw()
        elif kind == "sample":
            text = textwrap.shorten(event.get("text", "").replace("\n", " ⏎ "), 160)
            self._print(f"  sample @ step {event.get('step')}: {self._c(repr(event.get('prompt')), '33')} → {text}")
        elif kind == "artifact":
            self.artifacts.add(event.get("path"))
            self._print(f"  {event.get('kind')}: {self._where(event.get('path'))}")
        elif kind == "log":
            level = event.get("level", "info")
            color = {"warning": "33", "error": "31"}.get(level, "2")
            self._print(self._c(f"  {level}: {event.get('message')}", color))
        elif kind == "finished":
            self.progress = None
            self._finished(event)

    def _finished(self, event: Event) -> None:
        status = event.get("status")
        summary = event.get("summary") or {}
        color = {"completed": "32", "cancelled": "33", "failed": "31"}.get(status, "0")
        self._print(self._c(f"■ {status}", f"1;{color}") + (
            "  " + "  ".join(f"{k} {_number(v)}" for k, v in summary.items() if k != "model") if summary else ""))
        error = event.get("error")
        if error:
            self._print(self._c(f"  error: {error.get('message')}", "31"))
            if error.get("hint"):
                self._print(f"  what to do: {error['hint']}")
        if summary.get("model") and summary["model"] not in self.artifacts:
            self._print(self._c(f"  model: {self._where(summary['model'])}", "1"))

    def _where(self, path: object) -> str:
        return artifact_path(str(path), self.workspace) if self.workspace is not None and path else str(path)
