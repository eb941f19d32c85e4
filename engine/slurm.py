"""Runs submitted to Slurm: the batch script, the job's state, stop and resume.

`studio-engine run SPEC --slurm` (on the cluster's login host, or any host with the Slurm commands)
makes the run folder as for any run, writes `slurm.sh` in it and submits it with `sbatch`; the job id
goes to `slurm.json`. The script runs `srun` once per node: `studio-engine _node` wrapping `torchrun`
with a c10d rendezvous on the job's first node — the same node wrapper as a run on SSH hosts
(engine.multinode), told to obey a control file on the shared run folder instead of an SSH channel.
Rank 0 writes events to the run folder as always, so the studio follows the run by `attach`, locally
or over SSH, exactly as a local run.

Stopping: `cancel` writes `cancel` to the control file (every rank agrees to stop, checkpoints, ends as
cancelled; the job then ends); `cancel --force` is `scancel`. Before the time limit Slurm sends the
batch shell USR1 (`--signal=B:USR1@…`): the script stops the run the same graceful way, then requeues
its own job, which starts again with `--resume`; a job that Slurm preempts or an admin requeues
(`--requeue`) starts again the same way. `resume` submits the script again.

Standard library only: the studio imports this module to show the script on the review step.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

SLURM_FILE = "slurm.json"
SCRIPT_FILE = "slurm.sh"
CONTROL_FILE = "control"  # in the run's nodes/ folder: `cancel` or `kill`, read by every node
# The rendezvous port: one per job (jobs sharing a node must not share a c10d store), from this range.
RENDEZVOUS_PORTS = (20000, 10000)
# Job states in which the job will still run (or runs): squeue's long names.
ACTIVE_JOB_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                     "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")


@dataclass
class SlurmOptions:
    """What the engine profile (or the command line) says of the cluster; nodes and GPUs come from
    the spec's `resources`."""

    partition: str = ""
    account: str = ""
    time: str = ""  # sbatch's --time: minutes, H:MM:SS or D-HH:MM:SS (empty: the partition's default)
    stop_before_s: int = 120  # USR1 this long before the time limit: time to checkpoint
    extra: list[str] = field(default_factory=list)  # more `#SBATCH` options, as written

    def problems(self) -> list[str]:
        out = []
        if self.time and not _TIME.match(self.time):
            out.append(f"The time limit {self.time!r} is not one sbatch reads: write minutes, H:MM:SS or D-HH:MM:SS.")
        for name, value in (("partition", self.partition), ("account", self.account)):
            if value and not re.fullmatch(r"[\w.,-]+", value):
                out.append(f"The {name} {value!r} has characters Slurm names never have.")
        if self.stop_before_s < 10:
            out.append("Stop before the time limit needs at least 10 seconds (the run saves a checkpoint then).")
        return out


def batch_script(spec, run_path: Path, workspace: Path, run_id: str, options: SlurmOptions,
                 python: str = sys.executable) -> str:
    """The sbatch script of a run: one `_node` per node (srun), torchrun with c10d on the first node."""
    r = spec.resources
    nodes = max(1, getattr(r, "nodes", 1))
    gpus = max(1, getattr(r, "gpus", 1))
    on_gpus = getattr(r, "device", "auto") in ("auto", "cuda")
    engine = [python, "-m", "engine.cli", "--workspace", str(workspace)]
    lines = ["#!/bin/bash", f"#SBATCH --job-name={run_id}", f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --output={run_path}/slurm-%j.out", "#SBATCH --open-mode=append",
             f"#SBATCH --signal=B:USR1@{options.stop_before_s}", "#SBATCH --requeue"]
    if on_gpus:
        lines.append(f"#SBATCH --gpus-per-node={gpus}")
    lines += [f"#SBATCH --{name}={value}" for name, value in
              (("partition", options.partition), ("account", options.account), ("time", options.time)) if value]
    lines += [f"#SBATCH {option}" for option in options.extra]
    control = run_path / "nodes" / CONTROL_FILE
    torchrun = [python, "-m", "torch.distributed.run", "--nnodes=$SLURM_NNODES", f"--nproc-per-node={gpus}",
                "--rdzv-backend=c10d", "--rdzv-endpoint=$head:$port", "--rdzv-id=$SLURM_JOB_ID",
                "--max-restarts=0", *engine[1:], "_exec", run_id]
    lines += [
        "",
        "# The first node holds the c10d rendezvous; every node runs the same engine on the shared run folder.",
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"port=$(({RENDEZVOUS_PORTS[0]} + SLURM_JOB_ID % {RENDEZVOUS_PORTS[1]}))",
        f"mkdir -p {shlex.quote(str(control.parent))} && rm -f {shlex.quote(str(control))}",
        "# A job that starts again (requeued after preemption or the time limit, or `resume`) resumes.",
        'resume=""',
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] || [ -n "${ATELIER_RESUME:-}" ]; then resume="--resume"; fi',
        "# Before the time limit: stop gracefully (checkpoint), then requeue this job to go on from there.",
        "stopping=0",
        f"trap 'stopping=1; echo cancel > {shlex.quote(str(control))}' USR1",
        f"srun --kill-on-bad-exit=1 {shlex.quote(python)} -m engine.cli --workspace {shlex.quote(str(workspace))} "
        f"_node --host slurm --control-file {shlex.quote(str(control))} {shlex.quote(run_id)} -- "
        f"{_shell_words(torchrun)} $resume &",
        "step=$!",
        "# `wait` returns early when USR1 arrives: wait again until srun itself has ended.",
        'while true; do wait "$step"; code=$?; kill -0 "$step" 2>/dev/null || break; done',
        'if [ "$stopping" = 1 ]; then scontrol requeue "$SLURM_JOB_ID"; fi',
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"


