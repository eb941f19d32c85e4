"""The event protocol between the engine and its readers (the studio, `attach`, tests).

One JSON object per line. Every event carries `v` (protocol version), `seq` (0, 1, 2, ... with no
gaps within a run, across resumes), `t` (unix time) and `type`. The contract is documented in
docs/protocol.md; change it deliberately and bump PROTOCOL_VERSION.

This module is imported by the GUI: it must stay free of torch and friends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from engine.workspace_paths import portable_paths

PROTOCOL_VERSION = 1

EVENT_TYPES = frozenset(
    {"started", "progress", "metric", "sample", "artifact", "log", "heartbeat", "finished"}
)
FINISHED_STATUSES = ("completed", "cancelled", "failed")
# The fields readers rely on, by event type (docs/protocol.md): an event whose field is missing or of
# another type is not what an engine wrote, and is skipped (and logged) like a line that is not JSON.
_NUMBER = (int, float)
_REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "metric": {"step": int, "split": str, "values": dict},
    "finished": {"status": str, "summary": dict},
    "log": {"level": str, "message": str},
    "sample": {"prompt": str, "text": str},
    "artifact": {"kind": str, "path": str},
    "progress": {"stage": str},
}
_OPTIONAL_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "finished": {"error": dict},
    "artifact": {"meta": dict},
    "started": {"spec": dict, "run_id": str, "host": str, "pid": int, "engine_version": str, "devices": list,
                "resumed_from_step": int},
    "progress": {"done": _NUMBER, "total": _NUMBER, "unit": str, "eta_s": _NUMBER},
    "sample": {"step": int},
}
# A line longer than this is not an event (the longest an engine writes is a `started` with its spec);
# a reader drops it rather than hold it in memory.
MAX_LINE_BYTES = 64 << 20
# The events whose fields name files (the spec, an artifact, the summary): written workspace-relative.
PATH_EVENT_TYPES = frozenset({"started", "artifact", "finished"})

log = logging.getLogger(__name__)

Event = dict[str, Any]


class ProtocolMismatch(Exception):
    """An engine speaks a protocol version this reader does not understand."""


def check_version(event: Event) -> None:
    """Raise ProtocolMismatch with a plain explanation when `event` comes from another version."""
    v = event.get("v")
    if v == PROTOCOL_VERSION:
        return
    if isinstance(v, int) and v < PROTOCOL_VERSION:
        raise ProtocolMismatch(
            f"The engine speaks event protocol v{v}, this studio needs v{PROTOCOL_VERSION}: "
            "the engine is too old. Upgrade it with `pip install -U \"atelier[engine]\"` "
            "in the engine's Python environment."
        )
    raise ProtocolMismatch(
        f"The engine speaks event protocol v{v}, this studio understands v{PROTOCOL_VERSION}: "
        "the studio is too old. Upgrade it with `pip install -U atelier`."
    )


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: send them as null so every reader can parse every line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode(event: Event) -> str:
    return json.dumps(_clean(event), ensure_ascii=False, separators=(",", ":"), default=str)


def parse_line(line: str | bytes) -> Event | None:
    """One line to an event, or None (logged) when it is not a protocol event."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except RecursionError:
        log.info("skipping a line nested too deeply to be an event: %.200s", line)
        return None
    except ValueError:  # not JSON, or an integer of thousands of digits
        log.info("skipping a non-event line: %.200s", line)
        return None
    if not isinstance(event, dict) or "type" not in event or not _is_seq(event.get("seq")):
        log.info("skipping a JSON line that is not an event: %.200s", line)
        return None
    problem = _field_problem(event)
    if problem:
        log.info("skipping event seq %s: %s", event["seq"], problem)
        return None
    if "\\ud" in line.lower() and has_lone_surrogates(event):  # as a byte that is not UTF-8 reads: U+FFFD
        event = _replace_lone_surrogates(event)
    if event["type"] not in EVENT_TYPES:
        log.info("unknown event type %.60r (seq %s) ignored", event["type"], event.get("seq"))
    return event


def _is_seq(value: Any) -> bool:
    return type(value) is int and value >= 0


def _field_problem(event: Event) -> str | None:
    kind = event["type"]
    if not isinstance(kind, str):
        return "its type is not a string"
    if event.get("t") is not None and (not isinstance(event["t"], _NUMBER) or isinstance(event["t"], bool)):
        return "its time t is not a number"
    for name, expected in _REQUIRED_FIELDS.get(kind, {}).items():
        value = event.get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            return f"{kind} field {name} is missing or not a {getattr(expected, '__name__', expected)}"
    for name, expected in _OPTIONAL_FIELDS.get(kind, {}).items():
        value = event.get(name)
        if value is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            return f"{kind} field {name} is not a {getattr(expected, '__name__', 'number')}"
    return None


def has_lone_surrogates(value: Any) -> bool:
    """Whether a parsed JSON value holds half a character: JSON's "\\ud800" escapes decode to text that no
    UTF-8 file, terminal or database can take."""
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogates(k) or has_lone_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogates(v) for v in value)
    return False


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    return value


