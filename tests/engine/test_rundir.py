import os

import pytest

from engine.rundir import (RunDirectory, RunStatus, atomic_directory, find_run, list_runs, new_run_id)


def test_create_and_status_round_trip(tmp_path):
    run = RunDirectory.create(tmp_path, new_run_id("my run!"))
    assert run.run_id.startswith("my-run-")
    assert run.checkpoints_dir.is_dir() and run.output_dir.is_dir()
    run.write_status(RunStatus(state="running", pid=os.getpid(), last_seq=4, kind="pretrain"))
    status = run.read_status()
    assert status.state == "running" and status.last_seq == 4 and status.active
    assert not list(run.path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_a_dead_running_process_reads_as_failed(tmp_path):
    run = RunDirectory.create(tmp_path, "r1")
    run.write_status(RunStatus(state="running", pid=2**22 + 12345))
    assert run.effective_status().state == "failed"


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("crash")
    assert not target.exists() and not list(tmp_path.iterdir())
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("whole")
    assert (target / "weights").read_text() == "whole"


def test_find_run_by_prefix_and_checkpoints_in_step_order(tmp_path):
    for run_id in ("alpha-1", "beta-1", "beta-2"):
        run = RunDirectory.create(tmp_path, run_id)
        run.spec_path.write_text("kind: pretrain\n")
    assert find_run(tmp_path, "alpha").run_id == "alpha-1"
    with pytest.raises(LookupError, match="several"):
        find_run(tmp_path, "beta")
    with pytest.raises(LookupError, match="No run"):
        find_run(tmp_path, "gamma")
    run = find_run(tmp_path, "beta-2")
    for step in (100, 20, 3):
        (run.checkpoints_dir / f"checkpoint-{step}").mkdir()
        (run.checkpoints_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (run.checkpoints_dir / "checkpoint-500").mkdir()  # incomplete: no trainer_state.json
    assert [p.name for p in run.checkpoints()] == ["checkpoint-3", "checkpoint-20", "checkpoint-100"]
    assert len(list_runs(tmp_path)) == 3
