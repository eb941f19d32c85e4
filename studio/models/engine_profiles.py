"""Engine profiles: where runs can go. Kept in the store's settings as JSON (Qt-free).

- Local: a Python interpreter on this computer that has the engine (the first-run check picks it;
  its path stays under `engine_setup.SETTING_KEY`, so the Local profile reads it from there).
- SSH: a host alias from the user's `~/.ssh/config` (or user@host), the remote Python, the remote
  workspace. No password, key or passphrase is ever stored: ssh's config, keys and agent do that.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from studio.models.store import Store

SETTING = "engine_profiles"
LOCAL = "local"
KINDS = ("local", "ssh")
_NAME = re.compile(r"^[\w][\w .@-]{0,62}$")


@dataclass(frozen=True)
class EngineProfile:
    name: str
    kind: str = "ssh"
    host: str = ""  # ssh: alias or user@host
    python: str = ""  # local: interpreter path (empty: the first-run choice); ssh: the remote python
    workspace: str = ""  # ssh: the remote workspace (`~/…` is the remote home)
    ssh_config: str = ""  # ssh: a config file for `-F` (empty: ~/.ssh/config)
    # ssh: "slurm" when the host is a Slurm cluster's login host: runs are submitted with sbatch there.
    scheduler: str = ""
    partition: str = ""  # slurm: empty = the cluster's default partition
    account: str = ""
    time_limit: str = ""  # slurm: sbatch's --time (minutes, H:MM:SS, D-HH:MM:SS); empty = the partition's
    # ssh without a scheduler: the machines of a multi-node run, as the engine's host reaches them over SSH
    # (aliases of its ~/.ssh/config, or of `node_ssh_config`); a run launched here gets them as
    # resources.hosts / nodes / ssh_config, so its spec still says where it ran.
    node_hosts: tuple[str, ...] = ()
    node_ssh_config: str = ""  # on the engine's host; empty: its ~/.ssh/config

    def slurm_options(self):
        """The engine's SlurmOptions of a Slurm profile (None for another)."""
        if self.scheduler != "slurm":
            return None
        from engine.slurm import SlurmOptions

        return SlurmOptions(partition=self.partition, account=self.account, time=self.time_limit)

    def problems(self) -> list[str]:
        """Every problem of the profile, as sentences (empty when it can be saved)."""
        out = []
        if not _NAME.match(self.name):
            out.append("The name must be 1-63 letters, digits, spaces, '.', '@' or '-'.")
        if self.kind not in KINDS:
            out.append(f"The kind must be one of {', '.join(KINDS)}.")
        if self.kind == "ssh":
            if self.name == LOCAL:
                out.append("'local' is the name of this computer's engine; choose another name.")
            if not _host_ok(self.host):
                out.append("The host must be an alias from ~/.ssh/config or user@host (no spaces, not starting with '-').")
            if not self.python.strip():
                out.append("The remote Python is missing (e.g. ~/atelier/.venv/bin/python).")
            if not self.workspace.strip():
                out.append("The remote workspace is missing (e.g. ~/atelier-workspace).")
            if self.scheduler not in ("", "slurm"):
                out.append("The scheduler must be empty (run on the host) or slurm (submit with sbatch).")
            elif self.scheduler == "slurm":
                out.extend(self.slurm_options().problems())
            if self.node_hosts:
                out.extend(self._node_problems())
        return out

    def _node_problems(self) -> list[str]:
        out = []
        if self.scheduler == "slurm":
            out.append("Node hosts are for runs without a scheduler: Slurm chooses the nodes of its jobs. Clear "
                       "the node hosts, or turn off Submit runs to Slurm.")
        if len(self.node_hosts) < 2:
            out.append("A multi-node run needs two node hosts or more (one per node); leave the list empty to run "
                       "on the host alone.")
        for index, host in enumerate(self.node_hosts, 1):
            if not _host_ok(host):
                out.append(f"Node host {index} ({host!r}) must be an alias from the engine host's ssh config, "
                           "user@host, or `local` (no spaces, not starting with '-').")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineProfile:
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {k: str(v) for k, v in data.items() if k in fields and v is not None}
        hosts = data.get("node_hosts")
        values["node_hosts"] = tuple(str(h) for h in hosts) if isinstance(hosts, (list, tuple)) else ()
        return cls(**values)


def _host_ok(host: str) -> bool:
    """An ssh destination that cannot be read as an option or split by a shell."""
    return bool(host.strip()) and not host.startswith("-") and not any(c.isspace() for c in host)


def parse_hosts(text: str) -> tuple[str, ...]:
    """Node hosts as typed: separated by commas, spaces or lines."""
    return tuple(h for h in re.split(r"[,\s]+", text) if h)


def load_profiles(store: Store) -> list[EngineProfile]:
    """The SSH profiles (and a Local one if it was customised), in the order they were added."""
    raw = store.get_setting(SETTING, []) or []
    profiles = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            try:
                profiles.append(EngineProfile.from_dict(item))
            except TypeError:
                continue
    return profiles


def get_profile(store: Store, name: str) -> EngineProfile | None:
    return next((p for p in load_profiles(store) if p.name == name), None)


def save_profile(store: Store, profile: EngineProfile, replace: str | None = None) -> None:
    """Add the profile, or replace the one named `replace` (or of the same name). Raises ValueError
    with every problem of an invalid profile."""
    problems = profile.problems()
    if problems:
        raise ValueError("\n".join(problems))
    profiles = [p for p in load_profiles(store) if p.name not in (profile.name, replace)]
    store.set_setting(SETTING, [asdict(p) for p in [*profiles, profile]])


def delete_profile(store: Store, name: str) -> None:
    store.set_setting(SETTING, [asdict(p) for p in load_profiles(store) if p.name != name])


def remote_engine(profile: EngineProfile, parent=None, control_dir: str | None = None,
                  options: tuple[str, ...] = ()):
    """The `RemoteEngine` of an SSH profile (imports Qt: call from the studio)."""
    from studio.client.remote_engine import RemoteEngine
    from studio.client.ssh import SshTarget

    if profile.kind != "ssh":
        raise ValueError(f"{profile.name} is not an SSH profile.")
    target = SshTarget(profile.host, config_file=profile.ssh_config or None, control_dir=control_dir, options=options)
    return RemoteEngine(profile.name, target, profile.python, profile.workspace, parent=parent,
                        slurm=profile.slurm_options(), node_hosts=profile.node_hosts,
                        node_ssh_config=profile.node_ssh_config)
