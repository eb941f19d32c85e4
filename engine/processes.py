"""Who a process is: when it started, its command line, the files it holds open — so that a command
that signals a run's engine (`cancel`) can make sure the pid a status file names is that engine, and
not an unrelated process that got the same pid later, or one that a crafted status file points at.

Linux answers from /proc; elsewhere `ps` answers what it can (start time, command line) and the open
files are not looked at. Standard library only: the run directory module (imported by the studio)
uses this.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from functools import cache
from pathlib import Path

PROC = Path("/proc")


@cache
def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    return ""


def process_start(pid: int | None) -> str | None:
    """When process `pid` started, as a token (the boot and the start time in clock ticks on Linux, the
    start time `ps` prints elsewhere): the pid and this token name one process. None when there is no
    such process, or it has exited (a zombie), or it cannot be told."""
    if not pid or pid < 1:
        return None
    if PROC.is_dir():
        try:
            fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the command name: state (field 3) … starttime (field 22).
        if fields[0] == "Z":
            return None
        return f"{_boot_id()}:{fields[19]}"
    return _ps(pid, "lstart=")


def process_arguments(pid: int) -> list[str] | None:
    """The command line of process `pid`, argument by argument (None when it cannot be read)."""
    if PROC.is_dir():
        try:
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    line = _ps(pid, "command=")
    return line.split() if line else None


def process_holds_file(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux; False where it cannot be seen)."""
    fd_dir = PROC / str(pid) / "fd"
    try:
        target = str(Path(path).resolve())
        for entry in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(entry) == target:
                    return True
    except OSError:
        pass
    return False


def children(pid: int) -> list[int]:
    """The processes that `pid` started and that still run (Linux; empty where it cannot be seen)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, …), parents before their children. A launcher that
    starts its workers in sessions of their own (torchrun) leaves them out of its process group: this
    finds them all the same."""
    found, queue = [], [pid]
    while queue:
        for child in children(queue.pop(0)):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def _ps(pid: int, column: str) -> str | None:
    try:
        result = subprocess.run(["ps", "-o", column, "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else None
