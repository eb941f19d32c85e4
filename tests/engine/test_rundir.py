import os

import pytest

from engine.rundir import RunDirectory, RunStatus, atomic_directory, find_run, list_runs, new_run_id


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


@pytest.mark.parametrize("job, ended, shown", [
    ("PENDING", "cancelled", "starting"),  # requeued after a preemption: waits to start again
    ("COMPLETING", "completed", "completed"),  # the batch script ending after its engine: that end, not a start
    ("COMPLETED", "running", "failed"),  # the job is over and the engine never said so
])
def test_a_slurm_runs_status_follows_its_job(tmp_path, monkeypatch, job, ended, shown):
    from engine import slurm

    run = RunDirectory.create(tmp_path, "r1")
    run.write_status(RunStatus(state=ended, pid=None, host="node1"))
    slurm.write_job(run.path, slurm.SlurmJob("42"))
    monkeypatch.setattr(slurm, "job_state", lambda job_id, max_age_s=2.0: {"job_id": job_id, "state": job,
                                                                           "reason": "", "nodes": "node1"})
    assert run.effective_status().state == shown


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


def test_a_checkpoint_is_complete_only_with_a_whole_state_file(tmp_path):
    run = RunDirectory.create(tmp_path, "ckpt")
    states = {4: '{"global_step": 4}', 8: '{"global_step": 8, "log_hist', 12: "", 16: "[1, 2]"}
    for step, text in states.items():
        (run.checkpoints_dir / f"checkpoint-{step}").mkdir()
        (run.checkpoints_dir / f"checkpoint-{step}" / "trainer_state.json").write_text(text)
    (run.checkpoints_dir / "checkpoint-20").mkdir()  # its save was cut before the state file
    assert [p.name for p in run.checkpoints()] == ["checkpoint-4"]
    assert run.last_checkpoint().name == "checkpoint-4"


def test_rotation_removes_older_complete_checkpoints_by_rename_and_never_the_last(tmp_path):
    from engine.rundir import rotate_checkpoints

    folder = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        (folder / f"checkpoint-{step}" / "weights").write_text("w")
    (folder / "checkpoint-8").mkdir()  # being written: not counted, not touched
    (folder / ".checkpoint-0.deleting").mkdir()  # what a crash in an earlier rotation left
    assert [p.name for p in rotate_checkpoints(folder, 1)] == ["checkpoint-2", "checkpoint-4"]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-6", "checkpoint-8"]
    assert rotate_checkpoints(folder, 1) == [] and (folder / "checkpoint-6" / "weights").exists()


def test_a_run_folder_appears_whole_or_not_at_all(tmp_path):
    from engine.errors import UserError

    run, lock = RunDirectory.create_locked(tmp_path, "whole", "kind: pretrain\n", RunStatus(state="starting"))
    assert run.spec_path.read_text() == "kind: pretrain\n" and run.read_status().state == "starting"
    with pytest.raises(UserError, match="being run by another engine process"):
        run.lock()
    lock.release()
    run.lock().release()
    with pytest.raises(UserError, match="exists already"):
        RunDirectory.create_locked(tmp_path, "whole", "kind: pretrain\n")
    for bad in ("../x", "/abs", ".", "a b", "x\n"):
        with pytest.raises(UserError, match="cannot be a run id"):
            RunDirectory.create(tmp_path, bad)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["whole"]  # no draft left behind
