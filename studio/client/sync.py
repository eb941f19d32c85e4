"""Inputs up, outputs down: the files a remote run needs, copied with rsync (or scp), and its outputs
copied back on demand.

Before a run starts on an SSH engine, every local file or folder that its spec names (data
sources, model and adapter folders, hostfiles: the values under `PATH_KEYS` that are absolute or
`~/` paths existing here) is copied to `<remote workspace>/inputs/<hash>/<name>`, where `<hash>` is
the first 16 hex digits of its content hash (`content_hash`). The spec sent to the host names those
remote paths instead (`rewrite_spec`); the local spec keeps its own. Content that is already there
is not copied again, whatever its local path: a re-launch copies nothing.

Transfers use `rsync -aL` when both machines have rsync, else `scp -rp`, through the same ssh
options as every other command (`SshTarget.base_argv`: BatchMode, the shared ControlPath). Local
argv are lists; remote shell commands quote every argument. rsync and scp pass their remote paths
through the remote shell or SFTP globbing depending on version and mode, so they are only ever given
paths made of `SAFE_REMOTE` characters: a staging folder (`<workspace>/inputs/.incoming/<hash>/` when
the workspace's absolute path is such a path, else `~/.atelier-incoming/<hash>/`), from which an ssh
command with quoted arguments moves the copy into place. A copy cut short leaves only staging.
Pulling an output with an unsafe path goes through a symlink in `~/.atelier-outgoing/`.

This module is Qt-free (tested without a display); `studio.client.transfers` drives it with QProcess
(`InputSync`, `SyncedStart`, `RemoteOutputs`, `OutputPull`), hashing off the GUI thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from studio.client import ssh

# The spec fields that name files or folders (data sources, models, adapters, prompts, hostfiles).
PATH_KEYS = frozenset({"sources", "path", "adapter", "reward_model", "source", "hostfile", "compare_with"})
HASH_CHARS = 16
SAFE_REMOTE = re.compile(r"^[A-Za-z0-9._/+-]+$")  # read the same by any remote shell, scp or SFTP
HOME_STAGING = ".atelier-incoming"
HOME_OUTGOING = ".atelier-outgoing"


# ------------------------------------------------------------------------------ hashing, planning
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes; for a folder, of the sorted list of (relative path, file sha256)
    of every file under it (symlinks followed, as the copy follows them)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    entries = []
    for folder, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            full = Path(folder) / name
            entries.append((full.relative_to(path).as_posix(), file_sha256(full)))
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()


def _local_path(value: Any) -> Path | None:
    """The local file or folder a spec value names: an absolute or `~/` path that exists here."""
    if not isinstance(value, str) or not (value.startswith(("/", "~"))):
        return None
    path = Path(os.path.abspath(os.path.expanduser(value)))
    return path if path != Path(path.anchor) and path.exists() else None


def _path_values(spec: Any) -> Iterator[str]:
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in PATH_KEYS:
                yield from (v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
            else:
                yield from _path_values(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _path_values(item)


def local_inputs(spec: dict) -> list[str]:
    """The values of the spec that name local files or folders (as written, each once)."""
    return list(dict.fromkeys(v for v in _path_values(spec) if _local_path(v) is not None))


@dataclass(frozen=True)
class Upload:
    """One local input: where it is here, its content hash, and where it goes on the host."""

    original: str  # as the spec wrote it
    local: Path
    digest: str

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def key(self) -> str:
        return self.digest[:HASH_CHARS]

    def remote_path(self, workspace: str) -> str:
        return str(PurePosixPath(workspace) / "inputs" / self.key / self.name)


def plan_uploads(spec: dict) -> list[Upload]:
    """Hash every local input of the spec (slow for big data: call off the GUI thread)."""
    return [Upload(value, _local_path(value), content_hash(_local_path(value))) for value in local_inputs(spec)]


def rewrite_spec(spec: Any, remote_paths: dict[str, str]) -> Any:
    """A copy of the spec whose path values are replaced by `remote_paths[value]` where given."""
    if isinstance(spec, dict):
        out = {}
        for key, value in spec.items():
            if key in PATH_KEYS and isinstance(value, list):
                out[key] = [remote_paths.get(v, v) if isinstance(v, str) else v for v in value]
            elif key in PATH_KEYS and isinstance(value, str):
                out[key] = remote_paths.get(value, value)
            else:
                out[key] = rewrite_spec(value, remote_paths)
        return out
    if isinstance(spec, list):
        return [rewrite_spec(item, remote_paths) for item in spec]
    return spec


# ------------------------------------------------------------------------- remote commands, argv
@dataclass(frozen=True)
class Probe:
    """What the host said before a copy: rsync there, which targets exist, the workspace's path."""

    rsync: bool
    present: list[bool]
    workspace: str  # absolute


