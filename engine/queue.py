"""The job queue of one engine: runs wait with the devices they need and start as devices free up.

The state lives on the engine's side, in the workspace (`queue/queue.sqlite`), never in the studio: a
small dispatcher process (`studio-engine queue _dispatch`, started detached by the queue commands when
there is work and none is running) starts the waiting runs in order and exits once nothing waits or
runs. It holds `queue/dispatcher.lock` while alive, so there is one per workspace; killed or after a
reboot, the next queue command starts another, which reads the state again and picks up the runs that
were started before (their engines run in sessions of their own and do not need the dispatcher).

A queued run is an ordinary run folder from the start (state `queued`): `list`, `show` and the monitor
see it; the dispatcher starts it the way `run --detach` does.

Light: the standard library and the contract modules (the studio's jobs dock reads `queue list --json`
through the engine, but the CLI answers it without torch).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import UserError
from engine.rundir import RunDirectory, RunStatus, try_lock

SLOTS_ENV = "ATELIER_QUEUE_SLOTS"
POLL_SECONDS = float(os.environ.get("ATELIER_QUEUE_POLL_S", "0.5"))
WAITING, RUNNING = "waiting", "running"

log = logging.getLogger(__name__)


@dataclass
class QueuedRun:
    run_id: str
    position: int  # 1-based among the waiting runs; 0 once running
    gpus: int  # slots it takes (see `slots_needed`)
    state: str  # waiting | running
    added: float
    started: float | None = None
    devices: str = ""  # the CUDA devices it was given, as CUDA_VISIBLE_DEVICES lists them

    def to_json(self) -> dict:
        return asdict(self)


def engine_slots() -> int:
    """How many devices this engine's queue hands out: $ATELIER_QUEUE_SLOTS, else the GPUs `nvidia-smi`
    lists (within CUDA_VISIBLE_DEVICES), else 1 — an engine without GPUs runs one job at a time."""
    if os.environ.get(SLOTS_ENV):
        try:
            return max(1, int(os.environ[SLOTS_ENV]))
        except ValueError:
            raise UserError(f"{SLOTS_ENV}={os.environ[SLOTS_ENV]!r} is not a whole number.",
                            f"Set {SLOTS_ENV} to how many GPUs the queue may use, or unset it.") from None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(1, len([d for d in visible.split(",") if d.strip()]))
    # nvidia-smi rather than torch: the queue commands answer without the training stack.
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            return max(1, sum(1 for line in listed.splitlines() if line.startswith("GPU ")))
    return 1


def has_gpus() -> bool:
    return bool(shutil.which("nvidia-smi")) and os.environ.get("CUDA_VISIBLE_DEVICES") != ""


def slots_needed(spec) -> int:
    """The slots a run of `spec` takes: a kind that only coordinates other runs (a sweep) none; a spec
    with `resources.gpus` that many on each of its nodes; any other kind one."""
    from engine.kinds import KINDS

    if KINDS[spec.kind].coordinates:
        return 0
    resources = getattr(spec, "resources", None)
    gpus = getattr(resources, "gpus", None)
    if isinstance(gpus, int):
        return gpus * max(1, getattr(resources, "nodes", 1) or 1)
    return 1


class JobQueue:
    """The queue's state in `<workspace>/queue/queue.sqlite`; every change is one IMMEDIATE transaction
    (SQLite's own lock), so the CLI, the dispatcher and the studio can change it at once."""

    def __init__(self, workspace: Path):
        self.workspace = Path(workspace)
        self.folder = self.workspace / "queue"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.folder / "queue.sqlite", timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs (run_id TEXT PRIMARY KEY, position REAL NOT NULL, "
                        "gpus INTEGER NOT NULL, state TEXT NOT NULL, added REAL NOT NULL, started REAL, "
                        "devices TEXT NOT NULL DEFAULT '')")
        self.db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT)")

    lock_path = property(lambda self: self.folder / "dispatcher.lock")
    log_path = property(lambda self: self.folder / "dispatcher.log")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def runs(self) -> list[QueuedRun]:
        """Running runs first (by start), then the waiting ones in the order they start."""
        rows = self.db.execute("SELECT * FROM jobs ORDER BY state = 'waiting', position, started").fetchall()
        waiting = 0
        found = []
        for row in rows:
            if row["state"] == WAITING:
                waiting += 1
            found.append(QueuedRun(row["run_id"], waiting if row["state"] == WAITING else 0, row["gpus"],
                                   row["state"], row["added"], row["started"], row["devices"]))
        return found

    def get(self, run_id: str) -> QueuedRun | None:
        return next((r for r in self.runs() if r.run_id == run_id), None)

    @property
    def paused(self) -> bool:
        row = self.db.execute("SELECT value FROM settings WHERE key = 'paused'").fetchone()
        return bool(row and row["value"] == "1")

    def set_paused(self, paused: bool) -> None:
        self._set("paused", "1" if paused else "0")

    def _set(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))

    def dispatcher_pid(self) -> int | None:
        """The pid of the dispatcher serving the queue now, or None when none is."""
        row = self.db.execute("SELECT value FROM settings WHERE key = 'dispatcher'").fetchone()
        return int(row["value"]) if row and dispatcher_running(self) else None

    def add(self, run_id: str, gpus: int) -> int:
        """Put a run at the end of the queue; its position among the waiting runs."""
        with self.transaction() as db:
            last = db.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()[0]
            db.execute("INSERT INTO jobs (run_id, position, gpus, state, added) VALUES (?, ?, ?, ?, ?)",
                       (run_id, last + 1, gpus, WAITING, time.time()))
        return self.get(run_id).position

    def move(self, run_id: str, to: int) -> int:
        """Move a waiting run to position `to` (1 = next to start; past the end = last); its new position."""
        with self.transaction() as db:
            waiting = [r["run_id"] for r in db.execute(
                "SELECT run_id FROM jobs WHERE state = 'waiting' ORDER BY position")]
            if run_id not in waiting:
                raise self._not_waiting(run_id)
            waiting.remove(run_id)
            waiting.insert(max(0, min(to - 1, len(waiting))), run_id)
            for position, rid in enumerate(waiting, 1):
                db.execute("UPDATE jobs SET position = ? WHERE run_id = ?", (position, rid))
        return waiting.index(run_id) + 1

    def remove(self, run_id: str) -> QueuedRun | None:
        """Take a run out of the queue (waiting or running); what it was, or None when it was not there."""
        with self.transaction() as db:
            found = self.get(run_id)
            db.execute("DELETE FROM jobs WHERE run_id = ?", (run_id,))
        return found

    def _not_waiting(self, run_id: str) -> UserError:
        found = self.get(run_id)
        state = f"it is {found.state}" if found else "it is not in the queue"
        return UserError(f"Run {run_id} is not waiting in the queue: {state}.",
                         "`studio-engine queue list` shows the waiting runs and their positions.")


