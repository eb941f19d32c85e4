"""A real single-host Slurm for tests: munged, slurmctld and slurmd started from the repository's
.ci/slurm/slurm.conf (its @...@ values filled in: a temporary folder, free ports, this host), so that
nothing under /etc is read or written. `slurm` yields the environment (SLURM_CONF) that the Slurm
commands and the engine need; the tests skip, saying why, where the daemons cannot start (not
installed: .ci/run installs slurm-wlm and munge with apt; not root: slurmd must be)."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".ci" / "slurm" / "slurm.conf"
DAEMONS = ("munged", "slurmctld", "slurmd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing() -> str | None:
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    missing += [c for c in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        return f"needs Slurm and munge ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    if os.getuid() != 0:
        return "needs root: slurmd starts jobs as their users"
    return None


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    # A short path: munge's socket must fit in ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="at-slurm-"))
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    (root / "munge.key").write_bytes(os.urandom(128))
    (root / "munge.key").chmod(0o600)
    values = {"@HOST@": socket.gethostname(), "@CTLD_PORT@": str(_free_port()), "@SLURMD_PORT@": str(_free_port()),
              "@USER@": getpass.getuser(), "@DIR@": str(root), "@CPUS@": str(os.cpu_count() or 1)}
    text = TEMPLATE.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(key, value)
    (root / "slurm.conf").write_text(text, encoding="utf-8")
    env = dict(os.environ, SLURM_CONF=str(root / "slurm.conf"))
    started = []

    def log_tail() -> str:
        return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-300:]}" for p in sorted(root.glob("*.log")))

    try:
        subprocess.run([_daemon("munged"), "--force", f"--socket={root}/munge.socket", f"--key-file={root}/munge.key",
                        f"--log-file={root}/munged.log", f"--pid-file={root}/munged.pid",
                        f"--seed-file={root}/munged.seed"], check=True, capture_output=True, timeout=30, env=env)
        started.append(root / "munged.pid")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_daemon(daemon), "-f", str(root / "slurm.conf")], check=True, capture_output=True,
                           timeout=30, env=env)
            started.append(root / f"{daemon}.pid")
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env, timeout=30)
            if done.returncode == 0 and done.stdout.strip() in ("idle", "mix", "alloc"):
                break
            if time.monotonic() > deadline:
                pytest.skip(f"Slurm did not come up (sinfo: {done.stdout.strip() or done.stderr.strip()}): {log_tail()}")
            time.sleep(0.5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        _stop(started)
        pytest.skip(f"Slurm did not start ({e}): {getattr(e, 'stderr', b'')!r} {log_tail()}")
    yield env
    _stop(started)
    shutil.rmtree(root, ignore_errors=True)


def _stop(pid_files: list[Path]) -> None:
    for pid_file in reversed(pid_files):
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
