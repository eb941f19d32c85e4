"""A run on two "nodes" without a scheduler, through the real engine: two torchrun invocations on this
machine (--nnodes 2, one c10d rendezvous, gloo over loopback), each started over SSH through a real
sshd on 127.0.0.1 (tests/sshd_fixtures.py) — or, where sshd is not installed, as `local` hosts
without SSH (the test's `how` says which, in every assertion message)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from engine.processes import descendants, process_start
from tests.engine.conftest import Engine, one_thread, tiny_spec
from tests.sshd_fixtures import SSHD_INSTALLED, sshd  # noqa: F401 (sshd is a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.long]


@pytest.fixture
def hosts(request) -> tuple[list[str], str | None, str]:
    """The two hosts, the ssh config that names them, and how the nodes start (said in failures)."""
    if not SSHD_INSTALLED:
        return ["local", "local"], None, "local processes (sshd is not installed: apt-get install openssh-server)"
    server = request.getfixturevalue("sshd")
    # What a user does once per host: accept its key (the engine's ssh runs in BatchMode and never asks).
    subprocess.run(["ssh", "-F", str(server.config), "-o", "StrictHostKeyChecking=accept-new", server.host, "true"],
                   check=True, capture_output=True, timeout=30)
    return [server.host, server.host], str(server.config), f"over SSH to {server.host} (127.0.0.1)"


def two_node_spec(corpus_file, hosts: list[str], ssh_config: str | None) -> dict:
    return tiny_spec(str(corpus_file), **{
        "resources.device": "cpu", "resources.nodes": 2, "resources.hosts": hosts, "resources.ssh_config": ssh_config,
        "train.max_steps": 200, "train.checkpoint_every": 20, "train.eval_every": 1000, "train.sample_every": 1000})


def node_processes(run_dir, node: int) -> list[int]:
    record = json.loads((run_dir / "nodes" / f"{node}.json").read_text())
    return [record["pid"], *descendants(record["pid"])]


def test_two_nodes_cancel_everywhere_name_a_node_that_dies_and_resume_to_the_end(engine: Engine, corpus_file, hosts):
    host_list, ssh_config, how = hosts
    one_thread(engine)
    spec = engine.write_spec(two_node_spec(corpus_file, host_list, ssh_config))
    run_dir = engine.workspace / "runs" / "two-nodes"

    # Cancel: the coordinator passes it to both nodes; every rank stops at one step, checkpointed.
    process = engine.popen("run", str(spec), "--json", "--run-id", "two-nodes", capture=False)
    try:
        engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["step"] >= 10, timeout=180)
        both = node_processes(run_dir, 0) + node_processes(run_dir, 1)
        assert engine.run("cancel", "two-nodes").returncode == 0
        assert process.wait(timeout=120) == 130, how
    finally:
        process.kill()
    events = engine.events(run_dir)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "cancelled", (how, events[-1])
    assert sum(e["type"] == "started" for e in events) == 1  # one event stream: rank 0's
    assert [p for p in both if process_start(p) is not None] == [], how  # nothing of either node runs on
    stopped_at = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").iterdir())
    assert 10 <= stopped_at < 200

    # A node dies mid-run (every process of it killed): the run fails naming it.
    process = engine.popen("resume", "two-nodes", "--json", capture=False)
    try:
        engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["step"] >= stopped_at + 20, timeout=180)
        rank0 = [e for e in engine.events(run_dir) if e["type"] == "started"][-1]["pid"]
        victim = next(n for n in (0, 1) if rank0 not in node_processes(run_dir, n))  # rank 0 lives to tell
        for pid in node_processes(run_dir, victim):
            os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=120) == 1, how
    finally:
        process.kill()
    failed = engine.events(run_dir)[-1]
    assert failed["status"] == "failed" and failed["error"]["type"] == "node_lost", (how, failed)
    assert failed["error"]["message"].startswith(f"Node {victim} of 2 (host {host_list[victim]}) stopped at step")
    assert "studio-engine resume two-nodes" in failed["error"]["hint"]
    show = json.loads(engine.run("show", "two-nodes", "--json").stdout)
    assert show["state"] == "failed"

    # A forced cancel of a detached run kills the coordinator's process group: each node, its channel
    # closed, kills every process it started.
    assert engine.run("resume", "two-nodes", "--detach").returncode == 0
    resumed_at = len(engine.events(run_dir))
    engine.wait_for(run_dir, lambda e: e["seq"] > resumed_at and e["type"] == "metric", timeout=180)
    both = node_processes(run_dir, 0) + node_processes(run_dir, 1)
    assert engine.run("cancel", "two-nodes", "--force").returncode == 0
    deadline = time.time() + 30
    while [p for p in both if process_start(p) is not None] and time.time() < deadline:
        time.sleep(0.2)
    assert [p for p in both if process_start(p) is not None] == [], how
    assert engine.events(run_dir)[-1]["status"] == "cancelled"

    # Resume: both nodes again, from the last checkpoint, to the end.
    result = engine.run("resume", "two-nodes", "--json", timeout=300)
    assert result.returncode == 0, (how, (run_dir / "engine.log").read_text()[-3000:])
    events = engine.events(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    starts = [e for e in events if e["type"] == "started"]
    assert len(starts) == 4 and starts[-1]["resumed_from_step"] > stopped_at
    assert events[-1]["status"] == "completed" and events[-1]["summary"]["step"] == 200
    assert (run_dir / "output" / "model" / "model.safetensors").exists()
