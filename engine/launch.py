"""Several processes for one run: the command that starts them, and who this process is among them.

Several GPUs (or, on a CPU, several processes over gloo) run under `torchrun`, several hosts under
the `deepspeed` launcher with a hostfile — the launchers the field uses, never a scheme of our own.
Every process runs `studio-engine _exec RUN`; the Trainer (through accelerate) joins them into one
process group from the environment the launcher sets. Only rank 0 writes events and status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def world_size(spec) -> int:
    resources = getattr(spec, "resources", None)
    # Jobs that run models forward only (generate) have InferenceResources: one device, no gpus/nodes.
    return getattr(resources, "gpus", 1) * getattr(resources, "nodes", 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def engine_identity() -> tuple[int, str | None, str]:
    """The process that status.json names (pid, start, host): this one, or in a run on several hosts
    the coordinator that started them (the one `cancel` signals, wherever rank 0 landed)."""
    import socket

    from engine.processes import process_start

    if os.environ.get("ATELIER_ENGINE_PID"):
        return (int(os.environ["ATELIER_ENGINE_PID"]), os.environ.get("ATELIER_ENGINE_PID_STARTED") or None,
                os.environ.get("ATELIER_ENGINE_HOST") or socket.gethostname())
    return os.getpid(), process_start(os.getpid()), socket.gethostname()


def inside_launcher() -> bool:
    return "LOCAL_RANK" in os.environ


def needs_launcher(spec) -> bool:
    return world_size(spec) > 1 and not inside_launcher()


def launcher_command(spec, workspace: Path, run_id: str, resume: bool) -> list[str]:
    """torchrun for one host; for several, node 0's command over SSH (resources.hosts) or the deepspeed
    launcher (a hostfile)."""
    resources = spec.resources
    engine = ["-m", "engine.cli", "--workspace", str(workspace), "_exec", run_id] + (["--resume"] if resume else [])
    if resources.nodes > 1 and getattr(resources, "hosts", None):
        # One command a host (engine.multinode); the first node's stands for them all.
        from engine.multinode import node_commands

        return node_commands(spec, workspace, run_id, resume, f"{resources.hosts[0]}:PORT", f"{run_id}-ID")[0]
    if resources.nodes > 1:
        if not resources.hostfile:
            from engine.errors import UserError
            raise UserError(f"resources.nodes is {resources.nodes} but neither resources.hosts nor resources.hostfile "
                            "names the machines.",
                            "List the machines' SSH host aliases in resources.hosts (torchrun on each over SSH), or "
                            "write a hostfile (one `host slots=N` line per machine) for the deepspeed launcher.")
        return ["deepspeed", "--hostfile", resources.hostfile, "--num_nodes", str(resources.nodes),
                "--num_gpus", str(resources.gpus), "--module", *engine[1:]]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={resources.gpus}", *engine]


def launcher_env(spec, base: dict[str, str]) -> dict[str, str]:
    """The environment of a launch: `OMP_NUM_THREADS` split between this host's processes when the
    user set none (the deepspeed launcher leaves it unset — every process then takes every core,
    which made CPU steps 3.4× slower here; torchrun sets 1, which starves a CPU run)."""
    env = dict(base)
    if "OMP_NUM_THREADS" not in env:
        processes = max(1, getattr(spec.resources, "gpus", 1))
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return env
