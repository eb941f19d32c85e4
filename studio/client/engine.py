"""Driving an engine process from the GUI thread without ever blocking it.

Every engine command is a `studio-engine` invocation run through QProcess (no shell). Two kinds of
handle come back from `LocalEngine`:

- `EngineCommand`: a short command (`run --detach`, `resume --detach`, `cancel`, `list`, `show`,
  `preview`)
  that ends with a JSON answer on stdout (`succeeded(object)`) or a sentence for the user built
  from its stderr (`failed(str)`), e.g. every problem of an invalid spec.
- `EventStream`: `attach RUN --from-seq N --follow --json`, whose stdout is the event protocol.
  Bytes arrive in arbitrary chunks; `engine.protocol.EventReader` buffers partial lines, skips
  non-event lines and drops seqs already seen; each read becomes one `events(list)` batch.

Handles start on the next turn of the event loop, so connecting their signals right after the call
that made them never misses anything.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engine.protocol import Event, EventReader, ProtocolMismatch, check_version, read_events
from engine.rundir import RunDirectory, RunStatus, find_run

STDERR_LIMIT = 256 * 1024  # keep the tail: the last lines of a traceback are the useful ones
SPEC_ERROR_EXIT = 2


@dataclass(frozen=True)
class ProcessExit:
    """How an engine process ended."""

    code: int  # exit code (-1 when it crashed or never started)
    crashed: bool  # killed by a signal, or failed to start
    stderr: str  # the tail of what it wrote on stderr


def engine_environment(extra: dict[str, str] | None = None) -> QProcessEnvironment:
    """The child's environment: ours (HF_HUB_OFFLINE and friends pass through), unbuffered UTF-8."""
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    for key, value in (extra or {}).items():
        env.insert(key, value)
    return env


class _EngineProcess(QObject):
    """One engine invocation: a QProcess with stdout handed to `_on_stdout` and stderr kept."""

    def __init__(self, program: str, args: list[str], workdir: Path, env: QProcessEnvironment,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.program, self.args = program, list(args)
        self.stderr_text = ""
        self.exit: ProcessExit | None = None
        self._cancelled = False
        self._stderr = bytearray()
        self.process = QProcess(self)
        self.process.setProgram(program)
        self.process.setArguments(self.args)
        self.process.setProcessEnvironment(env)
        if workdir.is_dir():
            self.process.setWorkingDirectory(str(workdir))
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._process_finished)
        self.process.errorOccurred.connect(self._process_error)
        QTimer.singleShot(0, self, self._start)

    @property
    def command_line(self) -> list[str]:
        return [self.program, *self.args]

    @property
    def running(self) -> bool:
        return self.exit is None

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called (its end is then not a failure)."""
        return self._cancelled

    def _start(self) -> None:
        if not self._cancelled:
            self.process.start()

    def stop(self) -> None:
        """End the process: terminate now, kill if it is still there in 3 seconds (never blocks)."""
        self._cancelled = True
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.terminate()
            QTimer.singleShot(3000, self, self._kill_if_running)
        elif self.exit is None:
            self._finish(ProcessExit(-1, True, "stopped before it started"))

    def _kill_if_running(self) -> None:
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()

    def _read_stdout(self) -> None:
        data = bytes(self.process.readAllStandardOutput())
        if data:
            self._on_stdout(data)

    def _read_stderr(self) -> None:
        self._stderr += bytes(self.process.readAllStandardError())
        if len(self._stderr) > STDERR_LIMIT:
            del self._stderr[: len(self._stderr) - STDERR_LIMIT]

    def _process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        self._read_stderr()
        crashed = status == QProcess.ExitStatus.CrashExit
        self._finish(ProcessExit(-1 if crashed else code, crashed, self._stderr_text()))

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            message = (f"Could not start the engine with {self.program}: {self.process.errorString()}. "
                       "Check the engine's Python interpreter in the settings.")
            self._finish(ProcessExit(-1, True, message))

    def _stderr_text(self) -> str:
        self.stderr_text = bytes(self._stderr).decode("utf-8", errors="replace")
        return self.stderr_text

    def _finish(self, exit: ProcessExit) -> None:
        if self.exit is not None:
            return
        self.exit = exit
        self._on_exit(exit)

    # Overridden by the two kinds of handle.
    def _on_stdout(self, data: bytes) -> None: ...

    def _on_exit(self, exit: ProcessExit) -> None: ...


class EngineCommand(_EngineProcess):
    """A short engine command whose answer is JSON on stdout.

    Signals: `succeeded(object)` with the parsed answer (a dict or list; the raw text when
    `expect_json` is False), or `failed(str)` with a sentence for the user; then `done()`.
    """

    succeeded = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(self, *args: Any, action: str = "run the engine command", expect_json: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.action = action
        self.expect_json = expect_json
        self.result: Any = None
        self.error: str | None = None
        self._stdout = bytearray()

    def _on_stdout(self, data: bytes) -> None:
        self._stdout += data

    def _on_exit(self, exit: ProcessExit) -> None:
        text = bytes(self._stdout).decode("utf-8", errors="replace")
        if exit.code == 0 and not exit.crashed:
            if not self.expect_json:
                self.result = text
            else:
                try:
                    self.result = _last_json(text)
                except ValueError:
                    self.error = (f"Could not {self.action}: the engine answered something that is not JSON "
                                  f"({text.strip()[:200] or 'nothing'}).")
        else:
            self.error = self._failure_sentence(exit)
        if self.error is None:
            self.succeeded.emit(self.result)
        else:
            self.failed.emit(self.error)
        self.done.emit()

    def _failure_sentence(self, exit: ProcessExit) -> str:
        detail = exit.stderr.strip()
        if exit.crashed and exit.code == -1 and detail.startswith("Could not start"):
            return detail
        if exit.code == SPEC_ERROR_EXIT:
            return f"Could not {self.action}: the spec is not valid.\n{detail}" if detail else \
                f"Could not {self.action}: the spec is not valid."
        how = "crashed" if exit.crashed else f"stopped with exit code {exit.code}"
        tail = "\n".join(detail.splitlines()[-20:])
        return f"Could not {self.action}: the engine {how}." + (f"\n{tail}" if tail else "")


def _last_json(text: str) -> Any:
    """The JSON answer at the end of `text`: the whole text, else an indented document that starts on a line
    of its own, else its last line that parses (libraries may print before either). Documents come before
    lines: a line inside an indented document may parse on its own (the last item of a list of paths)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = text.strip().splitlines()
    for start in reversed([i for i, line in enumerate(lines) if line in ("{", "[")]):
        try:
            return json.loads("\n".join(lines[start:]))
        except json.JSONDecodeError:
            continue
    for line in reversed(lines):
        line = line.strip()
        if line:
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON line")


