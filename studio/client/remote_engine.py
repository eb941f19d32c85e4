"""An engine on another machine, reached through the system's `ssh` (see `studio.client.ssh`).

`RemoteEngine` has the interface the run tracker uses for `LocalEngine` (name, workspace,
extra_env, command_line, start_run, resume, cancel, attach, run_status, stored_events, stop_all),
so remote runs are launched, followed and re-attached the same way:

- `start_run(SPEC)` sends the spec file on ssh's stdin to `<remote workspace>/specs/` and runs
  `run SPEC --detach` there in the same ssh command: the run survives the connection.
- `attach` runs `attach RUN --from-seq N --follow --json` remotely; its stdout is the event protocol,
  read by the same `EventReader` as locally. The tracker stores every event with its seq and
  re-attaches from the last stored seq + 1, so a dropped connection leaves no gap and no duplicate.
- The run folders are remote: `stored_events` yields nothing and `run_status` answers from how the
  last attach ended (ssh's exit 255 or a killed ssh: the connection dropped, the run is presumed
  alive and the tracker retries with backoff; exit 1: the remote attach saw the engine gone).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from engine import __version__ as STUDIO_ENGINE_VERSION
from engine.protocol import PROTOCOL_VERSION, Event
from engine.rundir import RunStatus
from studio.client import ssh
from studio.models.engine_schema import EngineSchema, own_schema, schema_differences
from studio.client.engine import (
    EngineCommand,
    EventStream,
    ProcessExit,
    engine_environment,
)

CONNECTION_LOST = "connection lost"


def connection_dropped(exit: ProcessExit) -> bool:
    """ssh itself ended (dropped connection, killed client or master), not the remote command."""
    return exit.crashed or exit.code == ssh.SSH_FAILED


def _ssh_sentence(exit: ProcessExit, host: str, python: str, action: str) -> str | None:
    """A sentence for failures that are ssh's or the remote shell's, not the engine's."""
    if exit.crashed and exit.stderr.startswith("Could not start"):
        return (f"Could not {action}: the OpenSSH client (`ssh`) could not be started. Install it "
                "(OpenSSH comes with macOS, Linux and Windows 10+) and make sure it is on PATH.")
    if exit.code == ssh.SSH_FAILED:
        return f"Could not {action}: " + ssh.explain_ssh_failure(exit.stderr, host)
    if exit.code == 127 or "No module named engine" in exit.stderr:
        return (f"Could not {action}: {python} on {host} cannot run the engine. Check the profile's remote "
                f"Python, or install the engine there: `ssh {host} {python} -m pip install -U \"atelier[engine]\"`.")
    return None


