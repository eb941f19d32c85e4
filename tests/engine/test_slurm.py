"""Runs submitted to a real single-host Slurm (tests/slurm_fixtures.py) through the real engine: the
batch script, events streamed from the run folder by `attach`, the job's state in `show`, a graceful
cancel and `resume` as a new job, a job requeued as on preemption (`scontrol requeue`) and one warned
of its time limit (USR1) that resume by themselves — each ending with the same final loss as an
uninterrupted run of the spec."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from engine.specs import parse_spec
from engine.slurm import SlurmOptions, batch_script
from tests.engine.conftest import Engine, one_thread, tiny_spec
from tests.slurm_fixtures import slurm  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.long]


def slurm_spec(corpus_file) -> dict:
    # Long enough that a stop sent after the first steps lands mid-run however fast the machine is: the tiny
    # model's steps take milliseconds, a cancel a command's start, a Slurm query and a control-file poll (here
    # about 20 steps of this model, against 380 left).
    return tiny_spec(str(corpus_file), **{"resources.device": "cpu", "train.max_steps": 400,
                                          "train.checkpoint_every": 20, "train.eval_every": 1000,
                                          "train.sample_every": 1000,
                                          "model.hidden_size": 64})


def submit(engine: Engine, spec_path, run_id: str) -> str:
    result = engine.run("run", str(spec_path), "--slurm", "--time", "10", "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["slurm_job"]


def follow(engine: Engine, run_id: str) -> list[dict]:
    result = engine.run("attach", run_id, "--follow", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def lift_requeue_hold(engine: Engine, job: str) -> None:
    """Slurm holds a requeued job for two minutes before it may start again; the test does not wait so long."""
    deadline = time.time() + 90
    while "BeginTime" not in subprocess.run(["squeue", "-h", "-j", job, "-o", "%r"], env=engine.env,
                                            capture_output=True, text=True).stdout:
        assert time.time() < deadline, f"job {job} was not requeued"
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=engine.env, check=True)


def final_loss(events: list[dict]) -> tuple[int, float]:
    last = [e for e in events if e["type"] == "metric" and e["split"] == "train"][-1]
    return last["step"], last["values"]["loss"]


def test_the_batch_script_runs_torchrun_with_c10d_on_the_first_node_and_stops_before_the_time_limit(tmp_path):
    spec = parse_spec({"kind": "pretrain", "resources": {"gpus": 4, "nodes": 2}})
    script = batch_script(spec, tmp_path / "runs" / "r1", tmp_path, "r1",
                          SlurmOptions(partition="gpu", account="lab", time="2:00:00", stop_before_s=300))
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=4" in script
    assert "#SBATCH --signal=B:USR1@300" in script and "#SBATCH --requeue" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --account=lab" in script and "#SBATCH --time=2:00:00" in script
    assert "srun " in script and "torch.distributed.run" in script and '"--rdzv-endpoint=$head:$port"' in script
    assert "--rdzv-backend=c10d" in script and 'scontrol requeue "$SLURM_JOB_ID"' in script
    assert SlurmOptions(time="two hours").problems()


def test_submit_stream_cancel_resume_and_requeue_end_at_the_same_loss(engine: Engine, corpus_file, slurm):
    one_thread(engine)
    engine.env.update(slurm)
    spec = engine.write_spec(slurm_spec(corpus_file))

    reference_job = submit(engine, spec, "reference")
    stopped_job = submit(engine, spec, "stopped")
    assert (engine.workspace / "runs" / "reference" / "slurm.sh").read_text().startswith("#!/bin/bash")

    # Cancel: the run checkpoints and ends as cancelled, and so does its job.
    stopped = engine.workspace / "runs" / "stopped"
    engine.wait_for(stopped, lambda e: e["type"] == "metric" and e["step"] >= 10, timeout=240)
    assert engine.run("cancel", "stopped").returncode == 0
    events = engine.wait_for(stopped, lambda e: e["type"] == "finished", timeout=120)
    assert events[-1]["status"] == "cancelled" and (stopped / "checkpoints").is_dir()

    # The reference, streamed from its run folder by attach, to the end.
    reference = follow(engine, "reference")
    assert reference[0]["type"] == "started" and reference[-1]["status"] == "completed"
    shown = json.loads(engine.run("show", "reference", "--json").stdout)
    assert shown["state"] == "completed" and shown["slurm"]["job_id"] == reference_job
    assert shown["slurm"]["state"] == "COMPLETED", shown["slurm"]

    # A job requeued as on preemption starts again by itself and resumes from its checkpoint; so does one
    # warned of its time limit (the USR1 that `--signal=B:USR1@…` sends), which stops gracefully first.
    requeued_job = submit(engine, spec, "requeued")
    timed_job = submit(engine, spec, "timed")
    requeued, timed = engine.workspace / "runs" / "requeued", engine.workspace / "runs" / "timed"
    # Each is stopped as soon as it has a checkpoint: on a loaded machine the other may otherwise finish first.
    engine.wait_for(requeued, lambda e: e["type"] == "artifact" and e["kind"] == "checkpoint", timeout=240)
    assert subprocess.run(["scontrol", "requeue", requeued_job], env=engine.env, capture_output=True).returncode == 0
    engine.wait_for(timed, lambda e: e["type"] == "artifact" and e["kind"] == "checkpoint", timeout=240)
    assert subprocess.run(["scancel", "--batch", "--signal=USR1", timed_job], env=engine.env).returncode == 0
    for job in (requeued_job, timed_job):
        lift_requeue_hold(engine, job)

    # Resume the cancelled run: a new job of the same script.
    result = engine.run("resume", "stopped")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["slurm_job"] != stopped_job
    resumed = follow(engine, "stopped")
    again = follow(engine, "requeued")
    follow(engine, "timed")
    stop = [e for e in engine.events(timed) if e["type"] == "finished"][0]
    assert stop["status"] == "cancelled" and not stop["summary"].get("forced")  # a checkpoint, then requeued
    expected = final_loss(reference)
    for events in (engine.events(stopped), engine.events(requeued), engine.events(timed)):
        starts = [e for e in events if e["type"] == "started"]
        assert len(starts) == 2 and starts[-1]["resumed_from_step"], starts[-1]
        assert events[-1]["status"] == "completed"
        step, loss = final_loss(events)
        assert step == expected[0] and loss == pytest.approx(expected[1], rel=1e-4, abs=1e-4)
    assert resumed[-1]["status"] == again[-1]["status"] == "completed"
