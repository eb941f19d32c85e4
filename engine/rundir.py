"""Run directories: where a run keeps its spec, events, log, status, checkpoints and outputs.

    <workspace>/runs/<run-id>/
        spec.yaml  events.jsonl  engine.log  status.json  checkpoints/  output/  .lock

One engine process writes a run directory at a time: it holds an exclusive lock on `.lock` for the
run's life (the operating system releases it when the process dies, however it dies). Run ids are
names, never paths, and a run is found by its id, a unique prefix of it, or its folder — literally.

A workspace can move: what a run writes down about files inside it is kept relative to it
(engine/workspace_paths.py).

Imported by the GUI: no heavy imports here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO

from engine.errors import UserError
from engine.processes import process_arguments, process_holds_file, process_start

WORKSPACE_ENV = "ATELIER_WORKSPACE"
# `queued`: made by `studio-engine queue add`, waiting in the engine's queue (engine/queue.py) for devices.
RUN_STATES = ("queued", "starting", "running", "completed", "cancelled", "failed")
ACTIVE_STATES = ("starting", "running")
# Run ids (and the spec names they start with) are file names, never paths: no separator, no "." or
# "..", nothing a shell or a terminal treats specially.
RUN_ID_CHARACTERS = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MAX_RUN_ID_LENGTH = 128
LOCK_NAME = ".lock"
# What a reader loads of a small JSON file a run keeps (status.json, a checkpoint's trainer_state.json):
# a larger one is not what the engine wrote.
MAX_STATUS_BYTES = 1 << 20
MAX_CHECKPOINT_STATE_BYTES = 64 << 20

log = logging.getLogger(__name__)


def default_workspace() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or Path.home() / "atelier").expanduser()


def new_run_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "run"
    return f"{slug[:48]}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def is_run_id(text: str) -> bool:
    return len(text) <= MAX_RUN_ID_LENGTH and re.fullmatch(RUN_ID_CHARACTERS, text) is not None


def check_run_id(run_id: str) -> str:
    """`run_id` when it can name a run folder; a UserError saying what is wrong otherwise."""
    if not is_run_id(run_id):
        raise UserError(f"{run_id!r} cannot be a run id: a run id is a name of at most {MAX_RUN_ID_LENGTH} "
                        "letters, digits, '-', '_' and '.', starting with a letter or digit (no '/', no spaces, "
                        "never a path).", "Pick another --run-id, e.g. tiny-2, or leave it out for a generated one.")
    return run_id


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def refuse_special_file(path: Path) -> None:
    """A UserError unless `path` is a regular file or nothing yet: replacing a FIFO, a device node or a
    symbolic link (which may point anywhere) with a new file would destroy what the user did not mean."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    what = ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else
            "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise UserError(f"{path} is {what}; only a regular file (or a new path) is written and replaced there.",
                    "Give the path of a regular file, or a new one.")


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[IO[str]]:
    """A text file to write `path` through: written under a temporary name beside it, flushed to disk and
    renamed over `path` when the block succeeds, removed when it fails — readers find the old file or the
    new one, never half of one. Refuses (UserError) to replace anything but a regular file."""
    path = Path(path)
    refuse_special_file(path)
    # A new, unpredictable name opened exclusively (and never through a link): unique per process and
    # thread (the heartbeat thread and the training loop both write status.json).
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                 0o666)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def read_small_json(path: Path, limit: int) -> object:
    """The JSON value in `path` (at most `limit` bytes of UTF-8); ValueError with a sentence when it is
    not a regular file, too large, not UTF-8, not JSON, nested too deeply or holds a number too long to read."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the reader for good
        raise ValueError(f"{path.name} is not a regular file")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit:,} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {e.start})") from None
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply") from None
    except ValueError as e:  # not JSON, or an integer of thousands of digits
        raise ValueError(f"{path.name} is not readable JSON ({e})") from None


def remove_leftovers(target: Path) -> None:
    """Temporary folders and files (`.<name>.tmp-<pid>…`) an interrupted write of `target` left beside it."""
    if not target.parent.is_dir():
        return
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; rename it to `target` only if the block succeeds.

    A crash mid-write leaves a `.tmp-` folder, never something at `target` that looks complete; the
    next write of `target` (in the run directory, whose one writer holds its lock) removes it.
    """
    target = Path(target)
    remove_leftovers(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


@dataclass
class RunStatus:
    state: str
    pid: int | None = None
    host: str = field(default_factory=socket.gethostname)
    last_seq: int = -1
    kind: str = ""
    name: str = ""
    step: int | None = None
    updated: float = field(default_factory=time.time)
    # When the process `pid` started (engine.processes.process_start): with the pid, it names one
    # process; a later process that got the same pid has another start.
    pid_started: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @classmethod
    def from_json(cls, data: object) -> RunStatus:
        """The status in a parsed status.json; ValueError naming the field that is not what the engine writes."""
        if not isinstance(data, dict):
            raise ValueError(f"status.json holds {type(data).__name__}, not an object")
        known = {}
        for spec in fields(cls):
            if spec.name not in data:
                continue
            value = data[spec.name]
            if not _STATUS_FIELD_CHECKS[spec.name](value):
                raise ValueError(f"status.json field {spec.name} is {json.dumps(value)[:60]}, which the engine "
                                 "never writes")
            known[spec.name] = value
        if "state" not in known:
            raise ValueError("status.json has no state")
        return cls(**known)


def _integer(low: int, high: int, none: bool = False):
    return lambda v: (v is None and none) or (type(v) is int and low <= v <= high)


def _text(limit: int, none: bool = False):
    # Not half a character either (a JSON "\\udc80" escape): no terminal or file could show it.
    return lambda v: (v is None and none) or (isinstance(v, str) and len(v) <= limit
                                              and not any(0xD800 <= ord(c) <= 0xDFFF for c in v))


_STATUS_FIELD_CHECKS = {
    "state": lambda v: v in RUN_STATES,
    "pid": _integer(1, 2**31, none=True),
    "host": _text(1024),
    "last_seq": _integer(-1, 2**53),
    "kind": _text(1024),
    "name": _text(1024),
    "step": _integer(0, 2**53, none=True),
    "updated": lambda v: type(v) in (int, float) and 0 <= v < 2**40,
    "pid_started": _text(256, none=True),
}


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def workspace(self) -> Path:
        """The workspace the run belongs to (runs live in `<workspace>/runs/<run-id>`)."""
        return self.path.parent.parent

    spec_path = property(lambda self: self.path / "spec.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    log_path = property(lambda self: self.path / "engine.log")
    status_path = property(lambda self: self.path / "status.json")
    lock_path = property(lambda self: self.path / LOCK_NAME)
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    output_dir = property(lambda self: self.path / "output")

    @classmethod
    def create(cls, workspace: Path, run_id: str, spec_text: str | None = None,
               status: RunStatus | None = None) -> RunDirectory:
        """A new run folder `runs/<run_id>/` (see `create_locked`), not locked."""
        run, lock = cls.create_locked(workspace, run_id, spec_text, status)
        lock.release()
        return run

    @classmethod
    def create_locked(cls, workspace: Path, run_id: str, spec_text: str | None = None,
                      status: RunStatus | None = None) -> tuple[RunDirectory, RunLock]:
        """A new run folder `runs/<run_id>/` holding its spec and first status, and its lock, held by this
        process. The folder is made whole under a temporary name and renamed into place: a crash never
        leaves a run without its spec, and of two engines creating the same id, one gets it. A UserError
        when the id cannot name a run, is taken, or the folder cannot be written (a full disk)."""
        run = cls(Path(workspace) / "runs" / check_run_id(run_id))
        taken = UserError(f"A run with the id {run_id!r} exists already in {run.path.parent}.",
                          f"Pick another --run-id; to continue that run, `studio-engine resume {run_id}`.")
        if os.path.lexists(run.path):
            raise taken
        run.path.parent.mkdir(parents=True, exist_ok=True)
        draft = cls(run.path.with_name(f".{run_id}.tmp-{os.getpid()}-{secrets.token_hex(4)}"))
        lock = None
        try:
            draft.path.mkdir()
            draft.checkpoints_dir.mkdir()
            draft.output_dir.mkdir()
            lock = draft.lock()
            if spec_text is not None:
                atomic_write_text(draft.spec_path, spec_text)
            if status is not None:
                draft.write_status(status)
            try:
                os.rename(draft.path, run.path)  # never over a run: a folder with files is not replaced
            except OSError as e:
                if os.path.lexists(run.path):
                    raise taken from None
                raise e
        except BaseException:
            if lock is not None:
                lock.release()
            shutil.rmtree(draft.path, ignore_errors=True)
            raise
        return run, lock

    def exists(self) -> bool:
        return self.spec_path.exists()

    def lock(self) -> RunLock:
        """Take the run's writer lock (held until released or until this process ends), or raise a
        UserError: another engine process is running this run."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o644)
        if not try_lock(fd):
            os.close(fd)
            status = self.read_status()
            holder = f" (pid {status.pid} on {status.host}, per its status.json)" if status and status.pid else ""
            raise UserError(f"Run {self.run_id} is being run by another engine process{holder}: one engine writes "
                            "a run at a time.", f"`studio-engine attach {self.run_id} --follow` shows it; wait for it "
                            f"to end, or stop it with `studio-engine cancel {self.run_id}`.")
        return RunLock(fd)

    def write_status(self, status: RunStatus) -> None:
        status.updated = time.time()
        text = json.dumps(asdict(status), indent=1)
        try:
            atomic_write_text(self.status_path, text)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # A full disk has no room for a second copy: the old file's blocks take the new one (a
            # status the size of the last), so the run does not go on saying it is running.
            with open(self.status_path, "r+", encoding="utf-8") as f:
                f.truncate(0)
                f.write(text)

    def read_status(self) -> RunStatus | None:
        """The run's status; None when it has none or it is unreadable (`status_problem` says why)."""
        status, _ = self._status()
        return status

    def status_problem(self) -> str | None:
        """Why status.json cannot be read (a sentence), or None when it reads (or is not there yet)."""
        return self._status()[1]

    def _status(self) -> tuple[RunStatus | None, str | None]:
        try:
            return RunStatus.from_json(read_small_json(self.status_path, MAX_STATUS_BYTES)), None
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as e:
            log.warning("run %s: unreadable status (%s)", self.run_id, e)
            return None, str(e)

    def effective_status(self) -> RunStatus | None:
        """The status, with a run whose engine is gone without a word (or whose pid now belongs to
        another process) reported as failed."""
        status = self.read_status()
        from engine.slurm import job_active, job_state, read_job

        if (job := read_job(self.path)) is not None:
            # A Slurm run: its job says whether it still runs (or waits, or was requeued to start again).
            state = job_state(job.job_id)
            if job_active(state):
                # A job still completing after its engine ended is that end, not a new start.
                ending = state.get("state") in ("COMPLETING", "STAGE_OUT") and status is not None
                if not ending and (status is None or not status.active):
                    status = RunStatus(state="starting", pid=None, last_seq=status.last_seq if status else -1,
                                       kind=status.kind if status else "", name=status.name if status else "",
                                       step=status.step if status else None)
            elif status and status.active:
                status.state = "failed"
            return status
        if status and status.active and status.host == socket.gethostname() and not self._engine_alive(status):
            status.state = "failed"
        return status

    def _engine_alive(self, status: RunStatus) -> bool:
        if status.pid_started is not None:
            return process_start(status.pid) == status.pid_started
        return pid_alive(status.pid)

    def engine_problem(self, status: RunStatus) -> str | None:
        """None when `status.pid` is this run's engine process, on this computer; otherwise why it is not
        (or cannot be told), as a sentence. Only a process that passes may be signalled for the run."""
        here = socket.gethostname()
        if status.host != here:
            return (f"its status.json names host {status.host!r}, and this is {here!r}: the run's engine is not "
                    "on this computer (run the command there)")
        if not status.pid:
            return "its status.json names no engine process"
        if status.pid_started is None:
            return f"its status.json does not record when process {status.pid} started, so it cannot be told apart " \
                   "from another process that got the same pid"
        started = process_start(status.pid)
        if started is None:
            return f"process {status.pid} is gone"
        if started != status.pid_started:
            return f"process {status.pid} started at another time than the run's engine: the pid now belongs to " \
                   "another process"
        arguments = process_arguments(status.pid) or []
        if process_holds_file(status.pid, self.lock_path) or self.run_id in arguments or str(self.path) in arguments:
            return None
        return f"process {status.pid} neither holds this run's lock nor names the run on its command line"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (folders named checkpoint-<step>; see `checkpoint_complete`)."""
        found = []
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.iterdir():
                m = re.fullmatch(r"checkpoint-(\d+)", p.name)
                if m and checkpoint_complete(p):
                    found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def last_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None


CHECKPOINT_STATE = "trainer_state.json"


def checkpoint_complete(folder: Path) -> bool:
    """Whether a checkpoint folder was written in full. Its state file (`trainer_state.json`) is written
    last, after the weights, optimizer and random states; a folder without it, or with one cut short by
    a crash (not a whole JSON object), is incomplete: never resumed from, never counted as kept."""
    state = folder / CHECKPOINT_STATE
    if folder.is_symlink() or not folder.is_dir() or state.is_symlink() or not state.is_file():
        return False
    try:
        return isinstance(read_small_json(state, MAX_CHECKPOINT_STATE_BYTES), dict)
    except (OSError, ValueError):
        return False


def rotate_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest complete checkpoints in `folder` beyond the newest `keep`; return them.

    Only after a newer checkpoint is complete does an older one go, and each goes by a rename aside
    (atomic) before its files are deleted: a crash in the middle leaves a hidden `.checkpoint-N.deleting`
    folder (removed by the next rotation), never a half-deleted checkpoint that looks complete.
    """
    for stale in folder.glob(".checkpoint-*.deleting"):
        shutil.rmtree(stale, ignore_errors=True)
    complete = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                      if re.fullmatch(r"checkpoint-\d+", p.name) and checkpoint_complete(p))
    removed = [p for _, p in complete[:-keep]] if keep > 0 else []
    for old in removed:
        aside = old.with_name(f".{old.name}.deleting")
        os.replace(old, aside)
        shutil.rmtree(aside, ignore_errors=True)
    return removed


class RunLock:
    """The writer lock of one run directory, held through an open descriptor: released by `release`, or
    by the operating system when every process holding the descriptor has ended."""

    def __init__(self, fd: int):
        self.fd = fd

    @classmethod
    def inherited(cls, fd: int) -> RunLock:
        """The lock a parent process took and handed down (`run --detach`): the descriptor it passed."""
        os.set_inheritable(fd, False)
        return cls(fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_lock(fd: int) -> bool:
    """An exclusive lock on the open file `fd`, taken at once or not at all (False: another process holds
    it). Held until every copy of the descriptor is closed — a child that inherits it holds it too — and
    so never outlives the processes that hold it."""
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the file's first byte
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _run_folders(runs_dir: Path) -> list[Path]:
    """The folders of `runs_dir` that hold a run (a spec.yaml), skipping what cannot be looked at."""
    found = []
    try:
        entries = list(runs_dir.iterdir())
    except OSError:
        return []
    for p in entries:
        if p.name.startswith("."):  # a run folder being made (`create_locked`), or what a crash left of one
            continue
        with contextlib.suppress(OSError):
            if (p / "spec.yaml").is_file():
                found.append(p)
    return found


def find_run(workspace: Path, run: str) -> RunDirectory:
    """A run by id, unique id prefix, or run folder (a path to a folder holding spec.yaml), taken
    literally (no patterns). Raises LookupError with a sentence for the user."""
    runs_dir = Path(workspace) / "runs"
    if is_run_id(run):
        if (runs_dir / run / "spec.yaml").is_file():
            return RunDirectory(runs_dir / run)
        matches = sorted(p for p in _run_folders(runs_dir) if p.name.startswith(run))
        if len(matches) == 1:
            return RunDirectory(matches[0])
        if matches:
            names = ", ".join(p.name for p in matches[:5])
            raise LookupError(f"'{run}' matches several runs ({names}): give more of the id.")
    if run and "\0" not in run:
        as_path = Path(run).expanduser()
        with contextlib.suppress(OSError):
            if (as_path / "spec.yaml").is_file():
                return RunDirectory(as_path)
    raise LookupError(f"No run {run!r} in {runs_dir}: give a run id, a unique prefix of one, or a run folder. "
                      "`studio-engine list` shows the runs there.")


def list_runs(workspace: Path) -> list[RunDirectory]:
    def created(run: RunDirectory) -> float:
        try:
            return run.spec_path.stat().st_mtime
        except OSError:
            return 0.0

    return sorted((RunDirectory(p) for p in _run_folders(Path(workspace) / "runs")), key=created)