def _shell_words(argv: list[str]) -> str:
    """argv for the script: quoted, except the words that name the job's variables ($head, $SLURM_…)."""
    return " ".join(f'"{a}"' if "$" in a else shlex.quote(a) for a in argv)


@dataclass
class SlurmJob:
    job_id: str
    submitted: float = 0.0


def read_job(run_path: Path) -> SlurmJob | None:
    try:
        data = json.loads((Path(run_path) / SLURM_FILE).read_text(encoding="utf-8"))
        return SlurmJob(job_id=str(data["job_id"]), submitted=float(data.get("submitted", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_job(run_path: Path, job: SlurmJob) -> None:
    # Not engine.rundir's atomic writer: the run directory module reads this one (no import cycle).
    target = Path(run_path) / SLURM_FILE
    temporary = target.with_name(f".{SLURM_FILE}.tmp")
    temporary.write_text(json.dumps(asdict(job)), encoding="utf-8")
    os.replace(temporary, target)


def slurm_available() -> str | None:
    """None when the Slurm commands are here; otherwise what is missing, as a sentence."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(c) is None]
    return f"the Slurm commands {', '.join(missing)} are not on PATH" if missing else None


def submit(script_path: Path, resume: bool) -> str:
    """sbatch the script; the job id. Raises UserError with sbatch's own words when it refuses."""
    from engine.errors import UserError

    command = ["sbatch", "--parsable"] + (["--export=ALL,ATELIER_RESUME=1"] if resume else []) + [str(script_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise UserError(f"sbatch refused the run's batch script {script_path}: {done.stderr.strip() or done.stdout}",
                        "Check the partition, account and time limit of the engine profile (`sinfo` lists "
                        "partitions and their limits).")
    return done.stdout.strip().split(";")[0]


_STATES: dict[str, tuple[float, dict]] = {}


def job_state(job_id: str, max_age_s: float = 2.0) -> dict:
    """The job's state, asked of Slurm at most every `max_age_s` (a follower polls several times a second)."""
    import time

    cached = _STATES.get(job_id)
    if cached and time.monotonic() - cached[0] < max_age_s:
        return cached[1]
    state = _ask_job_state(job_id)
    _STATES[job_id] = (time.monotonic(), state)
    return state


def _ask_job_state(job_id: str) -> dict:
    """{state, reason, nodes, restarts} of a job: squeue while Slurm holds it, else `scontrol show job`
    (finished jobs, for MinJobAge), else sacct (accounting); state "UNKNOWN" when none knows it."""
    done = _quiet(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%N"])
    if done and done.strip():
        state, reason, nodes = (done.strip().splitlines()[0].split("|") + ["", ""])[:3]
        return {"job_id": job_id, "state": state, "reason": reason, "nodes": nodes}
    done = _quiet(["scontrol", "show", "job", "-o", job_id])
    if done and "JobState=" in done:
        fields = dict(part.split("=", 1) for part in done.split() if "=" in part)
        return {"job_id": job_id, "state": fields.get("JobState", "UNKNOWN"), "reason": fields.get("Reason", ""),
                "nodes": fields.get("NodeList", ""), "restarts": int(fields.get("Restarts", "0") or 0)}
    done = _quiet(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,NodeList"])
    if done and done.strip():
        state, _, nodes = done.strip().splitlines()[0].partition("|")
        return {"job_id": job_id, "state": state.split()[0], "reason": "", "nodes": nodes}
    return {"job_id": job_id, "state": "UNKNOWN", "reason": "", "nodes": ""}


def job_active(state: dict) -> bool:
    return state.get("state") in ACTIVE_JOB_STATES


def request_stop(run_path: Path, word: str = "cancel") -> None:
    """Every node of the run reads this (engine.multinode.run_node with a control file)."""
    control = Path(run_path) / "nodes" / CONTROL_FILE
    control.parent.mkdir(exist_ok=True)
    control.write_text(word + "\n", encoding="utf-8")


def cancel_job(job_id: str) -> None:
    subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=60)


def _quiet(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
