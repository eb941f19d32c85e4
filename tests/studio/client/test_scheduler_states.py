"""A run submitted to a real single-host Slurm (tests/slurm_fixtures.py) as the studio sees it: its job's
state, read by `show --json` through the run's engine, in the jobs dock's entry and the run monitor's
header — pending while the node is drained, running on the node, then the job's last state — each line
compared with what `studio-engine show` itself answers."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studio.client import LocalEngine
from studio.client.run_tracker import RunTracker
from studio.models.scheduler_state import slurm_line
from studio.widgets.jobs_dock import JobsDock
from studio.widgets.run_monitor import RunMonitor
from tests.engine.conftest import ONE_THREAD, tiny_spec
from tests.slurm_fixtures import slurm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def test_slurm_line_uses_slurms_words_with_the_reason_nodes_and_requeues():
    assert slurm_line({"state": "PENDING", "reason": "Resources", "nodes": ""}) == "PENDING · Resources"
    assert slurm_line({"state": "RUNNING", "reason": "None", "nodes": "node1"}) == "RUNNING on node1"
    assert slurm_line({"state": "COMPLETED", "reason": "None", "nodes": "node1", "restarts": 1}) == \
        "COMPLETED on node1 · requeued 1×"


def cli(workspace: Path, env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "--workspace", str(workspace), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def node(env: dict, state: str, check: bool = True) -> None:
    subprocess.run(["scontrol", "update", f"NodeName={socket.gethostname()}", f"State={state}",
                    *(["Reason=held by the test"] if state == "DRAIN" else [])], env=env, check=check, timeout=30)


def test_a_slurm_runs_job_state_shows_in_the_jobs_dock_and_the_monitor_header(qtbot, workspace, store, tmp_path, slurm, monkeypatch):
    rng = random.Random(0)
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(rng.choice(["The parser", "reads", "a list", "of names."])
                                                           for _ in range(30))}) + "\n" for _ in range(300)))
    spec = tmp_path / "slurm.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(str(corpus), **{"resources.device": "cpu", "train.max_steps": 100000})))
    env = {**os.environ, **ONE_THREAD, "SLURM_CONF": slurm["SLURM_CONF"], "HF_HUB_OFFLINE": "1"}
    # The studio reads a local run folder's status in its own process, which asks Slurm too.
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    node(env, "DRAIN")  # the job waits until the test lets it start
    cli(workspace, env, "run", str(spec), "--slurm", "--time", "10", "--run-id", "on-slurm")

    tracker = RunTracker(store, LocalEngine(workspace=workspace, env={**ONE_THREAD, "SLURM_CONF": slurm["SLURM_CONF"]}))
    tracker.scheduler.timer.setInterval(300)
    dock = JobsDock(store, tracker)
    monitor = RunMonitor(store, tracker)
    qtbot.addWidget(dock)
    qtbot.addWidget(monitor)
    try:
        assert tracker.follow_new_runs() == ["on-slurm"]
        monitor.load("on-slurm")
        row = dock.rows["on-slurm"]

        # Slurm rewords a pending job's reason as it schedules: the line is checked against the answer
        # the studio read, and that answer against the shape of the CLI's own.
        pending = cli(workspace, env, "show", "on-slurm", "--json")["slurm"]
        assert pending["state"] == "PENDING" and pending["reason"] and pending["active"], pending
        qtbot.waitUntil(lambda: row.scheduler_label.text().startswith("Slurm: PENDING · "), timeout=30_000)
        seen = tracker.scheduler.state("on-slurm")
        assert seen.keys() == pending.keys() and seen["job_id"] == pending["job_id"] and seen["state"] == "PENDING"
        assert row.scheduler_label.text() == f"Slurm: {slurm_line(seen)}" and not row.scheduler_label.isHidden()
        assert monitor.scheduler_label.text() == row.scheduler_label.text() and not monitor.scheduler_label.isHidden()
        assert f"Slurm job {pending['job_id']}" in row.scheduler_label.toolTip()

        node(env, "RESUME")
        running = f"Slurm: RUNNING on {socket.gethostname()}"
        qtbot.waitUntil(lambda: row.scheduler_label.text() == running, timeout=60_000)
        assert monitor.scheduler_label.text() == running
        qtbot.waitUntil(lambda: (store.get_run("on-slurm").step or 0) >= 1, timeout=180_000)

        tracker.cancel("on-slurm")
        qtbot.waitUntil(lambda: "on-slurm" not in dock.rows, timeout=120_000)
        qtbot.waitUntil(lambda: not cli(workspace, env, "show", "on-slurm", "--json")["slurm"]["active"],
                        timeout=60_000)
        final = cli(workspace, env, "show", "on-slurm", "--json")
        assert final["state"] == "cancelled", final
        qtbot.waitUntil(lambda: monitor.scheduler_label.text() == f"Slurm: {slurm_line(final['slurm'])}",
                        timeout=30_000)
        qtbot.waitUntil(lambda: not tracker.scheduler.timer.isActive(), timeout=10_000)  # the job is over: no more asking
    finally:
        node(env, "RESUME", check=False)
        dock.shutdown()
        tracker.shutdown()
