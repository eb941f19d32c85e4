"""Runs one job inside the engine process: events, status, log capture, signals, failures.

The job recipes in engine/jobs/ know nothing of this plumbing: they get a JobContext, emit events
through it, call `check_cancelled()` between stages, and return a summary dict. Everything that
can go wrong ends as a `finished` event (DESIGN §3), never as a bare traceback on the terminal.
"""

from __future__ import annotations

import importlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.detached import accept_stop_signals
from engine.errors import ResourceError, UserError, disk_full_error
from engine.kinds import KINDS
from engine.launch import engine_identity
from engine.library_loading import loading_libraries
from engine.protocol import Event, EventWriter
from engine.rundir import RunDirectory, RunStatus
from engine.specs import with_workspace_paths

HEARTBEAT_SECONDS = float(os.environ.get("ATELIER_HEARTBEAT_S", "5"))
EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 130}

log = logging.getLogger("engine")


class Cancelled(Exception):
    """Raised by JobContext.check_cancelled when the user asked the run to stop."""


@dataclass
class JobContext:
    spec: object
    run: RunDirectory
    events: EventWriter
    resume_from: Path | None = None
    resumed: bool = False  # started by `resume`: a kind that keeps its own state (a sweep) carries on from it
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    step: int = 0
    primary: bool = True  # rank 0 of a multi-process run (or the only process): the one that reports

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise Cancelled()

    def update_status(self, step: int | None = None) -> None:
        if step is not None:
            self.step = step
        if not self.primary:
            return
        pid, started, host = engine_identity()
        self.run.write_status(RunStatus(
            state="running", pid=pid, pid_started=started, host=host, last_seq=self.events.next_seq - 1,
            kind=self.spec.kind, name=self.spec.name, step=self.step))


