"""The command lines that reach an engine on another machine through the system's OpenSSH client.

Qt-free, so it is tested without a display. The studio never speaks SSH itself: it runs `ssh`, so the
user's `~/.ssh/config`, keys, agent and jump hosts work as they do in a terminal. Every invocation is

    ssh [-F CONFIG] -o BatchMode=yes -o ControlMaster=auto -o ControlPath=DIR/%C -o ControlPersist=…
        -- HOST REMOTE_COMMAND

as an argv list (never a local shell string), where REMOTE_COMMAND is one string for the remote
shell in which every argument is quoted with `shlex.quote`. BatchMode: ssh never prompts (no
password is ever asked for or stored). Multiplexing: one TCP/SSH connection carries the short
commands and the attach streams; it lives in a private folder (mode 0700) of this user.

Host keys: the user's known_hosts decides. An unknown host makes ssh fail with "Host key
verification failed"; the studio then shows the key that `ssh-keyscan` reads, with its SHA256
fingerprint, and appends it to known_hosts only when the user accepts it. A key that *changed* is
never offered: that is the user's to investigate.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SSH = "ssh"
SSH_KEYSCAN = "ssh-keyscan"
SSH_FAILED = 255  # ssh's own exit code: the connection failed or dropped (not the remote command's)
ENGINE_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def private_control_dir() -> Path:
    """A folder only this user can enter, for the multiplexing sockets (short: a socket path is
    limited to ~100 bytes)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"atelier-ssh-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; remove it or set XDG_RUNTIME_DIR.")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect: a host alias (or user@host) as `ssh` understands it."""

    host: str
    config_file: str | None = None  # `-F`: None reads the user's ~/.ssh/config
    control_dir: str | None = None  # None: `private_control_dir()`
    control_persist: str = "10m"
    connect_timeout_s: int = 15
    options: tuple[str, ...] = field(default=())  # more `-o Key=Value`, e.g. for tests

    def base_argv(self) -> list[str]:
        """`ssh` and its options, up to (not including) the host."""
        control = Path(self.control_dir) if self.control_dir else private_control_dir()
        argv = [SSH]
        if self.config_file:
            argv += ["-F", str(self.config_file)]
        argv += ["-o", "BatchMode=yes",
                 "-o", "ControlMaster=auto",
                 "-o", f"ControlPath={control}/%C",
                 "-o", f"ControlPersist={self.control_persist}",
                 "-o", f"ConnectTimeout={self.connect_timeout_s}",
                 # A dead network shows within ~45 s instead of a TCP timeout of minutes.
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
        for option in self.options:
            argv += ["-o", option]
        return argv

    def argv(self, remote_command: str) -> list[str]:
        """The local argv that runs `remote_command` (one string for the remote shell) on the host."""
        return [*self.base_argv(), "-T", "--", self.host, remote_command]

    def control_argv(self, operation: str) -> list[str]:
        """`ssh -O check|exit|stop HOST`: ask the multiplexing master."""
        return [*self.base_argv(), "-O", operation, "--", self.host]

    def resolve_argv(self) -> list[str]:
        """`ssh -G HOST`: the configuration ssh would use (hostname, port, known_hosts files)."""
        argv = [SSH] + (["-F", str(self.config_file)] if self.config_file else [])
        for option in self.options:
            argv += ["-o", option]
        return [*argv, "-G", "--", self.host]


def quote_remote(arg: str) -> str:
    """`shlex.quote` for the remote shell, except that a leading `~/` still means the remote home."""
    if arg == "~":
        return '"$HOME"'
    if arg.startswith("~/"):
        return '"$HOME"/' + shlex.quote(arg[2:]) if arg[2:] else '"$HOME"/'
    return shlex.quote(arg)


def remote_join(argv: list[str]) -> str:
    return " ".join(quote_remote(str(a)) for a in argv)


def engine_command(python: str, workspace: str, args: list[str], env: dict[str, str] | None = None) -> str:
    """The remote shell command for `studio-engine --workspace WS ARGS` with that Python."""
    variables = [f"{k}={v}" for k, v in {**ENGINE_ENV, **(env or {})}.items()]
    return remote_join(["env", *variables, python, "-m", "engine.cli", "--workspace", workspace, *args])


def upload_then(path: str, then: str) -> str:
    """A remote command that writes its stdin to `path` (creating its folder), then runs `then`."""
    folder = path.rsplit("/", 1)[0] if "/" in path else "."
    return f"mkdir -p -- {quote_remote(folder)} && cat > {quote_remote(path)} && {then}"


# ----------------------------------------------------------------------------- failures and keys
def host_key_unknown(stderr: str) -> bool:
    """ssh refused because the host's key is not in known_hosts (and BatchMode cannot ask)."""
    return "Host key verification failed" in stderr and not host_key_changed(stderr)


