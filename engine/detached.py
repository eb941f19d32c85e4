"""Starting a run's engine in the background: its own process and session, surviving whoever started it
(a terminal, an SSH session, the studio, the queue's dispatcher)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.processes import process_start
from engine.rundir import RunDirectory, RunLock, RunStatus


def start_detached(workspace: Path, run: RunDirectory, lock: RunLock, resume: bool,
                   env: dict[str, str] | None = None) -> int:
    """Start `studio-engine _exec RUN` in its own session and return its pid. The run's lock passes to it
    (the descriptor is inherited, so no other engine can take the run in between) and this process lets
    go of its copy. `env` adds to this process's environment."""
    command = [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "_exec", run.run_id,
               "--lock-fd", str(lock.fd)]
    if resume:
        command.append("--resume")
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", **(env or {}))
    with open(run.log_path, "ab") as log_file, signals_held_for_child():
        # Own session: the run survives the terminal (or SSH session, or GUI) that started it.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log_file, start_new_session=True, env=child_env, pass_fds=(lock.fd,))
    lock.release()
    status = run.read_status()
    if status is None or status.state in ("starting", "queued"):  # the child may have said more already
        run.write_status(RunStatus(state="starting", pid=process.pid, pid_started=process_start(process.pid),
                                   kind=status.kind if status else "", name=status.name if status else "",
                                   last_seq=status.last_seq if status else -1, step=status.step if status else None))
    return process.pid


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class signals_held_for_child:
    """The child starts with SIGINT and SIGTERM blocked (a signal mask is inherited across fork and exec):
    a cancel sent while it is still importing stays pending instead of killing it with a traceback and no
    `finished` event, and reaches the run's own handler once `accept_stop_signals` unblocks them."""

    def __enter__(self) -> None:
        self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def __exit__(self, *_) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)


def accept_stop_signals() -> None:
    """Deliver a cancel held since the process started (see `signals_held_for_child`), now that a handler
    is in place."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
