"""Run directories: where a run keeps its spec, events, log, status, checkpoints and outputs.

    <workspace>/runs/<run-id>/
        spec.yaml  events.jsonl  engine.log  status.json  checkpoints/  output/

Imported by the GUI: no heavy imports here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

WORKSPACE_ENV = "ATELIER_WORKSPACE"
RUN_STATES = ("starting", "running", "completed", "cancelled", "failed")
ACTIVE_STATES = ("starting", "running")


def default_workspace() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or Path.home() / "atelier").expanduser()


def new_run_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "run"
    return f"{slug[:48]}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


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


def atomic_write_text(path: Path, text: str) -> None:
    # Unique per thread: the heartbeat thread and the training loop both write status.json.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; rename it to `target` only if the block succeeds.

    A crash mid-write leaves a `.tmp-` folder, never something at `target` that looks complete.
    """
    target = Path(target)
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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / "spec.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    log_path = property(lambda self: self.path / "engine.log")
    status_path = property(lambda self: self.path / "status.json")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    output_dir = property(lambda self: self.path / "output")

    @classmethod
    def create(cls, workspace: Path, run_id: str) -> RunDirectory:
        run = cls(Path(workspace) / "runs" / run_id)
        run.path.mkdir(parents=True, exist_ok=False)
        run.checkpoints_dir.mkdir()
        run.output_dir.mkdir()
        return run

    def exists(self) -> bool:
        return self.spec_path.exists()

    def write_status(self, status: RunStatus) -> None:
        status.updated = time.time()
        atomic_write_text(self.status_path, json.dumps(asdict(status), indent=1))

    def read_status(self) -> RunStatus | None:
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        known = {k: v for k, v in data.items() if k in RunStatus.__dataclass_fields__}
        return RunStatus(**known)

    def effective_status(self) -> RunStatus | None:
        """The status, with a run whose process died without a word reported as failed."""
        status = self.read_status()
        if status and status.active and status.host == socket.gethostname() and not pid_alive(status.pid):
            status.state = "failed"
        return status

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (folders named checkpoint-<step>)."""
        found = []
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.iterdir():
                m = re.fullmatch(r"checkpoint-(\d+)", p.name)
                if m and p.is_dir() and (p / "trainer_state.json").exists():
                    found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def last_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None


def find_run(workspace: Path, run: str) -> RunDirectory:
    """A run by id, unique id prefix, or path. Raises LookupError with a sentence for the user."""
    as_path = Path(run).expanduser()
    if (as_path / "spec.yaml").exists():
        return RunDirectory(as_path)
    runs_dir = Path(workspace) / "runs"
    exact = runs_dir / run
    if (exact / "spec.yaml").exists():
        return RunDirectory(exact)
    matches = sorted(p for p in runs_dir.glob(f"{run}*") if (p / "spec.yaml").exists()) if runs_dir.is_dir() else []
    if len(matches) == 1:
        return RunDirectory(matches[0])
    if not matches:
        raise LookupError(f"No run '{run}' in {runs_dir}. `studio-engine list` shows the runs there.")
    names = ", ".join(p.name for p in matches[:5])
    raise LookupError(f"'{run}' matches several runs ({names}): give more of the id.")


def list_runs(workspace: Path) -> list[RunDirectory]:
    runs_dir = Path(workspace) / "runs"
    if not runs_dir.is_dir():
        return []
    runs = [RunDirectory(p) for p in runs_dir.iterdir() if (p / "spec.yaml").exists()]
    return sorted(runs, key=lambda r: r.spec_path.stat().st_mtime)
