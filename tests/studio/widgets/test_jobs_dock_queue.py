"""The jobs dock against a real engine queue, the local engine's and an SSH engine's (a real sshd on
127.0.0.1, tests/sshd_fixtures.py): the waiting runs in order, Move up/down, Cancel and Pause/Resume through
`studio-engine queue …`, the engine's answer checked with the CLI itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from studio.client import LocalEngine
from studio.client.run_tracker import RunTracker
from studio.client.ssh import HostKey, accept_host_keys
from studio.models.engine_profiles import EngineProfile, remote_engine
from studio.widgets.jobs_dock import JobsDock
from tests.sshd_fixtures import needs_sshd, sshd  # noqa: F401 (sshd is a fixture)

ROOT = Path(__file__).resolve().parents[3]
# No GPUs, whatever the machine has: the queue has one slot and starts one run at a time.
ENV = {**{k: v for k, v in os.environ.items() if k != "ATELIER_QUEUE_SLOTS"}, "CUDA_VISIBLE_DEVICES": "",
       "ATELIER_QUEUE_POLL_S": "0.2"}


def cli(workspace: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "engine.cli", "--workspace", str(workspace), *args],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def queue_state(workspace: Path) -> dict:
    return json.loads(cli(workspace, "queue", "list", "--json"))


def waiting(workspace: Path) -> list[str]:
    runs = [r for r in queue_state(workspace)["runs"] if r["state"] == "waiting"]
    return [r["run_id"] for r in sorted(runs, key=lambda r: r["position"])]


def state(workspace: Path, run_id: str) -> str:
    return json.loads(cli(workspace, "show", run_id, "--json"))["state"]


@pytest.fixture
def queued(workspace, tmp_path) -> list[str]:
    """Three short clean runs waiting in a paused queue."""
    corpus = tmp_path / "small.jsonl"
    corpus.write_text(json.dumps({"text": "A few words to keep."}) + "\n", encoding="utf-8")
    spec = workspace / "clean.yaml"
    spec.write_text(yaml.safe_dump({"kind": "clean", "name": "small", "input": {"sources": [str(corpus)]},
                                    "workers": 1, "quality": {"enabled": False}}), encoding="utf-8")
    cli(workspace, "queue", "pause")
    ids = [json.loads(cli(workspace, "queue", "add", str(spec), "--run-id", name))["run_id"] for name in "abc"]
    yield ids
    cli(workspace, "queue", "pause")
    for run_id in waiting(workspace):
        cli(workspace, "queue", "cancel", run_id)
    deadline = time.monotonic() + 120
    while queue_state(workspace)["runs"]:  # a run started by the test ends on its own, in seconds
        assert time.monotonic() < deadline, "the started runs did not end"
        time.sleep(0.5)


def test_the_jobs_dock_shows_the_engines_queue_and_reorders_cancels_pauses_and_resumes_it(
        qtbot, workspace, store, queued):
    tracker = RunTracker(store, LocalEngine(workspace=workspace, env={"CUDA_VISIBLE_DEVICES": ""}))
    dock = JobsDock(store, tracker)
    qtbot.addWidget(dock)
    try:
        check_the_dock(qtbot, workspace, store, dock, queued)
    finally:
        dock.shutdown()
        tracker.shutdown()


@needs_sshd
def test_the_jobs_dock_shows_an_ssh_engines_queue_and_acts_on_it_over_ssh(qtbot, workspace, store, queued, sshd,
                                                                        tmp_path):
    port = re.search(r"Port (\d+)", sshd.config.read_text()).group(1)
    key = (sshd.config.parent / "host_key.pub").read_text().split()
    accept_host_keys([HostKey(f"[127.0.0.1]:{port} {key[0]} {key[1]}")], sshd.known_hosts)
    here = tmp_path / "studio-side"
    (here / "runs").mkdir(parents=True)
    tracker = RunTracker(store, LocalEngine(workspace=here))
    lab = remote_engine(EngineProfile("lab", host=sshd.host, python=sys.executable, workspace=str(workspace),
                                      ssh_config=str(sshd.config)), control_dir=str(sshd.control_dir))
    lab.extra_env = {k: v for k, v in ENV.items() if k in ("CUDA_VISIBLE_DEVICES", "ATELIER_QUEUE_POLL_S")}
    dock = JobsDock(store, tracker)
    qtbot.addWidget(dock)
    assert list(dock.queues) == ["local"]
    tracker.add_engine(lab)  # as the main window does when a profile is saved
    dock.sync_queues()
    assert list(dock.queues) == ["local", "lab"] and dock.queues["lab"].engine is lab
    dock.queues["lab"].refresh_s = 1.0
    try:
        check_the_dock(qtbot, workspace, store, dock, queued, engine="lab")
    finally:
        dock.shutdown()
        tracker.shutdown()


def check_the_dock(qtbot, workspace, store, dock, queued, engine: str = "local"):
    section = dock.queues[engine]
    a, b, c = queued

    qtbot.waitUntil(lambda: list(section.rows) == [a, b, c], timeout=30_000)
    assert dock.isVisible() and section.isVisible() and section.paused
    assert section.pause_button.text() == "Resume queue" and "paused" in section.title.text()
    assert section.rows[a].place_label.text() == "#1 waiting · 1 GPU"
    assert not section.rows[a].up_button.isEnabled() and not section.rows[c].down_button.isEnabled()

    section.rows[a].down_button.click()
    qtbot.waitUntil(lambda: list(section.rows) == [b, a, c], timeout=30_000)
    assert waiting(workspace) == [b, a, c]
    section.rows[c].up_button.click()
    qtbot.waitUntil(lambda: list(section.rows) == [b, c, a], timeout=30_000)
    assert waiting(workspace) == [b, c, a]

    section.rows[a].cancel_button.click()
    qtbot.waitUntil(lambda: list(section.rows) == [b, c], timeout=30_000)
    assert waiting(workspace) == [b, c] and state(workspace, a) == "cancelled"

    section.pause_button.click()  # Resume: the first waiting run starts, and the studio follows it
    qtbot.waitUntil(lambda: not section.paused, timeout=30_000)
    assert queue_state(workspace)["paused"] is False
    # The local engine's started run is followed (its folder is here); a remote one leaves the queue.
    qtbot.waitUntil(lambda: b not in section.rows and (engine != "local" or store.get_run(b) is not None),
                    timeout=60_000)
    assert section.pause_button.text() == "Pause queue"

    section.pause_button.click()
    qtbot.waitUntil(lambda: section.paused, timeout=30_000)
    assert queue_state(workspace)["paused"] is True
    assert not section.message.isVisible()