class EventReader:
    """Turns a byte stream that arrives in arbitrary chunks into events.

    Partial lines are buffered until their newline arrives; non-JSON lines (a library that printed
    to stdout, a truncated last line) are skipped; events with a `seq` already seen are dropped, so
    a reader that re-attaches from an earlier seq never yields a duplicate.
    """

    def __init__(self, next_seq: int = 0):
        self.next_seq = next_seq
        self._buffer = b""
        self._dropping = False  # inside a line longer than MAX_LINE_BYTES, until its newline

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        if self._dropping and lines:
            lines, self._dropping = lines[1:], False
        if len(self._buffer) > MAX_LINE_BYTES:
            log.warning("skipping a line longer than %d bytes: not an event", MAX_LINE_BYTES)
            self._buffer, self._dropping = b"", True
        return self._accept(lines)

    def flush(self) -> list[Event]:
        """At end of stream: whatever is left is a truncated line; parse it if it is whole JSON."""
        rest, self._buffer = self._buffer, b""
        if self._dropping:
            self._dropping = False
            return []
        return self._accept([rest])

    def _accept(self, lines: list[bytes]) -> list[Event]:
        events = []
        for line in lines:
            if len(line) > MAX_LINE_BYTES:
                log.warning("skipping a line longer than %d bytes: not an event", MAX_LINE_BYTES)
                continue
            event = parse_line(line)
            if event is None:
                continue
            if event["seq"] < self.next_seq:
                continue
            if event["seq"] > self.next_seq:
                log.warning("event gap: expected seq %d, got %d", self.next_seq, event["seq"])
            self.next_seq = event["seq"] + 1
            events.append(event)
        return events


def read_events(path: Path, from_seq: int = 0) -> Iterator[Event]:
    """Events stored in an events.jsonl file, from `from_seq` on; tolerates a truncated last line."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or a device: reading it would never end
        log.warning("%s is not a regular file: no events read from it", path)
        return iter(())
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return iter(())
    reader = EventReader(next_seq=from_seq)
    return iter(reader.feed(data) + reader.flush())


def last_seq(path: Path) -> int:
    """The seq of the last complete event in `path`, or -1 when there is none."""
    last = -1
    for event in read_events(path):
        last = event["seq"]
    return last


class EventWriter:
    """Numbers events and writes each to the durable log (events.jsonl) and to live sinks.

    Thread-safe: the heartbeat thread and the training loop both emit. A sink is a callable taking
    the event dict (the JSON-lines stdout sink, or the terminal view). The durable copy is written
    and flushed before the live copy, so a reader that re-attaches from the file never misses what
    it saw live.
    """

    def __init__(self, events_path: Path | None, sinks: list[Callable[[Event], None]] | None = None,
                 workspace: Path | None = None):
        self.events_path = Path(events_path) if events_path else None
        self.sinks = list(sinks or [])
        # Paths inside the run's workspace are written relative to it, so that the workspace can move.
        self.workspace = Path(workspace) if workspace is not None else None
        self._lock = threading.Lock()
        self.next_seq = 0
        self._file: TextIO | None = None
        if self.events_path is not None:
            self.next_seq = last_seq(self.events_path) + 1
            self._repair_truncated_tail()
            self._file = open(self.events_path, "a", encoding="utf-8")

    def _repair_truncated_tail(self) -> None:
        # A killed engine can leave half a line; start the next event on a fresh line.
        if self.events_path.exists() and self.events_path.stat().st_size:
            with open(self.events_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    with open(self.events_path, "ab") as out:
                        out.write(b"\n")

    def emit(self, type: str, **fields: Any) -> Event:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        with self._lock:
            event = {"v": PROTOCOL_VERSION, "seq": self.next_seq, "t": round(time.time(), 3), "type": type}
            if self.workspace is not None and type in PATH_EVENT_TYPES:
                fields = portable_paths(fields, self.workspace)
            event.update(fields)
            event = _clean(event)
            self.next_seq += 1
            durable_error: OSError | None = None
            if self._file is not None:
                try:
                    self._file.write(encode(event) + "\n")
                    self._file.flush()
                except OSError as e:  # a full disk: the live readers still hear of it, then the caller
                    durable_error = e
            for sink in list(self.sinks):
                try:
                    sink(event)
                except (BrokenPipeError, OSError):
                    # The reader went away (terminal closed, GUI quit): the run goes on, the file
                    # keeps the record, and `attach` can pick it up later.
                    self.sinks.remove(sink)
            if durable_error is not None:
                raise durable_error
            return event

    # Typed helpers, one per event type (DESIGN §3).
    def started(self, run_id: str, spec: dict, host: str, pid: int, engine_version: str,
                devices: list[dict], resumed_from_step: int | None = None) -> Event:
        return self.emit("started", run_id=run_id, spec=spec, host=host, pid=pid,
                         engine_version=engine_version, devices=devices,
                         resumed_from_step=resumed_from_step)

    def progress(self, stage: str, done: float, total: float | None, unit: str,
                 eta_s: float | None = None) -> Event:
        return self.emit("progress", stage=stage, done=done, total=total, unit=unit,
                         eta_s=None if eta_s is None else round(eta_s, 1))

    def metric(self, step: int, split: str, values: dict[str, float]) -> Event:
        return self.emit("metric", step=step, split=split, values=values)

    def sample(self, step: int, prompt: str, text: str) -> Event:
        return self.emit("sample", step=step, prompt=prompt, text=text)

    def artifact(self, kind: str, path: str, meta: dict | None = None) -> Event:
        return self.emit("artifact", kind=kind, path=path, meta=meta or {})

    def log(self, level: str, message: str) -> Event:
        return self.emit("log", level=level, message=message)

    def heartbeat(self) -> Event:
        return self.emit("heartbeat")

    def finished(self, status: str, summary: dict | None = None, error: dict | None = None) -> Event:
        if status not in FINISHED_STATUSES:
            raise ValueError(f"unknown finished status {status!r}")
        fields: dict[str, Any] = {"status": status, "summary": summary or {}}
        if error is not None:
            fields["error"] = error
        return self.emit("finished", **fields)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as e:  # what a full disk kept from being written is lost; emit said so
                    log.warning("events.jsonl could not be closed cleanly: %s", e)
                self._file = None


def json_lines_sink(stream: TextIO) -> Callable[[Event], None]:
    def write(event: Event) -> None:
        stream.write(encode(event) + "\n")
        stream.flush()
    return write