class RemoteCommand(EngineCommand):
    """An engine command over ssh: failures of ssh itself become sentences about the connection."""

    def __init__(self, *args: Any, host: str, python: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host, self.python = host, python

    def _failure_sentence(self, exit: ProcessExit) -> str:
        return _ssh_sentence(exit, self.host, self.python, self.action) or super()._failure_sentence(exit)


class RemoteEventStream(EventStream):
    """`attach` over ssh. A dropped connection is not an error for the user (the tracker re-attaches);
    a refusal that retrying cannot fix (host key, login) is."""

    def __init__(self, *args: Any, host: str, python: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host, self.python = host, python

    def _on_exit(self, exit: ProcessExit) -> None:
        self._deliver(self.reader.flush())
        if not self._cancelled and not self.mismatch and exit.code not in (0, 1):
            transient = connection_dropped(exit) and not any(
                s in exit.stderr for s in ("Host key verification failed", "Permission denied"))
            if not transient:
                self.error.emit(_ssh_sentence(exit, self.host, self.python, f"follow run {self.run_id}")
                                or f"Could not follow run {self.run_id} on {self.host}: exit code {exit.code}."
                                + (f"\n{exit.stderr.strip()[-2000:]}" if exit.stderr.strip() else ""))
        self.ended.emit(exit)


class RemoteEngine(QObject):
    """The engine of an SSH profile: `ssh HOST -- PYTHON -m engine.cli --workspace WS ...`."""

    is_remote = True

    def __init__(self, name: str, target: ssh.SshTarget, python: str, workspace: str,
                 env: dict[str, str] | None = None, parent: QObject | None = None, slurm=None,
                 node_hosts: tuple[str, ...] = (), node_ssh_config: str = ""):
        super().__init__(parent)
        self.name = name
        # A Slurm login host (engine.slurm.SlurmOptions): runs are submitted with sbatch, not detached.
        self.slurm = slurm
        # The hosts of a multi-node run started here (as this host reaches them), and the ssh config naming
        # them there: the wizard writes them into the spec's resources.
        self.node_hosts = tuple(node_hosts)
        self.node_ssh_config = node_ssh_config
        self.target = target
        self.python = python
        self.workspace = workspace  # a path on the remote machine (a string: never resolved here)
        self.extra_env = dict(env or {})
        self._live: set[EngineCommand | EventStream] = set()
        self._last_exit: dict[str, ProcessExit] = {}

    # ------------------------------------------------------------------------------ commands
    def remote_command(self, *args: str) -> str:
        return ssh.engine_command(self.python, self.workspace, list(args), self.extra_env)

    def command_line(self, *args: str) -> list[str]:
        """The local argv (ssh …) that runs `studio-engine --workspace WS *args` on the host."""
        return self.target.argv(self.remote_command(*args))

    def display_command(self, *args: str) -> str:
        import shlex
        return shlex.join(["ssh", self.target.host, "--",
                           ssh.remote_join(["studio-engine", "--workspace", self.workspace, *args])])

    def remote_spec_path(self, spec_path: str | os.PathLike) -> str:
        return str(PurePosixPath(self.workspace) / "specs" / Path(spec_path).name)

    def start_run(self, spec_path: str | os.PathLike) -> EngineCommand:
        """Send the spec, then `run SPEC --detach` on the host; succeeded(dict(run_id, run_dir, pid)).
        When the spec names local files or folders, they are copied to the host first and the spec sent
        names their copies (a `SyncedStart`, with the same signals; see `studio.client.sync`)."""
        from studio.client.sync import local_inputs
        from studio.client.transfers import SyncedStart

        spec = _read_spec(Path(spec_path))
        if isinstance(spec, dict) and local_inputs(spec):
            start = SyncedStart(self, Path(spec_path), spec, self._start_plain, parent=self)
            return self._keep(start, start.done)
        return self._start_plain(spec_path)

    def _start_plain(self, spec_path: str | os.PathLike) -> EngineCommand:
        remote = self.remote_spec_path(spec_path)
        argv = self.target.argv(ssh.upload_then(remote, self.remote_command("run", remote, *self.run_arguments())))
        return self._command(argv, "start the run", stdin=Path(spec_path))

    def run_arguments(self) -> list[str]:
        """What `run SPEC` gets on this engine: `--detach`, or `--slurm` and the profile's options."""
        if self.slurm is None:
            return ["--detach"]
        return ["--slurm", *(f"--{name}={value}" for name, value in (("partition", self.slurm.partition),
                                                                     ("account", self.slurm.account),
                                                                     ("time", self.slurm.time)) if value)]

    def resume(self, run_id: str) -> EngineCommand:
        return self._command(self.command_line("resume", run_id, "--detach"), f"resume run {run_id}")

    def schema(self) -> EngineCommand:
        """`schema` on the host: the job specs that engine runs; succeeded(text)."""
        return self._command(self.command_line("schema"), f"read the job specs of the engine on {self.target.host}",
                             expect_json=False)

    def validate(self, spec_path: str | os.PathLike) -> EngineCommand:
        """Send the spec, then `validate SPEC` on the host (see `LocalEngine.validate`)."""
        remote = self.remote_spec_path(spec_path)
        argv = self.target.argv(ssh.upload_then(remote, self.remote_command("validate", remote)))
        return self._command(argv, f"check the spec on {self.target.host}", expect_json=False, stdin=Path(spec_path))

    def cancel(self, run_id: str, force: bool = False) -> EngineCommand:
        args = ["cancel", run_id] + (["--force"] if force else [])
        return self._command(self.command_line(*args), f"stop run {run_id}", expect_json=False)

    def list_runs(self) -> EngineCommand:
        return self._command(self.command_line("list", "--json"), "list the runs")

    def queue(self, *args: str, action: str, expect_json: bool = False) -> EngineCommand:
        """`queue ARGS` on the host (see `LocalEngine.queue`)."""
        return self._command(self.command_line("queue", *args), f"{action} on {self.target.host}", expect_json)

    def show(self, run_id: str) -> EngineCommand:
        return self._command(self.command_line("show", run_id, "--json"), f"show run {run_id}")

    def doctor(self) -> EngineCommand:
        return self._command(self.command_line("doctor", "--json"), f"test the engine on {self.target.host}")

    def attach(self, run_id: str, from_seq: int = 0, follow: bool = True) -> EventStream:
        args = ["attach", run_id, "--from-seq", str(from_seq), "--json"] + (["--follow"] if follow else [])
        argv = self.command_line(*args)
        stream = RemoteEventStream(run_id, from_seq, argv[0], argv[1:], Path.home(), engine_environment(),
                                   host=self.target.host, python=self.python, parent=self)
        stream.process.setStandardInputFile(QProcess.nullDevice())
        stream.ended.connect(lambda exit: self._last_exit.__setitem__(run_id, exit))
        return self._keep(stream, stream.ended)

    def _command(self, argv: list[str], action: str, expect_json: bool = True,
                 stdin: Path | None = None) -> EngineCommand:
        command = RemoteCommand(argv[0], argv[1:], Path.home(), engine_environment(), action=action,
                                expect_json=expect_json, host=self.target.host, python=self.python, parent=self)
        command.process.setStandardInputFile(str(stdin) if stdin else QProcess.nullDevice())
        return self._keep(command, command.done)

    def _keep(self, handle: Any, done_signal: Any) -> Any:
        self._live.add(handle)
        done_signal.connect(lambda *_: QTimer.singleShot(0, self, lambda: self._release(handle)))
        return handle

    def _release(self, handle: Any) -> None:
        self._live.discard(handle)
        handle.setParent(None)

    def stop_all(self, wait_ms: int = 0) -> None:
        """Stop the local ssh processes (attach readers, pending commands); the remote runs go on."""
        for handle in list(self._live):
            handle.stop()
        if wait_ms > 0:
            for handle in list(self._live):
                if getattr(handle, "process", None) is None:  # a SyncedStart: its processes were stopped
                    continue
                if handle.process.state() != QProcess.ProcessState.NotRunning and \
                        not handle.process.waitForFinished(wait_ms):
                    handle.process.kill()
                    handle.process.waitForFinished(wait_ms)

    # ------------------------------------------------------- the run folders are on the host
    def run_directory(self, run_id: str) -> None:
        return None

    def scheduled(self, run_id: str) -> bool:
        """A Slurm profile submits every run it starts (the folders are remote: nothing to look at)."""
        return self.slurm is not None

    def run_status(self, run_id: str) -> RunStatus | None:
        """What the last attach said: alive unless the remote attach itself reported the engine gone
        (exit 1) or the run over (exit 0). Never attached, or the connection dropped: presumed alive,
        so the tracker (re-)attaches and the remote engine answers."""
        exit = self._last_exit.get(run_id)
        if exit is None or exit.code not in (0, 1) or exit.crashed:
            return RunStatus(state="running", host=self.target.host)
        return RunStatus(state="completed" if exit.code == 0 else "failed", host=self.target.host)

    def stored_events(self, run_id: str, from_seq: int = 0) -> Iterator[Event]:
        return iter(())


def _read_spec(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # the engine says what is wrong with it


# ------------------------------------------------------------------------------ test connection
def version_problems(report: dict, host: str, python: str) -> list[str]:
    """What stops this studio from using the engine that `doctor --json` described, with the fix."""
    problems = []
    upgrade = f"ssh {host} {python} -m pip install -U \"atelier[engine]=={STUDIO_ENGINE_VERSION}\""
    remote_protocol = report.get("protocol_version")
    if remote_protocol != PROTOCOL_VERSION:
        older = isinstance(remote_protocol, int) and remote_protocol < PROTOCOL_VERSION
        problems.append(
            f"The engine on {host} speaks event protocol v{remote_protocol}, this studio v{PROTOCOL_VERSION}: "
            + (f"the engine is too old. Upgrade it: `{upgrade}`." if older else
               "the studio is too old for it. Upgrade the studio, or install the matching engine there: "
               f"`{upgrade}`."))
    remote_version = report.get("engine_version")
    if remote_version != STUDIO_ENGINE_VERSION and not problems:
        problems.append(f"The engine on {host} is version {remote_version}, this studio {STUDIO_ENGINE_VERSION}. "
                        f"They speak the same protocol, so runs work; to match them: `{upgrade}`.")
    return problems


def schema_warning(report: dict, theirs: EngineSchema, host: str) -> str:
    """What the version check says of an engine whose job specs are not this studio's."""
    ours = own_schema()
    if not report.get("schema_hash"):
        head = (f"The engine on {host} does not report a schema hash (it is older than this studio) and accepts "
                "other job specs")
    else:
        head = (f"The engine on {host} accepts other job specs than this studio (schema {theirs.hash[:12]}, "
                f"this studio's {ours.hash[:12]})")
    differences = schema_differences(ours, theirs, f"the engine on {host}")
    return (head + ". The wizards build their forms from the engine's schema and the engine checks each spec "
            "before it runs. What differs:\n" + "\n".join(f"• {d}" for d in differences))


@dataclass
class ConnectionResult:
    """What "Test connection" found. `ok`: the engine answered and speaks our protocol."""

    ok: bool
    message: str
    report: dict | None = None
    warnings: list[str] = field(default_factory=list)
    host_keys: list[ssh.HostKey] = field(default_factory=list)  # offered for acceptance when unknown
    known_hosts: Path | None = None  # where accepted keys go

    def with_warning(self, warning: str) -> ConnectionResult:
        self.warnings.append(warning)
        return self


class ConnectionTest(QObject):
    """Runs `doctor --json` on the host; on an unknown host key, reads the key with `ssh-keyscan` so the
    user can check its fingerprint and accept it (`ssh.accept_host_keys`). Signal: `finished(result)`."""

    finished = Signal(object)

    def __init__(self, engine: RemoteEngine, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = engine
        self.result: ConnectionResult | None = None
        self.command = engine.doctor()
        self.schema_command: EngineCommand | None = None
        self.command.succeeded.connect(self._answered)
        self.command.failed.connect(self._failed)
        self._scan: QProcess | None = None

    def _answered(self, report: Any) -> None:
        if not isinstance(report, dict):
            return self._finish(ConnectionResult(False, f"The engine on {self.engine.target.host} answered "
                                                 f"something unexpected: {json.dumps(report)[:200]}"))
        problems = version_problems(report, self.engine.target.host, self.engine.python)
        fatal = report.get("protocol_version") != PROTOCOL_VERSION
        message = (problems[0] if fatal else
                   f"Connected to {report.get('host', self.engine.target.host)}: engine {report.get('engine_version')}, "
                   f"Python {report.get('python')}, workspace {report.get('workspace')}.")
        result = ConnectionResult(not fatal, message, report, warnings=[] if fatal else problems)
        if fatal or report.get("schema_hash") == own_schema().hash:
            return self._finish(result)
        # Its specs are not this studio's: say exactly how, from its own schema.
        self.schema_command = self.engine.schema()
        self.schema_command.succeeded.connect(lambda text: self._schema_read(result, text))
        self.schema_command.failed.connect(lambda error: self._finish(result.with_warning(
            f"The engine on {self.engine.target.host} accepts other job specs than this studio, and its schema "
            f"could not be read: {error}")))

    def _schema_read(self, result: ConnectionResult, text: Any) -> None:
        try:
            theirs = EngineSchema(text)
        except (TypeError, ValueError):
            return self._finish(result.with_warning(f"The engine on {self.engine.target.host} answered `schema` "
                                                    "with something that is not a JSON schema."))
        self._finish(result.with_warning(schema_warning(result.report or {}, theirs, self.engine.target.host)))

    def _failed(self, message: str) -> None:
        stderr = self.command.exit.stderr if self.command.exit else ""
        if not ssh.host_key_unknown(stderr):
            return self._finish(ConnectionResult(False, message))
        try:
            resolved = ssh.resolve(self.engine.target)
        except (RuntimeError, OSError, ValueError) as exc:
            return self._finish(ConnectionResult(False, f"{message}\n{exc}"))
        self._scan = QProcess(self)
        argv = ssh.keyscan_argv(resolved)
        self._scan.setProgram(argv[0])
        self._scan.setArguments(argv[1:])
        self._scan.finished.connect(lambda *_: self._scanned(message, resolved))
        self._scan.errorOccurred.connect(lambda error: error == QProcess.ProcessError.FailedToStart and
                                         self._finish(ConnectionResult(False, f"{message}\n(ssh-keyscan is missing.)")))
        self._scan.start()

    def _scanned(self, message: str, resolved: ssh.ResolvedHost) -> None:
        keys = ssh.parse_keyscan(bytes(self._scan.readAllStandardOutput()).decode("utf-8", "replace"))
        if not keys:
            message += f"\nssh-keyscan could not read the key of {resolved.hostname}:{resolved.port}."
        self._finish(ConnectionResult(False, message, host_keys=keys, known_hosts=resolved.known_hosts))

    def _finish(self, result: ConnectionResult) -> None:
        if self.result is None:
            self.result = result
            self.finished.emit(result)