def host_key_changed(stderr: str) -> bool:
    return "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr


def explain_ssh_failure(stderr: str, host: str) -> str:
    """A sentence for the user about why ssh (not the remote command) failed."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "no message"
    if host_key_changed(text):
        return (f"The host key of {host} has CHANGED since it was stored in known_hosts. This can be an "
                "attack or a reinstalled machine: check with its administrator, then remove the old key "
                f"with `ssh-keygen -R {host}` and connect again.")
    if host_key_unknown(text):
        return (f"{host} is not in your known_hosts yet. Check its key fingerprint and accept it "
                f"(or run `ssh {host}` once in a terminal).")
    if "Permission denied" in text:
        return (f"{host} refused the login ({last}). The studio never asks for passwords: set up a key "
                f"(`ssh-copy-id {host}`) or load it into your agent (`ssh-add`), then test again.")
    if "Could not resolve hostname" in text:
        return f"{host} is not a known host name or alias ({last}). Add it to ~/.ssh/config or fix the profile."
    if "Connection refused" in text or "timed out" in text or "No route to host" in text:
        return f"Could not reach {host} ({last}). Is the machine up and its SSH server running?"
    return f"SSH to {host} failed: {last}"


@dataclass(frozen=True)
class HostKey:
    """One line of `ssh-keyscan` output: what is appended to known_hosts once accepted."""

    line: str

    @property
    def key_type(self) -> str:
        return self.line.split()[1]

    @property
    def fingerprint(self) -> str:
        """`SHA256:…` as `ssh-keygen -l` and ssh itself print it."""
        blob = base64.b64decode(self.line.split()[2])
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_keyscan(output: str) -> list[HostKey]:
    keys = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            try:
                base64.b64decode(parts[2], validate=True)
            except ValueError:
                continue
            keys.append(HostKey(" ".join(parts[:3])))
    return keys


@dataclass(frozen=True)
class ResolvedHost:
    hostname: str
    port: int
    known_hosts: Path  # the first UserKnownHostsFile: where an accepted key is appended


def parse_resolved(output: str) -> ResolvedHost:
    """The output of `ssh -G HOST`."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key.lower(), value.strip())
    files = shlex.split(values.get("userknownhostsfile", "~/.ssh/known_hosts"))
    return ResolvedHost(values.get("hostname", ""), int(values.get("port", "22")),
                        Path(os.path.expanduser(files[0] if files else "~/.ssh/known_hosts")))


def resolve(target: SshTarget, timeout_s: float = 10) -> ResolvedHost:
    """What ssh would connect to (reads config files only: no network, fast)."""
    done = subprocess.run(target.resolve_argv(), check=False, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(explain_ssh_failure(done.stderr, target.host))
    return parse_resolved(done.stdout)


def keyscan_argv(resolved: ResolvedHost) -> list[str]:
    return [SSH_KEYSCAN, "-T", "10", "-p", str(resolved.port), "--", resolved.hostname]


def accept_host_keys(keys: list[HostKey], known_hosts: Path) -> None:
    """Append the keys the user accepted to known_hosts (created 0600 if missing)."""
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = known_hosts.read_text(encoding="utf-8") if known_hosts.exists() else ""
    new = [k.line for k in keys if k.line not in existing]
    if not new:
        return
    fd = os.open(known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        if existing and not existing.endswith("\n"):
            f.write("\n")
        f.write("\n".join(new) + "\n")