class EventStream(_EngineProcess):
    """`attach RUN --from-seq N --follow --json`: the live events of one run.

    Signals: `events(list)` — a batch of new events, in seq order, never a seq twice;
    `error(str)` — a sentence (engine too old/new, attach failed); `ended(object)` — the
    `ProcessExit`, after the last batch. `saw_finished` tells whether the run's `finished` came.
    """

    events = Signal(list)
    error = Signal(str)
    ended = Signal(object)

    def __init__(self, run_id: str, from_seq: int, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.run_id = run_id
        self.reader = EventReader(next_seq=from_seq)
        self.saw_finished = False
        self.mismatch: str | None = None
        self._checked_version = False

    @property
    def next_seq(self) -> int:
        return self.reader.next_seq

    def _on_stdout(self, data: bytes) -> None:
        self._deliver(self.reader.feed(data))

    def _deliver(self, batch: list[Event]) -> None:
        if self.mismatch or not batch:
            return
        for event in batch:
            if not self._checked_version or event.get("type") == "started":
                self._checked_version = True
                try:
                    check_version(event)
                except ProtocolMismatch as exc:
                    self.mismatch = str(exc)
                    self.error.emit(self.mismatch)
                    self.stop()
                    return
            if event.get("type") == "finished":
                self.saw_finished = True
        self.events.emit(batch)

    def _on_exit(self, exit: ProcessExit) -> None:
        self._deliver(self.reader.flush())
        # attach exits 0 after `finished`, 1 when the engine died; anything else is attach failing.
        if not self._cancelled and not self.mismatch and exit.code not in (0, 1):
            detail = "\n".join(exit.stderr.strip().splitlines()[-20:])
            if exit.crashed and detail.startswith("Could not start"):
                self.error.emit(detail)
            else:
                self.error.emit(f"Could not follow run {self.run_id}: the engine stopped with exit code "
                                f"{exit.code}." + (f"\n{detail}" if detail else ""))
        self.ended.emit(exit)


class LatestCommand(QObject):
    """One engine command at a time for settings that keep changing (a preview as the user types):
    starting another stops the one running, whose answer is then ignored.

    Signals: `succeeded(object, str)` — the answer and the key it was started with; `failed(str, str)`
    — the sentence and the key. Public: `key` (of the command running, or None), `running`.
    """

    succeeded = Signal(object, str)
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.command: EngineCommand | None = None
        self.key: str | None = None

    @property
    def running(self) -> bool:
        return self.command is not None

    def start(self, command: EngineCommand, key: str) -> None:
        self.stop()
        self.command, self.key = command, key
        # Bound methods, not lambdas: Qt drops these connections when this object is deleted first.
        command.succeeded.connect(self._command_succeeded)
        command.failed.connect(self._command_failed)

    def stop(self) -> None:
        """Stop the command running (if any); its answer will not be signalled."""
        command, self.command, self.key = self.command, None, None
        if command is not None:
            command.stop()

    def _command_succeeded(self, result: Any) -> None:
        self._answer(self.sender(), self.succeeded, result)

    def _command_failed(self, message: str) -> None:
        self._answer(self.sender(), self.failed, message)

    def _answer(self, command: EngineCommand, signal: Any, value: Any) -> None:
        if command is not self.command:
            return  # superseded, or stopped
        key, self.command, self.key = self.key, None, None
        signal.emit(value, key)


class LocalEngine(QObject):
    """The engine on this computer: `python -m engine.cli --workspace WORKSPACE ...`.

    `entry` replaces `[python, "-m", "engine.cli"]` (tests use a stand-in engine script).
    """

    name = "local"
    is_remote = False

    def __init__(self, python: str | os.PathLike | None = None, workspace: str | os.PathLike = ".",
                 entry: list[str] | None = None, env: dict[str, str] | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.python = str(python or sys.executable)
        self.workspace = Path(workspace).expanduser()
        self.entry = list(entry) if entry else [self.python, "-m", "engine.cli"]
        self.extra_env = dict(env or {})
        self._live: set[_EngineProcess] = set()

    def use_python(self, python: str | os.PathLike) -> None:
        """Run the engine with this interpreter from now on (the first-run check or the settings
        chose it). A stand-in `entry` given by a test stays as it is."""
        if self.entry == [self.python, "-m", "engine.cli"]:
            self.entry = [str(python), "-m", "engine.cli"]
        self.python = str(python)

    # ------------------------------------------------------------------------------ commands
    def command_line(self, *args: str) -> list[str]:
        """The argv that runs `studio-engine --workspace W *args` with this engine."""
        return [*self.entry, "--workspace", str(self.workspace), *args]

    def display_command(self, *args: str) -> str:
        """The equivalent shell command, for the review page."""
        import shlex
        return shlex.join(["studio-engine", "--workspace", str(self.workspace), *args])

    def start_run(self, spec_path: str | os.PathLike) -> EngineCommand:
        """`run SPEC --detach`; succeeded(dict(run_id, run_dir, pid))."""
        return self._command(["run", str(Path(spec_path).resolve()), "--detach"], "start the run")

    def resume(self, run_id: str) -> EngineCommand:
        """`resume RUN --detach`; succeeded(dict(run_id, run_dir, pid)); the run id stays the same."""
        return self._command(["resume", run_id, "--detach"], f"resume run {run_id}")

    def cancel(self, run_id: str, force: bool = False) -> EngineCommand:
        args = ["cancel", run_id] + (["--force"] if force else [])
        return self._command(args, f"stop run {run_id}", expect_json=False)

    def list_runs(self) -> EngineCommand:
        return self._command(["list", "--json"], "list the runs")

    def show(self, run_id: str) -> EngineCommand:
        return self._command(["show", run_id, "--json"], f"show run {run_id}")

    def preview(self, spec_path: str | os.PathLike, sample: int | None = None,
                action: str = "run the dry run") -> EngineCommand:
        """`preview SPEC --json [--sample N]`; succeeded(dict). For a clean spec: the dry run on a
        random sample (what each step would remove, every sampled document's fate); for a finetune
        spec: the data format, rendered records, the base model and the memory of each method.
        `action` completes the failure sentence "Could not …"."""
        args = ["preview", str(Path(spec_path).resolve()), "--json"] + (["--sample", str(sample)] if sample else [])
        return self._command(args, action)

    def schema(self) -> EngineCommand:
        """`schema`: the JSON schema of every job spec this engine runs; succeeded(text)."""
        return self._command(["schema"], "read the engine's job specs", expect_json=False)

    def validate(self, spec_path: str | os.PathLike) -> EngineCommand:
        """`validate SPEC`: the engine's own checks, those across fields included; an invalid spec fails
        with the engine's problem lines in `exit.stderr` (see `engine_schema.problems_from_engine`)."""
        return self._command(["validate", str(Path(spec_path).resolve())], "check the spec", expect_json=False)

    def labels(self, args: list[str], action: str) -> EngineCommand:
        """`labels ARGS --json` (import, import-batch, export, stats of labeling queues); succeeded(dict)."""
        return self._command(["labels", *args, "--json"], action)

    def queue(self, *args: str, action: str, expect_json: bool = False) -> EngineCommand:
        """`queue ARGS`: `list --json` (succeeded(dict), with expect_json), `move RUN --to K`, `pause`,
        `resume`, `cancel RUN`."""
        return self._command(["queue", *args], action, expect_json)

    def queue_stamp(self) -> tuple | None:
        """When this workspace's queue files last changed, or None where it has no queue: asking the
        engine costs a process, so the studio asks again only when this changes."""
        folder = self.workspace / "queue"
        stamps = []
        for name in ("queue.sqlite", "queue.sqlite-wal"):
            try:
                stat = (folder / name).stat()
            except OSError:
                continue
            stamps.append((name, stat.st_mtime_ns, stat.st_size))
        return tuple(stamps) or None

    def attach(self, run_id: str, from_seq: int = 0, follow: bool = True) -> EventStream:
        args = ["attach", run_id, "--from-seq", str(from_seq), "--json"] + (["--follow"] if follow else [])
        stream = EventStream(run_id, from_seq, *self._process_args(args), parent=self)
        return self._keep(stream, stream.ended)

    def _command(self, args: list[str], action: str, expect_json: bool = True) -> EngineCommand:
        command = EngineCommand(*self._process_args(args), action=action, expect_json=expect_json, parent=self)
        return self._keep(command, command.done)

    def _process_args(self, args: list[str]) -> tuple[str, list[str], Path, QProcessEnvironment]:
        argv = self.command_line(*args)
        self.workspace.mkdir(parents=True, exist_ok=True)
        return argv[0], argv[1:], self.workspace, engine_environment(self.extra_env)

    def _keep(self, handle: _EngineProcess, done_signal: Any) -> Any:
        # The engine owns its handles until they end, so a caller may drop its reference.
        self._live.add(handle)
        done_signal.connect(lambda *_: self._release(handle))
        return handle

    def _release(self, handle: _EngineProcess) -> None:
        # Outside the signal that ended it: hand the handle to Python's ownership, so it is freed
        # once its caller lets go (deleteLater on a Python-owned wrapper crashes PySide).
        def drop() -> None:
            self._live.discard(handle)
            handle.setParent(None)
        QTimer.singleShot(0, self, drop)

    def stop_all(self, wait_ms: int = 0) -> None:
        """Stop every process this engine started from the GUI (attach readers, pending commands).

        Detached runs are separate sessions and keep going. `wait_ms` > 0 waits that long for each
        to end (only when quitting: it blocks)."""
        for handle in list(self._live):
            handle.stop()
        if wait_ms > 0:
            for handle in list(self._live):
                if handle.process.state() != QProcess.ProcessState.NotRunning and \
                        not handle.process.waitForFinished(wait_ms):
                    handle.process.kill()
                    handle.process.waitForFinished(wait_ms)

    # --------------------------------------------------- the run directories (local files only)
    def run_directory(self, run_id: str) -> RunDirectory | None:
        try:
            return find_run(self.workspace, run_id)
        except LookupError:
            return None

    def scheduled(self, run_id: str) -> bool:
        """Whether the run was submitted to Slurm (`run --slurm` writes its batch script, slurm.sh, into
        the run folder): its job's state is then worth asking `show` for."""
        run = self.run_directory(run_id)
        return run is not None and (run.path / "slurm.sh").is_file()

    def run_status(self, run_id: str) -> RunStatus | None:
        """status.json of the run, with a run whose process is gone reported as failed."""
        run = self.run_directory(run_id)
        return run.effective_status() if run else None

    def stored_events(self, run_id: str, from_seq: int = 0) -> Iterator[Event]:
        """The run's events.jsonl from `from_seq` on (what happened while nobody was attached)."""
        run = self.run_directory(run_id)
        return read_events(run.events_path, from_seq) if run else iter(())