# --- the dispatcher ---------------------------------------------------------------------------------

def dispatcher_running(queue: JobQueue) -> bool:
    """Whether a dispatcher holds the workspace's dispatcher lock."""
    fd = os.open(queue.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)  # closing drops the lock if this process got it


def ensure_dispatcher(queue: JobQueue) -> int | None:
    """Start a dispatcher when runs wait (and the queue is not paused) or run, and none is alive; its pid."""
    runs = queue.runs()
    if not any(r.state == RUNNING for r in runs) and (queue.paused or not runs):
        return None
    if dispatcher_running(queue):
        return None
    command = [sys.executable, "-m", "engine.cli", "--workspace", str(queue.workspace), "queue", "_dispatch"]
    with open(queue.log_path, "ab") as log_file:
        # Its own session: the queue goes on when the terminal or the studio that added a run closes.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                   start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return process.pid


def _finished(run: RunDirectory) -> bool:
    status = run.effective_status()
    return status is None or status.state not in ("queued", "starting", "running")


def dispatch(workspace: Path) -> int:
    """The dispatcher's loop: start waiting runs in order while their slots are free, note the runs that
    ended, and exit once nothing waits (or the queue is paused) and nothing runs. One per workspace."""
    from engine.detached import start_detached

    queue = JobQueue(workspace)
    lock_fd = os.open(queue.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    if not try_lock(lock_fd):
        log.info("another dispatcher serves %s", workspace)
        return 0
    queue._set("dispatcher", str(os.getpid()))
    slots = engine_slots()
    gpus = has_gpus()
    log.info("dispatcher %d serving %s with %d slot(s)", os.getpid(), workspace, slots)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        with queue.transaction() as db:
            runs = queue.runs()
            for job in runs:
                if job.state == RUNNING and _finished(RunDirectory(workspace / "runs" / job.run_id)):
                    db.execute("DELETE FROM jobs WHERE run_id = ?", (job.run_id,))
                    log.info("run %s ended", job.run_id)
            runs = queue.runs()
            busy = {int(d) for r in runs if r.state == RUNNING for d in r.devices.split(",") if d}
            free = slots - sum(r.gpus for r in runs if r.state == RUNNING)
            waiting = [r for r in runs if r.state == WAITING]
            for job in ([] if queue.paused else waiting):
                if job.gpus > free:
                    break  # in order: a later, smaller run does not overtake the first in line
                devices = [d for d in range(slots) if d not in busy][:job.gpus]
                run = RunDirectory(workspace / "runs" / job.run_id)
                try:
                    run_lock = run.lock()
                except UserError:  # started by hand (`resume`) meanwhile: no longer the queue's
                    db.execute("DELETE FROM jobs WHERE run_id = ?", (job.run_id,))
                    continue
                if not run.exists() or (run.read_status() and run.read_status().state != "queued"):
                    run_lock.release()
                    db.execute("DELETE FROM jobs WHERE run_id = ?", (job.run_id,))
                    continue
                shown = ",".join(str(d) for d in devices)
                env = {"CUDA_VISIBLE_DEVICES": shown} if gpus and devices else {}
                pid = start_detached(workspace, run, run_lock, resume=False, env=env)
                db.execute("UPDATE jobs SET state = ?, started = ?, devices = ?, position = 0 WHERE run_id = ?",
                           (RUNNING, time.time(), shown, job.run_id))
                busy.update(devices)
                free -= job.gpus
                log.info("started run %s (pid %d, devices %s)", job.run_id, pid, shown or "-")
            runs = queue.runs()
            idle = not any(r.state == RUNNING for r in runs) and (queue.paused or not runs)
            if idle:
                # Let go of the lock inside the transaction: a run added after it commits finds no
                # dispatcher and starts one; one added before is seen above.
                os.close(lock_fd)
                lock_fd = -1
        if idle:
            log.info("nothing to dispatch: dispatcher %d exits", os.getpid())
            break
        time.sleep(POLL_SECONDS)
    if lock_fd >= 0:
        os.close(lock_fd)
    queue.close()
    return 0


def mark_cancelled(run: RunDirectory) -> None:
    """A queued run taken out before it started: it ends as cancelled, with its one `finished` event."""
    from engine.protocol import EventWriter

    status = run.read_status()
    events = EventWriter(run.events_path)
    events.finished("cancelled", {"step": 0, "queued": True})
    events.close()
    run.write_status(RunStatus(state="cancelled", last_seq=events.next_seq - 1,
                               kind=status.kind if status else "", name=status.name if status else ""))
