"""A real `sshd` on 127.0.0.1 for tests, with its own host key, user key, config and known_hosts in a
temporary folder (nothing of the user's is read or written); `Sshd.host` is its alias in `Sshd.config`
(pass `ssh -F` that file). Tests that need it are marked `needs_sshd` (skipped, with the reason, where
sshd is not installed; .ci/run installs it)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSHD_INSTALLED = Path(SSHD).exists() and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None
needs_sshd = pytest.mark.skipif(
    not SSHD_INSTALLED, reason="needs sshd: apt-get install openssh-server")


@dataclass
class Sshd:
    host: str  # the alias in `config`
    config: Path
    known_hosts: Path
    control_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd():
    # A short path: ControlPath sockets must fit in ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="at-sshd-"))
    control = root / "ctl"
    control.mkdir(mode=0o700)
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    port, user = _free_port(), getpass.getuser()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nMaxSessions 50\nMaxStartups 50\n")
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    with open(root / "sshd.log", "wb") as log:
        server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                  stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"sshd did not start: {(root / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    (root / "ssh_config").write_text(
        f"Host atelier-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
        f"  IdentityFile {root}/user_key\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        f"  UserKnownHostsFile {root}/known_hosts\n  GlobalKnownHostsFile /dev/null\n")
    yield Sshd("atelier-test", root / "ssh_config", root / "known_hosts", control)
    subprocess.run(["ssh", "-F", str(root / "ssh_config"), "-o", f"ControlPath={control}/%C",
                    "-O", "exit", "atelier-test"], check=False, capture_output=True, timeout=10)
    server.terminate()
    server.wait(10)
    shutil.rmtree(root, ignore_errors=True)
