"""The copies of `studio.client.sync`, run with QProcess so the GUI never waits: `InputSync` (the local
inputs of a spec to the host), `SyncedStart` (that, then the launch), `RemoteOutputs` (list a folder on
the host) and `OutputPull` (copy a file or folder back)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from studio.client import ssh
from studio.client.sync import (
    HASH_CHARS,
    HOME_OUTGOING,
    RemoteOutput,
    Upload,
    copy_argv,
    finalize_command,
    listing_command,
    parse_listing,
    parse_probe,
    plan_uploads,
    prepare_command,
    probe_command,
    pull_prepare_command,
    rewrite_spec,
    rsync_available,
    staging_dirs,
)


class _Process(QObject):
    """One local process (an argv list, no shell); `done(code, stdout, stderr)` (code -1: not started)."""

    done = Signal(int, str, str)

    def __init__(self, argv: list[str], parent: QObject | None = None):
        super().__init__(parent)
        self.argv = argv
        self.process = QProcess(self)
        self.process.setProgram(argv[0])
        self.process.setArguments(argv[1:])
        self.process.setStandardInputFile(QProcess.nullDevice())
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._reported = False
        # On the next turn of the event loop: `done` is connected by then, even on a failure to start.
        QTimer.singleShot(0, self, self._start)

    def _start(self) -> None:
        if not self._reported:
            self.process.start()

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        out = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._report(code if status == QProcess.ExitStatus.NormalExit else -1, out, err)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._report(-1, "", f"`{self.argv[0]}` could not be started: {self.process.errorString()}.")

    def _report(self, code: int, out: str, err: str) -> None:
        if not self._reported:
            self._reported = True
            self.done.emit(code, out, err)

    def stop(self) -> None:
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()
        else:
            self._report(-1, "", "stopped")


def _failure(action: str, host: str, code: int, err: str) -> str:
    if code == ssh.SSH_FAILED:
        return f"Could not {action}: " + ssh.explain_ssh_failure(err, host)
    tail = "\n".join(err.strip().splitlines()[-5:])
    return f"Could not {action} (exit code {code})." + (f"\n{tail}" if tail else "")


def legacy_scp_helps(argv: list[str], stderr: str) -> bool:
    """scp (OpenSSH 9+) speaks SFTP, which a server without the sftp subsystem closes at once; its
    legacy protocol (`-O`) still works there (the paths given to scp are safe for either)."""
    return (Path(argv[0]).name == "scp" and "-O" not in argv
            and any(s in stderr for s in ("Connection closed", "subsystem request failed")))


def legacy_scp(argv: list[str]) -> list[str]:
    return [argv[0], "-O", *argv[1:]]


class _Chain(QObject):
    """A sequence of processes: `_run(argv, then)` starts one and calls `then(stdout)` on success; any
    failure ends the chain with `finished(False, sentence)`."""

    finished = Signal(bool, str)
    progress = Signal(str)

    def __init__(self, host: str, parent: QObject | None = None):
        super().__init__(parent)
        self.host = host
        self.error: str | None = None
        self.ended = False
        self._current: _Process | None = None

    def _run(self, argv: list[str], action: str, then: Callable[[str], None]) -> None:
        if self.ended:
            return
        self._current = _Process(argv, self)
        self._current.done.connect(lambda code, out, err: self._step_done(action, then, code, out, err))

    def _step_done(self, action: str, then: Callable[[str], None], code: int, out: str, err: str) -> None:
        if self.ended:
            return
        argv = self._current.argv
        if code != 0 and legacy_scp_helps(argv, err):
            return self._run(legacy_scp(argv), action, then)
        if code != 0:
            return self._finish(False, _failure(action, self.host, code, err))
        try:
            then(out)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            self._finish(False, f"Could not {action}: {exc}")

    def _finish(self, ok: bool, message: str) -> None:
        if not self.ended:
            self.ended = True
            self.error = None if ok else message
            self.finished.emit(ok, message)

    def stop(self) -> None:
        if self._current is not None:
            self._current.stop()
        self._finish(False, "Stopped.")


class _Hashed(QObject):
    done = Signal(object)  # list[Upload] or an OSError


class InputSync(_Chain):
    """Copies the local inputs of `spec` to the engine's host (see the module docstring). After
    `finished(ok, message)`: `uploads`, `copied` (those actually transferred), `tool`, `remote_paths`
    (spec value -> remote path) and `spec_for_host()`."""

    def __init__(self, engine: Any, spec: dict, allow_rsync: bool = True, parent: QObject | None = None):
        super().__init__(engine.target.host, parent)
        self.engine, self.spec, self.allow_rsync = engine, spec, allow_rsync
        self.uploads: list[Upload] = []
        self.copied: list[Upload] = []
        self.tool = ""
        self.remote_paths: dict[str, str] = {}
        self._hashed = _Hashed(self)
        self._hashed.done.connect(self._planned)

    def start(self) -> None:
        self.progress.emit("Hashing the local inputs…")
        threading.Thread(target=self._hash, daemon=True).start()

    def _hash(self) -> None:
        try:
            self._hashed.done.emit(plan_uploads(self.spec))
        except OSError as exc:
            self._hashed.done.emit(exc)

    def spec_for_host(self) -> dict:
        return rewrite_spec(self.spec, self.remote_paths)

    def _planned(self, uploads: Any) -> None:
        if isinstance(uploads, OSError):
            return self._finish(False, f"Could not read a local input: {uploads}")
        self.uploads = uploads
        if not uploads:
            return self._finish(True, "No local inputs to copy.")
        command = probe_command(self.engine.workspace, uploads)
        self._run(self.engine.target.argv(command), f"prepare the inputs on {self.host}", self._probed)

    def _probed(self, out: str) -> None:
        probe = parse_probe(out, self.uploads)
        self.tool = "rsync" if probe.rsync and self.allow_rsync and rsync_available() else "scp"
        self.workspace = probe.workspace
        self.remote_paths = {u.original: u.remote_path(probe.workspace) for u in self.uploads}
        self.copied = [u for u, there in zip(self.uploads, probe.present) if not there]
        if not self.copied:
            return self._finish(True, f"The inputs are already on {self.host}.")
        self.stage_copy, self.stage_shell = staging_dirs(probe.workspace)
        self._run(self.engine.target.argv(prepare_command(self.stage_shell, self.copied)),
                  f"prepare the inputs on {self.host}", lambda _: self._copy(0))

    def _copy(self, index: int) -> None:
        if index == len(self.copied):
            command = finalize_command(self.workspace, self.stage_shell, self.copied)
            return self._run(self.engine.target.argv(command), f"store the inputs on {self.host}",
                             lambda _: self._finish(True, f"Copied {len(self.copied)} input(s) to {self.host} "
                                                          f"with {self.tool}."))
        upload = self.copied[index]
        self.progress.emit(f"Copying {upload.name} to {self.host} ({index + 1}/{len(self.copied)})…")
        argv = copy_argv(self.engine.target, str(upload.local), f"{self.host}:{self.stage_copy}/{upload.key}/",
                         self.tool, upload.local.is_dir())
        self._run(argv, f"copy {upload.local} to {self.host} with {self.tool}", lambda _: self._copy(index + 1))


class SyncedStart(QObject):
    """A remote launch whose spec names local inputs: `InputSync`, then the engine's start with the spec
    rewritten to the remote paths. Has the signals of an `EngineCommand` (succeeded, failed, done) and
    `progress(str)`; `result`, `error`, `sync`."""

    succeeded = Signal(object)
    failed = Signal(str)
    done = Signal()
    progress = Signal(str)

    def __init__(self, engine: Any, spec_path: Path, spec: dict, start: Callable[[Path], Any],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.spec_path, self._start_plain = Path(spec_path), start
        self.result: Any = None
        self.error: str | None = None
        self.command: Any = None
        self.exit = None
        self._folder: str | None = None
        self.sync = InputSync(engine, spec, parent=self)
        self.sync.progress.connect(self.progress)
        self.sync.finished.connect(self._synced)
        self.sync.start()

    @property
    def running(self) -> bool:
        return self.error is None and self.result is None

    def _synced(self, ok: bool, message: str) -> None:
        if not ok:
            return self._end(None, message)
        self.progress.emit(message)
        self._folder = tempfile.mkdtemp(prefix="atelier-spec-")
        sent = Path(self._folder) / self.spec_path.name
        sent.write_text(yaml.safe_dump(self.sync.spec_for_host(), sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
        self.command = self._start_plain(sent)
        self.command.done.connect(lambda: self._end(self.command.result, self.command.error))

    def _end(self, result: Any, error: str | None) -> None:
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self.result, self.error = result, error
        if error is None:
            self.succeeded.emit(result)
        else:
            self.failed.emit(error)
        self.done.emit()

    def stop(self) -> None:
        if self.command is not None:
            self.command.stop()
        elif not self.sync.ended:
            self.sync.stop()


class RemoteOutputs(_Chain):
    """Lists a folder on the host (default: a run's `output/`): `entries` after `finished(True, …)`."""

    def __init__(self, engine: Any, folder: str, parent: QObject | None = None):
        super().__init__(engine.target.host, parent)
        self.entries: list[RemoteOutput] = []
        self._run(engine.target.argv(listing_command(engine.python, folder)), f"list {folder} on {self.host}",
                  self._listed)

    def _listed(self, out: str) -> None:
        self.entries = parse_listing(out)
        self._finish(True, f"{len(self.entries)} output(s) on {self.host}.")


class OutputPull(_Chain):
    """Copies a file or folder of the host (absolute `remote_path`) to `destination` here (replaced once
    the copy is complete). `finished(ok, message)`."""

    def __init__(self, engine: Any, remote_path: str, destination: Path, allow_rsync: bool = True,
                 parent: QObject | None = None):
        super().__init__(engine.target.host, parent)
        self.engine, self.remote_path, self.destination = engine, remote_path, Path(destination).absolute()
        self.allow_rsync = allow_rsync
        self.tool = ""
        self._token = hashlib.sha256(f"{os.getpid()} {remote_path} {id(self)}".encode()).hexdigest()[:HASH_CHARS]
        command, self._source = pull_prepare_command(remote_path, self._token)
        self._staged = self._source != remote_path
        self._run(engine.target.argv(command), f"find {remote_path} on {self.host}", self._prepared)

    def _prepared(self, out: str) -> None:
        lines = out.split()
        if len(lines) < 2 or lines[1] == "missing":
            return self._finish(False, f"{self.remote_path} is not on {self.host} (any more).")
        self.tool = "rsync" if lines[0] == "rsync" and self.allow_rsync and rsync_available() else "scp"
        is_dir = lines[1] == "dir"
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.destination.with_name(f".{self.destination.name}.partial-{self._token}")
        _remove(self._partial)
        source = f"{self.host}:{self._source}" + ("/" if is_dir and self.tool == "rsync" else "")
        local = str(self._partial) + ("/" if is_dir and self.tool == "rsync" else "")
        self.progress.emit(f"Copying {self.remote_path} from {self.host} with {self.tool}…")
        self._run(copy_argv(self.engine.target, source, local, self.tool, is_dir),
                  f"copy {self.remote_path} from {self.host} with {self.tool}", self._copied)

    def _copied(self, _out: str) -> None:
        _remove(self.destination)
        os.replace(self._partial, self.destination)
        if self._staged:
            link = ssh.quote_remote(f"~/{HOME_OUTGOING}/{self._token}")
            _Process(self.engine.target.argv(f"rm -f -- {link}"), self)  # best effort: a dangling link
        self._finish(True, f"Copied to {self.destination}.")

    def _finish(self, ok: bool, message: str) -> None:
        if not ok and getattr(self, "_partial", None) is not None:
            _remove(self._partial)
        super()._finish(ok, message)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