def probe_command(workspace: str, uploads: list[Upload]) -> str:
    """Creates `<workspace>/inputs`, then prints `rsync`/`no-rsync`, `present`/`missing` per upload, and
    the workspace's absolute path (last: the only line that may hold odd characters)."""
    checks = " && ".join(f"{{ test -e {shlex.quote(f'inputs/{u.key}/{u.name}')} && echo present || echo missing; }}"
                         for u in uploads) or "true"
    return (f"mkdir -p -- {ssh.quote_remote(workspace)}/inputs && cd -- {ssh.quote_remote(workspace)} && "
            "{ command -v rsync >/dev/null 2>&1 && echo rsync || echo no-rsync; } && " + checks + " && pwd")


def parse_probe(output: str, uploads: list[Upload]) -> Probe:
    lines = output.split("\n")
    if len(lines) < len(uploads) + 2 or lines[0] not in ("rsync", "no-rsync"):
        raise ValueError(f"unexpected answer: {output[:200]!r}")
    present = [line == "present" for line in lines[1:1 + len(uploads)]]
    return Probe(lines[0] == "rsync", present, "\n".join(lines[1 + len(uploads):]).rstrip("\n"))


def staging_dirs(workspace: str) -> tuple[str, str]:
    """(for rsync/scp, for the remote shell): the staging folder, inside the workspace when its absolute
    path is made of safe characters, else in the remote home."""
    if SAFE_REMOTE.match(workspace):
        inside = f"{workspace.rstrip('/')}/inputs/.incoming"
        return inside, inside
    return HOME_STAGING, f"~/{HOME_STAGING}"


def prepare_command(stage_shell: str, uploads: list[Upload]) -> str:
    folders = [ssh.quote_remote(f"{stage_shell}/{u.key}") for u in uploads]
    return f"rm -rf -- {' '.join(folders)} && mkdir -p -- {' '.join(folders)}"


def finalize_command(workspace: str, stage_shell: str, uploads: list[Upload]) -> str:
    """Move each staged copy into `<workspace>/inputs/<hash>/<name>`, then drop the staging folders."""
    steps = []
    for u in uploads:
        staged = ssh.quote_remote(f"{stage_shell}/{u.key}/{u.name}")
        folder = shlex.quote(str(PurePosixPath(workspace) / "inputs" / u.key))
        target = shlex.quote(u.remote_path(workspace))
        steps.append(f"mkdir -p -- {folder} && rm -rf -- {target} && mv -- {staged} {target} && "
                     f"rmdir -- {ssh.quote_remote(f'{stage_shell}/{u.key}')}")
    return " && ".join(steps) + f" && {{ rmdir -- {ssh.quote_remote(stage_shell)} 2>/dev/null; true; }}"


def rsync_available() -> bool:
    return shutil.which("rsync") is not None


def copy_argv(target: ssh.SshTarget, source: str, destination: str, tool: str, recursive: bool) -> list[str]:
    """rsync or scp of `source` to `destination` (one of them `HOST:PATH` with a safe PATH, the other an
    absolute local path), through the target's ssh options."""
    if tool == "rsync":
        # -L: copy what symlinks point to (Hugging Face cache folders are symlinks to blobs).
        return ["rsync", "-aL", "-e", shlex.join(target.base_argv()), "--", source, destination]
    return ["scp", *target.base_argv()[1:], "-p", *(["-r"] if recursive else []), "--", source, destination]


LIST_SCRIPT = (
    "import json, os, sys\n"
    "root = sys.argv[1]\n"
    "def size(p):\n"
    "    if not os.path.isdir(p): return os.path.getsize(p)\n"
    "    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)\n"
    "names = sorted(os.listdir(root)) if os.path.isdir(root) else []\n"
    "print(json.dumps([{'name': n, 'path': os.path.join(root, n), 'dir': os.path.isdir(os.path.join(root, n)),"
    " 'bytes': size(os.path.join(root, n))} for n in names]))\n")


@dataclass(frozen=True)
class RemoteOutput:
    name: str
    path: str  # absolute, on the host
    is_dir: bool
    bytes: int


def listing_command(python: str, folder: str) -> str:
    """The remote command that prints the entries of `folder` as JSON (with the profile's Python)."""
    return ssh.remote_join([python, "-c", LIST_SCRIPT, folder])


def parse_listing(text: str) -> list[RemoteOutput]:
    return [RemoteOutput(e["name"], e["path"], bool(e["dir"]), int(e["bytes"])) for e in json.loads(text.strip() or "[]")]


def pull_prepare_command(path: str, token: str) -> tuple[str, str]:
    """(remote command, path for rsync/scp): says whether rsync is there and the path is a folder; a path
    with unsafe characters is reached through the symlink `~/.atelier-outgoing/<token>`."""
    quoted = ssh.quote_remote(path)
    rsync = "{ command -v rsync >/dev/null 2>&1 && echo rsync || echo no-rsync; }"
    kind = f"{{ test -d {quoted} && echo dir || {{ test -e {quoted} && echo file || echo missing; }}; }}"
    if SAFE_REMOTE.match(path):
        return f"{rsync} && {kind}", path
    link = f"~/{HOME_OUTGOING}/{token}"
    return ((f"{rsync} && {kind} && mkdir -p -- {ssh.quote_remote(f'~/{HOME_OUTGOING}')} && "
            f"ln -sfn -- {quoted} {ssh.quote_remote(link)}"), f"{HOME_OUTGOING}/{token}")