class ProcessOutput:
    """Keeps fd 1 for events: whatever libraries print (to fd 1 or 2) goes to engine.log, and to the
    original stderr too when `echo` is set. Returns the stream that events are written to."""

    def __init__(self, log_path: Path, echo: bool):
        self.events_stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        self._log_file = open(log_path, "ab", buffering=0)
        self._saved = (os.dup(1), os.dup(2))
        self._thread: threading.Thread | None = None
        self._stop_tee = threading.Event()
        if echo:
            read_end, write_end = os.pipe()
            original_stderr = os.dup(2)
            self._thread = threading.Thread(target=self._tee, args=(read_end, original_stderr), daemon=True)
            self._thread.start()
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.close(write_end)
        else:
            os.dup2(self._log_file.fileno(), 1)
            os.dup2(self._log_file.fileno(), 2)
        sys.stdout = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", encoding="utf-8", buffering=1)

    def _tee(self, read_end: int, original_stderr: int) -> None:
        # Not "read until EOF": a child process (multiprocessing's resource tracker, a data loader worker)
        # can hold the pipe's write end after the run ends, and EOF would wait for it. Once the run has
        # restored its descriptors, what is already in the pipe is drained and the thread stops.
        while True:
            ready, _, _ = select.select([read_end], [], [], 0.1)
            if not ready:
                if self._stop_tee.is_set():
                    break
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            # Neither a full disk (engine.log) nor a closed terminal may stop this thread: the pipe would
            # fill and every write to stdout or stderr in the run would block.
            for fd in (self._log_file.fileno(), original_stderr):
                try:
                    os.write(fd, chunk)
                except OSError:
                    pass
        os.close(read_end)

    def restore(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
                stream.close()
            except OSError:
                pass
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        if self._thread is not None:
            self._stop_tee.set()
            self._thread.join(timeout=5)


def _configure_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Libraries (transformers) keep handlers of their own, bound to the stderr of when they were set up;
    # a later run in the same process (the demo's stages) closed that stream: point them at this run's.
    for logger in logging.Logger.manager.loggerDict.values():
        for other in getattr(logger, "handlers", ()):
            if type(other) is logging.StreamHandler and getattr(other.stream, "closed", False):
                other.stream = sys.stderr  # not setStream: it flushes the closed stream first
                if "flush" in vars(other):  # transformers binds flush to the stream it was made with
                    other.flush = sys.stderr.flush


def _heartbeat(ctx: JobContext, stop: threading.Event, lock: threading.Lock, outcome: dict) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        with lock:  # the finished event's lock: no heartbeat may follow `finished`
            if outcome:
                return
            try:
                ctx.events.heartbeat()
                ctx.update_status()
            except OSError as e:  # a full disk: the job's own writes fail too, and say so
                log.warning("heartbeat not written: %s", e)


def _install_signal_handlers(ctx: JobContext, finish: Callable[..., None]) -> None:
    # A signal handler runs between bytecodes of the main thread, possibly while it holds the event
    # writer's lock: so the handler only sets a flag and leaves any writing to a thread.
    def on_signal(signum: int, _frame) -> None:
        if not ctx.cancel_requested.is_set():
            ctx.cancel_requested.set()
            threading.Thread(target=ctx.events.log, args=(
                "warning", "Cancel requested: saving a checkpoint, then stopping. Cancel again to stop at once."),
                daemon=True).start()
        else:
            def force() -> None:
                finish("cancelled", {"forced": True, "step": ctx.step})
                os._exit(EXIT_CODES["cancelled"])
            threading.Thread(target=force, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    accept_stop_signals()


def _describe_failure(exc: BaseException, where: Path | None = None) -> dict:
    """The `error` of a failed run's `finished` event: a user error as it is; a full disk or memory as a
    resource error with what to do; anything else as what it is — a bug, with its traceback in engine.log."""
    if not isinstance(exc, UserError):
        exc = disk_full_error(exc, str(where) if where else None) or exc
    if isinstance(exc, UserError):
        return {"type": exc.type, "message": exc.message, "hint": exc.hint}
    text = str(exc).lower()
    if (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text):
        e = ResourceError(f"Out of memory: {exc}".strip(": "),
                          "Lower train.batch_size (raise train.gradient_accumulation to keep the effective batch), "
                          "shorten model.context_length, or turn on train.gradient_checkpointing.")
        return {"type": "out_of_memory", "message": e.message, "hint": e.hint}
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__,
            "hint": "This looks like a bug in the engine; the traceback is in engine.log. "
                    "Please report it with that file."}


def execute(run: RunDirectory, spec, live_sinks: list[Callable[[Event], None]] | None = None, *,
            resume: bool = False, echo_stderr: bool = True,
            sink_factory: Callable[[object], Callable[[Event], None]] | None = None) -> int:
    """Run `spec` in `run` in this process and return the exit code (0 completed, 1 failed, 130 cancelled).

    `sink_factory` receives the protected events stream (the real stdout) and returns a live sink;
    `live_sinks` are added as they are.
    """
    output = ProcessOutput(run.log_path, echo=echo_stderr)
    _configure_logging()
    sinks = list(live_sinks or [])
    if sink_factory is not None:
        sinks.insert(0, sink_factory(output.events_stream))
    from engine.launch import rank
    primary = rank() == 0  # the other ranks of a torchrun/deepspeed launch train silently
    events = EventWriter(run.events_path, sinks, workspace=run.workspace) if primary else EventWriter(None, [])
    resume_from = run.last_checkpoint() if resume else None
    spec = with_workspace_paths(spec, run.workspace)
    ctx = JobContext(spec=spec, run=run, events=events, resume_from=resume_from, resumed=resume, primary=primary)
    finished_lock = threading.Lock()
    outcome: dict = {}

    def finish(status: str, summary: dict, error: dict | None = None) -> None:
        with finished_lock:  # exactly one finished event, whichever thread gets here first
            if outcome:
                return
            outcome["status"] = status
            try:
                events.finished(status, summary, error)
            except OSError as e:  # a full disk: the live readers have it; the status below says it too
                log.error("the finished event could not be stored: %s", e)
            if not primary:
                return
            pid, started, host = engine_identity()
            try:
                run.write_status(RunStatus(state=status, pid=pid, pid_started=started, host=host,
                                           last_seq=events.next_seq - 1, kind=spec.kind, name=spec.name,
                                           step=ctx.step))
            except OSError as e:
                log.error("status.json could not be written: %s", e)

    _install_signal_handlers(ctx, finish)
    log.info("run %s (%s) starting in pid %d, rank %d of %s", run.run_id, spec.kind, os.getpid(), rank(),
             os.environ.get("WORLD_SIZE", "1"))
    stop_heartbeat = threading.Event()
    started = time.time()
    try:
        ctx.update_status()
        with loading_libraries():
            from engine.devices import describe_devices

        events.started(run_id=run.run_id, spec=spec.model_dump(mode="json"), host=socket.gethostname(),
                       pid=os.getpid(), engine_version=__version__, devices=describe_devices(),
                       resumed_from_step=_checkpoint_step(resume_from) if resume else None)
        if resume and resume_from is None and KINDS[spec.kind].trains:
            events.log("warning", "No checkpoint to resume from: the run starts again from step 0.")
        if primary:
            threading.Thread(target=_heartbeat, args=(ctx, stop_heartbeat, finished_lock, outcome),
                             daemon=True).start()
        with loading_libraries():
            job = importlib.import_module(KINDS[spec.kind].job)
        summary = job.run(ctx)
        summary["duration_s"] = round(time.time() - started, 1)
        finish("completed", summary)  # a job that stops early on cancel raises Cancelled
    except Cancelled:
        finish("cancelled", {"step": ctx.step, "duration_s": round(time.time() - started, 1)})
    except BaseException as exc:  # every failure becomes an event; the traceback goes to engine.log
        if isinstance(exc, UserError):
            log.error("%s (%s)", exc.message, exc.hint)
        else:
            log.error("run failed:\n%s", traceback.format_exc())
        finish("failed", {"step": ctx.step}, _lost_node(run, spec, exc, ctx.step) or _describe_failure(exc, run.path))
    finally:
        stop_heartbeat.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        events.close()
        output.restore()
    return EXIT_CODES[outcome["status"]]


def _lost_node(run: RunDirectory, spec, exc: BaseException, step: int) -> dict | None:
    """On several hosts, a collective that failed because a node went away: the error names that node."""
    from engine.multinode import lost_connection, lost_node_message, multinode, wait_for_lost_node

    if not multinode(spec) or not lost_connection(exc):
        return None
    node = wait_for_lost_node(run)
    if node is None:
        return None
    message, hint = lost_node_message(node, spec.resources.nodes, run, step)
    return {"type": "node_lost", "message": message, "hint": hint}


def _checkpoint_step(path: Path | None) -> int | None:
    return int(path.name.rsplit("-", 1)[1]) if path else None
