"""How a run's scheduler job reads in a line: the `slurm` block of `studio-engine show RUN --json`
({job_id, state, reason, nodes, restarts}) as the jobs dock and the run monitor's header show it (Qt-free)."""

from __future__ import annotations

from typing import Any

# What squeue prints when a job has no reason to give.
_NO_REASON = {"", "None", "none"}


def slurm_line(slurm: dict[str, Any]) -> str:
    """"PENDING · Resources", "RUNNING on node1", "… · requeued 1×"; Slurm's own words, unchanged, so
    they can be looked up in its documentation."""
    state = str(slurm.get("state") or "UNKNOWN")
    reason = str(slurm.get("reason") or "")
    nodes = str(slurm.get("nodes") or "")
    if reason not in _NO_REASON and (state == "PENDING" or not nodes):
        text = f"{state} · {reason}"
    elif nodes:
        text = f"{state} on {nodes}"
    else:
        text = state
    restarts = _count(slurm.get("restarts"))
    return text + (f" · requeued {restarts}×" if restarts else "")


def slurm_tooltip(slurm: dict[str, Any]) -> str:
    """The job id, for `squeue -j` / `sacct -j` in a terminal."""
    job = slurm.get("job_id")
    return f"Slurm job {job}: {slurm_line(slurm)}" if job else slurm_line(slurm)


def _count(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0
