"""How a run starts, as the Where-to-run and Review steps say it: on a Slurm engine, the batch script
the engine will submit (the engine's own `batch_script`), with the profile's partition, account and
time limit; and what the profile and its engine pass to `studio-engine run`."""

from __future__ import annotations

from studio.models.engine_profiles import EngineProfile, remote_engine
from studio.widgets.launch_plan import LaunchPlanBox, launch_plan


def test_a_slurm_engine_shows_the_batch_script_it_will_submit(qtbot, tmp_path):
    profile = EngineProfile("cluster", host="login.hpc", python="/shared/atelier/bin/python", workspace="/shared/ws",
                            scheduler="slurm", partition="gpu", account="lab", time_limit="4:00:00")
    assert profile.problems() == []
    engine = remote_engine(profile)
    assert engine.run_arguments() == ["--slurm", "--partition=gpu", "--account=lab", "--time=4:00:00"]
    box = LaunchPlanBox(compact=True)
    qtbot.addWidget(box)
    box.set_resources({"gpus": 8, "nodes": 2}, tmp_path, slurm_engine=engine)
    script = box.config_view.toPlainText()
    assert "Submitted to Slurm with sbatch on cluster" in box.label.text() and "16 processes" in box.label.text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --account=lab" in script and "#SBATCH --time=4:00:00" in script
    assert "/shared/atelier/bin/python -m engine.cli --workspace /shared/ws _node" in script
    assert "--rdzv-backend=c10d" in script and "#SBATCH --signal=B:USR1@120" in script and "#SBATCH --requeue" in script

    box.set_resources({"gpus": 8, "nodes": 2}, tmp_path)  # another engine: the launcher command again
    assert "Slurm" not in box.label.text()


def test_a_plain_ssh_profile_detaches_and_a_slurm_profile_checks_its_time_limit():
    plain = EngineProfile("lab", host="gpu-lab", python="~/v/bin/python", workspace="~/ws")
    assert remote_engine(plain).run_arguments() == ["--detach"]
    wrong = EngineProfile("cluster", host="login", python="p", workspace="w", scheduler="slurm", time_limit="two hours")
    assert any("time limit" in p for p in wrong.problems())
    assert any("scheduler" in p for p in EngineProfile("x", host="h", python="p", workspace="w",
                                                        scheduler="pbs").problems())


def test_hosts_over_ssh_are_described_with_the_first_nodes_command(tmp_path):
    sentence, command = launch_plan({"gpus": 2, "nodes": 2, "hosts": ["gpu-a", "gpu-b"]}, tmp_path)
    assert "4 processes (2 per node × 2 nodes) started by torchrun on each host over SSH" in sentence
    assert command.startswith("ssh -o BatchMode=yes -T gpu-a") and "--nnodes=2" in command
    assert "--rdzv-backend=c10d" in command and "is_host=1" in command
    sentence, command = launch_plan({"gpus": 2, "nodes": 2}, tmp_path)
    assert "cannot start yet" in sentence and "resources.hosts" in sentence and command is None
